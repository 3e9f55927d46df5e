"""SBTT training: masked loss, coordinated dropout, sample validation, early stopping.

Masks used per trial (all bool, shape (T, N)):

- observed: the data is not NaN.
- heldout (sample validation): a fixed random share of the observed entries of the
  training trials, never shown to the encoder and never in the training loss; their
  likelihood is ``heldout_loss``.
- input: observed and not held out. Coordinated dropout hides a fresh random share of
  these from the encoder every batch and scores the training loss ONLY on the hidden
  ones, so the network cannot learn to copy its input.

The loss is the mean negative log-likelihood over the scored entries (SBTT: unobserved
entries contribute exactly nothing, in value and in gradient).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Callable

import numpy as np
import torch

from .config import LIKELIHOODS, EpochReport, SBTTConfig, StopTraining
from .likelihoods import make_likelihood, normaliser_for
from .network import SequentialAutoencoder
from .sbtt_model import SBTTModel, resolve_device, thread_limit

__all__ = ["fit_trials", "masked_loss", "validate_trials", "MIN_BINS"]

#: shortest trial the encoder/generator can learn from
MIN_BINS = 3

ProgressCallback = Callable[[EpochReport], Any]


# ----------------------------------------------------------------------------
def masked_loss(nll: torch.Tensor, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of ``nll`` over entries where ``score`` is True, and how many there were.

    ``torch.where`` (not multiplication) so that a non-finite value at an unscored
    entry cannot leak NaN into the sum or the gradients.
    """
    total = torch.where(score, nll, torch.zeros_like(nll)).sum()
    return total, score.sum()


def _fill_targets(values: torch.Tensor, observed: torch.Tensor, fill: float) -> torch.Tensor:
    return torch.where(observed, values, torch.full_like(values, fill))


def validate_trials(data: Any, what: str, likelihood: str, *, n_neurons: int | None = None
                    ) -> np.ndarray:
    """Check one (n_trials, T, N) input and return it as float64 with all-NaN trials removed.

    All-NaN trials carry no information: they are dropped with a warning (an error if
    nothing is left).
    """
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be a numeric array (n_trials, T, N): {e}") from None
    if arr.ndim != 3:
        hint = " (for a single recording use data[None] or cut it into windows)" if arr.ndim == 2 else ""
        raise ValueError(f"{what} must have 3 dimensions (n_trials, T, N); got shape {arr.shape}{hint}")
    n_trials, T, N = arr.shape
    if n_trials == 0 or N == 0:
        raise ValueError(f"{what} is empty (shape {arr.shape})")
    if T < MIN_BINS:
        raise ValueError(f"{what} has T = {T} bins per trial; need at least {MIN_BINS}. "
                         "Use longer windows")
    if np.isinf(arr).any():
        raise ValueError(f"{what} contains inf; mark unobserved entries with NaN (the only missing marker)")
    if n_neurons is not None and N != n_neurons:
        raise ValueError(f"{what} has {N} neurons but train has {n_neurons}")
    obs = np.isfinite(arr)
    empty = ~obs.reshape(n_trials, -1).any(axis=1)
    if empty.all():
        raise ValueError(f"{what} has no observed values at all (everything is NaN)")
    if empty.any():
        idx = np.flatnonzero(empty)
        warnings.warn(f"{what}: dropping {idx.size} trial(s) with no observed values "
                      f"(indices {idx[:10].tolist()}{'...' if idx.size > 10 else ''})", stacklevel=3)
        arr = arr[~empty]
    make_likelihood(likelihood, N, SBTTConfig()).validate_data(arr, what)
    return arr


def _check_neurons_observed(train: np.ndarray, what: str = "train") -> None:
    seen = np.isfinite(train).any(axis=(0, 1))
    if not seen.all():
        idx = np.flatnonzero(~seen)
        raise ValueError(
            f"neuron(s) {idx[:20].tolist()}{'...' if idx.size > 20 else ''} are never observed in "
            f"{what}; the model cannot learn them. Remove those ROIs or add trials in which they "
            "are sampled")


