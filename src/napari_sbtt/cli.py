"""Command line: ``napari-sbtt simulate | extract | run | batch | tune | export | demo``.

Every command prints a one-line summary when it finishes and shows a tqdm
progress bar for long work. Outputs are written atomically and an existing
output is only replaced with ``--overwrite``.

``run`` reads any supported recording through
:func:`napari_sbtt.recording.load_recording`: a TIFF movie (ScanImage timing
read from the file; other TIFFs take ``--frame-period`` / ``--line-period`` /
``--scan``), a suite2p plane folder, a CaImAn ``.hdf5``, an NWB file or a
traces file (with ``--rois``: a labels image or a rows file). ``export`` writes
a saved result as ``.npz``, ``.h5``, ``.csv``, ``.tif`` or ``.nwb``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["main"]


class CliError(Exception):
    """A user mistake: printed as one line, exit status 2."""


#: how the command line spells each setting that library errors name (see core.errors.OptionError)
CLI_WORDS: dict[str, str] = {
    "frame_period": "--frame-period <seconds per frame>",
    "line_period": "--line-period <seconds per line>",
    "frame_period_name": "--frame-period",
    "line_period_name": "--line-period",
    "scan": "--scan <scan.json>",
    "n_rows": "--n-rows <lines per frame>",
    "rois": "--rois",
    "labels": "--rois <labels image .tif/.npy>",
    "dataset": "--dataset NAME",
    "prefer_movie": "--prefer movie",
    "device_auto": "--device auto",
    "device_cpu": "--device cpu",
    "dff_off": "--config '{\"dff\": false}'",
    "adapt": "--config '{\"adapt\": true}'",
    "dff_neuropil": "\"dff\" and \"neuropil\" in --config",
    "neuropil": "\"neuropil\" in --config",
    "min_coverage": "\"min_coverage\" in --config",
    "model": "--model",
    "overwrite": "--overwrite",
}


def error_message(error: BaseException) -> str:
    """One line for the user: an OptionError in command-line words, anything else as it reads."""
    from .core.errors import OptionError

    text = error.render(CLI_WORDS) if isinstance(error, OptionError) else str(error)
    if isinstance(error, OSError) and not isinstance(error, FileExistsError) and error.filename is not None \
            and str(error.filename) not in text:
        text = f"{error.filename}: {text}"
    return " ".join(text.split("\n"))


#: the fit's bar: the share of the longest the fit can take, then epoch, seconds against the cap
#: and the most time left (tqdm's own remaining time would count to max_epochs, not to the cap)
FIT_BAR_FORMAT = "fit: {percentage:3.0f}%|{bar:16}| {desc}"
FIT_BAR_STEPS = 1000


def _tqdm_callback(desc: str) -> tuple[Callable[..., Any], Callable[[], None]]:
    """A progress callback for the library's reports, drawing tqdm bars; returns (callback, close)."""
    from tqdm.auto import tqdm

    bars: dict[str, Any] = {}

    def advance(key: str, done: int, total: int, unit: str) -> Any:
        if key not in bars:
            bars[key] = tqdm(total=total, desc=key, unit=unit)
        bar = bars[key]
        bar.update(done - bar.n)
        if done >= total:
            bar.close()  # so the bar's elapsed time is the stage's own
        return bar

    def callback(report: Any = None, total: Any = None) -> None:
        if isinstance(report, (int, float)) and total is not None:  # extraction: (done, total)
            advance(desc, int(report), int(total), "frame")
        elif getattr(report, "stage", None) is not None:  # StageReport
            advance(report.stage, int(report.done), int(report.total), "step")
        elif hasattr(report, "epoch"):  # EpochReport: seconds against the cap, an honest time left
            fit_bar(report)
        return None

    def fit_bar(report: Any) -> None:
        from .core.progress import fit_progress

        fp = fit_progress(report)
        if "fit" not in bars:  # the bar is the share of the longest the fit can take (cap or epochs)
            bars["fit"] = tqdm(total=FIT_BAR_STEPS, bar_format=FIT_BAR_FORMAT)
        bar = bars["fit"]
        bar.n = round(fp.fraction * FIT_BAR_STEPS)
        loss = f"train {report.train_loss:.4g}"
        if report.valid_loss is not None:
            loss += f", valid {report.valid_loss:.4g}"
        bar.set_description_str(f"{fp.text()}; {loss}, best epoch {int(report.best_epoch) + 1}", refresh=True)

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return callback, close


