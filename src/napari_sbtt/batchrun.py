"""Batch runs: the normal run (:func:`napari_sbtt.recording.run_recording`, what ``napari-sbtt
run`` does) on many recordings as Ray tasks, one result folder each, and a summary table.

``batch(inputs, out_dir)`` (``napari-sbtt batch SESSIONS... --out DIR``):

- every input becomes one Ray task (``ray.remote``) that reads the recording, fits and infers
  with the run settings, and saves a result folder ``out_dir/<name>`` (names from the inputs'
  stems, made unique in the order given, so a rerun with the same inputs gets the same names);
- a recording that fails (unreadable, a missing timing, a fit that diverges, a worker that died)
  is reported in its row of the summary, with a one-line message, and the others go on;
- resumable: a recording whose result folder is already complete (results are saved under a
  temporary name and renamed, so a folder that exists is complete) is skipped and its numbers
  read back from the folder;
- at the end ``out_dir/batch_summary.csv`` and ``batch_summary.md`` hold one row per recording:
  status, the median fit r, the estimate, the held-out verdict against OASIS with the held-out
  R^2 of the estimate and of OASIS, seconds, the error.

Ray runs locally by default (``ray.init()`` on this machine, one task per ``cpus_per_task``
cores); ``address="auto"`` or ``"ray://host:10001"`` sends the tasks to a cluster, whose nodes then
need to see the input files and ``out_dir`` under the same paths (a shared file system).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .config import RunConfig
from .core.numbers import finite_or_none
from .heldout import verdict_test

__all__ = ["batch", "BatchRow", "BatchSummary", "BatchInterrupted", "run_one", "row_from_metrics", "result_names",
           "SUMMARY_NAME", "RECORDING_OPTIONS"]

#: the summary files in the output folder (``.csv`` and ``.md``)
SUMMARY_NAME = "batch_summary"

#: the options of :func:`napari_sbtt.recording.load_recording` an input may carry
RECORDING_OPTIONS = ("rois", "scan", "frame_period", "line_period", "prefer", "n_rows", "format", "dataset")


@dataclass
class BatchRow:
    """One recording of a batch: what happened and its numbers.

    status: "done" (fitted now), "skipped" (its result folder was complete already), "failed"
    (``error`` says why) or "interrupted" (a Ctrl-C stopped the batch before it finished). ``fit_r`` is the median over ROIs of the Pearson r between the model's
    expected observation and the samples; ``heldout_r2`` / ``oasis_r2`` are the held-out R^2 of
    the result's estimate and of OASIS on the test the verdict is taken on (calcium likelihood,
    :mod:`napari_sbtt.heldout`); ``seconds`` is the wall-clock time of the run (of the earlier run
    for a skipped one).
    """

    recording: str
    result: str
    status: str
    n_rois: int | None = None
    fit_r: float | None = None
    estimate: str | None = None
    verdict: str | None = None
    heldout_r2: float | None = None
    oasis_r2: float | None = None
    seconds: float | None = None
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchSummary:
    """What :func:`batch` returns: a row per input (in the order given) and the summary files."""

    rows: list[BatchRow]
    out_dir: Path
    files: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> list[BatchRow]:
        return [r for r in self.rows if r.status == "failed"]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    def markdown(self) -> str:
        """The table as Markdown (also what the command line prints)."""
        return summary_markdown(self.rows)

    def line(self) -> str:
        """One line: how many recordings were done, skipped and failed."""
        stopped = f", {self.count('interrupted')} interrupted" if self.count("interrupted") else ""
        return (f"{len(self.rows)} recordings: {self.count('done')} done, {self.count('skipped')} skipped "
                f"(already complete), {self.count('failed')} failed{stopped} -> {self.out_dir}/")


# --------------------------------------------------------------------------- names and rows
def _stem(path: str) -> str:
    p = Path(path.rstrip("/\\"))
    name = p.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return p.stem if p.suffix else name


def result_names(inputs: Sequence[str]) -> list[str]:
    """A result folder name per input: its stem (``movie.tif`` -> ``movie``); stems that two inputs
    share get their parent folder's name in front (``s1/plane0`` -> ``s1_plane0``), and names still
    equal get ``_2``, ``_3``... in the order given. The same inputs always give the same names."""
    stems = [_stem(i) for i in inputs]
    names = [f"{Path(i.rstrip('/')).resolve().parent.name}_{s}" if stems.count(s) > 1 else s
             for i, s in zip(inputs, stems, strict=True)]
    out: list[str] = []
    seen: dict[str, int] = {}
    for n in names:
        n = n.strip(". ") or "recording"
        k = seen.get(n, 0) + 1
        seen[n] = k
        out.append(n if k == 1 else f"{n}_{k}")
    return out


def row_from_metrics(recording: str, result: str, status: str, metrics: Mapping[str, Any],
                     seconds: float | None) -> BatchRow:
    """A summary row from a result's ``metrics`` (fresh, or read back from result.json)."""
    held = metrics.get("heldout") or {}
    estimate = metrics.get("estimate")
    test = held.get(verdict_test(str(estimate))) or {}
    r2 = test.get("r2") or {}
    return BatchRow(
        recording=recording, result=result, status=status,
        n_rois=metrics.get("n_rois"), fit_r=finite_or_none(metrics.get("fit_r_median")), estimate=estimate,
        verdict=held.get("verdict"), heldout_r2=finite_or_none(r2.get(estimate)), oasis_r2=finite_or_none(r2.get("oasis")),
        seconds=seconds,
    )


