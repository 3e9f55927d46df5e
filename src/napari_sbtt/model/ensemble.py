"""Several networks trained side by side and merged into one.

Why: the default fits train with one torch thread (small GRUs gain nothing from more), so a
fit leaves every other CPU core idle. Two networks of different seeds trained at once reach
about twice the epochs of one in the same wall time, and the average of their outputs beats
either one (benchmarks/RESULTS.md, "Issue 14, tenth session": the Lorenz protocol's tune seeds
and a calcium family's tune half). Trained one after the other with half the budget each they
do not pay, so auto (:func:`auto_members`) trains one per core the fit's threads leave free
(cores counted, not checked for other work). :func:`run_members` runs them side by side: the
first in a thread of the caller's process, each other one in a child process of its own
(:mod:`.member_process`; in threads of one process their Python loops shared one interpreter,
which made a calcium fit's epochs 1.1-3x slower).

After training the members are merged exactly into one :class:`~.network.SequentialAutoencoder`
of k times the width (:func:`merge_networks`): every layer's weights are placed block-diagonally
(gate by gate and direction by direction in the GRUs; means before log-variances in the
variational maps), the read-in rows stacked (all members read the same input) and the readout
halves side by side at 1/k weight with the biases averaged. Its raw output is the members' mean
raw output (for spike counts the mean log-rate: the geometric mean of the rates), so the model,
``predict``, checkpoints and every caller stay as they are.

Shapes: k members; sizes as in :class:`~.config.SBTTConfig`.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .config import (
    MAX_AUTO_COPY_BYTES,
    MAX_AUTO_MEMBERS,
    MAX_UNITS,
    UNIT_FIELDS,
    EpochReport,
    SBTTConfig,
    default_num_threads,
)
from .likelihoods import make_likelihood
from .network import SequentialAutoencoder

__all__ = ["auto_members", "member_threads", "merged_config", "merge_networks",
           "run_members"]


def auto_members(config: SBTTConfig, device: torch.device, data_bytes: int = 0) -> int:
    """Members to train for ``config.ensemble_size``: the number itself when > 0 (ValueError
    naming ``ensemble_size`` when the merged network would exceed :data:`~.config.MAX_UNITS`
    units in a layer), else (auto) one per ``resolved_num_threads()`` threads on the machine's
    physical cores (counted, not checked for other work), at most :data:`MAX_AUTO_MEMBERS`, and
    1 on a GPU, where the merged network would be too wide, or where the windows' values
    (``data_bytes``, train and validation) exceed :data:`~.config.MAX_AUTO_COPY_BYTES` (each
    further member holds a copy of them)."""
    widest = max(UNIT_FIELDS, key=lambda f: getattr(config, f))
    most = max(1, MAX_UNITS // getattr(config, widest))  # members whose merged layers fit MAX_UNITS
    if config.ensemble_size > 0:
        k = int(config.ensemble_size)
        if k > most:
            raise ValueError(
                f"SBTTConfig.ensemble_size = {k} merges {k} networks into one whose {widest} would be "
                f"{k * getattr(config, widest)} units, over the limit of {MAX_UNITS}; lower ensemble_size "
                f"or {widest}")
        return k
    if device.type != "cpu" or data_bytes > MAX_AUTO_COPY_BYTES:
        return 1
    return max(1, min(MAX_AUTO_MEMBERS, most,
                      default_num_threads() // max(1, config.resolved_num_threads())))


def member_threads(config: SBTTConfig, k: int) -> int:
    """Torch threads of each of ``k`` members: ``num_threads`` when set, else the physical
    cores shared out (at least 1), so that k members never run more threads than cores."""
    if config.num_threads > 0:
        return int(config.num_threads)
    return max(1, config.resolved_num_threads() // max(1, k))


def merged_config(config: SBTTConfig, k: int) -> SBTTConfig:
    """The configuration of ``k`` members of ``config`` merged: every layer ``k`` times as wide,
    ``ensemble_size = 1`` (it is one network now). Raises ValueError past ``MAX_UNITS``."""
    return config.replace(ensemble_size=1, **{f: getattr(config, f) * k for f in UNIT_FIELDS})


# ----------------------------------------------------------------------------
# merging

def _blocks(size: int, k: int) -> list[np.ndarray]:
    """Member j's units of a layer of ``size`` units per member: j * size + [0, size)."""
    return [j * size + np.arange(size) for j in range(k)]


def _gated(units: list[np.ndarray], total: int, gates: int) -> list[np.ndarray]:
    """Rows of a GRU weight: each member's units repeated in every gate block of ``total``."""
    return [np.concatenate([g * total + u for g in range(gates)]) for u in units]


