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
its torch threads and the wall-clock time the whole fit started (its clock and budget count
from there). The child trains it with
:class:`~.training.Trainer`, exactly as a thread of the parent would (a CPU fit gives the same
numbers in either), and answers on its original stdout with ``("report", EpochReport)`` after
every epoch, then ``("done", weights, TrainOutcome)`` or ``("error", type name, message,
traceback)``. The byte ``S`` on its stdin asks it to stop after the current epoch (best weights
kept); the end of its stdin (the parent closed it or died) ends it at once. The child ignores
Ctrl-C: the terminal's interrupt reaches the parent, which asks every member to stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.frames import STOP_BYTE, child_streams, read_frame, watch_stdin, write_frame

__all__ = ["MemberProcessError", "train_in_process", "main"]


class MemberProcessError(RuntimeError):
    """A member's child process failed or could not start; the message says why."""


def _child_env(threads: int) -> dict[str, str]:
    """The caller's environment with the member's thread count, and this package importable
    even when it came from ``sys.path`` rather than an installation."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    root = str(Path(__file__).resolve().parents[2])
    parts = [root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    return env


def train_in_process(job: dict[str, Any], progress: Callable[[Any], bool]) -> tuple[dict[str, np.ndarray], Any]:
    """Train one member in a child process; returns its best weights (name -> array) and its
    :class:`~.training.TrainOutcome`.

    ``job``: what the child needs (module notes; built by the ensemble fit). ``progress(report)``
    is called in this thread after each of the child's epochs; True asks the child to stop after
    that epoch. A ``FloatingPointError`` of the child (no usable epoch) is raised as one; any other
    failure of the child, or a child that cannot start, raises :class:`MemberProcessError`.
    """
    cmd = [sys.executable, "-m", "napari_sbtt.model.member_process"]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env=_child_env(int(job["threads"])), bufsize=0)
    except OSError as exc:
        raise MemberProcessError(f"could not start a process for a second network ({exc})") from None
    assert proc.stdin is not None and proc.stdout is not None
    stop_sent = False
    try:
        with contextlib.suppress(OSError):  # the child died at once: its end of stream is reported below
            write_frame(proc.stdin, job)
        while True:
            ok, msg = read_frame(proc.stdout)
            if not ok:
                code = proc.wait(timeout=30)
                raise MemberProcessError(f"the process of a second network ended without an answer (exit code {code})")
            kind = msg[0]
            if kind == "report":
                if progress(msg[1]) and not stop_sent:
                    stop_sent = True
                    with contextlib.suppress(OSError):
                        proc.stdin.write(STOP_BYTE)
                        proc.stdin.flush()
            elif kind == "done":
                return msg[1], msg[2]
            else:
                _, name, message, tb = msg
                if name == "FloatingPointError":
                    raise FloatingPointError(message)
                raise MemberProcessError(f"a second network's process failed: {name}: {message}\n{tb}")
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
    stop = threading.Event()
    threading.Thread(target=watch_stdin, args=(stdin, stop.set), daemon=True).start()

    def progress(report: Any) -> bool:
        write_frame(out, ("report", report))
        return stop.is_set()

    try:
        weights, outcome = _train(job, progress)
        write_frame(out, ("done", weights, outcome))
        return 0
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent
        write_frame(out, ("error", type(e).__name__, str(e), traceback.format_exc()))
        return 1


if __name__ == "__main__":
    sys.exit(main())
