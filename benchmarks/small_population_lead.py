"""Small populations: would a gap-test threshold other than ``heldout.DECISIVE_LEAD_SE`` choose
better between the two mixtures? Re-scores saved benchmark-family rows (``family.py`` OUT.json)
of cells with fewer than ``heldout.MIN_POPULATION_ROIS`` ROIs, no new fits: below a lead of L
standard errors the events-led mixture, above it the combined estimate, below -2 the events (as
``auto_estimate``), against the library's rule. Rows must hold both mixtures' r
(``r_<estimate>``, or ``family.py --extras`` blends: :func:`rescore_auto.estimate_r`).

    python benchmarks/small_population_lead.py --leads 3 4 5 results/2026-12-06h/tune_x_*.json ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rescore_auto import estimate_r


def small_runs(rows: list[dict[str, Any]]) -> list[dict[str, float]]:
    """(lead, OASIS r and the r of the events and of both mixtures) of every small-population row
    whose gap test scored and whose mixtures were scored."""
    from napari_sbtt.heldout import MIN_POPULATION_ROIS, HeldoutTest, gap_test_lead

    out = []
    for row in rows:
        s = row.get("sbtt") or {}
        ho = s.get("heldout")
        if not ho or row["cell"]["n_rois"] >= MIN_POPULATION_ROIS:
            continue
        lead = gap_test_lead(HeldoutTest(**{k: ho["gaps"][k] for k in ("kind", "n_samples", "r2", "se")}))
        r = {e: estimate_r(s, e) for e in ("deconvolution", "combined", "events_combined")}
        if lead is not None and None not in r.values():
            out.append({"lead": lead, "oasis": row["oasis"]["r"], **r})
    return out


def choose(run: dict[str, float], lead_threshold: float) -> float:
    """The r the rule with ``lead_threshold`` returns for a small population's run."""
    from napari_sbtt.heldout import DECISIVE_LEAD_SE

    if run["lead"] < -DECISIVE_LEAD_SE:
        return run["deconvolution"]
    return run["events_combined"] if run["lead"] <= lead_threshold else run["combined"]


def main(argv: list[str] | None = None) -> int:
    from napari_sbtt.heldout import DECISIVE_LEAD_SE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", help="family.py OUT.json files")
    ap.add_argument("--leads", type=float, nargs="+", default=[3.0, 4.0, 5.0])
    a = ap.parse_args(argv)
    runs = [r for path in a.rows for r in small_runs(json.loads(Path(path).read_text()))]
    print(f"{len(runs)} small-population runs\n")
    print(f"| L (SE) | runs that change | their mean change in r | worst | best | mean change over all {len(runs)} |")
    print("|---|---|---|---|---|---|")
    for threshold in a.leads:
        d = np.array([choose(r, threshold) - choose(r, DECISIVE_LEAD_SE) for r in runs])
        changed = d[[DECISIVE_LEAD_SE < r["lead"] <= threshold for r in runs]]  # choices that move
        if changed.size:
            print(f"| {threshold:g} | {changed.size} | {changed.mean():+.3f} | {changed.min():+.3f} | "
                  f"{changed.max():+.3f} | {d.mean():+.3f} |")
        else:
            print(f"| {threshold:g} | 0 | - | - | - | {d.mean():+.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
