"""Model search on Ray Tune: ``napari_sbtt.tune(input, out_dir)`` and ``napari-sbtt tune INPUT``.

The settings that decide a model's quality differ per data set; a search with a held-out
criterion picks them (the point of AutoLFADS). Here:

- the recording is read once, in this process, and its observations reach every trial through
  Ray's object store (``tune.with_parameters``): no shared file system is needed;
- the first trial fits with the run's own settings (:func:`run_point`), so the search starts
  from what ``napari-sbtt run`` would give; each other trial fits with the run's settings
  (``config``) and the trial's random values of :data:`SEARCH_SPACE` on top (learning rate, weight decay, dropout, coordinated dropout, KL
  weight, model size, window length), with the same seed, so every trial holds out the same
  samples and windows;
- the metric is the loss the fit reports every epoch and stops early on (``valid_loss`` of
  :class:`~napari_sbtt.model.config.EpochReport`): the likelihood of the held-out samples of the
  validation windows, scored in eval mode, so it does not depend on the trial's dropout;
  it is reported with ``tune.report`` from the fit's checkpoint callback;
- schedulers: ASHA (default; stops poor trials early) or Population Based Training (``"pbt"``,
  synchronous: every ``perturbation_interval`` epochs, once all trials got there, the poorest
  quarter continues from the best quarter's checkpoints with perturbed settings; the checkpoint is a real resume, weights, AdamW moments, schedule and
  generators, :class:`~napari_sbtt.model.training.TrainingState`);
- the best trial's model (its best epoch) is applied to the recording by the normal run
  (:func:`napari_sbtt.pipeline.fit_and_infer`: inference, the held-out comparison), and
  ``out_dir`` receives ``result/`` (a normal result folder, ``napari-sbtt export`` reads it),
  ``best_config.json`` (the run settings of the best trial: ``napari-sbtt run --config`` takes
  it), ``trials.csv`` / ``trials.md`` (one row per trial) and ``ray/`` (Ray's own records and the
  trials' checkpoints; on a cluster of several machines ``storage`` names a place all nodes reach).

Ray runs locally by default (``ray.init()``); ``address="auto"`` or ``"ray://host:10001"`` uses
a cluster, ``gpus_per_trial=0.5`` puts two trials on a GPU. Public Ray APIs only: ``Tuner``,
``TuneConfig``, ``RunConfig``, ``CheckpointConfig``, ``tune.report``, ``tune.get_checkpoint``,
``Checkpoint``, the ASHA and PBT schedulers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .config import SIZES, RunConfig, window_seconds
from .core.limits import MAX_WINDOW_S
from .core.numbers import finite_or_none

if TYPE_CHECKING:  # pragma: no cover
    from .core.observations import Observations
    from .result import SBTTResult

__all__ = ["tune", "SearchParam", "SEARCH_SPACE", "SCHEDULERS", "SearchOutcome", "TrialRow", "config_for", "run_point",
           "METRIC"]

#: the metric every trial reports each epoch and the search minimises
METRIC = "valid_loss"
#: the reported epochs done: the schedulers' time (``time_attr``), since a trial reports at most
#: every :data:`REPORT_EVERY_S` seconds rather than every epoch
EPOCHS = "epochs_done"
#: a trial reports to Ray Tune at most every this many seconds, plus at its last epoch and at
#: Population Based Training's checkpoint epochs: each report is a round trip to the driver, and
#: reporting every epoch made a 20-epoch trial on the tiny sample take 41.6 s against 3.7 s with
#: this interval, the same losses (2 cores, load ~4; benchmarks/RESULTS.md, "Search")
REPORT_EVERY_S = 5.0
#: the schedulers :func:`tune` knows
SCHEDULERS = ("asha", "pbt")
#: files of a trial's checkpoint folder
STATE_FILE, MODEL_FILE = "training_state.safetensors", "model.safetensors"


@dataclass(frozen=True)
class SearchParam:
    """One searched setting: its distribution and where it goes.

    kind: "log" (log-uniform from ``low`` to ``high``), "uniform" or "choice" (``choices``).
    where: "model" (an SBTTConfig field, set in ``RunConfig.model``), "size" (RunConfig.size; the
    size fields of ``model`` give way) or "window" (a factor on the run's window length,
    ``window_s`` or the automatic one). ``perturb``: Population Based Training may change it while
    a model trains (not sizes and windows, which fix the network and the data).
    """

    kind: str
    help: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()
    where: str = "model"
    perturb: bool = False


#: the search space, defined once: name -> distribution and bounds
SEARCH_SPACE: dict[str, SearchParam] = {
    "learning_rate": SearchParam("log", "peak learning rate of AdamW", 1e-3, 2e-2, perturb=True),
    "weight_decay": SearchParam("log", "AdamW weight decay", 1e-6, 1e-2, perturb=True),
    "dropout": SearchParam("uniform", "dropout on encoder output, initial condition and generator",
                           0.0, 0.3, perturb=True),
    "coordinated_dropout": SearchParam("uniform", "share of observed inputs hidden from the encoder per batch",
                                       0.1, 0.6, perturb=True),
    "kl_weight": SearchParam("log", "weight of the KL terms", 1e-5, 1e-1, perturb=True),
    "size": SearchParam("choice", "model size preset (layer sizes)", choices=tuple(SIZES), where="size"),
    "window_scale": SearchParam("log", "factor on the window length (window_s, or the automatic window)",
                                0.5, 2.0, where="window"),
}


def config_for(base: RunConfig, params: Mapping[str, Any], bin_width: float,
               decay_s: float | None = None) -> RunConfig:
    """The run settings of a trial: ``base`` with the searched ``params`` on top (they win over
    ``base.model``'s own values). ``bin_width`` (s) and the recording's decay estimate ``decay_s``
    (s, :func:`napari_sbtt.pipeline.recording_decay`) size the automatic window for
    ``window_scale``."""
    model = dict(base.model)
    changes: dict[str, Any] = {}
    for name, value in params.items():
        p = SEARCH_SPACE[name]
        if p.where == "model":
            model[name] = float(value)
        elif p.where == "size":
            changes["size"] = str(value)
            for k in {k for sizes in SIZES.values() for k in sizes}:
                model.pop(k, None)
        else:
            changes["window_s"] = min(MAX_WINDOW_S, window_seconds(base, bin_width, decay_s) * float(value))
    return base.replace(model=model, **changes)


def run_point(base: RunConfig, names: Sequence[str], bin_width: float) -> dict[str, Any]:
    """The searched settings' values in the run ``base`` itself (what ``napari-sbtt run`` with
    the same settings would fit with): model fields as :func:`napari_sbtt.config.resolve` gives
    them, the size preset, a window factor of 1; a value outside its search bounds is clipped to
    them. :func:`tune` evaluates this point first, so a search starts from the run it is meant to
    improve on."""
    from .config import resolve

    resolved = resolve(base, bin_width=bin_width)
    point: dict[str, Any] = {}
    for name in names:
        p = SEARCH_SPACE[name]
        if p.where == "size":
            point[name] = base.size
        elif p.where == "window":
            point[name] = 1.0
        else:
            point[name] = float(min(max(float(getattr(resolved, name)), p.low), p.high))
    return point


@dataclass
class TrialRow:
    """One trial: its searched values, the best ``valid_loss`` it reported, epochs, seconds, and
    status ("done": every epoch; "ended early": stopped by the scheduler or by early stopping;
    "failed", with ``error``)."""

    trial: str
    params: dict[str, Any]
    best_loss: float | None
    epochs: int
    seconds: float | None
    status: str
    error: str = ""


@dataclass
class SearchOutcome:
    """What :func:`tune` returns."""

    best_config: RunConfig
    best_params: dict[str, Any]
    best_trial: str
    best_loss: float
    result: "SBTTResult"
    result_dir: Path
    trials: list[TrialRow]
    files: list[Path] = field(default_factory=list)

    def line(self) -> str:
        """One line for the command line."""
        ok = sum(t.status != "failed" for t in self.trials)
        vals = ", ".join(f"{k}={_fmt(v)}" for k, v in self.best_params.items())
        return (f"{len(self.trials)} trials ({ok} ran): best {self.best_trial} held-out loss {self.best_loss:.4g} "
                f"({vals}) -> {self.result_dir}/")


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------- Ray's API
#: the names a trial and the search take from Ray Tune (Ray >= 2.41) or, before, from ``ray.train``
_TUNE_NAMES = ("report", "get_checkpoint", "Checkpoint", "RunConfig", "CheckpointConfig")


def _ray_api() -> SimpleNamespace:
    """The public Ray Tune names this module uses, across ray[tune] 2.9 to 2.x: Ray 2.41 and newer
    have ``tune.report`` / ``tune.get_checkpoint`` / ``tune.Checkpoint`` / ``tune.RunConfig`` /
    ``tune.CheckpointConfig``; Ray 2.9 to 2.40 have the same functions only in ``ray.train``
    (tested with Ray 2.9.0, 2.9.3, 2.40.0, 2.41.0 and 2.60.0)."""
    from .cluster import require_ray

    require_ray()
    from ray import tune as rt

    if all(hasattr(rt, n) for n in _TUNE_NAMES):
        src = rt
    else:  # ray 2.9 - 2.40: the same public API lives in ray.train
        from ray import train as src  # type: ignore[no-redef]
    return SimpleNamespace(tune=rt, **{n: getattr(src, n) for n in _TUNE_NAMES})


def _distribution(rt: Any, p: SearchParam) -> Any:
    if p.kind == "log":
        return rt.loguniform(p.low, p.high)
    if p.kind == "uniform":
        return rt.uniform(p.low, p.high)
    return rt.choice(list(p.choices))


# --------------------------------------------------------------------------- one trial
def trial(params: dict[str, Any], observations: "Observations", base: dict[str, Any],
          checkpoint_every: int = 0, decay_s: float | None = None) -> None:
    """The body of one trial (runs in a Ray worker): fit with ``base`` + ``params`` on the
    observations, reporting :data:`METRIC` and :data:`EPOCHS` at most every :data:`REPORT_EVERY_S`
    seconds, at the last epoch and every ``checkpoint_every`` epochs, with a checkpoint (resumable
    state and the best model so far) when a new best epoch came since the last report or
    ``checkpoint_every`` asks for one.
    ``decay_s``: the recording's decay estimate (s) the run starts from, estimated once by
    :func:`tune` (None when the run does not estimate it)."""
    from .config import resolve
    from .model import fit_trials
    from .model.checkpoint import read_training_state, save_training_state
    from .pipeline import model_metadata, run_window, training_windows

    api = _ray_api()
    obs = observations
    names = [k for k in params if k in SEARCH_SPACE]
    cfg = config_for(RunConfig.from_dict(base), {k: params[k] for k in names}, obs.grid.bin_width, decay_s)
    window, overlap = run_window(obs, cfg, decay_s)
    wins = training_windows(obs.values, window, overlap, cfg)
    resume = None
    ckpt = api.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            resume = read_training_state(Path(d) / STATE_FILE)

    last = time.monotonic()
    improved = False  # a new best epoch since the last report
    pending: tuple[Any, Any] | None = None  # the latest (report, snapshot) not yet sent

    def send(r: Any, snapshot: Any, with_checkpoint: bool) -> None:
        nonlocal last, improved, pending
        metrics = {METRIC: float(r.valid_loss), "heldout_loss": float(r.heldout_loss),
                   "train_loss": float(r.train_loss), "epoch": int(r.epoch), EPOCHS: int(r.epoch) + 1,
                   "best_valid_loss": float(r.best_valid_loss), "learning_rate": float(r.learning_rate)}
        if with_checkpoint:
            with tempfile.TemporaryDirectory() as d:
                state, model = snapshot()
                save_training_state(state, Path(d) / STATE_FILE)
                model.save(Path(d) / MODEL_FILE)
                api.report(metrics, checkpoint=api.Checkpoint.from_directory(d))
        else:
            api.report(metrics)
        last, improved, pending = time.monotonic(), False, None

    def report(r: Any, snapshot: Any) -> None:
        nonlocal improved, pending
        improved = improved or bool(r.is_best)
        due = checkpoint_every > 0 and (r.epoch + 1) % checkpoint_every == 0  # PBT's exploit points
        if due or time.monotonic() - last >= REPORT_EVERY_S:
            send(r, snapshot, improved or due)
        else:
            pending = (r, snapshot)

    fit_trials(wins, None, likelihood=cfg.likelihood,
               config=resolve(cfg, bin_width=obs.grid.bin_width, n_windows=len(wins), decay_s=decay_s),
               seed=cfg.seed, metadata=model_metadata(obs, window, overlap), resume=resume, checkpoint=report)
    if pending is not None:  # the last epochs, since the last report
        send(*pending, improved)


# --------------------------------------------------------------------------- tables


def trials_csv(rows: Sequence[TrialRow], names: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["trial", *names, METRIC, "epochs", "seconds", "status", "error"])
    for r in rows:
        w.writerow([r.trial, *(r.params.get(n, "") for n in names),
                    "" if r.best_loss is None else repr(r.best_loss), r.epochs,
                    "" if r.seconds is None else f"{r.seconds:.1f}", r.status, r.error])
    return buf.getvalue()


def trials_markdown(rows: Sequence[TrialRow], names: Sequence[str], best: str) -> str:
    head = ["trial", *names, "held-out loss", "epochs", "seconds", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r.best_loss is None, r.best_loss or 0.0)):
        cells = [f"**{r.trial}**" if r.trial == best else r.trial, *(_fmt(r.params.get(n, "")) for n in names),
                 "" if r.best_loss is None else f"{r.best_loss:.4g}", str(r.epochs),
                 "" if r.seconds is None else f"{r.seconds:.1f}",
                 r.status + (f": {r.error}" if r.error else "")]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _rows(grid: Any, names: Sequence[str], max_t: int) -> list[TrialRow]:
    """A row per trial. The loss and epochs come from the trial's reports (``metrics_dataframe``,
    read back from Ray's ``result.json``) and from its last report (``metrics``, kept in memory):
    under Population Based Training Ray 2.41 can leave ``result.json`` short of the last reports,
    or empty, while the last report is always there."""
    rows = []
    for k, res in enumerate(grid):
        df = res.metrics_dataframe
        metrics = res.metrics or {}
        losses = [] if df is None or METRIC not in df else [v for v in df[METRIC].tolist() if finite_or_none(v) is not None]
        losses += [v for v in (finite_or_none(metrics.get(m)) for m in (METRIC, "best_valid_loss")) if v is not None]
        done = [] if df is None or EPOCHS not in df else [v for v in df[EPOCHS].tolist() if finite_or_none(v) is not None]
        epochs = int(max([*done, finite_or_none(metrics.get(EPOCHS)) or 0]))
        trial_id = str(metrics.get("trial_id") or Path(str(res.path)).name or f"trial_{k}")
        error = " ".join(str(res.error).split())[:300] if res.error is not None else ""
        status = "failed" if error else ("done" if epochs >= max_t else "ended early")
        rows.append(TrialRow(trial_id, {n: res.config.get(n) for n in names}, min(losses) if losses else None,
                             epochs, finite_or_none(metrics.get("time_total_s")), status, error))
    return rows


# --------------------------------------------------------------------------- the search
def tune(
    input: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    trials: int = 8,
    config: RunConfig | dict[str, Any] | None = None,
    recording_options: Mapping[str, Any] | None = None,
    scheduler: str = "asha",
    space: Sequence[str] | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    perturbation_interval: int = 5,
    overwrite: bool = False,
    verbose: int = 1,
    storage: str | None = None,
) -> SearchOutcome:
    """Search the settings of :data:`SEARCH_SPACE` for one recording with Ray Tune.

    Parameters
    ----------
    input : a recording as ``napari-sbtt run`` takes it; ``recording_options`` are its
        :func:`~napari_sbtt.recording.load_recording` options (``rois``, ``scan``, ...).
    out_dir : gets ``result/``, ``best_config.json``, ``trials.csv``, ``trials.md`` and ``ray/``
        (made when missing; an earlier search's files are replaced only with ``overwrite``).
    trials : how many settings to try (Ray's ``num_samples``).
    config : the run settings every trial starts from (``epochs`` caps each trial's epochs,
        ``max_seconds`` its time, ``seed`` is shared by all trials).
    scheduler : "asha" (default) or "pbt" (Population Based Training, perturbing the settings
        marked ``perturb`` every ``perturbation_interval`` epochs).
    space : names of :data:`SEARCH_SPACE` to search (default: all).
    address, num_cpus : None: a local Ray with ``num_cpus`` cores (None: all); "auto" or
        "ray://host:10001": a cluster. A Ray initialised in this process already is used.
    cpus_per_trial, gpus_per_trial : Ray resources of each trial (0.5 GPU: two trials per GPU).
    verbose : Ray Tune's progress output (0 silent, 1 a status table, 2 more).
    storage : where Ray Tune keeps the trials' checkpoints and records (default ``out_dir/ray``).
        On a cluster of several machines give a place every node reaches (``s3://bucket/path``,
        ``gs://...`` or a shared folder): Ray Tune persists checkpoints there, and Population
        Based Training reads them from there. The recording itself needs no shared storage.

    Returns
    -------
    SearchOutcome: the best trial's settings, its result (also saved in ``out_dir/result``) and a
    row per trial. ImportError with the install command when Ray is missing; ValueError for bad
    arguments (before any trial runs) and when every trial failed (naming the first error).
    """
    from .cluster import start_ray
    from .core.atomic import atomic_write_text, check_writable
    from .model import load_model
    from .pipeline import fit_and_infer
    from .recording import load_recording, recording_observations
    from .result import check_result_destination

    api = _ray_api()
    rt = api.tune
    cfg = RunConfig.coerce(config)
    names = list(space) if space is not None else list(SEARCH_SPACE)
    unknown = [n for n in names if n not in SEARCH_SPACE]
    if unknown or not names:
        raise ValueError(f"search space: unknown setting(s) {unknown}; choose from {list(SEARCH_SPACE)}")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {list(SCHEDULERS)}, got {scheduler!r}")
    mutable = [n for n in names if SEARCH_SPACE[n].perturb]
    if scheduler == "pbt" and not mutable:
        raise ValueError(f"pbt perturbs settings while a model trains, and none of {names} can change then; "
                         f"add one of {[n for n, p in SEARCH_SPACE.items() if p.perturb]}")
    if not (isinstance(trials, int) and trials >= 1):
        raise ValueError(f"trials must be a whole number >= 1, got {trials!r}")
    if not (isinstance(perturbation_interval, int) and perturbation_interval >= 1):
        raise ValueError(f"perturbation_interval must be a whole number of epochs >= 1, got {perturbation_interval!r}")

    out = Path(os.fspath(out_dir)).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file; give a folder for the search's results")
    out.mkdir(parents=True, exist_ok=True)
    result_dir = check_result_destination(out / "result", overwrite=overwrite, probe=True)
    files = [out / "best_config.json", out / "trials.csv", out / "trials.md"]
    for f in files:
        check_writable(f, overwrite=overwrite)

    rec = load_recording(input, **dict(recording_options or {}))
    try:
        obs, scan, fp = recording_observations(rec, config=cfg)
        provenance = dict(rec.provenance)
    finally:
        rec.close()

    from .config import resolve
    from .pipeline import recording_decay

    decay_s = recording_decay(obs, cfg)  # once, as every trial's run would
    max_t = int(cfg.epochs) if cfg.epochs is not None else resolve(cfg, bin_width=obs.grid.bin_width).max_epochs
    started = start_ray(address, num_cpus=num_cpus)
    try:
        from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining
        from ray.tune.search import BasicVariantGenerator

        if scheduler == "asha":
            sched = ASHAScheduler(time_attr=EPOCHS, max_t=max_t,
                                  grace_period=max(1, min(10, max_t // 4)), reduction_factor=3)
            every = 0
        else:
            sched = PopulationBasedTraining(
                time_attr=EPOCHS, perturbation_interval=perturbation_interval, synch=True,
                hyperparam_mutations={n: _distribution(rt, SEARCH_SPACE[n]) for n in mutable})
            every = perturbation_interval
        trainable = rt.with_resources(
            rt.with_parameters(trial, observations=obs, base=cfg.to_dict(), checkpoint_every=every,
                               decay_s=decay_s),
            {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        tuner = rt.Tuner(
            trainable,
            param_space={n: _distribution(rt, SEARCH_SPACE[n]) for n in names},
            tune_config=rt.TuneConfig(metric=METRIC, mode="min", num_samples=trials, scheduler=sched,
                                      search_alg=BasicVariantGenerator(
                                          random_state=cfg.seed,
                                          points_to_evaluate=[run_point(cfg, names, obs.grid.bin_width)])),
            run_config=api.RunConfig(name=f"search-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=storage or str(out / "ray"),
                                     checkpoint_config=api.CheckpointConfig(num_to_keep=2 if scheduler == "asha" else 4), verbose=verbose),
        )
        grid = tuner.fit()
        rows = _rows(grid, names, max_t)
        ran = [r for r in rows if r.best_loss is not None]
        if not ran:
            first = next((r.error for r in rows if r.error), "no trial reported a loss")
            raise ValueError(f"every trial of the search failed: {first}")
        best = grid.get_best_result(metric=METRIC, mode="min", scope="all")
        if best.checkpoint is None:
            raise ValueError(f"the best trial ({best.path}) left no checkpoint")
        with best.checkpoint.as_directory() as d:
            model = load_model(Path(d) / MODEL_FILE, device=None if cfg.device == "auto" else cfg.device)
    finally:
        if started:
            import ray

            ray.shutdown()

    best_params = {n: best.config[n] for n in names}
    best_id = str((best.metrics or {}).get("trial_id") or Path(str(best.path)).name)
    best_loss = min(r.best_loss for r in rows if r.trial == best_id and r.best_loss is not None) \
        if any(r.trial == best_id and r.best_loss is not None for r in rows) else float(model.best_valid_loss)
    best_cfg = config_for(cfg, best_params, obs.grid.bin_width, decay_s)
    result = fit_and_infer(obs, model=model, config=best_cfg, scan=scan, frame_period=fp)
    result.config["recording"] = provenance
    result.config["search"] = {"trials": trials, "scheduler": scheduler, "space": names, "params": best_params,
                               "trial": best_id, METRIC: best_loss}
    result.save(result_dir, overwrite=overwrite)
    atomic_write_text(files[0], json.dumps(best_cfg.to_dict(), indent=1) + "\n", overwrite=overwrite)
    atomic_write_text(files[1], trials_csv(rows, names), overwrite=overwrite)
    atomic_write_text(files[2], trials_markdown(rows, names, best_id), overwrite=overwrite)
    return SearchOutcome(best_cfg, best_params, best_id, best_loss, result, result_dir, rows, files)
