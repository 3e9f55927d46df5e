"""Helpers shared by the file readers: errors, optional imports, pixel lists -> labels."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import OptionError
from ..limits import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE

__all__ = ["ReaderError", "ReaderOptionError", "require_h5py", "open_hdf5", "require_pynwb",
           "labels_from_weighted_pixels", "check_image_shape", "read_h5_dataset", "MAX_IMAGE_SIDE",
           "MAX_IMAGE_PIXELS"]

#: an HDF5 dataset may decompress to at most this many times the bytes it stores (gzip's limit
#: is about 1032), plus a little, before its declared shape is taken as a crafted header
_MAX_H5_RATIO = 1100
_H5_SLACK_BYTES = 2**20


class ReaderError(ValueError):
    """A file is not in the expected format; the message names the file, the field and the fix."""


class ReaderOptionError(ReaderError, OptionError):
    """A ReaderError whose fix is a setting, named in the caller's words (see :class:`OptionError`)."""


def check_image_shape(shape: Sequence[Any], source: str | os.PathLike, field: str) -> tuple[int, int]:
    """``shape`` as (Y, X) after checking it is a sane image size; raises ReaderError naming the field."""
    try:
        ny, nx = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ReaderError(f"{source}: '{field}' is {tuple(shape)!r}, not an image size (Y, X)") from None
    if not (1 <= ny <= MAX_IMAGE_SIDE and 1 <= nx <= MAX_IMAGE_SIDE and ny * nx <= MAX_IMAGE_PIXELS):
        raise ReaderError(
            f"{source}: '{field}' says the image is {ny} x {nx} pixels, outside 1..{MAX_IMAGE_SIDE} per side "
            f"and {MAX_IMAGE_PIXELS} pixels in all; the file is damaged or was edited")
    return ny, nx


def read_h5_dataset(ds: Any, source: str | os.PathLike, dtype: Any = None) -> np.ndarray:
    """All of an HDF5 dataset, after checking its declared size against the bytes it stores.

    HDF5 allocates a dataset's declared shape when it is read, even where nothing was written
    (the fill value); a shape far larger than the stored (compressed) data is refused.
    """
    try:
        nbytes = int(ds.size) * int(ds.dtype.itemsize)
        stored = int(ds.id.get_storage_size())
    except (AttributeError, TypeError, ValueError):
        nbytes, stored = 0, 0
    if nbytes > _MAX_H5_RATIO * stored + _H5_SLACK_BYTES:
        raise ReaderError(
            f"{source}: dataset '{getattr(ds, 'name', '?')}' declares shape {tuple(ds.shape)} ({nbytes} bytes) "
            f"but stores only {stored} bytes; the file is damaged or was edited")
    arr = ds[()]
    return np.asarray(arr) if dtype is None else np.asarray(arr, dtype=dtype)


