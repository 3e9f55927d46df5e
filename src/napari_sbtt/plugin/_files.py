"""Torch-free recognition of napari-sbtt files: model checkpoints and result folders."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

__all__ = ["checkpoint_info", "is_checkpoint", "is_result_dir", "LABELS_FILE"]

#: ROI labels saved beside a result by the plugin, so a result folder reopens as layers
LABELS_FILE = "labels.npy"
_MAX_HEADER = 64 * 1024 * 1024


def checkpoint_info(path: str | os.PathLike) -> dict[str, Any] | None:
    """The napari-sbtt metadata of a ``.safetensors`` checkpoint, or None if it is not one.

    Reads only the safetensors header (8-byte little-endian length + JSON), so it needs
    neither torch nor safetensors and never raises.
    """
    try:
        p = Path(os.fspath(path))
        if not p.is_file():
            return None
        with open(p, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                return None
            (n,) = struct.unpack("<Q", head)
            if not 2 <= n <= _MAX_HEADER:
                return None
            header = json.loads(fh.read(n).decode("utf-8"))
        meta = header.get("__metadata__") or {}
        info = json.loads(meta["napari_sbtt"])
        if not isinstance(info, dict) or info.get("format") != "napari-sbtt-model":
            return None
        return info
    except Exception:  # noqa: BLE001 - recognition never raises
        return None


def is_checkpoint(path: str | os.PathLike) -> bool:
    return checkpoint_info(path) is not None


def is_result_dir(path: str | os.PathLike) -> bool:
    """True for a folder written by ``SBTTResult.save`` (result.json + arrays.npz). Never raises."""
    try:
        from ..api import is_result_dir as _is_result_dir

        return bool(_is_result_dir(path))
    except Exception:  # noqa: BLE001
        return False
