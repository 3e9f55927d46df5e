"""The recording's decay time from its own samples (runs that name no indicator)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("oasis")

from napari_sbtt.core.indicators import get_indicator
from napari_sbtt.core.kinetics import MIN_SAMPLES, decay_time_of_series, estimate_decay_time


def _recording(name: str, rate_hz: float, k: int, seed: int = 0, n: int = 6, seconds: float = 120.0):
    rng = np.random.default_rng(seed)
    ind = get_indicator(name)
    dt = 1.0 / rate_hz
    T = int(seconds * rate_hz)
    spikes = rng.poisson(0.5 * dt, (T, n)).astype(float)
    kernel = ind.kernel(dt, int(8 * ind.tau_decay / dt))
    calcium = np.stack([np.convolve(spikes[:, i], kernel)[:T] for i in range(n)], axis=1)
    y = calcium + rng.normal(0, 0.05, calcium.shape)
    y[np.arange(T) % k != 0] = np.nan  # every k-th frame kept
    return y, np.arange(T) * dt, ind.tau_decay


@pytest.mark.parametrize(("name", "rate_hz", "k"), [("GCaMP6f", 30, 1), ("GCaMP6s", 60, 4), ("GCaMP8m", 60, 2)])
def test_estimate_is_within_a_factor_of_two(name: str, rate_hz: float, k: int) -> None:
    y, t, tau = _recording(name, rate_hz, k)
    est = estimate_decay_time(y, t)
    assert est is not None and 0.5 * tau < est < 2.0 * tau


def test_slow_and_fast_indicators_are_told_apart() -> None:
    slow = estimate_decay_time(*_recording("GCaMP6s", 30, 1)[:2])
    fast = estimate_decay_time(*_recording("GCaMP8m", 30, 1)[:2])
    assert slow is not None and fast is not None and slow > 2 * fast


def test_series_of_different_lengths_and_too_few_samples() -> None:
    y, t, tau = _recording("GCaMP6f", 30, 1, n=4)
    series = [y[: 1000 + 500 * i, i] for i in range(4)]
    est = decay_time_of_series(series, [t[: s.size] for s in series])
    assert est is not None and 0.5 * tau < est < 2.0 * tau
    assert estimate_decay_time(y[: MIN_SAMPLES - 1], t[: MIN_SAMPLES - 1]) is None
    with pytest.raises(ValueError, match=r"\(T, N\)"):
        estimate_decay_time(y[:, 0], t)


def test_sampling_every_nth_bin_is_corrected() -> None:
    from napari_sbtt.core.kinetics import SUBSAMPLING_EXPONENT

    y, t, _ = _recording("GCaMP6f", 60, 4)
    kept = np.isfinite(y[:, 0])
    series, times = [y[kept, i] for i in range(y.shape[1])], [t[kept]] * y.shape[1]
    plain = decay_time_of_series(series, times)  # as if every bin had been sampled
    corrected = decay_time_of_series(series, times, bin_width=1 / 60)
    assert plain is not None and corrected == pytest.approx(plain / 4 ** SUBSAMPLING_EXPONENT, rel=1e-6)
    assert estimate_decay_time(y, t) == pytest.approx(corrected, rel=1e-6)  # bin width from the grid


def test_the_sampling_correction_is_not_extrapolated_beyond_every_4th_bin() -> None:
    from napari_sbtt.core.kinetics import MAX_CORRECTED_N, SUBSAMPLING_EXPONENT

    y, t, _ = _recording("GCaMP6f", 60, 8)
    kept = np.isfinite(y[:, 0])
    series, times = [y[kept, i] for i in range(y.shape[1])], [t[kept]] * y.shape[1]
    plain = decay_time_of_series(series, times)
    corrected = decay_time_of_series(series, times, bin_width=1 / 60)
    assert corrected == pytest.approx(plain / MAX_CORRECTED_N ** SUBSAMPLING_EXPONENT, rel=1e-6)



def test_heldout_scores_peak_near_the_true_decay_and_lengthen_a_short_start() -> None:
    from napari_sbtt.core.kinetics import (
        HELDOUT_CANDIDATE_STEP,
        heldout_decay_scores,
        lengthened_decay,
    )

    y, t, tau = _recording("GCaMP6s", 30, 2, seconds=90.0)  # 1.25 s decay
    start = 0.5  # an estimate far too short
    scores = heldout_decay_scores(y, t, start, rise_s=0.05)
    assert sorted(scores) == list(scores)  # increasing decays
    assert min(scores) == pytest.approx(start / HELDOUT_CANDIDATE_STEP)
    assert max(scores) == pytest.approx(start * HELDOUT_CANDIDATE_STEP ** 4)
    best = max(scores, key=scores.get)
    assert tau / HELDOUT_CANDIDATE_STEP <= best <= tau * HELDOUT_CANDIDATE_STEP ** 2
    longer = lengthened_decay(start, scores)
    assert longer == pytest.approx(np.sqrt(start * best))
    assert start < longer < tau


def test_lengthened_decay_only_ever_lengthens() -> None:
    from napari_sbtt.core.kinetics import lengthened_decay

    assert lengthened_decay(0.5, {}) == 0.5
    assert lengthened_decay(0.5, {0.35: 0.9, 0.5: 0.8, 1.0: 0.7}) == 0.5  # a shorter pick: kept
    assert lengthened_decay(0.5, {0.5: 0.8, 2.0: 0.9}) == pytest.approx(1.0)  # sqrt(0.5 * 2)
    assert lengthened_decay(0.5, {0.5: -0.3, 2.0: -0.1}) == 0.5  # no decay predicts the samples: kept


def test_lengthened_decay_keeps_estimates_of_fast_indicators() -> None:
    from napari_sbtt.core.kinetics import LENGTHEN_FROM_S, lengthened_decay

    short = 0.8 * LENGTHEN_FROM_S
    assert lengthened_decay(short, {short: 0.5, 4 * short: 0.9}) == short
    assert lengthened_decay(short, {short: 0.5, 4 * short: 0.9}, from_s=0.5 * short) == pytest.approx(2 * short)
    at = LENGTHEN_FROM_S
    assert lengthened_decay(at, {at: 0.5, 4 * at: 0.9}) == pytest.approx(2 * at)


def test_heldout_scores_need_enough_samples() -> None:
    from napari_sbtt.core.kinetics import heldout_decay_scores

    y, t, _ = _recording("GCaMP6f", 30, 1, seconds=1.5)  # 45 frames: too few to hold any out
    assert heldout_decay_scores(y, t, 0.5) == {}
    with pytest.raises(ValueError, match="start_s"):
        heldout_decay_scores(y, t, 0.0)


def test_series_decay_scales_follow_each_series_decay() -> None:
    """Each series' decay over the median series': slower series get larger factors, within
    SERIES_DECAY_SCALE_RANGE; 1 for a series too short to estimate, and for every series when
    fewer than MIN_SCALED_SERIES have a decay."""
    from napari_sbtt.core.kinetics import (
        MIN_SCALED_SERIES,
        SERIES_DECAY_SCALE_RANGE,
        series_decay_scales,
    )

    series, times = [], []
    for i, name in enumerate(["GCaMP8m", "GCaMP6f", "GCaMP6f", "GCaMP6s"]):
        y, t, _ = _recording(name, 30, 1, seed=i, n=1)
        series.append(y[:, 0])
        times.append(t)
    series.append(series[0][: MIN_SAMPLES - 1])
    times.append(times[0][: MIN_SAMPLES - 1])
    f = series_decay_scales(series, times)
    lo, hi = SERIES_DECAY_SCALE_RANGE
    assert f.shape == (5,) and f[4] == 1.0
    assert lo <= f.min() and f.max() <= hi
    assert f[0] < 0.8 < f[1] < 1.25 and f[3] > 1.5  # fast < GCaMP6f ~ the median < slow
    few = series_decay_scales(series[: MIN_SCALED_SERIES - 1], times[: MIN_SCALED_SERIES - 1])
    np.testing.assert_array_equal(few, np.ones(MIN_SCALED_SERIES - 1))
    with pytest.raises(ValueError, match="series of values"):
        series_decay_scales(series, times[:2])
