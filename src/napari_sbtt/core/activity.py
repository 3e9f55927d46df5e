"""Lazy (T, Y, X) views for display: per-ROI activity painted into the labels, scan masks,
and what a reduced scan would have recorded; plus per-ROI sampling summaries.

Everything here is numpy only. The array-likes expose ``shape``, ``dtype``, ``ndim`` and
``__getitem__`` so that napari (or any code that slices along T) can show them without ever
allocating the full ``T x Y x X`` volume: each requested frame is computed on demand.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .labels import label_index

__all__ = [
    "ActivityMovie",
    "RowMaskMovie",
    "MaskedMovie",
    "roi_rows",
    "roi_sample_rates",
    "roi_summary",
    "time_axis",
]


# --------------------------------------------------------------------------- indexing helpers
def _normalise_key(key: Any, ndim: int) -> tuple[Any, ...]:
    """Expand ``key`` to exactly ``ndim`` entries (Ellipsis and missing trailing axes -> slice)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is None for k in key):
        raise IndexError("np.newaxis is not supported by lazy napari-sbtt arrays")
    n_ell = sum(1 for k in key if k is Ellipsis)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if n_ell == 1:
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        fill = ndim - (len(key) - 1)
        key = key[:i] + (slice(None),) * fill + key[i + 1 :]
    if len(key) > ndim:
        raise IndexError(f"too many indices: array is {ndim}-dimensional, {len(key)} were indexed")
    return tuple(key) + (slice(None),) * (ndim - len(key))


def _axis_index(k: Any, n: int) -> tuple[np.ndarray | slice, bool]:
    """One axis's index as (slice or int array, dropped?); integers drop the axis."""
    if isinstance(k, slice):
        return k, False
    if isinstance(k, (int, np.integer)):
        i = int(k)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of bounds for an axis of size {n}")
        return np.array([i % n]), True
    arr = np.asarray(k)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(f"boolean index of shape {arr.shape} does not match an axis of size {n}")
        return np.flatnonzero(arr), False
    if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
        raise IndexError(f"only integers, slices, 1-D integer or boolean arrays are valid indices, got {k!r}")
    if arr.size and (arr.min() < -n or arr.max() >= n):
        raise IndexError(f"index out of bounds for an axis of size {n}")
    return arr % n, False


def _select(arr: np.ndarray, axis_keys: list[np.ndarray | slice]) -> np.ndarray:
    """Apply per-axis keys one axis at a time (outer indexing, like slicing each axis)."""
    out = arr
    for ax, k in enumerate(axis_keys):
        idx = (slice(None),) * ax + (k,)
        out = out[idx]
    return out


