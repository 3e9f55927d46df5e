"""The one entry point shared by scripts, the command line and the napari widgets.

``run_on_stack(movie, rois, scan)`` runs the whole data flow of DESIGN.md:

    movie + rois + scan pattern -> observations on the fine grid (core.traces)
      -> overlapping windows (core.windows) -> fit, adapt or apply a model (model)
      -> rates per window -> merged rates on the fine grid -> SBTTResult

torch is imported only when a model is fitted or applied.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from .core.atomic import OutputExistsError, current_umask
from .core.scan import FineGrid, ScanPattern

if TYPE_CHECKING:  # pragma: no cover
    from .isolated import ModelFile
    from .model import SBTTModel

__all__ = [
    "RunConfig",
    "StageReport",
    "RunStopped",
    "SBTTResult",
    "run_on_stack",
    "run_on_traces",
    "run_on_observations",
    "observations_for_stack",
    "observations_for_traces",
    "load_result",
    "check_result_destination",
    "check_model_rois",
    "infer_observations",
]

RESULT_FORMAT = "napari-sbtt-result"
RESULT_FORMAT_VERSION = 1

#: units of ``SBTTResult.rates`` for each likelihood
RATE_UNITS = {
    "poisson": "counts/bin",
    "gaussian": "input units (denoised)",
    "zig": "event size/bin",
    "calcium": "dF/F jump/bin (deconvolved)",
}


#: what RunConfig.estimate may say (see napari_sbtt.heldout)
ESTIMATE_CHOICES = ("auto", "network", "deconvolution")


class RunStopped(Exception):
    """The caller stopped the run before a model existed (during extraction); nothing to return."""


@dataclass(frozen=True)
class StageReport:
    """Progress of a non-training stage: ``done`` of ``total`` units of ``stage``."""

    stage: str
    done: int
    total: int
    message: str = ""


@dataclass
class RunConfig:
    """Settings of :func:`run_on_stack`; JSON round trip via ``to_dict`` / ``from_dict``.

    Attributes
    ----------
    factor : fine-grid bins per sweep (bin width = frame period / factor).
    likelihood : "calcium" (deconvolves; default), "gaussian", "poisson" or "zig".
    epochs : maximum training epochs (None: the model config's ``max_epochs``).
    seed : random seed of the fit.
    device : "auto" (CUDA when present), "cpu" or "cuda".
    min_coverage : share of an ROI's pixels that a sweep must acquire for the ROI to count as observed.
    dff : convert each ROI's samples to dF/F with a running-percentile F0 before fitting.
    neuropil : neuropil coefficient (e.g. 0.7) to subtract an annulus signal, or None.
    window_s : window length in seconds for chopping the recording into trials; None (default)
        picks ``core.windows.auto_window_s``: max(1 s, 2 x the indicator's decay, 16 bins).
    max_windows : train on at most this many windows (a seeded random subset; None = all).
    overlap_fraction : share of each window that overlaps the next.
    adapt : with a given model, fine-tune it on this recording (pretrain-then-adapt) instead of
        applying it as it is.
    indicator : indicator preset name (e.g. "GCaMP6f") that sets the calcium model's initial decay
        (None: GCaMP6f's); the decay is then learned per ROI.
    max_seconds : wall-clock budget of the fit in seconds (default 150, so that a one-minute
        recording of 24 ROIs is fitted in under 3 minutes on 2 CPU cores); None = no budget.
    inference_shifts : inference runs with the window grid shifted by a fraction of a window,
        averaged (see :func:`infer_observations`); 1 = a single pass (fastest).
    estimate : calcium likelihood: which estimate becomes ``rates``: "network" (default: the
        autoencoder's population-informed rates), "deconvolution" (the ``events``: each ROI's
        samples deconvolved under the learned calcium model) or "auto" (the one that predicts
        held-out samples better; see :mod:`napari_sbtt.heldout` for what that can tell).
    compare_oasis : score the estimates and OASIS on held-out samples (needs oasis-deconv for
        OASIS); when OASIS predicts them better, the result says so and carries its estimate.
    model : overrides of :class:`napari_sbtt.SBTTConfig` fields (sizes, learning rate, ...).
    """

    factor: int = 1
    likelihood: str = "calcium"
    epochs: int | None = None
    seed: int = 0
    device: str = "auto"
    min_coverage: float = 0.5
    dff: bool = True
    neuropil: float | None = None
    window_s: float | None = None
    max_windows: int | None = None
    overlap_fraction: float = 0.25
    adapt: bool = False
    indicator: str | None = None
    max_seconds: float | None = 150.0
    inference_shifts: int = 4
    estimate: str = "network"
    compare_oasis: bool = True
    model: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every setting's type and range; raises ValueError naming the first bad one.

        Types are strict, as settings arrive from JSON: ``"false"`` is not a boolean, ``3.0`` is
        not an integer and ``"0.5"`` is not a number.
        """
        from .core.indicators import INDICATORS, get_indicator
        from .core.limits import MAX_FACTOR, MAX_WINDOW_S
        from .model.config import LIKELIHOODS, SBTTConfig

        _int_setting("factor", self.factor, 1, MAX_FACTOR)
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"run setting 'likelihood' must be one of {list(LIKELIHOODS)}, got {self.likelihood!r}")
        if self.epochs is not None:
            _int_setting("epochs", self.epochs, 1, 10**7)
        _int_setting("seed", self.seed, 0, 2**32 - 1)
        if not isinstance(self.device, str) or not (
                self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")):
            raise ValueError(f"run setting 'device' must be 'auto', 'cpu', 'cuda', 'cuda:<i>' or 'mps', "
                             f"got {self.device!r}")
        _number_setting("min_coverage", self.min_coverage, 0.0, 1.0, low_open=True)
        for name in ("dff", "adapt"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"run setting '{name}' must be true or false (a JSON boolean, not text), "
                                 f"got {getattr(self, name)!r}")
        if self.neuropil is not None:
            _number_setting("neuropil", self.neuropil, 0.0, 2.0)
        if self.window_s is not None:
            _number_setting("window_s", self.window_s, 0.0, MAX_WINDOW_S, low_open=True)
        if self.max_windows is not None:
            _int_setting("max_windows", self.max_windows, 1, 10**9)
        if self.estimate not in ESTIMATE_CHOICES:
            raise ValueError(f"run setting 'estimate' must be one of {list(ESTIMATE_CHOICES)}, got {self.estimate!r}")
        if not isinstance(self.compare_oasis, bool):
            raise ValueError("run setting 'compare_oasis' must be true or false (a JSON boolean, not text), "
                             f"got {self.compare_oasis!r}")
        _number_setting("overlap_fraction", self.overlap_fraction, 0.0, 1.0, high_open=True)
        if self.indicator is not None:
            if not isinstance(self.indicator, str):
                raise ValueError(f"run setting 'indicator' must be an indicator name such as 'GCaMP6f' (one of "
                                 f"{', '.join(INDICATORS)}), got {self.indicator!r}")
            get_indicator(self.indicator)
        if self.max_seconds is not None:
            _number_setting("max_seconds", self.max_seconds, 0.0, 1e9, low_open=True)
        _int_setting("inference_shifts", self.inference_shifts, 1, 64)
        if not isinstance(self.model, dict) or not all(isinstance(k, str) for k in self.model):
            raise ValueError(f"run setting 'model' must be a JSON object of model settings (SBTTConfig fields), "
                             f"got {self.model!r}")
        try:  # types and ranges of the model settings now, not after the recording was read
            SBTTConfig().replace(**{"bin_width": 1.0, **self.model})
        except (TypeError, ValueError) as e:
            raise ValueError(f"run setting 'model': {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        if not isinstance(d, dict):
            raise ValueError(f"run settings must be a JSON object (a dict), got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown run setting(s) {unknown}; known settings are {sorted(known)} "
                "(model sizes and learning rate go under 'model')"
            )
        return cls(**d)

    @classmethod
    def coerce(cls, config: "RunConfig | dict[str, Any] | None") -> "RunConfig":
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        if isinstance(config, dict):
            return cls.from_dict(config)
        raise ValueError(f"config must be a RunConfig, a dict or None, got {type(config).__name__}")


def _int_setting(name: str, v: Any, lo: int, hi: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"run setting '{name}' must be a whole number from {lo} to {hi}, got {v!r}")


def _number_setting(name: str, v: Any, lo: float, hi: float, *, low_open: bool = False,
                    high_open: bool = False) -> None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok:
        ok = (lo < v if low_open else lo <= v) and (v < hi if high_open else v <= hi)
    if not ok:
        lo_txt = f"{'above' if low_open else 'from'} {lo:g}"
        hi_txt = f"{'below' if high_open else 'to'} {hi:g}"
        raise ValueError(f"run setting '{name}' must be a number {lo_txt} {hi_txt}, got {v!r}")


ProgressCallback = Callable[[Any], Any]


def _wants_stop(answer: Any) -> bool:
    return answer is True or (isinstance(answer, str) and answer.lower() == "stop")


@dataclass
class SBTTResult:
    """Inferred activity of every ROI on the fine grid, with what produced it.

    Attributes
    ----------
    rates : float32 (T_fine, N) inferred activity in ``units``, every bin and ROI.
    times : float64 (T_fine,) bin centres in seconds.
    observations : float32 (T_fine, N) the samples the model saw (dF/F when ``dff``), NaN where
        the ROI was not observed.
    roi_ids : int (N,) the label of each column in the ROI labels image.
    grid : the fine time grid.
    units : units of ``rates``.
    metrics : summary numbers (observed share, held-out loss, fit quality per ROI, timings).
    config : the RunConfig as a dict, plus the scan pattern and the model config.
    model : the fitted or applied model (None after :func:`load_result` when none was saved);
        after a run with ``isolate=True`` a :class:`~napari_sbtt.isolated.ModelFile` (the
        checkpoint on disk; ``.load()`` gives the model).
    history : per-epoch training reports as dicts.
    stopped : True when training was stopped early and the best model so far was used.
    signal : float32 (T_fine, N) the model's expected observation (fluorescence for calcium).
    events : calcium likelihood: float32 (T_fine, N) each ROI's samples deconvolved under the
        learned calcium model (spike-like events, same units as ``rates``); else None.
    oasis_rates : float32 (T_fine, N) OASIS's estimate in the units of ``rates``, present when
        OASIS predicted the held-out samples better (``metrics["heldout"]``); else None.
    """

    rates: np.ndarray
    times: np.ndarray
    observations: np.ndarray
    roi_ids: np.ndarray
    grid: FineGrid
    units: str
    metrics: dict[str, Any]
    config: dict[str, Any]
    model: "SBTTModel | ModelFile | None" = None
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False
    signal: np.ndarray | None = None
    events: np.ndarray | None = None
    oasis_rates: np.ndarray | None = None

    @property
    def n_rois(self) -> int:
        return int(self.rates.shape[1])

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the result to a folder: result.json, arrays.npz and model.safetensors.

        The folder is assembled under a temporary name and renamed into place, so an
        interrupted save leaves nothing behind; an existing folder is only replaced
        with ``overwrite=True``, and only when it is a result folder itself
        (:func:`check_result_destination`). The folder and its files get the user's
        normal permissions (the umask), as any program's output.
        """
        dest = check_result_destination(directory, overwrite=overwrite)
        parent = dest.parent
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=parent))
        try:
            os.chmod(tmp, 0o777 & ~current_umask())
            arrays = {
                "rates": self.rates,
                "times": self.times,
                "observations": self.observations,
                "roi_ids": self.roi_ids,
            }
            if self.signal is not None:
                arrays["signal"] = self.signal
            if self.events is not None:
                arrays["events"] = self.events
            if self.oasis_rates is not None:
                arrays["oasis_rates"] = self.oasis_rates
            np.savez_compressed(tmp / "arrays.npz", **arrays)
            meta = {
                "format": RESULT_FORMAT,
                "format_version": RESULT_FORMAT_VERSION,
                "package_version": _version(),
                "grid": dataclasses.asdict(self.grid),
                "units": self.units,
                "metrics": self.metrics,
                "config": self.config,
                "history": self.history,
                "stopped": self.stopped,
                "has_model": self.model is not None,
            }
            (tmp / "result.json").write_text(json.dumps(meta, indent=1, default=_json_default))
            if self.model is not None:
                self.model.save(tmp / "model.safetensors")
            if dest.exists() or dest.is_symlink():
                check_result_destination(dest, overwrite=True)  # still a result folder of ours
                backup = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=parent))
                previous = backup / "previous"
                dest.rename(previous)
                try:
                    tmp.rename(dest)
                except BaseException:
                    previous.rename(dest)  # put the old result back; only then drop the backup folder
                    shutil.rmtree(backup, ignore_errors=True)
                    raise
                shutil.rmtree(backup, ignore_errors=True)
            else:
                tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    def export(
        self,
        path: str | os.PathLike,
        format: str | None = None,
        *,
        labels: Any = None,
        overwrite: bool = False,
        what: str = "rates",
        nwb_subject: Mapping[str, Any] | None = None,
        nwb_location: str | None = None,
    ) -> Path:
        """Write the result for other tools, the format chosen by the suffix (or ``format``).

        ``.npz`` (arrays + result_json), ``.h5``/``.hdf5`` (datasets, config/metrics JSON
        attributes), ``.csv`` (``time_s`` in seconds + one column per ROI of ``what``, NaN
        empty), ``.tif``/``.tiff`` (float32 (T_fine, Y, X) activity movie painted into the ROI
        labels) or ``.nwb`` (RoiResponseSeries ``processing/ophys/Fluorescence/Deconvolved``
        linked to the ROIs). ``labels``: (Y, X) labels image (array or .tif/.npy) for .tif/.nwb
        when the result did not come from :func:`napari_sbtt.recording.run_recording` on a file
        with ROI masks. ``nwb_subject``: NWB Subject fields for .nwb (``subject_id``,
        ``species``, ``sex``, ``age``); ``nwb_location``: the imaging plane's brain area (an
        Allen CCF term for a mouse). Atomic; an existing file is replaced only with
        ``overwrite=True``. See :func:`napari_sbtt.recording.export_result`.
        """
        from .recording import export_result

        return export_result(self, path, format, labels=labels, overwrite=overwrite, what=what,
                             nwb_subject=nwb_subject, nwb_location=nwb_location)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot store {type(o).__name__} in result.json")


def _version() -> str:
    from . import __version__

    return __version__


def check_result_destination(path: str | os.PathLike, *, overwrite: bool = False, probe: bool = False) -> Path:
    """Check that a result folder may be written at ``path``; returns it as a Path.

    An existing ``path`` is refused unless ``overwrite`` is True, and even then unless it is a
    result folder (:func:`is_result_dir`, not a symlink): a file, a symlink or any other folder
    is never replaced. The parent folder must exist; with ``probe`` it is also tried for writing
    (a temporary folder is made and removed), so a run can fail before its work, not after.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    ValueError
        ``overwrite`` is True but ``path`` is not a result folder.
    FileNotFoundError, NotADirectoryError, PermissionError
        The parent folder is missing, not a folder, or not writable.
    """
    dest = Path(os.fspath(path)).expanduser()
    if dest.exists() or dest.is_symlink():
        if not overwrite:
            raise OutputExistsError(
                f"{dest} already exists; choose another output folder, or replace it (only if it is a result "
                "folder) with overwrite=True (--overwrite on the command line)")
        kind = ("a symbolic link" if dest.is_symlink() else "a file" if not dest.is_dir()
                else None if is_result_dir(dest) else "a folder that is not a napari-sbtt result")
        if kind is not None:
            raise ValueError(
                f"{dest} is {kind}; only a result folder written by napari-sbtt is replaced, so nothing of "
                "yours is deleted - choose another output folder")
    parent = dest.parent
    if not parent.exists():
        raise FileNotFoundError(f"the folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise NotADirectoryError(f"{parent} is not a folder; choose an output folder inside a folder")
    if probe:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".probe", dir=parent))
        except OSError as e:
            raise PermissionError(f"cannot write in {parent} ({e.strerror or e}); choose an output folder you "
                                  "can write to") from None
    return dest


def is_result_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder written by :meth:`SBTTResult.save`."""
    p = Path(path)
    if not (p / "result.json").is_file() or not (p / "arrays.npz").is_file():
        return False
    try:
        meta = json.loads((p / "result.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == RESULT_FORMAT


def _check_result(p: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FineGrid:
    """The fine grid of a result folder after checking result.json's fields and the arrays' shapes
    (a folder from someone else may have been edited); raises ValueError naming the field."""
    def bad(field: str, want: str) -> ValueError:
        return ValueError(f"{p / 'result.json'}: field {field!r} must be {want}; the result folder is "
                          "damaged or was edited - run the fit again")

    grid = meta.get("grid")
    if not isinstance(grid, dict) or set(grid) != {"t0", "bin_width", "n_bins"}:
        raise bad("grid", "an object with t0, bin_width and n_bins")
    if not all(isinstance(grid[k], (int, float)) and not isinstance(grid[k], bool) and math.isfinite(grid[k])
               for k in grid) or not grid["bin_width"] > 0:
        raise bad("grid", "finite numbers with bin_width > 0")
    if not isinstance(grid["n_bins"], int) or isinstance(grid["n_bins"], bool) or grid["n_bins"] < 1:
        raise bad("grid.n_bins", "a whole number >= 1")
    for field, kind, name in (("units", str, "text"), ("metrics", dict, "an object"), ("config", dict, "an object"),
                              ("history", list, "a list"), ("stopped", bool, "true or false")):
        if field in meta or field in ("units", "metrics", "config"):
            if not isinstance(meta.get(field), kind):
                raise bad(field, name)
    missing = [k for k in ("rates", "times", "observations", "roi_ids") if k not in arrays]
    if missing:
        raise ValueError(f"{p / 'arrays.npz'} lacks the array {missing[0]!r}; the result folder is incomplete")
    rates, ids = arrays["rates"], arrays["roi_ids"]
    n_t = grid["n_bins"]
    shapes_ok = (rates.ndim == 2 and rates.shape[0] == n_t and ids.shape == (rates.shape[1],)
                 and np.issubdtype(ids.dtype, np.integer) and arrays["times"].shape == (n_t,)
                 and arrays["observations"].shape == rates.shape
                 and all(k not in arrays or arrays[k].shape == rates.shape
                         for k in ("signal", "events", "oasis_rates")))
    if not shapes_ok:
        raise ValueError(f"{p / 'arrays.npz'}: the arrays' shapes do not fit together or the grid of "
                         f"{n_t} bins (rates {rates.shape}, roi_ids {ids.shape}); the result folder is "
                         "damaged or was edited - run the fit again")
    return FineGrid(float(grid["t0"]), float(grid["bin_width"]), int(n_t))


def load_result(directory: str | os.PathLike, *, load_model: bool = True) -> SBTTResult:
    """Read a result folder written by :meth:`SBTTResult.save` (no pickle involved)."""
    p = Path(directory)
    if not is_result_dir(p):
        raise ValueError(
            f"{p} is not a napari-sbtt result folder (it needs result.json and arrays.npz "
            "written by SBTTResult.save)"
        )
    meta = json.loads((p / "result.json").read_text())
    from .core.readers.npy import load_npz

    arrays = load_npz(p / "arrays.npz")
    grid = _check_result(p, meta, arrays)
    model = None
    if load_model and meta.get("has_model") and (p / "model.safetensors").is_file():
        from .model import load_model as _load_model

        model = _load_model(p / "model.safetensors")
    return SBTTResult(
        rates=arrays["rates"],
        times=arrays["times"],
        observations=arrays["observations"],
        roi_ids=arrays["roi_ids"],
        grid=grid,
        units=meta["units"],
        metrics=meta["metrics"],
        config=meta["config"],
        model=model,
        history=meta.get("history", []),
        stopped=bool(meta.get("stopped", False)),
        signal=arrays.get("signal"),
        events=arrays.get("events"),
        oasis_rates=arrays.get("oasis_rates"),
    )


# --------------------------------------------------------------------------- pipeline
#: indicator whose decay starts the calcium model when RunConfig.indicator is None
DEFAULT_INDICATOR = "GCaMP6f"

#: SBTTConfig settings that ``run_on_stack`` uses for a fresh fit of a continuous recording
#: (under ``RunConfig.model``, which overrides them), chosen by benchmark 2 of issue 3
#: (benchmarks/linescan_vs_oasis.py, RESULTS.md "Synthetic line scans vs OASIS"):
#: a one-minute recording gives only ~60 training windows of 1 s, so small batches (several
#: optimiser steps per epoch) learn far faster than SBTTConfig's 64; the LFADS-style
#: controller (inferred inputs) lets the generator follow activity that its initial condition
#: alone cannot predict; one torch thread avoids spin-waiting on shared cores.
RUN_MODEL_DEFAULTS: dict[str, Any] = {
    "batch_size": 8,
    "controller_size": 32,
    "num_threads": 1,
    # the indicator's rise in the calcium kernel keeps the rates on the spikes (benchmarks/
    # RESULTS.md: +0.04 to +0.09 r on the 4x line scans, 3 of 4 cases); SBTTConfig keeps "ar" so
    # that checkpoints written before this field existed load unchanged
    "calcium_kernel": "double_exponential",
}


def model_config(cfg: RunConfig, bin_width: float, base: Any = None) -> Any:
    """The :class:`~napari_sbtt.model.SBTTConfig` a run with ``cfg`` fits on bins of ``bin_width``
    seconds: the run defaults, ``cfg.model``'s overrides, the epoch and time budget, the device
    and, for the calcium likelihood, the indicator's kinetics in seconds (``base``: adapt that
    model's config instead of starting from the defaults)."""
    from .model import SBTTConfig

    overrides = dict(cfg.model) if base is not None else {**RUN_MODEL_DEFAULTS, **cfg.model}
    if cfg.epochs is not None:
        overrides["max_epochs"] = int(cfg.epochs)
    if cfg.max_seconds is not None:
        overrides["max_seconds"] = float(cfg.max_seconds)
    overrides["device"] = cfg.device
    if cfg.likelihood == "calcium":
        overrides.setdefault("bin_width", bin_width)
        if "calcium_decay_seconds" not in overrides and (
                cfg.indicator is not None or (base is None and "calcium_decay" not in overrides)):
            from .core.indicators import get_indicator

            # without an indicator, start from GCaMP6f's measured decay (0.58 s) rather than
            # SBTTConfig's 10 bins, which would mean 0.17 s at a 59 Hz sweep rate
            name = cfg.indicator if cfg.indicator is not None else DEFAULT_INDICATOR
            overrides["calcium_decay_seconds"] = float(get_indicator(name).tau_decay)
            if "calcium_rise_seconds" not in overrides and "calcium_rise" not in overrides:
                overrides["calcium_rise_seconds"] = float(get_indicator(name).tau_rise)
    base = base if base is not None else SBTTConfig()
    return base.replace(**overrides) if overrides else base


_model_config = model_config


def run_window_s(cfg: RunConfig, bin_width: float) -> float:
    """The window length in seconds of a run: ``cfg.window_s`` or the automatic rule
    (:func:`napari_sbtt.core.windows.auto_window_s`) with the indicator's decay."""
    from .core.indicators import get_indicator
    from .core.windows import auto_window_s

    if cfg.window_s is not None:
        return float(cfg.window_s)
    name = cfg.indicator if cfg.indicator is not None else DEFAULT_INDICATOR
    return auto_window_s(bin_width, get_indicator(name).tau_decay if cfg.likelihood == "calcium" else None)


def infer_observations(
    model: "SBTTModel",
    observations: np.ndarray,
    *,
    window: int,
    overlap: int,
    output: str = "rates",
    shifts: int = 1,
) -> np.ndarray:
    """Apply a model window by window to a continuous recording and merge the windows back.

    observations: (T_fine, N) NaN-missing in the model's units -> (T_fine, N) float32.
    ``shifts`` > 1 repeats the inference with the window grid moved by ``k * window / shifts``
    bins (k = 0..shifts-1; the recording is padded in front with unobserved bins) and averages
    the runs, so that no bin is always near a window edge (measured: +0.006 to +0.017 median
    r on the synthetic line scans with 4-8 shifts, at 4-8x the inference time).
    """
    from .core.windows import make_windows, merge_windows

    shifts = max(1, int(shifts))
    n_t, n = observations.shape
    acc = np.zeros((n_t, n), dtype=np.float64)
    done: set[int] = set()
    for k in range(shifts):
        off = int(round(k * window / shifts)) % max(window, 1)
        if off in done:
            continue
        done.add(off)
        data = observations
        if off:
            data = np.concatenate([np.full((off, n), np.nan, dtype=observations.dtype), observations])
        wins = make_windows(data, window, overlap)
        est = model.predict(wins.values, output=output)
        acc += merge_windows(est, wins.starts, data.shape[0])[off:]
    return (acc / len(done)).astype(np.float32)


def _per_roi_fit(signal: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Pearson r between the model's expected observation and the samples, per ROI (N,)."""
    out = np.full(obs.shape[1], np.nan)
    for i in range(obs.shape[1]):
        m = np.isfinite(obs[:, i])
        if m.sum() > 2 and np.std(obs[m, i]) > 0 and np.std(signal[m, i]) > 0:
            out[i] = float(np.corrcoef(obs[m, i], signal[m, i])[0, 1])
    return out


def _reporter(progress: ProgressCallback | None) -> tuple[Callable[[Any], None], dict[str, bool]]:
    """Wrap the user's progress callback; the returned dict's "flag" turns True once it asks to stop."""
    stopped = {"flag": False}

    def report(r: Any) -> None:
        if progress is not None and _wants_stop(progress(r)):
            stopped["flag"] = True

    return report, stopped


def _extract_progress(report: Callable[[Any], None], stopped: dict[str, bool], stage: str
                      ) -> Callable[[int, int], None]:
    def extract_progress(done: int, total: int) -> None:
        report(StageReport(stage, int(done), int(total), "reading the recording"))
        if stopped["flag"]:
            raise RunStopped(f"stopped during {stage}; nothing was fitted")

    return extract_progress


def observations_for_stack(
    movie: Any,
    rois: np.ndarray,
    scan: ScanPattern | None = None,
    *,
    config: RunConfig | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    frame_period: float | None = None,
) -> Any:
    """The first half of :func:`run_on_stack`: the movie's ROI samples on the fine grid.

    Same arguments as :func:`run_on_stack` (``config`` gives factor, min_coverage, neuropil and
    dff). Returns :class:`~napari_sbtt.core.traces.Observations`; raises RunStopped when
    ``progress`` asks to stop.
    """
    from .core.traces import extract_observations

    cfg = RunConfig.coerce(config)
    report, stopped = _reporter(progress)
    return extract_observations(
        movie, rois, scan, factor=cfg.factor, min_coverage=cfg.min_coverage,
        neuropil=cfg.neuropil, dff=cfg.dff, frame_period=frame_period,
        progress=_extract_progress(report, stopped, "extract"),
    )


def observations_for_traces(
    traces: np.ndarray,
    roi_rows: Any,
    scan: ScanPattern | None = None,
    *,
    config: RunConfig | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    frame_period: float | None = None,
    n_rows: int | None = None,
    neuropil_traces: np.ndarray | None = None,
    roi_ids: Any = None,
) -> Any:
    """The first half of :func:`run_on_traces`: per-frame traces placed on the fine grid."""
    from .core.traces import observations_from_traces

    cfg = RunConfig.coerce(config)
    report, stopped = _reporter(progress)
    return observations_from_traces(
        traces, roi_rows, scan, factor=cfg.factor, frame_period=frame_period, n_rows=n_rows,
        roi_ids=roi_ids, min_coverage=cfg.min_coverage, neuropil=cfg.neuropil,
        neuropil_traces=neuropil_traces, dff=cfg.dff,
        progress=_extract_progress(report, stopped, "traces"),
    )


def run_on_stack(
    movie: Any,
    rois: np.ndarray,
    scan: ScanPattern | None = None,
    *,
    model: "SBTTModel | str | os.PathLike | None" = None,
    config: RunConfig | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    frame_period: float | None = None,
    isolate: bool = False,
) -> SBTTResult:
    """Infer every ROI's activity on the fine grid from a (partial-field) movie.

    Parameters
    ----------
    movie : (T, Y, X) array-like (numpy, memmap, zarr, dask), read in chunks; unacquired rows
        may be NaN.
    rois : (Y, X) int labels image, 0 = background, 1..N = ROI ids.
    scan : the scan pattern; None means a full raster (give ``frame_period`` in seconds), whose
        fine grid still uses each ROI's sub-frame row timing.
    model : an SBTTModel or the path of a saved checkpoint to apply (or adapt, with
        ``config.adapt``) instead of training a new one.
    config : RunConfig or dict of its fields.
    progress : callable receiving a StageReport during extraction and inference and an
        EpochReport after every training epoch; returning True (or "stop") stops. Stopping
        during training keeps the best model so far and still returns a result (``stopped``);
        stopping during extraction raises RunStopped.
    frame_period : seconds per frame, needed when ``scan`` is None.
    isolate : fit and infer in a child Python process (:mod:`napari_sbtt.isolated`): this
        process never imports torch, the numbers are the same, and ``result.model`` is a
        :class:`~napari_sbtt.isolated.ModelFile`. The napari widgets run this way.

    Returns
    -------
    SBTTResult
    """
    cfg = RunConfig.coerce(config)
    t0 = time.perf_counter()
    obs = observations_for_stack(movie, rois, scan, config=cfg, progress=progress,
                                 frame_period=frame_period)
    return run_on_observations(obs, model=model, config=cfg, progress=progress, scan=scan,
                               frame_period=frame_period, isolate=isolate,
                               seconds_extract=time.perf_counter() - t0)


def run_on_traces(
    traces: np.ndarray,
    roi_rows: Any,
    scan: ScanPattern | None = None,
    *,
    model: "SBTTModel | str | os.PathLike | None" = None,
    config: RunConfig | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    frame_period: float | None = None,
    n_rows: int | None = None,
    neuropil_traces: np.ndarray | None = None,
    roi_ids: Any = None,
    isolate: bool = False,
) -> SBTTResult:
    """As :func:`run_on_stack`, for per-frame ROI traces without a movie (e.g. suite2p F.npy).

    traces: (T, N) per-frame values, NaN where an ROI was not acquired; roi_rows: each ROI's
    row (or list of rows), which gives its sub-frame acquisition time from ``scan`` (or from a
    full raster of ``n_rows`` rows with ``frame_period`` seconds per frame).
    """
    cfg = RunConfig.coerce(config)
    t0 = time.perf_counter()
    obs = observations_for_traces(
        traces, roi_rows, scan, config=cfg, progress=progress, frame_period=frame_period,
        n_rows=n_rows, neuropil_traces=neuropil_traces, roi_ids=roi_ids)
    return run_on_observations(obs, model=model, config=cfg, progress=progress, scan=scan,
                               frame_period=frame_period, isolate=isolate,
                               seconds_extract=time.perf_counter() - t0)


def run_on_observations(
    observations: Any,
    *,
    model: "SBTTModel | str | os.PathLike | None" = None,
    config: RunConfig | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    scan: ScanPattern | None = None,
    frame_period: float | None = None,
    isolate: bool = False,
    seconds_extract: float = 0.0,
) -> SBTTResult:
    """Fit (or apply) a model to :class:`~napari_sbtt.core.traces.Observations` already on the fine grid.

    ``scan`` and ``frame_period`` are only recorded in the result's config; ``isolate`` as in
    :func:`run_on_stack`; ``seconds_extract`` is stored in ``metrics``.
    """
    cfg = RunConfig.coerce(config)
    if isolate:
        from .isolated import run_isolated

        return run_isolated(observations, scan=scan, frame_period=frame_period, model=model,
                            config=cfg, progress=progress, seconds_extract=seconds_extract)
    report, stopped = _reporter(progress)
    return _fit_and_infer(observations, scan, frame_period, model, cfg, report, stopped,
                          seconds_extract)


def _fit_and_infer(
    obs: Any,
    scan: ScanPattern | None,
    frame_period: float | None,
    model: "SBTTModel | str | os.PathLike | None",
    cfg: RunConfig,
    report: Callable[[Any], None],
    stopped: dict[str, bool],
    t_extract: float,
) -> SBTTResult:
    """Windows -> fit / adapt / apply -> inference -> merged result."""
    from .core.windows import choose_window, make_windows
    from .model import SBTTModel, fit_trials, load_model

    values = obs.values
    window, overlap = choose_window(
        obs.grid.bin_width, window_s=run_window_s(cfg, obs.grid.bin_width),
        overlap_fraction=cfg.overlap_fraction, n_time=values.shape[0],
    )
    if model is not None and not isinstance(model, SBTTModel):
        model = load_model(model, device=cfg.device)
    if model is not None:
        # a given model brings its likelihood, window and units: the recording is prepared the
        # way the model was trained
        cfg = dataclasses.replace(cfg, likelihood=model.likelihood)
        trained = model.metadata or {}
        if "window_bins" in trained:
            window = min(int(trained["window_bins"]), values.shape[0])
            overlap = min(int(trained.get("overlap_bins", 0)), window - 1)
        if trained.get("units") not in (None, obs.units):
            from .core.errors import OptionError

            raise OptionError(
                f"the model was trained on observations in {trained['units']!r} but these are in "
                f"{obs.units!r}; set {{dff_neuropil}} as they were for training",
                dff_neuropil="dff and neuropil in the run config")
        check_model_rois(model.n_neurons, values.shape[1], adapt=cfg.adapt)

    metadata = {
        "units": obs.units,
        "bin_width_s": obs.grid.bin_width,
        "n_rois": int(values.shape[1]),
        "roi_ids": [int(i) for i in obs.roi_ids],
        "window_bins": window,
        "overlap_bins": overlap,
    }

    def epoch_progress(r: Any) -> bool:
        report(r)
        return stopped["flag"]

    t_fit = time.perf_counter()
    if model is None or cfg.adapt:
        wins = make_windows(values, window, overlap)
        if cfg.max_windows is not None and wins.values.shape[0] > cfg.max_windows:
            pick = np.random.default_rng(cfg.seed).choice(wins.values.shape[0], cfg.max_windows,
                                                          replace=False)
            pick = np.sort(pick)
            wins = wins._replace(values=wins.values[pick], starts=wins.starts[pick])
        if model is None:
            model = fit_trials(
                wins.values, None, likelihood=cfg.likelihood,
                config=_model_config(cfg, obs.grid.bin_width), progress=epoch_progress,
                seed=cfg.seed, metadata=metadata,
            )
        else:
            model = model.adapt(
                wins.values, None, config=_model_config(cfg, obs.grid.bin_width, base=model.config),
                progress=epoch_progress, seed=cfg.seed, metadata=metadata,
            )
    t_fit = time.perf_counter() - t_fit

    report(StageReport("infer", 0, 1, "inferring activity"))
    t_inf = time.perf_counter()
    shifts = cfg.inference_shifts
    rates = infer_observations(model, values, window=window, overlap=overlap, output="rates",
                               shifts=shifts)
    signal = infer_observations(model, values, window=window, overlap=overlap, output="signal",
                                shifts=shifts)
    t_inf = time.perf_counter() - t_inf
    report(StageReport("infer", 1, 1, "done"))
    heldout, events, oasis_est = None, None, None
    if model.likelihood == "calcium":
        report(StageReport("validate", 0, 1, "deconvolving events; scoring on held-out samples"))
        heldout, rates, signal, events, oasis_est = _choose_estimate(model, obs, values, window,
                                                                     overlap, cfg, rates, signal)
        report(StageReport("validate", 1, 1, heldout.summary() if heldout is not None else "done"))

    observed = np.isfinite(values)
    fit_r = _per_roi_fit(signal, values)
    history = [h.to_dict() if hasattr(h, "to_dict") else dict(h) for h in getattr(model, "history", [])]
    metrics: dict[str, Any] = {
        "n_rois": int(values.shape[1]),
        "n_bins": int(values.shape[0]),
        "bin_width_s": float(obs.grid.bin_width),
        "observed_share": float(observed.mean()),
        "observed_share_per_roi": observed.mean(axis=0).tolist(),
        "fit_r_per_roi": fit_r.tolist(),
        "fit_r_median": float(np.nanmedian(fit_r)) if np.isfinite(fit_r).any() else None,
        "best_valid_loss": _finite_or_none(getattr(model, "best_valid_loss", None)),
        "best_epoch": getattr(model, "best_epoch", None),
        "epochs_run": len(history),
        "seconds_extract": t_extract,
        "seconds_fit": t_fit,
        "seconds_infer": t_inf,
        "device": str(getattr(model, "device", "cpu")),
        "estimate": (heldout.estimate if heldout is not None else cfg.estimate)
        if model.likelihood == "calcium" else "network",
        "heldout": heldout.to_dict() if heldout is not None else None,
    }
    run_cfg = cfg.to_dict()
    run_cfg["scan"] = scan.to_dict() if scan is not None else None
    run_cfg["frame_period_s"] = frame_period
    run_cfg["model_config"] = model.config.to_dict()
    run_cfg["observations"] = dict(getattr(obs, "params", {}) or {})
    return SBTTResult(
        rates=rates,
        times=obs.times,
        observations=values.astype(np.float32),
        roi_ids=np.asarray(obs.roi_ids),
        grid=obs.grid,
        units=RATE_UNITS.get(model.likelihood, "a.u."),
        metrics=metrics,
        config=run_cfg,
        model=model,
        history=history,
        stopped=stopped["flag"],
        signal=signal,
        events=events,
        oasis_rates=oasis_est,
    )


def check_model_rois(n_model: int, n_rois: int, *, adapt: bool, source: str = "the model") -> None:
    """Raise an OptionError unless a model of ``n_model`` ROIs can be applied to ``n_rois`` ROIs.

    With ``adapt`` (fine-tune on this recording) any number fits: the read-in and readout are
    re-learned.
    """
    from .core.errors import OptionError

    if not adapt and int(n_model) != int(n_rois):
        raise OptionError(
            f"{source} was trained on {int(n_model)} ROIs but this recording has {int(n_rois)}; fine-tune it "
            "on these ROIs with {adapt} (the learned dynamics are kept), or train a new model",
            adapt="adapt=True in the run config")


def _choose_estimate(model: "SBTTModel", obs: Any, values: np.ndarray, window: int, overlap: int,
                     cfg: RunConfig, rates: np.ndarray, signal: np.ndarray) -> tuple[Any, ...]:
    """The calcium model's events (deconvolution), the held-out comparison of the estimates and
    OASIS, and the rates ``cfg.estimate`` asks for: (comparison or None, rates, signal, events,
    OASIS's rates in the result's units or None)."""
    from functools import partial

    from .heldout import compare_heldout, deconvolve_with_model

    events, fitted = deconvolve_with_model(model, values)
    comparison = None
    if cfg.compare_oasis or cfg.estimate == "auto":
        net_signal = partial(infer_observations, model, window=window, overlap=overlap, output="signal")
        comparison = compare_heldout(model, values, obs.times, network_signal=net_signal,
                                     estimate=cfg.estimate, seed=cfg.seed, oasis=cfg.compare_oasis)
    chosen = comparison.estimate if comparison is not None else cfg.estimate
    if chosen == "deconvolution":
        rates, signal = events.astype(np.float32), fitted.astype(np.float32)
    oasis_est = None
    if comparison is not None and comparison.verdict == "OASIS better":
        from .core.baselines import oasis_rates

        # OASIS's events per second -> per bin, the units of ``rates``
        oasis_est = (oasis_rates(values, obs.times) * obs.grid.bin_width).astype(np.float32)
    return comparison, rates, signal, events.astype(np.float32), oasis_est


def _finite_or_none(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None
