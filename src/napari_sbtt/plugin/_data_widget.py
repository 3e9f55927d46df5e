"""Data widget: open a recording, choose the movie (Image) and the ROIs (Labels), and the timing.

"Open recording..." opens any file :func:`napari_sbtt.recording.load_recording` reads (a TIFF
movie with its ScanImage/ImageJ timing and scan pattern, a CaImAn ``.hdf5``, an NWB file, a
traces file ``.npy``/``.csv``/``.h5``; napari's own TIFF reader opens the pixels but not the
timing), "Open suite2p folder..." a suite2p plane folder. What they add:

- movie mode (a movie and its ROIs: TIFF + ROI file, suite2p ``data.bin``, NWB
  TwoPhotonSeries): a lazy Image layer with the timing (and scan pattern) in its metadata, its
  time axis in seconds, and the ROIs as a Labels layer; both are chosen below. A TIFF without
  an ROI file opens as a movie only (choose or paint the ROIs);
- traces mode ("use traces instead of the movie" for suite2p/NWB, CaImAn results, traces
  files): the ROIs as a Labels layer (or a Points layer of their centroids when only rows and
  columns are known); the recording is kept in the viewer's session (``Session.recording``) for
  the Train widget, and no movie is chosen.

Timing: the file's own timing is tried first; when the file does not state it (or the lines per
frame), the frame/line periods and lines per frame typed here are used and the file is read
again. The frame and line periods typed here are remembered across sessions (``_settings``);
timing filled from a recording is not.
"""

from __future__ import annotations

import contextlib
import os
import warnings
import weakref
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    PushButton,
    SpinBox,
)

from ..core.errors import MissingOptionError, MissingTimingError
from ._common import MessageLabel, connect_layer_events, layer_choices
from ._layer_data import FRAME_PERIOD_KEY, LABELS_OPACITY, timed_movie
from ._layers import (
    InputError,
    check_inputs,
    is_generated,
    scan_from_metadata,
    timing_from_metadata,
)
from ._settings import PersistedValues
from ._state import Session, session_for

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..recording import Recording

__all__ = ["DataWidget", "RECORDING_FILTER"]

#: file-dialog filter of "Open recording..."
RECORDING_FILTER = ("Recordings (*.tif *.tiff *.hdf5 *.h5 *.nwb *.npy *.npz *.csv *.tsv *.txt);;"
                    "TIFF movies (*.tif *.tiff);;CaImAn / HDF5 (*.hdf5 *.h5);;NWB (*.nwb);;"
                    "Traces (*.npy *.npz *.csv *.tsv *.txt *.h5);;All files (*)")
#: options of load_recording the widget can supply from its fields when the file lacks them
_TYPED_OPTIONS = ("frame_period", "line_period", "n_rows")


def _recording_name(rec: "Recording") -> str:
    """Layer base name of a recording: the file's stem, or "suite2p <plane folder>"."""
    p = Path(rec.path) if rec.path is not None else Path("recording")
    return f"suite2p {p.name}" if rec.source_format == "suite2p" else p.stem


def _timing_of(rec: "Recording") -> tuple[float | None, float | None]:
    """(frame period, line period) of a recording in seconds; None where unknown."""
    if rec.scan is not None:
        return float(rec.scan.frame_period), float(rec.scan.line_period)
    return rec.frame_period, None


def _shows(layer: Any, movie: Any) -> bool:
    """True when ``layer`` reads ``movie`` (directly, or through a lazy view such as MaskedMovie)."""
    data = getattr(layer, "data", None)
    data = getattr(data, "__wrapped__", data)  # napari may hand plugins proxies
    inner = getattr(data, "movie", None)
    return data is movie or getattr(inner, "__wrapped__", inner) is movie


def release_recordings(viewer: Any, session: Session, *, everything: bool = False) -> int:
    """Close the session's recordings that no layer of ``viewer`` shows any more.

    A recording stays open while it is ``session.recording`` or a layer shows its movie;
    ``everything=True`` (the viewer is closing) closes them all. Returns how many were closed.
    """
    layers = [] if viewer is None or everything else list(viewer.layers)
    keep, closed = [], 0
    for rec in session.open_recordings:
        used = not everything and (rec is session.recording or (
            rec.movie is not None and any(_shows(la, rec.movie) for la in layers)))
        if used:
            keep.append(rec)
            continue
        with contextlib.suppress(Exception):  # closing is best effort
            rec.close()
        closed += 1
    session.open_recordings[:] = keep
    return closed


