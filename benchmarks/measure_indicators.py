"""Measure calcium-indicator kernels (rise, decay, dF/F per spike) on real ground truth.

For every recording of the CASCADE ground-truth data sets in ``--gt-dir``
(simultaneous juxtacellular spikes and two-photon dF/F; format in
``groundtruth/README.md``) this script

1. bins the spike times into the imaging frames (counts per frame, frame ``i``
   covering ``[t_i - dt/2, t_i + dt/2)`` around its time stamp ``t_i``);
2. fits a free-form linear kernel by least squares,
   ``dF/F(t) = drift(t) + sum_k h[k] * spikes(t - k)`` for lags
   ``k * dt`` from ``-PRE_S`` to ``POST_S`` seconds, where ``drift`` is a
   low-frequency cosine basis (periods >= ``DRIFT_S`` seconds) that absorbs
   baseline changes;
3. fits the parametric kernel of :class:`napari_sbtt.core.indicators.Indicator`
   to ``h``: ``A * (exp(-(t - t0)/tau_decay) - exp(-(t - t0)/tau_rise)) / norm``
   for ``t > t0`` (``norm`` makes the peak equal ``A``, the dF/F per spike),
   with an onset delay ``t0`` that absorbs the row's time inside the frame;
4. for comparison, OASIS's own decay estimate from the dF/F alone (``tau_oasis``: its AR(1)
   coefficient from the autocovariance, ``core.baselines.oasis_decay_time``), the blind
   estimate a user gets without spikes;
5. ``--estimates``: the library's own blind estimate (``core.kinetics.decay_time_of_series``,
   what a run without an indicator starts from) on every recording of the data set with every
   k-th frame kept (k = 1, 2, 4; random phase per recording, seed 0), as the ground-truth
   benchmark keeps them.

Recordings with fewer than ``MIN_SPIKES`` spikes or a poor parametric fit
(``R^2 < MIN_R2`` against the free-form kernel) are skipped. The medians are
taken per neuron (one file = one neuron) and then over neurons, so neurons with
many recordings do not dominate; the recording-level medians are printed too.

Run from the repository root::

    python benchmarks/measure_indicators.py --gt-dir ../shared/groundtruth

The script exits 0 with a note when the folder is absent.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import groundtruth_datasets, load_groundtruth
from scipy.optimize import least_squares

from napari_sbtt.core.baselines import oasis_available, oasis_decay_time
from napari_sbtt.core.kinetics import decay_time_of_series

PRE_S = 0.1  # lags before the spike, seconds (shows the onset)
POST_S = 3.0  # lags after the spike, seconds
DRIFT_S = 20.0  # shortest period of the drift regressors, seconds
MIN_SPIKES = 20
MIN_R2 = 0.5


@dataclass
class KernelFit:
    neuron: str
    recording: int
    n_spikes: int
    frame_rate_hz: float
    tau_rise: float  # s
    tau_decay: float  # s
    amplitude: float  # peak dF/F per spike
    delay: float  # s
    t_peak: float  # s after the spike
    r2: float
    tau_oasis: float  # s, OASIS's own AR(1) estimate from the dF/F alone (no spikes)


def spike_counts(t: np.ndarray, spike_times: np.ndarray) -> np.ndarray:
    """Spikes per frame (T,), frame i covering [t_i - dt/2, t_i + dt/2)."""
    mid = 0.5 * (t[1:] + t[:-1])
    dt0 = t[1] - t[0]
    edges = np.concatenate([[t[0] - dt0 / 2], mid, [t[-1] + (t[-1] - t[-2]) / 2]])
    counts, _ = np.histogram(spike_times, bins=edges)
    return counts.astype(float)


def ls_kernel(y: np.ndarray, s: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares kernel from spike counts ``s`` (T,) to dF/F ``y`` (T,): (lags s, h).

    Solved through the normal equations with a sparse lagged spike matrix (the
    spikes are sparse), so a 20 000-frame recording takes a fraction of a second.
    """
    from scipy import sparse

    T = y.size
    pre, post = int(round(PRE_S / dt)), int(round(POST_S / dt))
    lags = np.arange(-pre, post + 1)
    ok = np.isfinite(y)
    y = np.where(ok, y, 0.0)
    nz = np.flatnonzero(s)
    rows = (nz[:, None] + lags[None, :]).ravel()
    cols = np.broadcast_to(np.arange(lags.size), (nz.size, lags.size)).ravel()
    vals = np.repeat(s[nz], lags.size)
    keep = (rows >= 0) & (rows < T)
    S = sparse.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(T, lags.size))
    S = sparse.diags(ok.astype(float)) @ S
    duration = T * dt
    n_drift = max(1, int(np.ceil(2 * duration / DRIFT_S)))
    u = (np.arange(T) + 0.5) / T
    D = np.cos(np.pi * np.outer(u, np.arange(n_drift))) * ok[:, None]
    StS = (S.T @ S).toarray()
    StD = np.asarray(S.T @ D)
    A = np.block([[StS, StD], [StD.T, D.T @ D]])
    b = np.concatenate([S.T @ y, D.T @ y])
    A[np.diag_indices_from(A)] += 1e-9 * np.trace(A) / A.shape[0]
    coef = np.linalg.solve(A, b)
    return lags * dt, coef[: lags.size]