def require_h5py(path: str | os.PathLike | None = None) -> Any:
    """Import h5py or raise ImportError naming the pip extra."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is installed in the test environment
        where = f" to read {path}" if path is not None else ""
        raise ImportError(
            f"h5py is needed{where}; install it with `pip install napari-sbtt[hdf5]`"
        ) from None
    return h5py


def open_hdf5(path: str | os.PathLike, hint: str = "") -> tuple[Any, Any]:
    """``(h5py, file)``: the HDF5 file at ``path`` open for reading (use it in a ``with``).

    A file that is not HDF5 raises ReaderError naming it, followed by ``hint`` (what to pass).
    """
    h5py = require_h5py(path)
    try:
        return h5py, h5py.File(path, "r")
    except OSError as e:
        raise ReaderError(f"{path} is not an HDF5 file ({e}){hint}") from None


def require_pynwb(path: str | os.PathLike | None = None) -> Any:
    """Import pynwb or raise ImportError naming the pip extra."""
    try:
        import pynwb
    except ImportError:
        where = f" to read {path}" if path is not None else ""
        raise ImportError(
            f"pynwb is needed{where}; install it with `pip install napari-sbtt[nwb]`"
        ) from None
    return pynwb


def labels_from_weighted_pixels(
    ypix: Sequence[np.ndarray],
    xpix: Sequence[np.ndarray],
    weights: Sequence[np.ndarray] | None,
    shape: tuple[int, int],
    *,
    source: str | os.PathLike,
    field: str,
    roi_names: Sequence[Any] | None = None,
) -> np.ndarray:
    """Paint ROIs given as pixel lists into a labels image; overlaps go to the larger weight.

    Parameters
    ----------
    ypix, xpix
        Per ROI, the integer row and column of each of its pixels.
    weights
        Per ROI, the weight of each pixel (same length as its ``ypix``), or None
        for equal weights.
    shape
        (Y, X) of the image.
    source, field
        File and field the pixels came from, for error messages.
    roi_names
        How to name ROI ``k`` in error messages (e.g. the source's own index);
        defaults to ``k``.

    Returns
    -------
    labels : int32 (Y, X)
        0 = background, ``k + 1`` = ROI ``k``. A pixel claimed by several ROIs
        goes to the one with the largest weight there; ties go to the ROI that
        comes first. A ROI can therefore lose all its pixels (it then does not
        appear in ``labels``).

    Raises
    ------
    ReaderError
        When a pixel lies outside ``shape`` (naming the ROI, the file and the field).
    """
    ny, nx = check_image_shape(shape, source, field)
    flat_parts, w_parts, id_parts = [], [], []
    for k, (yy, xx) in enumerate(zip(ypix, xpix, strict=False)):
        name = k if roi_names is None else roi_names[k]
        yy = np.asarray(yy).astype(np.int64, copy=False).ravel()
        xx = np.asarray(xx).astype(np.int64, copy=False).ravel()
        if yy.shape != xx.shape:
            raise ReaderError(
                f"{source}: ROI {name} in '{field}' has {yy.size} row indices but {xx.size} column "
                "indices; the file is damaged, re-export it"
            )
        if yy.size and (yy.min() < 0 or yy.max() >= ny or xx.min() < 0 or xx.max() >= nx):
            raise ReaderError(
                f"{source}: ROI {name} in '{field}' has pixels outside the {ny} x {nx} image "
                f"(rows {int(yy.min())}..{int(yy.max())}, columns {int(xx.min())}..{int(xx.max())}); "
                "the segmentation does not belong to this image size - check that the ROI file "
                "and the movie/ops come from the same recording"
            )
        if weights is None:
            ww = np.ones(yy.size)
        else:
            ww = np.asarray(weights[k], dtype=float).ravel()
            if ww.size != yy.size:
                raise ReaderError(
                    f"{source}: ROI {name} in '{field}' has {yy.size} pixels but {ww.size} weights; "
                    "the file is damaged, re-export it"
                )
        flat_parts.append(yy * nx + xx)
        w_parts.append(np.nan_to_num(ww, nan=-np.inf))
        id_parts.append(np.full(yy.size, k + 1, dtype=np.int64))
    labels = np.zeros(ny * nx, dtype=np.int32)
    if not flat_parts:
        return labels.reshape(ny, nx)
    flat = np.concatenate(flat_parts)
    w = np.concatenate(w_parts)
    ids = np.concatenate(id_parts)
    if flat.size == 0:
        return labels.reshape(ny, nx)
    # sort by pixel, then by descending weight, then by ROI id: the first entry per pixel wins
    order = np.lexsort((ids, -w, flat))
    flat, ids = flat[order], ids[order]
    first = np.ones(flat.size, dtype=bool)
    first[1:] = flat[1:] != flat[:-1]
    labels[flat[first]] = ids[first]
    return labels.reshape(ny, nx)


def as_path(path: str | os.PathLike) -> Path:
    """``path`` as an expanded Path."""
    return Path(os.fspath(path)).expanduser()