def _place(dst: torch.Tensor, srcs: Sequence[torch.Tensor], rows: Sequence[np.ndarray],
           cols: Sequence[np.ndarray] | None = None) -> None:
    """Copy every member's tensor into its rows (and columns) of ``dst`` (zeros elsewhere)."""
    dst.zero_()
    for j, src in enumerate(srcs):
        r = torch.as_tensor(rows[j])
        if cols is None:
            dst[r] = src
        else:
            dst[r[:, None], torch.as_tensor(cols[j])[None, :]] = src


def _place_gru(dst: torch.nn.Module, members: Sequence[torch.nn.Module], hidden: list[np.ndarray],
               inputs: list[np.ndarray], suffixes: Sequence[str]) -> None:
    """Block-diagonal GRU (or GRUCell) weights: member j's units ``hidden[j]`` in every gate,
    reading its inputs ``inputs[j]``."""
    total = sum(len(h) for h in hidden)
    rows = _gated(hidden, total, 3)
    for sfx in suffixes:
        _place(getattr(dst, "weight_ih" + sfx), [getattr(m, "weight_ih" + sfx) for m in members], rows, inputs)
        _place(getattr(dst, "weight_hh" + sfx), [getattr(m, "weight_hh" + sfx) for m in members], rows, hidden)
        _place(getattr(dst, "bias_ih" + sfx), [getattr(m, "bias_ih" + sfx) for m in members], rows)
        _place(getattr(dst, "bias_hh" + sfx), [getattr(m, "bias_hh" + sfx) for m in members], rows)


def _mean_logvar(size: int, k: int) -> list[np.ndarray]:
    """Outputs of a map to [mean, log-variance] of ``size`` each per member, merged: all
    members' means first, then all log-variances (what ``chunk(2)`` splits)."""
    return [np.concatenate([j * size + np.arange(size), k * size + j * size + np.arange(size)])
            for j in range(k)]


@torch.no_grad()
def merge_networks(members: Sequence[SequentialAutoencoder], config: SBTTConfig, likelihood: str
                   ) -> SequentialAutoencoder:
    """One network whose raw output, factors aside, is the mean of ``members``' raw outputs.

    ``members``: k >= 1 trained networks of the same sizes, likelihood and number of neurons N;
    ``config``: their (shared) configuration; ``likelihood``: its name. Returns a network of ``merged_config(config, k)``
    on the members' device, in eval mode. Its factors are the members' factors side by side
    ((B, T, k F)) and its KL the members' sum; the likelihood's own per-neuron parameters (the
    Gaussian noise, the calcium kernel and baseline; spike counts have none) are the members'
    mean, so only outputs that depend on the raw output alone are the exact average.
    """
    k = len(members)
    if k < 1:
        raise ValueError("merge_networks needs at least one network")
    first = members[0]
    N, lik = first.n_neurons, first.likelihood
    for m in members[1:]:
        if (m.n_neurons != N or type(m.likelihood) is not type(lik)
                or any(getattr(m.config, f) != getattr(first.config, f) for f in UNIT_FIELDS)
                or m.config.variational_ic != first.config.variational_ic):
            raise ValueError("merge_networks needs networks of the same sizes, likelihood and neurons")
    c = config
    mc = merged_config(c, k)
    new_lik = make_likelihood(likelihood, N, mc)
    device = next(first.parameters()).device
    net = SequentialAutoencoder(N, mc, new_lik).to(device)
    net.fused_unroll = first.fused_unroll

    R, E, I, G, Fs = c.readin_size, c.encoder_size, c.ic_size, c.generator_size, c.factor_size  # noqa: E741
    readin = _blocks(R, k)
    enc = _blocks(E, k)
    gen = _blocks(G, k)
    fac = _blocks(Fs, k)
    # encoder outputs and final states: [forward (k E), backward (k E)]
    enc_out = [np.concatenate([e, k * E + e]) for e in enc]

    _place(net.readin.weight, [m.readin.weight for m in members], readin)
    _place(net.readin.bias, [m.readin.bias for m in members], readin)
    _place_gru(net.encoder, [m.encoder for m in members], enc, readin, ("_l0", "_l0_reverse"))
    ic = _mean_logvar(I, k) if c.variational_ic else _blocks(I, k)
    _place(net.ic_map.weight, [m.ic_map.weight for m in members], ic, enc_out)
    _place(net.ic_map.bias, [m.ic_map.bias for m in members], ic)
    _place(net.ic_to_gen.weight, [m.ic_to_gen.weight for m in members], gen, _blocks(I, k))
    _place(net.ic_to_gen.bias, [m.ic_to_gen.bias for m in members], gen)
    if c.controller_size > 0:
        C, U = c.controller_size, c.inferred_input_size
        # the controller reads [encoder outputs (2 k E), previous factors (k F)]
        con_in = [np.concatenate([e, 2 * k * E + f]) for e, f in zip(enc_out, fac, strict=True)]
        _place_gru(net.controller, [m.controller for m in members], _blocks(C, k), con_in, ("",))
        co = _mean_logvar(U, k)
        _place(net.co_map.weight, [m.co_map.weight for m in members], co, _blocks(C, k))
        _place(net.co_map.bias, [m.co_map.bias for m in members], co)
        _place_gru(net.gen_cell, [m.gen_cell for m in members], gen, _blocks(U, k), ("",))
    else:
        # the generator's one input is zeros, read by every member
        _place_gru(net.generator, [m.generator for m in members], gen, [np.arange(1)] * k, ("_l0",))
    _place(net.factor_map.weight, [m.factor_map.weight for m in members], fac, gen)
    _place(net.factor_map.bias, [m.factor_map.bias for m in members], fac)
    # readout: every member's factors to every output, at 1/k weight; biases averaged
    net.readout.weight.copy_(torch.cat([m.readout.weight for m in members], dim=1) / k)
    net.readout.bias.copy_(torch.stack([m.readout.bias for m in members]).mean(0))
    lik_state = {name: torch.stack([m.likelihood.state_dict()[name].detach().cpu().to(torch.float64)
                                    for m in members]).mean(0).to(device=t.device, dtype=t.dtype)
                 for name, t in lik.state_dict().items()}  # on the CPU: MPS has no float64
    new_lik.load_state_dict(lik_state)
    net.eval()
    return net


