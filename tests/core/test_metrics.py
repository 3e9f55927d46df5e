"""Tests for napari_sbtt.core.metrics, cross-checked against sklearn and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter1d
from scipy.stats import norm, pearsonr

from napari_sbtt.core.metrics import (
    HALF_NORMAL_MEDIAN,
    cascade_bias,
    cascade_error,
    gaussian_smooth,
    median_over_rois,
    noise_level,
    noise_std_for_level,
    noise_std_to_reach,
    pearson_r,
    r2_score,
)

sk_metrics = pytest.importorskip("sklearn.metrics")

# ---------------------------------------------------------------- R^2


def test_r2_hand_worked():
    # ss_res = 1, ss_tot = 2 -> 0.5; second neuron perfect -> 1
    true = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 5.0]])
    pred = np.array([[1.0, 0.0], [2.0, 1.0], [4.0, 5.0]])
    np.testing.assert_allclose(r2_score(true, pred, multioutput="raw_values"), [0.5, 1.0])
    assert r2_score(true, pred) == pytest.approx(0.75)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 40),
    st.integers(1, 6),
    st.integers(0, 2**32 - 1),
)
def test_r2_matches_sklearn(n_time, n, seed):
    rng = np.random.default_rng(seed)
    true = rng.normal(size=(n_time, n)) * rng.uniform(0.1, 10, n)
    pred = true + rng.normal(size=(n_time, n))
    for mo in ("uniform_average", "raw_values"):
        np.testing.assert_allclose(
            r2_score(true, pred, multioutput=mo),
            sk_metrics.r2_score(true, pred, multioutput=mo),
            rtol=1e-10,
            atol=1e-10,
        )


def test_r2_flattens_trials_like_the_sbtt_protocol():
    rng = np.random.default_rng(1)
    true = rng.poisson(3.0, size=(13, 50, 29)).astype(float)
    pred = true + rng.normal(size=true.shape)
    expected = sk_metrics.r2_score(true.reshape(-1, 29), pred.reshape(-1, 29))
    assert r2_score(true, pred) == pytest.approx(expected, rel=1e-12)


def test_r2_constant_true_column_follows_sklearn():
    true = np.array([[1.0, 2.0, 0.0], [1.0, 2.0, 1.0], [1.0, 2.0, 2.0]])
    pred = np.array([[1.0, 2.5, 0.0], [1.0, 2.0, 1.0], [1.0, 1.0, 2.0]])
    ours = r2_score(true, pred, multioutput="raw_values")
    np.testing.assert_array_equal(ours, [1.0, 0.0, 1.0])
    np.testing.assert_allclose(
        ours, sk_metrics.r2_score(true, pred, multioutput="raw_values")
    )


def test_r2_skips_nan_per_neuron():
    rng = np.random.default_rng(2)
    true = rng.normal(size=(60, 3))
    pred = true + 0.5 * rng.normal(size=(60, 3))
    true[rng.random(true.shape) < 0.2] = np.nan
    pred[rng.random(pred.shape) < 0.2] = np.nan
    ours = r2_score(true, pred, multioutput="raw_values")
    for j in range(3):
        ok = ~np.isnan(true[:, j]) & ~np.isnan(pred[:, j])
        assert ours[j] == pytest.approx(sk_metrics.r2_score(true[ok, j], pred[ok, j]))
    # a neuron with no usable pair is left out of the mean
    true[:, 1] = np.nan
    raw = r2_score(true, pred, multioutput="raw_values")
    assert np.isnan(raw[1])
    assert r2_score(true, pred) == pytest.approx(np.mean(raw[[0, 2]]))


def test_r2_errors():
    with pytest.raises(ValueError, match="same shape"):
        r2_score(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="multioutput"):
        r2_score(np.zeros((4, 2)), np.zeros((4, 2)), multioutput="variance_weighted")


# ---------------------------------------------------------------- smoothing


def test_smooth_matches_gaussian_filter_without_nan():
    x = np.random.default_rng(3).normal(size=(200, 4))
    out = gaussian_smooth(x, 0.05, 1 / 60)
    np.testing.assert_allclose(out, gaussian_filter1d(x, 3.0, axis=0), rtol=1e-12)
    np.testing.assert_allclose(out.sum(axis=0), x.sum(axis=0), rtol=1e-10)  # mass kept
    np.testing.assert_array_equal(gaussian_smooth(x, 0.0, 0.01), x)


def test_smooth_nan_aware():
    x = np.full((50, 1), 2.5)
    x[10:15] = np.nan
    out = gaussian_smooth(x, 0.03, 0.01)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(x))
    np.testing.assert_allclose(out[~np.isnan(out)], 2.5)  # constant stays constant
    filled = gaussian_smooth(x, 0.03, 0.01, keep_nan=False)
    np.testing.assert_allclose(filled, 2.5)
    # a gap wider than the kernel reach stays NaN even when filling
    y = np.ones(100)
    y[20:80] = np.nan
    assert np.isnan(gaussian_smooth(y, 0.01, 0.01, keep_nan=False)[50])


def test_smooth_errors():
    with pytest.raises(ValueError, match="dt_s"):
        gaussian_smooth(np.zeros(5), 0.05, 0.0)
    with pytest.raises(ValueError, match="sigma_s"):
        gaussian_smooth(np.zeros(5), -1.0, 0.01)


# ---------------------------------------------------------------- Pearson r


def test_pearson_matches_scipy_raw_and_smoothed():
    rng = np.random.default_rng(4)
    spikes = rng.poisson(0.2, size=(300, 5)).astype(float)
    pred = spikes + rng.normal(scale=0.5, size=spikes.shape)
    raw = pearson_r(spikes, pred)
    assert raw.shape == (5,)
    for j in range(5):
        assert raw[j] == pytest.approx(pearsonr(spikes[:, j], pred[:, j])[0], rel=1e-10)
    dt = 1 / 30
    sm = pearson_r(spikes, pred, sigma_s=0.05, dt_s=dt)
    s_sp = gaussian_filter1d(spikes, 0.05 / dt, axis=0)
    s_pr = gaussian_filter1d(pred, 0.05 / dt, axis=0)
    for j in range(5):
        assert sm[j] == pytest.approx(pearsonr(s_sp[:, j], s_pr[:, j])[0], rel=1e-10)
    # smoothing forgives timing jitter: a one-bin shift is uncorrelated raw, not smoothed
    late = np.roll(spikes, 1, axis=0)
    assert np.all(np.abs(pearson_r(spikes, late)) < 0.2)
    assert np.all(pearson_r(spikes, late, sigma_s=0.05, dt_s=dt) > 0.7)
    assert median_over_rois(sm) == pytest.approx(np.median(sm))


def test_pearson_nan_and_degenerate():
    rng = np.random.default_rng(5)
    t = rng.normal(size=(40, 3))
    p = t + rng.normal(size=(40, 3))
    p[::3, 0] = np.nan
    t[:, 1] = 1.0  # constant -> NaN like scipy
    t[:-1, 2] = np.nan  # a single usable bin -> NaN
    r = pearson_r(t, p)
    ok = ~np.isnan(p[:, 0])
    assert r[0] == pytest.approx(pearsonr(t[ok, 0], p[ok, 0])[0])
    assert np.isnan(r[1]) and np.isnan(r[2])
    assert median_over_rois(r) == pytest.approx(r[0])
    assert np.isnan(median_over_rois([np.nan, np.nan]))
    assert pearson_r(t[:, 0], p[:, 0]).shape == ()
    with pytest.raises(ValueError, match="dt_s"):
        pearson_r(t, p, sigma_s=0.05)


# ---------------------------------------------------------------- CASCADE error / bias


def test_cascade_error_bias_hand_worked():
    gt = np.array([0.0, 1.0, 0.0, 1.0])
    pred = np.array([0.0, 2.0, 0.0, 0.0])
    assert cascade_error(gt, pred) == pytest.approx(1.0)  # (1 + 1) / 2
    assert cascade_bias(gt, pred) == pytest.approx(0.0)  # right total
    np.testing.assert_allclose(cascade_bias(gt, 2 * gt), 1.0)
    np.testing.assert_allclose(cascade_error(gt, 0 * gt), 1.0)
    np.testing.assert_allclose(cascade_bias(gt, 0 * gt), -1.0)


def test_cascade_metrics_smoothed_per_roi():
    rng = np.random.default_rng(6)
    gt = rng.poisson(0.1, size=(500, 3)).astype(float)
    kw = dict(sigma_s=0.05, dt_s=1 / 60)
    np.testing.assert_allclose(cascade_error(gt, gt, **kw), 0.0, atol=1e-12)
    np.testing.assert_allclose(cascade_bias(gt, 1.5 * gt, **kw), 0.5, rtol=1e-9)
    # smoothing forgives a one-bin shift that the raw error punishes fully
    shifted = np.roll(gt, 1, axis=0)
    assert np.all(cascade_error(gt, shifted, **kw) < cascade_error(gt, shifted))
    # reference: explicit formula on smoothed traces
    sp = gaussian_filter1d(shifted, 3.0, axis=0)
    sg = gaussian_filter1d(gt, 3.0, axis=0)
    np.testing.assert_allclose(
        cascade_error(gt, shifted, **kw), np.abs(sp - sg).sum(0) / sg.sum(0), rtol=1e-10
    )
    silent = np.zeros((20, 1))
    assert np.isnan(cascade_error(silent, silent)[0])
    assert np.isnan(cascade_bias(silent, silent)[0])


# ---------------------------------------------------------------- noise level


def test_noise_level_hand_worked():
    dff = np.array([0.0, 0.01, 0.03, 0.03])  # |diffs| 0.01, 0.02, 0 -> median 0.01
    assert noise_level(dff, 100.0) == pytest.approx(0.01 / 10 * 100)
    gappy = np.array([[0.0, np.nan, 0.5, 0.5, 0.6]]).T  # pairs (0.5,0.5), (0.5,0.6)
    np.testing.assert_allclose(noise_level(gappy, 1.0), [5.0])
    assert np.isnan(noise_level(np.array([[1.0], [np.nan], [2.0]]), 30.0)[0])
    with pytest.raises(ValueError, match="frame_rate_hz"):
        noise_level(dff, 0.0)


def test_half_normal_median_constant():
    assert pytest.approx(norm.ppf(0.75), rel=1e-14) == HALF_NORMAL_MEDIAN
    assert pytest.approx(0.6745, abs=1e-4) == HALF_NORMAL_MEDIAN


@pytest.mark.parametrize(("nu", "rate"), [(1.0, 30.0), (4.0, 122.0), (8.0, 7.5)])
def test_noise_std_round_trip(nu, rate):
    rng = np.random.default_rng(7)
    std = noise_std_for_level(nu, rate)
    noise = rng.normal(scale=std, size=(100_000, 2))
    # sampling error of the median of 1e5 samples is well under 1 %
    np.testing.assert_allclose(noise_level(noise, rate), nu, rtol=0.02)


def test_noise_std_for_level_formula_and_errors():
    assert noise_std_for_level(1.0, 100.0) == pytest.approx(10 / (100 * np.sqrt(2) * 0.67449))
    np.testing.assert_allclose(
        noise_std_for_level(np.array([2.0, 4.0]), 30.0),
        [noise_std_for_level(2.0, 30.0), noise_std_for_level(4.0, 30.0)],
    )
    with pytest.raises(ValueError):
        noise_std_for_level(-1.0, 30.0)


def test_noise_std_to_reach():
    rng = np.random.default_rng(8)
    rate = 60.0
    base = rng.normal(scale=noise_std_for_level(1.0, rate), size=(100_000, 1))
    extra = noise_std_to_reach(4.0, noise_level(base, rate), rate)
    degraded = base + rng.normal(size=base.shape) * extra
    np.testing.assert_allclose(noise_level(degraded, rate), 4.0, rtol=0.02)
    assert noise_std_to_reach(2.0, 2.0, rate) == 0.0
    with pytest.raises(ValueError, match="below the current"):
        noise_std_to_reach(1.0, 2.0, rate)
