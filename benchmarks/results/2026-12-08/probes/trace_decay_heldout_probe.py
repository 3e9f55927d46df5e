# ruff: noqa
"""Can held-out samples say where each trace's own decay helps? One deconvolve_traces fit (defaults,
200 s cap, the benchmark's kept frames), then: 10 % of each trace's kept samples held out (seed 0),
the rest deconvolved under the one shared kernel and under each trace's own decay (the
trace_decays kernels); each trace's held-out squared error under both; then the events (all kept
samples) under one kernel, own decays, and own decays only where that trace's held-out error is
lower; scored as groundtruth_spikes.py scores. Usage (from benchmarks/):
  python results/2026-12-08/probes/trace_decay_heldout_probe.py K NAMED(0/1) DATASET
"""
import json, sys, time
from pathlib import Path
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from groundtruth_spikes import fit_kept_frames, load_dataset, r_smoothed
from napari_sbtt.core.deconvolution import sparse_deconvolve
from napari_sbtt.core.kinetics import series_decay_scales
from napari_sbtt.deconvolve import standardise_trace, stack_traces

k = int(sys.argv[1]); named = bool(int(sys.argv[2])); ds = sys.argv[3]
ind = ds.split("-")[1] if named else None
recs = load_dataset(Path(__file__).resolve().parents[5] / "shared" / "groundtruth" / ds)
fit = fit_kept_frames(recs, k, seed=0, indicator=ind, run={"max_seconds": 200})
res = fit.result; bin_s = res.metrics["bin_width_s"]
vals = []
for r, o in zip(recs, fit.obs):
    idx = np.round((r["t"] - r["t"][0]) / bin_s).astype(np.int64)
    g = np.full(int(idx.max()) + 1, np.nan); g[idx] = o; vals.append((g, idx))
std = [standardise_trace(g) for g, _ in vals]
z = [s[0] for s in std]
stacked, _ = stack_traces(z, bin_s)
N = stacked.shape[1]
scales = series_decay_scales(z, [np.arange(v.size) * bin_s for v in z], bin_width=bin_s)
one = res.model.observation_model(decay_scale=np.ones(N)); own = res.model.observation_model(decay_scale=scales)
rng = np.random.default_rng(0)
held = np.isfinite(stacked) & (rng.random(stacked.shape) < 0.1)
kept = np.where(held, np.nan, stacked)
def dec(y, om):
    return sparse_deconvolve(y, om["kernel"], baseline=om["baseline"], noise_sd=om["noise_sd"], sparsity=0.5)
f1, fo = dec(kept, one).fitted, dec(kept, own).fitted
e1 = np.array([np.sum((f1[held[:, i], i] - stacked[held[:, i], i]) ** 2) for i in range(N)])
eo = np.array([np.sum((fo[held[:, i], i] - stacked[held[:, i], i]) ** 2) for i in range(N)])
den = np.sum([np.sum((stacked[held[:, i], i] - np.nanmean(kept[:, i])) ** 2) for i in range(N)])
J1, Jo = dec(stacked, one).jumps, dec(stacked, own).jumps
pick = eo < e1
Jp = np.where(pick[None, :], Jo, J1)
spikes, dts = [r["spikes"] for r in recs], [r["dt"] for r in recs]
def score(J):
    ests = [J[: g.size, i][idx] * sc for i, ((g, idx), (_, off, sc)) in enumerate(zip(vals, std))]
    return float(np.nanmedian([r_smoothed(s, e, dt) for s, e, dt in zip(spikes, ests, dts)]))
out = {"dataset": ds, "k": k, "named": named, "epochs": res.metrics["epochs_run"],
       "heldout_r2_one": 1 - e1.sum() / den, "heldout_r2_own": 1 - eo.sum() / den,
       "traces_own_better": int(pick.sum()), "n": N,
       "r_one": score(J1), "r_own": score(Jo), "r_own_where_heldout_prefers": score(Jp),
       "r_own_if_set_prefers": score(Jo if eo.sum() < e1.sum() else J1),
       "oasis": float(np.nanmedian([r_smoothed(s, e, dt) for s, e, dt in zip(spikes, fit.oasis, dts)]))}
print(json.dumps(out), flush=True)
