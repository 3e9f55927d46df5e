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
start. Solved by greedy FISTA (accelerated projected gradient; Liang, Luo & Schoenlieb 2022: full
momentum, a step that starts at 1.3 / L and shrinks towards 1 / L whenever a move is longer than
the first one) with adaptive restart (the momentum is dropped when the objective goes up,
O'Donoghue & Candes 2015) and FFT convolutions, vectorised over ROIs. Each ROI stops on its own when its duality gap (the objective
minus the value of a feasible dual point built from the residual) certifies that the objective is
within ``tol`` of the optimum. Per iteration: two transform pairs (the gradient, and the calcium of
the new jumps; the extrapolated point's residual is the same extrapolation of two known ones), in
single precision until the gap is below 1e-3 of the objective, then in double precision (the
returned calcium, baseline and objective are computed in double precision from the returned
jumps). At 300 iterations on 18000 bins it is 3x faster than the plain FISTA it replaced, with a
lower objective for every ROI (benchmarks/deconvolution_speed.py, benchmarks/RESULTS.md).

Where in a gap between two samples a jump happened, the samples cannot say: a jump anywhere in
the gap explains the next sample as well, given the right size, and the L1 prior then puts it
where the kernel is largest at that sample (just before it, or the kernel's rise before it).
:func:`spread_over_gaps` gives each jump of an ROI the timing its samples support: the jumps of
a gap, spread over the gap's bins in proportion to how strongly a jump in each bin would show at
the sample that closes the gap (the kernel there; even for a slow indicator, near the sample for
a fast one). On the benchmark family's tune half this brought the events' r closer to the true
rates than the jumps as placed; on real jGCaMP8s traces kept every 4th frame (122 Hz: gaps of two
rise times, where the samples' rise does place a jump) it cost r, so ``deconvolve_traces`` keeps
the jumps as placed (benchmarks/RESULTS.md, "The events' timing within a gap").

numpy only. Units: ``values`` in any unit (dF/F); ``kernels`` in values per unit jump; the
returned jumps are in the units of ``values`` per bin (the fluorescence a bin's activity adds,
before it decays, for a kernel with ``k[0] = 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft

__all__ = ["DeconvolutionResult", "sparse_deconvolve", "spread_over_gaps"]

#: transforms of the iterations in single precision while far from the optimum (measured: 1.2-1.4x
#: faster, the objective within ~1e-9 of itself at the same iteration; deconvolution_speed.py)
_FFT32 = True
#: greedy FISTA's first step (x 1 / Lipschitz constant) and its shrink factor: 1.3 and 0.96 as in
#: Liang, Luo & Schoenlieb 2022; 1.0, 1.3 and 1.9 measured, 1.3 the best
_STEP_START = 1.3
_STEP_SHRINK = 0.96
#: single precision stops the duality gap near 1e-5 of the objective: a ROI goes on in double
#: precision once its gap is below this share of its objective
_FFT32_UNTIL = 1e-3
#: iterations between two duality-gap checks (a check costs about a fifth of an iteration)
_CHECK_EVERY = 5


@dataclass
class DeconvolutionResult:
    """What :func:`sparse_deconvolve` returns.

    Attributes
    ----------
    jumps : float64 (T, N), >= 0: activity per bin in values' units (0 where none).
    fitted : float64 (T, N): the model's expected value of every bin, observed or not.
    baseline : float64 (N,): the baseline used (re-fitted when asked).
    iterations : int: FISTA iterations run (the most any ROI needed).
    objective : float64 (N,): the objective (module docstring) at the returned jumps and baseline,
        including the jumps before the start, which are not returned.
    converged : bool (N,): the ROI met ``tol`` before ``n_iter``.
    """

    jumps: np.ndarray
    fitted: np.ndarray
    baseline: np.ndarray
    iterations: int
    objective: np.ndarray
    converged: np.ndarray


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
    chunk: int = 8,
    workers: int = 1,
) -> DeconvolutionResult:
    """Per-ROI sparse non-negative deconvolution of NaN-missing samples (module docstring).

    Parameters
    ----------
    values : (T, N) samples on a regular grid, NaN where an ROI was not observed.
    kernels : (N, L) or (L,) kernel of each ROI, values per unit jump, lag 0 first.
    baseline : (N,) or scalar, the fluorescence without activity (values' units).
    noise_sd : (N,) or scalar > 0, sd of the observation noise (values' units).
    sparsity : weight z >= 0 of the exponential prior, in units of ``||k|| / sd``.
    n_iter : maximum FISTA iterations per ROI.
    tol : a ROI stops once its duality gap is at most ``tol`` x its objective (the objective is
        then within that share of the optimum; 0: always ``n_iter`` iterations).
    refit_baseline : re-estimate each ROI's constant baseline (the objective is minimised over it).
    chunk : ROIs solved together (memory ~ 12 x chunk x (T + L) float64; small chunks stay in
        the CPU's cache: 4-8 were the fastest of 4-64 at 6000-18000 bins). Each ROI iterates and
        stops on its own: its result does not depend on ``workers`` and, up to ~1e-15 (rounding
        of batched transforms), on ``chunk``.
    workers : threads of the FFTs (scipy.fft ``workers``; -1: all cores).

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
    objective = np.zeros(N)
    converged = np.zeros(N, dtype=bool)
    iters = 0
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    for lo in range(0, N, max(1, int(chunk))):
        hi = min(N, lo + max(1, int(chunk)))
        s, f, b, obj, conv, it = _solve(y[:, lo:hi].T, k[lo:hi], b0[lo:hi], sd[lo:hi], float(sparsity),
                                        int(n_iter), float(tol), bool(refit_baseline), int(workers),
                                        _FFT32)
        jumps[:, lo:hi], fitted[:, lo:hi], base[lo:hi] = s.T, f.T, b
        objective[lo:hi], converged[lo:hi] = obj, conv
        iters = max(iters, it)
    return DeconvolutionResult(jumps=jumps, fitted=fitted, baseline=base, iterations=iters,
                               objective=objective, converged=converged)


def spread_over_gaps(jumps: np.ndarray, observed: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Each ROI's jumps spread over the gaps between its samples (module docstring).

    Parameters
    ----------
    jumps : (T, N) >= 0, jumps per bin (:attr:`DeconvolutionResult.jumps`); NaN counts as 0.
    observed : (T, N) bool, the bins where each ROI was sampled.
    kernels : (N, L) or (L,) kernel of each ROI, values per unit jump, lag 0 first.

    Returns
    -------
    float64 (T, N). Per ROI and per gap (the bins after one sample up to and including the next;
    the first gap starts at bin 0) the gap's summed jumps, shared among its bins in proportion
    to ``kernel[next sample - bin]`` (0 past the kernel's end; evenly where that is 0 throughout).
    Every gap keeps its sum. Bins after an ROI's last sample, and every bin of an ROI never
    sampled, keep their jumps; an ROI sampled in every bin gets its jumps back unchanged.
    """
    a = np.nan_to_num(np.asarray(jumps, dtype=np.float64))
    if a.ndim != 2:
        raise ValueError(f"jumps must be (T, N), got shape {a.shape}")
    n_t, n = a.shape
    obs = np.asarray(observed, dtype=bool)
    if obs.shape != a.shape:
        raise ValueError(f"observed must have the shape of jumps {a.shape}, got {obs.shape}")
    k = np.asarray(kernels, dtype=np.float64)
    if k.ndim == 1:
        k = np.broadcast_to(k, (n, k.size))
    if k.ndim != 2 or k.shape[0] != n or k.shape[1] < 1:
        raise ValueError(f"kernels must be (N, L) with N = {n}, got shape {k.shape}")
    out = a.copy()
    t = np.arange(n_t)
    for i in range(n):
        idx = np.flatnonzero(obs[:, i])
        if idx.size == 0:
            continue
        inside = t <= idx[-1]  # bins with a sample at or after them
        gap = np.searchsorted(idx, t[inside], side="left")  # idx[gap - 1] < t <= idx[gap]
        lag = idx[gap] - t[inside]
        kern = np.abs(k[i])
        w = np.where(lag < kern.size, kern[np.minimum(lag, kern.size - 1)], 0.0)
        wsum = np.bincount(gap, weights=w, minlength=idx.size)
        flat = wsum <= 0.0  # no bin of the gap would show: share it evenly
        w = np.where(flat[gap], 1.0, w)
        wsum = np.where(flat, np.bincount(gap, minlength=idx.size), wsum)
        mass = np.bincount(gap, weights=a[inside, i], minlength=idx.size)
        out[inside, i] = mass[gap] * w / wsum[gap]
    return out


def _solve(y: np.ndarray, k: np.ndarray, b: np.ndarray, sd: np.ndarray, z: float, n_iter: int,
           tol: float, refit: bool, workers: int, fft32: bool
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """FISTA with adaptive restart for a block of ROIs: y (n, T), k (n, L) ->
    (jumps (n, T), fitted (n, T), baseline (n,), objective (n,), converged (n,) bool, iterations).

    Jumps live on P + T bins (P = L - 1 bins before the start). Per iteration and ROI: one
    transform pair for the gradient at the extrapolated point, one for the calcium of the new
    jumps (the extrapolated point's calcium is the same extrapolation of two known calcium traces,
    the forward map being linear); the baseline is profiled out (the exact one for the calcium
    of the point, so the gradient is the one of the objective minimised over the baseline).
    """
    n, T = y.shape
    L = k.shape[1]
    P = L - 1
    size = next_fast_len(T + P + L, real=True)
    kf = rfft(k, size, axis=1, workers=workers)
    # the adjoint correlates a residual placed at bins P..P+T-1 with k: that shift is a phase
    kfa = np.conj(kf) * np.exp(-2j * np.pi * np.arange(kf.shape[1]) * P / size)[None, :]
    lip = np.maximum((np.abs(kf) ** 2).max(axis=1) / sd ** 2, 1e-12)  # Lipschitz constant of the gradient
    step = _STEP_START / lip  # greedy FISTA's step: starts above 1 / lip, shrinks towards it
    lam = z * np.linalg.norm(k, axis=1) / sd
    mf = np.isfinite(y).astype(np.float64)  # 1 where observed
    yy = np.where(mf > 0, y, 0.0)
    cnt = mf.sum(axis=1)
    ysum = yy.sum(axis=1)
    w = 1.0 / sd ** 2
    bfix = np.asarray(b, dtype=np.float64).copy()
    st = {"kf32": kf.astype(np.complex64), "kfa32": kfa.astype(np.complex64), "kf": kf, "kfa": kfa,
          "double": np.full(n, not fft32), "lip": lip, "lam": lam, "mf": mf, "yy": yy,
          "cnt": cnt, "ysum": ysum, "w": w, "bfix": bfix, "step": step, "first": np.full(n, np.inf)}

    def transform(x: np.ndarray, spec: str, lo: int, hi: int) -> np.ndarray:
        """Rows of x times the spectrum ``spec`` ("kf" or "kfa") of the same rows, bins lo..hi-1:
        in double precision for the rows whose "double" is set, in single precision for the others."""
        double = st["double"]
        if double.all():
            return transform_rows(x, st[spec], lo, hi)
        if not double.any():
            return transform_rows(x, st[spec + "32"], lo, hi)
        res = np.empty((x.shape[0], hi - lo))
        for part in (double, ~double):
            res[part] = transform_rows(x[part], st[spec][part] if part is double else st[spec + "32"][part],
                                       lo, hi)
        return res

    def transform_rows(x: np.ndarray, spectrum: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Rows of x times ``spectrum`` in its precision (complex128 or complex64), float64 out."""
        out = irfft(rfft(x.astype(spectrum.real.dtype, copy=False), size, axis=1, workers=workers) * spectrum,
                    size, axis=1, workers=workers)
        return out[:, lo:hi].astype(np.float64, copy=False)

    def baseline(fit: np.ndarray) -> np.ndarray:  # exact baseline for the calcium ``fit``
        if not refit:
            return st["bfix"]
        own = (st["ysum"] - np.einsum("ij,ij->i", fit, st["mf"])) / np.maximum(st["cnt"], 1.0)
        return np.where(st["cnt"] > 0, own, st["bfix"])

    def residual(fit: np.ndarray, base: np.ndarray) -> np.ndarray:  # observed (fit + b - y), 0 elsewhere
        r = fit + base[:, None]
        r -= st["yy"]
        r *= st["mf"]
        return r

    out_s = np.zeros((n, P + T))
    converged = np.zeros(n, dtype=bool)
    rows = np.arange(n)  # the ROIs still iterating
    s = np.zeros((n, P + T))
    zs = s.copy()
    r = residual(np.zeros((n, T)), baseline(np.zeros((n, T))))  # residual at s
    rz = r.copy()  # residual at zs: the same extrapolation of two residuals (it is affine in s)
    obj = 0.5 * w * np.einsum("ij,ij->i", r, r)
    it = 0
    for it in range(1, n_iter + 1):
        wr, lamr = st["w"], st["lam"]
        g = transform(rz, "kfa", 0, P + T)
        g *= wr[:, None]
        check = it % _CHECK_EVERY == 0 or it == n_iter
        if check:
            # a dual point from the residual at zs (nu = -w rz; sum(nu) = 0 with the profiled
            # baseline), scaled into the dual's feasible set K^T nu <= lam: it bounds the optimum
            top = -g.min(axis=1)
            theta = np.where(top > lamr, lamr / np.where(top > 0, top, 1.0), 1.0)
            bz = np.einsum("ij,ij->i", rz, st["yy"]) - (rz.sum(axis=1) * st["bfix"] if not refit else 0.0)
            dual = -theta * wr * bz - 0.5 * theta ** 2 * wr * np.einsum("ij,ij->i", rz, rz)
        g += lamr[:, None]
        g *= st["step"][:, None]
        np.subtract(zs, g, out=g)
        s_new = np.maximum(g, 0.0, out=g)
        fs_new = transform(s_new, "kf", P, P + T)
        r_new = residual(fs_new, baseline(fs_new))
        obj_new = 0.5 * wr * np.einsum("ij,ij->i", r_new, r_new) + lamr * s_new.sum(axis=1)
        up = obj_new > obj  # went uphill: restart the momentum (O'Donoghue & Candes 2015)
        beta = np.where(up, 0.0, 1.0)[:, None]  # greedy FISTA: full momentum until a restart
        diff = np.subtract(s_new, s, out=s)
        moved = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        if it == 1:
            st["first"] = moved.copy()
        # safeguard (Liang, Luo & Schoenlieb 2022): a step longer than the first shrinks the step
        st["step"] = np.where(moved >= st["first"], np.maximum(_STEP_SHRINK * st["step"], 1.0 / st["lip"]),
                              st["step"])
        done = np.zeros(rows.size, dtype=bool)
        if check:
            met = obj_new - dual <= tol * np.abs(obj_new)
            done = met | (it == n_iter)
            # near the optimum, a ROI goes on in double precision
            st["double"] = st["double"] | (obj_new - dual < _FFT32_UNTIL * np.abs(obj_new))
        if done.any():
            fin = rows[done]
            out_s[fin], converged[fin] = s_new[done], met[done]
            keep = ~done
            rows = rows[keep]
            if rows.size == 0:
                break
            st = {key: v[keep] for key, v in st.items()}
            diff, s_new, r, r_new = diff[keep], s_new[keep], r[keep], r_new[keep]
            beta, obj_new = beta[keep], obj_new[keep]
        zs = diff
        zs *= beta
        zs += s_new
        rz = np.subtract(r_new, r, out=r)
        rz *= beta
        rz += r_new
        s, r, obj = s_new, r_new, obj_new
    # the returned calcium, baseline and objective in float64 from the returned jumps
    fit = irfft(rfft(out_s, size, axis=1, workers=workers) * kf, size, axis=1, workers=workers)[:, P:P + T]
    out_b = bfix
    if refit:
        own = (np.where(mf > 0, yy - fit, 0.0)).sum(axis=1) / np.maximum(cnt, 1.0)
        out_b = np.where(cnt > 0, own, bfix)
    r = np.where(mf > 0, fit + out_b[:, None] - yy, 0.0)
    out_obj = 0.5 * w * (r * r).sum(axis=1) + lam * out_s.sum(axis=1)
    return out_s[:, P:], fit + out_b[:, None], out_b, out_obj, converged, it