def _random_mask(observed: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    if share <= 0:
        return np.zeros_like(observed)
    return observed & (rng.random(observed.shape) < share)


# ----------------------------------------------------------------------------
def fit_trials(
    train: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    likelihood: str = "poisson",
    config: SBTTConfig | None = None,
    progress: ProgressCallback | None = None,
    seed: int = 0,
    init: SBTTModel | None = None,
    metadata: dict[str, Any] | None = None,
) -> SBTTModel:
    """Train an SBTT sequential autoencoder on trials with missing entries.

    Parameters
    ----------
    train, valid : float arrays (n_trials, T, N), NaN where not observed
        Data units: counts per bin (poisson), dF/F or any continuous signal (gaussian,
        calcium), deconvolved event sizes >= 0 (zig). ``valid`` trials are only used for
        early stopping. Without ``valid``, ``config.valid_fraction`` of the trials are split
        off when there are at least 5 trials; otherwise early stopping uses the held-out
        samples (sample validation). All-NaN trials are dropped with a warning.
    likelihood : "poisson" | "gaussian" | "zig" | "calcium"
    config : SBTTConfig, optional
        Defaults to ``SBTTConfig.default_for(likelihood)`` (the benchmark-chosen settings of
        each likelihood, e.g. the SBTT demo protocol's for "poisson"; a 90 s budget there), or
        ``init.config`` when adapting.
    progress : callable(EpochReport) -> bool | str | None, optional
        Called after every epoch. Returning True or "stop", or raising StopTraining, ends
        training; the best weights so far are kept.
    seed : int
        Seeds weights, masks, shuffling and dropout; fits on CPU are deterministic per seed.
    init : SBTTModel, optional
        Start from this model's weights. With the same N everything is kept; with another N
        only the dynamics (encoder core, initial condition, generator, controller, factors)
        are kept and the read-in, readout and per-neuron likelihood parameters re-learned.
    metadata : dict, optional
        JSON-able description of the data (units, bin width, grid...) stored with the model.

    Returns
    -------
    SBTTModel holding the weights of the best validation epoch.
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

    train = validate_trials(train, "train", likelihood)
    N = train.shape[-1]
    if valid is not None:
        valid = validate_trials(valid, "valid", likelihood, n_neurons=N)
        if valid.shape[1] != train.shape[1]:
            warnings.warn("valid trials have a different length from train trials; that is fine "
                          "but early stopping compares them at their own length", stacklevel=2)
    rng = np.random.default_rng(seed)
    if valid is None and train.shape[0] >= 5 and config.valid_fraction > 0:
        perm = rng.permutation(train.shape[0])
        n_valid = max(1, int(round(config.valid_fraction * train.shape[0])))
        valid, train = train[perm[:n_valid]], train[perm[n_valid:]]
    _check_neurons_observed(train)
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
    with thread_limit(config.resolved_num_threads()), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _fit(train, valid, likelihood, config, progress, seed, rng, device, init, metadata)


def _fit(train: np.ndarray, valid: np.ndarray | None, likelihood: str, config: SBTTConfig,
         progress: ProgressCallback | None, seed: int, rng: np.random.Generator,
         device: torch.device, init: SBTTModel | None, metadata: dict[str, Any] | None) -> SBTTModel:
    N = train.shape[-1]
    if init is not None and init.n_neurons == N:
        normaliser = init.normaliser
    else:
        normaliser = normaliser_for(likelihood, train)
    model = SBTTModel.build(N, likelihood, config, normaliser, device="cpu")
    net: SequentialAutoencoder = model.network
    lik = net.likelihood
    train_model_units = normaliser.to_model(train)
    lik.init_readout_bias(net.readout.bias, train_model_units)
    if init is not None:
        src = init.network.state_dict()
        if init.n_neurons == N:
            net.load_state_dict(src)
        else:
            net.load_state_dict({**net.state_dict(), **init.network.dynamics_state()})
    net.to(device)

    fill = float(lik.fill_value)

    def tensors(arr: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        obs = np.isfinite(arr)
        vals = np.where(obs, normaliser.to_model(np.nan_to_num(arr)), fill)
        return (torch.as_tensor(vals, dtype=torch.float32, device=device),
                torch.as_tensor(obs, device=device))

    x_tr, obs_tr = tensors(train)
    held_np = _random_mask(obs_tr.cpu().numpy(), config.sample_validation, rng)
    held_tr = torch.as_tensor(held_np, device=device)
    in_tr = obs_tr & ~held_tr
    if valid is not None:
        x_va, obs_va = tensors(valid)
        share = config.sample_validation if config.sample_validation > 0 else 0.2
        held_va = torch.as_tensor(_random_mask(obs_va.cpu().numpy(), share, rng), device=device)
        if held_va.sum() == 0:
            held_va = obs_va.clone()
    has_heldout = bool(held_tr.any())
    if valid is None and not has_heldout:
        warnings.warn("no validation trials and sample_validation = 0: early stopping uses the "
                      "training loss, which does not detect overfitting", stacklevel=3)

    # With validation trials the held-out samples only get reported, so their loss is read off
    # the training passes for free (train mode: dropout on, and coordinated dropout hides a few
    # more inputs, so it is slightly pessimistic). Without validation trials they drive early
    # stopping and are scored in a separate eval-mode pass.
    free_heldout = valid is not None
    # shuffling on a CPU generator (same order on any device); coordinated-dropout masks are
    # drawn directly on the training device by a generator living there (no host round trip)
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    mask_gen = torch.Generator(device=device).manual_seed(seed + 2)
    n_train, T, _ = x_tr.shape
    bs = min(config.batch_size, n_train)
    lr = float(config.learning_rate)
    cosine = config.lr_schedule == "cosine"
    warmup = config.lr_warmup_epochs
    min_lr = min(float(config.min_learning_rate), lr)

    def make_opt(lr_: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(net.parameters(), lr=lr_, weight_decay=config.weight_decay)

    def scheduled_lr(epoch_: float, elapsed_: float) -> float:
        """Learning rate of the warm-up ramp and, for the cosine schedule, the annealing."""
        peak = lr
        if epoch_ < warmup:
            peak = lr * (math.floor(epoch_) + 1) / (warmup + 1)
        if not cosine:
            return peak
        frac = epoch_ / config.max_epochs
        if config.max_seconds is not None:
            frac = max(frac, elapsed_ / config.max_seconds)
        frac = min(max(frac, 0.0), 1.0)
        lo = min(min_lr, peak)
        return lo + (peak - lo) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def set_lr(value: float) -> None:
        for g in opt.param_groups:
            g["lr"] = value

    opt = make_opt(lr)
    kl_scale = config.kl_weight / float(T * N)
    sparsity = float(config.rate_sparsity) if likelihood == "calcium" else 0.0

    @torch.no_grad()
    def evaluate(x: torch.Tensor, inp: torch.Tensor, score: torch.Tensor) -> float:
        net.eval()
        tot = x.new_zeros(())
        cnt = 0
        for s in range(0, x.shape[0], 256):
            o = net(x[s:s + 256], inp[s:s + 256])
            nll = lik.nll(o.raw, x[s:s + 256])
            t, c = masked_loss(nll, score[s:s + 256])
            tot += t
            cnt += c
        cnt = int(cnt)
        return float(tot) / cnt if cnt else float("nan")

    def snapshot() -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in net.state_dict().items()}

    best_state = snapshot()
    best_epoch, best_loss = -1, math.inf
    history: list = []
    retries = 0
    last_decay = 0
    stop_reason = "max_epochs"
    t0 = time.perf_counter()
    epoch = 0
    n_batches = max(1, math.ceil(n_train / bs))
    while epoch < config.max_epochs:
        net.train()
        if not cosine:
            if epoch < warmup:
                set_lr(scheduled_lr(epoch, 0.0))
            elif epoch == warmup:
                set_lr(lr)
        perm = torch.randperm(n_train, generator=gen).to(device)
        # running sums stay on the device; one host sync per epoch, not per batch
        tot = x_tr.new_zeros(())
        cnt = torch.zeros((), dtype=torch.long, device=device)
        h_tot = x_tr.new_zeros(())
        h_cnt = torch.zeros((), dtype=torch.long, device=device)
        diverged = False
        for bi, s in enumerate(range(0, n_train, bs)):
            if cosine:
                set_lr(scheduled_lr(epoch + bi / n_batches, time.perf_counter() - t0))
            idx = perm[s:s + bs]
            xb, inb = x_tr[idx], in_tr[idx]
            if config.coordinated_dropout > 0:
                u = torch.rand(inb.shape, generator=mask_gen, device=device)
                drop = inb & (u < config.coordinated_dropout)
                enc_in, score = inb & ~drop, drop
            else:
                enc_in, score = inb, inb
            out = net(xb, enc_in)
            nll = lik.nll(out.raw, xb)
            total, count = masked_loss(nll, score)
            recon = total / count.clamp(min=1)
            loss = recon + kl_scale * out.kl
            if sparsity > 0:
                # the prior covers every bin; per observed entry, as the likelihood's mean
                loss = loss + sparsity * lik.sparsity_cost(out.raw).sum() / inb.sum().clamp(min=1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                gnorm = torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
                ok = torch.isfinite(gnorm) & torch.isfinite(loss)
            else:
                ok = torch.isfinite(loss)
            if not bool(ok):
                diverged = True
                break
            opt.step()
            tot += total.detach()
            cnt += count
            if free_heldout:
                with torch.no_grad():
                    ht, hc = masked_loss(nll.detach(), held_tr[idx])
                h_tot += ht
                h_cnt += hc
        if diverged:
            retries += 1
            net.load_state_dict(best_state)
            if retries > config.max_divergence_retries:
                msg = (f"training diverged (non-finite loss) {retries} times, even after halving the "
                       f"learning rate to {lr:g}")
                if best_epoch < 0:
                    raise FloatingPointError(msg + "; no usable epoch was reached. Check the data "
                                             "for extreme values or lower config.learning_rate")
                warnings.warn(msg + f"; stopping and keeping the best epoch ({best_epoch})", stacklevel=3)
                stop_reason = "diverged"
                break
            lr = max(lr * 0.5, 1e-8)
            warnings.warn(f"non-finite loss at epoch {epoch}; rolled back to epoch {best_epoch} and "
                          f"halved the learning rate to {lr:g} (retry {retries}/"
                          f"{config.max_divergence_retries})", stacklevel=3)
            opt = make_opt(lr)
            continue
        cnt_i, h_cnt_i = int(cnt), int(h_cnt)
        train_loss = float(tot) / max(cnt_i, 1)
        if not has_heldout:
            heldout = float("nan")
        elif free_heldout:
            heldout = float(h_tot) / h_cnt_i if h_cnt_i else float("nan")
        else:
            heldout = evaluate(x_tr, in_tr, held_tr)
        if valid is not None:
            vloss = evaluate(x_va, obs_va & ~held_va, held_va)
        elif has_heldout:
            vloss = heldout
        else:
            vloss = train_loss
        if not math.isfinite(vloss):
            vloss = math.inf
        is_best = vloss < best_loss
        if is_best:
            best_loss, best_epoch = vloss, epoch
            best_state = snapshot()
        elif (not cosine and config.lr_patience > 0 and epoch - best_epoch >= config.lr_patience
              and epoch - last_decay >= config.lr_patience and lr > config.min_learning_rate):
            lr = max(lr * 0.5, config.min_learning_rate)
            for g in opt.param_groups:
                g["lr"] = lr
            last_decay = epoch
        elapsed = time.perf_counter() - t0
        report = EpochReport(epoch=epoch, total_epochs=config.max_epochs, train_loss=train_loss,
                             valid_loss=vloss, heldout_loss=heldout, seconds=elapsed,
                             best_epoch=best_epoch, best_valid_loss=best_loss, is_best=is_best,
                             learning_rate=float(opt.param_groups[0]["lr"]))
        history.append(report)
        epoch += 1
        if progress is not None:
            try:
                answer = progress(report)
            except StopTraining:
                answer = True
            if answer is True or (isinstance(answer, str) and answer.lower() == "stop"):
                stop_reason = "callback"
                break
        if config.patience > 0 and epoch - 1 - best_epoch >= config.patience:
            stop_reason = "early_stopping"
            break
        if config.max_seconds is not None and elapsed >= config.max_seconds:
            stop_reason = "time_budget"
            break

    if best_epoch < 0:
        raise FloatingPointError("training produced no finite validation loss; check the data for "
                                 "extreme values or lower config.learning_rate")
    net.load_state_dict(best_state)
    net.eval()
    meta = dict(init.metadata) if (init is not None and metadata is None) else dict(metadata or {})
    meta["n_train_trials"] = int(train.shape[0])
    meta["n_bins"] = int(T)
    return SBTTModel(net, likelihood, config, normaliser, history=history, best_epoch=best_epoch,
                     metadata=meta, stop_reason=stop_reason, device=device)
