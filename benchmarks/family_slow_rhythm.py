"""Where the network's rates put their power on a benchmark-family tune cell, against the truth's.

The family's worst cells are limit cycles under slow indicators, where the network's r is near 0
(benchmarks/RESULTS.md, "Issue 14, fourteenth session"). This probe fits one tune cell with the
library's defaults (``--run`` / ``--synth`` change a setting or the simulation) and prints one
JSON line per cell with:

- ``oasis``, ``network``, ``returned``: median r against the true rates (the family's score) of
  OASIS, the network's rates and the estimate the fit returned (``estimate``);
- ``power``: the share of each one's rate power (population average of the per-ROI spectra,
  means removed) below ``SLOW_HZ`` and in the band of +-20 % around the truth's spectral peak
  (``peak_hz``), for the truth and the network;
- ``r2_samples``: how much of each ROI's observed dF/F (median over ROIs) a least-squares fit
  ``a + b * (kernel * x)`` explains, with the fit's kernel decay (an exponential of
  ``tau_decay_s``), for x = the true rates and x = the network's rates: a network above the
  truth explains variance the rates do not hold (the spikes' own fluctuations, noise);
- ``neuropil_r``: r between the slow (1 s smoothing) population mean of the network's rates and
  the simulation's shared slow neuropil signal.

    python benchmarks/family_slow_rhythm.py --seed 13 --cell 12 --named          # ~2 min, 2 cores
    python benchmarks/family_slow_rhythm.py --seed 13 --cell 12 --named --run '{"window_s": 0.5}'
    python benchmarks/family_slow_rhythm.py --seed 13 --cell 12 --named --synth '{"neuropil_slow_sd": 0}'
"""

from __future__ import annotations

import sys
import time
from typing import Any

import family
import numpy as np
from _common import median_r, peak_frequency

#: below this frequency (Hz) rate power counts as slow
SLOW_HZ = 0.3


def power_shares(x: np.ndarray, dt: float, peak_hz: float) -> dict[str, float]:
    """Shares of the population-averaged power spectrum of ``x`` (T, N) (per-ROI means removed,
    0 Hz left out) below :data:`SLOW_HZ` and within +-20 % of ``peak_hz``."""
    f = np.fft.rfftfreq(x.shape[0], dt)
    p = (np.abs(np.fft.rfft(np.nan_to_num(x - np.nanmean(x, axis=0)), axis=0)) ** 2).mean(axis=1)
    keep = f > 0
    total = float(p[keep].sum()) or 1.0
    return {"slow": float(p[keep & (f < SLOW_HZ)].sum() / total),
            "peak_band": float(p[(f > 0.8 * peak_hz) & (f < 1.2 * peak_hz)].sum() / total)}


def r2_by_kernel(values: np.ndarray, x: np.ndarray, dt: float, tau_s: float) -> float:
    """Median over ROIs of the R² of the observed ``values`` (T, N; NaN unobserved) fitted by
    ``a + b * c`` per ROI, with c = ``x`` (T, N) filtered by an exponential of ``tau_s`` seconds."""
    from scipy.signal import lfilter

    d = float(np.exp(-dt / tau_s))
    c = lfilter([1.0], [1.0, -d], np.nan_to_num(x), axis=0)
    out = []
    for j in range(values.shape[1]):
        m = np.isfinite(values[:, j])
        if m.sum() < 3:
            continue
        y = values[m, j]
        X = np.column_stack([np.ones(m.sum()), c[m, j]])
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        ss = float(((y - y.mean()) ** 2).sum())
        if ss > 0:
            out.append(1.0 - float(((y - X @ coef) ** 2).sum()) / ss)
    return float(np.median(out)) if out else float("nan")


def probe_cell(cell: Any, named: bool, run: dict[str, Any] | None = None,
               synth: dict[str, Any] | None = None) -> dict[str, Any]:
    from scipy.ndimage import gaussian_filter1d

    t0 = time.perf_counter()
    fit = family.probe_fit(cell, named, run=run, synth=synth)
    truth, net, dt, res = fit["truth"], fit["net"], fit["dt"], fit["res"]
    peak = peak_frequency(truth, dt)
    tau = float(res.metrics["tau_decay_s"])
    slow = 1.0 / dt
    net_slow = gaussian_filter1d(net.mean(axis=1), slow)
    npl_slow = gaussian_filter1d(np.asarray(fit["sim"].truth.neuropil, dtype=np.float64), slow)
    return {**fit["row"], "run": run or {}, "synth": synth or {},
            "network": median_r(truth, net, dt), "returned": median_r(truth, res.rates, dt),
            "estimate": res.metrics.get("estimate", "network"), "tau_decay_s": tau,
            "peak_hz": peak,
            "power": {"truth": power_shares(truth, dt, peak), "network": power_shares(net, dt, peak)},
            "r2_samples": {"true_rates": r2_by_kernel(fit["values"], truth, dt, tau),
                           "network": r2_by_kernel(fit["values"], net, dt, tau)},
            "neuropil_r": float(np.corrcoef(net_slow, npl_slow)[0, 1]),
            "epochs": res.metrics["epochs_run"], "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    return family.run_tune_probe(argv, "benchmarks/family_slow_rhythm.py", __doc__.split("\n")[0],
                                 probe_cell, overrides=True)


if __name__ == "__main__":
    sys.exit(main())
