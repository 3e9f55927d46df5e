"""One dock with tabs: Data, Scan, Train / Load and Traces (each also opens on its own)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QScrollArea, QTabWidget, QVBoxLayout, QWidget

from ._data_widget import DataWidget
from ._scan_widget import ScanWidget
from ._trace_panel import TracePanel
from ._train_widget import TrainWidget

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["SBTTWidget"]


def _scrolled(widget: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(widget)
    return area


class SBTTWidget(QWidget):
    """The whole workflow in one dock: pick data, define the scan, train or load, inspect traces."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer") -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.data = DataWidget(napari_viewer)
        self.scan = ScanWidget(napari_viewer)
        self.train = TrainWidget(napari_viewer)
        self.traces = TracePanel(napari_viewer)
        self.tabs = QTabWidget()
        self.tabs.addTab(_scrolled(self.data.native), "Data")
        self.tabs.addTab(_scrolled(self.scan.native), "Scan")
        self.tabs.addTab(_scrolled(self.train.native), "Train / Load")
        self.tabs.addTab(self.traces.native, "Traces")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.train.state.connect(self._show_traces_when_done)

    def _show_traces_when_done(self, _old: object, new: object) -> None:
        if getattr(new, "value", None) in ("done", "stopped") and self.train.last_result is not None:
            self.tabs.setCurrentIndex(3)

    def reset_choices(self, *_: object) -> None:
        """Refresh the layer choices of the sub-widgets (napari calls this on layer changes)."""
        self.data.reset_choices()
