"""The calcium decay time of a recording estimated from its own samples: where a run that names
no indicator starts its kernel's decay, and what refines a named indicator's preset.

A run that names its indicator starts the calcium kernel at the preset's kinetics; when the
kernel was learned, a preset far from the preparation stayed far (the network can lengthen a
short kernel's transients with its rates): on the zebrafish ground truth (decay 1.3-2.4 s) a
GCaMP6f fit started at 0.58 s ended at 0.45-0.50 s. So the preset is checked against the
recording's estimate (:func:`refine_decay`). Without a name the
decay has to start somewhere, and one preset fits few preparations: the ground truth of benchmarks/RESULTS.md spans 0.26 s (GCaMP6f, mouse V1 at
158 Hz) to 2.35 s (GCaMP6f, zebrafish). So the start is read off the data, as OASIS does:

- each ROI's observed samples are one series at its own sampling period (the median step
  between its samples); OASIS fits an AR(1) coefficient g to it from the autocovariance
  (:func:`napari_sbtt.core.baselines.oasis_decay_time`), giving ``-period / ln g``;
- OASIS's lags are samples, so an ROI sampled every n-th bin of the grid sees its
  autocovariance at n times longer lags, where slow drift and bursts lengthen it: on the
  ground truth kept at every 2nd and 4th frame the estimate grows as n ** 0.46 (fitted on the
  tune sets DS09 and DS32: 1.32 and 1.67, 1.56 and 2.05 times the estimate on all frames), so
  each ROI's estimate is divided by ``n ** SUBSAMPLING_EXPONENT`` with n its sampling period
  over the grid's bin width, n at most :data:`MAX_CORRECTED_N` (the range the exponent was
  fitted on: on the synthetic tune half of benchmarks/family.py, extrapolating it to 8-16x
  fewer samples shortened the estimates to about half the true decay, median log error 0.34
  against 0.27 with the cap);
- the median over ROIs with at least :data:`MIN_SAMPLES` samples is taken;
- OASIS's autocovariance estimate comes out short: on the two ground-truth sets where the
  defaults may be chosen (DS09 GCaMP6f, DS32 jGCaMP8s: benchmarks/measure_indicators.py) the
  decay measured from the spikes is 1.29 and 1.61 times OASIS's, so the estimate is scaled by
  their geometric mean, :data:`OASIS_DECAY_BIAS` (the other five sets only report how close it
  comes);
- the result is clipped to [:data:`MIN_DECAY_S`, :data:`MAX_DECAY_S`].

The kernel keeps this decay (like a preset's) while the network learns
(``config.RUN_MODEL_DEFAULTS``: ``kinetics_lr_scale`` 0).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["estimate_decay_time", "decay_time_of_series", "series_decay_scales", "SERIES_DECAY_SCALE_RANGE",
           "MIN_SCALED_SERIES", "refine_decay", "heldout_decay_scores",
           "lengthened_decay", "difference_noise_sd", "ESTIMATE_RATIO_RANGE", "OASIS_DECAY_BIAS", "SUBSAMPLING_EXPONENT",
           "MAX_CORRECTED_N", "MIN_SAMPLES", "MIN_DECAY_S", "MAX_DECAY_S", "HELDOUT_CANDIDATE_STEP",
           "HELDOUT_MAX_SECONDS", "LENGTHEN_FROM_S"]

#: spike-measured decay / OASIS's AR(1) decay, geometric mean over the tune sets DS09 and DS32
OASIS_DECAY_BIAS = math.sqrt((0.5758 / 0.4447) * (0.4718 / 0.2937))
#: the estimate grows as (sampling period / bin width) ** this (least squares over the tune sets)
SUBSAMPLING_EXPONENT = 0.46
#: the sampling correction is applied up to this n (every 4th bin, the largest fitted)
MAX_CORRECTED_N = 4.0
#: an ROI needs this many samples for its decay estimate to count
MIN_SAMPLES = 50
#: bounds of the estimate, seconds (the fastest and slowest indicators, with a margin)
MIN_DECAY_S, MAX_DECAY_S = 0.05, 5.0
#: at most this many ROIs are used (evenly spread); the median settles long before
MAX_ROIS = 64
#: bounds of :func:`series_decay_scales` (a series' decay over the median series')
SERIES_DECAY_SCALE_RANGE = (0.5, 2.0)
#: :func:`series_decay_scales` compares series only when at least this many have a decay
MIN_SCALED_SERIES = 3
#: candidate decays of :func:`heldout_decay_scores` are this factor apart (a geometric grid)
HELDOUT_CANDIDATE_STEP = math.sqrt(2.0)
#: :func:`heldout_decay_scores` runs on at most this many seconds of the recording (its start)
HELDOUT_MAX_SECONDS = 180.0
#: :func:`lengthened_decay` leaves estimates shorter than this (s) as they are: on the family's
#: seed-7 tune cells every estimate under it came from a fast indicator (GCaMP8f, 7f, 8m; true
#: decay 0.15-0.25 s), where lengthening moved a good estimate away from the truth
LENGTHEN_FROM_S = 0.2
#: (lowest, highest) estimate / true decay seen where the true decay is known and settings may be
#: chosen, rounded outward: the tune half of benchmarks/family.py (12 synthetic cells: 0.193 for 10
#: noisy ROIs seen every 280 ms, 0.26-1.46 for the rest) and the tune ground-truth sets DS09 and
#: DS32 at every 1st, 2nd and 4th frame (0.91-1.04) (benchmarks/RESULTS.md, "Kinetics")
ESTIMATE_RATIO_RANGE = (0.19, 1.5)


def refine_decay(preset_s: float, estimate_s: float | None,
                 ratio_range: tuple[float, float] = ESTIMATE_RATIO_RANGE) -> float:
    """A named indicator's decay (s) refined by the recording's estimate (s).

    The estimate has been between ``ratio_range[0]`` and ``ratio_range[1]`` times the true decay
    wherever that was known (:data:`ESTIMATE_RATIO_RANGE`), so the true decay is taken to lie in
    [estimate / high, estimate / low]. A preset inside that interval is kept as it is (the
    family's presets are exact, and the estimate is the noisier of the two there); a preset
    outside it is moved to the interval's nearer end, the smallest change the recording demands
    (a zebrafish GCaMP6f decays 2-4x slower than the mouse-V1 preset). None: the preset.
    """
    if estimate_s is None or not math.isfinite(estimate_s) or estimate_s <= 0:
        return float(preset_s)
    low, high = ratio_range
    return float(min(max(preset_s, estimate_s / high), estimate_s / low))


def estimate_decay_time(observations: np.ndarray, times: np.ndarray, *,
                        bin_width: float | None = None) -> float | None:
    """The recording's calcium decay time in seconds, from its samples alone (no spikes).

    Parameters
    ----------
    observations : (T_fine, N) dF/F (or raw) samples on the fine grid, NaN where not observed.
    times : (T_fine,) bin centres in seconds.
    bin_width : the grid's bin width in seconds (default: the median step of ``times``); an ROI
        sampled every n-th bin has its estimate corrected for n (see the module's text).

    Returns
    -------
    The bias-corrected median over ROIs of OASIS's AR(1) decay time (see the module's text),
    clipped to [MIN_DECAY_S, MAX_DECAY_S]; None when OASIS is not installed or no ROI has
    :data:`MIN_SAMPLES` samples with a decay (g in (0, 1)).
    """
    obs = np.asarray(observations, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if obs.ndim != 2 or t.shape != (obs.shape[0],):
        raise ValueError(f"observations must be (T, N) and times (T,); got {obs.shape} and {t.shape}")
    if bin_width is None and t.size > 1:
        bin_width = float(np.median(np.diff(t)))
    return decay_time_of_series([obs[:, i] for i in range(obs.shape[1])], [t] * obs.shape[1],
                                bin_width=bin_width)


def _series_decay_time(v: np.ndarray, t: np.ndarray, bin_width: float | None) -> float:
    """One series' corrected AR(1) decay time in s (the module's text), NaN without one."""
    from .baselines import oasis_decay_time

    period = float(np.median(np.diff(t)))
    if not period > 0:
        return math.nan
    tau = oasis_decay_time(v, period)
    if not math.isfinite(tau):
        return math.nan
    n = min(MAX_CORRECTED_N, max(1.0, period / bin_width)) if bin_width else 1.0
    return tau / n ** SUBSAMPLING_EXPONENT


def _checked_series(values: Sequence[np.ndarray], times: Sequence[np.ndarray]
                    ) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Each series' (observed values, their times), or None with fewer than MIN_SAMPLES."""
    if len(values) != len(times):
        raise ValueError(f"{len(values)} series of values but {len(times)} of times")
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for v, t in zip(values, times, strict=True):
        v, t = np.asarray(v, dtype=np.float64), np.asarray(t, dtype=np.float64)
        if v.shape != t.shape or v.ndim != 1:
            raise ValueError(f"each series needs values and times of one shape (T,), got {v.shape} and {t.shape}")
        m = np.isfinite(v) & np.isfinite(t)
        out.append((v[m], t[m]) if m.sum() >= MIN_SAMPLES else None)
    return out


