"""One member of an ensemble fit trained in a child Python process (``python -m
napari_sbtt.model.member_process``).

Why a process and not a thread: a fit's Python loop holds the interpreter between torch's
operations. The calcium fits (batches of 8 windows, a step-by-step controller unroll) spend most
of their time there, so two members in two threads of one process ran each epoch 1.1-1.8x
(a single-trace recording 3x) slower than one alone (benchmarks/RESULTS.md, "Issue 14, tenth
session"); in two processes each keeps its own interpreter and core.

The parent (:func:`train_in_process`) builds the member's network (its seed's weights, the shared
readout start), then sends one job frame (:mod:`napari_sbtt.core.frames`) on the child's stdin:
the network's weights as numpy arrays, the configuration as a dict, the likelihood, the
normaliser, the windows (:class:`~napari_sbtt.core.windows.WindowStore`, copied through the
pipe), the held-out entries' generator, the seed of the member's shuffling, masks and dropout,
its index, its torch threads, the unroll it uses and the wall-clock time the whole fit started
(its clock and budget count from there). The child trains it with :class:`~.training.Trainer`,
exactly as a thread of the parent would (a CPU fit gives the same numbers in either), and
answers on its original stdout with ``("report", EpochReport)`` after every epoch, then
``("done", weights, TrainOutcome, warnings)`` (the warnings it raised, as (class name,
message), raised again in the parent) or ``("error", type name, message, traceback)``. After
each report it waits for one byte on its stdin: ``S`` stops it after that epoch (best weights
kept), ``C`` lets it go on, so a stop asked for after epoch e ends it after epoch e, as one
network; the end of its stdin (the parent closed it or died) ends it at its next report. The
child ignores Ctrl-C: the terminal's interrupt reaches the parent, which asks every member to
stop.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import signal
import subprocess
import sys
import time
import traceback
import warnings
from typing import Any, Callable

import numpy as np

from ..core.frames import GO_ON_BYTE, STOP_BYTE, child_env, child_streams, read_frame, write_frame

__all__ = ["MemberProcessError", "train_in_process", "main"]


#: the environment variables that size a child's thread pools (set to the member's torch threads)
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class MemberProcessError(RuntimeError):
    """A member's child process failed or could not start; the message says why."""


def train_in_process(job: dict[str, Any], progress: Callable[[Any], bool]) -> tuple[dict[str, np.ndarray], Any]:
    """Train one member in a child process; returns its best weights (name -> array) and its
    :class:`~.training.TrainOutcome`.

    ``job``: what the child needs (module notes; built by the ensemble fit). ``progress(report)``
    is called in this thread after each of the child's epochs, which waits for it; True stops the
    child after that epoch. The child's warnings are raised here, naming the network. A ``FloatingPointError`` of the child (no usable epoch) is raised as one; any other
    failure of the child, or a child that cannot start, raises :class:`MemberProcessError`.
    """
    name = f"network {int(job['member']) + 1}"
    cmd = [sys.executable, "-m", "napari_sbtt.model.member_process"]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env=child_env(**dict.fromkeys(_THREAD_VARIABLES, str(int(job["threads"])))), bufsize=0)
    except OSError as exc:
        raise MemberProcessError(f"could not start a process for {name} ({exc})") from None
    assert proc.stdin is not None and proc.stdout is not None
    try:
        with contextlib.suppress(OSError):  # the child died at once: its end of stream is reported below
            write_frame(proc.stdin, job)
        while True:
            ok, msg = read_frame(proc.stdout)
            if not ok:
                try:
                    code: int | str = proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    code = "none: it had to be killed"
                raise MemberProcessError(f"the process of {name} ended without an answer (exit code {code})")
            kind = msg[0]
            if kind == "report":  # the child waits for the answer before its next epoch
                answer = STOP_BYTE if progress(msg[1]) else GO_ON_BYTE
                with contextlib.suppress(OSError):
                    proc.stdin.write(answer)
                    proc.stdin.flush()
            elif kind == "done":
                for category, text in msg[3]:  # the child's warnings, raised here where callers see them
                    cls = getattr(builtins, category, UserWarning)
                    warnings.warn(f"{name}: {text}", cls if isinstance(cls, type) and issubclass(cls, Warning)
                                  else UserWarning, stacklevel=2)
                return msg[1], msg[2]
            else:
                _, err, message, tb = msg
                if err == "FloatingPointError":
                    raise FloatingPointError(message)
                raise MemberProcessError(f"the process of {name} failed: {err}: {message}\n{tb}")
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# ----------------------------------------------------------------------------- the child

def _train(job: dict[str, Any], progress: Callable[[Any], bool]) -> tuple[dict[str, np.ndarray], Any]:
    import torch

    from .config import SBTTConfig
    from .device import resolve_device
    from .likelihoods import make_likelihood
    from .network import SequentialAutoencoder
    from .training import Trainer

    torch.set_num_threads(int(job["threads"]))
    config = SBTTConfig.from_dict(job["config"])
    likelihood, n = job["likelihood"], int(job["n_neurons"])
    device = resolve_device(job["device"])
    net = SequentialAutoencoder(n, config, make_likelihood(likelihood, n, config))
    net.fused_unroll = bool(job["fused_unroll"])
    net.load_state_dict({k: torch.from_numpy(v) for k, v in job["weights"].items()})
    net.to(device)
    net.noise = torch.Generator(device=device).manual_seed(int(job["noise_seed"]))
    trainer = Trainer(net, config, job["normaliser"], device=device, seed=int(job["seed"]), rng=job["rng"],
                      progress=progress, likelihood=likelihood)
    # the fit's clock started in the parent: starting this process spent some of its budget
    trainer.late_start_s = max(0.0, time.time() - float(job["started"]))
    outcome = trainer.fit(job["train"], job["valid"])
    weights = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    return weights, outcome


def main() -> int:
    """The child's entry point (module notes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops every member
    out, stdin = child_streams()
    ok, job = read_frame(stdin)
    if not ok:
        return 3

    def progress(report: Any) -> bool:
        write_frame(out, ("report", report))
        answer = stdin.read(1)  # the parent's answer to this report: stop now or go on
        if not answer:  # the parent is gone or no longer wants an answer
            os._exit(3)
        return answer == STOP_BYTE

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            weights, outcome = _train(job, progress)
        sent = [(type(w.message).__name__, str(w.message)) for w in caught]
        write_frame(out, ("done", weights, outcome, sent))
        return 0
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent
        write_frame(out, ("error", type(e).__name__, str(e), traceback.format_exc()))
        return 1


if __name__ == "__main__":
    sys.exit(main())