def _error_text(error: BaseException, recording: str, words: Mapping[str, str] | None) -> str:
    """One line naming the recording, in the words of the caller's interface (OptionError)."""
    from .core.errors import OptionError

    text = error.render(words or {}) if isinstance(error, OptionError) else str(error)
    if isinstance(error, OSError) and error.filename is not None and str(error.filename) not in text:
        text = f"{error.filename}: {text}"
    text = " ".join(text.split()) or type(error).__name__
    return text if recording in text or Path(recording).name in text else f"{recording}: {text}"


def _seconds_of(metrics: Mapping[str, Any]) -> float | None:
    parts = [finite_or_none(metrics.get(k)) for k in ("seconds_extract", "seconds_fit", "seconds_infer")]
    return sum(p for p in parts if p is not None) if any(p is not None for p in parts) else None


def _existing(recording: str, dest: Path) -> BatchRow | None:
    """The row of a result folder already at ``dest`` (skipped), a failed row when ``dest`` holds
    something else, or None when there is nothing yet."""
    from .result import is_result_dir

    if not (dest.exists() or dest.is_symlink()):
        return None
    if dest.is_symlink() or not is_result_dir(dest):
        return BatchRow(recording, str(dest), "failed", error=(
            f"{dest} exists and is not a napari-sbtt result folder; nothing of yours is replaced - move it "
            "or choose another output folder"))
    meta = json.loads((dest / "result.json").read_text())
    source = ((meta.get("config") or {}).get("recording") or {}).get("path")
    if source is not None and Path(source) != Path(recording).resolve():
        return BatchRow(recording, str(dest), "failed", error=(
            f"{dest} holds the result of another recording ({source}); move it or choose another "
            "output folder"))
    metrics = meta.get("metrics") or {}
    return row_from_metrics(recording, str(dest), "skipped", metrics, _seconds_of(metrics))


def run_one(recording: str, dest: str, options: Mapping[str, Any], config: dict[str, Any],
            model: str | None = None, words: Mapping[str, str] | None = None) -> BatchRow:
    """Run one recording and save its result folder at ``dest``; never raises for the recording's
    own problems: they come back as a failed row with a one-line message. (The body of a batch's
    Ray task; also callable on its own.)"""
    from .recording import load_recording, run_recording

    t0 = time.perf_counter()
    try:
        done = _existing(recording, Path(dest))
        if done is not None:
            return done
        rec = load_recording(recording, **dict(options))
        try:
            result = run_recording(rec, model=model, config=config)
        finally:
            rec.close()
        result.save(dest)
    except Exception as e:  # noqa: BLE001 - reported in this recording's row
        return BatchRow(recording, dest, "failed", seconds=time.perf_counter() - t0,
                        error=_error_text(e, recording, words))
    return row_from_metrics(recording, dest, "done", result.metrics, time.perf_counter() - t0)


# --------------------------------------------------------------------------- tables
_COLUMNS = [f.name for f in fields(BatchRow)]


def _cell(v: Any, fmt: str = "") -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return format(v, fmt or ".4g")
    return str(v)


