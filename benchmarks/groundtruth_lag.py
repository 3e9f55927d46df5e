"""Are the deconvolved events early or late against the spikes? A probe on the real ground-truth tune sets.

For each data set and every k-th frame kept (the frames ``groundtruth_spikes.py`` keeps, same
seed), ``deconvolve_traces`` is fitted with the defaults (nothing named, ``--max-seconds`` cap)
and OASIS is run on the same frames; then each estimate is moved by whole frames (positive: later)
and scored as ``groundtruth_spikes.py`` scores it (Pearson r after 50 ms Gaussian smoothing,
median over recordings). A best move other than 0 says the estimate is placed early or late: what
the calcium kernel's rise and onset delay do to timing, which the fluorescence alone does not fix.

    python benchmarks/groundtruth_lag.py --gt-dir ../shared/groundtruth --datasets DS32-GCaMP8s-m-V1 --k 2

Prints one JSON line per data set and k (about 5 min each at the 200 s cap).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from _common import TUNE_SETS, groundtruth_probe_args
from groundtruth_spikes import fit_kept_frames, load_dataset, r_smoothed

#: frames each estimate is moved by (positive: later)
LAGS = tuple(range(-8, 9))


def moved(x: np.ndarray, lag: int) -> np.ndarray:
    """``x`` (T,) moved ``lag`` frames later (earlier when negative), the frames moved in from
    outside NaN (NaN is dropped by the scoring, as a frame not acquired)."""
    out = np.full(x.shape, np.nan)
    if lag >= 0:
        out[lag:] = x[:x.size - lag]
    else:
        out[:lag] = x[-lag:]
    return out


def median_r_by_lag(spikes: list[np.ndarray], estimates: list[np.ndarray], dts: list[float],
                    lags: tuple[int, ...] = LAGS) -> dict[int, float]:
    """Median over recordings of the smoothed Pearson r of each estimate moved by each lag."""
    return {lag: float(np.nanmedian([r_smoothed(s, moved(e, lag), dt)
                                     for s, e, dt in zip(spikes, estimates, dts, strict=True)]))
            for lag in lags}


def main(argv: list[str] | None = None) -> int:
    a = groundtruth_probe_args(__doc__.splitlines()[0], argv, datasets=list(TUNE_SETS), max_seconds=200.0,
                               datasets_help="tune-set folders (default: both; the report sets are refused)",
                               tune_only=True)
    if a is None:
        return 0
    command = "python groundtruth_lag.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for name in a.datasets:
        recs = load_dataset(a.gt_dir / name)
        for k in a.k:
            t0 = time.perf_counter()
            fit = fit_kept_frames(recs, k, seed=a.seed, run={"max_seconds": a.max_seconds})
            res = fit.result
            spikes, dts = [r["spikes"] for r in recs], [r["dt"] for r in recs]
            sbtt_r = median_r_by_lag(spikes, list(res.rates), dts)
            oasis_r = median_r_by_lag(spikes, fit.oasis, dts)
            print(json.dumps({
                "dataset": name, "k": k, "frame_ms": round(1e3 * float(np.median(dts)), 2),
                "kernel_rise_ms": round(1e3 * float(res.metrics["tau_rise_s"]), 1),
                "epochs": res.metrics.get("epochs_run"),
                "sbtt_r_by_lag": {str(lag): round(v, 4) for lag, v in sbtt_r.items()},
                "oasis_r_by_lag": {str(lag): round(v, 4) for lag, v in oasis_r.items()},
                "sbtt_best_lag": max(sbtt_r, key=sbtt_r.get), "oasis_best_lag": max(oasis_r, key=oasis_r.get),
                "seconds": round(time.perf_counter() - t0, 1), "command": command}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
