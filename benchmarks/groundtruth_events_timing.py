"""The events' timing within a gap, on the real ground-truth tune sets: from one fit of
``deconvolve_traces`` (library defaults, nothing named), the r of the same fit's jumps as the
solver placed them (``as_placed``) and spread over the gap before the frame that saw each
(``spread``: ``core.deconvolution.spread_over_gaps``), beside the estimate the library returned
(``returned``; it was computed with the spread when this probe first ran, as placed since) and
OASIS on the same frames (a probe; report sets are refused).

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
from groundtruth_spikes import TUNE_SETS, load_dataset, r_smoothed, subsample


class _Tiled:
    """An N = 1 calcium model's observation model repeated for n traces."""

    def __init__(self, model, n: int) -> None:
        self.model, self.n = model, n

    def observation_model(self) -> dict[str, np.ndarray]:
        return {k: np.repeat(v, self.n, axis=0) for k, v in self.model.observation_model().items()}


def standardised(y: np.ndarray) -> np.ndarray:
    """The trace as ``deconvolve_traces`` standardises it (median baseline, noise sd from frame
    differences); the probe re-deconvolves the same values."""
    v = y[np.isfinite(y)]
    sd = max(1.4826 * float(np.median(np.abs(np.diff(v)))) / np.sqrt(2.0), 0.1 * float(np.std(v)), 1e-9)
    return (y - float(np.median(v))) / sd


def probe(name: str, k: int, gt_dir: Path, seed: int) -> dict:
    from napari_sbtt.core.baselines import oasis_rates
    from napari_sbtt.deconvolve import deconvolve_traces
    from napari_sbtt.heldout import deconvolve_with_model

    recs = load_dataset(gt_dir / name)
    rng = np.random.default_rng(seed)  # the frames groundtruth_spikes.py keeps
    obs = [subsample(r["dff"], k, rng) for r in recs]
    res = deconvolve_traces(obs, times=[r["t"] for r in recs], config={"seed": seed})
    z = [standardised(o) for o in obs]
    stacked = np.full((max(v.size for v in z), len(z)), np.nan)
    for i, v in enumerate(z):
        stacked[: v.size, i] = v
    raw, _ = deconvolve_with_model(_Tiled(res.model, len(z)), stacked, spread=False)
    spread, _ = deconvolve_with_model(_Tiled(res.model, len(z)), stacked)
    rows = []
    for i, (r, o) in enumerate(zip(recs, obs, strict=True)):
        n = r["dff"].size
        rows.append({"returned": r_smoothed(r["spikes"], res.rates[i], r["dt"]),
                     "spread": r_smoothed(r["spikes"], spread[:n, i], r["dt"]),
                     "as_placed": r_smoothed(r["spikes"], raw[:n, i], r["dt"]),
                     "oasis": r_smoothed(r["spikes"], oasis_rates(o[:, None], r["t"])[:, 0], r["dt"]),
                     "neuron": r["neuron"]})

    def med(key: str) -> tuple[float, float]:
        by_n: dict[str, list[float]] = {}
        for x in rows:
            by_n.setdefault(x["neuron"], []).append(x[key])
        return (float(np.nanmedian([x[key] for x in rows])),
                float(np.median([np.nanmedian(a) for a in by_n.values()])))

    return {"dataset": name, "k": k, "estimate": res.metrics["estimate"],
            "epochs": res.metrics["epochs_run"], **{key: med(key) for key in
                                                     ("returned", "spread", "as_placed", "oasis")}}


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
    for d in a.dataset:
        if d not in TUNE_SETS:
            p.error(f"--dataset {d}: probe the tune sets only ({', '.join(TUNE_SETS)})")
    command = "python " + " ".join(["benchmarks/groundtruth_events_timing.py",
                                    *(argv if argv is not None else sys.argv[1:])])
    for d in a.dataset:
        for k in a.k:
            print(json.dumps({**probe(d, k, gt, a.seed), "command": command}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
