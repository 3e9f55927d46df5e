"""A restricted unpickler for the pickled ``.npy`` files other programs write (suite2p).

suite2p saves ``stat.npy``, ``ops.npy``, ``db.npy``, ``settings.npy`` and ``reg_outputs.npy``
with ``np.save`` of an object array: a ``.npy`` header followed by a pickle. Loading that with
``np.load(..., allow_pickle=True)`` calls whatever function the pickle names, so a crafted file
runs code. :func:`restricted_load` rebuilds only:

- numpy arrays (numbers, strings, bytes, or object arrays of the values listed here), numpy
  dtypes and numpy scalars;
- dicts (also ``collections.OrderedDict``), lists, tuples, sets and frozensets;
- plain scalars: int, float, complex, bool, str, bytes, None, slices;
- ``datetime`` dates, times, datetimes, time deltas and time zones;
- file paths (``pathlib`` paths come back as *pure* paths: nothing touches the file system).

Any other name in the pickle is refused before it is called, with an :class:`UnsafePickleError`
that names the file. Array sizes are checked against the data the pickle carries before numpy
allocates anything, so a crafted shape cannot ask for terabytes.
"""

from __future__ import annotations

import collections
import datetime
import math
import os
import pathlib
import pickle
from typing import IO, Any, Callable

import numpy as np

from ._common import ReaderError

__all__ = ["UnsafePickleError", "RestrictedUnpickler", "restricted_load", "ALLOWED_GLOBALS"]


class UnsafePickleError(ReaderError):
    """A pickled file asks for something other than plain data (numpy arrays, dicts, lists...)."""


class _NdarrayToken:
    """Stands in for ``numpy.ndarray`` in a pickle: only the checked ``_reconstruct`` accepts it.

    The real class is never handed to the pickle, so ``ndarray(shape)`` cannot be called with a
    crafted shape.
    """

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayToken()
#: numpy's own helpers, reached through public objects (their module moved in numpy 2)
_RECONSTRUCT: Callable[..., Any] = np.empty(0).__reduce__()[0]  # type: ignore[index]
_SCALAR: Callable[..., Any] = np.float64(0).__reduce__()[0]  # type: ignore[index]
_OBJECT = np.dtype(object)


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                               for s in value):
        raise pickle.UnpicklingError(f"an array shape must be a tuple of sizes >= 0, got {value!r}")
    return value


class _CheckedArray(np.ndarray):
    """An ndarray whose unpickling state is checked against the data it carries (then made plain)."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("malformed numpy array state")
        shape, dtype, _fortran, raw = state[-4:]
        n = math.prod(_shape(shape))
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"a numpy array's dtype must be a dtype, got {type(dtype).__name__}")
        if dtype.hasobject:
            if dtype != _OBJECT:
                raise pickle.UnpicklingError(f"structured dtypes holding Python objects are not read ({dtype})")
            if not isinstance(raw, list) or len(raw) != n:
                raise pickle.UnpicklingError(
                    f"an object array of shape {shape} carries {len(raw) if isinstance(raw, list) else 'no'} "
                    "elements")
        elif not isinstance(raw, bytes) or len(raw) != n * dtype.itemsize:
            raise pickle.UnpicklingError(
                f"an array of shape {shape} and dtype {dtype} needs {n * dtype.itemsize} bytes but the "
                f"file carries {len(raw) if isinstance(raw, bytes) else 'none'}")
        super().__setstate__(state)


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` for plain arrays only, created empty (numpy pickles (0,))."""
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError(f"only plain numpy arrays are read, not {subtype!r}")
    if math.prod(_shape(shape)) > 1:
        raise pickle.UnpicklingError(f"an array is first created empty, not of shape {shape}")
    return _RECONSTRUCT(_CheckedArray, shape, dtype)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """``numpy.core.numeric._frombuffer`` (protocol-5 pickles): an array from exactly its bytes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or order not in ("C", "F"):
        raise pickle.UnpicklingError("malformed protocol-5 numpy array")
    data = memoryview(buf)
    if data.nbytes != math.prod(_shape(shape)) * dtype.itemsize:
        raise pickle.UnpicklingError(f"an array of shape {shape} and dtype {dtype} does not match its "
                                     f"{data.nbytes} bytes")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order=order)


def _scalar(dtype: Any, data: Any = None) -> Any:
    """``numpy.core.multiarray.scalar``: a numpy scalar from exactly its bytes (or an object)."""
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError(f"a numpy scalar needs a dtype, got {type(dtype).__name__}")
    if dtype.hasobject:
        if dtype != _OBJECT:
            raise pickle.UnpicklingError(f"structured scalars holding Python objects are not read ({dtype})")
        return data
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError(f"a {dtype} scalar needs {dtype.itemsize} bytes")
    return _SCALAR(dtype, data)


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype`` from its type string, as numpy pickles dtypes ('f8', False, True)."""
    if not isinstance(spec, str):
        raise pickle.UnpicklingError(f"a numpy dtype is pickled from its type string, got {type(spec).__name__}")
    return np.dtype(spec, align=bool(align), copy=bool(copy))


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles (numpy < 1.17) use it for bytes: latin-1 text only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only latin-1 text is encoded to bytes")
    return text.encode("latin-1")


