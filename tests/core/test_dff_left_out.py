"""A few dim ROIs whose dF/F baseline reaches zero are left out of a run, with a warning;
more than a quarter of the ROIs is the usual F0 error."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sbtt.core.dff import (
    F0_SMOOTH_SAMPLES,
    delta_f_over_f_where_defined,
    running_percentile_baseline,
)
from napari_sbtt.core.scan import ScanPattern
from napari_sbtt.core.traces import extract_observations


def _values(n: int, n_dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    v = 100 + rng.normal(0, 1, size=(200, n))
    v[:, :n_dim] = rng.normal(0, 1, size=(200, n_dim))  # background-subtracted dim ROIs: F0 < 0
    t = np.repeat(np.arange(200.0)[:, None] * 0.1, n, axis=1)
    return v, t, np.arange(1, n + 1)


def test_dim_rois_are_nan_and_flagged() -> None:
    v, t, ids = _values(8, 2)
    dff, kept, smooth = delta_f_over_f_where_defined(v, t, ids)
    assert smooth == F0_SMOOTH_SAMPLES  # tried before leaving them out
    assert kept.tolist() == [False, False] + [True] * 6
    assert np.isnan(dff[:, :2]).all() and np.isfinite(dff[:, 2:]).all()
    assert abs(np.median(dff[:, 2:])) < 0.02


def test_more_than_a_quarter_is_an_error() -> None:
    v, t, ids = _values(8, 3)
    with pytest.raises(ValueError, match=r"F0 is <= 0 for ROI id\(s\) \[1, 2, 3\]"):
        delta_f_over_f_where_defined(v, t, ids)


def test_extraction_drops_the_dim_roi_and_says_so() -> None:
    T, Y, X = 40, 8, 8
    labels = np.zeros((Y, X), int)
    for k in range(4):
        labels[2 * k:2 * k + 2, :4] = k + 1
    rng = np.random.default_rng(1)
    movie = (200 + rng.normal(0, 1, size=(T, Y, X))).astype(np.float32)
    movie[:, 0:2, :] = rng.normal(0, 1, size=(T, 2, X))  # ROI 1 sits on the subtracted background
    with pytest.warns(UserWarning, match=r"left out ROI id\(s\) \[1\].*averaged over 9\)"):
        obs = extract_observations(movie, labels, ScanPattern.full_raster(Y, T, 0.05), dff=True)
    assert obs.params["f0_smooth_samples"] == 9  # tried before leaving it out
    assert obs.roi_ids.tolist() == [2, 3, 4]
    assert obs.values.shape[1] == 3 and obs.coverage.shape == (3,)
    assert obs.params["dff_left_out"] == [1]
    assert np.isfinite(obs.values).any(axis=0).all()


def test_noisy_dim_rois_get_a_smoothed_baseline_instead_of_being_dropped() -> None:
    rng = np.random.default_rng(3)
    T, n = 2400, 6
    t = np.repeat(np.arange(T)[:, None] * 0.05, n, axis=1)
    rest = np.array([100.0, 100.0, 100.0, 100.0, 1.0, 1.0])  # two dim ROIs: resting F 1, noise sd 0.8
    v = rest + rng.normal(0, 1, size=(T, n)) * np.where(rest > 10, 1.0, 0.8)
    plain = running_percentile_baseline(v, t, window=60.0, percentile=8)
    assert (plain[:, 4:] <= 0).any()  # shot noise drags the raw percentile below zero
    dff, kept, smooth = delta_f_over_f_where_defined(v, t, np.arange(1, n + 1))
    assert smooth == F0_SMOOTH_SAMPLES and kept.all()
    f0 = running_percentile_baseline(v, t, window=60.0, percentile=8, smooth_samples=smooth)
    assert 0.6 < np.median(f0[:, 4:]) < 1.0  # near the resting fluorescence 1
    np.testing.assert_allclose(dff, (v - f0) / f0)
    # a recording whose plain baseline is positive everywhere keeps it
    dff_b, kept_b, smooth_b = delta_f_over_f_where_defined(v[:, :4], t[:, :4], np.arange(1, 5))
    assert smooth_b == 1 and kept_b.all()
    np.testing.assert_allclose(dff_b, (v[:, :4] - plain[:, :4]) / plain[:, :4])


def test_smoothing_averages_consecutive_observed_samples_only() -> None:
    v = np.array([[0.0], [np.nan], [3.0], [6.0], [np.nan], [9.0]])
    t = np.where(np.isfinite(v), np.arange(6.0)[:, None], np.nan)
    f0 = running_percentile_baseline(v, t, window=100.0, percentile=0, smooth_samples=3)
    assert np.isnan(f0[1, 0]) and np.isnan(f0[4, 0])
    assert f0[0, 0] == pytest.approx(1.5)  # min of the running means 1.5, 3, 6, 7.5
    # an ROI with fewer samples than the average's width: the mean of what it has
    few = running_percentile_baseline(v[:3], t[:3], window=100.0, percentile=0, smooth_samples=9)
    assert few.shape == (3, 1) and few[0, 0] == pytest.approx(1.5) and np.isnan(few[1, 0])
    assert running_percentile_baseline(v[:1], t[:1], smooth_samples=9)[0, 0] == 0.0  # one sample
    with pytest.raises(ValueError, match="smooth_samples"):
        running_percentile_baseline(v, t, smooth_samples=0)
