"""The run configuration: every setting of a run, its default, help, units and bounds, once.

:class:`RunConfig` is what :func:`napari_sbtt.run_on_stack`, the command line (``napari-sbtt
run``) and the napari Train widget fill in. Each field carries a :class:`Setting` in its
``dataclasses.field(metadata=...)``: the help text, the units, the bounds or choices, the
command-line flag and whether the widget shows it. Validation, the CLI flags
(:func:`napari_sbtt.cli`) and the widget's fields are generated from these, so a default is
written once, here, and the three front ends start from the same values.

:func:`resolve` turns a RunConfig into the model's :class:`~napari_sbtt.model.config.SBTTConfig`
for a recording with bins of ``bin_width`` seconds: the run's model defaults (chosen by the
benchmarks), the layer sizes of ``size``, ``model``'s overrides, the epoch and time budgets,
the device and threads, and for the calcium likelihood the indicator's kinetics and the onset
delay in seconds.

Torch-free: the plugin and the CLI import it to build forms and parse options.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .core.indicators import INDICATORS, get_indicator
from .core.limits import MAX_FACTOR, MAX_ONSET_DELAY_S, MAX_WINDOW_S
from .heldout import ESTIMATES, MIN_POPULATION_ROIS
from .model.config import SBTTConfig

__all__ = [
    "RunConfig",
    "Setting",
    "SettingError",
    "resolve",
    "batch_size_for",
    "start_decay_s",
    "decay_estimate_wanted",
    "learns_kinetics",
    "window_seconds",
    "settings",
    "SIZES",
    "RUN_MODEL_DEFAULTS",
    "TRACES_MODEL_DEFAULTS",
    "DEFAULT_INDICATOR",
    "ESTIMATE_CHOICES",
    "LIKELIHOOD_CHOICES",
    "DEVICE_CHOICES",
]

#: indicator whose kinetics start the calcium model when RunConfig.indicator is None
DEFAULT_INDICATOR = "GCaMP6f"

#: what RunConfig.estimate may say (see napari_sbtt.heldout): "auto", then the estimate it returns
#: for a population ("combined"), then the rest of heldout.ESTIMATES
ESTIMATE_CHOICES = ("auto", "combined", *(e for e in ESTIMATES if e != "combined"))

#: likelihoods in the order the front ends offer them (the default first)
LIKELIHOOD_CHOICES = ("calcium", "gaussian", "poisson", "zig")

#: devices offered by the front ends ("cuda:<i>" and "mps" are accepted too)
DEVICE_CHOICES = ("auto", "cpu", "cuda")

#: model size presets: SBTTConfig layer sizes (units) of each ``RunConfig.size``; "medium" is
#: SBTTConfig's own. Only layer sizes: the optimiser's settings are the same for every size.
SIZES: dict[str, dict[str, int]] = {
    "small": {"readin_size": 16, "encoder_size": 16, "generator_size": 16, "factor_size": 4,
              "ic_size": 16},
    "medium": {},
    "large": {"readin_size": 128, "encoder_size": 128, "generator_size": 128, "factor_size": 16,
              "ic_size": 128},
}

#: SBTTConfig settings of a fresh fit of a continuous recording (``RunConfig.model`` overrides
#: them), chosen by benchmark 2 of issue 3 (benchmarks/linescan_vs_oasis.py, RESULTS.md
#: "Synthetic line scans vs OASIS"): a one-minute recording gives only ~60 training windows of
#: 1 s, so small batches (several optimiser steps per epoch) learn far faster than SBTTConfig's
#: 64; the LFADS-style controller (inferred inputs) lets the generator follow activity that its
#: initial condition alone cannot predict; one torch thread avoids spin-waiting on shared cores.
#: The calcium kernel's time constants stay where they start (``kinetics_lr_scale`` 0: the named
#: preset checked against the recording's estimate, or the estimate): learned, the decay drifted
#: short on real recordings while the network's rates made up for it (ground-truth tune set
#: DS09, nothing named, every 2nd / 4th frame: 0.57 -> 0.20 s and 0.53 -> 0.32 s against a true
#: 0.58 s, r 0.686 / 0.669; kept: 0.797 / 0.759; DS32 unchanged within 0.005; benchmarks/RESULTS.md,
#: "Kinetics kept where they start").
#: Two networks (``ensemble_size`` 0, auto: one per physical core, at most two, one on a GPU) were
#: chosen on the family's seed-1 tune half (RESULTS.md, "Issue 14, tenth session": returned r
#: median +0.021 named / +0.017 nothing named over one network, 16 of 20 runs gain, worst -0.017)
#: once the second network trained in a process of its own (eleventh session: no longer 1.5x the
#: wall time of one).
#: Each window's leftover calcium is fitted per ROI to the samples the encoder saw
#: (``calcium_initial_fit``), not read out of the low-dimensional factors: read out, the network
#: followed each ROI's slow private fluctuations (its spikes' own, integrated by a slow decay) and
#: lost the population's rhythm (a limit cycle under GCaMP6s: network r 0.18 -> 0.96); chosen on
#: the family's seed-9 tune half (RESULTS.md, "Issue 14, fourteenth session"); the same for
#: :func:`napari_sbtt.deconvolve_traces`, chosen on the ground-truth tune sets (DS09 / DS32 at
#: every 1st, 2nd and 4th frame: level on five, +0.004 r on one; "Issue 14, fifteenth session").
RUN_MODEL_DEFAULTS: dict[str, Any] = {
    "batch_size": 8,
    "controller_size": 32,
    "num_threads": 1,
    "kinetics_lr_scale": 0.0,
    "ensemble_size": 0,
    "calcium_initial_fit": True,
}

#: what :func:`napari_sbtt.deconvolve_traces` changes in :data:`RUN_MODEL_DEFAULTS` (``RunConfig.model``
#: overrides it): one network. It returns the traces' events (the deconvolution under the learned
#: observation model) by default, and a second network left those numbers level on the
#: ground-truth tune sets (DS09 / DS32, every 2nd and 4th frame: within 0.005 r; RESULTS.md,
#: "Issue 14, tenth session") while taking the second core.
TRACES_MODEL_DEFAULTS: dict[str, Any] = {
    "ensemble_size": 1,
}

#: bounds of the batch-size rule (:func:`batch_size_for`): windows per optimiser step
MIN_BATCH, MAX_BATCH = 8, 64


def batch_size_for(n_windows: int) -> int:
    """Windows per optimiser step for a fit on ``n_windows`` training windows.

    About 8 optimiser steps per epoch, clipped to [8, 64]: a one-minute recording (~60 windows
    of 1 s) keeps the batches of 8 that benchmark 2 chose, and a 30-minute recording takes
    batches of 64, so an epoch costs ~27 steps rather than ~220 and early stopping on the
    held-out samples sees an epoch in seconds rather than minutes.
    """
    return int(min(MAX_BATCH, max(MIN_BATCH, int(n_windows) // 8)))


class SettingError(ValueError):
    """A run setting with a bad value; the message names the setting and what it must be.

    Attributes
    ----------
    name : the RunConfig field.
    value : the value given.
    requirement : what the value must be ("a whole number from 1 to 1024"), in the field's units.
    """

    def __init__(self, name: str, value: Any, requirement: str, *, setting: "Setting | None" = None) -> None:
        self.name, self.value, self.requirement, self.setting = name, value, requirement, setting
        super().__init__(f"run setting '{name}' must be {requirement}, got {value!r}")

    def message_for(self, option: str) -> str:
        """The message naming the setting as ``option`` (a command-line flag, a widget label), with
        the value and bounds in the units that option shows (milliseconds for ``--onset-delay-ms``)."""
        s = self.setting
        if s is None or s.shown_scale == 1.0 or not isinstance(self.value, (int, float)):
            return f"{option} must be {self.requirement}, got {self.value!r}"
        # the bounds in the option's units; a rule of its own (not the bounds) keeps its words
        rule = s.requirement(scale=s.shown_scale) if self.requirement == s.requirement() else self.requirement
        return f"{option} must be {rule}, got {s.to_shown(self.value):g}"


@dataclass(frozen=True)
class Setting:
    """What a RunConfig field is: help, units, bounds or choices, and how the front ends show it.

    Attributes
    ----------
    help : one line for ``--help``, tooltips and the docs.
    kind : "int", "number", "bool", "choice" or "object" (a JSON object, ``model``).
    low, high : bounds of numbers (None: unbounded on that side).
    low_open, high_open : the bound itself is excluded.
    choices : the allowed values of a "choice".
    optional : None is allowed; ``none_label`` says what it means ("no budget").
    units : units of the stored value ("s", "Hz"...), "" when it has none.
    flag : the command-line flag (``--epochs``), None when only ``--config`` sets it.
    shown_units, shown_scale : units and scale of the value on the command line and in the
        widget (``onset_delay_s`` is shown in ms: scale 1000); the conversion happens only here.
    step : the step of the widget's spin box, in the shown units.
    widget : label of the field in the Train widget, None when the widget does not show it.
    check : extra check of a value (device names, indicator names, the model overrides); raises
        SettingError.
    """

    help: str
    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    optional: bool = False
    none_label: str = ""
    units: str = ""
    flag: str | None = None
    shown_units: str = ""
    shown_scale: float = 1.0
    step: float = 1.0
    widget: str | None = None
    check: Callable[[str, Any], None] | None = None

    def to_shown(self, value: Any) -> Any:
        """The value as the command line and the widget show it (seconds -> ms for a scale of 1000)."""
        if self.shown_scale == 1.0 or value is None or isinstance(value, bool):
            return value
        return value * self.shown_scale

    def from_shown(self, value: Any) -> Any:
        """Inverse of :meth:`to_shown`: a value typed on the command line or in the widget."""
        if self.shown_scale == 1.0 or value is None or isinstance(value, bool):
            return value
        return value / self.shown_scale

    def requirement(self, *, scale: float = 1.0) -> str:
        """What a value must be, in words (bounds multiplied by ``scale``)."""
        if self.kind == "int":
            return f"a whole number from {self.low:g} to {self.high:g}"
        if self.kind == "number":
            units = f" {self.shown_units}" if scale != 1.0 and self.shown_units else ""
            lo = f"{'above' if self.low_open else 'from'} {self.low * scale:g}"
            hi = f"{'below' if self.high_open else 'to'} {self.high * scale:g}"
            return f"a number {lo} {hi}{units}"
        if self.kind == "bool":
            return "true or false (a JSON boolean, not text)"
        if self.kind == "choice":
            return f"one of {list(self.choices)}"
        return "a JSON object"

    def validate(self, name: str, value: Any) -> None:
        """Raise SettingError unless ``value`` is allowed. Types are strict, as settings arrive
        from JSON: ``"false"`` is not a boolean, ``3.0`` is not a whole number, ``"0.5"`` is not a
        number."""
        if value is None and self.optional:
            return
        if self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high
        elif self.kind == "number":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if ok:
                ok = ((self.low < value if self.low_open else self.low <= value)
                      and (value < self.high if self.high_open else value <= self.high))
        elif self.kind == "bool":
            ok = isinstance(value, bool)
        elif self.kind == "choice":
            ok = self.check is not None or (isinstance(value, str) and value in self.choices)
        else:
            ok = True
        if not ok:
            raise SettingError(name, value, self.requirement(), setting=self)
        if self.check is not None:
            self.check(name, value)


def _check_device(name: str, value: Any) -> None:
    if not isinstance(value, str) or not (value in ("auto", "cpu", "cuda", "mps") or value.startswith("cuda:")):
        raise SettingError(name, value, "'auto', 'cpu', 'cuda', 'cuda:<i>' or 'mps'")


def _check_indicator(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise SettingError(name, value, f"an indicator name such as 'GCaMP6f' (one of {', '.join(INDICATORS)})")
    get_indicator(value)  # its error names the known indicators


def _check_model(name: str, value: Any) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise SettingError(name, value, "a JSON object of model settings (SBTTConfig fields)")
    try:  # types and ranges of the model settings now, not after the recording was read
        SBTTConfig().replace(**{"bin_width": 1.0, **value})
    except (TypeError, ValueError) as e:
        raise ValueError(f"run setting 'model': {e}") from None


def _setting(default: Any, setting: Setting) -> Any:
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"setting": setting})
    return field(default=default, metadata={"setting": setting})


@dataclass
class RunConfig:
    """Settings of a run (:func:`napari_sbtt.run_on_stack` and friends, ``napari-sbtt run``, the
    Train widget); JSON round trip via ``to_dict`` / ``from_dict``.

    Each field's :class:`Setting` (``RunConfig.setting(name)``) holds its help, units and bounds;
    the table of all of them is :func:`settings`. ``model`` holds SBTTConfig overrides for what
    RunConfig has no field of its own; where it has one (``epochs`` is ``max_epochs``,
    ``max_seconds``, ``device``, ``threads`` is ``num_threads``), the RunConfig field wins.
    """

    likelihood: str = _setting("calcium", Setting(
        "observation model: calcium (deconvolves fluorescence), gaussian (denoises dF/F), poisson "
        "(counts) or zig (deconvolved events)", "choice", choices=LIKELIHOOD_CHOICES,
        flag="--likelihood", widget="likelihood"))
    indicator: str | None = _setting(None, Setting(
        "calcium indicator preset: sets the calcium kernel's rise and decay (the decay checked "
        "against the recording's, see decay_from_data), kept there while the network learns "
        f"(None: the decay estimated from the recording, see decay_from_data, and {DEFAULT_INDICATOR}'s "
        f"{get_indicator(DEFAULT_INDICATOR).tau_rise * 1e3:.0f} ms rise, which no recording at "
        "30-160 Hz pins down: name a faster indicator such as "
        "GCaMP8m, or a fit of it loses up to 0.14 r, benchmarks/RESULTS.md)", "choice", choices=tuple(INDICATORS), optional=True,
        none_label="none named (decay from the recording)", check=_check_indicator, flag="--indicator",
        widget="indicator"))
    onset_delay_s: float = _setting(0.0, Setting(
        "calcium kernel onset delay: time from a spike to the start of its fluorescence (about 20 ms "
        "for GCaMP6f in the ground truth of benchmarks/RESULTS.md); calcium likelihood only",
        "number", low=0.0, high=MAX_ONSET_DELAY_S, units="s", flag="--onset-delay-ms",
        shown_units="ms", shown_scale=1e3, widget="onset delay (ms)"))
    size: str = _setting("medium", Setting(
        "model size preset (layer sizes only): small (16 units), medium (64) or large (128)",
        "choice", choices=tuple(SIZES), flag="--size", widget="model size"))
    epochs: int | None = _setting(None, Setting(
        "maximum training epochs (None: the model settings' max_epochs, 400 for a new fit)", "int",
        low=1, high=10**7, optional=True, none_label="400", flag="--epochs", widget="epochs"))
    max_seconds: float | None = _setting(600.0, Setting(
        "wall-clock cap of the fit in seconds; fits end earlier when the held-out samples stop "
        "improving (early stopping), so this is a cap, not the usual length (a one-minute recording of "
        "24 ROIs stops in under a minute on 2 quiet CPU cores, a few on busy ones); None: no cap, the result no longer "
        "depends on the machine's speed", "number", low=0.0, high=1e9, low_open=True, optional=True,
        none_label="no budget", units="s", step=10.0, flag="--max-seconds", widget="time budget (s)"))
    seed: int = _setting(0, Setting("random seed of the fit", "int", low=0, high=2**32 - 1, flag="--seed",
                                     widget="seed"))
    factor: int = _setting(1, Setting(
        "fine-grid bins per sweep (bin width = frame period / factor; super-resolution factor)", "int",
        low=1, high=MAX_FACTOR, flag="--factor", widget="bins per frame"))
    device: str = _setting("auto", Setting(
        "where to train: auto (CUDA when present), cpu, cuda, cuda:<i> or mps", "choice",
        choices=DEVICE_CHOICES, check=_check_device, flag="--device", widget="device"))
    threads: int | None = _setting(None, Setting(
        "torch CPU threads of the fit (0: all physical cores; None: 1 for a new fit, as one thread "
        "avoids spin-waiting on shared cores, and an applied or adapted model's own setting)", "int",
        low=0, high=1024, optional=True, none_label="1", flag="--threads", widget="CPU threads"))
    min_coverage: float = _setting(0.5, Setting(
        "share of an ROI's pixels that a sweep must acquire for the ROI to count as observed", "number",
        low=0.0, high=1.0, low_open=True))
    decay_from_data: bool = _setting(True, Setting(
        "estimate the calcium decay from the recording's own samples (OASIS's AR(1) estimate per "
        "ROI, median, bias-corrected: core.kinetics): without an indicator the kernel's decay "
        f"starts there rather than at {DEFAULT_INDICATOR}'s; a named indicator's decay is moved "
        "toward it when the estimate rules the preset out (core.kinetics.refine_decay); kept there "
        "while the network learns, either way", "bool"))
    decay_heldout_check: bool = _setting(True, Setting(
        "without a named indicator, lengthen the recording's decay estimate (decay_from_data) toward "
        "the decay whose kernel best predicts held-out samples, where that is longer (their geometric "
        "mean: core.kinetics.lengthened_decay), since the AR(1) estimate runs short under slow "
        "indicators; estimates under 0.2 s (fast indicators: core.kinetics.LENGTHEN_FROM_S) are kept; "
        "costs six sparse deconvolutions of at most 32 ROIs x 180 s. On by default since the family's "
        "seed-8 tune half (returned r +0.035 on average over the 9 cells it moved; benchmarks/RESULTS.md)", "bool"))
    dff: bool = _setting(True, Setting(
        "convert each ROI's samples to dF/F with a running-percentile F0 before fitting", "bool"))
    neuropil: float | None = _setting(None, Setting(
        "neuropil coefficient (e.g. 0.7) to subtract an annulus signal (traces: the file's neuropil "
        "traces); None: no neuropil correction", "number", low=0.0, high=2.0, optional=True))
    window_s: float | None = _setting(None, Setting(
        "window length for chopping the recording into training windows (None: max(1 s, 16 bins), "
        "and at least 2 x the calcium decay when the model learns the kernel's kinetics: "
        "core.windows.auto_window_s)", "number", low=0.0,
        high=MAX_WINDOW_S, low_open=True, optional=True, units="s"))
    max_windows: int | None = _setting(None, Setting(
        "train on at most this many windows (a seeded random subset; None: all)", "int", low=1,
        high=10**9, optional=True))
    overlap_fraction: float = _setting(0.25, Setting(
        "share of each window that overlaps the next", "number", low=0.0, high=1.0, high_open=True))
    adapt: bool = _setting(False, Setting(
        "with a given model, fine-tune it on this recording (pretrain-then-adapt) instead of applying "
        "it as it is", "bool", widget="adapt to these ROIs"))
    inference_shifts: int = _setting(4, Setting(
        "inference runs with the window grid shifted by a fraction of a window, averaged "
        "(pipeline.infer_observations); 1 = a single pass (fastest)", "int", low=1, high=64))
    estimate: str = _setting("auto", Setting(
        "calcium likelihood: which estimate becomes the rates: network (the autoencoder's "
        "population-informed rates), deconvolution (the events: each ROI's samples deconvolved under "
        "the learned calcium model), combined (3/4 network, 1/4 events), events_combined (1/4 "
        "network, 3/4 events) or auto (combined when the network fills held-out gaps better than "
        "the events, the events when they fill them better, and where the test cannot tell, "
        f"combined for {MIN_POPULATION_ROIS} ROIs or more, events_combined for fewer and the events "
        "for a single ROI; "
        "napari_sbtt.heldout)", "choice",
        choices=ESTIMATE_CHOICES))
    compare_oasis: bool = _setting(True, Setting(
        "score the estimates and OASIS on held-out samples and gaps (needs oasis-deconv for OASIS); "
        "when SBTT does not predict them better than OASIS, the result says so and carries OASIS's estimate",
        "bool"))
    model: dict[str, Any] = _setting({}, Setting(
        "overrides of SBTTConfig fields (learning rate, layer sizes, calcium kernel...)", "object",
        check=_check_model))

    def __post_init__(self) -> None:
        self.validate()

    @staticmethod
    def setting(name: str) -> Setting:
        """The :class:`Setting` of field ``name``."""
        return _SETTINGS[name]

    def validate(self) -> None:
        """Check every setting's type and range; raises SettingError (a ValueError) naming the
        first bad one."""
        for name, s in _SETTINGS.items():
            s.validate(name, getattr(self, name))
        if self.onset_delay_s > 0 and self.likelihood != "calcium":
            raise SettingError("onset_delay_s", self.onset_delay_s,
                               "0 unless the likelihood is 'calcium' (the delay shifts the calcium kernel)",
                               setting=_SETTINGS["onset_delay_s"])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        if not isinstance(d, dict):
            raise ValueError(f"run settings must be a JSON object (a dict), got {type(d).__name__}")
        unknown = sorted(set(d) - set(_SETTINGS))
        if unknown:
            raise ValueError(
                f"unknown run setting(s) {unknown}; known settings are {sorted(_SETTINGS)} "
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

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with some settings changed (validated)."""
        return dataclasses.replace(self, **changes)


