"""Training configuration and per-epoch reports for the SBTT model.

This module is deliberately torch-free: the plugin and the CLI import it to
build forms and parse options without paying for ``import torch``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from ..core.limits import MAX_FRAME_PERIOD_S, MAX_ONSET_DELAY_S
from ..core.progress import StopTraining

__all__ = ["SBTTConfig", "EpochReport", "StopTraining", "LIKELIHOODS", "MAX_UNITS"]

#: likelihood names understood by :func:`napari_sbtt.model.fit_trials`
LIKELIHOODS = ("poisson", "gaussian", "zig", "calcium")

#: the most units any layer may have (a GRU of 8192 units already holds 0.8 GB of weights)
MAX_UNITS = 8192
#: the most networks an ensemble may train at once (one thread each)
MAX_ENSEMBLE = 16
#: the most networks ``ensemble_size = 0`` (auto) trains at once (two is what was measured:
#: benchmarks/RESULTS.md, "Issue 14, tenth session")
MAX_AUTO_MEMBERS = 2
#: auto (``ensemble_size = 0``) trains one network when the training and validation windows'
#: values take more bytes than this: every member after the first gets its own copy of them in
#: its process (model.member_process), and sending it holds the pickled bytes for a moment on
#: both sides (a 10-minute, 200-ROI recording at 10 ms bins is 96 MB)
MAX_AUTO_COPY_BYTES = 256 << 20
UNIT_FIELDS = ("readin_size", "encoder_size", "generator_size", "factor_size", "ic_size",
               "controller_size", "inferred_input_size")


@dataclass
class SBTTConfig:
    """Hyper-parameters of the sequential autoencoder and its training.

    Sizes are numbers of units. Times are in bins of the data's time grid unless
    the name says seconds. Every field round-trips through JSON
    (:meth:`to_dict` / :meth:`from_dict`).
    """

    # --- architecture ---
    readin_size: int = 64
    """width of the linear read-in applied to [zero-filled data, mask] before the encoder;
    re-learned when a pretrained model is adapted to another number of neurons"""
    encoder_size: int = 64
    """hidden units of each direction of the bidirectional GRU encoder"""
    generator_size: int = 64
    """hidden units of the GRU generator (its initial state is the initial condition)"""
    factor_size: int = 8
    """dimension of the low-dimensional factors that the per-neuron readout sees"""
    ic_size: int = 64
    """dimension of the (possibly variational) initial-condition code, mapped to the generator state"""
    variational_ic: bool = False
    """sample the initial condition from a learned Gaussian posterior with a N(0, 1) prior"""
    kl_weight: float = 1e-3
    """weight of the KL terms (initial condition and inferred inputs), per observed entry"""
    controller_size: int = 0
    """hidden units of the LFADS-style controller GRU; 0 switches the controller off"""
    inferred_input_size: int = 1
    """dimension of the controller's inferred inputs to the generator (used when controller_size > 0)"""
    dropout: float = 0.05
    """dropout on encoder output, initial condition and generator states"""

    # --- regularisation specific to sparse data ---
    coordinated_dropout: float = 0.3
    """share of observed input entries hidden from the encoder in each batch; the training
    loss is scored only on those hidden entries (0 = off: score all observed entries)"""
    sample_validation: float = 0.1
    """share of observed training entries held out of the input and the training loss for good;
    their likelihood is reported as ``heldout_loss`` (0 = off)"""
    valid_fraction: float = 0.2
    """share of trials moved to validation when ``fit_trials`` gets no ``valid`` set"""

    # --- optimisation ---
    learning_rate: float = 5e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    max_epochs: int = 400
    patience: int = 60
    """stop after this many epochs without a better validation loss"""
    lr_schedule: str = "plateau"
    """"plateau": halve the learning rate after lr_patience epochs without improvement;
    "cosine": after the warm-up, anneal from learning_rate to min_learning_rate along a half
    cosine whose end is max_epochs or, when set, max_seconds (whichever is reached first), so
    a time-budgeted fit ends at a low learning rate"""
    lr_patience: int = 15
    """plateau schedule: halve the learning rate after this many epochs without improvement (0 = never)"""
    min_learning_rate: float = 1e-4
    lr_warmup_epochs: int = 5
    """ramp the learning rate linearly up to learning_rate over the first epochs (0 = off)"""
    grad_clip: float = 5.0
    """clip the global gradient norm to this value (0 = no clipping)"""
    max_seconds: float | None = None
    """wall-clock budget for training in seconds (None = no budget)"""
    max_divergence_retries: int = 3
    """after a NaN/inf loss, roll back to the best weights and halve the learning rate at most this often"""
    device: str = "auto"
    """"auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", ..."""
    num_threads: int = 0
    """CPU threads for torch during fit/predict; 0 = torch's default capped to the physical cores"""
    ensemble_size: int = 1
    """networks trained at once from different seeds (the first in this process, each other in a
    child process of its own, with a copy of the windows) and merged into one network of that
    many times the width whose output is their average (the mean log-rate for spike counts;
    model.ensemble); 0 = auto: as many as the machine's physical cores hold at num_threads each
    (counted, not checked for other work), at most MAX_AUTO_MEMBERS, and 1 on a GPU or for
    windows over MAX_AUTO_COPY_BYTES (256 MiB), so a fit's numbers depend on the core count. Pays only
    where cores would idle: two trained one after the other with half the budget each lose to
    one (benchmarks/RESULTS.md)"""

    # --- likelihood-specific ---
    gaussian_min_std: float = 1e-3
    """lower bound of the per-neuron noise standard deviation, in standardised units"""
    calcium_kernel: str = "double_exponential"
    """shape of the calcium kernel: "double_exponential" (the indicator's transient, a decay minus
    a rise exponential, averaged over the spike's unknown time inside its bin, as the simulator
    and ``core.indicators.Indicator.kernel``: a slow rise puts the fluorescence where it is and
    keeps the rates on the spikes; benchmarks/RESULTS.md: +0.04 to +0.09 r on the 4x line scans,
    3 of 4 cases) or "ar" (the impulse response of an AR(calcium_ar_order) filter, full response
    in the spike's own bin, as OASIS). Checkpoints of format 1 written before this field existed
    load as "ar" (model.header.upgrade_checkpoint_info)"""
    calcium_ar_order: int = 1
    """order of the "ar" calcium kernel: 1 (instant rise, exponential decay) or 2 (rise and decay)"""
    calcium_decay: float = 10.0
    """initial decay time constant of the calcium kernel in bins (see calcium_decay_seconds)"""
    calcium_rise: float = 1.0
    """initial rise time constant in bins for the "double_exponential" kernel and the "ar" kernel
    with calcium_ar_order = 2 (see calcium_rise_seconds)"""
    calcium_delay: float = 0.0
    """onset delay of the calcium kernel in bins (see calcium_delay_seconds): the fluorescence
    of a bin's activity starts this much later, so the rates stay aligned with the spikes
    when the indicator responds late (fractional delays interpolate the kernel)"""
    calcium_initial_state: bool = True
    """infer each trial's leftover calcium at its first bin (a second readout channel) instead of
    starting calcium at 0; windows cut from a continuous recording start mid-transient"""
    calcium_initial_fit: bool = False
    """with calcium_initial_state: fit each trial's leftover calcium per ROI to the samples the
    encoder saw (least squares, the readout's value as a prior worth one sample) instead of reading
    it out of the low-dimensional factors, so the rates need not follow each ROI's slow private
    fluctuations; the rates a fitted model infers do not depend on it, the fluorescence it
    predicts ("signal", held-out tests) does"""
    calcium_decay_seconds: float | None = None
    """if set with bin_width, overrides calcium_decay: decay time constant in seconds"""
    calcium_rise_seconds: float | None = None
    """if set with bin_width, overrides calcium_rise: rise time constant in seconds"""
    calcium_delay_seconds: float | None = None
    """if set with bin_width, overrides calcium_delay: onset delay in seconds (>= 0)"""
    bin_width: float | None = None
    """width of one time bin in seconds (converts the calcium_*_seconds fields to bins)"""
    kinetics_lr_scale: float = 1.0
    """calcium likelihood: learning rate of the kernel's time constants (decay and rise) as a
    share of learning_rate (0 = keep them where they start; 1 = learned like every weight)"""
    rise_lr_scale: float | None = None
    """calcium likelihood: learning rate of the kernel's rise time constant alone, as a share of
    learning_rate (None = kinetics_lr_scale, the decay's); lets a fit keep a decay estimated
    from the recording while it learns a rise nothing measured"""
    rate_sparsity: float = 0.0
    """calcium likelihood: weight z of a sparsity (exponential) prior on the rates during training,
    as in sparse non-negative deconvolution: each bin's fluorescence jump s costs
    z * ||kernel|| / noise_sd * s next to the Gaussian likelihood (0 = off). Spikes are sparse,
    so the prior keeps the rates from mimicking a wrong calcium kernel with sustained activity"""
    zig_min_event: float = 0.1
    """ZIG: smallest event size in data units; values at or below it count as no event"""

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the first bad field and how to fix it."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"SBTTConfig.{f.name} must be a finite number, got {v!r}")
        ints_pos = ("readin_size", "encoder_size", "generator_size", "factor_size", "ic_size",
                    "batch_size", "max_epochs", "inferred_input_size")
        for name in ints_pos:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SBTTConfig.{name} must be a positive integer, got {v!r}")
        ints_nonneg = ("controller_size", "patience", "lr_patience", "max_divergence_retries",
                       "num_threads", "lr_warmup_epochs", "ensemble_size")
        for name in ints_nonneg:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"SBTTConfig.{name} must be an integer >= 0, got {v!r}")
        for name in UNIT_FIELDS:
            v = getattr(self, name)
            if v > MAX_UNITS:
                raise ValueError(f"SBTTConfig.{name} must be an integer <= {MAX_UNITS} (units of the network), "
                                 f"got {v!r}")
        if self.ensemble_size > MAX_ENSEMBLE:
            raise ValueError(f"SBTTConfig.ensemble_size must be an integer from 0 to {MAX_ENSEMBLE} "
                             f"(networks trained at once), got {self.ensemble_size!r}")
        for name in ("dropout", "coordinated_dropout", "sample_validation", "valid_fraction"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v < 1.0:
                raise ValueError(f"SBTTConfig.{name} must be in [0, 1), got {v!r}")
        for name in ("learning_rate", "min_learning_rate", "calcium_decay", "calcium_rise",
                     "gaussian_min_std"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                raise ValueError(f"SBTTConfig.{name} must be a number > 0, got {v!r}")
        for name in ("weight_decay", "grad_clip", "kl_weight", "zig_min_event", "calcium_delay",
                     "rate_sparsity", "kinetics_lr_scale"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"SBTTConfig.{name} must be a number >= 0, got {v!r}")
        for name in ("max_seconds", "calcium_decay_seconds", "calcium_rise_seconds", "bin_width"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)
                                  or not math.isfinite(v) or v <= 0):
                raise ValueError(f"SBTTConfig.{name} must be None or a finite number > 0, got {v!r}")
        v = self.rise_lr_scale
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0):
            raise ValueError(f"SBTTConfig.rise_lr_scale must be None or a number >= 0, got {v!r}")
        if self.lr_schedule not in ("plateau", "cosine"):
            raise ValueError(f"SBTTConfig.lr_schedule must be 'plateau' or 'cosine', got {self.lr_schedule!r}")
        if self.calcium_kernel not in ("ar", "double_exponential"):
            raise ValueError("SBTTConfig.calcium_kernel must be 'ar' or 'double_exponential', "
                             f"got {self.calcium_kernel!r}")
        if isinstance(self.calcium_ar_order, bool) or self.calcium_ar_order not in (1, 2) \
                or not isinstance(self.calcium_ar_order, int):
            raise ValueError(
                f"SBTTConfig.calcium_ar_order must be 1 or 2, got {self.calcium_ar_order!r}")
        v = self.calcium_delay_seconds
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)
                              or not math.isfinite(v) or not 0 <= v <= MAX_ONSET_DELAY_S):
            raise ValueError(f"SBTTConfig.calcium_delay_seconds must be None or a number of seconds from 0 to "
                             f"{MAX_ONSET_DELAY_S:g}, got {v!r}")
        for name, hi in (("calcium_decay_seconds", 60.0), ("calcium_rise_seconds", 10.0),
                         ("bin_width", MAX_FRAME_PERIOD_S)):
            v = getattr(self, name)
            if v is not None and v > hi:
                raise ValueError(f"SBTTConfig.{name} must be at most {hi:g} seconds, got {v!r}")
        for name in ("decay", "rise", "delay"):
            if getattr(self, f"calcium_{name}_seconds") is not None and self.bin_width is None:
                raise ValueError(f"SBTTConfig.calcium_{name}_seconds needs bin_width (seconds per bin); "
                                 f"set bin_width or give calcium_{name} in bins instead")
        for name in ("calcium_initial_state", "calcium_initial_fit"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"SBTTConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.variational_ic, bool):
            raise ValueError(f"SBTTConfig.variational_ic must be True or False, got {self.variational_ic!r}")
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")
        ):
            raise ValueError(f"SBTTConfig.device must be 'auto', 'cpu', 'cuda', 'cuda:<i>' or 'mps', "
                             f"got {self.device!r}")

    # ------------------------------------------------------------------
    @property
    def calcium_decay_bins(self) -> float:
        """Initial calcium decay time constant in bins."""
        if self.calcium_decay_seconds is not None and self.bin_width is not None:
            return float(self.calcium_decay_seconds / self.bin_width)
        return float(self.calcium_decay)

    @property
    def calcium_rise_bins(self) -> float:
        """Initial calcium rise time constant in bins (the "double_exponential" kernel, and the
        "ar" kernel with calcium_ar_order = 2)."""
        if self.calcium_rise_seconds is not None and self.bin_width is not None:
            return float(self.calcium_rise_seconds / self.bin_width)
        return float(self.calcium_rise)

    @property
    def calcium_delay_bins(self) -> float:
        """Onset delay of the calcium kernel in bins."""
        if self.calcium_delay_seconds is not None and self.bin_width is not None:
            return float(self.calcium_delay_seconds / self.bin_width)
        return float(self.calcium_delay)

    def resolved_num_threads(self) -> int:
        """CPU threads to use: ``num_threads`` or torch's default capped to the physical cores."""
        if self.num_threads > 0:
            return self.num_threads
        return default_num_threads()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SBTTConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError listing them."""
        if not isinstance(d, dict):
            raise ValueError(f"SBTTConfig.from_dict needs a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown SBTTConfig key(s) {unknown}; valid keys are {sorted(known)}")
        return cls(**d)

    @classmethod
    def default_for(cls, likelihood: str) -> "SBTTConfig":
        """The configuration :func:`~napari_sbtt.model.fit_trials` uses for ``likelihood`` when
        it is given none: SBTTConfig's defaults with :data:`LIKELIHOOD_DEFAULTS` on top."""
        return cls(**LIKELIHOOD_DEFAULTS.get(likelihood, {}))

    def replace(self, **changes: Any) -> "SBTTConfig":
        """Copy with some fields changed (validated)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown SBTTConfig key(s) {unknown}")
        return dataclasses.replace(self, **changes)


#: per-likelihood settings of :meth:`SBTTConfig.default_for`, chosen by benchmark.
#: "poisson" (spike counts): the SBTT demo protocol (benchmarks/sbtt_demo_protocol.py,
#: benchmarks/RESULTS.md "SBTT demo protocol"): 32-unit GRUs (about twice the epochs per second
#: of 64 on CPU), a 3-d factor bottleneck, no coordinated dropout (with an initial-condition-only
#: generator the network cannot copy its input, and scoring every observed entry gives ~3x more
#: gradient signal per step), batch 128 at learning rate 1e-2 with a 5-epoch warm-up and a cosine
#: decay that ends at the 90 s budget (a cap the caller can lift), one torch thread, and one
#: network per core, at most MAX_AUTO_MEMBERS, merged (ensemble_size 0; RESULTS.md "Issue 14, tenth
#: session": +0.005 to +0.009 R^2 at 29 of 29 channels, +0.02 to +0.03 at 5, +0.04 to +0.09 at 2
#: on the protocol's tune seeds).
LIKELIHOOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "poisson": dict(
        readin_size=32, encoder_size=32, generator_size=32, ic_size=32, factor_size=3,
        coordinated_dropout=0.0, learning_rate=1e-2, batch_size=128, lr_schedule="cosine",
        lr_warmup_epochs=5, patience=40, max_seconds=90.0, num_threads=1, ensemble_size=0,
    ),
}


def default_num_threads() -> int:
    """Physical core count if known (``os.sched_getaffinity`` / ``os.cpu_count``), at least 1.

    Hyper-threads do not help small GRUs; we count logical CPUs we may run on and
    halve when that looks like SMT (more than 2 and even), a cheap heuristic.
    """
    try:
        n = len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        import psutil  # optional

        phys = psutil.cpu_count(logical=False)
        if phys:
            n = min(n, phys)
    except Exception:  # noqa: BLE001 - psutil is optional
        pass
    return max(1, int(n))


@dataclass
class EpochReport:
    """What a ``progress`` callback receives after every epoch.

    Losses are mean negative log-likelihoods per scored entry (lower is better).
    ``heldout_loss`` is the likelihood of the sample-validation entries (observed
    training entries never shown to the model); NaN when sample validation is off.
    With validation trials it is averaged over the epoch's training passes (dropout
    on); without them it is scored in eval mode and also drives early stopping.
    ``valid_loss`` is the loss used for early stopping (validation trials if any,
    otherwise the held-out samples).
    """

    epoch: int
    total_epochs: int
    train_loss: float
    valid_loss: float
    heldout_loss: float
    seconds: float
    best_epoch: int
    best_valid_loss: float
    is_best: bool
    learning_rate: float = float("nan")
    #: the fit's wall-clock cap in seconds (SBTTConfig.max_seconds; None: no cap)
    max_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EpochReport":
        """Inverse of :meth:`to_dict`; unknown keys and wrongly typed values raise ValueError."""
        if not isinstance(d, dict):
            raise ValueError(f"an EpochReport must be a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown EpochReport key(s) {unknown}")
        for name, v in d.items():
            if name in ("epoch", "total_epochs", "best_epoch"):
                ok = isinstance(v, int) and not isinstance(v, bool)
            elif name == "is_best":
                ok = isinstance(v, bool)
            elif name == "max_seconds":
                ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
            else:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not ok:
                raise ValueError(f"EpochReport field {name!r} has the wrong type: {v!r}")
        return cls(**d)
