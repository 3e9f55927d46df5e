"""Search table (issue 13): the best of N Ray Tune trials against the library's defaults on cells
of the benchmark family, with the same wall-clock budget.

Per cell of ``benchmarks/family.py`` (report half by default; ``--only`` picks cells), the cell's
recording is simulated as the family does and saved as a user's files (``movie.tif``,
``rois.tif``, ``scan.json``); then, with a wall-clock budget of W seconds (``--budget``) for each:

- defaults: :func:`napari_sbtt.recording.load_recording`, ``recording_observations`` and
  ``run_on_observations`` with ``RunConfig(indicator=<the cell's>, max_seconds=W)`` (the library's
  defaults otherwise; ``--no-indicator``: nothing named), as ``napari-sbtt run`` does;
- search: :func:`napari_sbtt.tune` on the same files, ASHA (its default), ``--trials`` trials
  (default 4), a local Ray with ``--num-cpus`` (default 2) CPUs and 1 CPU per trial (its default),
  over the whole :data:`napari_sbtt.search.SEARCH_SPACE`, the same ``RunConfig`` otherwise. The
  search picks its best trial by the held-out loss (``valid_loss``), never by the truth; the table
  scores the result it returns (the best trial's model through the normal run);
- OASIS (``core.baselines.oasis_rates``) on the same samples.

Time budget: ``napari_sbtt.tune`` has no total time budget (it does not expose Ray Tune's
``time_budget_s``; each trial's time is capped by ``config.max_seconds``). So each trial gets
``max_seconds = W / trials x concurrent trials`` (concurrent = ``num_cpus`` / 1 CPU per trial:
W / 2 for 4 trials on 2 CPUs), so that the trials' fits fill about W of wall clock; the
defaults' single fit gets ``max_seconds = W``. Both add what follows the fit (inference, the
held-out comparison) and the search adds starting Ray; the table gives each arm's measured wall
clock. Each fit uses the library's default of one torch thread: the defaults run on one core,
the search's two concurrent trials on two.

Score: the family's (``_common.median_r``): Pearson r against the true rates after 50 ms
smoothing, median over ROIs. Load: the 1-minute load average before each arm.

    python benchmarks/search_vs_defaults.py --out results/search --budget 300
    python benchmarks/search_vs_defaults.py --out results/search --budget 300 --only 3 13 17 21
    python benchmarks/search_vs_defaults.py --quick --out /tmp/search_quick      # < 2 minutes

A rerun with the same ``--out`` and settings skips the cells already in OUT.json (rewritten
after every cell); a failed cell runs again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import load_avg, machine, median_r, resumed_rows, write_rows
from family import Cell, quick_cells, sample_cells

QUICK_BUDGET_S, QUICK_TRIALS, QUICK_EPOCHS = 20.0, 2, 30


def observations_of(folder: Path, cfg: Any) -> Any:
    """The cell's observations from its files, as ``napari-sbtt run`` reads them."""
    from napari_sbtt.recording import load_recording, recording_observations

    with load_recording(folder / "movie.tif", rois=folder / "rois.tif", scan=folder / "scan.json") as rec:
        obs, scan, _ = recording_observations(rec, config=cfg)
    return obs, scan


