"""Re-score saved benchmark-family rows (benchmarks/family.py OUT.json) under the library's
current ``estimate="auto"`` rule (:func:`napari_sbtt.heldout.auto_estimate`).

Each row holds both SBTT estimates' r against the truth (``r_network``, ``r_deconvolution``) and
the held-out tests the rule reads, so the estimate the rule returns, and the margin over OASIS,
follow from the saved fit without fitting again (exact for the same fit: the rule reads only the
held-out tests).

    python benchmarks/rescore_auto.py results/2026-12-06/family_report.json [more.json ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


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
    r = s["r_network"] if now == "network" else s["r_deconvolution"]
    return {"cell": row["cell"]["index"], "then": s["estimate"], "now": now, "r": r,
            "oasis": row["oasis"]["r"], "margin": r - row["oasis"]["r"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", help="family.py OUT.json files")
    a = ap.parse_args(argv)
    for path in a.rows:
        rows = [r for r in (rescore(x) for x in json.loads(Path(path).read_text())) if r]
        print(f"\n{path}\n\n| cell | estimate then | estimate now | SBTT r | OASIS r | margin |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['cell']} | {r['then']} | {r['now']} | {r['r']:.3f} | {r['oasis']:.3f} | {r['margin']:+.3f} |")
        m = np.array([r["margin"] for r in rows])
        if m.size:
            print(f"\n{m.size} cells: median margin {np.median(m):+.3f}, worst {m.min():+.3f}, "
                  f"{int((m < -0.02).sum())} below -0.02")
    return 0


if __name__ == "__main__":
    sys.exit(main())
