"""How often the held-out verdict against OASIS agrees with the ground truth, over stored runs of
the benchmark family (no fitting: it reads the JSON rows ``benchmarks/family.py`` wrote).

Every calcium result carries a verdict (``metrics["heldout"]["verdict"]``, :mod:`napari_sbtt.heldout`):
"SBTT better" / "OASIS better" when the returned estimate predicts the held-out samples better or
worse than OASIS's denoised calcium by two standard errors, else "no clear difference". The
held-out samples are fluorescence; the family also knows the true rates, so each row says
whether the estimate the run returned (Pearson r against the true rates, the family's score)
beat OASIS's. This script counts, per verdict, how often the truth agreed, overall and split by
the indicator (GCaMP6s, the slowest, apart) and by the half of the family: the verdict each run
stored, and the verdict the library's rule gives now (:func:`napari_sbtt.heldout.verdict_against_oasis`)
from the same stored tests, for the runs whose tests scored the returned estimate and OASIS.

    python benchmarks/verdict_calibration.py [--half report] [FILES ...]

FILES default to every ``benchmarks/results/*/*.json`` holding family rows (the family's runs and
the probes that wrote rows like it). A run stored in two files (the same recording seed, cell and
r) counts once.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

HERE = Path(__file__).resolve().parent
VERDICTS = ("SBTT better", "OASIS better", "no clear difference")


def family_runs(paths: Iterable[str]) -> list[dict[str, Any]]:
    """(verdict, the rule's verdict now or None, SBTT r, OASIS r, indicator, half, file) of every
    family row with a held-out verdict in ``paths``, each run once."""
    from napari_sbtt.heldout import (
        DECISIVE_LEAD_SE,
        HeldoutTest,
        verdict_against_oasis,
        verdict_test,
    )

    seen: set[tuple[Any, ...]] = set()
    out = []
    for path in sorted(paths):
        try:
            rows = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(rows, list):
            continue
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("sbtt"), dict) or "cell" not in row:
                continue
            s = row["sbtt"]
            verdict = (s.get("heldout") or {}).get("verdict")
            if verdict not in VERDICTS or not isinstance(row.get("oasis"), dict):
                continue
            try:
                r, oasis_r = float(s["r"]), float(row["oasis"]["r"])
            except (KeyError, TypeError, ValueError):
                continue
            if not (math.isfinite(r) and math.isfinite(oasis_r)):
                continue
            run = (row["cell"].get("seed"), row["cell"].get("index"), round(r, 4))
            if run in seen:
                continue
            seen.add(run)
            ho = s["heldout"]
            estimate = ho.get("estimate")
            now = both = None
            try:
                tests = [HeldoutTest(**ho[kind]) for kind in ("samples", "gaps")]
                if all(estimate in t.r2 and "oasis" in t.r2 for t in tests):
                    now = verdict_against_oasis(*tests, estimate)
                    # the alternative not taken: "SBTT better" to need the other test too
                    other = tests[1] if verdict_test(estimate) == "samples" else tests[0]
                    both = ("no clear difference" if now == "SBTT better"
                            and other.lead(estimate, "oasis") <= DECISIVE_LEAD_SE else now)
            except (KeyError, TypeError):
                pass
            out.append({"verdict": verdict, "now": now, "both": both, "r": r, "oasis_r": oasis_r,
                        "indicator": row["cell"].get("indicator"), "half": row["cell"].get("half"),
                        "file": path})
    return out


def table(runs: list[dict[str, Any]], which: str = "verdict") -> list[str]:
    """Markdown rows: verdict (``which``: the stored one, "verdict", the rule's now, "now", or
    the alternative not taken where "SBTT better" needs both tests too, "both"),
    runs, truth agrees (SBTT r >= OASIS r for "SBTT better", below for "OASIS better"), and for
    every verdict the share of runs where SBTT's r was the higher."""
    lines = ["| verdict | runs | the truth agrees | SBTT's r >= OASIS's r | median r margin |",
             "|---|---|---|---|---|"]
    for verdict in VERDICTS:
        mine = [x for x in runs if x[which] == verdict]
        if not mine:
            continue
        margins = sorted(x["r"] - x["oasis_r"] for x in mine)
        ahead = sum(m >= 0 for m in margins)
        agree = {"SBTT better": str(ahead), "OASIS better": str(len(mine) - ahead)}.get(verdict, "-")
        med = statistics.median(margins)
        lines.append(f"| {verdict} | {len(mine)} | {agree} | {ahead} of {len(mine)} | {med:+.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="family JSON files (default: benchmarks/results/*/*.json)")
    ap.add_argument("--half", choices=("tune", "report"), default=None, help="only this half's cells")
    a = ap.parse_args(argv)
    paths = a.files or glob.glob(str(HERE / "results" / "*" / "*.json"))
    runs = family_runs(paths)
    if a.half:
        runs = [x for x in runs if x["half"] == a.half]
    if not runs:
        print("no family rows with a held-out verdict found", file=sys.stderr)
        return 1
    counts = Counter(x["half"] for x in runs)
    print(f"{len(runs)} runs ({', '.join(f'{n} {h}' for h, n in sorted(counts.items()))}) "
          f"from {len({x['file'] for x in runs})} files\n")
    for title, sel in (("all", runs),
                       ("GCaMP6s cells", [x for x in runs if x["indicator"] == "GCaMP6s"]),
                       ("other indicators", [x for x in runs if x["indicator"] != "GCaMP6s"])):
        print(f"**{title}**, the verdict as stored\n")
        print("\n".join(table(sel)))
        print()
    both = [x for x in runs if x["now"] is not None]
    print(f"**the rule now** (`heldout.verdict_against_oasis`), from the stored tests of the {len(both)} runs "
          "that scored the returned estimate and OASIS in both; as stored, then now\n")
    print("\n".join(table(both)))
    print()
    print("\n".join(table(both, "now")))
    print()
    print("not taken: \"SBTT better\" to need both tests too\n")
    print("\n".join(table(both, "both")))
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
