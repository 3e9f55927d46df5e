"""Widget state that is not Qt: the training state machine and the per-viewer session.

The training state machine (careamics-napari / CellSeg3D habit) makes every transition
explicit, so a button can never start a second run and a failure always returns to a
state from which a new run can start.
"""

from __future__ import annotations

import enum
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["TrainState", "TrainStateMachine", "IllegalTransition", "Session", "session_for"]


class TrainState(str, enum.Enum):
    """Where a training/applying run stands."""

    IDLE = "idle"
    TRAINING = "training"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"


_ALLOWED: dict[TrainState, frozenset[TrainState]] = {
    TrainState.IDLE: frozenset({TrainState.TRAINING}),
    TrainState.TRAINING: frozenset({TrainState.DONE, TrainState.STOPPED, TrainState.FAILED}),
    TrainState.DONE: frozenset({TrainState.TRAINING, TrainState.IDLE}),
    TrainState.STOPPED: frozenset({TrainState.TRAINING, TrainState.IDLE}),
    TrainState.FAILED: frozenset({TrainState.TRAINING, TrainState.IDLE}),
}


class IllegalTransition(RuntimeError):
    """A transition the state machine does not allow (a programming error, not a user error)."""


class TrainStateMachine:
    """idle -> training -> done | stopped | failed -> training (again) | idle.

    ``stop_requested`` is set while training when the user asked to stop; the run then
    ends at the next epoch in the ``stopped`` state. Listeners get ``(old, new)``.
    """

    def __init__(self) -> None:
        self._state = TrainState.IDLE
        self.stop_requested = False
        self.message = ""
        self._listeners: list[Callable[[TrainState, TrainState], None]] = []

    @property
    def state(self) -> TrainState:
        return self._state

    @property
    def busy(self) -> bool:
        """True while a run is in progress (only Stop is possible)."""
        return self._state is TrainState.TRAINING

    def can_start(self) -> bool:
        return TrainState.TRAINING in _ALLOWED[self._state]

    def connect(self, listener: Callable[[TrainState, TrainState], None]) -> None:
        self._listeners.append(listener)

    def to(self, new: TrainState, message: str = "") -> None:
        """Move to ``new``; raise IllegalTransition when the move is not allowed."""
        new = TrainState(new)
        if new not in _ALLOWED[self._state]:
            raise IllegalTransition(f"cannot go from {self._state.value} to {new.value}")
        old, self._state = self._state, new
        self.message = message
        if new is TrainState.TRAINING:
            self.stop_requested = False
        for listener in list(self._listeners):
            listener(old, new)

    def request_stop(self) -> bool:
        """Ask a running training to stop at the next epoch; False when nothing runs."""
        if self._state is not TrainState.TRAINING:
            return False
        self.stop_requested = True
        return True


@dataclass
class Session:
    """What the widgets of one viewer share: the chosen inputs, the scan pattern, the result.

    The Data widget writes the layer names and timing; the Scan widget the pattern; the
    Train widget reads them and stores the last result. Layers are kept by name, so a
    removed layer is noticed instead of silently kept alive.

    Recordings opened as traces. When the Data widget opens a recording in traces mode
    (suite2p ``F.npy``/``Fneu.npy`` with "use traces instead of the movie", CaImAn results, an
    NWB RoiResponseSeries, a plain traces file), ``recording`` holds that
    :class:`~napari_sbtt.recording.Recording` (``rec.mode == "traces"``: float (T, N) traces,
    each ROI's row, the timing as ``rec.scan`` or ``rec.frame_period`` + ``rec.n_rows``; its
    arrays are in memory and it holds no open file) and ``recording_labels`` the name of the
    Labels layer showing its ROIs, or None when it has no labels image (a traces file with a
    rows file: a Points layer of ROI centroids is shown instead, when the columns are known).
    ``movie_layer`` is None meanwhile. The Train widget then runs
    :func:`napari_sbtt.api.run_on_traces` on it, with the semantics of
    :func:`napari_sbtt.recording.run_recording` (traces, ``roi_rows``, ``scan`` or
    ``frame_period`` + ``n_rows``, ``neuropil_traces`` when ``config.neuropil`` is set,
    ``roi_ids``), whenever ``recording`` is set and no movie layer is chosen, and shows the
    result with ``show_result(viewer, result, None, <the recording_labels layer or None>)``.
    The recording's own timing is used; the periods typed in the Data widget apply when it is
    opened (again). Choosing a movie layer in the Data widget, or opening a recording in movie
    mode, sets both fields back to None.
    """

    movie_layer: str | None = None
    labels_layer: str | None = None
    frame_period: float | None = None
    line_period: float | None = None
    scan: Any = None  # ScanPattern | None
    scan_for: str | None = None  # name of the movie layer the pattern was built for
    result: Any = None  # SBTTResult | None
    pending_checkpoint: str | None = None
    #: the traces-mode Recording to fit when no movie layer is chosen (see above), or None
    recording: Any = None  # napari_sbtt.recording.Recording | None
    #: name of the Labels layer showing ``recording``'s ROIs, or None
    recording_labels: str | None = None
    #: every Recording opened in this viewer (movie and traces mode). A lazily read movie
    #: (TIFF pages, NWB) keeps its file open while a layer shows it; the Data widget closes a
    #: recording once no layer shows its movie and it is not ``recording``, and all of them
    #: when the viewer closes (``_data_widget.release_recordings``).
    open_recordings: list[Any] = field(default_factory=list)
    listeners: list[Callable[[str], None]] = field(default_factory=list)

    def changed(self, what: str) -> None:
        """Tell the widgets that ``what`` ("inputs", "scan", "result", "checkpoint") changed."""
        for listener in list(self.listeners):
            listener(what)


_SESSIONS: "weakref.WeakKeyDictionary[Any, Session]" = weakref.WeakKeyDictionary()
_DEFAULT = Session()


def session_for(viewer: Any) -> Session:
    """The Session of ``viewer`` (created on first use); one shared session for ``None``."""
    if viewer is None:
        return _DEFAULT
    try:
        return _SESSIONS.setdefault(viewer, Session())
    except TypeError:  # not weak-referenceable
        return _DEFAULT
