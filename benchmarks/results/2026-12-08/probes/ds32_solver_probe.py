# ruff: noqa
"""A ground-truth tune set at every k-th frame: one deconvolve_traces fit (indicator named or not,
200 s cap, the benchmark's kept frames, seed 0), then the library's sparse deconvolution re-run
under the fitted kernel with variants (sparsity, noise sd, per-trace decay), each scored as
groundtruth_spikes.py scores (median smoothed r over recordings), plus each estimate moved by
whole frames. No refit per variant; the fit's observation model and the stacked traces are saved
(OUT_om.npz, OUT_taus.npy: not kept in the repository, being derived from the ground-truth data).
Usage (from benchmarks/):
  python results/2026-12-08/probes/ds32_solver_probe.py K NAMED(0/1) OUT_PREFIX [DATASET]
"""
import json, math, sys, time
from pathlib import Path
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from groundtruth_spikes import fit_kept_frames, load_dataset, r_smoothed
from groundtruth_lag import median_r_by_lag
from napari_sbtt.core.deconvolution import sparse_deconvolve
from napari_sbtt.core.kinetics import difference_noise_sd
from napari_sbtt.core.baselines import oasis_decay_time
from napari_sbtt.deconvolve import standardise_trace, stack_traces

k = int(sys.argv[1]); named = bool(int(sys.argv[2])); out = Path(sys.argv[3])
ds = sys.argv[4] if len(sys.argv) > 4 else "DS32-GCaMP8s-m-V1"
ind = {"DS32-GCaMP8s-m-V1": "GCaMP8s", "DS09-GCaMP6f-m-V1": "GCaMP6f"}[ds] if named else None
recs = load_dataset(Path(__file__).resolve().parents[5] / "shared" / "groundtruth" / ds)
t0 = time.perf_counter()
fit = fit_kept_frames(recs, k, seed=0, indicator=ind, run={"max_seconds": 200})
res = fit.result
bin_s = res.metrics["bin_width_s"]
print("fit", round(time.perf_counter() - t0), "s", res.metrics["estimate"], "tau", res.metrics["tau_decay_s"],
      res.metrics["tau_rise_s"], flush=True)
# the traces as deconvolve_traces stacks them (every recording here is on a regular grid)
vals = []
for r, o in zip(recs, fit.obs):
    idx = np.round((r["t"] - r["t"][0]) / bin_s).astype(np.int64)
    g = np.full(int(idx.max()) + 1, np.nan); g[idx] = o; vals.append((g, idx))
std = [standardise_trace(g) for g, _ in vals]
z = [s[0] for s in std]
stacked, _ = stack_traces(z, bin_s)
om = res.model.observation_model()
N = stacked.shape[1]
np.savez(str(out) + "_om.npz", kernel=om["kernel"], baseline=om["baseline"], noise_sd=om["noise_sd"],
         tau_decay_bins=om["tau_decay_bins"], tau_rise_bins=om["tau_rise_bins"], stacked=stacked)
spikes, dts = [r["spikes"] for r in recs], [r["dt"] for r in recs]

def to_frames(jumps):
    ests = []
    for i, ((g, idx), (_, off, sc)) in enumerate(zip(vals, std)):
        ests.append(jumps[: g.size, i][idx] * sc)
    return ests

def score(ests):
    return float(np.nanmedian([r_smoothed(s, e, dt) for s, e, dt in zip(spikes, ests, dts)]))

def kern(tau_d, tau_r, L):
    """the likelihood's bin-averaged double exponential (no delay), area 1/(1-d); taus in bins"""
    kk = np.arange(L, dtype=float)
    def K(tau):
        p = math.exp(-1.0 / tau)
        v = tau * (math.sqrt(p) - p ** 1.5) * p ** (kk - 1)
        v[0] = tau * (1 - math.sqrt(p)); return v
    d = math.exp(-1.0 / tau_d)
    return (K(tau_d) - K(tau_r)) / ((tau_d - tau_r) * (1 - d))

rows = {}
def run(name, kernels, sd, sparsity=0.5):
    t1 = time.perf_counter()
    r_ = sparse_deconvolve(stacked, kernels, baseline=np.repeat(om["baseline"], N), noise_sd=sd, sparsity=sparsity)
    ests = to_frames(r_.jumps)
    rows[name] = {"r": score(ests), "s": round(time.perf_counter() - t1, 1)}
    print(name, rows[name], flush=True)
    return ests

K0 = np.repeat(om["kernel"], N, axis=0); sd0 = np.repeat(om["noise_sd"], N)
lib = score(list(res.rates)); oas = score(fit.oasis)
print("library rates", lib, "oasis", oas, flush=True)
L = om["kernel"].shape[1]
td, tr = float(om["tau_decay_bins"][0]), float(om["tau_rise_bins"][0])
print("kernel formula check (no delay):", float(np.abs(kern(td, tr, L) - om["kernel"][0]).max()), flush=True)
base = run("sparsity 0.5 (library)", K0, sd0)
lag = {"sbtt": median_r_by_lag(spikes, base, dts, tuple(range(-3, 4))),
       "oasis": median_r_by_lag(spikes, fit.oasis, dts, tuple(range(-3, 4)))}
print("lags", json.dumps(lag), flush=True)
for z_ in (0.0, 0.1, 0.25, 1.0, 2.0):
    run(f"sparsity {z_}", K0, sd0, z_)
run("noise sd from differences", K0, difference_noise_sd(stacked))
# per-trace decay from OASIS's AR(1) on each trace's kept samples (the bias factors of the library's
# estimate left out; its ratio to the median applied to the fitted decay instead)
taus = []
for i in range(N):
    v = stacked[:, i]; m = np.isfinite(v); t = np.arange(v.size)[m] * bin_s
    period = float(np.median(np.diff(t)))
    taus.append(oasis_decay_time(v[m], period))
taus = np.array(taus); ok = np.isfinite(taus)
rel = np.where(ok, taus / np.nanmedian(taus), 1.0)
np.save(str(out) + "_taus.npy", taus)
print("per-trace OASIS decay / median: q10 q50 q90", np.nanpercentile(rel, [10, 50, 90]), flush=True)
for shrink in (1.0, 0.5):
    f = rel ** shrink
    Kp = np.stack([kern(td * fi, tr, L) for fi in f])
    est = run(f"per-trace decay (ratio^{shrink})", Kp, sd0)
    if shrink == 1.0:
        lag["per-trace"] = median_r_by_lag(spikes, est, dts, tuple(range(-3, 4)))
        print("lags per-trace", json.dumps(lag["per-trace"]), flush=True)
        run("per-trace decay (ratio^1), sparsity 1", Kp, sd0, 1.0)
f = np.clip(rel, 0.5, 2.0)
run("per-trace decay (ratio clipped to 0.5-2)", np.stack([kern(td * fi, tr, L) for fi in f]), sd0)
json.dump({"dataset": ds, "k": k, "named": named, "library": lib, "oasis": oas, "rows": rows, "lags": lag,
           "metrics": {kk_: v for kk_, v in res.metrics.items() if not isinstance(v, dict)}},
          open(str(out) + ".json", "w"), indent=1, default=float)
