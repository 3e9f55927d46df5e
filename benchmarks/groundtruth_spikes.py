"""Benchmark 3 of issue 3 (evaluation protocol 3: real ground truth, spike recovery from every k-th
frame, Pearson r after Gaussian smoothing as in CASCADE): spike recovery on real ground truth.

For each data set of the CASCADE ground-truth subset in ``--gt-dir`` (simultaneous
juxtacellular spikes and two-photon dF/F of single neurons; format in
``groundtruth/README.md``) and each k (1, 2, 4):

0. the data sets are found from the folder names (``DSnn-<indicator>-...``, all seven of
   ``../shared/groundtruth``: DS06/07/09/11 GCaMP6f, DS13/14 GCaMP6s, DS32 jGCaMP8s), and the
   indicator named in the folder sets the calcium model's starting kinetics;
1. keep every k-th frame of each recording's dF/F (``fluo_mean``), NaN elsewhere, with a
   random phase per recording (seeded); k = 1 keeps every frame;
2. SBTT: the public ``napari_sbtt.deconvolve_traces`` with the library's defaults (plus
   ``--run``): one calcium model learned across all recordings of the data set (N = 1 per
   window, a shared prior of rate dynamics and one kernel), its kinetics started at the
   indicator named in the folder (``--no-indicator``: nothing named, so the decay starts from
   the recordings' own estimate, ``core.kinetics``) and learned; the estimate the library
   returns (``estimate``: the events deconvolved under the learned kernel unless the network
   fills held-out gaps better);
3. OASIS (``core.baselines.oasis_rates``, AR(1), own parameter estimation) on the same kept
   samples, interpolated to the native grid, and OASIS on all frames;
4. score: Pearson r per recording after 50 ms Gaussian smoothing of the inferred rate and the
   true spike train (``events_AP`` / 1e4 s binned on ``fluo_time``); median over
   recordings and median over neurons (per-neuron medians first, as CASCADE).

    python benchmarks/groundtruth_spikes.py --gt-dir ../shared/groundtruth --out results/b3
    python benchmarks/groundtruth_spikes.py --gt-dir ../shared/groundtruth --quick

Exits 0 with a note when the folder is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import TUNE_SETS, groundtruth_datasets, load_groundtruth, machine, write_rows

SMOOTH_S = 0.05




def load_dataset(folder: Path, max_files: int | None = None) -> list[dict[str, Any]]:
    """Recordings of a data set: dicts with neuron, t (T,), dff (T,), spikes per frame (T,)."""
    recs = []
    files = sorted(folder.glob("*.mat"))[:max_files]
    for f in files:
        for i, t, y, ap in load_groundtruth(f):
            n = t.size
            ok = np.isfinite(t) & np.isfinite(y)
            t, y = t[ok], y[ok]
            if n < 100 or ap.size < 2:
                continue
            dt = float(np.median(np.diff(t)))
            edges = np.concatenate([t - dt / 2, [t[-1] + dt / 2]])
            spk = np.histogram(ap, bins=edges)[0].astype(float)
            recs.append({"neuron": f.stem, "index": i, "t": t, "dff": y, "spikes": spk, "dt": dt})
    return recs


def subsample(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    out = np.full_like(y, np.nan)
    ph = int(rng.integers(k))
    out[ph::k] = y[ph::k]
    return out


def r_smoothed(spikes: np.ndarray, rate: np.ndarray, dt: float) -> float:
    from napari_sbtt.core.metrics import pearson_r

    return float(pearson_r(spikes, rate, sigma_s=SMOOTH_S, dt_s=dt))


@dataclass
class KeptFramesFit:
    """One data set's recordings fitted on every k-th frame: what the ground-truth probes share."""

    obs: list[np.ndarray]
    """per recording (T,) dF/F: the kept frames, NaN elsewhere"""
    result: Any
    """what ``napari_sbtt.deconvolve_traces`` returned (``.rates``: one (T,) per recording)"""
    oasis: list[np.ndarray]
    """per recording (T,) OASIS rate on the same kept frames, on the native frame grid"""
    seconds: float
    """wall-clock seconds of the ``deconvolve_traces`` fit alone (OASIS not counted)"""
    load: float
    """1-minute load average when the fit started"""