#: field name -> Setting, in field order
_SETTINGS: dict[str, Setting] = {f.name: f.metadata["setting"] for f in dataclasses.fields(RunConfig)}


def settings() -> Iterator[tuple[str, Setting, Any]]:
    """(name, Setting, default) of every RunConfig field, in field order."""
    defaults = RunConfig()
    for name, s in _SETTINGS.items():
        yield name, s, getattr(defaults, name)


def fit_limits(cfg: RunConfig) -> tuple[int, float | None, int]:
    """(max_epochs, max_seconds cap or None, early-stopping patience in epochs) of a new fit with
    ``cfg``, the model settings of ``cfg.model`` included (what :func:`resolve` gives)."""
    model = resolve(cfg, bin_width=0.01)  # the limits do not depend on the bin width
    return int(model.max_epochs), model.max_seconds, int(model.patience)


def indicator_name(cfg: RunConfig) -> str:
    """The indicator whose kinetics a run with ``cfg`` starts from."""
    return cfg.indicator if cfg.indicator is not None else DEFAULT_INDICATOR


def decay_estimate_wanted(cfg: RunConfig) -> bool:
    """Whether a new fit with ``cfg`` estimates the recording's calcium decay to start from
    (:func:`start_decay_s`): calcium likelihood, ``decay_from_data`` on, and ``cfg.model`` not
    setting the decay itself."""
    return (cfg.likelihood == "calcium" and cfg.decay_from_data
            and "calcium_decay_seconds" not in cfg.model and "calcium_decay" not in cfg.model)