def decay_time_of_series(values: Sequence[np.ndarray], times: Sequence[np.ndarray], *,
                         bin_width: float | None = None) -> float | None:
    """:func:`estimate_decay_time` for separate series (traces of different lengths).

    ``values[i]`` and ``times[i]`` are (T_i,) samples (NaN = not observed) and their times in
    seconds; ``bin_width`` the frame period of the grid they were kept from (None: no
    correction for sampling every n-th frame). Returns the decay time in seconds, or None (see
    :func:`estimate_decay_time`).
    """
    from .baselines import oasis_available

    checked = _checked_series(values, times)
    if not oasis_available():
        return None
    series = [s for s in checked if s is not None]
    if len(series) > MAX_ROIS:
        series = [series[i] for i in np.linspace(0, len(series) - 1, MAX_ROIS).round().astype(int)]
    taus = [tau for tau in (_series_decay_time(v, t, bin_width) for v, t in series) if math.isfinite(tau)]
    if not taus:
        return None
    return float(np.clip(OASIS_DECAY_BIAS * np.median(taus), MIN_DECAY_S, MAX_DECAY_S))


def series_decay_scales(values: Sequence[np.ndarray], times: Sequence[np.ndarray], *,
                        bin_width: float | None = None) -> np.ndarray:
    """(n_series,) each series' own decay relative to the others': its corrected AR(1) decay
    time (as in :func:`decay_time_of_series`) over the median of all series', clipped to
    :data:`SERIES_DECAY_SCALE_RANGE`; 1 where a series has fewer than :data:`MIN_SAMPLES`
    samples or no decay, and everywhere when OASIS is not installed or fewer than
    :data:`MIN_SCALED_SERIES` series have one (no median to compare with). Arguments as for
    :func:`decay_time_of_series`.

    The factors scale the kernel of a model shared by separately recorded neurons, one per
    neuron, when each neuron's events are deconvolved (``napari_sbtt.deconvolve_traces``): the
    neurons' decays differ (the jGCaMP8s ground truth, DS32: the 10th to 90th percentile of the
    factors 0.67-1.37), and OASIS deconvolves each trace under its own (``trace_decays=True``; off
    by default: it lost 0.018 r on GCaMP6s, DS13, benchmarks/RESULTS.md)."""
    from .baselines import oasis_available

    checked = _checked_series(values, times)
    out = np.ones(len(checked))
    if not oasis_available():
        return out
    taus = np.array([math.nan if s is None else _series_decay_time(s[0], s[1], bin_width) for s in checked])
    ok = np.isfinite(taus)
    if ok.sum() < MIN_SCALED_SERIES:
        return out
    lo, hi = SERIES_DECAY_SCALE_RANGE
    out[ok] = np.clip(taus[ok] / np.median(taus[ok]), lo, hi)
    return out