def fit_kept_frames(recs: list[dict[str, Any]], k: int, *, seed: int, indicator: str | None = None,
                    run: dict[str, Any] | None = None, trace_decays: bool = False) -> KeptFramesFit:
    """Keep every ``k``-th frame of each recording (random phase per recording from ``seed``: the
    frames every ground-truth probe keeps), fit ``deconvolve_traces`` across all of them (library
    defaults plus ``run`` and ``trace_decays``, ``indicator`` None: nothing named) and run OASIS on
    the same frames."""
    from napari_sbtt.core.baselines import oasis_rates
    from napari_sbtt.deconvolve import deconvolve_traces

    rng = np.random.default_rng(seed)
    obs = [subsample(r["dff"], k, rng) for r in recs]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = deconvolve_traces(obs, times=[r["t"] for r in recs], indicator=indicator,
                            config={"seed": seed, **(run or {})}, trace_decays=trace_decays)
    seconds = time.perf_counter() - t0
    oasis = [oasis_rates(o[:, None], r["t"])[:, 0] for r, o in zip(recs, obs, strict=True)]
    return KeptFramesFit(obs=obs, result=res, oasis=oasis, seconds=seconds, load=load0)


def median_by_recording_and_neuron(rows: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """Median of ``row[key]`` over recordings, and over neurons (each neuron's median over its
    recordings first, as CASCADE); NaN scores are left out."""
    by_n: dict[str, list[float]] = {}
    for x in rows:
        if np.isfinite(x[key]):
            by_n.setdefault(x["neuron"], []).append(x[key])
    return (float(np.nanmedian(np.array([x[key] for x in rows], dtype=float))),
            float(np.median([np.median(a) for a in by_n.values()])))


def run_dataset(name: str, indicator: str | None, recs: list[dict[str, Any]], k: int, *, seed: int,
                run: dict[str, Any], trace_decays: bool = False) -> dict[str, Any]:
    """SBTT through the public ``napari_sbtt.deconvolve_traces`` (library defaults plus ``run``)
    and OASIS on the same kept frames and on all frames, for every recording of one data set."""
    from napari_sbtt.core.baselines import oasis_rates

    fit = fit_kept_frames(recs, k, seed=seed, indicator=indicator, run=run, trace_decays=trace_decays)
    rows = []
    for r, est, base in zip(recs, fit.result.rates, fit.oasis, strict=True):
        full = oasis_rates(r["dff"][:, None], r["t"])[:, 0]
        rows.append({"neuron": r["neuron"], "index": r["index"], "n_spikes": int(r["spikes"].sum()),
                     "sbtt": r_smoothed(r["spikes"], est, r["dt"]),
                     "oasis": r_smoothed(r["spikes"], base, r["dt"]),
                     "oasis_all": r_smoothed(r["spikes"], full, r["dt"])})
    m = fit.result.metrics
    out = {"dataset": name, "indicator": indicator or "none named", "k": k, "half": "tune" if name in TUNE_SETS else "report",
           "frame_rate_hz": 1 / m["bin_width_s"], "n_recordings": len(rows),
           "n_neurons": len({x["neuron"] for x in rows}), "seconds": fit.seconds, "load": fit.load,
           "run": run, "trace_decays": trace_decays, "metrics": m, "per_recording": rows}
    for key in ("sbtt", "oasis", "oasis_all"):
        out[key + "_r_rec"], out[key + "_r_neuron"] = median_by_recording_and_neuron(rows, key)
    return out


def _start(m: dict[str, Any]) -> str:
    """'estimate 1.23 s -> ' when the decay started from the recordings' own estimate."""
    est = m.get("decay_estimate_s")
    return "" if est is None else f"est. {est:.2f} s -> "


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gt-dir", default="../shared/groundtruth")
    p.add_argument("--k", nargs="+", type=int, default=[1, 2, 4],
                   help="keep every k-th frame (1 = every frame)")
    p.add_argument("--datasets", nargs="+", default=None,
                   help="data set folders (default: every DSnn-<indicator>-... folder in --gt-dir)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run", default="{}",
                   help="JSON RunConfig overrides for deconvolve_traces (default: the library's defaults)")
    p.add_argument("--half", choices=["tune", "report", "all"], default="all",
                   help=f"tune: only {', '.join(TUNE_SETS)} (settings may be chosen there); report: the others")
    p.add_argument("--trace-decays", action="store_true",
                   help="deconvolve_traces(trace_decays=True): each trace's events under its own decay")
    p.add_argument("--no-indicator", action="store_true",
                   help="name no indicator (the decay starts from the recordings' own estimate)")
    p.add_argument("--quick", action="store_true", help="2 files of the first data set, k=4, 5 epochs")
    p.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    a = p.parse_args(argv)
    gt = Path(a.gt_dir)
    if not gt.is_dir():
        print(f"ground-truth folder {gt} not found; skipping benchmark 3")
        return 0
    if any(k < 1 for k in a.k):
        p.error(f"--k takes whole numbers >= 1 (1 = every frame), got {a.k}")
    found = groundtruth_datasets(gt)
    if a.datasets is None:
        a.datasets = list(found)
    unknown = [d for d in a.datasets if d not in found]
    if unknown:
        p.error(f"--datasets {' '.join(unknown)}: not a data set folder in {gt}; found {', '.join(found)}")
    if not __import__("napari_sbtt.core.baselines", fromlist=["x"]).oasis_available():
        print("oasis-deconv is not installed; skipping benchmark 3")
        return 0
    max_files = None
    run = json.loads(a.run)
    if a.half != "all":
        a.datasets = [d for d in a.datasets if (d in TUNE_SETS) == (a.half == "tune")]
    if a.quick:
        a.datasets, a.k, max_files = a.datasets[:1], [4], 2
        run.setdefault("epochs", 5)
    cmd = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    header = ("| data set | half | k | frame Hz | recordings / neurons | SBTT r (rec / neuron) | "
              "OASIS every k-th r | OASIS all frames r | margin (same / all frames) | kernel decay / rise (start -> end of fit) | "
              "held-out verdict | s | epochs | load |")
    print(header)
    print("|" + "---|" * 14)
    rows = []
    for name in a.datasets:
        folder = gt / name
        if not folder.is_dir():
            print(f"{folder} not found; skipping")
            continue
        recs = load_dataset(folder, max_files)
        for k in a.k:
            res = run_dataset(name, None if a.no_indicator else found[name], recs, k, seed=a.seed, run=run,
                              trace_decays=a.trace_decays)
            res.update(command=cmd, machine=machine())
            m = res["metrics"]
            line = (f"| {name} | {res['half']} | {k} | {res['frame_rate_hz']:.0f} | {res['n_recordings']} / "
                    f"{res['n_neurons']} | {res['sbtt_r_rec']:.3f} / {res['sbtt_r_neuron']:.3f} | "
                    f"{res['oasis_r_rec']:.3f} / {res['oasis_r_neuron']:.3f} | "
                    f"{res['oasis_all_r_rec']:.3f} / {res['oasis_all_r_neuron']:.3f} | "
                    f"{res['sbtt_r_rec'] - res['oasis_r_rec']:+.3f} / "
                    f"{res['sbtt_r_rec'] - res['oasis_all_r_rec']:+.3f} | "
                    f"{_start(m)}{m['tau_decay_s']:.2f} s / {m['tau_rise_s'] * 1e3:.0f} ms | {m['heldout']['verdict']} | "
                    f"{res['seconds']:.0f} | {m['epochs_run']} | {res['load']:.1f} |")
            res["markdown"] = line
            print(line, flush=True)
            rows.append(res)
    if a.out:
        write_rows(a.out, rows, command=cmd, header=header, n_cols=14)
    return 0


if __name__ == "__main__":
    sys.exit(main())