# ----------------------------------------------------------------------------
# training side by side

@dataclass
class _Done:
    member: int
    outcome: Any = None
    error: BaseException | None = None


def run_members(fits: Sequence[Callable[[Callable[[EpochReport], bool]], Any]],
                progress: Callable[[EpochReport], Any] | None,
                asks_to_stop: Callable[[Any], bool]) -> list[Any]:
    """Run every ``fits[j](progress_j)`` in a thread of its own and return their results in order
    (a fit may drive a child process from its thread, :mod:`.member_process`).

    Each fit calls its ``progress_j(report)`` after every epoch and gets True once a stop was
    asked for; the call returns when this thread has handled that report (the caller's answer
    to it included). The caller's ``progress`` is called in the calling thread only (a GUI's
    callback stays on its thread), with the reports of one member, the first, until it ends, then
    those of one still running whose epoch is past the last one passed on (epochs never go
    back); when it asks to stop (``asks_to_stop`` of
    its answer, or StopTraining), every member stops after its current epoch, keeping its best
    weights. An error in one member stops the others and is raised here.
    """
    from ..core.progress import StopTraining

    stop = threading.Event()
    reports: queue.Queue[tuple[int, EpochReport, queue.Queue[bool]] | _Done] = queue.Queue()

    def member_progress(j: int) -> Callable[[EpochReport], bool]:
        def report(r: EpochReport) -> bool:
            # wait for the caller's answer to this very report, so that a stop asked for after the
            # leader's epoch e ends it after epoch e, as it ends a fit of one network, and every
            # other member after the epoch it has just reported
            reply: queue.Queue[bool] = queue.Queue(maxsize=1)
            reports.put((j, r, reply))
            while True:
                try:
                    return reply.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():  # the caller stopped relaying (Ctrl-C, an error)
                        return True
        return report

    def work(j: int) -> None:
        try:
            reports.put(_Done(j, outcome=fits[j](member_progress(j))))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            stop.set()
            reports.put(_Done(j, error=exc))

    threads = [threading.Thread(target=work, args=(j,), name=f"sbtt-member-{j}", daemon=True)
               for j in range(len(fits))]
    for t in threads:
        t.start()
    results: dict[int, _Done] = {}
    leader, last_epoch = 0, -1
    try:
        while len(results) < len(fits):
            try:
                item = reports.get(timeout=0.5)  # wakes up for Ctrl-C where a blocked get would not
            except queue.Empty:
                continue
            if isinstance(item, _Done):
                results[item.member] = item
                continue
            j, r, reply = item
            if leader in results:
                leader = j
            if progress is not None and not stop.is_set() and j == leader and r.epoch > last_epoch:
                last_epoch = r.epoch
                try:
                    answer = progress(r)
                except StopTraining:
                    answer = True
                if asks_to_stop(answer):
                    stop.set()
            reply.put(stop.is_set())
    except BaseException:
        stop.set()  # Ctrl-C or an error in the caller's callback: end the members, then raise
        for t in threads:
            t.join()
        raise
    for t in threads:
        t.join()
    for j in range(len(fits)):
        if results[j].error is not None:
            raise results[j].error
    return [results[j].outcome for j in range(len(fits))]