def start_decay_s(cfg: RunConfig, decay_s: float | None = None) -> float:
    """The calcium decay time in seconds a new fit with ``cfg`` starts from, given ``decay_s``,
    the recording's estimate (:func:`napari_sbtt.core.kinetics.estimate_decay_time`) or None:
    with no indicator named, the estimate (the default indicator's decay without one); with one
    named, its preset refined by the estimate (:func:`napari_sbtt.core.kinetics.refine_decay`:
    kept unless the estimate rules it out)."""
    from .core.kinetics import refine_decay

    preset = float(get_indicator(indicator_name(cfg)).tau_decay)
    if decay_s is None:
        return preset
    return float(decay_s) if cfg.indicator is None else refine_decay(preset, decay_s)


def window_seconds(cfg: RunConfig, bin_width: float, decay_s: float | None = None) -> float:
    """The window length in seconds of a run: ``cfg.window_s`` or the automatic rule
    (:func:`napari_sbtt.core.windows.auto_window_s`): 1 s (at least 16 bins), two decays of the
    start kernel (:func:`start_decay_s`) when the fit learns the kernel's kinetics
    (:func:`learns_kinetics`)."""
    from .core.windows import auto_window_s

    if cfg.window_s is not None:
        return float(cfg.window_s)
    tau = start_decay_s(cfg, decay_s) if cfg.likelihood == "calcium" and learns_kinetics(cfg) else None
    return auto_window_s(bin_width, tau)


