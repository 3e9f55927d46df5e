"""Metrics for inferred activity against ground truth, and noise levels.

Shapes follow the package vocabulary: time is axis 0, ROIs (neurons) axis 1,
``(T, N)``. NaN marks a missing value anywhere; every metric documents how it
skips NaN. Per-ROI functions reduce over time and return one value per ROI
(shape ``x.shape[1:]``, so a 1-D trace gives a 0-d array).

- :func:`r2_score`: coefficient of determination, as ``sklearn.metrics.r2_score``
  (SBTT evaluation protocol: uniform average over neurons).
- :func:`pearson_r`, :func:`cascade_error`, :func:`cascade_bias`: the CASCADE
  spike-inference metrics (Rupprecht et al. 2021), after optional Gaussian
  smoothing of both traces (:func:`gaussian_smooth`, sigma 50 ms there).
- :func:`noise_level`: CASCADE's standardised noise level nu of a dF/F trace,
  and :func:`noise_std_for_level` / :func:`noise_std_to_reach`, its inverse
  for white Gaussian noise (used to simulate or degrade recordings).
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.ndimage import gaussian_filter1d
from scipy.special import ndtri

__all__ = [
    "r2_score",
    "gaussian_smooth",
    "pearson_r",
    "median_over_rois",
    "cascade_error",
    "cascade_bias",
    "noise_level",
    "noise_std_for_level",
    "noise_std_to_reach",
    "HALF_NORMAL_MEDIAN",
]

#: Median of |Z| for Z ~ N(0, 1): the 75th percentile of the standard normal, 0.6745.
HALF_NORMAL_MEDIAN: float = float(ndtri(0.75))


def _pair(true: ArrayLike, pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(true, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(
            f"true and pred must have the same shape, got {t.shape} and {p.shape}; "
            "put both on the same time grid and ROI order first"
        )
    if t.ndim == 0:
        raise ValueError("true and pred must have a time axis, got scalars")
    return t, p


def r2_score(
    true: ArrayLike,
    pred: ArrayLike,
    *,
    multioutput: Literal["uniform_average", "raw_values"] = "uniform_average",
) -> float | np.ndarray:
    """Coefficient of determination per neuron, averaged uniformly over neurons.

    Parameters
    ----------
    true, pred : array_like, shape (T, N) or (..., T, N)
        True and inferred values (any unit, the same for both: rates in Hz,
        spikes per bin, dF/F). Leading axes (e.g. n_trials) are flattened into
        samples, so (n_trials, T, N) is scored as (n_trials * T, N), exactly
        as sklearn's protocol ``r2_score(true.reshape(-1, N), pred.reshape(-1, N))``.
        A 1-D array is one neuron.
    multioutput : {"uniform_average", "raw_values"}
        Return the mean over neurons (default) or one R^2 per neuron (N,).

    Returns
    -------
    float or ndarray, shape (N,)
        ``R^2 = 1 - sum (true - pred)^2 / sum (true - mean(true))^2`` per neuron.

    Notes
    -----
    - NaN: a sample is skipped for a neuron where ``true`` or ``pred`` is NaN;
      the mean of ``true`` is over the kept samples. A neuron with fewer than 2
      kept samples gets NaN and is left out of the average (NaN if no neuron
      is left). Without NaN this equals ``sklearn.metrics.r2_score(true, pred,
      multioutput=...)``.
    - Constant ``true`` column (zero variance): sklearn's ``force_finite``
      convention, R^2 = 1.0 if the prediction is exact, else 0.0.
    """
    if multioutput not in ("uniform_average", "raw_values"):
        raise ValueError(
            f"multioutput must be 'uniform_average' or 'raw_values', got {multioutput!r}"
        )
    t, p = _pair(true, pred)
    if t.ndim == 1:
        t, p = t[:, None], p[:, None]
    n = t.shape[-1]
    t = t.reshape(-1, n)
    p = p.reshape(-1, n)
    ok = ~(np.isnan(t) | np.isnan(p))
    count = ok.sum(axis=0)
    t0 = np.where(ok, t, 0.0)
    p0 = np.where(ok, p, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = t0.sum(axis=0) / count
        ss_res = (((t0 - p0) * ok) ** 2).sum(axis=0)
        ss_tot = (((t0 - mean) * ok) ** 2).sum(axis=0)
        r2 = 1.0 - ss_res / ss_tot
    r2 = np.where(ss_tot == 0, np.where(ss_res == 0, 1.0, 0.0), r2)
    r2 = np.where(count < 2, np.nan, r2)
    if multioutput == "raw_values":
        return r2
    valid = ~np.isnan(r2)
    return float(r2[valid].mean()) if valid.any() else float("nan")


def gaussian_smooth(
    x: ArrayLike,
    sigma_s: float,
    dt_s: float,
    *,
    keep_nan: bool = True,
    truncate: float = 4.0,
) -> np.ndarray:
    """Gaussian smoothing along time (axis 0), skipping NaN.

    Parameters
    ----------
    x : array_like, shape (T, ...)
        Values on a regular time grid, NaN where missing.
    sigma_s : float
        Standard deviation of the Gaussian kernel in seconds (CASCADE: 0.05 s).
        0 returns a copy.
    dt_s : float
        Bin width of ``x`` in seconds (1 / frame rate in Hz).
    keep_nan : bool
        If True (default) the output is NaN where ``x`` was NaN. If False,
        gaps are filled with the smoothed estimate from their neighbours
        (NaN only where no observed bin lies within ``truncate`` sigmas).
    truncate : float
        Kernel half-width in standard deviations.

    Returns
    -------
    ndarray, float64, shape of x
        Normalised convolution: ``smooth(x * observed) / smooth(observed)``
        with ``scipy.ndimage.gaussian_filter1d`` in 'reflect' mode. Without
        NaN this is exactly ``gaussian_filter1d(x, sigma_s / dt_s, axis=0)``,
        the smoothing CASCADE applies, and it preserves the sum over time.
    """
    if not (math.isfinite(dt_s) and dt_s > 0):
        raise ValueError(f"dt_s must be a positive bin width in seconds, got {dt_s}")
    if not (math.isfinite(sigma_s) and sigma_s >= 0):
        raise ValueError(f"sigma_s must be a non-negative duration in seconds, got {sigma_s}")
    arr = np.array(x, dtype=np.float64)  # copy
    if arr.ndim == 0:
        raise ValueError("x must have a time axis (axis 0), got a scalar")
    if sigma_s == 0 or arr.shape[0] == 0:
        return arr
    sigma = sigma_s / dt_s
    missing = np.isnan(arr)
    if not missing.any():
        return gaussian_filter1d(arr, sigma, axis=0, mode="reflect", truncate=truncate)
    observed = (~missing).astype(np.float64)
    num = gaussian_filter1d(np.where(missing, 0.0, arr), sigma, axis=0, truncate=truncate)
    den = gaussian_filter1d(observed, sigma, axis=0, truncate=truncate)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[den <= 1e-12] = np.nan
    if keep_nan:
        out[missing] = np.nan
    return out


def _smoothed_pair(
    true: ArrayLike, pred: ArrayLike, sigma_s: float | None, dt_s: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate, optionally smooth both, and return them with the joint mask."""
    t, p = _pair(true, pred)
    if sigma_s is not None:
        if dt_s is None:
            raise ValueError(
                "sigma_s is given but dt_s is not; pass dt_s = 1 / frame rate (seconds)"
            )
        t = gaussian_smooth(t, sigma_s, dt_s)
        p = gaussian_smooth(p, sigma_s, dt_s)
    ok = ~(np.isnan(t) | np.isnan(p))
    return np.where(ok, t, 0.0), np.where(ok, p, 0.0), ok


