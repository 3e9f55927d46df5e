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
2. SBTT: standardise each recording by the median and the robust sd of its kept samples,
   cut all recordings of the data set into overlapping 1 s windows on the native frame grid and
   fit ONE calcium model (N = 1) on windows of every recording jointly (a learned prior of
   rate dynamics and one calcium kernel shared across the data set's neurons, decay started
   at the indicator preset), then infer the rate on the full native grid window by window
   and merge (``api.infer_observations``). At most ``--max-train-windows`` random windows
   are used for training (2 shared CPU cores);
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
from pathlib import Path
from typing import Any

import numpy as np
from _common import groundtruth_datasets, load_groundtruth, machine, write_rows

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


def robust_standardise(x: np.ndarray) -> np.ndarray:
    v = x[np.isfinite(x)]
    med = np.median(v)
    sd = 1.4826 * np.median(np.abs(np.diff(v))) / np.sqrt(2) + 1e-9  # noise sd from differences
    sd = max(sd, 0.1 * np.std(v) + 1e-9)
    return (x - med) / sd


def r_smoothed(spikes: np.ndarray, rate: np.ndarray, dt: float) -> float:
    from napari_sbtt.core.metrics import pearson_r

    return float(pearson_r(spikes, rate, sigma_s=SMOOTH_S, dt_s=dt))


def run_dataset(name: str, indicator: str, recs: list[dict[str, Any]], k: int, *, seed: int, window_s: float,
                max_train_windows: int, run_model: dict[str, Any], epochs: int | None,
                max_seconds: float | None) -> dict[str, Any]:
    from napari_sbtt.api import RunConfig, _model_config, infer_observations
    from napari_sbtt.core.baselines import oasis_rates
    from napari_sbtt.core.windows import choose_window, make_windows
    from napari_sbtt.model import fit_trials

    rng = np.random.default_rng(seed)
    dt = float(np.median([r["dt"] for r in recs]))
    obs = [subsample(r["dff"], k, rng) for r in recs]
    z = [robust_standardise(o) for o in obs]
    window, overlap = choose_window(dt, window_s=window_s, overlap_fraction=0.25)
    wins = []
    for zi in z:
        if zi.size >= window:
            wins.append(make_windows(zi[:, None], window, overlap).values)
    wins = np.concatenate(wins, axis=0)
    if wins.shape[0] > max_train_windows:
        wins = wins[rng.choice(wins.shape[0], max_train_windows, replace=False)]
    cfg = RunConfig(likelihood="calcium", indicator=indicator, epochs=epochs,
                    max_seconds=max_seconds, seed=seed, model=dict(run_model))
    t0 = time.perf_counter()
    model = fit_trials(wins, None, likelihood="calcium", config=_model_config(cfg, dt), seed=seed)
    t_fit = time.perf_counter() - t0
    rows = []
    for r, o, zi in zip(recs, obs, z, strict=True):
        if zi.size < window:
            continue
        est = infer_observations(model, zi[:, None], window=window, overlap=overlap)[:, 0]
        base = oasis_rates(o[:, None], r["t"])[:, 0]
        full = oasis_rates(r["dff"][:, None], r["t"])[:, 0]
        rows.append({"neuron": r["neuron"], "index": r["index"], "n_spikes": int(r["spikes"].sum()),
                     "sbtt": r_smoothed(r["spikes"], est, r["dt"]),
                     "oasis": r_smoothed(r["spikes"], base, r["dt"]),
                     "oasis_all": r_smoothed(r["spikes"], full, r["dt"])})

    def med(key: str) -> tuple[float, float]:
        v = np.array([x[key] for x in rows], dtype=float)
        by_n: dict[str, list[float]] = {}
        for x in rows:
            if np.isfinite(x[key]):
                by_n.setdefault(x["neuron"], []).append(x[key])
        return float(np.nanmedian(v)), float(np.median([np.median(a) for a in by_n.values()]))

    out = {"dataset": name, "indicator": indicator, "k": k, "frame_rate_hz": 1 / dt,
           "n_recordings": len(rows), "n_neurons": len({x["neuron"] for x in rows}),
           "n_train_windows": int(wins.shape[0]), "window_bins": window,
           "fit_seconds": t_fit, "epochs": len(model.history), "best_epoch": model.best_epoch,
           "load": os.getloadavg()[0], "per_recording": rows}
    for key in ("sbtt", "oasis", "oasis_all"):
        out[key + "_r_rec"], out[key + "_r_neuron"] = med(key)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gt-dir", default="../shared/groundtruth")
    p.add_argument("--k", nargs="+", type=int, default=[1, 2, 4],
                   help="keep every k-th frame (1 = every frame)")
    p.add_argument("--datasets", nargs="+", default=None,
                   help="data set folders (default: every DSnn-<indicator>-... folder in --gt-dir)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window-s", type=float, default=1.0)
    p.add_argument("--max-train-windows", type=int, default=256)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--model", default='{"batch_size": 32}', help="JSON SBTTConfig overrides")
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
    if a.quick:
        a.datasets, a.k, a.epochs, max_files = a.datasets[:1], [4], 5, 2
    model = {"num_threads": 1, **json.loads(a.model)}
    cmd = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    header = ("| data set | k | frame Hz | recordings / neurons | SBTT r (rec / neuron) | "
              "OASIS every k-th r | OASIS all frames r | fit s | epochs | load |")
    print(header)
    print("|" + "---|" * 10)
    rows = []
    for name in a.datasets:
        folder = gt / name
        if not folder.is_dir():
            print(f"{folder} not found; skipping")
            continue
        recs = load_dataset(folder, max_files)
        for k in a.k:
            res = run_dataset(name, found[name], recs, k, seed=a.seed, window_s=a.window_s,
                              max_train_windows=a.max_train_windows, run_model=model,
                              epochs=a.epochs, max_seconds=a.max_seconds)
            res.update(command=cmd, machine=machine())
            line = (f"| {name} | {k} | {res['frame_rate_hz']:.0f} | {res['n_recordings']} / "
                    f"{res['n_neurons']} | {res['sbtt_r_rec']:.3f} / {res['sbtt_r_neuron']:.3f} | "
                    f"{res['oasis_r_rec']:.3f} / {res['oasis_r_neuron']:.3f} | "
                    f"{res['oasis_all_r_rec']:.3f} / {res['oasis_all_r_neuron']:.3f} | "
                    f"{res['fit_seconds']:.0f} | {res['epochs']} | {res['load']:.1f} |")
            res["markdown"] = line
            print(line, flush=True)
            rows.append(res)
    if a.out:
        write_rows(a.out, rows, command=cmd, header=header, n_cols=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
