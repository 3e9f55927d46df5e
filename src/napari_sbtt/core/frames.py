"""Length-prefixed pickle frames between two processes of this package (never a user's file).

Used between a process and a child it started itself from the same installation
(:mod:`napari_sbtt.isolated` and its ``python -m napari_sbtt._child``; an ensemble's members,
:mod:`napari_sbtt.model.member_process`): a frame is an 8-byte little-endian length, then a
pickle of that many bytes. Nothing read from a user's file ever goes through here: unpickling
runs code, so a stream is only ever one this package's own child or parent wrote.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["write_frame", "read_frame", "read_exact", "STOP_BYTE", "GO_ON_BYTE", "child_env", "child_streams", "watch_stdin"]

_HEADER = struct.Struct("<Q")
#: the single byte a parent writes to a child's stdin to ask its fit to stop after this epoch
STOP_BYTE = b"S"
#: the answer to an ensemble member's report that lets it go on (model.member_process)
GO_ON_BYTE = b"C"


def write_frame(stream: IO[bytes], obj: Any) -> None:
    """Pickle ``obj`` and write it as one length-prefixed frame; flushes."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def read_exact(stream: IO[bytes], n: int) -> bytes | None:
    """Exactly ``n`` bytes from ``stream``, or None when it ends first."""
    chunks = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> tuple[bool, Any]:
    """Read one frame; ``(False, None)`` at end of stream."""
    head = read_exact(stream, _HEADER.size)
    if head is None:
        return False, None
    (n,) = _HEADER.unpack(head)
    data = read_exact(stream, n)
    if data is None:
        return False, None
    return True, pickle.loads(data)  # noqa: S301 - our own parent or child process, see the module notes


# ----------------------------------------------------------------------------- starting a child

def child_env(**settings: str) -> dict[str, str]:
    """The environment of a ``python -m napari_sbtt...`` child: the caller's, with ``settings``
    set and this package importable even when it came from ``sys.path`` rather than an
    installation (its folder first on ``PYTHONPATH``)."""
    env = {**os.environ, **settings}
    root = str(Path(__file__).resolve().parents[2])
    parts = [root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    return env


# ----------------------------------------------------------------------------- a child's side

def child_streams() -> tuple[IO[bytes], IO[bytes]]:
    """In a child process: (the stream to answer on, stdin). The protocol owns the original
    stdout; file descriptor 1 is pointed at stderr, so that a stray print cannot corrupt it."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return out, sys.stdin.buffer


def watch_stdin(stdin: IO[bytes], stop: Callable[[], None]) -> None:
    """In a child process (run it in a daemon thread): call ``stop()`` on every :data:`STOP_BYTE`;
    end the process at once (exit code 3) when stdin ends: the parent is gone or no longer
    wants an answer."""
    while True:
        b = stdin.read(1)
        if not b:
            os._exit(3)
        if b == STOP_BYTE:
            stop()
