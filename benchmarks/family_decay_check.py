"""The decay an unnamed run starts from, with and without the held-out check, on tune cells of the
benchmark family (a probe; report cells are refused; no network is fitted).

Per cell: the simulator's true decay, the library's AR(1) estimate
(:func:`napari_sbtt.core.kinetics.estimate_decay_time`), the decay that
``RunConfig(decay_heldout_check=True)`` starts from (:func:`napari_sbtt.pipeline.recording_decay`:
the estimate lengthened toward the decay held-out samples prefer), each candidate's held-out
R^2 and the seconds the check took. Cells whose start decay the check leaves unchanged fit
exactly as without it, so only the others need a fit to see what it does to r.

    python benchmarks/family_decay_check.py --seed 7 --cell 0 [--cell 2 ...]
"""

from __future__ import annotations

import sys
import time
from typing import Any


def probe_cell(cell: Any, named: bool) -> dict[str, Any]:
    """The probe row of one tune cell (``named`` only labels it: the check runs without a name)."""
    from napari_sbtt.api import RunConfig, observations_for_stack
    from napari_sbtt.config import DEFAULT_INDICATOR
    from napari_sbtt.core.indicators import get_indicator
    from napari_sbtt.core.kinetics import estimate_decay_time, heldout_decay_scores
    from napari_sbtt.pipeline import recording_decay

    cfg = RunConfig(decay_heldout_check=True)
    sim = cell.simulate(fine_factor=cfg.factor)
    obs = observations_for_stack(sim.movie, sim.labels, sim.pattern, config=cfg)
    ar1 = estimate_decay_time(obs.values, obs.times, bin_width=obs.grid.bin_width)
    t0 = time.perf_counter()
    checked = recording_decay(obs, cfg)
    seconds = time.perf_counter() - t0
    scores = (heldout_decay_scores(obs.values, obs.times, ar1, rise_s=get_indicator(DEFAULT_INDICATOR).tau_rise,
                                   seed=cfg.seed)
              if ar1 is not None else {})
    return {"cell": cell.describe(), "named": named,
            "true_decay_s": float(get_indicator(cell.indicator).decay),
            "ar1_estimate_s": ar1, "checked_decay_s": checked, "seconds_check": round(seconds, 1),
            "r2_samples": {f"{k:.3f}": v for k, v in scores.items()}}


def main(argv: list[str] | None = None) -> int:
    from family import run_tune_probe

    return run_tune_probe(argv, "family_decay_check.py", __doc__.splitlines()[0], probe_cell)


if __name__ == "__main__":
    sys.exit(main())
