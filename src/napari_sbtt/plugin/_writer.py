"""Writer: save an activity layer's result as a napari-sbtt result folder (``*.sbtt``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.activity import ActivityMovie
from ._files import LABELS_FILE
from ._layers import RESULT_KEY

__all__ = ["write_result", "save_result_with_labels"]


def save_result_with_labels(path: str | os.PathLike, result: Any, labels: np.ndarray | None,
                            *, overwrite: bool = False) -> Path:
    """``result.save(path)`` plus the ROI labels (``labels.npy``) so the folder reopens as layers."""
    dest = Path(path)
    result.save(dest, overwrite=overwrite)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 2:
            small = labels.size == 0 or (labels.min() >= 0 and labels.max() < 2**31)
            np.save(dest / LABELS_FILE, labels.astype(np.int32 if small else np.int64), allow_pickle=False)
    return dest


def write_result(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer: the layer must be a napari-sbtt activity layer.

    Returns the written path, or an empty list (napari then reports that nothing was written)
    when the layer holds no result.
    """
    result = (meta.get("metadata") or {}).get(RESULT_KEY)
    if result is None:
        return []
    labels = data.labels if isinstance(data, ActivityMovie) else None
    dest = Path(path)
    if dest.suffix != ".sbtt":
        dest = dest.with_name(dest.name + ".sbtt")
    save_result_with_labels(dest, result, labels)
    return [str(dest)]
