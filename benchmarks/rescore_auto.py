"""Re-score saved benchmark-family rows (benchmarks/family.py OUT.json) under the library's
current ``estimate="auto"`` rule (:func:`napari_sbtt.heldout.auto_estimate`).

Each row holds the SBTT estimates' r against the truth (``r_network``, ``r_deconvolution``,
``r_combined`` in rows written since the combined estimate, ``r_events_combined`` since that one;
rows run with ``family.py --extras`` have the mixtures as ``blends["r_w0.75"]`` and
``blends["r_w0.25"]``) and the held-out tests the rule reads, so the estimate the rule returns,
and the margin over OASIS, follow from the saved fit without fitting again (exact for the same
fit: the rule reads only the held-out tests). A row whose chosen estimate was not scored is left
out.

    python benchmarks/rescore_auto.py results/2026-12-06/family_report.json [more.json ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def estimate_r(sbtt: dict[str, Any], estimate: str) -> float | None:
    """The r of ``estimate`` (one of :data:`napari_sbtt.heldout.ESTIMATES`) in a row's ``sbtt``
    part, or None when the row did not score it (a mixture is read from ``family.py --extras``
    blends at its weight where the row predates it)."""
    from napari_sbtt.heldout import MIXTURE_WEIGHTS

    if sbtt.get(f"r_{estimate}") is not None:
        return float(sbtt[f"r_{estimate}"])
    weight = MIXTURE_WEIGHTS.get(estimate)
    mixed = None if weight is None else (sbtt.get("blends") or {}).get(f"r_w{weight:g}")
    return None if mixed is None else float(mixed)


def rescore(row: dict[str, Any]) -> dict[str, Any] | None:
    """(cell, ROIs, estimate then, estimate now, SBTT r now, OASIS r, margin now, and the gap test
    that decided it: the network's lead over the events in standard errors and whether it was
    undecided, within two standard errors of a test that scored) of one row; None for a row without a held-out step (refused
    recording, non-calcium run)."""
    from napari_sbtt.heldout import DECISIVE_LEAD_SE, HeldoutTest, auto_estimate, gap_test_lead

    s = row.get("sbtt") or {}
    ho = s.get("heldout")
    if not ho or s.get("r_network") is None:
        return None
    gaps = HeldoutTest(**{k: ho["gaps"][k] for k in ("kind", "n_samples", "r2", "se")})
    now = auto_estimate(gaps, int(row["cell"]["n_rois"]))
    r = estimate_r(s, now)
    if r is None:
        return None
    lead = gap_test_lead(gaps)
    return {"cell": row["cell"]["index"], "n_rois": int(row["cell"]["n_rois"]), "then": s["estimate"],
            "now": now, "r": r, "oasis": row["oasis"]["r"], "margin": r - row["oasis"]["r"],
            "lead": float("nan") if lead is None else lead,
            "undecided": lead is not None and abs(lead) <= DECISIVE_LEAD_SE}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", help="family.py OUT.json files")
    a = ap.parse_args(argv)
    for path in a.rows:
        raw = json.loads(Path(path).read_text())
        rows = [r for r in (rescore(x) for x in raw) if r]
        print(f"\n{path}\n\n| cell | ROIs | gap test: network - events (SE) | estimate then | estimate now "
              "| SBTT r | OASIS r | margin |\n|---|---|---|---|---|---|---|---|")
        for r in rows:
            lead = f"{r['lead']:+.2f}" + (" (undecided)" if r["undecided"] else "")
            print(f"| {r['cell']} | {r['n_rois']} | {lead} | {r['then']} | {r['now']} | {r['r']:.3f} "
                  f"| {r['oasis']:.3f} | {r['margin']:+.3f} |")
        m = np.array([r["margin"] for r in rows])
        if m.size:
            print(f"\n{m.size} cells: median margin {np.median(m):+.3f}, worst {m.min():+.3f}, "
                  f"{int((m < -0.02).sum())} below -0.02")
        if len(rows) < len(raw):
            print(f"({len(raw) - len(rows)} of {len(raw)} rows left out: no held-out step, or the estimate "
                  "the rule returns now was not scored in them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
