"""Fit and infer in a child Python process, so the calling process never runs torch.

Why: a fit in a thread of the napari process shares its GIL. Every step of the fit that holds
the GIL (the Python side of ``import torch``, first-time imports of torch submodules, the
training loop's Python code) delays the GUI thread, and on a busy machine those steps stretch
to hundreds of milliseconds (benchmarks/RESULTS.md, "GUI responsiveness"). A child process has
its own interpreter: the viewer's event loop is never blocked by the fit.

:func:`run_isolated` takes :class:`~napari_sbtt.core.traces.Observations` already extracted in
the caller's process (numpy only), sends them to ``python -m napari_sbtt._child``, which runs
:func:`napari_sbtt.pipeline.fit_and_infer`, and returns the same
:class:`~napari_sbtt.result.SBTTResult` as in this process, with the same numbers for the same
seed. The fitted model stays on disk as a
:class:`ModelFile` (a checkpoint in a private temporary folder, removed when the result is
garbage-collected or the process exits), so the caller never imports torch unless it loads it.

Protocol (private to this module and :mod:`napari_sbtt._child`): frames of an 8-byte
little-endian length and a pickle, between two processes of the same installation of this
package (no file from a user is ever unpickled). Parent -> child on stdin: one frame with the
job, then the single byte ``S`` to ask the fit to stop at the next epoch (best model kept);
closing stdin makes the child exit at once. The parent side of the stop is the caller's
:class:`~napari_sbtt.core.progress.RunControl`: its ``stop()`` sends the byte, its ``abort()``
kills the child. Child -> parent on its original stdout (its fd 1 is
pointed at stderr, so stray prints cannot corrupt the stream): ``("report", report)``,
``("done", result_without_model)`` or ``("error", type_module, type_name, message, traceback)``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RunConfig
from .core.atomic import atomic_path
from .core.frames import STOP_BYTE, child_env, read_frame, write_frame
from .core.progress import ProgressCallback, RunAborted, RunControl, StageReport

if TYPE_CHECKING:  # pragma: no cover
    from .core.scan import ScanPattern
    from .core.traces import Observations
    from .model import SBTTModel

__all__ = ["run_isolated", "ModelFile", "IsolatedRunError", "RunAborted"]

class IsolatedRunError(RuntimeError):
    """The child process failed with an exception that cannot be re-raised here as its own type.

    ``remote_type`` is the child's exception class name (e.g. ``"OutOfMemoryError"``),
    ``remote_traceback`` its formatted traceback.
    """

    def __init__(self, message: str, remote_type: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback


# --------------------------------------------------------------------------- the model on disk
class ModelFile:
    """A fitted model kept as a checkpoint file: what :func:`run_isolated` puts in ``result.model``.

    It stands in for :class:`~napari_sbtt.model.SBTTModel` where a result is saved or passed on
    (``save``, ``os.fspath``, ``run_on_stack(model=...)``) without importing torch; ``load()``
    gives the real model. The file lives in a private temporary folder removed when this object
    is garbage-collected (or at interpreter exit) unless ``owns_folder`` is False.
    """

    def __init__(self, path: str | os.PathLike, *, owns_folder: bool = False) -> None:
        self.path = Path(path)
        if owns_folder:
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.path.parent), True)
        self._info: dict[str, Any] | None = None

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"ModelFile({str(self.path)!r}, likelihood={self.likelihood!r}, n_neurons={self.n_neurons})"

    @property
    def info(self) -> dict[str, Any]:
        """The checkpoint's JSON metadata (read from the safetensors header, no torch)."""
        if self._info is None:
            from .model.header import checkpoint_header_info

            self._info = checkpoint_header_info(self.path)
        return self._info

    @property
    def likelihood(self) -> str:
        return str(self.info["likelihood"])

    @property
    def n_neurons(self) -> int:
        return int(self.info["n_neurons"])

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.info.get("metadata") or {})

    @property
    def best_epoch(self) -> int:
        return int(self.info.get("best_epoch", -1))

    @property
    def config(self) -> Any:
        """The model's :class:`~napari_sbtt.model.config.SBTTConfig` (torch-free)."""
        from .model.config import SBTTConfig

        return SBTTConfig.from_dict(self.info["config"])

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Copy the checkpoint to ``path`` (atomic; an existing file only with ``overwrite``)."""
        dest = Path(path)
        with atomic_path(dest, overwrite=overwrite) as tmp:
            shutil.copyfile(self.path, tmp)
        return dest

    def load(self, device: str | None = None) -> "SBTTModel":
        """The :class:`~napari_sbtt.model.SBTTModel` itself (imports torch)."""
        from .model import load_model

        return load_model(self.path, device=device)


# --------------------------------------------------------------------------- errors
#: exception types re-raised as themselves in the parent (all torch-free)
_SAFE_MODULES = ("builtins", "napari_sbtt.api", "napari_sbtt.core", "napari_sbtt.recording",
                 "napari_sbtt.isolated", "napari_sbtt.config", "napari_sbtt.pipeline", "napari_sbtt.result",
                 "napari_sbtt.plugin._layers")


def _rebuild_error(module: str, name: str, message: str, tb: str) -> BaseException:
    if module.startswith(_SAFE_MODULES) and not module.startswith("napari_sbtt.model"):
        try:
            cls = getattr(importlib.import_module(module), name)
            if isinstance(cls, type) and issubclass(cls, Exception):
                err = cls(message)
                err.remote_traceback = tb  # type: ignore[attr-defined]
                return err
        except Exception:  # noqa: BLE001 - fall back to the generic error below
            pass
    return IsolatedRunError(f"{name}: {message}" if message else name, name, tb)


# --------------------------------------------------------------------------- the parent side
def child_command() -> list[str]:
    """The command that starts the child: this interpreter running :mod:`napari_sbtt._child`."""
    return [sys.executable, "-m", "napari_sbtt._child"]


#: environment variable that tells the child how much to lower its CPU priority (``os.nice``)
NICE_ENV = "NAPARI_SBTT_CHILD_NICE"


def run_isolated(
    observations: "Observations",
    *,
    scan: "ScanPattern | None" = None,
    frame_period: float | None = None,
    model: "SBTTModel | str | os.PathLike | None" = None,
    config: RunConfig | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    seconds_extract: float = 0.0,
    control: RunControl | None = None,
    poll_s: float = 0.1,
    nice: int = 0,
) -> Any:
    """Fit (or apply) a model to ``observations`` in a child process; same result as in-process.

    Parameters
    ----------
    observations : the samples on the fine grid (from ``extract_observations`` or
        ``observations_from_traces``).
    scan, frame_period : recorded in the result's config (as ``run_on_stack`` does).
    model : a checkpoint path (or :class:`ModelFile`) to apply or adapt; an in-memory SBTTModel
        is saved to a temporary checkpoint first.
    config : RunConfig or dict, as for :func:`napari_sbtt.api.run_on_stack`.
    progress : receives the child's StageReport / EpochReport objects in this process; returning
        True (or "stop") or raising StopTraining asks the fit to stop at the next epoch and keep
        the best model so far.
    seconds_extract : time already spent extracting, stored in ``metrics``.
    control : a :class:`~napari_sbtt.core.progress.RunControl` (it also receives the reports):
        checked every ``poll_s`` seconds while waiting, also before the child's first report;
        ``stop()`` asks the fit to stop as ``progress`` can, ``abort()`` kills the child and
        raises :class:`~napari_sbtt.core.progress.RunAborted`.
    nice : lower the child's CPU priority by this much (POSIX ``nice``; 0 = as the caller). The
        napari widgets use 5, so on a busy machine the viewer gets the CPU first; on idle cores
        the fit runs as fast as without it.

    Returns
    -------
    :class:`~napari_sbtt.result.SBTTResult` whose ``model`` is a :class:`ModelFile`.

    Raises
    ------
    The child's exception when it is a torch-free type (ValueError, RunStopped...), else
    :class:`IsolatedRunError`; also :class:`IsolatedRunError` when the child dies without an
    answer (killed, out of memory).
    """
    cfg = RunConfig.coerce(config)
    control = RunControl.of(progress, control)
    workdir = Path(tempfile.mkdtemp(prefix="napari-sbtt-fit-"))
    owned = False
    try:
        model_path: str | None = None
        if model is not None:
            if hasattr(model, "network"):  # an in-memory SBTTModel: hand it over as a file
                model.save(workdir / "given.safetensors")  # type: ignore[union-attr]
                model_path = str(workdir / "given.safetensors")
            else:
                model_path = os.fspath(model)  # type: ignore[arg-type]
        job = {"observations": observations, "scan": scan, "frame_period": frame_period,
               "model": model_path, "config": cfg.to_dict(), "seconds_extract": float(seconds_extract),
               "model_out": str(workdir / "model.safetensors")}
        result = _drive_child(job, control, poll_s, nice)
        result.model = ModelFile(workdir / "model.safetensors", owns_folder=True)
        owned = True
        return result
    finally:
        if not owned:
            shutil.rmtree(workdir, ignore_errors=True)


def _drive_child(job: dict[str, Any], control: RunControl, poll_s: float, nice: int = 0) -> Any:
    control.report(StageReport("start", 0, 1, "starting the fitting process (loading torch)"))
    proc = subprocess.Popen(child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=child_env(**{NICE_ENV: str(int(nice))}), bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    inbox: "queue.Queue[tuple[bool, Any]]" = queue.Queue()

    def pump() -> None:
        try:
            while True:
                ok, msg = read_frame(proc.stdout)  # type: ignore[arg-type]
                inbox.put((ok, msg))
                if not ok or msg[0] in ("done", "error"):
                    return
        except Exception as e:  # noqa: BLE001 - a broken stream ends the run below
            inbox.put((False, e))

    reader = threading.Thread(target=pump, name="napari-sbtt-child-reader", daemon=True)
    reader.start()
    stop_sent = False

    def send_stop() -> None:
        nonlocal stop_sent
        if not stop_sent:
            stop_sent = True
            try:
                proc.stdin.write(STOP_BYTE)  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
            except OSError:
                pass

    try:
        with contextlib.suppress(OSError):  # the child died at once; its exit code is reported below
            write_frame(proc.stdin, job)
        while True:
            if control.aborted:
                raise RunAborted("the run was aborted")
            if control.stop_requested:
                send_stop()
            try:
                ok, msg = inbox.get(timeout=poll_s)
            except queue.Empty:
                continue
            if not ok:
                code = proc.wait(timeout=30)
                detail = f" ({msg})" if isinstance(msg, BaseException) else ""
                raise IsolatedRunError(
                    f"the fitting process ended without an answer (exit code {code}){detail}; "
                    "it may have run out of memory or been killed - see the console for its output "
                    f"(command: {' '.join(child_command())}; the napari widgets fit in the viewer's "
                    "own process when NAPARI_SBTT_INPROCESS=1 is set)")
            kind = msg[0]
            if kind == "report":
                control.report(msg[1])
                if control.stop_requested:
                    send_stop()
            elif kind == "done":
                return msg[1]  # its ``stopped``: the child's fit ended on the stop request
            else:  # "error"
                _, module, name, message, tb = msg
                raise _rebuild_error(module, name, message, tb)
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the child exits when its stdin closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            proc.stdout.close()
