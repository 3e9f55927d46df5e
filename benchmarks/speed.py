"""Speed and memory of the SBTT engine (issue 3, benchmark 4).

Each stage runs in its own Python process so that its peak RSS (VmHWM) is its own:

- fit:    ``run_on_stack`` on a synthetic preset with the library defaults: seconds per
          epoch, epochs, seconds to the best epoch, total fit seconds, and the quality
          reached (Pearson r vs the true rates after 50 ms smoothing, median over ROIs);
- infer:  applying the fitted model to a longer recording: seconds per ROI-hour;
- extract: trace extraction alone on the same recording, for scale.

Usage::

    python benchmarks/speed.py --preset default --out /tmp/speed.json
    python benchmarks/speed.py --preset default --device cuda    # on a GPU machine

Prints one markdown table row per stage with the machine and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage_fit(preset: str, seed: int, device: str, workdir: Path) -> dict:
    import numpy as np

    import napari_sbtt as ns
    from napari_sbtt.demo import score_against_truth

    sim = ns.simulate(preset, seed=seed)
    epochs: list[float] = []
    t0 = time.perf_counter()

    def progress(report):
        if hasattr(report, "epoch"):
            epochs.append(time.perf_counter())

    result = ns.run_on_stack(
        sim.movie, sim.labels, sim.pattern, progress=progress,
        config={"seed": seed, "device": device, "indicator": sim.config.indicator},
    )
    total = time.perf_counter() - t0
    truth = sim.truth.rates[:, np.asarray(result.roi_ids) - 1]
    score = score_against_truth(result.rates, truth, result.grid.bin_width)
    result.model.save(workdir / "model.safetensors", overwrite=True)
    per_epoch = float(np.median(np.diff(epochs))) if len(epochs) > 1 else float("nan")
    best = result.metrics["best_epoch"]
    fit_s = result.metrics["seconds_fit"]
    to_best = (epochs[best] - epochs[0] + per_epoch) if best is not None and best < len(epochs) else None
    return {
        "stage": "fit",
        "preset": preset,
        "n_rois": result.n_rois,
        "n_bins": int(result.rates.shape[0]),
        "recording_s": float(sim.pattern.duration),
        "epochs": len(epochs),
        "best_epoch": best,
        "seconds_per_epoch": per_epoch,
        "seconds_to_best": to_best,
        "seconds_fit": fit_s,
        "seconds_total": total,
        "pearson_r_median": score["pearson_r_median"],
        "device": result.metrics["device"],
        "peak_rss_mb": _peak_rss_mb(),
    }


def stage_infer(preset: str, seed: int, device: str, workdir: Path, repeats: int) -> dict:
    import numpy as np

    import napari_sbtt as ns
    from napari_sbtt.api import infer_observations

    model = ns.load_model(workdir / "model.safetensors", device=None if device == "auto" else device)
    sim = ns.simulate(preset, seed=seed + 1)
    obs = ns.extract_observations(sim.movie, sim.labels, sim.pattern, dff=True)
    values = np.tile(obs.values, (repeats, 1))  # a longer recording: the same minute again
    meta = model.metadata
    roi_hours = values.shape[1] * values.shape[0] * obs.grid.bin_width / 3600
    per_roi_hour = {}
    for shifts in (1, ns.RunConfig().inference_shifts):  # one pass, and the library default
        t0 = time.perf_counter()
        infer_observations(model, values, window=meta["window_bins"], overlap=meta["overlap_bins"],
                           shifts=shifts)
        per_roi_hour[shifts] = (time.perf_counter() - t0) / roi_hours
    return {
        "stage": "infer",
        "preset": preset,
        "roi_hours": roi_hours,
        "seconds_per_roi_hour": per_roi_hour[1],
        "seconds_per_roi_hour_by_shifts": per_roi_hour,
        "device": str(model.device),
        "peak_rss_mb": _peak_rss_mb(),
    }


def stage_extract(preset: str, seed: int) -> dict:
    import napari_sbtt as ns

    sim = ns.simulate(preset, seed=seed + 1)
    t0 = time.perf_counter()
    obs = ns.extract_observations(sim.movie, sim.labels, sim.pattern, dff=True)
    seconds = time.perf_counter() - t0
    roi_hours = obs.values.shape[1] * sim.pattern.duration / 3600
    return {
        "stage": "extract",
        "preset": preset,
        "movie_mb": sim.movie.nbytes / 1e6,
        "seconds": seconds,
        "seconds_per_roi_hour": seconds / roi_hours,
        "peak_rss_mb": _peak_rss_mb(),
        "note": "peak RSS includes the simulated movie held in memory",
    }


def _machine() -> str:
    cores = os.cpu_count()
    return f"{platform.machine()}, {cores} cores, Python {platform.python_version()}"


def _run_stage(args: argparse.Namespace, stage: str, workdir: Path) -> dict:
    cmd = [sys.executable, __file__, "--stage", stage, "--preset", args.preset, "--seed",
           str(args.seed), "--device", args.device, "--workdir", str(workdir),
           "--repeats", str(args.repeats)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["load_avg_1min"] = os.getloadavg()[0]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--repeats", type=int, default=10, help="recording copies for the inference timing")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    p.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.stage is not None:  # child process
        wd = Path(args.workdir)
        if args.stage == "fit":
            row = stage_fit(args.preset, args.seed, args.device, wd)
        elif args.stage == "infer":
            row = stage_infer(args.preset, args.seed, args.device, wd, args.repeats)
        else:
            row = stage_extract(args.preset, args.seed)
        print(json.dumps(row))
        return

    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        rows = [_run_stage(args, s, wd) for s in ("fit", "infer", "extract")]
    command = "python benchmarks/speed.py " + " ".join(sys.argv[1:])
    print(f"machine: {_machine()}; command: `{command}`")
    print("| stage | numbers | peak RSS MB | device | load |")
    print("|---|---|---:|---|---:|")
    for r in rows:
        if r["stage"] == "fit":
            nums = (f"{r['n_rois']} ROIs x {r['recording_s']:.0f} s: {r['seconds_per_epoch']:.2f} s/epoch, "
                    f"{r['epochs']} epochs (best {r['best_epoch']}), fit {r['seconds_fit']:.0f} s, "
                    f"to best {r['seconds_to_best']:.0f} s, r = {r['pearson_r_median']:.3f}")
        elif r["stage"] == "infer":
            by = ", ".join(f"{v:.2f} s with {k} shift(s)" for k, v in r["seconds_per_roi_hour_by_shifts"].items())
            nums = f"per ROI-hour: {by} ({r['roi_hours']:.1f} ROI-hours)"
        else:
            nums = f"{r['seconds_per_roi_hour']:.3f} s per ROI-hour ({r['movie_mb']:.0f} MB movie)"
        dev = r.get("device", "cpu")
        print(f"| {r['stage']} | {nums} | {r['peak_rss_mb']:.0f} | {dev} | {r['load_avg_1min']:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": _machine(), "command": command, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
