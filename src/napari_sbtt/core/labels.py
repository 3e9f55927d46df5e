"""ROI labels images: ROI ids mapped to columns without tables sized by the largest id.

ROI ids need not be small or contiguous (a labels image may use id 2**40); anything that looks
ids up goes through :func:`label_index`, whose memory is at most a few integers per pixel,
never one entry per possible id.
"""

from __future__ import annotations

import numpy as np

__all__ = ["label_index"]


def label_index(labels: np.ndarray, roi_ids: np.ndarray) -> np.ndarray:
    """Integer (Y, X): ``k + 1`` where a pixel belongs to ROI ``roi_ids[k]``, 0 elsewhere.

    Pixels whose label is 0 or not in ``roi_ids`` get 0. An id listed twice maps to its last
    position (as assigning ``table[roi_ids] = columns`` would). The result is int32 (int64 for
    more than 2**31 - 2 ROIs). Ids up to the number of pixels use a lookup table of that size;
    larger ids a sorted search, so memory never grows with the largest id.
    """
    labels = np.asarray(labels)
    ids = np.asarray(roi_ids).astype(np.int64, copy=False).ravel()
    dtype = np.int32 if ids.size < 2**31 - 1 else np.int64
    if ids.size == 0 or labels.size == 0:
        return np.zeros(labels.shape, dtype=dtype)
    lo = min(int(labels.min()), int(ids.min()))
    top = max(int(labels.max()), int(ids.max()))
    if lo >= 0 and top <= max(labels.size, 4096):
        table = np.zeros(top + 1, dtype=dtype)
        table[ids] = np.arange(1, ids.size + 1, dtype=dtype)
        return table[labels]
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    pos = np.searchsorted(sorted_ids, labels, side="right") - 1
    np.clip(pos, 0, ids.size - 1, out=pos)
    hit = sorted_ids[pos] == labels  # pos = 0 for labels below every id: hit only if equal
    return np.where(hit, (order + 1).astype(dtype)[pos], 0).astype(dtype, copy=False)