def _model(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    amp, log_r, log_d, t0 = p
    tr, td = np.exp(log_r), np.exp(log_d)
    tr = min(tr, 0.999 * td)
    tp = np.log(td / tr) * tr * td / (td - tr)
    norm = np.exp(-tp / td) - np.exp(-tp / tr)
    u = np.clip(t - t0, 0.0, None)
    return amp * (np.exp(-u / td) - np.exp(-u / tr)) / norm


def fit_parametric(lags: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, float]:
    """Fit (amplitude, log tau_rise, log tau_decay, delay) to a kernel; returns (params, R^2)."""
    amp0 = max(float(h.max()), 1e-3)
    best = None
    for tr0, td0 in [(0.01, 0.2), (0.03, 0.5), (0.05, 1.0)]:
        p0 = np.array([amp0, np.log(tr0), np.log(td0), 0.0])
        res = least_squares(
            lambda p: _model(p, lags) - h,
            p0,
            bounds=([0.0, np.log(1e-3), np.log(0.02), -0.1], [np.inf, np.log(1.0), np.log(5.0), 0.1]),
        )
        if best is None or res.cost < best.cost:
            best = res
    ss_tot = float(((h - h.mean()) ** 2).sum())
    r2 = 1.0 - 2.0 * best.cost / ss_tot if ss_tot > 0 else float("nan")
    return best.x, r2


def measure_dataset(folder: Path) -> list[KernelFit]:
    fits = []
    for f in sorted(folder.glob("*.mat")):
        for i, t, y, ap in load_groundtruth(f):
            ap = ap[(ap >= t[0]) & (ap <= t[-1])]
            if ap.size < MIN_SPIKES or t.size < 100:
                continue
            dt = float(np.median(np.diff(t)))
            s = spike_counts(t, ap)
            lags, h = ls_kernel(y, s, dt)
            p, r2 = fit_parametric(lags, h)
            if not np.isfinite(r2) or r2 < MIN_R2:
                continue
            amp, tr, td, t0 = p[0], np.exp(p[1]), np.exp(p[2]), p[3]
            tr = min(tr, 0.999 * td)
            tp = np.log(td / tr) * tr * td / (td - tr)
            tau_oasis = oasis_decay_time(y, dt) if oasis_available() and np.isfinite(y).all() else np.nan
            fits.append(KernelFit(f.stem, i, int(ap.size), 1.0 / dt, tr, td, amp, t0, t0 + tp, r2, tau_oasis))
    return fits


def summarise(name: str, indicator: str, fits: list[KernelFit]) -> dict[str, float]:
    keys = ["tau_rise", "tau_decay", "amplitude", "delay", "t_peak", "r2", "tau_oasis"]
    print(f"\n== {name} ({indicator}): {len(fits)} recordings kept, "
          f"{len({f.neuron for f in fits})} neurons, frame rate "
          f"{np.median([f.frame_rate_hz for f in fits]):.1f} Hz")
    rec = {k: float(np.nanmedian([getattr(f, k) for f in fits])) for k in keys}
    by_neuron: dict[str, list[KernelFit]] = {}
    for f in fits:
        by_neuron.setdefault(f.neuron, []).append(f)
    per_neuron = {
        k: float(np.nanmedian([np.nanmedian([getattr(f, k) for f in fs]) for fs in by_neuron.values()]))
        for k in keys
    }
    q = {k: np.nanpercentile([getattr(f, k) for f in fits], [25, 75]) for k in keys}
    print(f"{'':>10} {'per-neuron median':>18} {'recording median':>17} {'recording IQR':>20}")
    for k in keys:
        print(f"{k:>10} {per_neuron[k]:>18.4f} {rec[k]:>17.4f} {q[k][0]:>9.4f}..{q[k][1]:<9.4f}")
    return per_neuron


def library_estimates(folder: Path, ks: tuple[int, ...] = (1, 2, 4), seed: int = 0) -> dict[int, float | None]:
    """The library's decay estimate (seconds) from every k-th frame of the data set's recordings."""
    series = [(t, y) for f in sorted(folder.glob("*.mat")) for _, t, y, _ in load_groundtruth(f)
              if t.size >= 100]
    series = [(t[np.isfinite(t) & np.isfinite(y)], y[np.isfinite(t) & np.isfinite(y)]) for t, y in series]
    dt = float(np.median([np.median(np.diff(t)) for t, _ in series]))
    out: dict[int, float | None] = {}
    for k in ks:
        rng = np.random.default_rng(seed)
        kept = []
        for _, y in series:
            v = np.full_like(y, np.nan)
            ph = int(rng.integers(k))
            v[ph::k] = y[ph::k]
            kept.append(v)
        out[k] = decay_time_of_series(kept, [t for t, _ in series], bin_width=dt)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gt-dir", type=Path, default=Path("../shared/groundtruth"),
                    help="folder holding the DSnn-<indicator>-... data sets (all are measured)")
    ap.add_argument("--estimates", action="store_true",
                    help="also the library's blind decay estimate from every 1st, 2nd and 4th frame")
    args = ap.parse_args(argv)
    if not args.gt_dir.is_dir():
        print(f"ground-truth folder {args.gt_dir} not found; nothing to measure (skipped)")
        return 0
    found = False
    for ds, indicator in groundtruth_datasets(args.gt_dir).items():
        folder = args.gt_dir / ds
        if not folder.is_dir():
            print(f"{folder} not found; skipped")
            continue
        found = True
        fits = measure_dataset(folder)
        if not fits:
            print(f"{ds}: no recording passed the filters")
            continue
        med = summarise(ds, indicator, fits)
        print(
            f"preset {indicator}: tau_rise={med['tau_rise']:.4f} s, tau_decay={med['tau_decay']:.4f} s, "
            f"amplitude={med['amplitude']:.4f} dF/F per spike"
        )
        if args.estimates and oasis_available():
            est = library_estimates(folder)
            print("library decay estimate (no spikes) from every k-th frame: "
                  + ", ".join(f"k={k}: {v:.2f} s" if v is not None else f"k={k}: none" for k, v in est.items()))
    if not found:
        print("no known data set in the ground-truth folder; nothing to measure (skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
