"""The events' timing within a gap, on the real ground-truth tune sets: from one fit of
``deconvolve_traces`` (library defaults, nothing named), the r of the jumps as the solver placed
them (``as_placed``: what ``deconvolve_traces`` returns) and of the same jumps spread over the
gap before the frame that saw each (``spread``: ``core.deconvolution.spread_over_gaps`` under
the learned kernel; the spread is linear, so each trace's scale does not matter), beside OASIS
on the same frames (a probe; report sets are refused). When this probe first ran, the library
returned the spread and the probe re-deconvolved the traces for the jumps as placed; the rows in
``results/2026-12-06g/gt_events_timing_tune.jsonl`` carry that run's keys.

    python benchmarks/groundtruth_events_timing.py --gt-dir ../shared/groundtruth --dataset DS32-GCaMP8s-m-V1 --k 4

Scoring as ``groundtruth_spikes.py`` (Pearson r after 50 ms smoothing against the spikes, median
over recordings and over neurons). Prints one JSON line per data set and k.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _common import refuse_report_sets
from groundtruth_spikes import (
    fit_kept_frames,
    load_dataset,
    median_by_recording_and_neuron,
    r_smoothed,
)


def probe(name: str, k: int, gt_dir: Path, seed: int) -> dict:
    from napari_sbtt.core.deconvolution import spread_over_gaps

    recs = load_dataset(gt_dir / name)
    fit = fit_kept_frames(recs, k, seed=seed)
    res = fit.result
    if res.metrics["estimate"] != "deconvolution":
        raise RuntimeError(f"{name} k = {k}: deconvolve_traces returned {res.metrics['estimate']!r}, "
                           "not the jumps this probe spreads")
    kernel = res.model.observation_model()["kernel"]  # (1, L): one kernel for every trace
    rows = []
    for r, o, placed, base in zip(recs, fit.obs, res.rates, fit.oasis, strict=True):
        spread = spread_over_gaps(placed[:, None], np.isfinite(o)[:, None], kernel)[:, 0]
        rows.append({"spread": r_smoothed(r["spikes"], spread, r["dt"]),
                     "as_placed": r_smoothed(r["spikes"], placed, r["dt"]),
                     "oasis": r_smoothed(r["spikes"], base, r["dt"]),
                     "neuron": r["neuron"]})
    return {"dataset": name, "k": k, "estimate": res.metrics["estimate"],
            "epochs": res.metrics["epochs_run"],
            **{key: median_by_recording_and_neuron(rows, key) for key in ("spread", "as_placed", "oasis")}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gt-dir", default="../shared/groundtruth")
    p.add_argument("--dataset", action="append", required=True, help="a tune set's folder name; repeat")
    p.add_argument("--k", type=int, nargs="+", default=[4])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    gt = Path(a.gt_dir)
    if not gt.is_dir():
        print(f"no ground truth at {gt}; nothing to do")
        return 0
    refuse_report_sets(p, a.dataset)
    command = "python " + " ".join(["benchmarks/groundtruth_events_timing.py",
                                    *(argv if argv is not None else sys.argv[1:])])
    for d in a.dataset:
        for k in a.k:
            print(json.dumps({**probe(d, k, gt, a.seed), "command": command}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
