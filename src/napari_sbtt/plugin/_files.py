"""Torch-free recognition of napari-sbtt files: model checkpoints and result folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["checkpoint_info", "is_result_dir", "LABELS_FILE"]

#: ROI labels saved beside a result by the plugin, so a result folder reopens as layers
LABELS_FILE = "labels.npy"


def checkpoint_info(path: str | os.PathLike) -> dict[str, Any] | None:
    """The napari-sbtt metadata of a ``.safetensors`` checkpoint, or None if it is not one.

    Reads only the safetensors header (:mod:`napari_sbtt.model.header`), so it needs neither
    torch nor safetensors and never raises.
    """
    from ..model.header import checkpoint_header_info

    try:
        if not Path(os.fspath(path)).is_file():
            return None
        return checkpoint_header_info(path)
    except Exception:  # noqa: BLE001 - recognition never raises
        return None


def is_result_dir(path: str | os.PathLike) -> bool:
    """True for a folder written by ``SBTTResult.save`` (result.json + arrays.npz). Never raises."""
    try:
        from ..api import is_result_dir as _is_result_dir

        return bool(_is_result_dir(path))
    except Exception:  # noqa: BLE001
        return False