def _read_labels(path: str) -> Any:
    from .recording import read_labels

    return read_labels(path)


def _open_movie(path: str) -> Any:
    from .core.readers.tiff import open_movie

    p = Path(path)
    if not p.exists():
        raise CliError(f"movie file not found: {p}")
    movie, _info = open_movie(p)
    return movie


def _read_scan(path: str | None) -> Any:
    if path is None:
        return None
    from .core.scan import ScanPattern

    return ScanPattern.from_json(path)


# --------------------------------------------------------------------------- commands
def cmd_simulate(args: argparse.Namespace) -> str:
    from .core.synth import simulate

    t = time.perf_counter()
    sim = simulate(args.preset, seed=args.seed)
    out = Path(args.out_dir)
    sim.save(out, overwrite=args.overwrite)
    T, Y, X = sim.movie.shape
    return (
        f"simulated preset {args.preset!r} seed {args.seed}: {T} sweeps of {Y}x{X}, "
        f"{sim.labels.max()} ROIs, {sim.pattern.acquired_fraction():.0%} of rows per sweep, "
        f"{sim.pattern.duration:.1f} s -> {out}/ ({time.perf_counter() - t:.1f} s)"
    )


def cmd_extract(args: argparse.Namespace) -> str:
    from .core.atomic import check_writable
    from .core.traces import extract_observations

    t = time.perf_counter()
    check_writable(args.out, overwrite=args.overwrite)
    movie = _open_movie(args.movie)
    labels = _read_labels(args.rois)
    scan = _read_scan(args.scan)
    callback, close = _tqdm_callback("extract")
    try:
        obs = extract_observations(
            movie, labels, scan, factor=args.factor, frame_period=args.frame_period,
            progress=callback,
        )
    except ValueError as e:  # name the movie the samples came from
        text = error_message(e)
        raise CliError(text if args.movie in text else f"{args.movie}: {text}") from None
    finally:
        close()
    obs.to_npz(args.out, overwrite=args.overwrite)
    n_obs = int(obs.observed_mask().sum())
    return (
        f"extracted {obs.values.shape[1]} ROIs x {obs.values.shape[0]} bins of "
        f"{obs.grid.bin_width * 1e3:.3g} ms, {n_obs} samples "
        f"({n_obs / obs.values.size:.1%} of neuron-bins observed) -> {args.out} "
        f"({time.perf_counter() - t:.1f} s)"
    )


#: marks "none" given for an optional setting (argparse's None means "not given")
_NONE = object()


