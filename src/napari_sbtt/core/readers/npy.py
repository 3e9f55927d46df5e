""".npy and .npz files from other people: header sizes checked before anything is allocated.

``np.load`` allocates the array its header declares before reading the data, so a few bytes
of crafted header can ask for terabytes. :func:`load_npy` and :func:`load_npz` first compare
the declared size with the bytes the file (or the zip member) holds, and never unpickle with
``np.load``: object arrays are refused, or (``objects=True``, for the pickled files suite2p
writes) rebuilt by :func:`~napari_sbtt.core.readers.safe_pickle.restricted_load`.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from ._common import ReaderError, as_path
from .safe_pickle import restricted_load

__all__ = ["NpyHeader", "read_npy_header", "load_npy", "load_npz"]

@dataclass(frozen=True)
class NpyHeader:
    """What a .npy header declares: ``shape``, ``fortran_order``, ``dtype``; ``offset`` = data start."""

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    offset: int

    @property
    def nbytes(self) -> int:
        """Bytes of data the header declares (0 for object arrays, whose size is in their pickle)."""
        return 0 if self.dtype.hasobject else math.prod(self.shape) * self.dtype.itemsize


def read_npy_header(fh: IO[bytes], source: str | os.PathLike = "the file") -> NpyHeader:
    """Read the header of a .npy stream positioned at its start; the stream is left at the data.

    Raises ReaderError naming ``source`` when it is not a .npy file.
    """
    start = fh.tell() if fh.seekable() else 0
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:  # 2.0 and 3.0 share the 4-byte header length (3.0 only allows UTF-8 field names)
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    except (ValueError, OSError, EOFError) as e:
        raise ReaderError(f"{source}: not a readable .npy file ({e}); save the array with np.save") from None
    offset = (fh.tell() - start) if fh.seekable() else 0
    return NpyHeader(tuple(int(s) for s in shape), bool(fortran), np.dtype(dtype), offset)


def _check_size(h: NpyHeader, available: int, source: str | os.PathLike) -> None:
    if h.nbytes > available:
        raise ReaderError(
            f"{source}: the header declares a {h.dtype} array of shape {h.shape} ({h.nbytes} bytes) but "
            f"the file holds only {max(available, 0)} bytes of data; the file is truncated or damaged - "
            "save it again with np.save")


def load_npy(path: str | os.PathLike, *, mmap: bool = False, objects: bool = False) -> Any:
    """Load a .npy file after checking its header against its size.

    Parameters
    ----------
    path
        The file.
    mmap
        Return a read-only memory map instead of reading the data.
    objects
        Allow an object array (a pickle after the header), rebuilt by the restricted unpickler;
        otherwise object arrays are refused.

    Raises
    ------
    ReaderError
        Not a .npy file, a header that declares more data than the file holds, an object array
        without ``objects``, or a pickle that asks for more than plain data
        (:class:`~napari_sbtt.core.readers.safe_pickle.UnsafePickleError`).
    """
    p = as_path(path)
    size = p.stat().st_size
    with open(p, "rb") as fh:
        h = read_npy_header(fh, p)
        if h.dtype.hasobject:
            if not objects:
                raise ReaderError(
                    f"{p}: holds pickled Python objects (dtype {h.dtype}), which napari-sbtt does not read "
                    "here; save plain numbers with np.save(path, np.asarray(array, dtype=float))")
            return restricted_load(fh, p)
        _check_size(h, size - h.offset, p)
    try:
        return np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ReaderError(f"{p}: not a readable .npy file ({e}); save the array with np.save") from None


def load_npz(path: str | os.PathLike, names: Any = None) -> dict[str, np.ndarray]:
    """The arrays of a .npz file (only ``names`` when given), each header checked before reading.

    Raises ReaderError for a file that is not a .npz of plain arrays, an object array, or a
    member whose header declares more data than the archive member holds.
    """
    p = as_path(path)
    try:
        with zipfile.ZipFile(p) as zf:
            members = {i.filename[: -len(".npy")] if i.filename.endswith(".npy") else i.filename: i
                       for i in zf.infolist()}
            wanted = list(members) if names is None else [n for n in names if n in members]
            for name in wanted:
                info = members[name]
                with zf.open(info) as fh:
                    h = read_npy_header(fh, f"{p} (array {name!r})")
                    if h.dtype.hasobject:
                        raise ReaderError(f"{p}: array {name!r} holds pickled Python objects, which "
                                          "napari-sbtt does not read; save plain numbers")
                    _check_size(h, info.file_size - h.offset, f"{p} (array {name!r})")
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ReaderError(f"{p}: not a readable .npz file ({e})") from None
    try:
        with np.load(p, allow_pickle=False) as z:
            return {name: z[name] for name in wanted}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ReaderError(f"{p}: not a readable .npz file ({e})") from None
