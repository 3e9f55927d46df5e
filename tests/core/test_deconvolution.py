"""core.deconvolution.sparse_deconvolve: sparse non-negative deconvolution of NaN-missing samples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_sbtt.core.deconvolution import sparse_deconvolve
from napari_sbtt.core.metrics import pearson_r


def _kernel(tau_d: float = 20.0, tau_r: float = 2.0, length: int = 150) -> np.ndarray:
    t = np.arange(length, dtype=float)
    k = np.exp(-t / tau_d) - np.exp(-(t + 1.0) / tau_r)
    return k / k.max()


def _trace(T: int = 3000, n: int = 3, seed: int = 0, sd: float = 0.05):
    rng = np.random.default_rng(seed)
    spikes = (rng.random((T, n)) < 0.01) * rng.uniform(0.5, 1.5, (T, n))
    k = _kernel()
    calcium = np.stack([np.convolve(spikes[:, i], k)[:T] for i in range(n)], axis=1)
    y = 0.3 + calcium + sd * rng.standard_normal((T, n))
    return y, spikes, k


def test_recovers_sparse_events_and_the_baseline() -> None:
    y, spikes, k = _trace()
    res = sparse_deconvolve(y, k, baseline=0.0, noise_sd=0.05)
    assert res.jumps.shape == y.shape and (res.jumps >= 0).all()
    r = pearson_r(spikes, res.jumps, sigma_s=0.05, dt_s=0.01)
    assert np.min(r) > 0.9
    np.testing.assert_allclose(res.baseline, 0.3, atol=0.02)
    assert np.sqrt(np.mean((res.fitted - y) ** 2)) < 0.06


def test_every_other_sample_missing_still_places_events() -> None:
    y, spikes, k = _trace(seed=1)
    y[1::2] = np.nan
    res = sparse_deconvolve(y, k, baseline=0.3, noise_sd=0.05)
    assert np.min(pearson_r(spikes, res.jumps, sigma_s=0.05, dt_s=0.01)) > 0.8
    assert np.isfinite(res.fitted).all()  # the model's value exists in unobserved bins too


def test_calcium_present_at_the_start_is_not_a_burst_in_the_first_bin() -> None:
    k = _kernel()
    T = 400
    y = 0.1 + 2.0 * k[50:50 + T]  # a transient that began 50 bins before the recording
    res = sparse_deconvolve(y[:, None], k, baseline=0.1, noise_sd=0.01, refit_baseline=False)
    assert res.jumps[:5].sum() < 0.05  # explained by jumps before the start, which are not returned
    assert np.abs(res.fitted[:, 0] - y).max() < 0.05


def test_sparsity_trades_fit_for_fewer_events() -> None:
    y, _, k = _trace(seed=2)
    loose = sparse_deconvolve(y, k, baseline=0.3, noise_sd=0.05, sparsity=0.0)
    tight = sparse_deconvolve(y, k, baseline=0.3, noise_sd=0.05, sparsity=3.0)
    assert (tight.jumps > 1e-3).sum() < (loose.jumps > 1e-3).sum()


def test_an_roi_without_samples_gets_no_events() -> None:
    y, _, k = _trace()
    y[:, 1] = np.nan
    res = sparse_deconvolve(y, k, baseline=0.3, noise_sd=0.05)
    assert res.jumps[:, 1].max() == 0.0
    assert res.baseline[1] == pytest.approx(0.3)


@pytest.mark.parametrize("kwargs, match", [
    ({"noise_sd": 0.0}, "noise_sd"),
    ({"noise_sd": np.ones(2)}, "noise_sd"),
    ({"sparsity": -1.0}, "sparsity"),
])
def test_bad_arguments_are_refused(kwargs: dict, match: str) -> None:
    args = {"baseline": 0.0, "noise_sd": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        sparse_deconvolve(np.zeros((10, 3)), _kernel(length=5), **args)


def test_kernel_shape_must_match_the_rois() -> None:
    with pytest.raises(ValueError, match="kernels"):
        sparse_deconvolve(np.zeros((10, 3)), np.ones((2, 5)), baseline=0.0, noise_sd=1.0)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(5, 60), n=st.integers(1, 4), L=st.integers(1, 12), share=st.floats(0.0, 1.0),
       seed=st.integers(0, 10_000))
def test_shapes_signs_and_missing_data(T: int, n: int, L: int, share: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(T, n))
    y[rng.random((T, n)) < share] = np.nan
    res = sparse_deconvolve(y, rng.uniform(0.1, 1.0, (n, L)), baseline=0.0,
                            noise_sd=rng.uniform(0.5, 2.0, n), n_iter=30)
    assert res.jumps.shape == (T, n) and res.fitted.shape == (T, n)
    assert np.isfinite(res.jumps).all() and (res.jumps >= 0).all() and np.isfinite(res.fitted).all()
