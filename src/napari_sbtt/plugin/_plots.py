"""Plots for the widgets: the live loss curve (plain QPainter) and the ROI trace panel (matplotlib).

The trace panel uses only ``matplotlib.figure.Figure`` and the Qt canvas (no pyplot, so no
global figure state). Time-linked plots move only a cursor line, drawn with blitting over a
cached background: changing the viewer's time step never re-plots the data.

Both plots take their background and text colours from :class:`PlotColours` (the widgets pass
napari's current theme, see ``_common.follow_theme``), so they match a dark or light viewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QPointF
from qtpy.QtGui import QColor, QPainter, QPalette, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["LossPlot", "TraceCanvas", "PlotColours"]


@dataclass(frozen=True)
class PlotColours:
    """Colours of a plot as ``#rrggbb`` strings: background, text (axes, ticks, labels, cursor), muted."""

    background: str = "#ffffff"
    text: str = "#000000"
    muted: str = "#666666"


class _Canvas(FigureCanvasQTAgg):
    def __init__(self, width: float, height: float) -> None:
        fig = Figure(figsize=(width, height), dpi=90)  # fixed margins: no per-draw layout solve
        super().__init__(fig)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(int(height * 60))
        self.n_full_draws = 0
        self.mpl_connect("draw_event", self._count)

    def _count(self, _event: Any) -> None:
        self.n_full_draws += 1


class LossPlot(QWidget):
    """Training and validation loss per epoch, painted directly with QPainter.

    A live plot must cost the GUI thread next to nothing: a matplotlib redraw takes 50-200 ms
    on a busy CPU, a QPainter polyline well under a millisecond. ``update()`` lets Qt merge
    repaints, so many epochs arriving together cost one paint.
    """

    COLOURS = {"train": QColor(31, 119, 180), "validation": QColor(255, 127, 14)}

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.epochs: list[int] = []
        self.train: list[float] = []
        self.valid: list[float] = []
        self.best_epoch: int | None = None
        self.n_paints = 0
        self.colours: PlotColours | None = None  # None: the widget palette's colours

    def apply_colours(self, colours: PlotColours) -> None:
        """Paint on ``colours.background`` with ``colours.text`` from now on (one repaint is queued)."""
        self.colours = colours
        self.update()

    def reset(self) -> None:
        self.epochs.clear()
        self.train.clear()
        self.valid.clear()
        self.best_epoch = None
        self.update()

    def add(self, reports: Sequence[Any]) -> None:
        """Append EpochReports (epoch, train_loss, valid_loss, best_epoch); one repaint is queued."""
        if not reports:
            return
        for r in reports:
            self.epochs.append(int(r.epoch))
            self.train.append(float(r.train_loss))
            self.valid.append(float(r.valid_loss))
        self.best_epoch = int(reports[-1].best_epoch)
        self.update()

    # ------------------------------------------------------------------ painting
    def _ranges(self) -> tuple[float, float, float, float]:
        vals = np.array([v for v in (*self.train, *self.valid) if np.isfinite(v)], dtype=float)
        y0, y1 = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
        if not y1 > y0:
            y0, y1 = y0 - 0.5, y1 + 0.5
        pad = 0.05 * (y1 - y0)
        x0 = float(self.epochs[0]) if self.epochs else 0.0
        x1 = float(max(self.epochs[-1], x0 + 1)) if self.epochs else 1.0
        return x0, x1, y0 - pad, y1 + pad

    def paintEvent(self, _event: Any) -> None:  # noqa: N802 - Qt name
        self.n_paints += 1
        p = QPainter(self)
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            fg = self.palette().color(QPalette.ColorRole.WindowText)
            if self.colours is not None:
                p.fillRect(self.rect(), QColor(self.colours.background))
                fg = QColor(self.colours.text)
            fm = p.fontMetrics()
            left, right, top, bottom = fm.horizontalAdvance("0.000e+00") + 6, 8, 18, fm.height() + 8
            w, h = self.width() - left - right, self.height() - top - bottom
            if w < 10 or h < 10:
                return
            x0, x1, y0, y1 = self._ranges()

            def pt(x: float, y: float) -> QPointF:
                return QPointF(left + (x - x0) / (x1 - x0) * w, top + (1 - (y - y0) / (y1 - y0)) * h)

            p.setPen(QPen(fg, 1))
            p.drawRect(left, top, w, h)
            p.drawText(2, top + fm.ascent(), f"{y1:.4g}")
            p.drawText(2, top + h, f"{y0:.4g}")
            p.drawText(left, self.height() - 4, f"epoch {int(x0) + 1}")
            end = f"{int(x1) + 1}"
            p.drawText(left + w - fm.horizontalAdvance(end), self.height() - 4, end)
            lx = left + 4
            for name, ys in (("train", self.train), ("validation", self.valid)):
                colour = self.COLOURS[name]
                p.setPen(QPen(colour, 1.5))
                pts = [pt(x, y) for x, y in zip(self.epochs, ys, strict=False) if np.isfinite(y)]
                if len(pts) > 1:
                    p.drawPolyline(QPolygonF(pts))
                elif pts:
                    p.drawEllipse(pts[0], 2.0, 2.0)
                p.drawText(lx, top - 5, name)
                lx += fm.horizontalAdvance(name) + 12
            if self.best_epoch is not None and self.best_epoch in self.epochs:
                i = self.epochs.index(self.best_epoch)
                if np.isfinite(self.valid[i]):
                    p.setPen(QPen(fg, 1))
                    p.drawEllipse(pt(self.best_epoch, self.valid[i]), 4.0, 4.0)
                    p.drawText(lx, top - 5, f"best: epoch {self.best_epoch + 1}")
        finally:
            p.end()


