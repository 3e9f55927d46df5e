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

What a fit will cost
--------------------
A fit ends at the first of: early stopping (the held-out samples stopped improving), the
wall-clock cap ``max_seconds`` (checked after each epoch) and ``max_epochs``. Only the last two
are known in advance, so :func:`fit_progress` turns an epoch report into what both front ends
show: elapsed seconds against the cap and an honest *upper bound* on the time left (to the cap,
or to ``max_epochs`` at the measured seconds per epoch, whichever is sooner), and
:func:`fit_limits_text` states the limits before a fit starts.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["RunControl", "StageReport", "RunStopped", "RunAborted", "StopTraining", "ProgressCallback",
           "FitProgress", "fit_progress", "fit_limits_text", "format_duration"]

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


# --------------------------------------------------------------------------- what a fit costs
def format_duration(seconds: float) -> str:
    """``seconds`` as "42 s", "2:05" (min:s) or "1:02:05" (h:min:s)."""
    s = max(0, int(math.ceil(seconds - 1e-9)))
    if s < 60:
        return f"{s} s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


@dataclass(frozen=True)
class FitProgress:
    """Where a fit stands after an epoch, and the most it can still take.

    Attributes
    ----------
    epochs_done : epochs finished.
    max_epochs : the epoch limit.
    elapsed_s : seconds of training so far.
    cap_s : the wall-clock cap in seconds (None: no cap).
    seconds_per_epoch : measured mean so far.
    remaining_at_most_s : seconds left at most (to the cap, or to ``max_epochs`` at the measured
        rate, whichever is sooner); early stopping may end the fit before.
    ends_by : what bounds the remaining time: "cap" or "epochs".
    """

    epochs_done: int
    max_epochs: int
    elapsed_s: float
    cap_s: float | None
    seconds_per_epoch: float
    remaining_at_most_s: float
    ends_by: str

    @property
    def fraction(self) -> float:
        """Share of the longest the fit can take that has passed, in [0, 1]."""
        total = self.elapsed_s + self.remaining_at_most_s
        return 1.0 if total <= 0 else min(1.0, max(0.0, self.elapsed_s / total))

    def elapsed_text(self) -> str:
        """"42 s of the 600 s cap" (or "42 s, no time cap"), in seconds."""
        if self.cap_s is None:
            return f"{self.elapsed_s:.0f} s, no time cap"
        return f"{self.elapsed_s:.0f} s of the {self.cap_s:g} s cap"

    def remaining_text(self) -> str:
        """"at most 9:18 left (cap)" / "(400 epochs)"; "0 s left" once a limit is reached."""
        why = "cap" if self.ends_by == "cap" else f"{self.max_epochs} epochs"
        return f"at most {format_duration(self.remaining_at_most_s)} left ({why})"

    def text(self) -> str:
        """One line: epoch, elapsed against the cap, the upper bound on what is left."""
        return (f"epoch {self.epochs_done}/{self.max_epochs}, {self.elapsed_text()}, "
                f"{self.remaining_text()}")


def fit_progress(report: Any, cap_s: float | None = None) -> FitProgress:
    """:class:`FitProgress` of an epoch report (``epoch``, ``total_epochs``, ``seconds`` and,
    when it has one, ``max_seconds``, the fit's own cap; ``cap_s`` is used when it has none).

    The fit checks the cap after each epoch, so it ends after the first epoch that reaches it:
    at most ``ceil((cap - elapsed) / seconds_per_epoch)`` more epochs, and never more than
    ``max_epochs - epochs_done``.
    """
    done = int(report.epoch) + 1
    total = max(int(report.total_epochs), done)
    elapsed = max(0.0, float(report.seconds))
    cap = getattr(report, "max_seconds", None)
    cap = cap_s if cap is None else cap
    cap = None if cap is None else float(cap)
    per = elapsed / done
    left_epochs = total - done
    ends_by = "epochs"
    if cap is not None:
        by_cap = 0 if elapsed >= cap else (math.ceil((cap - elapsed) / per) if per > 0 else left_epochs)
        if by_cap <= left_epochs:
            left_epochs, ends_by = by_cap, "cap"
    return FitProgress(epochs_done=done, max_epochs=total, elapsed_s=elapsed, cap_s=cap,
                       seconds_per_epoch=per, remaining_at_most_s=left_epochs * per, ends_by=ends_by)


def fit_limits_text(max_epochs: int, cap_s: float | None, patience: int | None = None) -> str:
    """The limits of a fit before it starts, in one sentence (the Train tab shows it)."""
    early = (f"stops when the held-out samples have not improved for {patience} epochs, and "
             if patience else "")
    if cap_s is None:
        return f"A fit {early}ends at the latest after {max_epochs} epochs (no time cap)."
    return (f"A fit {early}ends at the latest after {cap_s:g} s (time cap) or {max_epochs} epochs, "
            "whichever comes first.")
