"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import json
import os
import platform
import re
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


def groundtruth_datasets(gt_dir: str | os.PathLike) -> dict[str, str]:
    """The CASCADE ground-truth data sets in ``gt_dir`` and their indicator preset, from the folder names.

    A data set is a folder ``DSnn-<indicator>-...`` holding ``.mat`` files
    (``../shared/groundtruth/README.md``), e.g. ``DS06-GCaMP6f-zf-aDp`` -> ``GCaMP6f`` and
    ``DS32-GCaMP8s-m-V1`` -> ``GCaMP8s`` (the jGCaMP8s preset). Returns {folder name: preset name},
    sorted by name; {} when ``gt_dir`` does not exist. Raises ``ValueError`` for a ``DSnn-`` folder
    whose indicator has no preset (so a new data set is not silently skipped).
    """
    from napari_sbtt.core.indicators import get_indicator

    root = Path(gt_dir)
    if not root.is_dir():
        return {}
    out: dict[str, str] = {}
    for folder in sorted(root.iterdir()):
        m = re.fullmatch(r"DS\d+-([^-]+)-.*", folder.name)
        if not folder.is_dir() or m is None or not any(folder.glob("*.mat")):
            continue
        try:
            out[folder.name] = get_indicator(m.group(1)).name
        except ValueError as e:
            raise ValueError(f"{folder}: indicator {m.group(1)!r} from the folder name has no preset ({e})") from None
    return out


def write_rows(out: str | os.PathLike, rows: list[dict[str, Any]], *, command: str, header: str,
               n_cols: int, footer: list[str] | tuple[str, ...] = ()) -> None:
    """Write ``rows`` to OUT.json and their ``markdown`` lines as a table to OUT.md (then ``footer`` lines).

    Each file is written to a temporary name and renamed into place, so an interrupted run
    never leaves a half-written OUT.json behind (benchmarks that resume read it back).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md = [f"Command: `{command}`  ", f"Machine: {machine()}", "", header, "|" + "---|" * n_cols]
    md += [r["markdown"] for r in rows]
    if footer:
        md += ["", *footer]
    for path, text in ((out.with_suffix(".json"), json.dumps(rows, indent=1)),
                       (out.with_suffix(".md"), "\n".join(md) + "\n")):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
