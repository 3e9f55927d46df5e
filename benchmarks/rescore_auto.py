"""Re-score saved benchmark-family rows (benchmarks/family.py OUT.json) under the library's
current ``estimate="auto"`` rule (:func:`napari_sbtt.heldout.auto_estimate`).

Each row holds the SBTT estimates' r against the truth (``r_network``, ``r_deconvolution``, and
``r_combined`` in rows written since the combined estimate; rows run with ``family.py --extras``
have it as ``blends["r_w0.75"]``) and the held-out tests the rule reads, so the estimate the rule
returns, and the margin over OASIS, follow from the saved fit without fitting again (exact for
the same fit: the rule reads only the held-out tests). A row whose chosen estimate was not scored
is left out.

    python benchmarks/rescore_auto.py results/2026-12-06/family_report.json [more.json ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def combined_r(sbtt: dict[str, Any]) -> float | None:
    """The combined estimate's r of a row's ``sbtt`` part, or None when the row did not score it."""
    from napari_sbtt.heldout import COMBINED_NETWORK_WEIGHT

    if sbtt.get("r_combined") is not None:
        return float(sbtt["r_combined"])
    mixed = (sbtt.get("blends") or {}).get(f"r_w{COMBINED_NETWORK_WEIGHT:g}")
    return None if mixed is None else float(mixed)


def rescore(row: dict[str, Any]) -> dict[str, Any] | None:
    """(cell, estimate then, estimate now, SBTT r now, OASIS r, margin now) of one row; None for
    a row without a held-out step (refused recording, non-calcium run)."""
    from napari_sbtt.heldout import HeldoutTest, auto_estimate

    s = row.get("sbtt") or {}
    ho = s.get("heldout")
    if not ho or s.get("r_network") is None:
        return None
    gaps = HeldoutTest(**{k: ho["gaps"][k] for k in ("kind", "n_samples", "r2", "se")})
    now = auto_estimate(gaps, int(row["cell"]["n_rois"]))
    r = {"network": s["r_network"], "deconvolution": s["r_deconvolution"], "combined": combined_r(s)}[now]
    if r is None:
        return None
    return {"cell": row["cell"]["index"], "then": s["estimate"], "now": now, "r": r,
            "oasis": row["oasis"]["r"], "margin": r - row["oasis"]["r"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", help="family.py OUT.json files")
    a = ap.parse_args(argv)
    for path in a.rows:
        raw = json.loads(Path(path).read_text())
        rows = [r for r in (rescore(x) for x in raw) if r]
        print(f"\n{path}\n\n| cell | estimate then | estimate now | SBTT r | OASIS r | margin |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['cell']} | {r['then']} | {r['now']} | {r['r']:.3f} | {r['oasis']:.3f} | {r['margin']:+.3f} |")
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
