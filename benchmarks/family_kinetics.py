"""The recording's decay estimate against the true decay on each family cell (no fits)."""
from __future__ import annotations

import argparse
import json
import sys

from family import sample_cells


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", default="tune", choices=["tune", "report", "all"])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    from napari_sbtt.api import RunConfig, observations_for_stack
    from napari_sbtt.core.indicators import get_indicator
    from napari_sbtt.core.kinetics import estimate_decay_time
    from napari_sbtt.core.synth import simulate

    rows = []
    for cell in sample_cells():
        if a.half != "all" and cell.describe()["half"] != a.half:
            continue
        cfg = RunConfig()
        sim = simulate(cell.synth_config(fine_factor=cfg.factor), seed=cell.seed)
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
        json.dump(rows, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
