"""Run a long job (training, applying a model) off the GUI thread, with throttled GUI updates.

The job runs in a napari ``thread_worker``. It reports progress through a callback (called in
the worker thread) that only puts the report on a queue and answers whether to stop; a QTimer
on the GUI thread drains the queue every ``poll_ms`` and hands the GUI a batch of reports, so a
fast training loop can never flood the event loop.

The job receives a :class:`JobProgress`, the run's :class:`~napari_sbtt.core.progress.RunControl`:
every report it gets is queued for the GUI, and :meth:`Job.request_stop` / :meth:`Job.abort`
stop or abort the run through it (a fit in a child process, :mod:`napari_sbtt.isolated`, checks
it while it waits).

Set ``NAPARI_SBTT_SYNC=1`` to run jobs synchronously on the calling thread (for debugging with
pdb or a profiler; the GUI freezes while the job runs).
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Callable

from qtpy.QtCore import QObject, QTimer

from ..core.progress import RunControl

__all__ = ["Job", "JobProgress", "sync_mode", "env_flag"]


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is set to 1, true, yes or on."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def sync_mode() -> bool:
    """True when ``NAPARI_SBTT_SYNC`` asks for synchronous jobs."""
    return env_flag("NAPARI_SBTT_SYNC")


class JobProgress(RunControl):
    """The RunControl handed to a job: each report is queued for the GUI (from the worker thread);
    the Job stops or aborts the run through it."""

    def __init__(self, queue_: "queue.SimpleQueue[Any]") -> None:
        super().__init__(queue_.put)


class Job(QObject):
    """One run of ``func(progress)`` in a worker thread.

    Parameters
    ----------
    func : callable taking the :class:`JobProgress` (a RunControl) and returning the job's result.
    on_reports : GUI-thread callback with the list of reports received since the last call.
    on_done : GUI-thread callback with the result.
    on_error : GUI-thread callback with the exception.
    poll_ms : how often the GUI drains the report queue.
    """

    def __init__(self, func: Callable[[RunControl], Any], *,
                 on_reports: Callable[[list[Any]], None],
                 on_done: Callable[[Any], None],
                 on_error: Callable[[BaseException], None],
                 poll_ms: int = 100, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._func = func
        self._on_reports = on_reports
        self._on_done = on_done
        self._on_error = on_error
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._finished = threading.Event()
        self._timer = QTimer(self)
        self._timer.setInterval(int(poll_ms))
        self._timer.timeout.connect(self._drain)
        self.worker: Any = None
        self.control = JobProgress(self._queue)

    # ------------------------------------------------------------------ GUI side
    def start(self) -> None:
        """Start the job (in a thread, or right here with NAPARI_SBTT_SYNC=1)."""
        if sync_mode():
            try:
                result = self._func(self.control)
            except Exception as e:  # noqa: BLE001 - reported to the widget
                self._drain()
                self._finished.set()
                self._on_error(e)
                return
            self._drain()
            self._finished.set()
            self._on_done(result)
            return

        from napari.qt.threading import create_worker

        def run(control: RunControl) -> Any:
            try:
                return self._func(control)
            finally:
                self._finished.set()

        # errors go to on_error (shown in the widget), not re-raised into a traceback dialog
        self.worker = create_worker(run, self.control, _start_thread=False, _ignore_errors=True)
        self.worker.returned.connect(self._returned)
        self.worker.errored.connect(self._errored)
        self.worker.finished.connect(self._worker_finished)
        self._timer.start()
        self.worker.start()

    def request_stop(self) -> None:
        """Ask the job to stop (training ends after the current epoch, the best model kept)."""
        self.control.stop()

    def abort(self) -> None:
        """Stop and drop the result (the viewer is closing); callbacks are not called any more."""
        self.control.abort()
        self._on_done = self._on_error = lambda *_: None  # type: ignore[assignment]
        self._on_reports = lambda *_: None  # type: ignore[assignment]
        if self.worker is not None:
            self.worker.quit()

    @property
    def running(self) -> bool:
        return not self._finished.is_set() and (self.worker is not None or sync_mode())

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Block until the worker thread has ended; True if it did within ``timeout_s``."""
        return self._finished.wait(timeout_s)

    def _drain(self) -> None:
        batch = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if batch:
            self._on_reports(batch)

    def _returned(self, result: Any) -> None:
        self._timer.stop()
        self._drain()
        self._on_done(result)

    def _errored(self, exc: BaseException) -> None:
        self._timer.stop()
        self._drain()
        self._on_error(exc)

    def _worker_finished(self) -> None:
        self._timer.stop()
