# ruff: noqa: B023, E702  (a probe recorded with its output, not a maintained benchmark; its r2 helper runs in the loop that defines it)
"""Scratch: after a default fit of a family tune cell, does the deconvolution under the learned model
predict held-out single samples (and the true rates) better with the learned noise sd or with the
samples' own difference noise sd?"""
import json
import sys
import time

import numpy as np

sys.path.insert(0, "benchmarks")  # run from the repository root
import family
from _common import median_r

from napari_sbtt.core.baselines import oasis_forecast, oasis_rates
from napari_sbtt.core.deconvolution import sparse_deconvolve
from napari_sbtt.core.kinetics import difference_noise_sd
from napari_sbtt.heldout import heldout_blocks

for spec in sys.argv[1:]:
    seed, idx = map(int, spec.split(":"))
    cell = family.sample_cells(24, seed=seed)[idx]
    assert cell.half == "tune"
    t0 = time.time()
    p = family.probe_fit(cell, named=False, run={"max_seconds": 150})
    res, v, t, truth, dt = p["res"], p["values"], p["obs"].times, p["truth"], p["dt"]
    om = res.model.observation_model()
    n = min(v.shape[0], int(300 / dt))
    v5, t5, tr5 = v[:n], t[:n], truth[:n]
    held = heldout_blocks(np.isfinite(v5), t5, 0.1, 0, gap_s=0.0) > 0
    kept = np.where(held, np.nan, v5)
    mean = np.nanmean(kept, axis=0)
    def r2(pred):
        ok = held & np.isfinite(pred)
        return round(1 - float(((pred - v5)[ok] ** 2).sum()) / float((np.where(ok, v5 - mean, 0) ** 2).sum()), 3)
    dsd = difference_noise_sd(kept)
    out = {"seed": seed, "cell": idx, "ind": cell.indicator, "nu": cell.nu, "k": cell.reduction, "rois": v.shape[1],
           "sd_ratio_med": round(float(np.median(om["noise_sd"] / dsd)), 2),
           "oasis_ho": r2(oasis_forecast(v5, t5, held)), "oasis_r": round(median_r(tr5, oasis_rates(kept, t5), dt), 3),
           "fit_r": round(p["row"]["oasis"], 3), "ho_metrics": {k: res.metrics["heldout"]["samples"]["r2"].get(k) for k in ("deconvolution", "oasis")}}
    for name, sd in (("model", om["noise_sd"]), ("diff", dsd)):
        for z in (0.25, 0.5):
            d = sparse_deconvolve(kept, om["kernel"], baseline=om["baseline"], noise_sd=sd, sparsity=z)
            out[f"{name}{z}_ho"] = r2(d.fitted)
            out[f"{name}{z}_r"] = round(median_r(tr5, d.jumps, dt), 3)
    out["s"] = round(time.time() - t0)
    print(json.dumps(out), flush=True)