def learns_kinetics(cfg: RunConfig) -> bool:
    """Whether a new fit with ``cfg`` learns the calcium kernel's kinetics (the model setting
    ``kinetics_lr_scale`` > 0; :data:`RUN_MODEL_DEFAULTS` keeps them where they start)."""
    scale = {**RUN_MODEL_DEFAULTS, **cfg.model}.get("kinetics_lr_scale", SBTTConfig.kinetics_lr_scale)
    return float(scale) > 0.0


def resolve(cfg: RunConfig, *, bin_width: float, base: SBTTConfig | None = None,
            n_windows: int | None = None, decay_s: float | None = None) -> SBTTConfig:
    """The :class:`~napari_sbtt.model.config.SBTTConfig` a run with ``cfg`` fits on bins of
    ``bin_width`` seconds.

    A new fit (``base`` None) starts from SBTTConfig's defaults with :data:`RUN_MODEL_DEFAULTS`
    and the layer sizes of ``cfg.size`` on top; adapting a model (``base``: its config) keeps that
    config, architecture included. Then ``cfg.model``'s overrides, and the RunConfig fields that
    are model settings: ``epochs`` (max_epochs), ``max_seconds``, ``device``, ``threads``
    (num_threads). For the calcium likelihood, the kernel starts from the indicator's rise and
    decay in seconds (``cfg.indicator``, or GCaMP6f's for a new fit without one) and
    ``onset_delay_s`` delays it, unless ``cfg.model`` sets them itself. A new fit on
    ``n_windows`` training windows takes :func:`batch_size_for` windows per step unless
    ``cfg.model`` sets ``batch_size``. ``decay_s``, the recording's estimated decay, starts the
    kernel's decay when no indicator is named and refines a named one's (:func:`start_decay_s`).
    """
    overrides = dict(cfg.model) if base is not None else {**RUN_MODEL_DEFAULTS, **SIZES[cfg.size], **cfg.model}
    if base is None and n_windows is not None and "batch_size" not in cfg.model:
        overrides["batch_size"] = batch_size_for(n_windows)
    if cfg.epochs is not None:
        overrides["max_epochs"] = int(cfg.epochs)
    if cfg.max_seconds is not None:
        overrides["max_seconds"] = float(cfg.max_seconds)
    overrides["device"] = cfg.device
    if cfg.threads is not None:
        overrides["num_threads"] = int(cfg.threads)
    if cfg.likelihood == "calcium":
        overrides.setdefault("bin_width", bin_width)
        if "calcium_decay_seconds" not in overrides and (
                cfg.indicator is not None or (base is None and "calcium_decay" not in overrides)):
            # seconds, not SBTTConfig's 10 bins (0.17 s at a 59 Hz sweep rate): the named preset
            # checked against the recording's estimate, the estimate itself, or GCaMP6f's
            ind = get_indicator(indicator_name(cfg))
            overrides["calcium_decay_seconds"] = start_decay_s(cfg, decay_s)
            if "calcium_rise_seconds" not in overrides and "calcium_rise" not in overrides:
                overrides["calcium_rise_seconds"] = float(ind.tau_rise)
        if cfg.onset_delay_s > 0 and "calcium_delay_seconds" not in overrides and "calcium_delay" not in overrides:
            overrides["calcium_delay_seconds"] = float(cfg.onset_delay_s)
    base = base if base is not None else SBTTConfig()
    return base.replace(**overrides) if overrides else base