def run_cell(cell: Cell, folder: Path, *, budget: float, trials: int, num_cpus: int, named: bool,
             run: dict[str, Any]) -> dict[str, Any]:
    """Simulate the cell into ``folder``, run the defaults and the search; one table row."""
    from napari_sbtt import tune
    from napari_sbtt.api import RunConfig, run_on_observations
    from napari_sbtt.core.baselines import oasis_rates

    base = RunConfig.from_dict({**({"indicator": cell.indicator} if named else {}), **run})
    concurrent = max(1, num_cpus)  # 1 CPU per trial (tune's default)
    per_trial = budget * min(concurrent, trials) / trials
    row: dict[str, Any] = {"cell": cell.describe(), "budget_s": budget, "trials": trials, "num_cpus": num_cpus,
                           "trial_max_seconds": per_trial}
    t0 = time.perf_counter()
    sim = cell.simulate(fine_factor=base.factor)
    sim.save(folder, overwrite=True)
    truth_all = sim.truth.rates
    del sim
    row["seconds_simulate"] = time.perf_counter() - t0
    try:
        obs, scan = observations_of(folder, base)
    except ValueError as e:  # the library refuses this recording (family cell 11): a result too
        row["failed"] = f"observations: {e}"
        return row
    truth = truth_all[:, obs.roi_ids - 1]
    dt = obs.grid.bin_width
    row["true"] = {"n_rois": int(obs.values.shape[1]), "duration_s": float(obs.n_bins * dt)}
    row["oasis"] = {"r": median_r(truth, oasis_rates(obs.values, obs.times), dt)}

    load = load_avg()
    t0 = time.perf_counter()
    res = run_on_observations(obs, config=base.replace(max_seconds=budget), scan=scan)
    m = res.metrics
    row["defaults"] = {"r": median_r(truth, res.rates, dt), "seconds": time.perf_counter() - t0, "load": load,
                       "seconds_fit": m["seconds_fit"], "epochs": m["epochs_run"], "estimate": m["estimate"],
                       "best_valid_loss": m["best_valid_loss"]}
    del res

    load = load_avg()
    t0 = time.perf_counter()
    found = tune(folder / "movie.tif", folder / "search", trials=trials,
                 config=base.replace(max_seconds=per_trial),
                 recording_options={"rois": str(folder / "rois.tif"), "scan": str(folder / "scan.json")},
                 num_cpus=num_cpus, verbose=0, overwrite=True)
    secs = time.perf_counter() - t0
    if found.result.rates.shape != truth.shape:
        raise RuntimeError(f"the search's result has shape {found.result.rates.shape}, the truth {truth.shape}")
    best = next(t for t in found.trials if t.trial == found.best_trial)
    row["search"] = {
        "r": median_r(truth, found.result.rates, dt), "seconds": secs, "load": load,
        "estimate": found.result.metrics["estimate"], "best_loss": found.best_loss,
        "best_params": found.best_params, "best_epochs": best.epochs, "best_seconds": best.seconds,
        "trials": [{"trial": t.trial, "params": t.params, "best_loss": t.best_loss, "epochs": t.epochs,
                    "seconds": t.seconds, "status": t.status, "error": t.error} for t in found.trials],
        "trials_ran": sum(t.status != "failed" for t in found.trials),
    }
    row["margin_vs_defaults"] = row["search"]["r"] - row["defaults"]["r"]
    return row


# ----------------------------------------------------------------------------- table
HEADER = ("| cell | latent | indicator | scan | ROIs | s | W s | search r | defaults r | OASIS r | "
          "search - defaults | search s | defaults s | best trial: loss, epochs (trials ran) | "
          "defaults: loss, epochs | load (defaults / search) |")
N_COLS = 16


def markdown(row: dict[str, Any]) -> str:
    c = row["cell"]
    head = f"| {c['index']} | {c['latent']} | {c['indicator']} | {c['scan']} | {c['n_rois']} | {c['duration_s']:.0f} | "
    if row.get("failed"):
        return head + f"{row['budget_s']:g} | failed: {row['failed'][:80]} |" + " - |" * 9
    s, d = row["search"], row["defaults"]
    dl = "-" if d["best_valid_loss"] is None else f"{d['best_valid_loss']:.4g}"
    return head + (f"{row['budget_s']:g} | {s['r']:.3f} ({s['estimate']}) | {d['r']:.3f} ({d['estimate']}) | "
                   f"{row['oasis']['r']:.3f} | {row['margin_vs_defaults']:+.3f} | {s['seconds']:.0f} | "
                   f"{d['seconds']:.0f} | {s['best_loss']:.4g}, {s['best_epochs']} ({s['trials_ran']}/{row['trials']}) | "
                   f"{dl}, {d['epochs']} | {d['load']:.1f} / {s['load']:.1f} |")


NOTE = ("Losses: the held-out (validation) loss the search picks by, per window; the defaults' is beside it "
        "for reference only (a trial's window_scale changes the windows, so they compare only within one "
        "search). Search s includes starting Ray and the best model's run (inference, held-out comparison).")


