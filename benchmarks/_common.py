"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def machine() -> str:
    """The machine in words, with the load average at the time of the call."""
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return f"{platform.machine()}, {os.cpu_count()} cpu, load avg {load}"


def load_groundtruth(path: Path) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Recordings of one CASCADE ground-truth .mat file (format: ../shared/groundtruth/README.md).

    Yields (recording index, frame times s (T,), dF/F (T,), spike times s (n,)); times and
    dF/F are cut to a common length, spike times without NaN.
    """
    from scipy.io import loadmat

    cells = loadmat(path)["CAttached"]
    for i in range(cells.shape[1]):
        r = cells[0][i][0][0]
        t = np.asarray(r["fluo_time"], dtype=float).ravel()
        y = np.asarray(r["fluo_mean"], dtype=float).ravel()
        ap = np.asarray(r["events_AP"], dtype=float).ravel() / 1e4
        ap = ap[np.isfinite(ap)]
        n = min(t.size, y.size)
        yield i, t[:n], y[:n], ap


def write_rows(out: str | os.PathLike, rows: list[dict[str, Any]], *, command: str, header: str,
               n_cols: int) -> None:
    """Write ``rows`` to OUT.json and their ``markdown`` lines as a table to OUT.md."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    md = [f"Command: `{command}`  ", f"Machine: {machine()}", "", header, "|" + "---|" * n_cols]
    md += [r["markdown"] for r in rows]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
