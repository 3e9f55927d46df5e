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


def _plain_fista_objective(y: np.ndarray, k: np.ndarray, sd: np.ndarray, sparsity: float, n_iter: int) -> np.ndarray:
    """The solver before issue 13 (plain FISTA, 6 transforms an iteration, baseline refitted after
    each step; main at f2ab6ac), run for ``n_iter`` iterations: the objective (N,) it reaches."""
    from scipy.fft import irfft, next_fast_len, rfft

    yt = y.T
    n, T = yt.shape
    L = k.size
    P = L - 1
    size = next_fast_len(T + P + L)
    kf = rfft(np.broadcast_to(k, (n, L)), size, axis=1)
    mask = np.isfinite(yt)
    yy = np.where(mask, yt, 0.0)
    w = 1.0 / sd[:, None] ** 2
    lip = np.maximum((np.abs(kf) ** 2).max(axis=1) * w[:, 0], 1e-12)[:, None]
    lam = (sparsity * np.linalg.norm(k) / sd)[:, None]

    def forward(s):
        return irfft(rfft(s, size, axis=1) * kf, size, axis=1)[:, P:P + T]

    def adjoint(r):
        full = np.zeros((n, P + T))
        full[:, P:] = r
        return irfft(rfft(full[:, ::-1], size, axis=1) * kf, size, axis=1)[:, :P + T][:, ::-1]

    cnt = mask.sum(axis=1)
    b = np.where(mask, yy, 0.0).sum(axis=1) / np.maximum(cnt, 1)
    s = np.zeros((n, P + T))
    zs = s.copy()
    t_k = 1.0
    for _ in range(n_iter):
        resid = np.where(mask, forward(zs) + b[:, None] - yy, 0.0) * w
        s_new = np.maximum(zs - (adjoint(resid) + lam) / lip, 0.0)
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t_k * t_k))
        zs = s_new + ((t_k - 1.0) / t_next) * (s_new - s)
        s, t_k = s_new, t_next
        b = np.where(mask, yy - forward(s), 0.0).sum(axis=1) / np.maximum(cnt, 1)
    r = np.where(mask, forward(s) + b[:, None] - yy, 0.0)
    return 0.5 * w[:, 0] * (r * r).sum(axis=1) + lam[:, 0] * s.sum(axis=1)


def test_reaches_the_plain_solvers_optimum_in_fewer_iterations() -> None:
    """Same problem, same answer: the objective of the plain FISTA run to convergence (4000
    iterations; 20000 move it by ~1e-9) within 1e-4 (the duality gap certifies it), with NaN
    gaps, and at that many iterations the plain solver is still further away."""
    rng = np.random.default_rng(3)
    k = _kernel(tau_d=8.0, tau_r=1.0, length=40)
    T, n = 500, 3
    spikes = (rng.random((T, n)) < 0.02) * rng.uniform(0.5, 1.5, (T, n))
    sd = np.array([0.05, 0.1, 0.2])
    y = 0.3 + np.stack([np.convolve(spikes[:, i], k)[:T] for i in range(n)], axis=1) + sd * rng.standard_normal((T, n))
    y[rng.random((T, n)) < 0.3] = np.nan
    y[100:160, 1] = np.nan  # a long gap
    optimum = _plain_fista_objective(y, k, sd, 0.5, 4000)
    res = sparse_deconvolve(y, k, baseline=0.0, noise_sd=sd, sparsity=0.5, n_iter=2000, tol=1e-4)
    assert res.converged.all() and res.iterations < 2000
    np.testing.assert_allclose(res.objective, optimum, rtol=1e-4)
    assert np.max(np.abs(res.objective - optimum) / optimum) < 1e-6  # measured: 3e-8
    plain = _plain_fista_objective(y, k, sd, 0.5, res.iterations)
    assert np.max((plain - optimum) / optimum) > 1e-5  # measured: 4e-5 at 605 iterations


def test_the_result_does_not_depend_on_the_chunk_or_the_threads() -> None:
    """Each ROI stops, and moves to double precision near the optimum, on its own: the same
    numbers however many threads the transforms use, and whichever ROIs share its block."""
    rng = np.random.default_rng(5)
    k = _kernel(tau_d=6.0, tau_r=1.0, length=30)
    T, n = 300, 5
    spikes = (rng.random((T, n)) < 0.03) * rng.uniform(0.5, 1.5, (T, n))
    y = 0.3 + np.stack([np.convolve(spikes[:, i], k)[:T] for i in range(n)], axis=1)
    y += np.array([0.02, 0.05, 0.1, 0.2, 0.05]) * rng.standard_normal((T, n))
    y[::3, 2] = np.nan
    one = sparse_deconvolve(y, k, baseline=0.3, noise_sd=0.05, chunk=1, n_iter=400, tol=1e-4)
    assert one.converged.any() and not one.converged.all()  # ROIs stop at different iterations
    threads = sparse_deconvolve(y, k, baseline=0.3, noise_sd=0.05, chunk=1, workers=2, n_iter=400, tol=1e-4)
    assert np.array_equal(one.jumps, threads.jumps) and np.array_equal(one.objective, threads.objective)
    for chunk in (3, 8):  # batched double-precision transforms may round differently (~1e-15)
        other = sparse_deconvolve(y, k, baseline=0.3, noise_sd=0.05, n_iter=400, tol=1e-4, chunk=chunk)
        np.testing.assert_allclose(other.jumps, one.jumps, rtol=0, atol=1e-12)
        np.testing.assert_allclose(other.objective, one.objective, rtol=1e-12)
        assert np.array_equal(one.converged, other.converged)
