"""Neuropil annuli around ROIs.

The neuropil signal of an ROI is the mean of the unlabelled pixels in a ring
around it. Its pixels are those whose Euclidean distance to the nearest pixel
of the ROI (pixel centres, in pixels) lies in ``(inner, outer]``, and that
belong to no ROI at all (label 0). ``inner`` leaves a gap so that the ROI's own
blurred edge does not leak into its neuropil estimate; with the defaults
(``inner=2``, ``outer=10``) the two pixels next to the ROI are skipped.

Correction follows suite2p: ``F_corr = F - coefficient * F_neu`` with a fixed
coefficient (0.7 is the usual choice), applied per sample.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .labels import label_index

__all__ = ["annulus_pixels", "DEFAULT_INNER", "DEFAULT_OUTER"]

#: default gap between an ROI and its annulus, pixels
DEFAULT_INNER = 2.0
#: default outer radius of the annulus, pixels from the ROI's nearest pixel
DEFAULT_OUTER = 10.0


def annulus_pixels(
    labels: np.ndarray,
    roi_ids: np.ndarray,
    *,
    inner: float = DEFAULT_INNER,
    outer: float = DEFAULT_OUTER,
) -> list[np.ndarray]:
    """Flat pixel indices (into a (Y, X) image, row-major) of each ROI's neuropil annulus.

    Parameters
    ----------
    labels
        Int (Y, X) labels image, 0 = background.
    roi_ids
        (N,) ROI ids whose annuli to compute.
    inner, outer
        Annulus radii in pixels, measured from the ROI's nearest pixel:
        a pixel is in the annulus when ``inner < distance <= outer`` and its
        label is 0 (pixels of every ROI are excluded, selected or not).

    Returns
    -------
    list of N sorted int64 arrays; an array is empty when no pixel qualifies.
    """
    if not (math.isfinite(inner) and inner >= 0):
        raise ValueError(f"neuropil_inner must be >= 0 pixels, got {inner}")
    if not (math.isfinite(outer) and outer > inner):
        raise ValueError(
            f"neuropil_outer ({outer}) must be larger than neuropil_inner ({inner}) (pixels)"
        )
    Y, X = labels.shape
    pad = int(math.ceil(outer)) + 1
    uniq, inv = np.unique(np.asarray(roi_ids, dtype=np.int64), return_inverse=True)
    # bounding boxes of the listed ROIs only (find_objects on the labels would make one entry per id
    # up to the largest, 2**40 of them for such an id)
    objects = ndimage.find_objects(label_index(labels, uniq), max_label=uniq.size)
    background = labels == 0
    out: list[np.ndarray] = []
    for k, rid in zip(inv.ravel(), roi_ids, strict=True):
        rid = int(rid)
        sl = objects[k]
        if sl is None:
            out.append(np.empty(0, dtype=np.int64))
            continue
        y0, y1 = max(sl[0].start - pad, 0), min(sl[0].stop + pad, Y)
        x0, x1 = max(sl[1].start - pad, 0), min(sl[1].stop + pad, X)
        crop = labels[y0:y1, x0:x1] == rid
        # distance of every pixel to the nearest ROI pixel
        dist = ndimage.distance_transform_edt(~crop)
        ring = (dist > inner) & (dist <= outer) & background[y0:y1, x0:x1]
        yy, xx = np.nonzero(ring)
        out.append(np.sort((yy + y0).astype(np.int64) * X + (xx + x0)))
    return out
