"""Load torch's big shared libraries without holding the GIL, so napari keeps drawing meanwhile.

``import torch`` spends about 0.3 s (on a busy 2-core machine) in the ``dlopen`` of
``libtorch_cpu``: relocations and C++ static initialisers. Python's import machinery holds the
GIL through that call, so even when the import runs in a worker thread the GUI thread cannot
run and the viewer freezes (measured: 250-550 ms worst Qt event-loop delay on the first fit).

Calling the C library's ``dlopen`` through ctypes releases the GIL for the duration of the
call (ctypes does so for every foreign call of a ``CDLL``). Done first in the worker thread,
the libraries are then already mapped and initialised when ``import torch`` asks for them,
and the import's remaining work is Python code that yields the GIL every switch interval.

Only the libraries without Python in them are preloaded (``libc10``, ``libtorch_cpu``,
``libtorch``, and ``libtorch_cuda`` when present); they are opened ``RTLD_LOCAL``, as torch's
own import would open them, so symbol visibility is unchanged. Everything here is best effort:
on another platform or layout nothing is loaded and torch imports as usual.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path

__all__ = ["torch_library_paths", "preload_torch_libraries"]

#: torch's shared libraries that hold no Python code, in dependency order
_LIBRARIES = ("libc10", "libtorch_cpu", "libc10_cuda", "libtorch_cuda", "libtorch")
_DONE: list[str] = []


def torch_library_paths() -> list[Path]:
    """The preloadable libraries of the installed torch, found without importing it."""
    if sys.platform.startswith("linux"):
        suffix = ".so"
    elif sys.platform == "darwin":
        suffix = ".dylib"
    else:
        return []
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.origin:
        return []
    lib = Path(spec.origin).parent / "lib"
    return [lib / f"{name}{suffix}" for name in _LIBRARIES if (lib / f"{name}{suffix}").is_file()]


def preload_torch_libraries() -> list[str]:
    """dlopen torch's core libraries with the GIL released; return the names loaded.

    Call it from a worker thread before the first ``import torch``. It does nothing once torch
    is imported or after a first call, and never raises.
    """
    if "torch" in sys.modules or _DONE:
        return list(_DONE)
    try:
        libc = ctypes.CDLL(None)
        dlopen = libc.dlopen
    except (OSError, AttributeError):
        return []
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    mode = os.RTLD_NOW | os.RTLD_LOCAL
    for path in torch_library_paths():
        try:
            handle = dlopen(os.fsencode(path), mode)  # a foreign call: the GIL is released
        except Exception:  # noqa: BLE001 - best effort; torch's own import reports real problems
            break
        if not handle:
            break
        _DONE.append(path.name)
    return list(_DONE)