def pearson_r(
    true: ArrayLike,
    pred: ArrayLike,
    *,
    sigma_s: float | None = None,
    dt_s: float | None = None,
) -> np.ndarray:
    """Pearson correlation over time per ROI, after optional Gaussian smoothing.

    Parameters
    ----------
    true, pred : array_like, shape (T, N) or (T,)
        For example true spike counts per bin and inferred rates; any units.
    sigma_s : float, optional
        If given, smooth both with a Gaussian of this standard deviation in
        seconds first (:func:`gaussian_smooth`; CASCADE protocol: 0.05).
    dt_s : float, optional
        Bin width in seconds (1 / frame rate in Hz); required with sigma_s.

    Returns
    -------
    ndarray, float64, shape (N,) (0-d for 1-D input)
        Correlation over the bins where both are not NaN (NaN is skipped
        after smoothing). NaN for a ROI with fewer than 2 such bins or a
        constant trace (as ``scipy.stats.pearsonr``, without the warning).
    """
    t, p, ok = _smoothed_pair(true, pred, sigma_s, dt_s)
    count = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tc = (t - t.sum(axis=0) / count) * ok
        pc = (p - p.sum(axis=0) / count) * ok
        cov = (tc * pc).sum(axis=0)
        r = cov / (np.sqrt((tc**2).sum(axis=0)) * np.sqrt((pc**2).sum(axis=0)))
    r = np.clip(r, -1.0, 1.0)
    r = np.where(count < 2, np.nan, r)
    return np.asarray(r)


