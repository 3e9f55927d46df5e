"""Placing samples on the fine time grid: each sample goes to the bin of its acquisition time.

:class:`GridAccumulator` is the one place where samples meet the grid, for movies and traces
alike; samples of an ROI that share a bin are averaged (values, times and neuropil alike).
"""

from __future__ import annotations

import math

import numpy as np

from .scan import FineGrid, ScanPattern

__all__ = ["GridAccumulator", "max_per_bin"]


class GridAccumulator:
    """Places per-sweep samples (values and times, (c, N), NaN = none) on the fine grid.

    Samples that share a bin are averaged (values, times, neuropil alike).
    The one place where samples meet the grid, for movies and traces alike.
    """

    def __init__(self, grid: FineGrid, n_rois: int, *, max_per_bin: int, with_neuropil: bool) -> None:
        self.grid = grid
        shape = (grid.n_bins, n_rois)
        self.values = np.zeros(shape, dtype=np.float32)
        self.times = np.zeros(shape, dtype=np.float64)
        self.neuropil = np.zeros(shape, dtype=np.float32) if with_neuropil else None
        self.count = np.zeros(shape, dtype=np.min_scalar_type(max(1, max_per_bin)))
        self.n_rois = n_rois
        self.samples_per_roi = np.zeros(n_rois, dtype=np.int64)

    def add(self, values: np.ndarray, times: np.ndarray, neuropil: np.ndarray | None = None) -> None:
        ok = np.isfinite(values) & np.isfinite(times)
        if not ok.any():
            return
        r, c = np.nonzero(ok)
        b = self.grid.index(times[r, c])
        flat = b * self.n_rois + c
        np.add.at(self.values.reshape(-1), flat, values[r, c].astype(np.float32))
        np.add.at(self.times.reshape(-1), flat, times[r, c])
        if self.neuropil is not None and neuropil is not None:
            np.add.at(self.neuropil.reshape(-1), flat, neuropil[r, c].astype(np.float32))
        np.add.at(self.count.reshape(-1), flat, 1)
        self.samples_per_roi += np.bincount(c, minlength=self.n_rois)

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        n = self.count
        empty = n == 0
        many = n > 1
        arrays = [self.values, self.times] + ([self.neuropil] if self.neuropil is not None else [])
        for a in arrays:
            if many.any():
                a[many] /= n[many]
            a[empty] = np.nan
        return self.values, self.times, self.neuropil


def max_per_bin(pattern: ScanPattern, grid: FineGrid) -> int:
    """Upper bound on the samples of one ROI that can share a fine bin (one per sweep)."""
    shortest = float(pattern.sweep_durations().min())
    return int(math.ceil(grid.bin_width / shortest)) + 1