def _optional(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type for an optional setting: ``none`` means None, else ``kind(text)``."""

    def parse(text: str) -> Any:
        return _NONE if text.strip().lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings of ``--config`` with the flags (generated from the RunConfig fields'
    metadata, :func:`_add_run_settings`) on top, checked before any work."""
    from .config import RunConfig, SettingError, settings

    cfg: dict[str, Any] = {}
    source = getattr(args, "config", None)
    if source is not None:
        text = source
        if not source.lstrip().startswith("{"):
            p = Path(source)
            if not p.is_file():
                raise CliError(f"run config file not found: {p} (give a .json file or inline JSON)")
            text = p.read_text()
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as e:
            raise CliError(f"--config {source}: not valid JSON ({e})") from None
        if not isinstance(loaded, dict):
            raise CliError(f"--config {source}: expected a JSON object of run settings")
        cfg.update(loaded)
    flags: dict[str, str] = {}
    for name, setting, _default in settings():
        value = getattr(args, name, None) if setting.flag is not None else None
        if value is not None:
            cfg[name] = None if value is _NONE else setting.from_shown(value)
            flags[name] = setting.flag
    try:  # every setting's type and range now, before any work
        RunConfig.from_dict(cfg)
    except SettingError as e:
        if e.name in flags:
            raise CliError(e.message_for(flags[e.name])) from None
        raise CliError(f"--config {source}: {e}" if source is not None else str(e)) from None
    except (TypeError, ValueError) as e:
        where = f"--config {source}: " if source is not None else ""
        raise CliError(f"{where}{e}") from None
    return cfg


class _CtrlC:
    """SIGINT during a fit, like the GUI's Stop: the first Ctrl-C stops the run through its
    :class:`~napari_sbtt.core.progress.RunControl` (training ends after the current epoch, keeping
    the best model so far, and the result is still written; during extraction nothing is written);
    a second one aborts and writes nothing. Outside the main thread (no signal handlers there)
    Ctrl-C is left alone."""

    def __init__(self, command: str, callback: Callable[..., Any]) -> None:
        from .core.progress import RunControl

        self.command = command
        self.count = 0
        self.control = RunControl(callback)
        self._old: Any = None

    def __enter__(self) -> "_CtrlC":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        print(f"\nnapari-sbtt {self.command}: stopping after this epoch; the best model so far is kept and "
              "the result written (press Ctrl-C again to abort and write nothing)", file=sys.stderr, flush=True)
        self.control.stop()


def _check_model_file(path: str) -> dict[str, Any]:
    """The metadata of a --model checkpoint (file or result folder), checked before any work."""
    from .model.header import checkpoint_header_info, resolve_checkpoint_path

    p = resolve_checkpoint_path(path)
    try:
        return checkpoint_header_info(p)
    except (KeyError, TypeError, UnicodeDecodeError) as e:
        raise CliError(f"--model {path}: not a napari-sbtt model file ({e})") from None


def cmd_run(args: argparse.Namespace) -> str:
    from .api import RunStopped, check_model_rois, check_result_destination
    from .recording import load_recording, run_recording

    t = time.perf_counter()
    # cheap checks first, so a mistake is reported before minutes of work
    out = check_result_destination(args.out, overwrite=args.overwrite, probe=True)
    config = _run_config(args)
    info = _check_model_file(args.model) if args.model is not None else None
    rec = load_recording(args.input, **_recording_options(args))
    callback, close = _tqdm_callback("run")
    try:
        if info is not None:
            check_model_rois(info["n_neurons"], rec.n_rois, adapt=bool(config.get("adapt", False)),
                             source=f"the model {args.model}")
        with _CtrlC("run", callback) as ctrl_c:
            result = run_recording(rec, model=args.model, config=config, control=ctrl_c.control)
    except RunStopped:
        raise KeyboardInterrupt from None  # stopped before a model existed: nothing to write
    except ValueError as e:  # a problem of this recording's data: name the file it came from
        text = error_message(e)
        raise CliError(text if str(rec.path) in text or args.input in text else f"{args.input}: {text}") from None
    finally:
        close()
        rec.close()
    result.save(out, overwrite=args.overwrite)
    n_t, n = result.rates.shape
    how = "stopped early, best model kept" if result.stopped else "done"
    return (
        f"inferred {n} ROIs x {n_t} bins of {result.grid.bin_width * 1e3:.3g} ms ({how}) -> {out}/ "
        f"({time.perf_counter() - t:.1f} s){_verdict(result, out)}"
    )


def _verdict(result: Any, out: Path) -> str:
    """"; held-out ...: <verdict>" for a calcium result (how it did against OASIS), else ""."""
    from .heldout import heldout_summary

    if (result.config or {}).get("likelihood") != "calcium":
        return ""
    note = (f"OASIS's estimate is saved too: oasis_rates in {out / 'arrays.npz'}"
            if getattr(result, "oasis_rates", None) is not None else "")
    return "; " + heldout_summary((result.metrics or {}).get("heldout"), oasis_note=note)


def _subject_fields(items: list[str], fmt: str) -> dict[str, str] | None:
    """``--subject FIELD=VALUE`` options as a dict (None when there are none)."""
    from .core.writers import NWB_SUBJECT_FIELDS

    if not items:
        return None
    if fmt != "nwb":
        raise ValueError(f"--subject describes the animal in an NWB file; it does not apply to {fmt} exports")
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in NWB_SUBJECT_FIELDS:
            raise ValueError(f"--subject {item!r}: expected FIELD=VALUE with FIELD one of "
                             f"{', '.join(NWB_SUBJECT_FIELDS)} (e.g. --subject species='Mus musculus')")
        out[key.strip()] = value.strip()
    return out


def cmd_export(args: argparse.Namespace) -> str:
    from .api import load_result
    from .core.writers import format_from_path

    t = time.perf_counter()
    fmt = format_from_path(args.out, args.format)
    subject = _subject_fields(args.subject or [], fmt)
    if args.location is not None and fmt != "nwb":
        raise ValueError(f"--location is the NWB imaging plane's brain area; it does not apply to {fmt} exports")
    result = load_result(args.result_dir, load_model=False)
    out = result.export(args.out, format=fmt, labels=args.rois, overwrite=args.overwrite, what=args.what,
                        nwb_subject=subject, nwb_location=args.location)
    n_t, n = result.rates.shape
    what = args.what if fmt == "csv" else ("activity movie" if fmt == "tiff" else "result")
    return (
        f"exported {n} ROIs x {n_t} bins of {result.grid.bin_width * 1e3:.3g} ms ({what}, {fmt}) -> {out} "
        f"({time.perf_counter() - t:.1f} s)"
    )


def cmd_batch(args: argparse.Namespace) -> "tuple[str, int]":
    from .batchrun import BatchInterrupted, batch

    config = _run_config(args)
    if args.model is not None:
        _check_model_file(args.model)
    options = _recording_options(args)

    def finished(row: Any) -> None:
        what = row.error if row.status == "failed" else (
            f"fit r {row.fit_r:.3f}" if row.fit_r is not None else "")
        print(f"  {row.status:8s} {row.recording} {what}".rstrip(), flush=True)

    try:
        summary = batch(args.sessions, args.out, config=config, recording_options=options, model=args.model,
                        address=args.address, num_cpus=args.num_cpus, cpus_per_task=args.cpus_per_task,
                        gpus_per_task=args.gpus_per_task, words=CLI_WORDS, progress=finished)
    except BatchInterrupted as stop:
        print(stop.summary.markdown(), end="")
        return (f"interrupted: {stop.summary.line()}; the finished recordings are saved, run the same command "
                "again to finish the others", 130)
    print(summary.markdown(), end="")
    return summary.line(), (1 if summary.failed else 0)


def _recording_options(args: argparse.Namespace) -> dict[str, Any]:
    """The load_recording options of the flags `run`, `batch` and `tune` share."""
    options = {k: v for k, v in (("rois", args.rois), ("scan", args.scan), ("frame_period", args.frame_period),
                                 ("line_period", args.line_period), ("n_rows", args.n_rows),
                                 ("dataset", args.dataset)) if v is not None}
    options["prefer"] = args.prefer
    return options


def cmd_tune(args: argparse.Namespace) -> str:
    from .search import tune

    t = time.perf_counter()
    config = _run_config(args)
    space = [n.strip() for n in args.search.split(",") if n.strip()] if args.search else None
    outcome = tune(args.input, args.out, trials=args.trials, config=config,
                   recording_options=_recording_options(args), scheduler=args.scheduler, space=space,
                   address=args.address, num_cpus=args.num_cpus, cpus_per_trial=args.cpus_per_trial,
                   gpus_per_trial=args.gpus_per_trial, perturbation_interval=args.perturbation_interval,
                   overwrite=args.overwrite, verbose=args.verbose, storage=args.storage)
    print((Path(args.out) / "trials.md").read_text(), end="")
    return f"{outcome.line()} ({time.perf_counter() - t:.1f} s)"


def cmd_demo(args: argparse.Namespace) -> str:
    from .demo import run_demo

    callback, close = _tqdm_callback("demo")
    try:
        summary = run_demo(
            Path(args.out), preset=args.preset, seed=args.seed, config=_run_config(args),
            progress=callback, overwrite=args.overwrite,
        )
    finally:
        close()
    return summary


# --------------------------------------------------------------------------- parser
def _add_run_settings(p: argparse.ArgumentParser, *, exclude: Sequence[str] = ()) -> None:
    """A flag for every RunConfig setting whose metadata names one (:mod:`napari_sbtt.config`),
    with its help, units, choices and default; ``exclude``: settings this command fixes itself."""
    from .config import settings

    for name, s, default in settings():
        if s.flag is None or name in exclude:
            continue
        kind = {"int": int, "number": float}.get(s.kind, str)
        shown = s.to_shown(default)
        text = s.none_label if default is None and s.none_label else (
            f"{shown:g}" if isinstance(shown, float) else str(shown))
        units = f" {s.shown_units or s.units}" if (s.shown_units or s.units) and default is not None else ""
        extra = f"; 'none' for {s.none_label or 'none'}" if s.optional and default is not None else ""
        kwargs: dict[str, Any] = {"dest": name, "default": None,
                                  "help": f"{s.help} (default: {text}{units}{extra})"}
        if s.kind == "choice":
            kwargs["choices"] = list(s.choices)
        else:
            kwargs["type"] = _optional(kind) if s.optional and default is not None else kind
            kwargs["metavar"] = (s.shown_units or s.units or ("N" if s.kind == "int" else "X")).upper()
        p.add_argument(s.flag, **kwargs)


def _add_recording_inputs(p: argparse.ArgumentParser, note: str = "") -> None:
    """The flags that say how to read a recording (load_recording's options), shared by `run`,
    `batch` and `tune`; ``note`` is added to the help of --rois and --scan."""
    p.add_argument("--rois", default=None,
                   help="labels image .tif/.npy (Y, X) - needed for TIFF movies and traces files; for traces "
                        "also a rows file (.csv/.npy, one line per ROI: row, or row and column); suite2p, "
                        f"CaImAn and NWB carry their own ROIs{note}")
    p.add_argument("--scan", default=None, help=f"scan.json of a partial-field scan{note}")
    p.add_argument("--frame-period", type=float, default=None,
                   help="seconds per frame (full raster) when the file does not say")
    p.add_argument("--line-period", type=float, default=None,
                   help="seconds per line; with a movie, the acquired rows are found from the movie")
    p.add_argument("--n-rows", type=int, default=None,
                   help="lines per frame, for a traces file with a rows file and no --scan")
    p.add_argument("--prefer", choices=["movie", "traces"], default="movie",
                   help="suite2p/NWB: use the movie + ROI masks (default) or the file's ROI traces")
    p.add_argument("--dataset", default=None,
                   help="traces .npz/.h5 holding several arrays: the name of the one with the traces")


def _add_ray_cluster(p: argparse.ArgumentParser) -> None:
    """Where `batch` and `tune` run: a local Ray (default) or a cluster."""
    p.add_argument("--address", default=None,
                   help="Ray cluster: 'auto' (the cluster this machine belongs to) or ray://HOST:10001; "
                        "default: a local Ray on this machine")
    p.add_argument("--num-cpus", type=int, default=None, help="cores of the local Ray (default: all)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sbtt",
        description="Super-resolved, deconvolved ROI activity from partial-field two-photon scans (SBTT).",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"napari-sbtt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write a synthetic partial-field line scan with ground truth")
    p.add_argument("out_dir", help="folder for movie.tif, rois.tif, scan.json, truth.npz, config.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="default", help="simulation preset (tiny, default, benchmark)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in OUT_DIR")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("extract", help="per-ROI observations on the fine grid (obs.npz)")
    p.add_argument("movie", help="movie TIFF (T, Y, X); unacquired rows NaN or 0")
    p.add_argument("--rois", required=True, help="labels image .tif/.npy (Y, X)")
    p.add_argument("--scan", default=None, help="scan.json (default: full raster; give --frame-period)")
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--factor", type=int, default=1, help="fine-grid bins per sweep")
    p.add_argument("--frame-period", type=float, default=None,
                   help="seconds per frame when there is no scan.json")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser(
        "run", help="fit (or apply) an SBTT model and infer every ROI's activity",
        description="INPUT may be a TIFF movie (ScanImage timing is read from the file), a suite2p plane "
                    "folder, a CaImAn .hdf5 results file, an NWB file, or a traces file (.npy/.csv/.h5).",
    )
    p.add_argument("input", metavar="INPUT",
                   help="TIFF movie, suite2p plane folder, CaImAn .hdf5, .nwb, or traces .npy/.csv/.h5")
    _add_recording_inputs(p)
    p.add_argument("--model", default=None,
                   help="model to apply instead of training: a checkpoint (.safetensors) or a result folder "
                        "holding model.safetensors")
    p.add_argument("--out", required=True, help="output folder for the result")
    p.add_argument("--config", default=None,
                   help="run settings as a JSON file or inline JSON (RunConfig fields; model sizes under "
                        "'model'); the flags below override it")
    p.add_argument("--overwrite", action="store_true")
    _add_run_settings(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "batch", help="run many recordings as Ray tasks: a result folder each and a summary table",
        description="Runs `napari-sbtt run` on every SESSION as a Ray task (a local Ray by default, a cluster "
                    "with --address), a result folder each under --out named after the input, and writes "
                    "batch_summary.csv/.md there. A recording that fails is reported and the others go on; "
                    "a rerun skips the recordings whose result folder is complete. Needs Ray: "
                    "pip install \"napari-sbtt[tune]\".",
    )
    p.add_argument("sessions", metavar="SESSION", nargs="+",
                   help="recordings as `run` takes them (TIFF, suite2p folder, CaImAn .hdf5, .nwb, traces)")
    p.add_argument("--out", required=True, help="folder for the result folders and the summary")
    _add_recording_inputs(p, note=" (the same for every SESSION)")
    p.add_argument("--model", default=None, help="model to apply (or adapt) instead of training")
    p.add_argument("--config", default=None, help="run settings as a JSON file or inline JSON; flags override it")
    _add_ray_cluster(p)
    p.add_argument("--cpus-per-task", type=float, default=1.0,
                   help="Ray CPUs reserved per recording (default 1; the fit uses --threads torch threads)")
    p.add_argument("--gpus-per-task", type=float, default=0.0,
                   help="Ray GPUs per recording, e.g. 0.5 to share a GPU between two fits (default 0)")
    _add_run_settings(p)
    p.set_defaults(func=cmd_batch)

    from .search import SCHEDULERS, SEARCH_SPACE

    p = sub.add_parser(
        "tune", help="search the model's settings with Ray Tune; the best model's result and config",
        description="Fits TRIALS models with settings drawn from the search space (learning rate, weight "
                    "decay, dropout, coordinated dropout, KL weight, size, window) on one recording, as Ray "
                    "Tune trials (a local Ray by default, a cluster with --address), scored on held-out "
                    "samples; --out gets result/ (the best model's result, for `export`), best_config.json "
                    "(for `run --config`), trials.csv/.md. Needs Ray: pip install \"napari-sbtt[tune]\".",
    )
    p.add_argument("input", metavar="INPUT", help="a recording as `run` takes it")
    p.add_argument("--out", required=True, help="folder for result/, best_config.json, trials.csv/.md, ray/")
    p.add_argument("--trials", type=int, default=8, help="settings to try (default 8)")
    p.add_argument("--scheduler", choices=list(SCHEDULERS), default="asha",
                   help="asha: stop poor trials early (default); pbt: Population Based Training")
    p.add_argument("--search", default=None, metavar="NAMES",
                   help=f"comma-separated settings to search (default all: {','.join(SEARCH_SPACE)})")
    p.add_argument("--perturbation-interval", type=int, default=5, metavar="EPOCHS",
                   help="pbt: epochs between perturbations (default 5)")
    _add_ray_cluster(p)
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="Ray CPUs per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="Ray GPUs per trial, e.g. 0.5 for two trials per GPU (default 0)")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1, help="Ray Tune's output (default 1)")
    p.add_argument("--storage", default=None, metavar="PATH_OR_URI",
                   help="where Ray Tune keeps trial checkpoints (default OUT/ray); on a multi-machine cluster "
                        "a place every node reaches: s3://bucket/path, gs://..., or a shared folder")
    _add_recording_inputs(p)
    p.add_argument("--config", default=None,
                   help="run settings every trial starts from (JSON file or inline); --epochs caps each trial")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier search's files in --out")
    _add_run_settings(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("export", help="write a saved result as .npz, .h5, .csv, .tif or .nwb")
    p.add_argument("result_dir", metavar="RESULT_DIR", help="a result folder written by `napari-sbtt run`")
    p.add_argument("out", metavar="OUT",
                   help="output file: .npz, .h5/.hdf5, .csv (traces), .tif (activity movie) or .nwb")
    p.add_argument("--format", choices=["npz", "hdf5", "csv", "tiff", "nwb"], default=None,
                   help="override the format given by OUT's suffix")
    p.add_argument("--rois", default=None,
                   help="labels image .tif/.npy for .tif/.nwb when the result's source had no ROI masks")
    from .export import CSV_WHAT

    p.add_argument("--what", choices=list(CSV_WHAT), default="rates",
                   help="which traces go into a .csv (default: rates; spikes_per_s: estimated spikes/s of a "
                        "calcium result on dF/F)")
    p.add_argument("--subject", action="append", metavar="FIELD=VALUE",
                   help="NWB Subject field for .nwb (repeat): subject_id, species, sex (M/F/U/O), age "
                        "(ISO 8601, e.g. P90D), ...; nwbinspector and DANDI require a subject")
    p.add_argument("--location", default=None, metavar="AREA",
                   help="brain area of the imaging plane for .nwb (for a mouse an Allen CCF term, e.g. VISp)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="simulate, fit, infer and score against the ground truth")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--preset", default="default", help="simulation preset")
    p.add_argument("--overwrite", action="store_true")
    _add_run_settings(p, exclude=("indicator", "onset_delay_s"))  # the simulation fixes its indicator
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        summary = args.func(args)
    except (CliError, ValueError, OSError, ImportError) as e:
        print(f"napari-sbtt {args.command}: error: {error_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"napari-sbtt {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    code = 0
    if isinstance(summary, tuple):  # (summary, exit status): batch with failed recordings answers 1
        summary, code = summary
    print(summary)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
