"""spread_over_gaps: a jump's timing as far as an ROI's samples can place it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_sbtt.core.deconvolution import sparse_deconvolve, spread_over_gaps
from napari_sbtt.core.metrics import median_over_rois, pearson_r


def _gaps(observed: np.ndarray) -> np.ndarray:
    """Gap index of every bin up to the last sample (idx[g-1] < t <= idx[g]), -1 after it."""
    idx = np.flatnonzero(observed)
    t = np.arange(observed.size)
    g = np.searchsorted(idx, t, side="left")
    return np.where(t <= (idx[-1] if idx.size else -1), g, -1)


@settings(max_examples=60, deadline=None)
@given(T=st.integers(1, 80), n=st.integers(1, 4), L=st.integers(1, 30), share=st.floats(0.0, 1.0),
       seed=st.integers(0, 10_000))
def test_every_gap_keeps_its_sum_and_the_tail_is_left(T: int, n: int, L: int, share: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    observed = rng.random((T, n)) < share
    jumps = np.where(rng.random((T, n)) < 0.3, rng.random((T, n)), 0.0)
    kern = np.exp(-np.arange(L) / rng.uniform(0.5, 20.0))
    out = spread_over_gaps(jumps, observed, kern)
    assert out.shape == (T, n) and out.dtype == np.float64 and (out >= 0).all()
    for i in range(n):
        g = _gaps(observed[:, i])
        for gi in np.unique(g[g >= 0]):
            np.testing.assert_allclose(out[g == gi, i].sum(), jumps[g == gi, i].sum(), atol=1e-12)
        np.testing.assert_array_equal(out[g < 0, i], jumps[g < 0, i])  # after the last sample
    # linear: a trace's scale (deconvolve_traces standardises each trace) does not matter
    np.testing.assert_allclose(spread_over_gaps(3.5 * jumps, observed, kern), 3.5 * out, rtol=1e-12)
    # jumps that were not moved stay where they were on a fully sampled ROI
    np.testing.assert_array_equal(spread_over_gaps(jumps, np.ones((T, n), bool), kern), jumps)


def test_a_slow_kernel_spreads_evenly_and_a_fast_one_keeps_the_jump_near_the_sample() -> None:
    observed = np.zeros((9, 1), bool)
    observed[[0, 8]] = True
    jumps = np.zeros((9, 1))
    jumps[8] = 8.0  # the solver's choice: right at the sample that saw it
    slow = spread_over_gaps(jumps, observed, np.exp(-np.arange(50) / 1e6))
    np.testing.assert_allclose(slow[1:, 0], 1.0, rtol=1e-5)
    assert slow[0, 0] == 0.0
    fast = spread_over_gaps(jumps, observed, np.exp(-np.arange(50) / 0.5))
    assert fast[8, 0] > 6.0 and np.all(np.diff(fast[1:, 0]) > 0)


def test_a_kernel_that_never_reaches_the_sample_shares_evenly_and_nan_counts_as_zero() -> None:
    observed = np.zeros((6, 1), bool)
    observed[[0, 5]] = True
    jumps = np.array([[0.0], [np.nan], [0.0], [2.0], [0.0], [0.0]])
    delayed = np.zeros(20)
    delayed[10:] = 1.0  # an onset delay longer than the gap
    np.testing.assert_allclose(spread_over_gaps(jumps, observed, delayed)[1:, 0], 0.4)
    never = np.zeros((6, 1), bool)
    np.testing.assert_array_equal(spread_over_gaps(jumps, never, delayed), np.nan_to_num(jumps))


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="jumps must be"):
        spread_over_gaps(np.zeros(5), np.ones(5, bool), np.ones(3))
    with pytest.raises(ValueError, match="observed must"):
        spread_over_gaps(np.zeros((5, 2)), np.ones((5, 1), bool), np.ones(3))
    with pytest.raises(ValueError, match="kernels must be"):
        spread_over_gaps(np.zeros((5, 2)), np.ones((5, 2), bool), np.ones((3, 3)))


def test_spread_events_follow_the_true_activity_more_closely_on_a_sparse_scan() -> None:
    """Every 16th bin sampled (a phase per ROI), a slow indicator: the solver's jumps sit just
    before the samples; spread over the gaps they correlate better with the true events."""
    rng = np.random.default_rng(3)
    T, n = 4000, 6
    t = np.arange(T)
    rate = 0.02 * (1.0 + np.sin(2 * np.pi * t[:, None] / 400.0 + rng.uniform(0, 6, n)))
    spikes = rng.poisson(rate).astype(float)
    kern = np.exp(-np.arange(300) / 60.0)
    calcium = np.stack([np.convolve(spikes[:, i], kern)[:T] for i in range(n)], axis=1)
    y = calcium + 0.1 * rng.standard_normal((T, n))
    observed = np.zeros((T, n), bool)
    for i in range(n):
        observed[i % 16::16, i] = True
    y[~observed] = np.nan
    res = sparse_deconvolve(y, kern, baseline=0.0, noise_sd=0.1)
    spread = spread_over_gaps(res.jumps, observed, kern)
    r_raw = median_over_rois(pearson_r(spikes, res.jumps, sigma_s=0.03, dt_s=0.01))
    r_spread = median_over_rois(pearson_r(spikes, spread, sigma_s=0.03, dt_s=0.01))
    assert r_spread > r_raw + 0.05, (r_raw, r_spread)