def summary(rows: list[dict[str, Any]]) -> list[str]:
    ok = [r for r in rows if not r.get("failed")]
    if not ok:
        return [NOTE]
    m = np.array([r["margin_vs_defaults"] for r in ok])
    so = np.array([r["search"]["r"] - r["oasis"]["r"] for r in ok])
    do = np.array([r["defaults"]["r"] - r["oasis"]["r"] for r in ok])
    return [f"{len(ok)} cells: search - defaults median {np.median(m):+.3f} (worst {m.min():+.3f}, "
            f"better in {int((m > 0).sum())}); margin over OASIS: search median {np.median(so):+.3f}, "
            f"defaults median {np.median(do):+.3f}"
            + (f"; {len(rows) - len(ok)} failed" if len(rows) > len(ok) else ""), "", NOTE]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=float, default=300.0, help="wall-clock budget W per arm in seconds (default 300)")
    p.add_argument("--trials", type=int, default=4, help="trials of the search (default 4)")
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    p.add_argument("--cells", type=int, default=24, help="cells in the family (default 24)")
    p.add_argument("--seed", type=int, default=0, help="seed of the family")
    p.add_argument("--half", choices=["tune", "report", "all"], default="report", help="which half (default report)")
    p.add_argument("--only", type=int, nargs="+", default=None, metavar="INDEX", help="run only these cells")
    p.add_argument("--no-indicator", action="store_true", help="name no indicator (RunConfig().indicator = None)")
    p.add_argument("--out", required=True, help="write OUT.json and OUT.md; a rerun skips cells already there")
    p.add_argument("--work", default=None,
                   help="folder for the cells' files (default: search_cells in the temporary folder, e.g. /tmp)")
    p.add_argument("--quick", action="store_true",
                   help=f"one tiny cell (10 ROIs, 12 s), W = {QUICK_BUDGET_S:g} s, {QUICK_TRIALS} trials, "
                        f"{QUICK_EPOCHS} epochs at most: a smoke test (< 2 minutes)")
    a = p.parse_args(argv)
    # Ray Tune warns at every checkpoint of a short epoch; the warning is about its own bookkeeping
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if a.trials < 1 or a.num_cpus < 1 or a.budget <= 0:
        p.error("--trials and --num-cpus must be >= 1 and --budget > 0")
    run: dict[str, Any] = {}
    if a.quick:
        a.budget, a.trials, run = QUICK_BUDGET_S, QUICK_TRIALS, {"epochs": QUICK_EPOCHS}
        cells = [c for c in quick_cells(a.seed) if c.half == "report"]
    else:
        cells = sample_cells(a.cells, a.seed)
        if a.half != "all":
            cells = [c for c in cells if c.half == a.half]
    if a.only is not None:
        bad = sorted(set(a.only) - {c.index for c in cells})
        if bad:
            p.error(f"--only {' '.join(map(str, bad))}: no such cell in this family/half (see family.py --list)")
        cells = [c for c in cells if c.index in a.only]
    from napari_sbtt.core.baselines import oasis_available

    if not oasis_available():
        print("oasis-deconv is not installed (pip install napari-sbtt[baselines]); the table needs it")
        return 1
    named = not a.no_indicator
    key = json.dumps({"budget": a.budget, "trials": a.trials, "num_cpus": a.num_cpus, "named": named, "run": run,
                      "seed": a.seed, "cells": a.cells, "quick": a.quick}, sort_keys=True)
    out = Path(a.out)
    work = Path(a.work) if a.work else Path(tempfile.gettempdir()) / "search_cells"
    rows = resumed_rows(out, key, HEADER, N_COLS)
    cmd = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    done = {r["cell"]["index"] for r in rows if not r.get("failed")}
    for c in cells:
        if c.index in done:
            continue
        rows = [r for r in rows if r["cell"]["index"] != c.index]
        folder = work / f"cell{c.index}"
        t0 = time.perf_counter()
        row = run_cell(c, folder, budget=a.budget, trials=a.trials, num_cpus=a.num_cpus, named=named, run=run)
        row.update(seconds_total=time.perf_counter() - t0, key=key, run=run, command=cmd, machine=machine(),
                   variant="indicator named" if named else "no indicator")
        row["markdown"] = markdown(row)
        print(row["markdown"], flush=True)
        rows.append(row)
        rows.sort(key=lambda r: r["cell"]["index"])
        write_rows(out, rows, command=cmd, header=HEADER, n_cols=N_COLS, footer=summary(rows))
        shutil.rmtree(folder, ignore_errors=True)
    if work.is_dir() and not any(work.iterdir()):
        work.rmdir()
    print()
    for line in summary(rows):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
