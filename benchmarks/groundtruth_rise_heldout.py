"""Can held-out samples pick the calcium kernel's rise? A probe on the real ground-truth tune sets.

For each data set and every k-th frame kept (the frames ``groundtruth_spikes.py`` keeps, same
seed), the traces are standardised and stacked as ``deconvolve_traces`` does
(``napari_sbtt.deconvolve.standardise_trace``, ``stack_traces``), the decay is the one
``deconvolve_traces`` starts from (``napari_sbtt.traces_decay_estimate``, nothing named), and for each candidate rise the held-out
R² of single samples is computed with ``core.kinetics.heldout_decay_scores`` (10 % of the samples
held out, the rest deconvolved under a kernel of that rise and the decay). A rise the samples can
identify would score best near the one measured from the spikes (DS09 GCaMP6f 16 ms, DS32
jGCaMP8s 4.5 ms: RESULTS.md, "Kinetics from the recording"). No network is fitted.

    python benchmarks/groundtruth_rise_heldout.py --gt-dir ../shared/groundtruth  # about 6 min

Prints one JSON line per data set and k.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from _common import TUNE_SETS, groundtruth_probe_args
from groundtruth_spikes import load_dataset, subsample

RISES_S = (0.002, 0.004, 0.008, 0.016, 0.032, 0.064)


def main(argv: list[str] | None = None) -> int:
    from napari_sbtt import traces_decay_estimate
    from napari_sbtt.core.kinetics import heldout_decay_scores
    from napari_sbtt.deconvolve import stack_traces, standardise_trace

    a = groundtruth_probe_args(__doc__.splitlines()[0], argv, datasets=list(TUNE_SETS),
                               datasets_help="data set folders (default: the tune sets)")
    if a is None:
        return 0
    command = "python " + " ".join(["groundtruth_rise_heldout.py", *(argv if argv is not None else sys.argv[1:])])
    for name in a.datasets:
        recs = load_dataset(a.gt_dir / name)
        for k in a.k:
            rng = np.random.default_rng(a.seed)  # the frames groundtruth_spikes.py keeps
            obs = [subsample(r["dff"], k, rng) for r in recs]
            times = [r["t"] for r in recs]
            dt = float(np.median(np.concatenate([np.diff(t) for t in times])))
            decay = traces_decay_estimate(obs, times=times)
            values, grid = stack_traces([standardise_trace(o)[0] for o in obs], dt)
            t0 = time.perf_counter()
            scores = {r: heldout_decay_scores(values, grid, decay, rise_s=r, n_longer=0, seed=a.seed)[decay]
                      for r in RISES_S}
            print(json.dumps({"dataset": name, "k": k, "frame_hz": round(1 / dt, 1), "decay_s": round(decay, 3),
                              "heldout_r2_by_rise_ms": {f"{r * 1000:g}": round(v, 4) for r, v in scores.items()},
                              "best_rise_ms": 1000 * max(scores, key=scores.get),
                              "seconds": round(time.perf_counter() - t0, 1), "command": command}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