def heldout_decay_scores(observations: np.ndarray, times: np.ndarray, start_s: float, *,
                         rise_s: float = 0.016, share: float = 0.1, seed: int = 0,
                         n_longer: int = 4, max_rois: int = MAX_ROIS // 2,
                         max_seconds: float = HELDOUT_MAX_SECONDS) -> dict[float, float]:
    """How well kernels of several decay times predict held-out single samples.

    About ``share`` of the observed samples of each ROI with at least ``MIN_SAMPLES + 8`` of them
    are held out (at random; ROIs left with fewer than :data:`MIN_SAMPLES` kept are dropped); for each
    candidate decay, from ``start_s / HELDOUT_CANDIDATE_STEP`` up to ``start_s *
    HELDOUT_CANDIDATE_STEP ** n_longer`` seconds on a geometric grid (none above
    :data:`MAX_DECAY_S`), the kept samples are
    deconvolved (:func:`~napari_sbtt.core.deconvolution.sparse_deconvolve`: a double-exponential
    kernel of that decay and ``rise_s``, unit amplitude, baseline and noise sd read off the kept
    samples) and scored by the R^2 of its fitted fluorescence at the held-out samples, pooled over
    ROIs. At most ``max_rois`` ROIs (evenly spread) and the first ``max_seconds``.

    Parameters
    ----------
    observations : (T_fine, N) samples on the fine grid (dF/F), NaN where not observed.
    times : (T_fine,) bin centres in seconds (a regular grid).
    start_s : the decay the grid is built around, seconds (> 0; e.g. :func:`estimate_decay_time`).

    Returns
    -------
    {candidate decay (s): held-out R^2}, in increasing decay; empty when no ROI has enough samples.
    """
    from .deconvolution import sparse_deconvolve
    from .indicators import Indicator

    raw = np.asarray(observations)
    t = np.asarray(times, dtype=np.float64)
    if raw.ndim != 2 or t.shape != (raw.shape[0],) or t.size < 2:
        raise ValueError(f"observations must be (T, N) and times (T,) with T >= 2; got {raw.shape} and {t.shape}")
    if not (math.isfinite(start_s) and start_s > 0):
        raise ValueError(f"start_s must be a positive decay time in seconds, got {start_s}")
    dt = float(np.median(np.diff(t)))
    obs = raw[: max(2, int(round(max_seconds / dt)))].astype(np.float64)  # the excerpt only
    keep = np.flatnonzero(np.isfinite(obs).sum(axis=0) >= MIN_SAMPLES + 8)
    if keep.size == 0:
        return {}
    if keep.size > max_rois:
        keep = keep[np.linspace(0, keep.size - 1, max_rois).round().astype(int)]
    obs = obs[:, keep]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xDECA1]))
    held = np.isfinite(obs) & (rng.random(obs.shape) < share)
    enough = (np.isfinite(obs) & ~held).sum(axis=0) >= MIN_SAMPLES
    if not enough.any():
        return {}
    obs, held = obs[:, enough], held[:, enough]
    kept = np.where(held, np.nan, obs)
    baseline = np.nanpercentile(kept, 10, axis=0)
    noise_sd = difference_noise_sd(kept)
    total = float((np.where(held, obs - np.nanmean(kept, axis=0)[None, :], 0.0) ** 2).sum())
    if total <= 0:
        return {}
    out = {}
    for k in range(-1, n_longer + 1):
        tau = float(start_s * HELDOUT_CANDIDATE_STEP ** k)
        if tau <= rise_s or tau > MAX_DECAY_S:
            continue
        kernel = Indicator("candidate", tau_rise=rise_s, tau_decay=tau, amplitude=1.0).kernel(dt)
        fit = sparse_deconvolve(kept, kernel, baseline=baseline, noise_sd=noise_sd).fitted
        resid = np.where(held, obs - fit, 0.0)
        out[tau] = 1.0 - float((resid ** 2).sum()) / total
    return out


