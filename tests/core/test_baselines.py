"""OASIS baseline: events at each ROI's own samples, and rates on the fine grid."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("oasis")

from napari_sbtt.core.baselines import oasis_events, oasis_rates  # noqa: E402


def _sparse_ar1(T: int = 2000, every: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two ROIs sampled every ``every``-th bin (phases 0 and 1): AR(1) calcium of sparse spikes."""
    rng = np.random.default_rng(seed)
    n = T // every
    spikes = (rng.random((n, 2)) < 0.03).astype(float)
    c = np.zeros((n, 2))
    for t in range(n):
        c[t] = (0.9 * c[t - 1] if t else 0.0) + spikes[t]
    y = c + 0.02 * rng.standard_normal((n, 2))
    obs = np.full((T, 2), np.nan)
    obs[0::every, 0] = y[:, 0]
    obs[1::every, 1] = y[:, 1]
    times = (np.arange(T) + 0.5) * 0.01
    return obs, times, spikes


def test_oasis_events_sit_on_the_samples_and_find_the_spikes() -> None:
    obs, times, spikes = _sparse_ar1()
    ev = oasis_events(obs, times)
    assert ev.shape == obs.shape
    np.testing.assert_array_equal(np.isnan(ev), np.isnan(obs))
    assert np.nanmin(ev) >= 0.0
    for i, phase in enumerate((0, 1)):
        e = ev[phase::4, i]
        assert np.corrcoef(e, spikes[:, i])[0, 1] > 0.9


def test_oasis_rates_fill_the_grid_and_reject_bad_shapes() -> None:
    obs, times, _ = _sparse_ar1()
    rates = oasis_rates(obs, times)
    assert np.isfinite(rates).all()
    ev = oasis_events(obs, times)
    # at the samples the rate is the event per second of sampling interval
    np.testing.assert_allclose(rates[0::4, 0], ev[0::4, 0] / 0.04, rtol=1e-6, atol=1e-9)
    few = np.full((50, 1), np.nan)
    few[:3, 0] = 1.0
    assert np.isnan(oasis_events(few, times[:50])).all()
    with pytest.raises(ValueError, match="T_fine, N"):
        oasis_events(obs[:, 0], times)
