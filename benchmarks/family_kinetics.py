"""The recording's decay estimate (core.kinetics.estimate_decay_time) against the true decay of
each benchmark-family cell (benchmarks/family.py), without fitting anything: what the estimate's
range ``core.kinetics.ESTIMATE_RATIO_RANGE`` was measured on (tune half).

    python benchmarks/family_kinetics.py --half tune --out results/family_kinetics_tune.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from family import sample_cells


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", default="tune", choices=["tune", "report", "all"])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    from napari_sbtt.api import RunConfig, observations_for_stack
    from napari_sbtt.core.indicators import get_indicator
    from napari_sbtt.core.kinetics import estimate_decay_time

    rows = []
    for cell in sample_cells():
        if a.half != "all" and cell.describe()["half"] != a.half:
            continue
        cfg = RunConfig()
        sim = cell.simulate(fine_factor=cfg.factor)
        try:
            obs = observations_for_stack(sim.movie, sim.labels, sim.pattern, config=cfg)
        except ValueError as e:
            rows.append({"cell": cell.describe(), "failed": str(e)})
            continue
        est = estimate_decay_time(obs.values, obs.times, bin_width=obs.grid.bin_width)
        true = get_indicator(cell.indicator).tau_decay
        rows.append({"cell": cell.describe(), "estimate_s": est, "true_s": true,
                     "ratio": None if est is None else est / true})
        print(cell.describe()["index"], cell.indicator, est, true, None if est is None else round(est / true, 3),
              flush=True)
        Path(a.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
