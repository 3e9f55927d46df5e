"""Plain trace files (.npy, .npz, .csv/.tsv/.txt, .h5/.hdf5): a (T, N) float array, NaN for missing."""

from __future__ import annotations

import os
import re
import zipfile
from typing import Any

import numpy as np

from ._common import ReaderError, ReaderOptionError, as_path, open_hdf5, read_h5_dataset
from .npy import load_npy, load_npz

__all__ = ["read_traces", "is_numeric_token", "sniff_delimiter", "ORIENTATIONS", "TRACE_SUFFIXES"]

ORIENTATIONS = ("auto", "tn", "nt")
TRACE_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".txt", ".h5", ".hdf5")
_MISSING = {"", "nan", "na", "n/a", "none", "null", "-"}
_NUMBER = re.compile(r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity)$", re.IGNORECASE)


def is_numeric_token(tok: str) -> bool:
    """True for a number (or a missing-value word such as "nan", "NA", "") in a text table cell."""
    t = tok.strip().strip('"').strip("'")
    return t.lower() in _MISSING or bool(_NUMBER.match(t))


def sniff_delimiter(line: str) -> str | None:
    """The column delimiter of a text table line: ",", tab or ";", or None for whitespace."""
    for d in (",", "\t", ";"):
        if d in line:
            return d
    return None  # whitespace


