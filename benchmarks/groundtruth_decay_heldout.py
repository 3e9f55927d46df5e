"""Which calcium decay predicts held-out frames best, on the real ground-truth tune sets (a
probe; report sets are refused; no network is fitted): the ground-truth side of
``family_decay_heldout.py``.

For every k-th frame kept (the frames ``groundtruth_spikes.py`` keeps, same seed), each
recording is one column of a (T, N) grid (NaN where a frame was not kept or the recording has
ended); for each candidate decay (``family_decay_heldout.CANDIDATES_S``) the sparse
deconvolution under that kernel (GCaMP6f's rise, as a run that names nothing) is scored on
10 % of the kept frames held out one at a time (the sample test), and the best is picked.
Beside it: the library's AR(1) estimate (``core.kinetics.decay_time_of_series``) and the decay
measured from the spikes (benchmarks/RESULTS.md, "Kinetics from the recording"). At most
``--max-recordings`` recordings (evenly spread) and their first ``--max-seconds``.

    python benchmarks/groundtruth_decay_heldout.py --gt-dir ../shared/groundtruth --dataset DS09-GCaMP6f-m-V1

Prints one JSON line per data set and k.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _common import TUNE_SETS, refuse_report_sets
from family_decay_heldout import decay_scores
from groundtruth_spikes import load_dataset, subsample

#: decay measured from the spikes (s), median over recordings (benchmarks/measure_indicators.py;
#: the values core.kinetics.OASIS_DECAY_BIAS is built from)
SPIKE_DECAY_S = {"DS09-GCaMP6f-m-V1": 0.5758, "DS32-GCaMP8s-m-V1": 0.4718}


def probe(name: str, k: int, gt_dir: Path, seed: int, max_recordings: int, max_seconds: float,
          check_only: bool = False) -> dict[str, Any]:
    from napari_sbtt.config import DEFAULT_INDICATOR
    from napari_sbtt.core.indicators import get_indicator
    from napari_sbtt.core.kinetics import (
        decay_time_of_series,
        heldout_decay_scores,
        lengthened_decay,
    )

    recs = load_dataset(gt_dir / name)
    rng = np.random.default_rng(seed)  # the frames groundtruth_spikes.py keeps
    obs = [subsample(r["dff"], k, rng) for r in recs]
    dt = float(np.median([r["dt"] for r in recs]))
    ar1 = decay_time_of_series(obs, [r["t"] for r in recs], bin_width=dt)
    pick = np.linspace(0, len(recs) - 1, min(max_recordings, len(recs))).round().astype(int)
    n_t = min(int(round(max_seconds / dt)), max(recs[i]["dff"].size for i in pick))
    grid = np.full((n_t, pick.size), np.nan)
    for j, i in enumerate(pick):
        o = obs[i][:n_t]
        grid[:o.size, j] = o
    times = np.arange(n_t) * dt
    row: dict[str, Any] = {"dataset": name, "k": k, "frame_hz": 1.0 / dt, "recordings": int(pick.size),
                           "spike_decay_s": SPIKE_DECAY_S.get(name), "ar1_estimate_s": ar1}
    if ar1 is not None:  # what RunConfig(decay_heldout_check=True) would start from (nothing named)
        # RunConfig's default seed (0): the check a run would make, whatever frames --seed kept
        scores = heldout_decay_scores(grid, times, ar1, rise_s=get_indicator(DEFAULT_INDICATOR).tau_rise,
                                      seed=0)
        row["checked_decay_s"] = lengthened_decay(ar1, scores)
        row["check_scores"] = {f"{t:.3f}": v for t, v in scores.items()}
    if not check_only:
        r2 = decay_scores(grid, times, dt, 0.0)
        row.update(pick_samples_s=float(max(r2, key=r2.get)), r2_samples=r2)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gt-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "groundtruth")
    p.add_argument("--dataset", action="append", default=None, help="a tune set (default: both)")
    p.add_argument("--k", type=int, nargs="+", default=[1, 2, 4], help="keep every k-th frame")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-recordings", type=int, default=32)
    p.add_argument("--max-seconds", type=float, default=180.0)
    p.add_argument("--check-only", action="store_true",
                   help="only the library's held-out check (core.kinetics.lengthened_decay), not the full grid")
    a = p.parse_args(argv)
    names = a.dataset or list(TUNE_SETS)
    refuse_report_sets(p, names)
    if not a.gt_dir.is_dir():
        print(f"no ground truth at {a.gt_dir}: nothing to probe")
        return 0
    command = "python " + " ".join(["groundtruth_decay_heldout.py", *(argv if argv is not None else sys.argv[1:])])
    for n in names:
        for k in a.k:
            row = probe(n, k, a.gt_dir, a.seed, a.max_recordings, a.max_seconds, a.check_only)
            print(json.dumps({**row, "command": command}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