def _close_all(session: Session, *_: Any) -> None:
    """The viewer's main window was deleted: close every recording of the session."""
    release_recordings(None, session, everything=True)


def _on_destroyed(viewer_ref: "weakref.ref[Any]", session: Session, *_: Any) -> None:
    """The widget is gone (the viewer may stay): close the recordings no layer shows."""
    release_recordings(viewer_ref(), session)


class DataWidget(Container):
    """Open recordings; pick the movie and ROI layers; frame and line periods from metadata.

    The choice and the timing are stored in the viewer's session, where the Scan and Train
    widgets read them; a recording opened in traces mode is stored as ``Session.recording``.
    """

    def __init__(self, napari_viewer: "napari.viewer.Viewer") -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._session = session_for(napari_viewer)
        self.open_button = PushButton(
            text="Open recording...",
            tooltip="open a TIFF movie (with its ScanImage/ImageJ timing), a CaImAn .hdf5, an NWB "
                    "file or a traces file (.npy/.csv/.h5 + an ROI file below)")
        self.open_folder_button = PushButton(
            text="Open suite2p folder...",
            tooltip="open a suite2p plane folder (stat.npy + ops.npy or settings.npy): the "
                    "registered movie (data.bin) or, without it, the traces F.npy")
        self.prefer_traces = CheckBox(
            text="use traces instead of the movie", value=False,
            tooltip="suite2p and NWB: fit the file's ROI traces (F.npy / RoiResponseSeries) instead "
                    "of extracting them from the movie; CaImAn and traces files always give traces")
        self.roi_file = FileEdit(
            label="ROI file", mode="r", nullable=True, filter="*.tif *.tiff *.npy *.csv *.tsv *.txt",
            tooltip="for TIFF movies and traces files: a labels image (.tif/.npy, 0 = background, "
                    "1..N = ROIs) or, for traces, a rows file (one line per ROI: its row, or row and "
                    "column); suite2p, CaImAn and NWB files carry their own ROIs")
        self.n_rows = SpinBox(
            label="lines per frame", min=0, max=1_000_000, value=0,
            tooltip="image height (Y) for a traces file with a rows file, which times each row "
                    "within the frame; 0 = unknown (a labels image or the file gives it)")
        self.opened = MessageLabel(label="")
        self.movie = ComboBox(label="movie", choices=layer_choices(napari_viewer, "Image"),
                              nullable=True, tooltip="Image layer (T, Y, X); unacquired rows may be NaN")
        self.rois = ComboBox(label="ROIs", choices=layer_choices(napari_viewer, "Labels"),
                             nullable=True, tooltip="Labels layer (Y, X): 0 = background, 1..N = ROIs")
        self.frame_period_ms = FloatSpinBox(
            label="frame period (ms)", min=0.0, max=1e6, step=0.001, value=0.0,
            tooltip="seconds per sweep x 1000; 0 = unknown (filled from the movie's metadata when known)")
        self.line_period_ms = FloatSpinBox(
            label="line period (ms)", min=0.0, max=1e4, step=0.0001, value=0.0,
            tooltip="seconds per scanned line x 1000; 0 = unknown")
        self.reset_button = PushButton(text="Reset to defaults",
                                       tooltip="forget the remembered frame and line periods")
        self.info = MessageLabel(label="")
        self.message = MessageLabel(label="")
        self.extend([self.open_button, self.open_folder_button, self.prefer_traces, self.roi_file,
                     self.n_rows, self.opened, self.movie, self.rois, self.frame_period_ms,
                     self.line_period_ms, self.reset_button, self.info, self.message])
        #: the timing typed by the user, remembered across sessions
        self.settings = PersistedValues("data", {"frame_period_ms": self.frame_period_ms,
                                                 "line_period_ms": self.line_period_ms})
        #: the layers added by the last successful open
        self.opened_layers: list[Any] = []
        self._syncing = False
        self._watched_window: "weakref.ref[Any] | None" = None
        self.open_button.changed.connect(self._ask_recording_file)
        self.open_folder_button.changed.connect(self._ask_suite2p_folder)
        self.reset_button.changed.connect(self.reset_settings)
        self.movie.changed.connect(self._on_movie)
        self.rois.changed.connect(self._on_inputs)
        self.frame_period_ms.changed.connect(self._on_timing)
        self.line_period_ms.changed.connect(self._on_timing)
        #: the timing fields holding a value the user typed (or restored from a past session),
        #: not one filled from a recording: only these are used to open files without timing
        self._typed: set[str] = set(self.settings.restored)
        for key in ("frame_period_ms", "line_period_ms"):
            getattr(self, key).changed.connect(partial(self._mark_typed, key))
        self._disconnect = connect_layer_events(napari_viewer, self._on_layers)
        self._session.listeners.append(self._on_session)
        self.native.destroyed.connect(partial(_on_destroyed, weakref.ref(napari_viewer), self._session))
        self.reset_choices()
        self._on_movie()  # the combo may have picked a movie before the handler was connected

    # ------------------------------------------------------------------ choices
    def reset_choices(self, *_: Any) -> None:
        super().reset_choices()
        self._pick_defaults()

    def _pick_defaults(self) -> None:
        """Prefer a 3-D movie that is not one of our own result layers; keep a valid choice.

        While a traces recording is active no movie (and no other ROI layer) is picked for it.
        """
        traces = self._session.recording is not None
        if not traces and (self.movie.value is None or self.movie.value not in self._viewer.layers):
            for layer in self._viewer.layers:
                if type(layer).__name__ == "Image" and layer.ndim == 3 and not is_generated(layer):
                    self.movie.value = layer
                    break
        if self.rois.value is None and not traces:
            layers = [c for c in self.rois.choices if c is not None]
            if layers:
                self.rois.value = layers[0]
        self._on_inputs()

    def _on_layers(self, *_: Any) -> None:
        """Layers were added or removed: refresh the choices, close recordings nothing shows."""
        s = self._session
        if s.recording_labels is not None and s.recording_labels not in self._viewer.layers:
            s.recording_labels = None
        self.reset_choices()
        release_recordings(self._viewer, s)

    # ------------------------------------------------------------------ actions
    def _ask_recording_file(self, *_: Any) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _filter = QFileDialog.getOpenFileName(self.native, "Open recording", "", RECORDING_FILTER)
        if path:
            self.open_recording(path)

    def _ask_suite2p_folder(self, *_: Any) -> None:
        from qtpy.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self.native, "Open suite2p plane folder", "")
        if path:
            self.open_recording(path)

    def open_movie_file(self, path: str | os.PathLike) -> Any:
        """Open the movie at ``path`` (see :meth:`open_recording`, movie preferred) and choose it.

        Returns its Image layer, or None (with a message in the widget) when the file cannot be
        read or holds no movie.
        """
        rec = self.open_recording(path, prefer="movie")
        if rec is None or rec.movie is None:
            return None
        return self.opened_layers[0]  # movie mode: [Image, Labels]

    def open_recording(self, path: str | os.PathLike, *, rois: Any = None,
                       prefer: str | None = None) -> "Recording | None":
        """Open a recording with :func:`napari_sbtt.recording.load_recording` and show it.

        Parameters
        ----------
        path
            A TIFF movie, a suite2p plane folder, a CaImAn ``.hdf5``, an ``.nwb`` file or a
            traces file.
        rois
            The ROIs for a TIFF movie or a traces file (labels image or rows file, path or
            array); default: the widget's "ROI file" (used for TIFF and traces files only).
        prefer
            ``"movie"`` or ``"traces"``; default: the "use traces instead of the movie" box.

        Returns
        -------
        The :class:`~napari_sbtt.recording.Recording` (movie mode: its movie and labels are
        shown and chosen; traces mode: it is ``Session.recording``), or None with a message in
        the widget when it cannot be read. A TIFF opened without ROIs gives a Recording with
        ``labels=None``: its movie is shown and chosen, the ROIs are to be chosen or painted.
        The recording's files stay open while a layer shows its movie.
        """
        from ..core.readers import detect_format

        p = Path(os.fspath(path)).expanduser()
        name = p.name or str(p)
        prefer = prefer or ("traces" if self.prefer_traces.value else "movie")
        fmt = detect_format(p)
        if rois is None and fmt in ("tiff", "traces") and self.roi_file.value is not None:
            rois = self.roi_file.value
        release_recordings(self._viewer, self._session)
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if fmt == "tiff" and rois is None:
                    rec = self._load_movie_only(p)
                else:
                    rec = self._load(p, rois, prefer)
        except Exception as e:  # noqa: BLE001 - any failure is shown in the widget, never raised
            self.opened.clear()
            self.message.show_error(self._failure_text(name, e, p))
            return None
        self._session.open_recordings.append(rec)
        self._watch_main_window()
        try:
            if rec.mode == "movie" or (rec.labels is None and rec.movie is not None):
                self._show_movie(rec)
            else:
                self._show_traces(rec)
        except Exception as e:  # noqa: BLE001
            self.message.show_error(f"could not show {name}: {e}")
            release_recordings(self._viewer, self._session)
            return None
        notes = [str(w.message) for w in caught  # our readers' warnings (e.g. CaImAn components left out)
                 if issubclass(w.category, UserWarning) and "napari_sbtt" in str(w.filename)]
        if notes:
            self.opened.show_info(self.opened.text + " Note: " + " ".join(notes))
        return rec

    def _watch_main_window(self) -> None:
        """Close the session's recordings when the main window that docks this widget is deleted.

        ``Viewer.close()`` removes every layer first (which closes them, see
        :func:`release_recordings`); closing the window itself does not, so its deletion is
        watched too. A floating dock is not watched: it is deleted with its dock, not the viewer.
        """
        from qtpy.QtWidgets import QMainWindow

        win = self.native.window()
        watched = self._watched_window() if self._watched_window is not None else None
        if isinstance(win, QMainWindow) and win is not watched:
            win.destroyed.connect(partial(_close_all, self._session))
            self._watched_window = weakref.ref(win)

    def _load(self, p: Path, rois: Any, prefer: str) -> "Recording":
        """load_recording on the file's own timing; again with the typed values it asks for."""
        from ..recording import load_recording

        typed = {"frame_period": (self.frame_period_ms.value / 1e3 or None)
                 if "frame_period_ms" in self._typed else None,
                 "line_period": (self.line_period_ms.value / 1e3 or None)
                 if "line_period_ms" in self._typed else None,
                 "n_rows": int(self.n_rows.value) or None}
        extra: dict[str, Any] = {}
        for _attempt in range(len(_TYPED_OPTIONS) + 1):
            try:
                return load_recording(p, rois=rois, prefer=prefer, **extra)
            except MissingOptionError as e:  # it names the options it needs (e.options)
                wanted = {k: v for k, v in typed.items() if v is not None and k not in extra and k in e.options}
                if not wanted:
                    raise
                extra.update(wanted)
        raise AssertionError("unreachable")  # pragma: no cover

    def _load_movie_only(self, p: Path) -> "Recording":
        """A TIFF without ROIs: the movie with the timing its metadata states (may be none)."""
        from ..core.readers import TiffPageStack
        from ..recording import Recording
        from ._reader import movie_layer_data

        ((movie, kwargs, _kind),) = movie_layer_data(p)
        md = kwargs["metadata"]
        rec = Recording(movie=movie, scan=scan_from_metadata(md), frame_period=md.get(FRAME_PERIOD_KEY),
                        source_format="tiff", path=p, n_rows=int(movie.shape[1]),
                        n_cols=int(movie.shape[2]))
        if isinstance(movie, TiffPageStack):
            rec._closers.append(movie.close)
        rec.provenance = {"format": "tiff", "path": str(p.resolve()), "rois": None,
                          "tiff_source": md.get("source_format"), "mode": "movie",
                          "timing": ("scanimage" if rec.scan is not None
                                     else f"{md.get('source_format')} frame rate"
                                     if rec.frame_period is not None else None)}
        return rec

    @staticmethod
    def _failure_text(name: str, e: Exception, path: Path) -> str:
        """The message for a recording that could not be opened (what to type or choose here,
        from the options the error names)."""
        text = str(e) or type(e).__name__
        text = text.removeprefix(f"{path}: ")  # the file is named once, at the start
        options = e.options if isinstance(e, MissingOptionError) else ()
        if isinstance(e, MissingTimingError) or "frame_period" in options:
            head, _sep, rest = text.partition(" Pass ")
            hint = f" (In Python or on the command line: pass {rest})" if rest else ""
            return (f"could not open {name}: {head.rstrip('.')}. Type the frame period (ms) above (and "
                    f"the line period for a partial-field line scan) and open it again.{hint}")
        for option, what in (("n_rows", "Type the lines per frame above"),
                             ("line_period", "Type the line period (ms) above"),
                             ("rois", "Choose the ROI file above")):
            if option in options:
                return f"could not open {name}: {text}. {what} and open it again."
        return f"could not open {name}: {text}"

    # ------------------------------------------------------------------ showing
    def _show_movie(self, rec: "Recording") -> None:
        """Movie mode: add the lazy movie (and its ROIs) and choose them; no traces recording."""
        name = _recording_name(rec)
        s = self._session
        s.recording, s.recording_labels = None, None
        metadata = {"source_path": str(rec.path),
                    "source_format": rec.provenance.get("tiff_source") or rec.source_format}
        _movie, kwargs, _kind = timed_movie(rec.movie, name=name, frame_period=rec.frame_period, scan=rec.scan,
                                            metadata=metadata)
        image = self._viewer.add_image(rec.movie, **kwargs)
        added = [image]
        labels = None
        if rec.labels is not None:
            labels = self._viewer.add_labels(np.asarray(rec.labels), name=f"{name} ROIs", opacity=LABELS_OPACITY,
                                             metadata={"source_path": str(rec.path)})
            added.append(labels)
        self.opened_layers = added
        self.reset_choices()
        self.movie.value = image
        if labels is not None:
            self.rois.value = labels
        t, y, x = (int(v) for v in rec.movie.shape)
        what = f"movie {t} x {y} x {x}" + (f" with {rec.n_rois} ROIs" if labels is not None else "")
        frame, line = _timing_of(rec)
        if frame is None and line is None:
            self.opened.show_info(f"{image.name}: {what}; the file states no timing: enter the frame "
                                  "period (and the line period for a line scan) below")
        else:
            parts = [f"frame period {frame * 1e3:.4g} ms" if frame else "",
                     f"line period {line * 1e3:.4g} ms" if line else "",
                     "scan pattern" if rec.scan is not None else ""]
            timing = str(rec.provenance.get("timing"))
            source = ("its metadata" if timing in ("None", "scanimage") or timing.endswith(" frame rate")
                      else "the periods typed here" if timing.startswith(("frame_period", "line_period"))
                      else timing)
            self.opened.show_info(f"{image.name}: {what}; {', '.join(x for x in parts if x)} from {source}")

    def _show_traces(self, rec: "Recording") -> None:
        """Traces mode: show the ROIs (labels, else centroid points); make it the session's recording."""
        name = _recording_name(rec)
        labels_layer = points = None
        if rec.labels is not None:
            labels_layer = self._viewer.add_labels(np.asarray(rec.labels), name=f"{name} ROIs",
                                                   opacity=LABELS_OPACITY, metadata={"source_path": str(rec.path)})
        elif rec.roi_cols is not None:
            yx = np.column_stack([np.asarray(rec.roi_rows, dtype=float),
                                  np.asarray(rec.roi_cols, dtype=float)])  # (N, 2) row, column
            points = self._viewer.add_points(yx, name=f"{name} ROIs", size=3,
                                             features={"index": np.asarray(rec.roi_ids, dtype=np.int64)},
                                             metadata={"source_path": str(rec.path)})
        s = self._session
        s.recording = rec
        s.recording_labels = labels_layer.name if labels_layer is not None else None
        self.opened_layers = [la for la in (labels_layer, points) if la is not None]
        frame, line = _timing_of(rec)
        with self.movie.changed.blocked(), self.rois.changed.blocked():
            self.movie.value = None
            super().reset_choices()  # the new layers as choices; no default picks
            self.rois.value = labels_layer
        self._fill_timing(frame, line)
        shown = (f"ROIs as '{labels_layer.name}'" if labels_layer is not None
                 else f"ROI centroids as '{points.name}'" if points is not None
                 else "no ROI positions to show (rows only)")
        self.opened.show_info(f"{name}: {rec.n_rois} ROI traces x {rec.n_frames} frames; {shown}. "
                              "Train fits these traces while no movie is chosen.")
        self._on_inputs()

    def reset_settings(self, *_: Any) -> None:
        """Forget the remembered frame and line periods; show the movie's own timing again."""
        self.settings.reset()
        self._on_movie()

    # ------------------------------------------------------------------ handlers
    def _on_session(self, what: str) -> None:
        """Another widget chose a movie (e.g. the Scan widget's simulated reduced scan), or
        another Data widget opened a traces recording."""
        if self._syncing:
            return
        try:
            if what == "movie":
                target = self._session.movie_layer
                self.reset_choices()
                for layer in self.movie.choices:
                    if layer is not None and layer.name == target:
                        self.movie.value = layer
            elif what == "inputs" and self._session.recording is not None and self.movie.value is not None:
                with self.movie.changed.blocked():
                    self.movie.value = None
                self.validate()
        except RuntimeError:  # the widget was deleted
            pass

    def _on_movie(self, *_: Any) -> None:
        layer = self.movie.value
        if layer is not None:
            s = self._session
            s.recording, s.recording_labels = None, None  # a movie is chosen: fit the movie
            self._fill_timing(*timing_from_metadata(layer.metadata))
        self._on_inputs()

    def _mark_typed(self, key: str, *_: Any) -> None:
        self._typed.add(key)

    def _fill_timing(self, frame: float | None, line: float | None) -> None:
        """Show a recording's or movie's own periods (seconds) in the fields: neither remembered
        across sessions nor used to open other files."""
        for key, value in (("frame_period_ms", frame), ("line_period_ms", line)):
            if value is not None:
                field = getattr(self, key)
                with field.changed.blocked():
                    field.value = round(value * 1e3, 6)
                self._typed.discard(key)

    def _on_timing(self, *_: Any) -> None:
        s = self._session
        s.frame_period = self.frame_period_ms.value / 1e3 or None
        s.line_period = self.line_period_ms.value / 1e3 or None
        self._changed()

    def _on_inputs(self, *_: Any) -> None:
        s = self._session
        movie, rois = self.movie.value, self.rois.value
        s.movie_layer = movie.name if movie is not None else None
        s.labels_layer = rois.name if rois is not None else None
        s.frame_period = self.frame_period_ms.value / 1e3 or None
        s.line_period = self.line_period_ms.value / 1e3 or None
        self.validate()
        self._changed()

    def _changed(self) -> None:
        """Tell the other widgets that the inputs changed (not this widget itself)."""
        self._syncing = True
        try:
            self._session.changed("inputs")
        finally:
            self._syncing = False

    def validate(self) -> bool:
        """Check the chosen layers; show what is wrong (or a summary) and return True when usable.

        With a traces recording in the session (and no movie chosen), summarise the recording.
        """
        rec = self._session.recording
        if rec is not None and self.movie.value is None:
            self.message.clear()
            src = Path(rec.path).name if rec.path is not None else "the recording"
            inner = rec.provenance.get("traces")
            if inner and rec.source_format == "suite2p":
                src = f"{src}/{inner}"
            elif inner:
                src = f"{src} ({inner})"
            self.info.show_info(f"traces: {rec.n_rois} ROIs x {rec.n_frames} frames from {src}; "
                                f"timing: {rec.provenance.get('timing')}")
            return True
        try:
            data, labels = check_inputs(self.movie.value, self.rois.value)
        except InputError as e:
            self.info.clear()
            self.message.show_error(str(e))
            return False
        self.message.clear()
        t, y, x = (int(v) for v in data.shape)
        n = int(np.unique(labels[labels > 0]).size)
        scan = scan_from_metadata(self.movie.value.metadata)
        scan_txt = (f"scan pattern in metadata ({scan.acquired_fraction():.0%} of rows per sweep)"
                    if scan is not None else "no scan pattern in metadata")
        self.info.show_info(f"{t} frames of {y} x {x} px, {n} ROIs; {scan_txt}")
        return True
