"""The model object that callers hold, and how one is made: :func:`fit_trials` (train),
:meth:`SBTTModel.adapt` (fine-tune), :func:`load_model` (a checkpoint); then inference,
compatibility checks and saving.

The training loop itself is :class:`~.training.Trainer`; the file format is :mod:`.checkpoint`.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Literal

import numpy as np
import torch

from .checkpoint import read_checkpoint, save_model
from .config import LIKELIHOODS, EpochReport, SBTTConfig
from .device import resolve_device, thread_limit
from .ensemble import auto_members, member_threads, merge_networks, merged_config, run_members
from .likelihoods import Normaliser, make_likelihood
from .member_process import MemberProcessError, train_in_process
from .network import NetworkOutput, SequentialAutoencoder
from .training import (
    ProgressCallback,
    Trainer,
    TrainingState,
    TrainingWindows,
    check_neurons_observed,
    init_readout,
    validate_trials,
    window_normaliser,
)

#: ``fit_trials(checkpoint=...)``: called after every epoch with its report and ``snapshot``, a
#: function returning (the resumable TrainingState, an SBTTModel holding the best weights so far)
CheckpointCallback = Callable[[EpochReport, Callable[[], "tuple[TrainingState, SBTTModel]"]], Any]

__all__ = ["SBTTModel", "fit_trials", "load_model"]


class SBTTModel:
    """A fitted SBTT sequential autoencoder.

    Attributes
    ----------
    n_neurons : int
        N, the number of neurons (ROIs) the read-in and readout expect.
    likelihood : str
        "poisson", "gaussian", "zig" or "calcium".
    config : SBTTConfig
    history : list[EpochReport]
        one report per trained epoch.
    best_epoch : int
        epoch whose weights the model holds (the best validation loss); -1 if untrained.
    device : torch.device
    normaliser : Normaliser
        per-neuron map from data units to model units.
    metadata : dict
        free-form JSON-able description of the data (units, bin width, grid, ...) saved with the model.
    stop_reason : str
        why training ended ("max_epochs", "early_stopping", "callback", "time_budget", "diverged").
    """

    def __init__(self, network: SequentialAutoencoder, likelihood: str, config: SBTTConfig,
                 normaliser: Normaliser, *, history: list[EpochReport] | None = None,
                 best_epoch: int = -1, metadata: dict[str, Any] | None = None,
                 stop_reason: str = "", device: torch.device | str = "cpu") -> None:
        self.network = network
        self.likelihood = likelihood
        self.config = config
        self.normaliser = normaliser
        self.history = list(history or [])
        self.best_epoch = int(best_epoch)
        self.metadata = dict(metadata or {})
        self.stop_reason = stop_reason
        self.device = torch.device(device)
        self.network.to(self.device)
        self.network.eval()

    # ------------------------------------------------------------------
    @classmethod
    def build(cls, n_neurons: int, likelihood: str, config: SBTTConfig, normaliser: Normaliser,
              device: torch.device | str = "cpu") -> "SBTTModel":
        """An untrained model with freshly initialised weights."""
        if likelihood not in LIKELIHOODS:
            make_likelihood(likelihood, n_neurons, config)  # raises the clear error
        lik = make_likelihood(likelihood, n_neurons, config)
        net = SequentialAutoencoder(n_neurons, config, lik)
        return cls(net, likelihood, config, normaliser, device=device)

    @property
    def n_neurons(self) -> int:
        return self.network.n_neurons

    @property
    def best_valid_loss(self) -> float:
        for r in self.history:
            if r.epoch == self.best_epoch:
                return r.best_valid_loss
        return float("nan")

    def __repr__(self) -> str:
        return (f"SBTTModel(n_neurons={self.n_neurons}, likelihood={self.likelihood!r}, "
                f"epochs={len(self.history)}, best_epoch={self.best_epoch}, device={str(self.device)!r})")

    # ------------------------------------------------------------------
    def check_compatible(self, n_neurons: int, likelihood: str | None = None) -> None:
        """Raise ValueError if data with ``n_neurons`` neurons (and ``likelihood``) cannot use this model."""
        _check_compatible(self.n_neurons, self.likelihood, n_neurons, likelihood)

    def is_compatible(self, n_neurons: int, likelihood: str | None = None) -> bool:
        """True if :meth:`check_compatible` would not raise."""
        try:
            self.check_compatible(n_neurons, likelihood)
        except ValueError:
            return False
        return True

    # ------------------------------------------------------------------
    def _prepare(self, data: np.ndarray) -> tuple[np.ndarray, bool]:
        arr = np.asarray(data, dtype=np.float64)
        squeeze = False
        if arr.ndim == 2:
            arr, squeeze = arr[None], True
        if arr.ndim != 3:
            raise ValueError(
                f"data must be (n_trials, T, N) or (T, N) with NaN where not observed; got shape {arr.shape}")
        if np.isinf(arr).any():
            raise ValueError("data contains inf; mark unobserved entries with NaN instead")
        self.check_compatible(arr.shape[-1])
        if arr.shape[1] < 1:
            raise ValueError("data has no time bins (T = 0)")
        return arr, squeeze

    @torch.no_grad()
    def _forward(self, data: np.ndarray, batch_size: int | None,
                 take: Callable[[NetworkOutput, torch.Tensor, torch.Tensor], torch.Tensor]
                 ) -> tuple[np.ndarray, bool]:
        """``take(network output, values, mask)`` for every trial of ``data``, batch by batch, as
        float64 (n_trials, T, k) (values in model units, zero where ``mask`` (bool) is False); and
        whether ``data`` was one (T, N) trial."""
        arr, squeeze = self._prepare(data)
        net = self.network
        net.eval()
        mask = np.isfinite(arr)
        vals = np.where(mask, self.normaliser.to_model(np.nan_to_num(arr)), 0.0)
        bs = batch_size or max(1, self.config.batch_size * 4)
        outs = []
        with thread_limit(self.config.resolved_num_threads()):
            for s in range(0, arr.shape[0], bs):
                v = torch.as_tensor(vals[s:s + bs], dtype=torch.float32, device=self.device)
                m = torch.as_tensor(mask[s:s + bs], device=self.device)
                outs.append(take(net(v, m), v, m).double().cpu().numpy())
        return np.concatenate(outs, axis=0), squeeze

    def _run(self, data: np.ndarray, what: str, batch_size: int | None) -> np.ndarray:
        lik = self.network.likelihood
        out, squeeze = self._forward(data, batch_size,
                                     lambda o, v, m: lik.rates(o.raw) if what == "rates" else lik.signal(o.raw, v, m))
        if what == "rates":
            out = lik.rate_to_data(out, self.normaliser)
        else:
            out = self.normaliser.to_data(out) if self.likelihood in ("gaussian", "calcium") else out
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(
                "the model produced non-finite outputs for this data; check the input for extreme "
                "values or retrain with a lower learning_rate")
        return out[0] if squeeze else out

    def predict(self, data: np.ndarray, output: Literal["rates", "signal"] = "rates",
                *, batch_size: int | None = None) -> np.ndarray:
        """Infer activity for every bin and neuron, observed or not.

        data: (n_trials, T, N) or (T, N) in the units the model was trained on, NaN where not
        observed. Returns float64 of the same shape.

        output="rates": Poisson -> expected count per bin; Gaussian -> denoised signal (data
        units); ZIG -> expected event size per bin; calcium -> deconvolved rate as the
        fluorescence jump per bin (data units) before the calcium decay.
        output="signal": the expected observation (for calcium: reconstructed fluorescence in data
        units; for the others the same as "rates").
        """
        if output not in ("rates", "signal"):
            raise ValueError(f"output must be 'rates' or 'signal', got {output!r}")
        return self._run(data, output, batch_size)

    def factors(self, data: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Low-dimensional latent factors, (n_trials, T, factor_size) (or (T, factor_size) for 2-D data)."""
        f, squeeze = self._forward(data, batch_size, lambda o, v, m: o.factors)
        return f[0] if squeeze else f

    def observation_model(self, *, max_lags: int = 4096,
                          decay_scale: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The learned calcium observation model of every ROI, in data units (calcium only).

        Returns a dict of numpy arrays: ``kernel`` (N, L) the fluorescence per unit jump at lags
        0..L-1 (L covers six decay time constants, at most ``max_lags``; lag 0 is 1 for the AR
        kernel), ``baseline`` (N,), ``noise_sd`` (N,) and ``tau_decay_bins`` / ``tau_rise_bins``
        (N,). A rate from :meth:`predict` is a jump in these units, so
        ``baseline + kernel * rates`` is the model's fluorescence (without the calcium present
        before a window), and :func:`napari_sbtt.core.deconvolution.sparse_deconvolve` can
        deconvolve the samples under exactly this model.

        ``decay_scale``: (M,) factors (> 0) on the learned decay time; every array then has M
        rows, the kernels' decays scaled (the rise kept below the new decay). A model of one ROI
        gives M kernels (its baseline and noise repeated: one kernel per trace deconvolved);
        otherwise M must be N.
        """
        if self.likelihood != "calcium":
            raise ValueError(f"observation_model() needs the calcium likelihood, not {self.likelihood!r}")
        lik = self.network.likelihood
        n = lik.tau_decay().shape[0]
        scale = None
        if decay_scale is not None:
            scale_np = np.asarray(decay_scale, dtype=np.float64)
            if scale_np.ndim != 1 or not (np.isfinite(scale_np).all() and (scale_np > 0).all()):
                raise ValueError("decay_scale must be a 1-D array of positive finite factors")
            if n != 1 and scale_np.size != n:
                raise ValueError(f"decay_scale has {scale_np.size} factors for a model of {n} ROIs")
            scale = torch.as_tensor(scale_np, device=lik.log_tau_decay.device)
        with torch.no_grad():
            tau, rise = lik.time_constants(scale)
            tau_d = tau.double().cpu().numpy()
            tau_r = np.zeros_like(tau_d) if rise is None else rise.double().cpu().numpy()
            length = int(min(max_lags, max(8, np.ceil(6.0 * tau_d.max() + lik.delay_bins + 2))))
            kernel = lik.kernel(length, scale).double().cpu().numpy()  # per unit jump; the jump holds the gain
            base = lik.baseline.double().cpu().numpy()
            sd = lik.std().double().cpu().numpy()
        sc, off = self.normaliser.scale, self.normaliser.offset
        base, sd = base * sc + off, sd * sc
        if kernel.shape[0] != base.shape[0]:  # one ROI's model, one kernel per factor
            base, sd = np.repeat(base, kernel.shape[0]), np.repeat(sd, kernel.shape[0])
        return {"kernel": kernel, "baseline": base, "noise_sd": sd,
                "tau_decay_bins": tau_d, "tau_rise_bins": tau_r}

    # ------------------------------------------------------------------
    def adapt(self, train: TrainingWindows, valid: TrainingWindows | None = None, **kwargs: Any) -> "SBTTModel":
        """Fine-tune on new data, keeping the learned dynamics (pretrain-then-adapt).

        ``train`` / ``valid``: (n_trials, T, N) arrays or
        :class:`~napari_sbtt.core.windows.WindowStore` s, as for :func:`fit_trials`.

        When ``train`` has another number of neurons, the read-in, readout and per-neuron
        likelihood parameters are re-learned. Keyword arguments go to :func:`fit_trials`
        (``config`` defaults to this model's config). Returns a new model; this one is unchanged.
        """
        kwargs.setdefault("likelihood", self.likelihood)
        return fit_trials(train, valid, init=self, **kwargs)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write a single-file checkpoint (safetensors weights + JSON metadata); see :mod:`.checkpoint`."""
        save_model(self, path, overwrite=overwrite)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Copy of the network weights as numpy arrays (for comparisons and tests)."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.network.state_dict().items()}


def _check_compatible(n_model: int, likelihood_model: str, n_neurons: int, likelihood: str | None) -> None:
    if likelihood is not None and likelihood != likelihood_model:
        raise ValueError(
            f"this model was trained with likelihood {likelihood_model!r}, not {likelihood!r}; "
            "train a new model for this kind of data")
    if int(n_neurons) != int(n_model):
        raise ValueError(
            f"this model expects {n_model} neurons but the data has {n_neurons}; "
            "use model.adapt(train) (or fit_trials(..., init=model)) to re-learn the read-in "
            "and readout for the new ROIs while keeping the learned dynamics")


# ----------------------------------------------------------------------------
def fit_trials(
    train: TrainingWindows,
    valid: TrainingWindows | None = None,
    *,
    likelihood: str = "poisson",
    config: SBTTConfig | None = None,
    progress: ProgressCallback | None = None,
    seed: int = 0,
    init: SBTTModel | None = None,
    metadata: dict[str, Any] | None = None,
    resume: TrainingState | None = None,
    checkpoint: CheckpointCallback | None = None,
) -> SBTTModel:
    """Train an SBTT sequential autoencoder on trials with missing entries.

    Parameters
    ----------
    train, valid : float arrays (n_trials, T, N), NaN where not observed, or WindowStores
        Data units: counts per bin (poisson), dF/F or any continuous signal (gaussian,
        calcium), deconvolved event sizes >= 0 (zig). ``valid`` trials are only used for
        early stopping. Without ``valid``, ``config.valid_fraction`` of the trials are split
        off when there are at least 5 trials; otherwise early stopping uses the held-out
        samples (sample validation). All-NaN trials are dropped with a warning.
        A :class:`~napari_sbtt.core.windows.WindowStore` (windows of T bins drawn from one
        recording (T_rec, N), possibly a memory map) is the same trials without an
        (n_trials, T, N) copy: training takes each batch's windows from it (statistics, masks
        and validation a block at a time), and gives the numbers of its ``take``'s array to the
        bit. An array is not copied either (float32 stays float32 until a batch is taken).
    likelihood : "poisson" | "gaussian" | "zig" | "calcium"
    config : SBTTConfig, optional
        Defaults to ``SBTTConfig.default_for(likelihood)`` (the benchmark-chosen settings of
        each likelihood, e.g. the SBTT demo protocol's for "poisson"; a 90 s budget there), or
        ``init.config`` when adapting.
    progress : callable(EpochReport) -> bool | str | None, or a RunControl, optional
        Called after every epoch. Returning True or "stop", or raising StopTraining, ends
        training; the best weights so far are kept.
    seed : int
        Seeds weights, masks, shuffling and dropout; fits on CPU are deterministic per seed (and
        per number of networks: ``ensemble_size`` 0, auto, counts the machine's cores).
    init : SBTTModel, optional
        Start from this model's weights. With the same N everything is kept; with another N
        only the dynamics (encoder core, initial condition, generator, controller, factors)
        are kept and the read-in, readout and per-neuron likelihood parameters re-learned.
    metadata : dict, optional
        JSON-able description of the data (units, bin width, grid...) stored with the model.
    resume : TrainingState, optional
        Go on from a fit of the same sizes on the same data and seed where it was
        (:meth:`~.training.Trainer.fit`; the model search's Population Based Training).
    checkpoint : callable(EpochReport, snapshot), optional
        Called after every epoch before ``progress``; ``snapshot()`` returns the resumable
        :class:`~.training.TrainingState` and an SBTTModel with the best weights so far (copies;
        call it only when a checkpoint is wanted, it costs a copy of the network).

    Returns
    -------
    SBTTModel holding the weights of the best validation epoch.

    With ``config.ensemble_size`` other than 1 (0, auto, is the "poisson" default: one network
    per physical CPU core, at most ``MAX_AUTO_MEMBERS``) and no ``init``, ``resume`` or ``checkpoint``, that many
    networks of seeds ``seed + j * MEMBER_SEED_STEP`` train at once (the first in this process,
    the others each in a child process of its own), on the same windows and held-out samples, each to its own best validation epoch, and are merged
    into one network of that many times the width whose raw output is their mean
    (:mod:`.ensemble`). The model's ``config`` is the merged one (``ensemble_size`` 1), its
    ``history``, ``best_epoch`` and ``best_valid_loss`` are the first member's, ``progress``
    gets the first member's reports (then those of a member still running, epochs never going
    back), and ``metadata["ensemble"]`` lists every member's seed, epochs, best epoch, best
    validation loss, seconds of training and stop reason, and the merged network's own validation loss
    (``merged_valid_loss``). A stop asked for through ``progress`` ends every member after its
    current epoch; a member that finds no usable epoch is left out with a warning.
    """
    if init is not None and config is None:
        config = init.config
    config = config if config is not None else SBTTConfig.default_for(likelihood)
    if not isinstance(config, SBTTConfig):
        raise ValueError(f"config must be an SBTTConfig, got {type(config).__name__}")
    config.validate()
    if likelihood not in LIKELIHOODS:
        make_likelihood(likelihood, 1, config)  # raises the explanatory error
    if progress is not None and not callable(progress):
        raise ValueError("progress must be a callable taking an EpochReport, or None")

    # windows are read a block at a time from here on: no float64 copy of all of them
    train = validate_trials(train, "train", likelihood)
    N = train.shape[2]
    if valid is not None:
        valid = validate_trials(valid, "valid", likelihood, n_neurons=N)
        if valid.length != train.length:
            warnings.warn("valid trials have a different length from train trials; that is fine "
                          "but early stopping compares them at their own length", stacklevel=2)
    rng = np.random.default_rng(seed)
    if valid is None and len(train) >= 5 and config.valid_fraction > 0:
        perm = rng.permutation(len(train))
        n_valid = max(1, int(round(config.valid_fraction * len(train))))
        valid, train = train.subset(perm[:n_valid]), train.subset(perm[n_valid:])
    check_neurons_observed(train)
    if init is not None:
        if init.likelihood != likelihood:
            raise ValueError(f"init model uses likelihood {init.likelihood!r}; cannot adapt it to "
                             f"{likelihood!r}")
        sizes = ("readin_size", "encoder_size", "generator_size", "factor_size", "ic_size",
                 "variational_ic", "controller_size", "inferred_input_size")
        diff = [s for s in sizes if getattr(init.config, s) != getattr(config, s)]
        if diff:
            raise ValueError(f"config differs from the init model's in architecture field(s) {diff}; "
                             "keep the init model's sizes when adapting")

    device = resolve_device(config.device)
    # what a member process gets a copy of (a split of one recording shares its values)
    data_bytes = train.values.nbytes + (0 if valid is None or valid.values is train.values else valid.values.nbytes)
    members = (auto_members(config, device, data_bytes) if (init is None and resume is None and checkpoint is None)
               else 1)
    if members == 1 and config.ensemble_size > 1:
        raise ValueError(f"config.ensemble_size = {config.ensemble_size} cannot be combined with init, resume "
                         "or checkpoint (a fit of one network); set ensemble_size to 1 (or 0: auto)")
    with thread_limit(config.resolved_num_threads()), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        normaliser = (init.normaliser if init is not None and init.n_neurons == N
                      else window_normaliser(likelihood, train))
        meta = dict(init.metadata) if (init is not None and metadata is None) else dict(metadata or {})
        meta["n_train_trials"] = len(train)
        if members > 1:
            return _fit_ensemble(members, train, valid, likelihood, config, normaliser, progress, seed, rng,
                                 meta, device)
        model = SBTTModel.build(N, likelihood, config, normaliser, device="cpu")
        net = model.network
        init_readout(net.likelihood, net.readout.bias, normaliser, train)
        if init is not None:
            if init.n_neurons == N:
                net.load_state_dict(init.network.state_dict())
            else:
                net.load_state_dict({**net.state_dict(), **init.network.dynamics_state()})
        net.to(device)
        trainer = Trainer(net, config, normaliser, device=device, seed=seed, rng=rng, progress=progress,
                          likelihood=likelihood)
        if checkpoint is not None:
            def snapshot() -> tuple[TrainingState, SBTTModel]:
                state = trainer.training_state()
                with torch.random.fork_rng(devices=[]):  # building draws weights: keep the fit's generator
                    best = SequentialAutoencoder(N, config, make_likelihood(likelihood, N, config))
                best.load_state_dict(state.best_network)
                model = SBTTModel(best, likelihood, config, normaliser, history=state.history,
                                  best_epoch=state.best_epoch, metadata={**meta, "n_bins": train.length},
                                  stop_reason="checkpoint", device=device)
                return state, model

            trainer.checkpoint = lambda report: checkpoint(report, snapshot)
        outcome = trainer.fit(train, valid, resume=resume)
        meta["n_bins"] = outcome.n_bins
        return SBTTModel(net, likelihood, config, normaliser, history=outcome.history,
                         best_epoch=outcome.best_epoch, metadata=meta, stop_reason=outcome.stop_reason,
                         device=device)


#: seeds of an ensemble's members: member j draws from ``seed + j * MEMBER_SEED_STEP`` (member 0
#: from the fit's own seed); far apart so that members never share the shuffling or mask streams
#: (``seed + 1``, ``seed + 2``) of another
MEMBER_SEED_STEP = 7919


def _fit_ensemble(k: int, train: Any, valid: Any, likelihood: str, config: SBTTConfig,
                  normaliser: Normaliser, progress: ProgressCallback | None, seed: int,
                  rng: np.random.Generator, meta: dict[str, Any], device: torch.device) -> SBTTModel:
    """``k`` networks trained at once, merged into one model (:mod:`.ensemble`): the first in a
    thread of this process, each other one in a child process of its own (:mod:`.member_process`).

    Every member sees the same training and validation windows and the same held-out samples (a
    copy of ``rng`` each) and starts from the same data-driven readout and likelihood parameters,
    so their validation losses measure one thing; each draws its weights, shuffling,
    coordinated-dropout masks and dropout from its own seed, so a CPU fit repeats per ``seed``.
    A member whose fit fails (no finite validation loss, or its process failed) is left out with
    a warning; the fit fails only when every member does. A fit with ``max_seconds`` ends every
    member at the same wall-clock time (a child's clock counts from the fit's start, its
    process's start-up included). Called inside fit_trials' thread limit and forked
    generator."""
    import copy
    import time

    from ..core.progress import asks_to_stop

    N = train.shape[2]
    n_threads = member_threads(config, k)
    seeds = [seed + j * MEMBER_SEED_STEP for j in range(k)]
    started = time.time()  # a member process's clock and budget count from here
    nets = []
    for j, s in enumerate(seeds):
        torch.manual_seed(s)
        net = SequentialAutoencoder(N, config, make_likelihood(likelihood, N, config))
        if j == 0:
            init_readout(net.likelihood, net.readout.bias, normaliser, train)
            start = {"bias": net.readout.bias.detach().clone(),
                     "likelihood": {n: v.clone() for n, v in net.likelihood.state_dict().items()}}
        else:  # the same data-driven start, without reading every window again
            with torch.no_grad():
                net.readout.bias.copy_(start["bias"])
            net.likelihood.load_state_dict(start["likelihood"])
        nets.append(net)
    # member 0 trains in this process (a thread of it), the others each in a child process of
    # their own (model.member_process): a fit's Python loop would otherwise share one interpreter
    nets[0].to(device)
    nets[0].noise = torch.Generator(device=device).manual_seed(seeds[0] + 3)
    trainer = Trainer(nets[0], config, normaliser, device=device, seed=seeds[0], rng=copy.deepcopy(rng),
                      likelihood=likelihood)

    def fit_here(member_progress: ProgressCallback) -> Any:
        # this thread's torch thread count; fit_trials' limit restores the caller's after all end
        torch.set_num_threads(n_threads)
        trainer.progress = member_progress
        try:
            return trainer.fit(train, valid)
        except FloatingPointError as exc:  # this member found no usable epoch: the others go on
            return exc

    def fit_child(j: int) -> Callable[[ProgressCallback], Any]:
        job = {"weights": {n: v.detach().cpu().numpy() for n, v in nets[j].state_dict().items()},
               "config": config.to_dict(), "likelihood": likelihood, "n_neurons": N, "normaliser": normaliser,
               "device": str(device), "seed": seeds[j], "noise_seed": seeds[j] + 3, "rng": copy.deepcopy(rng),
               "train": train, "valid": valid, "threads": n_threads, "started": started, "member": j,
               "fused_unroll": nets[0].fused_unroll}

        def run(member_progress: ProgressCallback) -> Any:
            try:
                weights, outcome = train_in_process(job, member_progress)
            except (FloatingPointError, MemberProcessError) as exc:  # left out; the others go on
                return exc
            nets[j].load_state_dict({n: torch.from_numpy(v) for n, v in weights.items()})
            nets[j].to(device).eval()
            return outcome
        return run

    outcomes = run_members([fit_here] + [fit_child(j) for j in range(1, k)], progress, asks_to_stop)
    failures = (FloatingPointError, MemberProcessError)
    done = [j for j, o in enumerate(outcomes) if not isinstance(o, failures)]
    if not done:
        raise outcomes[0]
    if len(done) < k:
        failed = next(o for o in outcomes if isinstance(o, failures))
        warnings.warn(f"{k - len(done)} of the {k} networks of this fit found no usable epoch or failed "
                      f"({str(failed).splitlines()[0]}); the model merges the other {len(done)}", stacklevel=3)
    members = [nets[j] for j in done]
    for net in members:
        net.noise = None
    merged = merge_networks(members, config, likelihood)
    lead = outcomes[done[0]]
    reasons = [outcomes[j].stop_reason for j in done]
    reason = next((r for r in ("callback", "diverged") if r in reasons), reasons[0])
    meta["n_bins"] = lead.n_bins
    meta["ensemble"] = {
        "members": len(done),
        "member_seeds": [seeds[j] for j in done],
        "member_epochs": [len(outcomes[j].history) for j in done],
        "member_best_epochs": [int(outcomes[j].best_epoch) for j in done],
        "member_best_valid_loss": [min(r.best_valid_loss for r in outcomes[j].history) for j in done],
        # seconds each member trained (a member process's counted from the fit's start, its start-up included)
        "member_seconds": [float(outcomes[j].history[-1].seconds) for j in done],
        "member_stop_reasons": reasons,
        "failed_member_seeds": [seeds[j] for j in range(k) if j not in done],
        # the merged network's own early-stopping loss, on the members' held-out entries
        "merged_valid_loss": float(trainer.validation_loss(merged)),
    }
    return SBTTModel(merged, likelihood, merged_config(config, len(done)), normaliser, history=lead.history,
                     best_epoch=lead.best_epoch, metadata=meta, stop_reason=reason, device=device)


def load_model(path: str | os.PathLike, *, device: str | None = None,
               n_neurons: int | None = None, likelihood: str | None = None) -> SBTTModel:
    """Load a checkpoint written by :meth:`SBTTModel.save`.

    ``path``: the ``.safetensors`` file, or a result folder holding ``model.safetensors``.
    device: where to put the model ("auto", "cpu", "cuda"...); default: the device it was trained
    on when this machine has it, else "auto" (CUDA when present, else the CPU), so a model
    trained on a GPU applies on any machine. The loaded model's ``config.device`` is the device
    used, so that adapting it works here too.
    ``n_neurons`` / ``likelihood``: if given, check the model fits that data first and raise
    a clear ValueError if not.

    Every size the metadata declares is checked against the tensors the file ships before the
    network is built, so an edited file cannot make this allocate more than the file holds
    (:func:`~.checkpoint.read_checkpoint`).
    """
    check = None
    if n_neurons is not None or likelihood is not None:
        def check(n_model: int, likelihood_model: str) -> None:
            _check_compatible(n_model, likelihood_model, n_model if n_neurons is None else n_neurons, likelihood)

    c = read_checkpoint(path, device=device, check=check)
    return SBTTModel(c.network, c.likelihood, c.config, c.normaliser, history=c.history,
                     best_epoch=c.best_epoch, metadata=c.metadata, stop_reason=c.stop_reason, device=c.device)