def median_over_rois(per_roi: ArrayLike) -> float:
    """Median of a per-ROI metric over ROIs, skipping NaN (CASCADE's summary).

    Parameters
    ----------
    per_roi : array_like, shape (N,)
        For example the output of :func:`pearson_r`.

    Returns
    -------
    float
        NaN if no ROI has a value.
    """
    values = np.asarray(per_roi, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else float("nan")


def cascade_error(
    true_spikes: ArrayLike,
    pred: ArrayLike,
    *,
    sigma_s: float | None = None,
    dt_s: float | None = None,
) -> np.ndarray:
    """CASCADE error per ROI: ``sum |pred - gt| / sum gt`` after smoothing.

    Parameters
    ----------
    true_spikes, pred : array_like, shape (T, N) or (T,)
        True spike train and inferred spikes, in the same unit (spikes per bin,
        or both rates in Hz); the ratio is unitless. CASCADE's error is only
        meaningful when ``pred`` is in absolute spike units, not a scaled rate.
    sigma_s, dt_s : float, optional
        Gaussian smoothing of both, as in :func:`pearson_r`.

    Returns
    -------
    ndarray, float64, shape (N,) (0-d for 1-D input)
        Sums run over bins where both are not NaN. NaN for a ROI whose
        (smoothed) true spikes sum to 0 over those bins. 0 is perfect.
    """
    t, p, _ = _smoothed_pair(true_spikes, pred, sigma_s, dt_s)
    total = t.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(p - t).sum(axis=0) / total
    return np.asarray(np.where(total == 0, np.nan, err))


def cascade_bias(
    true_spikes: ArrayLike,
    pred: ArrayLike,
    *,
    sigma_s: float | None = None,
    dt_s: float | None = None,
) -> np.ndarray:
    """CASCADE bias per ROI: ``sum (pred - gt) / sum gt`` after smoothing.

    Same inputs and NaN handling as :func:`cascade_error`. Positive: too many
    spikes inferred; negative: too few; 0: the right total.

    Returns
    -------
    ndarray, float64, shape (N,) (0-d for 1-D input)
    """
    t, p, _ = _smoothed_pair(true_spikes, pred, sigma_s, dt_s)
    total = t.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        bias = (p - t).sum(axis=0) / total
    return np.asarray(np.where(total == 0, np.nan, bias))


def _check_rate(frame_rate_hz: float) -> float:
    rate = float(frame_rate_hz)
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"frame_rate_hz must be a positive rate in Hz, got {frame_rate_hz}")
    return rate


