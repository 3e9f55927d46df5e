# ruff: noqa: B023, E702  (a probe recorded with its output, not a maintained benchmark; its r2 helper runs in the loop that defines it)
"""Scratch probe: on family tune cells, held-out single samples predicted by OASIS's forecast vs the
sparse deconvolution under the TRUE kernel (unit amplitude) at several sparsities; and r of the
deconvolution's jumps against the true rates. No network."""
import json
import sys
import time

import numpy as np

sys.path.insert(0, "benchmarks")  # run from the repository root
import family
from _common import median_r

from napari_sbtt.api import RunConfig, observations_for_stack
from napari_sbtt.core.baselines import oasis_forecast, oasis_rates
from napari_sbtt.core.deconvolution import sparse_deconvolve
from napari_sbtt.core.indicators import get_indicator
from napari_sbtt.core.kinetics import difference_noise_sd
from napari_sbtt.heldout import heldout_blocks

seeds = [int(s) for s in sys.argv[1].split(",")]
only = None if len(sys.argv) < 3 else set(sys.argv[2].split(","))
for seed in seeds:
    for cell in family.sample_cells(24, seed=seed):
        if cell.half != "tune":
            continue
        if only and cell.indicator not in only:
            continue
        t0 = time.time()
        cfg = RunConfig.from_dict({"indicator": cell.indicator})
        sim = cell.simulate(fine_factor=cfg.factor)
        try:
            obs = observations_for_stack(sim.movie, sim.labels, sim.pattern, config=cfg)
        except ValueError:
            continue
        truth = sim.truth.rates[:, obs.roi_ids - 1]
        del sim
        v, t = obs.values, obs.times
        dt = obs.grid.bin_width
        n = min(v.shape[0], int(300 / dt))
        v, t, truth = v[:n], t[:n], truth[:n]
        observed = np.isfinite(v)
        blocks = heldout_blocks(observed, t, 0.1, 0, gap_s=0.0)
        held = blocks > 0
        kept = np.where(held, np.nan, v)
        mean = np.nanmean(kept, axis=0)
        denom = float((np.where(held, v - mean, 0) ** 2).sum())
        def r2(p):
            ok = held & np.isfinite(p)
            return 1 - float(((p - v)[ok] ** 2).sum()) / float((np.where(ok, v - mean, 0) ** 2).sum())
        out = {"seed": seed, "cell": cell.index, "ind": cell.indicator, "scan": cell.scan, "k": cell.reduction if hasattr(cell, "reduction") else None,
               "nu": cell.nu, "rois": v.shape[1]}
        fo = oasis_forecast(v, t, held)
        out["oasis_ho"] = round(r2(fo), 3)
        out["oasis_r"] = round(median_r(truth, oasis_rates(kept, t), dt), 3)
        ind = get_indicator(cell.indicator)
        from napari_sbtt.core.indicators import Indicator
        kern = Indicator("x", tau_rise=ind.tau_rise, tau_decay=ind.tau_decay, amplitude=1.0).kernel(dt)
        base = np.nanpercentile(kept, 10, axis=0); sd = difference_noise_sd(kept)
        for z in (0.0, 0.25, 0.5, 1.0):
            res = sparse_deconvolve(kept, kern, baseline=base, noise_sd=sd, sparsity=z)
            out[f"dec{z}_ho"] = round(r2(res.fitted), 3)
            out[f"dec{z}_r"] = round(median_r(truth, res.jumps, dt), 3)
        out["s"] = round(time.time() - t0)
        print(json.dumps(out), flush=True)