def _bytes(*args: Any) -> bytes:
    """``bytes()`` as protocol-2 pickles write empty bytes; never ``bytes(n)`` (n zero bytes)."""
    if args and not (len(args) == 1 and isinstance(args[0], bytes)):
        raise pickle.UnpicklingError("bytes are only rebuilt from bytes")
    return bytes(*args)


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_PATH_MODULES = ("pathlib", "pathlib._local")

#: (module, name) -> what the pickle gets instead; nothing else is ever looked up
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): _reconstruct for m in _NUMPY_MODULES},
    **{(m, "scalar"): _scalar for m in _NUMPY_MODULES},
    **{(m, "_frombuffer"): _frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
    ("builtins", "bytes"): _bytes,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "date"): datetime.date,
    ("datetime", "time"): datetime.time,
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
    **{(m, n): pathlib.PurePosixPath for m in _PATH_MODULES for n in ("PosixPath", "PurePosixPath")},
    **{(m, n): pathlib.PureWindowsPath for m in _PATH_MODULES for n in ("WindowsPath", "PureWindowsPath")},
}


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only :data:`ALLOWED_GLOBALS`.

    ``source`` names the file in errors. Use :func:`restricted_load`, which also turns the
    checked arrays into plain ``numpy.ndarray`` objects.
    """

    def __init__(self, file: IO[bytes], source: str | os.PathLike = "the file") -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # Python 2 spelling, in protocol 0-2 pickles
            module = "builtins"
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refused to load '{module}.{name}' from this pickled file; napari-sbtt "
                "rebuilds only numpy arrays, dicts, lists and plain values from pickles, so that a file "
                "cannot run code. This file was not written by the program it claims to come from (or "
                "holds other objects): re-create it with that program"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: the pickle refers to external objects, which are not read")


def _plain(obj: Any, seen: set[int]) -> Any:
    """``obj`` with every checked array turned into a plain ndarray (containers updated in place)."""
    if isinstance(obj, _CheckedArray):
        arr = obj.view(np.ndarray)
        if arr.dtype == _OBJECT and id(obj) not in seen:
            seen.add(id(obj))
            flat = arr.reshape(-1, order="A") if arr.size else arr
            for i in range(flat.size):
                flat[i] = _plain(flat[i], seen)
        return arr
    if id(obj) in seen:
        return obj
    if isinstance(obj, list):
        seen.add(id(obj))
        for i, v in enumerate(obj):
            obj[i] = _plain(v, seen)
    elif isinstance(obj, dict):
        seen.add(id(obj))
        for k, v in obj.items():
            obj[k] = _plain(v, seen)
    elif isinstance(obj, tuple):
        seen.add(id(obj))
        items = tuple(_plain(v, seen) for v in obj)
        if any(a is not b for a, b in zip(items, obj, strict=True)):
            return items
    return obj


def restricted_load(file: IO[bytes], source: str | os.PathLike = "the file") -> Any:
    """Unpickle one object from ``file`` with :class:`RestrictedUnpickler`.

    Raises
    ------
    UnsafePickleError
        The pickle names anything outside :data:`ALLOWED_GLOBALS`.
    ReaderError
        A damaged or inconsistent pickle (an array whose shape disagrees with its data, nesting
        too deep, a truncated file); the message names ``source``.
    """
    try:
        obj = RestrictedUnpickler(file, source).load()
        return _plain(obj, set())
    except UnsafePickleError:
        raise
    except RecursionError:
        raise ReaderError(f"{source}: the pickled data are nested too deeply to be plain data") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OverflowError, MemoryError, UnicodeDecodeError) as e:
        raise ReaderError(f"{source}: damaged or unsupported pickled data ({type(e).__name__}: {e}); "
                          "re-create the file with the program that wrote it") from None
