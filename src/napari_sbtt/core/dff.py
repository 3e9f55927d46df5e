"""dF/F with a running-percentile baseline F0, on irregularly observed samples.

Each ROI is observed only now and then, at its own times, so the baseline is
computed on that ROI's observed samples alone (NaN = not observed, never
filled in):

- ``F0(t)`` is the ``percentile``-th percentile (numpy's ``"linear"`` method)
  of the ROI's samples whose acquisition times lie within ``window / 2``
  seconds of ``t``;
- it is evaluated at anchor times every ``window / 10`` seconds (at least one
  anchor) and interpolated linearly to each sample's time; the percentile of a
  60 s window changes little over 6 s, and this keeps the cost at about ten
  percentile evaluations per sample instead of one window per sample;
- windows at the start and end of the recording are cut short by its edges
  (they hold fewer samples), anchors whose window holds no sample are skipped.

``dF/F = (F - F0) / F0``. A baseline at or below zero makes dF/F meaningless
(the sign flips). Shot noise pulls a low percentile of raw samples down by about 1.4 noise sd at
the 8th percentile, so on dim ROIs of a background-subtracted movie F0 can reach zero although the
resting fluorescence is positive; when it does for any ROI, the whole recording's F0 is taken
from samples first averaged over :data:`F0_SMOOTH_SAMPLES` consecutive samples of each ROI
(suite2p smooths its traces before its baseline for the same reason), which cuts that pull by
a factor of 3. A few dim ROIs (at most a quarter) whose baseline still reaches zero are left out
of a run with a warning (:func:`delta_f_over_f_where_defined`); more is an error: subtract the
offset that made F negative (e.g. the PMT dark level), lower the neuropil coefficient, or use
raw values.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import OptionError

__all__ = ["running_percentile_baseline", "delta_f_over_f", "delta_f_over_f_where_defined",
           "DEFAULT_F0_WINDOW", "DEFAULT_F0_PERCENTILE", "MAX_LEFT_OUT_FRACTION", "F0_SMOOTH_SAMPLES"]

#: default F0 window, seconds
DEFAULT_F0_WINDOW = 60.0
#: default F0 percentile (0..100)
DEFAULT_F0_PERCENTILE = 8.0
#: where the plain baseline reaches zero, F0 is taken from each ROI's samples averaged over this
#: many consecutive samples (noise sd / 3); on the benchmark family's seed-8 cell 2 (100 dim ROIs,
#: nu 8, background subtracted) the plain F0 was <= 0 on 26 ROIs and 0.25x the resting
#: fluorescence at the median, the smoothed one > 0 on all and 0.79x (benchmarks/RESULTS.md)
F0_SMOOTH_SAMPLES = 9

_MAX_BLOCK = 1 << 22  # elements per sorted block (memory bound: 32 MB of float64)


def _check_params(window: float, percentile: float) -> None:
    if not (math.isfinite(window) and window > 0):
        raise ValueError(f"f0_window must be a positive number of seconds, got {window}")
    if not (math.isfinite(percentile) and 0 <= percentile <= 100):
        raise ValueError(f"f0_percentile must lie in 0..100, got {percentile}")


def _window_percentiles(ts: np.ndarray, vs: np.ndarray, anchors: np.ndarray, half: float, q: float) -> np.ndarray:
    """Percentile ``q`` (0..100) of ``vs[|ts - a| <= half]`` for each anchor a; NaN when empty.

    ``ts`` must be sorted ascending.
    """
    lo = np.searchsorted(ts, anchors - half, side="left")
    hi = np.searchsorted(ts, anchors + half, side="right")
    n = hi - lo
    out = np.full(anchors.shape, np.nan)
    longest = int(n.max()) if n.size else 0
    if longest == 0:
        return out
    step = max(1, _MAX_BLOCK // longest)
    for a0 in range(0, anchors.size, step):
        a1 = min(a0 + step, anchors.size)
        first, m = lo[a0:a1], n[a0:a1]
        width = int(m.max())
        if width == 0:
            continue
        idx = first[:, None] + np.arange(width)[None, :]
        inside = np.arange(width)[None, :] < m[:, None]
        block = np.where(inside, vs[np.minimum(idx, vs.size - 1)], np.inf)
        block.sort(axis=1)
        ok = m > 0
        pos = (m[ok] - 1) * (q / 100.0)
        below = np.floor(pos).astype(np.int64)
        above = np.minimum(below + 1, m[ok] - 1)
        frac = pos - below
        rows = np.flatnonzero(ok)
        vb, va = block[rows, below], block[rows, above]
        res = np.empty(a1 - a0)
        res[:] = np.nan
        res[ok] = vb + (va - vb) * frac
        out[a0:a1] = res
    return out


def _centred_mean(v: np.ndarray, half: int) -> np.ndarray:
    """(n,) mean of ``v[i - half : i + half + 1]`` for each i, cut short at the ends."""
    c = np.concatenate([[0.0], np.cumsum(v)])
    i = np.arange(v.size)
    lo, hi = np.maximum(i - half, 0), np.minimum(i + half + 1, v.size)
    return (c[hi] - c[lo]) / (hi - lo)


def running_percentile_baseline(
    values: np.ndarray,
    times: np.ndarray,
    *,
    window: float = DEFAULT_F0_WINDOW,
    percentile: float = DEFAULT_F0_PERCENTILE,
    smooth_samples: int = 1,
) -> np.ndarray:
    """Running-percentile baseline F0 of each ROI, evaluated at its observed samples.

    Parameters
    ----------
    values
        (T, N) fluorescence, NaN where not observed.
    times
        (T, N) acquisition time of each sample in seconds, NaN where not
        observed; ascending along T within each column.
    window
        Full width of the baseline window in seconds.
    percentile
        Percentile 0..100 (8 is the usual choice).
    smooth_samples
        Average each ROI's samples over this many consecutive observed samples (centred, an odd
        count: an even one counts one more; fewer at the ends) before taking the percentile;
        1: the raw samples.

    Returns
    -------
    (T, N) float64 F0, NaN where ``values`` is NaN.
    """
    _check_params(window, percentile)
    if int(smooth_samples) < 1:
        raise ValueError(f"smooth_samples must be a positive whole number, got {smooth_samples}")
    values = np.asarray(values)
    times = np.asarray(times, dtype=np.float64)
    if values.ndim != 2 or values.shape != times.shape:
        raise ValueError(f"values and times must both be (T, N); got {values.shape} and {times.shape}")
    f0 = np.full(values.shape, np.nan)
    half = window / 2.0
    step = window / 10.0
    for j in range(values.shape[1]):
        rows = np.flatnonzero(np.isfinite(values[:, j]) & np.isfinite(times[:, j]))
        if rows.size == 0:
            continue
        ts = times[rows, j]
        vs = values[rows, j].astype(np.float64)
        order = np.argsort(ts, kind="stable")
        ts, vs, rows = ts[order], vs[order], rows[order]
        if smooth_samples > 1:
            vs = _centred_mean(vs, int(smooth_samples) // 2)
        span = ts[-1] - ts[0]
        n_anchor = max(1, int(math.ceil(span / step)) + 1)
        anchors = ts[0] + np.arange(n_anchor) * step
        base = _window_percentiles(ts, vs, anchors, half, percentile)
        ok = np.isfinite(base)
        f0[rows, j] = np.interp(ts, anchors[ok], base[ok])
    return f0


def delta_f_over_f(
    values: np.ndarray,
    times: np.ndarray,
    roi_ids: np.ndarray,
    *,
    window: float = DEFAULT_F0_WINDOW,
    percentile: float = DEFAULT_F0_PERCENTILE,
) -> np.ndarray:
    """dF/F = (F - F0) / F0 with the baseline of :func:`delta_f_over_f_where_defined` (raw samples
    running percentile, smoothed samples' where that reaches zero); shape (T, N) float64.

    ``roi_ids`` (N,) only name ROIs in errors. Raises ``ValueError`` when F0 is
    at or below zero anywhere an ROI was observed.
    """
    return delta_f_over_f_where_defined(values, times, roi_ids, window=window, percentile=percentile,
                                        max_left_out=0.0)[0]


#: at most this share of the ROIs may be left out of a dF/F run for a baseline at or below zero
MAX_LEFT_OUT_FRACTION = 0.25


def delta_f_over_f_where_defined(
    values: np.ndarray,
    times: np.ndarray,
    roi_ids: np.ndarray,
    *,
    window: float = DEFAULT_F0_WINDOW,
    percentile: float = DEFAULT_F0_PERCENTILE,
    max_left_out: float = MAX_LEFT_OUT_FRACTION,
) -> tuple[np.ndarray, np.ndarray, int]:
    """dF/F of the ROIs where it is defined, leaving out the few whose baseline F0 reaches zero.

    F0 is :func:`running_percentile_baseline` of the raw samples; where that reaches zero for any
    ROI, of every ROI's samples averaged over :data:`F0_SMOOTH_SAMPLES` (shot noise no longer
    drags the percentile below a positive resting fluorescence). A dim ROI whose
    background-subtracted fluorescence still dips to or below zero has no dF/F. When such ROIs
    are at most ``max_left_out`` of all ROIs they are left out (the caller drops their columns
    and says which); more than that means the offset is wrong for the whole recording, and the
    error of :func:`delta_f_over_f` is raised.

    Returns
    -------
    dff : (T, N) float64, NaN in the columns left out.
    kept : (N,) bool, False for the ROIs left out.
    smooth_samples : 1, or :data:`F0_SMOOTH_SAMPLES` where the smoothed baseline was used.
    """
    values = np.asarray(values, dtype=np.float64)
    smooth = 1
    f0 = running_percentile_baseline(values, times, window=window, percentile=percentile)
    bad = np.any(f0 <= 0, axis=0)  # NaN compares False
    if bad.any():
        smooth = F0_SMOOTH_SAMPLES
        f0 = running_percentile_baseline(values, times, window=window, percentile=percentile,
                                         smooth_samples=smooth)
        bad = np.any(f0 <= 0, axis=0)
    if bad.sum() > max_left_out * bad.size:
        _raise_if_undefined(bad, roi_ids, window, percentile)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (values - f0) / f0
    out[:, bad] = np.nan
    return out, ~bad, smooth


def _raise_if_undefined(bad: np.ndarray, roi_ids: np.ndarray, window: float, percentile: float) -> None:
    if bad.any():
        ids = [int(i) for i in np.asarray(roi_ids)[bad]]
        raise OptionError(
            f"the dF/F baseline F0 is <= 0 for ROI id(s) {ids[:20]}{' ...' if len(ids) > 20 else ''} "
            f"({percentile:g}th percentile over {window:g} s); dF/F is undefined there. If the movie "
            "fills rows the scan did not acquire with 0, those zeros are not samples: give the scan "
            "pattern ({scan}) or {line_period} so that they are left out. Otherwise subtract the offset "
            "that makes the fluorescence negative (e.g. the dark level), lower {neuropil}, or keep raw "
            "values with {dff_off}",
            scan="scan=<scan.json>", line_period="line_period=<seconds per line>",
            neuropil="the neuropil coefficient (neuropil=)", dff_off="dff=False")
