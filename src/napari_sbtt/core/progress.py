"""Progress reports and the one way to stop a run: :class:`RunControl`.

The report protocol
-------------------
A run hands its watcher (a progress callback, a :class:`RunControl`) one report at a time:

- :class:`StageReport` (``stage``, ``done``, ``total``, ``message``) for the stages that are not
  training: ``"start"`` (a child process starting), ``"extract"`` / ``"traces"`` (reading the
  recording), ``"infer"``, ``"validate"`` (the held-out comparison);
- :class:`~napari_sbtt.model.config.EpochReport` after every training epoch (losses, best
  epoch, learning rate, seconds).

Stopping
--------
A :class:`RunControl` is made by the caller and passed down the whole run (the pipeline, the
training loop, a child process's parent side). ``stop()`` ends training after the current
epoch and keeps the best model so far (the run still returns a result, ``stopped`` True); during
extraction, before any model exists, the run raises :class:`RunStopped`. ``abort()`` says the
result is no longer wanted (a viewer closing): a child process is killed at once
(:class:`RunAborted`), an in-process fit stops as for ``stop()``.

A plain progress callback still works everywhere a RunControl does: ``RunControl(callback)``
passes every report to it, and a callback that returns True or ``"stop"``, or raises
:class:`StopTraining`, calls ``stop()`` (the interface of earlier versions, kept).

Pure Python, thread-safe (the flags are ``threading.Event``): the GUI thread may stop a run
that a worker thread drives.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["RunControl", "StageReport", "RunStopped", "RunAborted", "StopTraining", "ProgressCallback"]

#: a user's progress callback: receives each report; may answer True / "stop" to stop
ProgressCallback = Callable[[Any], Any]


class StopTraining(Exception):
    """Raise from a ``progress`` callback to stop training and keep the best model so far."""


class RunStopped(Exception):
    """The caller stopped the run before a model existed (during extraction); nothing to return."""


class RunAborted(RuntimeError):
    """The run was aborted (:meth:`RunControl.abort`); a child process doing it was killed."""


@dataclass(frozen=True)
class StageReport:
    """Progress of a non-training stage: ``done`` of ``total`` units of ``stage``."""

    stage: str
    done: int
    total: int
    message: str = ""


def asks_to_stop(answer: Any) -> bool:
    """True when a progress callback's answer asks to stop (True or the text "stop")."""
    return answer is True or (isinstance(answer, str) and answer.lower() == "stop")


class RunControl:
    """Stop or abort a run, and receive its reports.

    Parameters
    ----------
    callback : called with every report (in the thread that runs the fit); its answer may ask to
        stop (see the module notes).

    Calling the control with a report (``control(report)``) reports it and answers whether the
    run should stop: the form of a progress callback, so a RunControl can be passed wherever a
    callback is taken (``fit_trials(progress=control)``).
    """

    def __init__(self, callback: ProgressCallback | None = None) -> None:
        self.callback = callback
        self._stop = threading.Event()
        self._abort = threading.Event()

    @classmethod
    def of(cls, progress: "ProgressCallback | RunControl | None" = None,
           control: "RunControl | None" = None) -> "RunControl":
        """The control of a run given a user's ``progress`` callback and/or ``control``.

        A RunControl passed as ``progress`` is used as it is; with both, ``progress`` also gets
        every report that reaches ``control``.
        """
        if isinstance(progress, RunControl):
            progress, control = None, progress if control is None else control
        if control is None:
            return cls(progress)
        if progress is not None:
            control.add_callback(progress)
        return control

    def add_callback(self, callback: ProgressCallback) -> None:
        """Also pass every report to ``callback`` (after the ones already there)."""
        first = self.callback
        if first is None:
            self.callback = callback
            return

        def both(report: Any) -> Any:
            a = first(report)
            b = callback(report)
            return True if asks_to_stop(a) or asks_to_stop(b) else None

        self.callback = both

    # ------------------------------------------------------------------ requests
    def stop(self) -> None:
        """End training after the current epoch, keeping the best model so far."""
        self._stop.set()

    def abort(self) -> None:
        """The result is no longer wanted: stop, and kill a child process doing the fit."""
        self._stop.set()
        self._abort.set()

    @property
    def stop_requested(self) -> bool:
        """True once ``stop()`` or ``abort()`` was called (or the callback asked to stop)."""
        return self._stop.is_set()

    @property
    def aborted(self) -> bool:
        """True once ``abort()`` was called."""
        return self._abort.is_set()

    # ------------------------------------------------------------------ reports
    def report(self, report: Any) -> None:
        """Pass ``report`` to the callback; its answer (or StopTraining) may stop the run."""
        if self.callback is None:
            return
        try:
            answer = self.callback(report)
        except StopTraining:
            answer = True
        if asks_to_stop(answer):
            self.stop()

    def __call__(self, report: Any) -> bool:
        self.report(report)
        return self.stop_requested

    def extraction_progress(self, stage: str, message: str = "reading the recording") -> Callable[[int, int], None]:
        """A ``progress(done, total)`` for reading a recording: reports ``StageReport(stage, ...)``
        and raises :class:`RunStopped` once a stop was asked for (nothing was fitted yet)."""

        def progress(done: int, total: int) -> None:
            self.report(StageReport(stage, int(done), int(total), message))
            if self.stop_requested:
                raise RunStopped(f"stopped during {stage}; nothing was fitted")

        return progress
