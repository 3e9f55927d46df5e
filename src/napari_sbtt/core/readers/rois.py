"""ROI positions from files or arrays: a labels image, or one row (and column) per ROI.

:func:`read_labels` reads a (Y, X) integer labels image (0 = background, k = ROI id k) from an
array or a ``.tif``/``.tiff``/``.npy`` file; :func:`read_roi_rows` reads each ROI's row (and
optionally column) from an (N,) / (N, 2) array or a ``.npy``/``.csv``/``.tsv``/``.txt`` file;
:func:`looks_like_rows` tells the two apart. Errors name the file and what it must hold.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_labels", "read_roi_rows", "looks_like_rows", "ROW_SUFFIXES"]

#: suffixes of a rows file (one line per ROI)
ROW_SUFFIXES = (".npy", ".csv", ".tsv", ".txt")


def read_labels(rois: Any, *, what: str = "rois") -> np.ndarray:
    """A (Y, X) integer labels image from an array or a ``.tif``/``.tiff``/``.npy`` file.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, unknown suffix, not 2-D, or non-integer values (naming the file).
    """
    if isinstance(rois, (str, os.PathLike)):
        p = Path(rois).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"ROI labels file not found: {p}")
        suffix = p.suffix.lower()
        if suffix in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(p)
        elif suffix == ".npy":
            from .npy import load_npy

            arr = load_npy(p)  # its errors name the file and the fix (object arrays are refused)
        else:
            raise ValueError(
                f"{p}: ROI labels must be a .tif/.tiff or .npy labels image (0 = background, 1..N = ROI ids)")
        src = str(p)
    else:
        arr = np.asarray(rois)
        src = what
    arr = np.squeeze(np.asarray(arr))
    if arr.ndim != 2:
        raise ValueError(
            f"{src}: ROI labels must be one (Y, X) labels image (0 = background, 1..N = ROI ids), got shape "
            f"{arr.shape}; convert a stack of masks to one labels image")
    if arr.dtype == bool:
        arr = arr.astype(np.int32)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.mod(arr, 1) == 0):
            raise ValueError(f"{src}: ROI labels must hold whole-number ids, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{src}: ROI labels must be >= 0 (0 = background)")
    return arr


def read_roi_rows(rois: Any, *, what: str = "rois") -> tuple[np.ndarray, np.ndarray | None]:
    """Per-ROI rows (and columns) from an (N,) or (N, 2) array or a ``.npy``/``.csv``/``.txt`` file.

    Returns
    -------
    rows : float (N,) each ROI's (centroid) row, in pixels from the top.
    cols : float (N,) each ROI's centroid column, or None for a one-column file.
    """
    from .traces import read_traces

    if isinstance(rois, (str, os.PathLike)):
        p = Path(rois).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"ROI rows file not found: {p}")
        if p.suffix.lower() not in ROW_SUFFIXES:
            raise ValueError(f"{p}: a rows file must be {', '.join(ROW_SUFFIXES)} with one row per ROI")
        arr = read_traces(p, orientation="tn")
        src = str(p)
    else:
        arr = np.asarray(rois, dtype=float)
        src = what
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] not in (1, 2) or arr.shape[0] == 0:
        raise ValueError(
            f"{src}: ROI rows must be one line per ROI holding its row, or its row and column "
            f"(shape (N,) or (N, 2)); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{src}: ROI {bad} has no row (empty or NaN); every ROI needs its row")
    return arr[:, 0].copy(), (arr[:, 1].copy() if arr.shape[1] == 2 else None)


def looks_like_rows(rois: Any) -> bool:
    """True when ``rois`` is a rows file/array rather than a labels image."""
    if isinstance(rois, (str, os.PathLike)):
        p = Path(rois)
        if p.suffix.lower() in (".csv", ".tsv", ".txt"):
            return True
        if p.suffix.lower() == ".npy" and p.is_file():
            with open(p, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                shape = (np.lib.format.read_array_header_1_0(fh) if version == (1, 0)
                         else np.lib.format.read_array_header_2_0(fh))[0]
            return len(shape) == 1 or (len(shape) == 2 and shape[1] == 2)
        return False
    a = np.asarray(rois)
    return a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 2)