def _read_text(path: Any) -> np.ndarray:
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = [ln for ln in fh.read().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ReaderError(f"{path}: the file holds no numbers; expected one row per frame or per ROI")
    delim = sniff_delimiter(lines[0])

    def split(ln: str) -> list[str]:
        return ln.split(delim) if delim is not None else ln.split()

    header = not all(is_numeric_token(t) for t in split(lines[0]))
    body = lines[1:] if header else lines
    rows = []
    width = None
    for i, ln in enumerate(body):
        toks = split(ln)
        if width is None:
            width = len(toks)
        if len(toks) != width:
            raise ReaderError(
                f"{path}: line {i + 1 + header} has {len(toks)} values but the first data line has "
                f"{width}; every row needs the same number of columns (leave a cell empty or write NaN "
                "for a missing value)"
            )
        vals = []
        for t in toks:
            s = t.strip().strip('"').strip("'")
            if s.lower() in _MISSING:
                vals.append(np.nan)
            elif _NUMBER.match(s):
                vals.append(float(s))
            else:
                raise ReaderError(
                    f"{path}: line {i + 1 + header} holds {s!r}, which is not a number; traces files "
                    "must be numbers (NaN or an empty cell for a missing value) with at most one header line"
                )
        rows.append(vals)
    if not rows:
        raise ReaderError(f"{path}: only a header line, no data rows")
    return np.asarray(rows, dtype=float)


def _read_h5(path: Any, dataset: str | None) -> np.ndarray:
    h5py, f = open_hdf5(path)
    with f:
        if dataset is not None:
            if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
                raise ReaderOptionError(f"{path}: no dataset {dataset!r}; pass {{dataset}} with one of "
                                        f"{_h5_candidates(f, h5py)}", dataset="dataset=NAME")
            return read_h5_dataset(f[dataset], path)
        cands = _h5_candidates(f, h5py)
        if len(cands) == 1:
            return read_h5_dataset(f[cands[0]], path)
        if not cands:
            raise ReaderError(f"{path}: no 1-D or 2-D numeric dataset to read traces from")
        raise ReaderOptionError(f"{path}: several datasets could hold traces ({', '.join(cands)}); pass "
                                "{dataset}", dataset="dataset=NAME")


def _h5_candidates(f: Any, h5py: Any) -> list[str]:
    out: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim in (1, 2) and obj.dtype.kind in "biuf" and obj.size > 1:
            out.append(name)

    f.visititems(visit)
    return out


def read_traces(
    path: str | os.PathLike,
    *,
    orientation: str = "auto",
    dataset: str | None = None,
    n_frames: int | None = None,
) -> np.ndarray:
    """Read ROI traces from a file into a float64 (T, N) array, NaN where a value is missing.

    Parameters
    ----------
    path
        ``.npy`` (a numeric array; pickled object arrays are refused), ``.npz``
        (``dataset`` names the array, or the only one), ``.csv`` / ``.tsv`` /
        ``.txt`` (comma, tab, semicolon or whitespace separated; an optional
        header line; empty cells, ``NaN``, ``NA`` become NaN) or ``.h5`` /
        ``.hdf5`` (``dataset`` names the dataset, or the only 1-D/2-D numeric one).
    orientation
        ``"tn"``: rows are frames (T, N); ``"nt"``: rows are ROIs (N, T);
        ``"auto"``: the axis that equals ``n_frames`` when given, else the longer
        axis is time (recordings have more frames than ROIs). A square array is
        ambiguous in ``"auto"`` mode without ``n_frames``.
    dataset
        Dataset / array name for HDF5 and .npz files.
    n_frames
        The movie's frame count T, when known: used by ``"auto"`` and checked.

    Returns
    -------
    float64 (T, N). A 1-D file is one ROI, (T, 1).

    Raises
    ------
    ReaderError
        Unreadable or non-numeric content, ragged rows, an ambiguous
        orientation, or traces whose length disagrees with ``n_frames``.
    """
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    p = as_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"traces file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        arr = load_npy(p)  # its errors name the file and the fix (object arrays are refused)
    elif suffix == ".npz":
        try:
            with zipfile.ZipFile(p) as zf:
                names = [n[: -len(".npy")] if n.endswith(".npy") else n for n in zf.namelist()]
        except (zipfile.BadZipFile, OSError) as e:
            raise ReaderError(f"{p}: not a readable .npz of numeric arrays ({e})") from None
        if dataset is None:
            if len(names) != 1:
                raise ReaderOptionError(f"{p}: holds several arrays ({', '.join(names)}); pass {{dataset}}",
                                        dataset="dataset=NAME")
            dataset = names[0]
        if dataset not in names:
            raise ReaderOptionError(f"{p}: no array {dataset!r} (has {', '.join(names)}); pass {{dataset}}",
                                    dataset="dataset=NAME")
        try:
            arr = load_npz(p, [dataset])[dataset]
        except ValueError as e:
            raise ReaderError(f"{p}: not a readable .npz of numeric arrays ({e})") from None
    elif suffix in (".csv", ".tsv", ".txt"):
        arr = _read_text(p)
    elif suffix in (".h5", ".hdf5"):
        arr = _read_h5(p, dataset)
    else:
        raise ReaderError(
            f"{p}: unknown traces file type {suffix!r}; use one of {', '.join(TRACE_SUFFIXES)}"
        )
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise ReaderError(f"{p}: traces have dtype {arr.dtype}; expected numbers")
    arr = arr.astype(np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ReaderError(f"{p}: traces have shape {arr.shape}; expected 2-D (T, N) or (N, T)")
    a, b = arr.shape
    if orientation == "nt":
        arr = arr.T
    elif orientation == "auto":
        if n_frames is not None:
            if a == n_frames:
                pass
            elif b == n_frames:
                arr = arr.T
            else:
                raise ReaderError(
                    f"{p}: traces have shape {arr.shape} but the movie has {n_frames} frames; neither "
                    "axis matches - the traces belong to another recording, or were cut"
                )
        elif a == b and a > 1:
            raise ReaderError(
                f"{p}: traces are square ({a} x {b}), so it is ambiguous which axis is time; pass "
                "orientation='tn' (rows are frames) or orientation='nt' (rows are ROIs)"
            )
        elif a < b:
            arr = arr.T
    if n_frames is not None and arr.shape[0] != n_frames:
        raise ReaderError(
            f"{p}: traces have {arr.shape[0]} frames (orientation {orientation!r}) but the movie has "
            f"{n_frames}; check the orientation or that the traces belong to this recording"
        )
    return np.ascontiguousarray(arr)
