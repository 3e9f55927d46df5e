"""A few dim ROIs whose dF/F baseline reaches zero are left out of a run, with a warning;
more than a quarter of the ROIs is the usual F0 error."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sbtt.core.dff import delta_f_over_f_where_defined
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
    dff, kept = delta_f_over_f_where_defined(v, t, ids)
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
    with pytest.warns(UserWarning, match=r"left out ROI id\(s\) \[1\]"):
        obs = extract_observations(movie, labels, ScanPattern.full_raster(Y, T, 0.05), dff=True)
    assert obs.roi_ids.tolist() == [2, 3, 4]
    assert obs.values.shape[1] == 3 and obs.coverage.shape == (3,)
    assert obs.params["dff_left_out"] == [1]
    assert np.isfinite(obs.values).any(axis=0).all()
