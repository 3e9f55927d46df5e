"""Data widget: choose the movie (Image) and the ROIs (Labels), and the acquisition timing.

"Open movie with timing..." opens a TIFF movie with the frame/line timing (and ScanImage scan
pattern) its metadata states: napari's own TIFF reader opens the pixels but not the timing.
The frame and line periods typed here are remembered across sessions (``_settings``); timing
filled from a movie's metadata is not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, PushButton

from ._common import MessageLabel, connect_layer_events, layer_choices
from ._layers import InputError, check_inputs, is_generated, scan_from_metadata, timing_from_metadata
from ._settings import PersistedValues
from ._state import session_for

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["DataWidget"]


class DataWidget(Container):
    """Pick the movie and ROI layers; frame and line periods come from layer metadata when known.

    The choice and the timing are stored in the viewer's session, where the Scan and Train
    widgets read them.
    """

    def __init__(self, napari_viewer: "napari.viewer.Viewer") -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._session = session_for(napari_viewer)
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
        self.open_button = PushButton(
            text="Open movie with timing...",
            tooltip="open a TIFF movie with the frame/line timing and scan pattern its ScanImage "
                    "or ImageJ metadata states (File > Open reads TIFF pixels without timing)")
        self.reset_button = PushButton(text="Reset to defaults",
                                       tooltip="forget the remembered frame and line periods")
        self.opened = MessageLabel(label="")
        self.info = MessageLabel(label="")
        self.message = MessageLabel(label="")
        self.extend([self.open_button, self.opened, self.movie, self.rois, self.frame_period_ms,
                     self.line_period_ms, self.reset_button, self.info, self.message])
        #: the timing typed by the user, remembered across sessions
        self.settings = PersistedValues("data", {"frame_period_ms": self.frame_period_ms,
                                                 "line_period_ms": self.line_period_ms})
        self.open_button.changed.connect(self._ask_movie_file)
        self.reset_button.changed.connect(self.reset_settings)
        self.movie.changed.connect(self._on_movie)
        self.rois.changed.connect(self._on_inputs)
        self.frame_period_ms.changed.connect(self._on_timing)
        self.line_period_ms.changed.connect(self._on_timing)
        self._disconnect = connect_layer_events(napari_viewer, self.reset_choices)
        self._session.listeners.append(self._on_session)
        self.reset_choices()
        self._on_movie()  # the combo may have picked a movie before the handler was connected

    # ------------------------------------------------------------------ choices
    def reset_choices(self, *_: Any) -> None:
        super().reset_choices()
        self._pick_defaults()

    def _pick_defaults(self) -> None:
        """Prefer a 3-D movie that is not one of our own result layers; keep a valid choice."""
        if self.movie.value is None or self.movie.value not in self._viewer.layers:
            for layer in self._viewer.layers:
                if type(layer).__name__ == "Image" and layer.ndim == 3 and not is_generated(layer):
                    self.movie.value = layer
                    break
        if self.rois.value is None:
            layers = [c for c in self.rois.choices if c is not None]
            if layers:
                self.rois.value = layers[0]
        self._on_inputs()

    # ------------------------------------------------------------------ actions
    def _ask_movie_file(self, *_: Any) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _filter = QFileDialog.getOpenFileName(
            self.native, "Open movie with timing", "", "TIFF movies (*.tif *.tiff);;All files (*)")
        if path:
            self.open_movie_file(path)

    def open_movie_file(self, path: str | os.PathLike) -> Any:
        """Add the TIFF movie at ``path`` as an Image layer with its timing and choose it.

        Returns the layer, or None (with a message in the widget) when the file cannot be read.
        """
        from ._reader import movie_layer_data

        name = Path(path).name
        try:
            ((data, kwargs, _kind),) = movie_layer_data(path)
        except (OSError, ValueError) as e:  # ReaderError is a ValueError
            self.opened.clear()
            self.message.show_error(f"could not open {name} as a movie: {e}")
            return None
        layer = self._viewer.add_image(data, **kwargs)
        self.reset_choices()
        self.movie.value = layer
        frame, line = timing_from_metadata(layer.metadata)
        if frame is None and line is None:
            self.opened.show_info(f"{name}: the file states no timing; enter the frame period "
                                  "(and the line period for a line scan) below")
        else:
            parts = [f"frame period {frame * 1e3:.4g} ms" if frame else "",
                     f"line period {line * 1e3:.4g} ms" if line else "",
                     "scan pattern" if scan_from_metadata(layer.metadata) is not None else ""]
            self.opened.show_info(f"{name}: {', '.join(x for x in parts if x)} from its metadata")
        return layer

    def reset_settings(self, *_: Any) -> None:
        """Forget the remembered frame and line periods; show the movie's own timing again."""
        self.settings.reset()
        self._on_movie()

    # ------------------------------------------------------------------ handlers
    def _on_session(self, what: str) -> None:
        """Another widget chose a movie (e.g. the Scan widget's simulated reduced scan)."""
        if what != "movie":
            return
        target = self._session.movie_layer
        try:
            self.reset_choices()
            for layer in self.movie.choices:
                if layer is not None and layer.name == target:
                    self.movie.value = layer
        except RuntimeError:  # the widget was deleted
            pass

    def _on_movie(self, *_: Any) -> None:
        layer = self.movie.value
        if layer is not None:
            frame, line = timing_from_metadata(layer.metadata)
            with self.frame_period_ms.changed.blocked(), self.line_period_ms.changed.blocked():
                if frame is not None:
                    self.frame_period_ms.value = round(frame * 1e3, 6)
                if line is not None:
                    self.line_period_ms.value = round(line * 1e3, 6)
        self._on_inputs()

    def _on_timing(self, *_: Any) -> None:
        s = self._session
        s.frame_period = self.frame_period_ms.value / 1e3 or None
        s.line_period = self.line_period_ms.value / 1e3 or None
        s.changed("inputs")

    def _on_inputs(self, *_: Any) -> None:
        s = self._session
        movie, rois = self.movie.value, self.rois.value
        s.movie_layer = movie.name if movie is not None else None
        s.labels_layer = rois.name if rois is not None else None
        s.frame_period = self.frame_period_ms.value / 1e3 or None
        s.line_period = self.line_period_ms.value / 1e3 or None
        self.validate()
        s.changed("inputs")

    def validate(self) -> bool:
        """Check the chosen layers; show what is wrong (or a summary) and return True when usable."""
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
