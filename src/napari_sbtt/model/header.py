"""Read a napari-sbtt checkpoint's metadata without torch or safetensors.

A ``.safetensors`` file starts with an 8-byte little-endian header length and a JSON header;
napari-sbtt keeps its own JSON document (see :mod:`.checkpoint`) under the header's
``__metadata__`` key ``napari_sbtt``. Reading only that is enough to recognise a checkpoint and
to check it against a recording (ROI count, likelihood) before anything heavy is imported.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

__all__ = ["checkpoint_header_info", "MAX_HEADER_BYTES"]

#: headers larger than this are not napari-sbtt checkpoints (ours are a few kB)
MAX_HEADER_BYTES = 64 * 1024 * 1024


def checkpoint_header_info(path: str | os.PathLike) -> dict[str, Any]:
    """The napari-sbtt metadata (a dict) of the checkpoint at ``path``.

    Raises OSError when the file cannot be read and ValueError (or KeyError / TypeError /
    UnicodeDecodeError from a damaged header) when it is not a napari-sbtt checkpoint.
    """
    with open(os.fspath(path), "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: too short for a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if not 2 <= n <= MAX_HEADER_BYTES:
            raise ValueError(f"{path}: not a safetensors header (length {n})")
        header = json.loads(fh.read(n).decode("utf-8"))
    info = json.loads(header["__metadata__"]["napari_sbtt"])
    if not isinstance(info, dict) or info.get("format") != "napari-sbtt-model":
        raise ValueError(f"{path}: not a napari-sbtt model checkpoint")
    return info