def summary_csv(rows: Sequence[BatchRow]) -> str:
    """The rows as CSV (a header line, then one line per recording; empty cells for no value)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_COLUMNS)
    for r in rows:
        w.writerow([_cell(getattr(r, c)) for c in _COLUMNS])
    return buf.getvalue()


def summary_markdown(rows: Sequence[BatchRow]) -> str:
    """The rows as a Markdown table (recordings by file name, results by folder name, which tells
    apart inputs of one name such as ``s1/movie.tif`` and ``s2/movie.tif``; seconds rounded)."""
    head = ["recording", "result", "status", "ROIs", "fit r", "estimate", "verdict", "held-out R²", "OASIS R²",
            "seconds", "error"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [Path(r.recording).name, Path(r.result).name if r.result else "-", r.status, _cell(r.n_rois), _cell(r.fit_r, ".3f"), _cell(r.estimate),
                 _cell(r.verdict), _cell(r.heldout_r2, ".3f"), _cell(r.oasis_r2, ".3f"),
                 _cell(r.seconds, ".1f"), r.error.replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the batch
#: seconds a Ctrl-C waits for the stopped tasks to end before the summary is written
CANCEL_WAIT_S = 30.0
#: the error of a recording whose task a Ctrl-C stopped
INTERRUPTED = "interrupted before it finished; run the batch again to finish it (complete results are skipped)"


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`batch`: the tasks still running were stopped; ``summary`` holds every
    recording's row (those stopped: "interrupted") and was written to ``out_dir``."""

    def __init__(self, summary: "BatchSummary") -> None:
        super().__init__(summary.line())
        self.summary = summary


def _write_summary(out: Path, rows: Sequence[BatchRow]) -> tuple[Path, Path]:
    """``out/batch_summary.csv`` and ``.md`` (the batch's own files, replaced on every run)."""
    from .core.atomic import atomic_write_text

    csv_path, md_path = out / f"{SUMMARY_NAME}.csv", out / f"{SUMMARY_NAME}.md"
    atomic_write_text(csv_path, summary_csv(rows), overwrite=True)
    atomic_write_text(md_path, summary_markdown(rows), overwrite=True)
    return csv_path, md_path


def _inputs(inputs: Sequence[Any], recording_options: Mapping[str, Any] | None
            ) -> list[tuple[str, dict[str, Any]]]:
    """(absolute input path, load_recording options) per input; a mapping input holds "input" and
    its own options on top of ``recording_options``."""
    shared = dict(recording_options or {})
    out = []
    for item in inputs:
        if isinstance(item, Mapping):
            opts = dict(item)
            if "input" not in opts:
                raise ValueError(f"batch input {dict(item)!r} has no 'input' (the recording's path)")
            path = opts.pop("input")
            opts = {**shared, **opts}
        else:
            path, opts = item, dict(shared)
        unknown = sorted(set(opts) - set(RECORDING_OPTIONS))
        if unknown:
            raise ValueError(f"batch input {path}: unknown recording option(s) {unknown}; known are "
                             f"{list(RECORDING_OPTIONS)}")
        for k, v in list(opts.items()):  # files named relative to here mean the same in a worker
            if k in ("rois", "scan") and isinstance(v, (str, os.PathLike)):
                opts[k] = str(Path(v).expanduser().resolve())
        out.append((str(Path(os.fspath(path)).expanduser().resolve()), opts))
    return out