def difference_noise_sd(values: np.ndarray) -> np.ndarray:
    """(N,) robust noise sd of each ROI of ``values`` (T, N), NaN where not observed: 1.4826 x the
    median absolute deviation of the differences between consecutive observed samples, over
    sqrt 2 (1 for an ROI with fewer than 4 samples), at least 1e-6; in the values' units."""
    v = np.asarray(values, dtype=np.float64)
    out = np.empty(v.shape[1])
    for i in range(v.shape[1]):
        d = np.diff(v[np.isfinite(v[:, i]), i])
        out[i] = 1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0) if d.size > 2 else 1.0
    return np.maximum(out, 1e-6)


def lengthened_decay(estimate_s: float, scores: dict[float, float],
                     from_s: float = LENGTHEN_FROM_S) -> float:
    """The recording's decay estimate lengthened by what held-out samples prefer.

    ``scores``: :func:`heldout_decay_scores`. When ``estimate_s`` is at least ``from_s`` (s) and
    the best-scoring decay is longer than it and predicts the held-out samples at all (R^2 > 0),
    their geometric mean; otherwise ``estimate_s`` itself. One-sided because the
    two err in opposite directions where the truth is known: the AR(1) estimate runs short under
    slow indicators (GCaMP6s, 1.25 s, estimated at 0.44-0.74 s on the family's tune cells) and the
    held-out pick long under fast ones on the simulator, short on real recordings (the tune
    ground-truth sets DS09 / DS32). Measured with these functions: on the 12 tune cells of the
    family's seed 7 the median |log(estimate / true decay)| falls from 0.37 to 0.26 and the worst
    from 0.88 to 0.52 (GCaMP6s 0.75 -> 1.26 s and 0.53 -> 0.74 s for 1.25 s; accurate estimates of
    fast indicators lengthened by up to 1.7x); on DS09 and DS32 at every 1st, 2nd and 4th frame
    the best decay was never longer than the estimate, so nothing changes there
    (benchmarks/RESULTS.md, "Issue 14, twelfth session").
    """
    if not scores or estimate_s < from_s:
        return float(estimate_s)
    best = max(scores, key=scores.get)
    if best <= estimate_s or not scores[best] > 0.0:
        return float(estimate_s)
    return float(np.clip(math.sqrt(estimate_s * best), MIN_DECAY_S, MAX_DECAY_S))