def noise_level(dff: ArrayLike, frame_rate_hz: float) -> np.ndarray:
    """CASCADE standardised noise level nu per ROI.

    ``nu = median_t |dF/F(t+1) - dF/F(t)| / sqrt(frame rate) * 100``

    Parameters
    ----------
    dff : array_like, shape (T, N) or (T,)
        dF/F as a fraction (0.1 = 10 %), one value per frame, NaN where not
        observed.
    frame_rate_hz : float
        Frames per second of ``dff`` (the grid its rows are on), in Hz.

    Returns
    -------
    ndarray, float64, shape (N,) (0-d for 1-D input)
        nu in CASCADE's units (%/sqrt(Hz)): about 1 is very clean, 3-4 decent,
        above 5 poor. Only consecutive pairs with both frames observed count;
        NaN for a ROI with no such pair.
    """
    rate = _check_rate(frame_rate_hz)
    x = np.asarray(dff, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("dff must have a time axis (axis 0), got a scalar")
    diffs = np.abs(np.diff(x, axis=0))
    # np.nanmedian warns on all-NaN slices; compute it quietly and keep NaN there
    if diffs.shape[0] == 0:
        return np.asarray(np.full(x.shape[1:], np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(diffs, axis=0)
    return np.asarray(med / math.sqrt(rate) * 100.0)


def noise_std_for_level(nu: ArrayLike, frame_rate_hz: float) -> np.ndarray | float:
    """Standard deviation of white Gaussian noise (dF/F) whose noise level is nu.

    For i.i.d. noise e ~ N(0, s^2) the frame-to-frame difference is
    N(0, 2 s^2), and the median of its absolute value is
    ``s * sqrt(2) * 0.6745`` (0.6745 = :data:`HALF_NORMAL_MEDIAN`). Inverting
    :func:`noise_level`::

        s = nu * sqrt(frame_rate_hz) / (100 * sqrt(2) * 0.6745)

    Parameters
    ----------
    nu : float or array_like
        Target noise level(s) in CASCADE units (>= 0).
    frame_rate_hz : float
        Frame rate in Hz at which the noise is added (one draw per frame).

    Returns
    -------
    float or ndarray
        Noise standard deviation in dF/F (fraction), same shape as ``nu``.
        Adding it to a noiseless trace gives ``noise_level`` close to nu
        (exactly nu in the limit of long traces). See
        :func:`noise_std_to_reach` for a trace that already has noise.
    """
    rate = _check_rate(frame_rate_hz)
    nu_arr = np.asarray(nu, dtype=np.float64)
    if np.any(~np.isfinite(nu_arr)) or np.any(nu_arr < 0):
        raise ValueError(f"nu must be finite and >= 0, got {nu}")
    std = nu_arr * math.sqrt(rate) / (100.0 * math.sqrt(2.0) * HALF_NORMAL_MEDIAN)
    return float(std) if std.ndim == 0 else std


def noise_std_to_reach(
    nu_target: ArrayLike, nu_current: ArrayLike, frame_rate_hz: float
) -> np.ndarray | float:
    """Std of extra white Gaussian noise (dF/F) that raises nu_current to nu_target.

    Assumes the noise already in the trace is white and Gaussian, so variances
    add: ``s_add = sqrt(s(nu_target)^2 - s(nu_current)^2)`` with ``s`` from
    :func:`noise_std_for_level`. Used to degrade clean ground-truth recordings
    (nu about 0.4-1.7) to nu = 2, 4, 8.

    Parameters
    ----------
    nu_target, nu_current : float or array_like (broadcastable)
        Noise levels in CASCADE units; ``nu_current`` e.g. from
        :func:`noise_level`.
    frame_rate_hz : float
        Frame rate of the trace in Hz.

    Returns
    -------
    float or ndarray
        Standard deviation in dF/F (fraction), 0 where the target equals the
        current level.

    Raises
    ------
    ValueError
        If a target is below the current level (noise cannot be removed by
        adding noise; pick a target >= the current level).
    """
    s_t = np.asarray(noise_std_for_level(nu_target, frame_rate_hz))
    s_c = np.asarray(noise_std_for_level(nu_current, frame_rate_hz))
    if np.any(np.asarray(nu_target) < np.asarray(nu_current)):
        raise ValueError(
            f"nu_target {nu_target} is below the current noise level {nu_current}; "
            "pick a target >= the current level"
        )
    std = np.sqrt(np.maximum(s_t**2 - s_c**2, 0.0))
    return float(std) if std.ndim == 0 else std
