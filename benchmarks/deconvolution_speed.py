"""Speed of the sparse deconvolution (issue 13, "Long recordings"): before and after, same process.

A synthetic (T, N) recording at 30 Hz: 0.5 Hz spikes (amplitudes 0.5-1.5) through a GCaMP6f
kernel (``core.indicators``, 174 lags, peak 1), baseline 0.2, noise sd 0.1, optionally a share
of NaN samples. "before" is the solver of main at f2ab6ac (plain FISTA, six transforms per
iteration, stopped on the jumps' relative change; copied below unchanged, with the objective
added to its return), "after" is :func:`napari_sbtt.core.deconvolution.sparse_deconvolve` with
its defaults. Both solve the same problem; each is timed ``--repeat`` times, alternating, and the
objectives are compared ROI by ROI (``--reference N`` also runs the new solver for N iterations
with ``tol=0`` as the optimum's stand-in).

    python benchmarks/deconvolution_speed.py --bins 18000 --rois 50
    python benchmarks/deconvolution_speed.py --bins 6000 --rois 20 --repeat 3 --reference 3000 --match
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _common import load_avg, machine
from scipy.fft import irfft, next_fast_len, rfft

from napari_sbtt.core.deconvolution import sparse_deconvolve
from napari_sbtt.core.indicators import get_indicator


def recording(n_bins: int, n_rois: int, *, rate_hz: float = 30.0, lags: int = 174, missing: float = 0.0,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values (T, N) with NaN where missing, kernel (L,), noise sd (N,))."""
    rng = np.random.default_rng(seed)
    dt = 1.0 / rate_hz
    k = get_indicator("GCaMP6f").kernel(dt, duration=lags * dt)
    k = k / k.max()
    spikes = (rng.random((n_bins + lags, n_rois)) < 0.5 * dt) * rng.uniform(0.5, 1.5, (n_bins + lags, n_rois))
    calcium = np.stack([np.convolve(spikes[:, i], k)[lags:lags + n_bins] for i in range(n_rois)], axis=1)
    sd = np.full(n_rois, 0.1)
    y = 0.2 + calcium + sd * rng.standard_normal((n_bins, n_rois))
    if missing > 0:
        y[rng.random(y.shape) < missing] = np.nan
    return y, k, sd


def sparse_deconvolve_before(values: np.ndarray, kernels: np.ndarray, *, baseline: np.ndarray | float,
                             noise_sd: np.ndarray | float, sparsity: float = 0.5, n_iter: int = 300,
                             tol: float = 1e-5, chunk: int = 64) -> tuple[np.ndarray, np.ndarray, int]:
    """The solver of main at f2ab6ac (refit_baseline=True): (fitted (T, N), objective (N,), iterations)."""
    y = np.asarray(values, dtype=np.float64)
    T, N = y.shape
    k = np.broadcast_to(np.asarray(kernels, dtype=np.float64), (N, np.asarray(kernels).shape[-1]))
    b0 = np.broadcast_to(np.asarray(baseline, dtype=np.float64), (N,))
    sd = np.broadcast_to(np.asarray(noise_sd, dtype=np.float64), (N,))
    fitted = np.zeros((T, N))
    objective = np.zeros(N)
    iters = 0
    for lo in range(0, N, chunk):
        hi = min(N, lo + chunk)
        f, obj, it = _solve_before(y[:, lo:hi].T, k[lo:hi], b0[lo:hi], sd[lo:hi], sparsity, n_iter, tol)
        fitted[:, lo:hi], objective[lo:hi] = f.T, obj
        iters = max(iters, it)
    return fitted, objective, iters


def _solve_before(y: np.ndarray, k: np.ndarray, b: np.ndarray, sd: np.ndarray, z: float, n_iter: int,
                  tol: float) -> tuple[np.ndarray, np.ndarray, int]:
    n, T = y.shape
    L = k.shape[1]
    P = L - 1
    size = next_fast_len(T + P + L)
    kf = rfft(k, size, axis=1)
    mask = np.isfinite(y)
    yy = np.where(mask, y, 0.0)
    w = 1.0 / sd[:, None] ** 2
    lip = (np.abs(kf) ** 2).max(axis=1) * w[:, 0]
    lip = np.maximum(lip, 1e-12)[:, None]
    lam = (z * np.linalg.norm(k, axis=1) / sd)[:, None]
    b = b.copy()

    def forward(s: np.ndarray) -> np.ndarray:
        return irfft(rfft(s, size, axis=1) * kf, size, axis=1)[:, P:P + T]

    def adjoint(r: np.ndarray) -> np.ndarray:
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
        b = np.where(cnt > 0, np.where(mask, yy - forward(s), 0.0).sum(axis=1) / np.maximum(cnt, 1), b)
        if it > 20 and change < tol:
            break
    fitted = forward(s) + b[:, None]
    r = np.where(mask, fitted - yy, 0.0)
    objective = 0.5 * w[:, 0] * (r * r).sum(axis=1) + lam[:, 0] * s.sum(axis=1)
    return fitted, objective, it


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bins", type=int, default=18000, help="T, bins at 30 Hz (18000 = 10 min)")
    ap.add_argument("--rois", type=int, default=50)
    ap.add_argument("--missing", type=float, default=0.0, help="share of NaN samples")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--reference", type=int, default=0, help="iterations of the optimum's stand-in (0: none)")
    ap.add_argument("--match", action="store_true",
                    help="also find the fewest iterations (of 100, 125, ..., 300) at which the new solver's "
                         "objective is at most the old one's for every ROI, and time that run")
    args = ap.parse_args()
    y, k, sd = recording(args.bins, args.rois, missing=args.missing)
    times: dict[str, list[float]] = {"before": [], "after": []}
    loads = [load_avg()]
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        _, obj_before, it_before = sparse_deconvolve_before(y, k, baseline=0.2, noise_sd=sd)
        times["before"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = sparse_deconvolve(y, k, baseline=0.2, noise_sd=sd)
        times["after"].append(time.perf_counter() - t0)
        loads.append(load_avg())
    row = {"bins": args.bins, "rois": args.rois, "missing": args.missing, "machine": machine(),
           "load": [round(x, 2) for x in loads],
           "before_s": [round(x, 2) for x in times["before"]], "after_s": [round(x, 2) for x in times["after"]],
           "speedup": round(min(times["before"]) / min(times["after"]), 2),
           "iterations_before": it_before, "iterations_after": res.iterations,
           "converged_after": int(res.converged.sum()),
           "objective_after_minus_before_rel_max": float(np.max((res.objective - obj_before) / obj_before)),
           "objective_after_minus_before_rel_median": float(np.median((res.objective - obj_before) / obj_before))}
    if args.match:
        for n_iter in range(100, 301, 25):
            t0 = time.perf_counter()
            short = sparse_deconvolve(y, k, baseline=0.2, noise_sd=sd, n_iter=n_iter)
            took = time.perf_counter() - t0
            if np.all(short.objective <= obj_before):
                row["match_iterations"], row["match_s"] = n_iter, round(took, 2)
                row["match_speedup"] = round(min(times["before"]) / took, 2)
                break
        loads.append(load_avg())
        row["load"] = [round(x, 2) for x in loads]
    if args.reference > 0:
        ref = sparse_deconvolve(y, k, baseline=0.2, noise_sd=sd, n_iter=args.reference, tol=0.0)
        row["reference_iterations"] = args.reference
        row["before_minus_reference_rel_max"] = float(np.max((obj_before - ref.objective) / ref.objective))
        row["after_minus_reference_rel_max"] = float(np.max((res.objective - ref.objective) / ref.objective))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
