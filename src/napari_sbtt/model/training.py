"""SBTT training: the masked loss and the :class:`Trainer` that fits a network on trials with
missing entries.

Masks used per trial (all bool, shape (T, N); see :mod:`.masking`):

- observed: the data is not NaN.
- held out (sample validation): a fixed random share of the observed entries of the training
  trials, never shown to the encoder and never in the training loss; their likelihood is
  ``heldout_loss``.
- input: observed and not held out. Coordinated dropout hides a fresh random share of these
  from the encoder every batch and scores the training loss ONLY on the hidden ones, so the
  network cannot learn to copy its input.

The loss is the mean negative log-likelihood over the scored entries (SBTT: unobserved entries
contribute exactly nothing, in value and in gradient), plus the KL terms and, for the calcium
likelihood, the optional sparsity prior on the rates (``rate_sparsity``).

Data: the trials are windows, (n_trials, T, N) in data units, given as one array or as a
:class:`~napari_sbtt.core.windows.WindowStore` (windows drawn from one continuous recording, kept
once). Either way the trainer holds no copy of them: it takes each batch's windows (and the
validation windows, 256 at a time) when it needs them and turns just those into model-unit
tensors; the held-out entries are kept as bits per window (:class:`~.masking.PackedMask`). An
array and a store of the same windows give the same fit to the bit.

The trainer works on a network; :func:`napari_sbtt.model.fit_trials` (in :mod:`.sbtt_model`)
checks the data, builds the network and wraps the outcome into an SBTTModel.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Union

import numpy as np
import torch

from ..core.windows import WindowStore
from .config import EpochReport, SBTTConfig
from .likelihoods import STANDARDISED, Likelihood, Normaliser, make_likelihood
from .masking import BLOCK_ENTRIES, CoordinatedDropout, PackedMask, SampleValidation
from .network import SequentialAutoencoder
from .schedule import LearningRateSchedule

__all__ = ["Trainer", "TrainOutcome", "TrainingState", "TrainingWindows", "masked_loss", "validate_trials",
           "check_neurons_observed", "column_blocks", "window_normaliser", "init_readout", "MIN_BINS"]

#: training or validation windows: an (n_trials, T, N) array, or a WindowStore of windows of one
#: recording (values (T_rec, N), windows of T bins); data units, NaN where not observed
TrainingWindows = Union[np.ndarray, WindowStore]

#: shortest trial the encoder/generator can learn from
MIN_BINS = 3

#: after every epoch: the report; an answer of True / "stop" (or a RunControl's True) stops
ProgressCallback = Callable[[EpochReport], Any]


# ----------------------------------------------------------------------------
def masked_loss(nll: torch.Tensor, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of ``nll`` over entries where ``score`` is True, and how many there were.

    ``torch.where`` (not multiplication) so that a non-finite value at an unscored
    entry cannot leak NaN into the sum or the gradients.
    """
    total = torch.where(score, nll, torch.zeros_like(nll)).sum()
    return total, score.sum()


