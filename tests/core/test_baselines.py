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


def test_oasis_gives_the_same_answer_twice_and_leaves_the_global_generator() -> None:
    """OASIS draws from NumPy's global generator when its AR(1) root leaves (0, 1), which a
    drifting trace reaches; each call must still give one answer, and the caller's global
    random stream must go on as if OASIS had not run."""
    from napari_sbtt.core.baselines import oasis_decay_time
    from napari_sbtt.core.kinetics import estimate_decay_time

    rng = np.random.default_rng(1)
    walks = [np.cumsum(rng.normal(size=100)) * 0.1 + rng.normal(size=100) for _ in range(6)]
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    first = [oasis_decay_time(w, 0.1) for w in walks]
    assert np.array_equal(np.random.random(3), expected)
    np.random.seed(7)  # another global state: the same answers
    assert [oasis_decay_time(w, 0.1) for w in walks] == first
    obs = np.stack(walks, axis=1)
    times = np.arange(100) * 0.1
    assert estimate_decay_time(obs, times) == estimate_decay_time(obs, times)
