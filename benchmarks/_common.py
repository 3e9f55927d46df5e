"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

#: smoothing (s) of the scores against the simulated truth (CASCADE protocol)
SMOOTH_S = 0.05


def median_r(truth: np.ndarray, estimate: np.ndarray, dt_s: float) -> float:
    """The family's score: Pearson r per ROI against the true rates after ``SMOOTH_S`` Gaussian
    smoothing of both, median over ROIs (``core.metrics``).

    truth, estimate: (T_fine, N) on the same fine grid (any units; NaN skipped); dt_s: its bin
    width in seconds. NaN when no ROI has a score.
    """
    from napari_sbtt.core.metrics import median_over_rois, pearson_r

    return float(median_over_rois(pearson_r(truth, estimate, sigma_s=SMOOTH_S, dt_s=dt_s)))


def estimate_scores(res: Any, values: np.ndarray, truth: np.ndarray, dt_s: float,
                    shifts: int = 1) -> dict[str, float]:
    """:func:`median_r` of every SBTT estimate of a calcium result ``res`` (an SBTTResult), keyed
    ``r_<estimate>`` for each of :data:`napari_sbtt.heldout.ESTIMATES` (the network's rates, the
    events, and their mixtures: :func:`napari_sbtt.heldout.select_estimate`), so a choice between
    them can be re-scored from the saved row. The network's rates are inferred again from
    ``values`` (T_fine, N) when the result returned another estimate. {} without a held-out step.
    """
    if not res.metrics.get("heldout") or res.events is None:
        return {}
    from napari_sbtt.heldout import ESTIMATES, select_estimate

    net = network_rates(res, values, shifts)
    return {f"r_{e}": median_r(truth, select_estimate(e, net, res.events), dt_s) for e in ESTIMATES}


def network_rates(res: Any, values: np.ndarray, shifts: int = 1) -> np.ndarray:
    """The network's (T_fine, N) rates of an SBTTResult ``res``: ``res.rates`` when the result
    returned them, else inferred again from ``values`` (T_fine, N) with the fit's windows."""
    if res.metrics.get("estimate", "network") == "network":
        return res.rates  # other estimates: inferred again
    from napari_sbtt.api import infer_observations

    meta = res.model.metadata
    return infer_observations(res.model, values, window=meta["window_bins"],
                              overlap=meta["overlap_bins"], shifts=shifts)