class _LazyMovie:
    """Base for (T, Y, X) array-likes computed frame by frame."""

    shape: tuple[int, int, int]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return 3

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def _frames(self, t: np.ndarray | slice, ysel: np.ndarray | slice, xsel: np.ndarray | slice) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - subclasses implement

    def __getitem__(self, key: Any) -> np.ndarray:
        key = _normalise_key(key, 3)
        parts = [_axis_index(k, n) for k, n in zip(key, self.shape, strict=True)]
        t, y, x = (p[0] for p in parts)
        if isinstance(t, slice):
            t = np.arange(self.shape[0])[t]
        out = self._frames(t, y, x)
        drop = tuple(0 if p[1] else slice(None) for p in parts)
        return out[drop]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Materialise the whole volume (allocates T x Y x X; avoid for long movies)."""
        out = self[:]
        return out.astype(dtype) if dtype is not None else out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


# --------------------------------------------------------------------------- activity movie
class ActivityMovie(_LazyMovie):
    """Per-ROI activity painted into the ROI labels, one frame per fine-grid bin.

    Parameters
    ----------
    rates : (T_fine, N) activity of each ROI.
    labels : (Y, X) integer ROI labels, 0 = background.
    roi_ids : (N,) the label of each column of ``rates``.
    background : value of pixels outside every ROI (and of labels not in ``roi_ids``).

    ``movie[t]`` is a (Y, X) frame where every pixel of ROI ``roi_ids[i]`` holds
    ``rates[t, i]``. Frames are painted on demand through a per-frame lookup table, so
    memory stays at (requested frames) x (requested pixels).
    """

    def __init__(self, rates: np.ndarray, labels: np.ndarray, roi_ids: np.ndarray, *,
                 background: float = 0.0) -> None:
        rates = np.asarray(rates)
        labels = np.asarray(labels)
        roi_ids = np.asarray(roi_ids)
        if rates.ndim != 2:
            raise ValueError(f"rates must have shape (T_fine, N), got shape {rates.shape}")
        if labels.ndim != 2:
            raise ValueError(f"labels must have shape (Y, X), got shape {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be an integer image, got dtype {labels.dtype}")
        if roi_ids.ndim != 1 or roi_ids.size != rates.shape[1]:
            raise ValueError(
                f"roi_ids must list one label per column of rates ({rates.shape[1]}), "
                f"got shape {roi_ids.shape}")
        if roi_ids.size and (roi_ids.min() < 1):
            raise ValueError("roi_ids must be labels >= 1 (0 is the background)")
        if labels.size and labels.min() < 0:
            raise ValueError("labels must be >= 0 (0 = background)")
        self.rates = rates
        self.labels = labels
        self.roi_ids = roi_ids.astype(np.int64)
        self.background = float(background)
        self.dtype = np.dtype(rates.dtype if np.issubdtype(rates.dtype, np.floating) else np.float32)
        self.shape = (int(rates.shape[0]), int(labels.shape[0]), int(labels.shape[1]))
        # column of each pixel (0 = background): memory follows the image, not the largest id
        self._index = label_index(labels, self.roi_ids)

    def _frames(self, t: np.ndarray, ysel: np.ndarray | slice, xsel: np.ndarray | slice) -> np.ndarray:
        idx = _select(self._index, [ysel, xsel])
        lut = np.full((t.size, self.roi_ids.size + 1), self.background, dtype=self.dtype)
        lut[:, 1:] = self.rates[t]
        return lut[:, idx]


# --------------------------------------------------------------------------- scan views
class RowMaskMovie(_LazyMovie):
    """The scan pattern as an image: 1 where a row was acquired in a sweep, 0 elsewhere.

    Parameters
    ----------
    frame_mask : bool (T, Y), True where row y was acquired in sweep k
        (:meth:`napari_sbtt.core.scan.ScanPattern.frame_mask`).
    n_cols : X, the width of the movie.
    """

    def __init__(self, frame_mask: np.ndarray, n_cols: int) -> None:
        frame_mask = np.asarray(frame_mask, dtype=bool)
        if frame_mask.ndim != 2:
            raise ValueError(f"frame_mask must have shape (T, Y), got shape {frame_mask.shape}")
        if int(n_cols) < 1:
            raise ValueError(f"n_cols must be >= 1, got {n_cols}")
        self.frame_mask = frame_mask
        self.dtype = np.dtype(np.uint8)
        self.shape = (int(frame_mask.shape[0]), int(frame_mask.shape[1]), int(n_cols))

    def _frames(self, t: np.ndarray, ysel: np.ndarray | slice, xsel: np.ndarray | slice) -> np.ndarray:
        rows = _select(self.frame_mask[t], [slice(None), ysel]).astype(np.uint8)
        n_x = np.arange(self.shape[2])[xsel].size
        return np.repeat(rows[:, :, None], n_x, axis=2)


class MaskedMovie(_LazyMovie):
    """What a reduced scan would have recorded from a fully sampled movie: NaN on unacquired rows.

    Parameters
    ----------
    movie : (T, Y, X) array-like, fully sampled.
    frame_mask : bool (T, Y), True where a row is kept.
    """

    def __init__(self, movie: Any, frame_mask: np.ndarray) -> None:
        shape = tuple(int(s) for s in movie.shape)
        frame_mask = np.asarray(frame_mask, dtype=bool)
        if len(shape) != 3:
            raise ValueError(f"movie must have shape (T, Y, X), got shape {shape}")
        if frame_mask.shape != shape[:2]:
            raise ValueError(
                f"the scan pattern covers {frame_mask.shape[0]} sweeps x {frame_mask.shape[1]} rows "
                f"but the movie has {shape[0]} frames x {shape[1]} rows")
        self.movie = movie
        self.frame_mask = frame_mask
        src = np.dtype(getattr(movie, "dtype", np.float32))
        self.dtype = src if np.issubdtype(src, np.floating) else np.dtype(np.float32)
        self.shape = shape  # type: ignore[assignment]

    def _frames(self, t: np.ndarray, ysel: np.ndarray | slice, xsel: np.ndarray | slice) -> np.ndarray:
        if t.size and np.all(np.diff(t) == 1):
            block = np.asarray(self.movie[int(t[0]) : int(t[-1]) + 1])
        else:
            block = np.stack([np.asarray(self.movie[int(i)]) for i in t]) if t.size else \
                np.empty((0, *self.shape[1:]), self.dtype)
        block = _select(block.astype(self.dtype, copy=False), [slice(None), ysel, xsel])
        keep = _select(self.frame_mask[t], [slice(None), ysel])
        return np.where(keep[:, :, None], block, np.array(np.nan, dtype=self.dtype))


# --------------------------------------------------------------------------- summaries
def roi_rows(labels: np.ndarray, roi_ids: np.ndarray) -> np.ndarray:
    """Bool (N, Y): True where ROI ``roi_ids[i]`` has at least one pixel in row y."""
    labels = np.asarray(labels)
    uniq, inv = np.unique(np.asarray(roi_ids, dtype=np.int64), return_inverse=True)
    idx = label_index(labels, uniq)  # no table sized by the largest id
    table = np.zeros((uniq.size, labels.shape[0]), dtype=bool)
    ys, xs = np.nonzero(idx)
    table[idx[ys, xs] - 1, ys] = True
    return table[inv.ravel()]


def roi_sample_rates(frame_mask: np.ndarray, labels: np.ndarray, roi_ids: np.ndarray,
                     duration: float) -> np.ndarray:
    """Samples per second of each ROI: sweeps that acquire any of its rows, per second. (N,)."""
    if not duration > 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration}")
    rows = roi_rows(labels, roi_ids).astype(np.float32)  # (N, Y)
    hits = np.asarray(frame_mask, dtype=np.float32) @ rows.T  # (T, N) rows seen per sweep
    return (hits > 0).sum(axis=0) / float(duration)


def roi_summary(observations: np.ndarray, rates: np.ndarray) -> dict[str, np.ndarray]:
    """Per-ROI numbers for a labels layer's features.

    Returns ``observed_share`` (share of fine-grid bins with a sample) and ``fit_r``
    (Pearson r between the samples and the activity at the observed bins; NaN when
    fewer than 3 samples or a constant trace).
    """
    obs = np.asarray(observations, dtype=np.float64)
    est = np.asarray(rates, dtype=np.float64)
    if obs.shape != est.shape or obs.ndim != 2:
        raise ValueError(f"observations {obs.shape} and rates {est.shape} must both be (T_fine, N)")
    seen = np.isfinite(obs)
    share = seen.mean(axis=0) if obs.shape[0] else np.zeros(obs.shape[1])
    r = np.full(obs.shape[1], np.nan)
    for i in range(obs.shape[1]):
        m = seen[:, i] & np.isfinite(est[:, i])
        if m.sum() > 2:
            a, b = obs[m, i], est[m, i]
            if a.std() > 0 and b.std() > 0:
                r[i] = float(np.corrcoef(a, b)[0, 1])
    return {"observed_share": share, "fit_r": r}


def time_axis(t0: float, period: float) -> tuple[float, float]:
    """(scale, translate) of a layer's time axis whose frame k covers [t0 + k*period, t0 + (k+1)*period).

    napari places data index k at ``translate + k * scale`` and shows the nearest index, so
    centring each frame on its interval makes a movie (scale = frame period) and its activity
    (scale = fine bin width) show, at world time t, the frame and the bin that contain t.
    """
    if not period > 0:
        raise ValueError(f"period must be > 0 seconds, got {period}")
    return float(period), float(t0) + float(period) / 2.0