def batch(
    inputs: Sequence[str | os.PathLike | Mapping[str, Any]],
    out_dir: str | os.PathLike,
    *,
    config: RunConfig | dict[str, Any] | None = None,
    recording_options: Mapping[str, Any] | None = None,
    model: str | os.PathLike | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
    words: Mapping[str, str] | None = None,
    progress: Callable[[BatchRow], Any] | None = None,
) -> BatchSummary:
    """Run every recording of ``inputs`` as a Ray task; one result folder each under ``out_dir``.

    Parameters
    ----------
    inputs : recordings as ``napari-sbtt run`` takes them (paths), or mappings with ``"input"``
        and that recording's own :func:`~napari_sbtt.recording.load_recording` options
        (``rois``, ``scan``, ``frame_period``...).
    out_dir : the folder for the result folders and the summary (made when missing).
    config : the run settings, the same for every recording (RunConfig or a dict of its fields).
    recording_options : load_recording options shared by all inputs (a mapping input's own win).
    model : a checkpoint (or result folder) to apply, or to adapt with ``config.adapt``.
    address : None: a local Ray on this machine (``num_cpus`` cores, None: all); ``"auto"`` or
        ``"ray://host:10001"``: a Ray cluster. A Ray initialised in this process already is used.
    cpus_per_task, gpus_per_task : Ray resources of each recording's task (the fit uses
        ``config.threads`` torch threads, 1 by default, and with fewer than 2 cores per task
        trains one network unless ``config.model`` sets ``ensemble_size``; give ``gpus_per_task`` > 0 for the task
        to see a GPU, ``device="auto"`` then trains on it).
    words : how the caller's interface spells settings in error messages (the CLI's flags).
    progress : called with each recording's :class:`BatchRow` as it finishes.

    Returns
    -------
    BatchSummary; its files are ``out_dir/batch_summary.csv`` and ``.md``. A Ctrl-C (or a
    KeyboardInterrupt from ``progress``) stops the running tasks, writes the summary and raises
    :class:`BatchInterrupted` (a KeyboardInterrupt) carrying it. Raises ImportError (with
    the install command) when Ray is missing, ValueError for settings that are wrong for every
    recording (checked before any task starts).
    """
    from .cluster import require_ray, start_ray

    ray = require_ray()
    run_cfg = RunConfig.coerce(config)
    if "ensemble_size" not in run_cfg.model and cpus_per_task < 2:
        # the recordings run side by side, one per cpus_per_task cores: a one-core task trains one
        # network, not one per core of the machine (auto); two or more cores keep auto
        run_cfg = run_cfg.replace(model={**run_cfg.model, "ensemble_size": 1})
    cfg = run_cfg.to_dict()
    items = _inputs(inputs, recording_options)
    if not items:
        raise ValueError("batch needs at least one recording")
    model_path = None
    if model is not None:
        from .model.header import resolve_checkpoint_path

        model_path = str(resolve_checkpoint_path(model).resolve())
    out = Path(os.fspath(out_dir)).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file; give a folder for the batch's results")
    out.mkdir(parents=True, exist_ok=True)
    names = result_names([p for p, _ in items])
    dests = [str(out / n) for n in names]

    rows: list[BatchRow | None] = [None] * len(items)
    todo = []
    for k, ((path, _opts), dest) in enumerate(zip(items, dests, strict=True)):
        rows[k] = _existing(path, Path(dest))  # done before: no task
        if rows[k] is None:
            todo.append(k)
        elif progress is not None:
            progress(rows[k])
    started = start_ray(address, num_cpus=num_cpus) if todo else False
    pending: dict[Any, int] = {}
    try:
        task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)(run_one)
        pending = {task.remote(items[k][0], dests[k], items[k][1], cfg, model_path, dict(words or {})): k
                   for k in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ready[0])
            try:
                row = ray.get(ready[0])
            except ray.exceptions.RayError as e:  # the worker died (killed, out of memory)
                row = BatchRow(items[k][0], dests[k], "failed",
                               error=f"{items[k][0]}: the task running it failed: {' '.join(str(e).split())[:300]}")
            rows[k] = row
            if progress is not None:
                progress(row)
    except KeyboardInterrupt:
        # Ctrl-C: stop the recordings still running, say so in the summary, and pass the interrupt on;
        # the finished result folders stay, and a rerun skips them
        for ref in pending:
            ray.cancel(ref, force=True)
        # wait until the stopped tasks have ended (a cancelled worker may take a moment to die, and
        # one that finished meanwhile keeps its row): nothing of this batch runs on once it returns
        ended = set(ray.wait(list(pending), num_returns=len(pending), timeout=CANCEL_WAIT_S)[0])
        for ref, k in pending.items():
            rows[k] = BatchRow(items[k][0], dests[k], "interrupted", error=INTERRUPTED)
            if ref in ended:
                with contextlib.suppress(ray.exceptions.RayError):  # cancelled, as asked
                    rows[k] = ray.get(ref)
        done_rows = [r for r in rows if r is not None]
        raise BatchInterrupted(BatchSummary(done_rows, out, list(_write_summary(out, done_rows)))) from None
    finally:
        if started:
            ray.shutdown()
    done_rows = [r for r in rows if r is not None]
    csv_path, md_path = _write_summary(out, done_rows)
    return BatchSummary(done_rows, out, [csv_path, md_path])
