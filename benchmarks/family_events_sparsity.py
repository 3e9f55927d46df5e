"""The events' r against the truth under several sparsity weights, on one tune cell of the
benchmark family (a probe for choosing the deconvolution's sparsity; report cells are refused).

One SBTT fit with the library's defaults, then the events deconvolved under the learned calcium
model (``heldout.deconvolve_with_model``) for each sparsity weight, scored as the family scores
(:func:`_common.median_r`); OASIS and the estimate the library returned beside them. Prints one
JSON line.

    python benchmarks/family_events_sparsity.py --seed 0 --cell 16 [--named]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from _common import median_r

SPARSITIES = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0, help="seed of the family")
    p.add_argument("--cell", type=int, required=True, help="index of a tune (even) cell")
    p.add_argument("--named", action="store_true", help="name the cell's indicator")
    a = p.parse_args(argv)
    import family

    from napari_sbtt.api import RunConfig, observations_for_stack, run_on_observations
    from napari_sbtt.core.baselines import oasis_rates
    from napari_sbtt.core.synth import simulate
    from napari_sbtt.heldout import deconvolve_with_model

    cells = [c for c in family.sample_cells(24, a.seed) if c.index == a.cell]
    if not cells:
        p.error(f"--cell {a.cell}: no such cell in family seed {a.seed} (see family.py --list)")
    cell = cells[0]
    if cell.half != "tune":
        p.error(f"--cell {a.cell} is a report cell; probe tune cells only (even indices)")
    cfg = RunConfig.from_dict({"indicator": cell.indicator} if a.named else {})
    sim = simulate(cell.synth_config(fine_factor=cfg.factor), seed=cell.seed)
    obs = observations_for_stack(sim.movie, sim.labels, sim.pattern, config=cfg)
    truth = sim.truth.rates[:, obs.roi_ids - 1]
    dt = obs.grid.bin_width
    out = {"cell": cell.describe(), "named": a.named,
           "oasis": median_r(truth, oasis_rates(obs.values, obs.times), dt)}
    res = run_on_observations(obs, config=cfg, scan=sim.pattern)
    values = obs.values.astype(np.float64)
    for s in SPARSITIES:
        events, _ = deconvolve_with_model(res.model, values, sparsity=s)
        out[f"events_sparsity_{s:g}"] = median_r(truth, events, dt)
    out.update(returned=median_r(truth, res.rates, dt), estimate=res.metrics["estimate"],
               command="python " + " ".join(["benchmarks/family_events_sparsity.py",
                                             *(argv if argv is not None else sys.argv[1:])]))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
