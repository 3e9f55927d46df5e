"""Sparse non-negative deconvolution of ROI samples under a known calcium kernel.

The calcium model that SBTT learns (:class:`napari_sbtt.model.likelihoods.CalciumLikelihood`)
states, for every ROI, how a jump ``s`` of activity in one bin turns into fluorescence: a
kernel ``k`` (the indicator's transient), a baseline ``b`` and a noise sd ``sd``::

    y[t] = b + sum_j k[j] s[t - j] + noise,     s >= 0

:func:`sparse_deconvolve` finds, per ROI, the jumps that explain the observed samples best under
that model with an exponential (L1) prior that keeps them sparse, as spikes are:

    minimise  sum over observed t of (y[t] - b - (k * s)[t])^2 / (2 sd^2)
              + sparsity * ||k|| / sd * sum_t s[t]        subject to s >= 0

(the prior's weight is in units of the noise as seen through the kernel, so one ``sparsity``
suits every ROI and indicator). Unobserved bins (NaN) add nothing to the fit but may still hold
jumps that the kernel carries into observed bins, which is what makes it work on sparse scans.
Jumps in the ``k.size - 1`` bins before the first one explain calcium already present at the
start. Solved by FISTA (accelerated projected gradient) with FFT convolutions, vectorised over
ROIs.

numpy only. Units: ``values`` in any unit (dF/F); ``kernels`` in values per unit jump; the
returned jumps are in the units of ``values`` per bin (the fluorescence a bin's activity adds,
before it decays, for a kernel with ``k[0] = 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft

__all__ = ["DeconvolutionResult", "sparse_deconvolve"]


@dataclass
class DeconvolutionResult:
    """What :func:`sparse_deconvolve` returns.

    Attributes
    ----------
    jumps : float64 (T, N), >= 0: activity per bin in values' units (0 where none).
    fitted : float64 (T, N): the model's expected value of every bin, observed or not.
    baseline : float64 (N,): the baseline used (re-fitted when asked).
    iterations : int: FISTA iterations run.
    """

    jumps: np.ndarray
    fitted: np.ndarray
    baseline: np.ndarray
    iterations: int


def _as_2d(name: str, a: np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a number or an (N,) array with N = {n}, got shape {arr.shape}")
    return arr


def sparse_deconvolve(
    values: np.ndarray,
    kernels: np.ndarray,
    *,
    baseline: np.ndarray | float,
    noise_sd: np.ndarray | float,
    sparsity: float = 0.5,
    n_iter: int = 300,
    tol: float = 1e-5,
    refit_baseline: bool = True,
    chunk: int = 64,
) -> DeconvolutionResult:
    """Per-ROI sparse non-negative deconvolution of NaN-missing samples (module docstring).

    Parameters
    ----------
    values : (T, N) samples on a regular grid, NaN where an ROI was not observed.
    kernels : (N, L) or (L,) kernel of each ROI, values per unit jump, lag 0 first.
    baseline : (N,) or scalar, the fluorescence without activity (values' units).
    noise_sd : (N,) or scalar > 0, sd of the observation noise (values' units).
    sparsity : weight z >= 0 of the exponential prior, in units of ``||k|| / sd``.
    n_iter : maximum FISTA iterations; ``tol`` stops earlier when the jumps change by less
        than this share of their size.
    refit_baseline : re-estimate each ROI's constant baseline from the residual as it goes.
    chunk : ROIs solved together (memory ~ 12 x chunk x (T + L) float64).

    Returns
    -------
    DeconvolutionResult
    """
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"values must be (T, N), got shape {y.shape}")
    T, N = y.shape
    k = np.asarray(kernels, dtype=np.float64)
    if k.ndim == 1:
        k = np.broadcast_to(k, (N, k.size))
    if k.ndim != 2 or k.shape[0] != N or k.shape[1] < 1:
        raise ValueError(f"kernels must be (N, L) with N = {N}, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("kernels must be finite")
    b0 = _as_2d("baseline", baseline, N)
    sd = _as_2d("noise_sd", noise_sd, N)
    if not np.all(sd > 0):
        raise ValueError("noise_sd must be > 0 for every ROI")
    if not (np.isfinite(sparsity) and sparsity >= 0):
        raise ValueError(f"sparsity must be a number >= 0, got {sparsity}")
    jumps = np.zeros((T, N))
    fitted = np.zeros((T, N))
    base = b0.copy()
    iters = 0
    for lo in range(0, N, max(1, int(chunk))):
        hi = min(N, lo + max(1, int(chunk)))
        s, f, b, it = _solve(y[:, lo:hi].T, k[lo:hi], b0[lo:hi], sd[lo:hi], float(sparsity),
                             int(n_iter), float(tol), bool(refit_baseline))
        jumps[:, lo:hi], fitted[:, lo:hi], base[lo:hi] = s.T, f.T, b
        iters = max(iters, it)
    return DeconvolutionResult(jumps=jumps, fitted=fitted, baseline=base, iterations=iters)


def _solve(y: np.ndarray, k: np.ndarray, b: np.ndarray, sd: np.ndarray, z: float, n_iter: int,
           tol: float, refit: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """FISTA for a block of ROIs: y (n, T), k (n, L) -> (jumps (n, T), fitted (n, T), b, iters)."""
    n, T = y.shape
    L = k.shape[1]
    P = L - 1  # bins before the start that may hold jumps (calcium already present)
    size = next_fast_len(T + P + L)
    kf = rfft(k, size, axis=1)
    mask = np.isfinite(y)
    yy = np.where(mask, y, 0.0)
    w = 1.0 / sd[:, None] ** 2
    # Lipschitz constant of the data term's gradient: max |K(f)|^2 / sd^2
    lip = (np.abs(kf) ** 2).max(axis=1) * w[:, 0]
    lip = np.maximum(lip, 1e-12)[:, None]
    lam = (z * np.linalg.norm(k, axis=1) / sd)[:, None]
    b = b.copy()

    def forward(s: np.ndarray) -> np.ndarray:  # (n, P + T) jumps -> (n, T) calcium at the samples
        return irfft(rfft(s, size, axis=1) * kf, size, axis=1)[:, P:P + T]

    def adjoint(r: np.ndarray) -> np.ndarray:  # (n, T) residual -> (n, P + T)
        full = np.zeros((n, P + T))
        full[:, P:] = r
        c = irfft(rfft(full[:, ::-1], size, axis=1) * kf, size, axis=1)[:, :P + T]
        return c[:, ::-1]

    cnt = mask.sum(axis=1)
    s = np.zeros((n, P + T))
    zs = s.copy()
    t_k = 1.0
    it = 0
    for it in range(1, n_iter + 1):
        resid = np.where(mask, forward(zs) + b[:, None] - yy, 0.0) * w
        s_new = np.maximum(zs - (adjoint(resid) + lam) / lip, 0.0)
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t_k * t_k))
        zs = s_new + ((t_k - 1.0) / t_next) * (s_new - s)
        change = np.abs(s_new - s).sum() / max(np.abs(s_new).sum(), 1e-12)
        s, t_k = s_new, t_next
        if refit:  # exact baseline for the current jumps (block coordinate step; jointly convex)
            b = np.where(cnt > 0, np.where(mask, yy - forward(s), 0.0).sum(axis=1) / np.maximum(cnt, 1), b)
        if it > 20 and change < tol:
            break
    fitted = forward(s) + b[:, None]
    return s[:, P:], fitted, b, it
