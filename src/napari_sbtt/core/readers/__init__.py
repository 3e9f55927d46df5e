"""File readers: TIFF movies (with ScanImage timing), suite2p, CaImAn, NWB and plain traces.

Numpy-only modules (tifffile for TIFF; h5py and pynwb imported lazily inside
the functions that need them). :func:`detect_format` tells which reader fits
a path and never raises, so the napari reader can decline unrelated files.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._common import ReaderError
from .caiman import CaimanData, read_caiman
from .nwb import NWBData, NWBMovie, read_nwb
from .suite2p import Suite2pData, find_suite2p_plane, open_suite2p_binary, read_suite2p
from .tiff import (
    MovieInfo,
    TiffPageStack,
    open_movie,
    parse_scanimage_text,
    read_movie_info,
    scan_pattern_from_tiff,
)
from .traces import read_traces

__all__ = [
    "ReaderError",
    "detect_format",
    "guess_format",
    "MovieInfo",
    "TiffPageStack",
    "open_movie",
    "read_movie_info",
    "scan_pattern_from_tiff",
    "parse_scanimage_text",
    "Suite2pData",
    "read_suite2p",
    "find_suite2p_plane",
    "open_suite2p_binary",
    "CaimanData",
    "read_caiman",
    "NWBData",
    "NWBMovie",
    "read_nwb",
    "read_traces",
]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _head(p: Path, n: int = 8) -> bytes:
    with open(p, "rb") as fh:
        return fh.read(n)


def _hdf5_kind(p: Path) -> str | None:
    try:
        import h5py
    except ImportError:
        return "nwb" if p.suffix.lower() == ".nwb" else None
    with h5py.File(p, "r") as f:
        attrs = f.attrs
        if "nwb_version" in attrs or attrs.get("neurodata_type") in ("NWBFile", b"NWBFile"):
            return "nwb"
        if "estimates" in f and isinstance(f["estimates"], h5py.Group):
            return "caiman"  # CaImAn's layout; the reader explains what is missing (e.g. estimates/A)
        found = []

        def visit(name: str, obj: object) -> bool | None:
            if isinstance(obj, h5py.Dataset) and obj.ndim in (1, 2) and obj.dtype.kind in "biuf" and obj.size > 1:
                found.append(name)
                return True
            return None

        f.visititems(visit)
        return "traces" if found else None


def _npy_is_numeric_traces(p: Path) -> bool:
    import numpy as np

    with open(p, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return dtype.kind in "biuf" and len(shape) in (1, 2) and int(np.prod(shape)) > 0


def _text_is_numeric_traces(p: Path) -> bool:
    from .traces import is_numeric_token, sniff_delimiter

    with open(p, encoding="utf-8", errors="strict") as fh:
        head = fh.read(4096)
    lines = [ln for ln in head.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(head) == 4096 and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    if not lines:
        return False
    delim = sniff_delimiter(lines[0])
    split = (lambda s: s.split(delim)) if delim is not None else (lambda s: s.split())
    data = lines[1:] if not all(is_numeric_token(t) for t in split(lines[0])) else lines
    return bool(data) and all(all(is_numeric_token(t) for t in split(ln)) for ln in data[:20])


def guess_format(path: str | os.PathLike) -> str | None:
    """The reader that should explain why ``path`` cannot be read, when :func:`detect_format` says None.

    Detection declines files it cannot recognise cheaply; the readers say precisely what is wrong
    (a cell that is not a number, a pickled object array, a file that is not a TIFF). This picks
    the reader by the file name: ``.tif``/``.tiff`` -> "tiff", ``.nwb`` -> "nwb", ``.npy``/``.npz``/
    ``.csv``/``.tsv``/``.txt``/``.h5``/``.hdf5`` -> "traces", a folder holding suite2p files ->
    "suite2p"; None otherwise. Never raises.
    """
    try:
        p = Path(os.fspath(path)).expanduser()
        if p.is_dir():
            names = {q.name for q in p.iterdir()}
            hints = {"suite2p", "stat.npy", "F.npy", "ops.npy", "iscell.npy", "db.npy"}
            return "suite2p" if names & hints or any(n.startswith("plane") for n in names) else None
        suffix = p.suffix.lower()
        if suffix in (".tif", ".tiff"):
            return "tiff"
        if suffix == ".nwb":
            return "nwb"
        if suffix in (".npy", ".npz", ".csv", ".tsv", ".txt", ".h5", ".hdf5"):
            return "traces"
        return None
    except Exception:  # noqa: BLE001 - like detect_format, never raises
        return None


def detect_format(path: str | os.PathLike) -> str | None:
    """Which napari-sbtt reader fits ``path``; None for anything else. Never raises.

    Returns
    -------
    ``"tiff"`` (a TIFF/BigTIFF file, by its magic bytes), ``"suite2p"`` (a
    suite2p plane folder, a folder holding exactly one plane, or the
    ``stat.npy`` inside one), ``"caiman"`` (HDF5 with ``estimates/A``),
    ``"nwb"`` (HDF5 with an ``nwb_version`` attribute), ``"traces"`` (a
    numeric .npy/.npz/.csv/.tsv/.txt, or another HDF5 file with a 1-D/2-D
    numeric dataset) or None.
    """
    try:
        p = Path(os.fspath(path)).expanduser()
        if p.is_dir():
            return "suite2p" if find_suite2p_plane(p) is not None else None
        if not p.is_file():
            return None
        head = _head(p)
        if head[:4] in _TIFF_MAGIC:
            return "tiff"
        if head[:8] == _HDF5_MAGIC:
            return _hdf5_kind(p)
        suffix = p.suffix.lower()
        if suffix == ".npy":
            if p.name == "stat.npy" and find_suite2p_plane(p.parent) is not None:
                return "suite2p"
            return "traces" if _npy_is_numeric_traces(p) else None
        if suffix == ".npz":
            return "traces" if head[:4] == b"PK\x03\x04" else None
        if suffix in (".csv", ".tsv", ".txt"):
            return "traces" if _text_is_numeric_traces(p) else None
        return None
    except Exception:  # noqa: BLE001 - detection must never raise
        return None