def peak_frequency(x: np.ndarray, dt: float) -> float:
    """Frequency (Hz) of the largest non-zero bin of the population-averaged power of ``x`` (T, N)
    or (T,), sampled every ``dt`` s."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    f = np.fft.rfftfreq(x.shape[0], dt)
    p = (np.abs(np.fft.rfft(x - x.mean(axis=0), axis=0)) ** 2).mean(axis=1)
    return float(f[1 + int(np.argmax(p[1:]))])


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (``ru_maxrss``; Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_avg() -> float:
    """The 1-minute load average (NaN where the platform has none)."""
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return float("nan")


def _anon_kb(pid: int | str = "self") -> int:
    """RssAnon of a process in KiB from /proc (0 where it cannot be read: not Linux, or gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class _PeakSampler:
    """Calls ``_sample`` every ``interval`` s in a thread while the ``with`` block runs, and once
    more at its end; ``peak_kb`` is for the subclass to raise."""

    def __init__(self, interval: float) -> None:
        self.peak_kb = 0
        self.interval = interval
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "_PeakSampler":
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self._sample()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


class AnonPeak(_PeakSampler):
    """Samples RssAnon of this process (the memory it really holds, without the file pages a
    memory-mapped movie leaves resident) every ``interval`` s in a thread; ``.peak_mb`` after the
    ``with`` block. Linux only (elsewhere the peak stays 0)."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(interval)

    def _sample(self) -> None:
        self.peak_kb = max(self.peak_kb, _anon_kb())


class TreePeak(_PeakSampler):
    """Samples the resident memory of this process and all its descendants (the ensemble's member
    processes), summed, every ``interval`` s in a thread: ``.peak_mb`` (RSS) and
    ``.peak_anon_mb`` (RssAnon, Linux) after the ``with`` block; ``.peak_children`` is the most
    descendants seen at once. Pages shared between the processes (libraries, copy-on-write) count
    once per process, so the sum is an upper bound. Needs psutil (napari's dependency); without
    it the peaks stay 0."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.peak_anon_kb = 0
        self.peak_children = 0

    def _sample(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        me = psutil.Process()
        try:
            procs = [me, *me.children(recursive=True)]
        except psutil.Error:
            return
        rss = anon = 0
        for p in procs:
            try:
                rss += p.memory_info().rss // 1024
            except psutil.Error:
                continue
            anon += _anon_kb(p.pid)
        self.peak_kb = max(self.peak_kb, rss)
        self.peak_anon_kb = max(self.peak_anon_kb, anon)
        self.peak_children = max(self.peak_children, len(procs) - 1)

    @property
    def peak_anon_mb(self) -> float:
        return self.peak_anon_kb / 1024


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


#: ground-truth data sets the defaults may be chosen on (the two of earlier rounds); the others are reported only
TUNE_SETS = ("DS09-GCaMP6f-m-V1", "DS32-GCaMP8s-m-V1")


def refuse_report_sets(parser: argparse.ArgumentParser, names: list[str]) -> None:
    """A probe's check that every ``--dataset`` it was given is a tune set (exits otherwise)."""
    for n in names:
        if n not in TUNE_SETS:
            parser.error(f"--dataset {n}: probe the tune sets only ({', '.join(TUNE_SETS)})")


def groundtruth_probe_args(description: str, argv: list[str] | None, *, datasets: list[str] | None,
                           datasets_help: str, max_seconds: float | None = None,
                           tune_only: bool = False) -> argparse.Namespace | None:
    """The arguments of a ground-truth probe (``--gt-dir``, ``--datasets`` defaulting to
    ``datasets``, ``--k`` frames kept, ``--seed`` of the kept frames and of a fit; with
    ``max_seconds``, a probe that fits: ``--max-seconds``, the fit's cap, defaulting to it); None,
    after saying so, when ``--gt-dir`` is not there. ``tune_only``: a report set among
    ``--datasets`` exits with :func:`refuse_report_sets`' message."""
    p = argparse.ArgumentParser(description=description)
    if max_seconds is not None:
        p.add_argument("--max-seconds", type=float, default=max_seconds, help="each fit's cap in seconds")
    p.add_argument("--gt-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "groundtruth")
    p.add_argument("--datasets", nargs="+", default=datasets, help=datasets_help)
    p.add_argument("--k", type=int, nargs="+", default=[1, 2, 4], help="keep every k-th frame")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if not a.gt_dir.is_dir():
        print(f"no ground truth at {a.gt_dir}: nothing to measure")
        return None
    if tune_only:
        refuse_report_sets(p, a.datasets)
    return a


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


def resumed_rows(out: Path, key: str, header: str, n_cols: int) -> list[dict[str, Any]]:
    """The rows of an earlier run of a resumable table (``OUT.json`` beside ``out``) made with the
    same settings ``key``, after printing the table's head and those rows; a run with other
    settings, or a file that is not such a table, stops with a one-line message."""
    path = out.with_suffix(".json")
    try:
        rows = json.loads(path.read_text()) if path.exists() else []
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: cannot resume from it ({e}); choose another --out or move it away") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "markdown" in r for r in rows):
        raise SystemExit(f"{path} is not a table of this benchmark; choose another --out")
    other = [r for r in rows if r.get("key") != key]
    if other:
        raise SystemExit(f"{path} holds rows run with other settings ({other[0].get('key')}); use another --out")
    print(header)
    print("|" + "---|" * n_cols)
    for r in rows:
        print(r["markdown"] + " (earlier run)")
    return rows