def _window_step(shape: tuple[int, int, int]) -> int:
    """Windows per block when a set of windows is read a block at a time (about BLOCK_ENTRIES
    entries: a few float64 temporaries of that size, not of all windows)."""
    return max(1, BLOCK_ENTRIES // max(1, shape[1] * shape[2]))


def validate_trials(data: TrainingWindows, what: str, likelihood: str, *,
                    n_neurons: int | None = None) -> WindowStore:
    """Check one set of windows and return them as a WindowStore, all-NaN windows left out.

    ``data``: an (n_trials, T, N) array or a WindowStore, data units, NaN where not observed. No
    copy of the values is made (an array of another dtype than float32 / float64 is converted
    to float64 once); they are read a block of windows at a time. All-NaN trials carry no
    information: they are dropped with a warning (an error if nothing is left).
    """
    if isinstance(data, WindowStore):
        store = data
        if not np.issubdtype(store.values.dtype, np.number) or np.issubdtype(store.values.dtype, np.complexfloating):
            raise ValueError(f"{what} must hold real numbers, got dtype {store.values.dtype}")
        shape = store.shape
    else:
        try:
            arr = np.asarray(data)
            if arr.dtype not in (np.float32, np.float64):
                arr = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{what} must be a numeric array (n_trials, T, N): {e}") from None
        if arr.ndim != 3:
            hint = " (for a single recording use data[None] or cut it into windows)" if arr.ndim == 2 else ""
            raise ValueError(f"{what} must have 3 dimensions (n_trials, T, N); got shape {arr.shape}{hint}")
        shape = arr.shape
    n_trials, T, N = shape
    if n_trials == 0 or N == 0:
        raise ValueError(f"{what} is empty (shape {shape})")
    if T < MIN_BINS:
        raise ValueError(f"{what} has T = {T} bins per trial; need at least {MIN_BINS}. "
                         "Use longer windows")
    if not isinstance(data, WindowStore):
        store = WindowStore.from_windows(arr)
    lik = make_likelihood(likelihood, N, SBTTConfig())
    empty = np.zeros(n_trials, dtype=bool)
    has_inf = False
    impossible: ValueError | None = None
    for i0, block in store.blocks(_window_step(store.shape)):
        has_inf = has_inf or bool(np.isinf(block).any())
        empty[i0:i0 + block.shape[0]] = ~np.isfinite(block).reshape(block.shape[0], -1).any(axis=1)
        if impossible is None:
            try:
                lik.validate_data(block, what)
            except ValueError as e:
                impossible = e
    if has_inf:
        raise ValueError(f"{what} contains inf; mark unobserved entries with NaN (the only missing marker)")
    if n_neurons is not None and n_neurons != N:
        raise ValueError(f"{what} has {N} neurons but train has {n_neurons}")
    if empty.all():
        raise ValueError(f"{what} has no observed values at all (everything is NaN)")
    if empty.any():
        idx = np.flatnonzero(empty)
        warnings.warn(f"{what}: dropping {idx.size} trial(s) with no observed values "
                      f"(indices {idx[:10].tolist()}{'...' if idx.size > 10 else ''})", stacklevel=3)
        store = store.subset(np.flatnonzero(~empty))
    if impossible is not None:
        raise impossible
    return store


def check_neurons_observed(train: TrainingWindows, what: str = "train") -> None:
    """Raise ValueError naming the neurons that no trial observes (the model cannot learn them).

    ``train``: (n_trials, T, N) array or WindowStore (read a block of windows at a time)."""
    store = train if isinstance(train, WindowStore) else WindowStore.from_windows(np.asarray(train))
    seen = np.zeros(store.shape[2], dtype=bool)
    for _, block in store.blocks(_window_step(store.shape)):
        seen |= np.isfinite(block).any(axis=(0, 1))
    if not seen.all():
        idx = np.flatnonzero(~seen)
        raise ValueError(
            f"neuron(s) {idx[:20].tolist()}{'...' if idx.size > 20 else ''} are never observed in "
            f"{what}; the model cannot learn them. Remove those ROIs or add trials in which they "
            "are sampled")


def column_blocks(store: WindowStore) -> Iterator[tuple[slice, np.ndarray]]:
    """The windows' values a block of neurons at a time: (columns, values), ``values`` float64
    (n_trials * T, n_columns), C-contiguous, what ``windows.reshape(-1, N)[:, columns]`` holds
    for the (n_trials, T, N) windows (rows in window order).

    Per-neuron statistics of a block equal those over all neurons at once to the bit, because
    every block has at least two columns (one column only when N = 1): numpy sums the columns of
    an (M, k >= 2) array row by row, as it does for all N, but a single (M, 1) column pairwise.
    A block holds about BLOCK_ENTRIES values (at least two columns of every window).
    """
    n, length, n_cols = store.shape
    width = max(2, BLOCK_ENTRIES // max(1, n * length))
    everything = np.arange(n)
    c0 = 0
    while c0 < n_cols:
        c1 = min(n_cols, c0 + width)
        if n_cols - c1 == 1:  # never leave a last column alone
            c1 = n_cols
        block = store.take(everything, columns=slice(c0, c1), dtype=np.float64)
        yield slice(c0, c1), block.reshape(n * length, c1 - c0)
        c0 = c1


def window_normaliser(likelihood: str, train: WindowStore) -> Normaliser:
    """:func:`~.likelihoods.normaliser_for` of all the windows of ``train``, computed a block of
    neurons at a time (:func:`column_blocks`): the same numbers, no copy of all windows."""
    n_cols = train.shape[2]
    if likelihood not in STANDARDISED:
        return Normaliser.identity(n_cols)
    offset, scale = np.empty(n_cols), np.empty(n_cols)
    for cols, flat in column_blocks(train):
        part = Normaliser.standardise(flat)
        offset[cols], scale[cols] = part.offset, part.scale
    return Normaliser(offset, scale)


def init_readout(likelihood: Likelihood, bias: torch.Tensor, normaliser: Normaliser, train: WindowStore) -> None:
    """``likelihood.init_readout_bias`` from all the windows of ``train`` in model units, a block of
    neurons at a time (:func:`column_blocks`; each neuron's start comes from its own column)."""
    for cols, flat in column_blocks(train):
        part = Normaliser(normaliser.offset[cols], normaliser.scale[cols])
        likelihood.init_readout_bias(bias, part.to_model(flat), columns=cols)


@dataclass
class TrainOutcome:
    """What :meth:`Trainer.fit` returns; the network itself holds the best epoch's weights."""

    history: list[EpochReport] = field(default_factory=list)
    best_epoch: int = -1
    stop_reason: str = "max_epochs"
    n_bins: int = 0


@dataclass
class TrainingState:
    """Everything a fit needs to go on exactly where it was: a real resume (Population Based
    Training's exploit, a restarted trial), not a fine-tune from the weights alone.

    ``network`` / ``best_network``: state dicts of the current and of the best epoch's weights;
    ``optimizer``: the AdamW state dict (moments, steps, param groups); ``epoch``: epochs done;
    ``schedule``: the learning-rate schedule's peak and last decay epoch, with the
    ``learning_rate`` of the config they belong to; ``rng``: the states of the shuffling, the
    coordinated-dropout and torch's global (dropout) generators, as uint8 tensors (a network
    with a dropout generator of its own, ``network.noise``, is trained only by ensembles, which
    never resume). Written and
    read without pickle by :func:`~napari_sbtt.model.checkpoint.save_training_state` /
    :func:`~napari_sbtt.model.checkpoint.read_training_state`.
    """

    network: dict[str, torch.Tensor]
    best_network: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    epoch: int
    best_epoch: int
    best_loss: float
    retries: int
    history: list[EpochReport]
    schedule: dict[str, float]
    rng: dict[str, torch.Tensor]
    seconds: float = 0.0


@dataclass
class _Split:
    """Windows of one role (training or validation) and their held-out entries: the encoder sees
    the observed entries that are not held out; the held-out ones are scored."""

    windows: WindowStore
    held: PackedMask


@dataclass
class _Epoch:
    """Sums of one epoch's training passes (on the device until the epoch ends)."""

    total: torch.Tensor
    count: torch.Tensor
    held_total: torch.Tensor
    held_count: torch.Tensor


class Trainer:
    """Fits ``network`` (weights initialised, on ``device``) to trials, with early stopping.

    Parameters
    ----------
    network : the sequential autoencoder; its likelihood scores the data.
    config : sizes do not matter here; the optimisation, masks, schedule and budgets do.
    normaliser : data units -> model units.
    device : where the network and the data live.
    seed : seeds the shuffling (CPU generator, ``seed + 1``) and the coordinated-dropout masks
        (a generator on the device, ``seed + 2``); with ``rng`` (the held-out entries) and the
        network's dropout generator (``network.noise``, or torch's global one when None) a CPU
        fit is deterministic.
    rng : the numpy generator of the held-out entries.
    progress : called after every epoch with the EpochReport; an answer of True or "stop" (a
        :class:`~napari_sbtt.core.progress.RunControl` answers whether a stop was asked for) or
        raising StopTraining ends training with the best weights so far.
    """

    def __init__(self, network: SequentialAutoencoder, config: SBTTConfig, normaliser: Normaliser, *,
                 device: torch.device, seed: int, rng: np.random.Generator,
                 progress: ProgressCallback | None = None, likelihood: str = "") -> None:
        self.net = network
        self.lik = network.likelihood
        self.config = config
        self.normaliser = normaliser
        self.device = device
        self.progress = progress
        self.sparsity = float(config.rate_sparsity) if likelihood == "calcium" else 0.0
        self.sample_validation = SampleValidation(config.sample_validation, rng)
        # shuffling on a CPU generator (same order on any device); coordinated-dropout masks are
        # drawn directly on the training device by a generator living there (no host round trip)
        self.shuffle = torch.Generator(device="cpu").manual_seed(seed + 1)
        self.dropout = CoordinatedDropout(config.coordinated_dropout,
                                          torch.Generator(device=device).manual_seed(seed + 2))
        self.schedule = LearningRateSchedule(config)
        #: called after every epoch with its report, before ``progress``; it may call
        #: :meth:`training_state` to save a resumable checkpoint
        self.checkpoint: Callable[[EpochReport], Any] | None = None
        self._live: tuple[int, dict[str, torch.Tensor], float, int, TrainOutcome] | None = None
        #: the training and validation windows with their held-out entries, once :meth:`fit` starts
        self.train: _Split | None = None
        self.valid: _Split | None = None
        self._resumed_seconds = 0.0
        #: seconds of the fit's wall-clock budget spent before this trainer started (an ensemble
        #: member's process start-up): counted in its elapsed time, its budget and its schedule
        self.late_start_s = 0.0

    # ------------------------------------------------------------------ data
    def _observed_blocks(self, windows: WindowStore) -> Iterator[np.ndarray]:
        """Observed entries (bool (k, T, N)) of consecutive blocks of windows, in order."""
        for _, block in windows.blocks(_window_step(windows.shape)):
            yield np.isfinite(block)

    def _gather(self, split: _Split, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Windows ``idx`` of ``split`` on the device: (values in model units with the
        likelihood's fill where missing, float32 (k, T, N); the encoder's inputs, observed and not
        held out; the held-out entries), both bool (k, T, N). Read a block of windows at a time
        (float64 temporaries of a block only)."""
        _, T, N = split.windows.shape
        k = int(idx.size)
        vals = torch.empty((k, T, N), dtype=torch.float32, device=self.device)
        inputs = torch.empty((k, T, N), dtype=torch.bool, device=self.device)
        held = torch.empty((k, T, N), dtype=torch.bool, device=self.device)
        step = _window_step(split.windows.shape)
        offset, scale = self.normaliser.offset, self.normaliser.scale
        for s in range(0, k, step):
            part = split.windows.take(idx[s:s + step], dtype=np.float64)
            obs = np.isfinite(part)
            # in place, the numbers of Normaliser.to_model at the observed entries (NaN stays NaN)
            np.subtract(part, offset, out=part)
            np.divide(part, scale, out=part)
            np.copyto(part, float(self.lik.fill_value), where=~obs)
            h = split.held.rows(idx[s:s + step])
            vals[s:s + step] = torch.from_numpy(part)  # to float32 as torch.as_tensor(..., float32)
            inputs[s:s + step] = torch.from_numpy(obs & ~h)
            held[s:s + step] = torch.from_numpy(h)
        return vals, inputs, held

    def _optimiser(self, lr: float) -> torch.optim.Optimizer:
        """AdamW over the network. The calcium kernel's decay takes ``kinetics_lr_scale`` of the
        learning rate and its rise ``rise_lr_scale`` (None: the decay's); each share other than 1
        is a group of its own whose ``lr_scale`` :meth:`_set_lr` applies."""
        kinetics = float(self.config.kinetics_lr_scale)
        rise = self.config.rise_lr_scale
        share = {"log_tau_decay": kinetics, "log_tau_rise": kinetics if rise is None else float(rise)}
        scale_of = {id(p): share[name] for name, p in self.lik.named_parameters() if name in share}
        groups: dict[float, list[torch.nn.Parameter]] = {1.0: []}  # the network's group first
        for p in self.net.parameters():
            groups.setdefault(scale_of.get(id(p), 1.0), []).append(p)
        return torch.optim.AdamW([{"params": ps, "lr_scale": s, "lr": lr * s} for s, ps in groups.items()],
                                 lr=lr, weight_decay=self.config.weight_decay)

    def _set_lr(self, value: float | None) -> None:
        if value is not None:
            for g in self.opt.param_groups:
                g["lr"] = value * g.get("lr_scale", 1.0)

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    # ------------------------------------------------------------------ fit
    def fit(self, train: TrainingWindows, valid: TrainingWindows | None, *,
            resume: TrainingState | None = None) -> TrainOutcome:
        """Train on ``train`` (n_trials, T, N), early-stopping on ``valid`` trials or, without them,
        on the held-out entries; the network ends with the best epoch's weights, in eval mode.

        ``train`` / ``valid``: arrays or WindowStores (:data:`TrainingWindows`; checked by
        :func:`validate_trials`, no all-NaN window), data units. Only a batch's windows are turned
        into tensors at a time; an array and a store of the same windows give the same fit.

        ``resume``: go on from a :class:`TrainingState` of a fit of the same network sizes on the
        same data and seed (weights, optimizer moments, schedule, generators, best epoch so far);
        the held-out entries are drawn again from the same seed, so they are the same ones. With
        the same config, a resumed fit gives the numbers of one that never stopped (CPU). A
        config whose ``learning_rate`` differs from the state's (Population Based Training's
        perturbation) scales the learning rate by the ratio; its ``weight_decay``, dropout,
        coordinated dropout and KL weight apply from the next batch on."""
        config = self.config
        train_w = train if isinstance(train, WindowStore) else WindowStore.from_windows(np.asarray(train))
        # the held-out entries: the same draws, in the same order, as one draw for all windows
        self.train = _Split(train_w, self.sample_validation.training_mask(self._observed_blocks(train_w),
                                                                          train_w.shape))
        self.valid: _Split | None = None
        if valid is not None:
            valid_w = valid if isinstance(valid, WindowStore) else WindowStore.from_windows(np.asarray(valid))
            self.valid = _Split(valid_w, self.sample_validation.validation_mask(
                lambda: self._observed_blocks(valid_w), valid_w.shape))
        has_heldout = self.train.held.count() > 0
        if valid is None and not has_heldout:
            warnings.warn("no validation trials and sample_validation = 0: early stopping uses the "
                          "training loss, which does not detect overfitting", stacklevel=4)
        # With validation trials the held-out samples only get reported, so their loss is read off
        # the training passes for free (train mode: dropout on, and coordinated dropout hides a few
        # more inputs, so it is slightly pessimistic). Without validation trials they drive early
        # stopping and are scored in a separate eval-mode pass.
        self.free_heldout = valid is not None
        n_train, T, N = train_w.shape
        self.batch_size = min(config.batch_size, n_train)
        self.n_batches = max(1, math.ceil(n_train / self.batch_size))
        self.kl_scale = config.kl_weight / float(T * N)
        self.opt = self._optimiser(self.schedule.peak)

        best_state = self._snapshot()
        out = TrainOutcome(n_bins=int(T))
        best_loss = math.inf
        retries = 0
        self.t0 = time.perf_counter() - self.late_start_s
        epoch = 0
        if resume is not None:
            epoch, best_state, best_loss, retries = self._resume(resume, out)
        self._live = (epoch, best_state, best_loss, retries, out)
        while epoch < config.max_epochs:
            sums = self._epoch(epoch)
            if sums is None:  # diverged: back to the best weights, at half the learning rate
                retries += 1
                self.net.load_state_dict(best_state)
                if retries > config.max_divergence_retries:
                    msg = (f"training diverged (non-finite loss) {retries} times, even after halving the "
                           f"learning rate to {self.schedule.peak:g}")
                    if out.best_epoch < 0:
                        raise FloatingPointError(msg + "; no usable epoch was reached. Check the data "
                                                 "for extreme values or lower config.learning_rate")
                    warnings.warn(msg + f"; stopping and keeping the best epoch ({out.best_epoch})", stacklevel=4)
                    out.stop_reason = "diverged"
                    break
                lr = self.schedule.after_divergence()
                warnings.warn(f"non-finite loss at epoch {epoch}; rolled back to epoch {out.best_epoch} and "
                              f"halved the learning rate to {lr:g} (retry {retries}/"
                              f"{config.max_divergence_retries})", stacklevel=4)
                self.opt = self._optimiser(lr)
                continue
            train_loss, heldout = self._losses(sums, has_heldout)
            if self.valid is not None:
                vloss = self._evaluate(self.valid)
            elif has_heldout:
                vloss = heldout
            else:
                vloss = train_loss
            if not math.isfinite(vloss):
                vloss = math.inf
            is_best = vloss < best_loss
            if is_best:
                best_loss, out.best_epoch = vloss, epoch
                best_state = self._snapshot()
            else:
                self._set_lr(self.schedule.epoch_end(epoch, out.best_epoch, improved=False))
            elapsed = time.perf_counter() - self.t0
            report = EpochReport(epoch=epoch, total_epochs=config.max_epochs, train_loss=train_loss,
                                 valid_loss=vloss, heldout_loss=heldout, seconds=elapsed,
                                 best_epoch=out.best_epoch, best_valid_loss=best_loss, is_best=is_best,
                                 learning_rate=float(self.opt.param_groups[0]["lr"]),
                                 max_seconds=config.max_seconds)
            out.history.append(report)
            epoch += 1
            self._live = (epoch, best_state, best_loss, retries, out)
            if self.checkpoint is not None:
                self.checkpoint(report)
            if self._asks_to_stop(report):
                out.stop_reason = "callback"
                break
            if config.patience > 0 and epoch - 1 - out.best_epoch >= config.patience:
                out.stop_reason = "early_stopping"
                break
            if config.max_seconds is not None and elapsed >= config.max_seconds:
                out.stop_reason = "time_budget"
                break

        if out.best_epoch < 0:
            raise FloatingPointError("training produced no finite validation loss; check the data for "
                                     "extreme values or lower config.learning_rate")
        self.net.load_state_dict(best_state)
        self.net.eval()
        return out

    # ------------------------------------------------------------------ resume
    def training_state(self) -> TrainingState:
        """The fit's state after the last finished epoch (copies; see :class:`TrainingState`)."""
        if self._live is None:
            raise RuntimeError("training_state() is available once fit() has started")
        epoch, best_state, best_loss, retries, out = self._live
        return TrainingState(
            network=self._snapshot(),
            best_network={k: v.clone() for k, v in best_state.items()},
            optimizer=self.opt.state_dict(),
            epoch=int(epoch), best_epoch=int(out.best_epoch), best_loss=float(best_loss),
            retries=int(retries), history=list(out.history),
            schedule={"peak": float(self.schedule.peak), "last_decay": float(self.schedule.last_decay),
                      "learning_rate": float(self.config.learning_rate)},
            rng={"shuffle": self.shuffle.get_state(), "dropout": self.dropout.generator.get_state(),
                 "torch": torch.get_rng_state()},
            seconds=float(time.perf_counter() - self.t0) + self._resumed_seconds,
        )

    def _resume(self, state: TrainingState, out: TrainOutcome
                ) -> tuple[int, dict[str, torch.Tensor], float, int]:
        """Load ``state`` into the network, optimizer, schedule and generators; returns (epoch,
        best weights, best loss, retries)."""
        self.net.load_state_dict(state.network)
        self.opt.load_state_dict(state.optimizer)
        ratio = float(self.config.learning_rate) / float(state.schedule["learning_rate"])
        self.schedule.peak = float(state.schedule["peak"]) * ratio
        self.schedule.last_decay = int(state.schedule["last_decay"])
        for g in self.opt.param_groups:
            g["lr"] = float(g["lr"]) * ratio
            g["weight_decay"] = self.config.weight_decay
        self.shuffle.set_state(state.rng["shuffle"])
        self.dropout.generator.set_state(state.rng["dropout"].cpu())
        torch.set_rng_state(state.rng["torch"])
        out.history = list(state.history)
        out.best_epoch = int(state.best_epoch)
        self._resumed_seconds = float(state.seconds)
        best = {k: v.to(self.device) for k, v in state.best_network.items()}
        return int(state.epoch), best, float(state.best_loss), int(state.retries)

    def _asks_to_stop(self, report: EpochReport) -> bool:
        if self.progress is None:
            return False
        from ..core.progress import StopTraining, asks_to_stop

        try:
            answer = self.progress(report)
        except StopTraining:
            answer = True
        return asks_to_stop(answer)

    def _epoch(self, epoch: int) -> _Epoch | None:
        """One pass over the training trials in a random order; None when a loss or gradient was
        not finite (no step was taken for that batch)."""
        net, lik, config = self.net, self.lik, self.config
        net.train()
        self._set_lr(self.schedule.epoch_start(epoch))
        n_train = len(self.train.windows)
        perm = torch.randperm(n_train, generator=self.shuffle).numpy()
        # running sums stay on the device; one host sync per epoch, not per batch
        sums = _Epoch(torch.zeros((), dtype=torch.float32, device=self.device),
                      torch.zeros((), dtype=torch.long, device=self.device),
                      torch.zeros((), dtype=torch.float32, device=self.device),
                      torch.zeros((), dtype=torch.long, device=self.device))
        bs = self.batch_size
        for bi, s in enumerate(range(0, n_train, bs)):
            self._set_lr(self.schedule.batch(epoch, bi, self.n_batches, time.perf_counter() - self.t0))
            xb, inb, heldb = self._gather(self.train, perm[s:s + bs])
            enc_in, score = self.dropout(inb)
            out = net(xb, enc_in)
            nll = lik.nll(out.raw, xb, enc_in)
            total, count = masked_loss(nll, score)
            recon = total / count.clamp(min=1)
            loss = recon + self.kl_scale * out.kl
            if self.sparsity > 0:
                # the prior covers every bin; per observed entry, as the likelihood's mean
                loss = loss + self.sparsity * lik.sparsity_cost(out.raw).sum() / inb.sum().clamp(min=1)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                gnorm = torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
                ok = torch.isfinite(gnorm) & torch.isfinite(loss)
            else:
                ok = torch.isfinite(loss)
            if not bool(ok):
                return None
            self.opt.step()
            sums.total += total.detach()
            sums.count += count
            if self.free_heldout:
                with torch.no_grad():
                    ht, hc = masked_loss(nll.detach(), heldb)
                sums.held_total += ht
                sums.held_count += hc
        return sums

    def _losses(self, sums: _Epoch, has_heldout: bool) -> tuple[float, float]:
        """(training loss, held-out loss) of an epoch, per scored entry."""
        cnt, h_cnt = int(sums.count), int(sums.held_count)
        train_loss = float(sums.total) / max(cnt, 1)
        if not has_heldout:
            heldout = float("nan")
        elif self.free_heldout:
            heldout = float(sums.held_total) / h_cnt if h_cnt else float("nan")
        else:
            heldout = self._evaluate(self.train)
        return train_loss, heldout

    def validation_loss(self, network: SequentialAutoencoder) -> float:
        """The early-stopping loss of another ``network`` (same N and likelihood; e.g. an
        ensemble's merged network) on this fit's data: the validation trials' held-out entries,
        or without validation trials the training trials' held-out entries, in eval mode.
        Available once :meth:`fit` has started; NaN before, or when there is nothing held out."""
        split = self.valid if self.valid is not None else self.train
        return float("nan") if split is None else self._evaluate(split, network)

    @torch.no_grad()
    def _evaluate(self, split: _Split, network: SequentialAutoencoder | None = None) -> float:
        """Mean loss over the held-out entries of ``split``'s windows in eval mode, the encoder
        seeing the other observed entries; 256 windows at a time, in order. ``network``: the one
        to score (default: the fitted one; another must have the same likelihood)."""
        net = self.net if network is None else network
        net.eval()
        tot = torch.zeros((), dtype=torch.float32, device=self.device)
        cnt = 0
        n = len(split.windows)
        for s in range(0, n, 256):
            x, inp, score = self._gather(split, np.arange(s, min(n, s + 256)))
            o = net(x, inp)
            nll = net.likelihood.nll(o.raw, x, inp)
            t, c = masked_loss(nll, score)
            tot += t
            cnt += c
        cnt = int(cnt)
        return float(tot) / cnt if cnt else float("nan")
