"""Trace panel: the selected ROI's samples, model fit, inferred activity and (synthetic) truth.

The ROI follows the ROI labels layer's selected label (pick a label with the labels layer's
picker, or type its id). A cursor line follows the viewer's time step; moving it redraws
only the cursor (blitting), never the traces. **units** shows the activity in the model's units
(a calcium fit: dF/F jump per bin) or, for a calcium fit on dF/F, in estimated spikes/s
(:meth:`napari_sbtt.result.SBTTResult.spikes_per_s`: through the indicator preset's dF/F per
spike, an estimate).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, SpinBox

from ._common import MessageLabel, connect_layer_events, follow_theme
from ._layers import RESULT_KEY, TRUTH_KEY, find_layer
from ._plots import TraceCanvas
from ._state import session_for

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["TracePanel", "find_result_layer", "MODEL_UNITS", "SPIKE_UNITS"]

#: the trace panel's choices of units for the activity
MODEL_UNITS = "model units"
SPIKE_UNITS = "spikes/s (estimated)"


def find_result_layer(viewer: "napari.Viewer") -> Any:
    """The selected layer if it holds a result, else the last layer that does, else None."""
    active = viewer.layers.selection.active
    if active is not None and RESULT_KEY in getattr(active, "metadata", {}):
        return active
    for layer in reversed(list(viewer.layers)):
        if RESULT_KEY in layer.metadata:
            return layer
    return None


class TracePanel(Container):
    """Plot one ROI of the shown result over time, with a cursor at the viewer's current time."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer") -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._session = session_for(napari_viewer)
        self.roi = SpinBox(label="ROI", min=0, max=1_000_000, value=0,
                           tooltip="label of the ROI to plot (follows the labels layer's selected label)")
        self.units = ComboBox(label="units", choices=[MODEL_UNITS, SPIKE_UNITS], value=MODEL_UNITS,
                              tooltip="activity in the model's units or in estimated spikes/s (calcium fits on "
                                      "dF/F: through the indicator preset's dF/F per spike, an estimate)")
        self.message = MessageLabel(label="")
        self.extend([self.roi, self.units, self.message])
        self.canvas = TraceCanvas()
        self.native.layout().addWidget(self.canvas)
        follow_theme(napari_viewer, self.native, self.canvas.apply_colours)
        self.result: Any = None
        self._layer: Any = None
        self._labels_layer: Any = None
        self.roi.changed.connect(self.redraw)
        self.units.changed.connect(self.redraw)
        napari_viewer.dims.events.current_step.connect(self._on_step)
        self._session.listeners.append(self._on_session)
        self._disconnect = connect_layer_events(napari_viewer, self.refresh)
        self.native.destroyed.connect(partial_disconnect(napari_viewer, self._on_step))
        self.refresh()

    # ------------------------------------------------------------------ wiring
    def _on_session(self, what: str) -> None:
        if what == "result":
            with contextlib.suppress(RuntimeError):  # widget deleted
                self.refresh()

    def refresh(self, *_: Any) -> None:
        """Pick up the current result layer and its ROI labels layer."""
        layer = find_result_layer(self._viewer)
        result = layer.metadata[RESULT_KEY] if layer is not None else None
        labels_layer = find_layer(self._viewer, layer.metadata.get("sbtt_labels_layer")) if layer else None
        if labels_layer is not self._labels_layer:
            if self._labels_layer is not None:
                with contextlib.suppress(Exception):
                    self._labels_layer.events.selected_label.disconnect(self._on_selected_label)
            if labels_layer is not None:
                labels_layer.events.selected_label.connect(self._on_selected_label)
            self._labels_layer = labels_layer
        changed = result is not self.result
        self._layer, self.result = layer, result
        if result is None:
            self.canvas.clear("no result yet: train a model or apply a checkpoint")
            return
        if changed:
            has_spikes = bool(getattr(result, "has_spike_estimate", False))
            if not has_spikes and self.units.value != MODEL_UNITS:
                with self.units.changed.blocked():
                    self.units.value = MODEL_UNITS
            self.units.enabled = has_spikes
            ids = [int(i) for i in result.roi_ids]
            if int(self.roi.value) not in ids:
                selected = int(getattr(labels_layer, "selected_label", 0) or 0)
                with self.roi.changed.blocked():
                    self.roi.value = selected if selected in ids else ids[0]
            self.redraw()

    def _on_selected_label(self, event: Any = None) -> None:
        label = int(self._labels_layer.selected_label)
        if self.result is not None and label in set(int(i) for i in self.result.roi_ids):
            self.roi.value = label

    # ------------------------------------------------------------------ drawing
    def _truth(self, roi_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        name = self._layer.metadata.get("sbtt_movie_layer") if self._layer is not None else None
        movie = find_layer(self._viewer, name)
        truth = movie.metadata.get(TRUTH_KEY) if movie is not None else None
        if not truth:
            return None
        ids = [int(i) for i in truth.get("roi_ids", [])]
        if roi_id not in ids:
            return None
        col = ids.index(roi_id)
        return np.asarray(truth["times"]), np.asarray(truth["rates"])[:, col]

    def redraw(self, *_: Any) -> None:
        """Plot the chosen ROI (full redraw) and place the cursor."""
        r = self.result
        if r is None:
            return
        ids = [int(i) for i in r.roi_ids]
        rid = int(self.roi.value)
        if rid not in ids:
            self.message.show_error(f"ROI {rid} is not in the result (ROIs {ids[0]}..{ids[-1]})")
            return
        self.message.clear()
        col = ids.index(rid)
        signal = getattr(r, "signal", None)
        fit = np.asarray(signal)[:, col] if signal is not None else None
        truth = self._truth(rid)
        share = np.isfinite(r.observations[:, col]).mean()
        rates, units = np.asarray(r.rates[:, col]), r.units
        spikes = self.units.value == SPIKE_UNITS and getattr(r, "has_spike_estimate", False)
        if spikes:
            rates, units = r.spikes_per_s(column=col), SPIKE_UNITS
        self.canvas.plot_roi(np.asarray(r.times), np.asarray(r.observations[:, col]),
                             rates, fit=fit, truth=truth,
                             title=f"ROI {rid}: {share:.0%} of bins observed", units=units,
                             truth_same_scale=spikes)  # spikes/s beside a rate in Hz: one scale
        self._on_step()

    def current_time(self) -> float:
        """The viewer's current position on the time axis (seconds on result layers)."""
        return float(self._viewer.dims.point[0])

    def _on_step(self, *_: Any) -> None:
        if self.result is None:
            return
        with contextlib.suppress(RuntimeError):  # canvas deleted
            self.canvas.set_cursor(self.current_time())


def partial_disconnect(viewer: Any, callback: Any) -> Any:
    """A slot that disconnects ``callback`` from the viewer's time-step event."""

    def _disconnect(*_: Any) -> None:
        with contextlib.suppress(Exception):
            viewer.dims.events.current_step.disconnect(callback)

    return _disconnect