class TraceCanvas(_Canvas):
    """One ROI over time: samples and model fit on top, activity (and truth) below, a time cursor."""

    def __init__(self) -> None:
        super().__init__(5.0, 3.2)
        self.ax_obs = self.figure.add_subplot(211)
        self.ax_rate = self.figure.add_subplot(212, sharex=self.ax_obs)
        self.ax_truth = self.ax_rate.twinx()
        self.ax_obs.set_ylabel("samples")
        self.ax_rate.set_ylabel("activity")
        self.ax_rate.set_xlabel("time (s)")
        self.ax_truth.set_ylabel("truth (Hz)")
        self.figure.subplots_adjust(left=0.16, right=0.86, top=0.9, bottom=0.14, hspace=0.35)
        (self.obs_points,) = self.ax_obs.plot([], [], ".", ms=3, color="tab:blue", label="observed")
        (self.fit_line,) = self.ax_obs.plot([], [], lw=0.8, color="tab:orange", label="model")
        (self.rate_line,) = self.ax_rate.plot([], [], lw=1.0, color="tab:red", label="inferred")
        (self.truth_line,) = self.ax_truth.plot([], [], lw=0.8, ls="--", label="truth")
        self.cursors = [ax.axvline(0.0, color="k", lw=0.8, animated=True)
                        for ax in (self.ax_obs, self.ax_rate)]
        self._background: Any = None
        self.mpl_connect("draw_event", self._on_draw)
        self.colours = PlotColours()
        self.apply_colours(self.colours)

    def apply_colours(self, colours: PlotColours) -> None:
        """Recolour figure, axes, ticks, labels, title and cursor (one full redraw)."""
        self.colours = colours
        self.figure.set_facecolor(colours.background)
        for ax in (self.ax_obs, self.ax_rate, self.ax_truth):
            if ax is not self.ax_truth:  # the twin axes is transparent over ax_rate
                ax.set_facecolor(colours.background)
            for spine in ax.spines.values():
                spine.set_edgecolor(colours.text)
            ax.tick_params(which="both", colors=colours.text)
            ax.xaxis.label.set_color(colours.text)
            ax.yaxis.label.set_color(colours.text)
            ax.title.set_color(colours.text)
        self.ax_truth.yaxis.label.set_color(colours.muted)
        self.ax_truth.tick_params(axis="y", colors=colours.muted)
        self.truth_line.set_color(colours.muted)
        for c in self.cursors:
            c.set_color(colours.text)
        self._background = None  # the cached blit background has the old colours
        self.draw_idle()

    # ------------------------------------------------------------------ data
    def plot_roi(self, times: np.ndarray, observed: np.ndarray, rates: np.ndarray,
             fit: np.ndarray | None = None, truth: tuple[np.ndarray, np.ndarray] | None = None,
             title: str = "", units: str = "", truth_same_scale: bool = False) -> None:
        """Plot one ROI (full redraw; called when the ROI or the result changes).

        ``truth_same_scale``: the activity is in the truth's units (estimated spikes/s beside a
        rate in Hz), so both axes get the same limits."""
        seen = np.isfinite(observed)
        self.obs_points.set_data(times[seen], observed[seen])
        if fit is not None:
            self.fit_line.set_data(times, fit)
        else:
            self.fit_line.set_data([], [])
        self.rate_line.set_data(times, rates)
        if truth is not None:
            self.truth_line.set_data(*truth)
            self.ax_truth.set_visible(True)
        else:
            self.truth_line.set_data([], [])
            self.ax_truth.set_visible(False)
        self.ax_rate.set_ylabel(f"activity ({units})" if units else "activity", fontsize=8,
                                color=self.colours.text)
        self.ax_obs.set_title(title, fontsize=9, color=self.colours.text)
        for ax in (self.ax_obs, self.ax_rate, self.ax_truth):
            ax.set_autoscaley_on(True)
            ax.relim()
            ax.autoscale_view()
        if truth_same_scale and truth is not None:
            (a0, a1), (b0, b1) = self.ax_rate.get_ylim(), self.ax_truth.get_ylim()
            for ax in (self.ax_rate, self.ax_truth):
                ax.set_ylim(min(a0, b0), max(a1, b1))
        if times.size:
            self.ax_obs.set_xlim(float(times[0]), float(times[-1]))
        self.draw_idle()

    def clear(self, message: str = "") -> None:
        for line in (self.obs_points, self.fit_line, self.rate_line, self.truth_line):
            line.set_data([], [])
        self.ax_obs.set_title(message, fontsize=9, color=self.colours.text)
        self.draw_idle()

    # ------------------------------------------------------------------ cursor
    @property
    def cursor_time(self) -> float:
        return float(self.cursors[0].get_xdata()[0])

    def _on_draw(self, _event: Any) -> None:
        self._background = self.copy_from_bbox(self.figure.bbox)
        for c in self.cursors:
            c.axes.draw_artist(c)

    def set_cursor(self, t: float) -> None:
        """Move the time cursor: restore the cached background and draw only the cursor lines."""
        for c in self.cursors:
            c.set_xdata([t, t])
        if self._background is None:
            self.draw_idle()
            return
        self.restore_region(self._background)
        for c in self.cursors:
            c.axes.draw_artist(c)
        self.blit(self.figure.bbox)
