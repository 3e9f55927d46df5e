"""Scan widget: build the scan pattern, show it over the movie, simulate a reduced scan, bandwidth."""

from __future__ import annotations

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

from ..core.activity import MaskedMovie, RowMaskMovie, roi_sample_rates
from ..core.scan import ScanPattern, infer_row_mask
from ._common import MessageLabel, resolve_inputs, timing_for
from ._layer_data import timed_movie
from ._layers import (
    SCAN_KEY,
    SCAN_MASK_KEY,
    InputError,
    find_layer,
    scan_from_metadata,
    set_time_axis,
    upsert_image,
)
from ._settings import PersistedValues
from ._state import session_for

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["ScanWidget", "build_pattern", "bandwidth_text", "KINDS"]

KINDS = ("from movie metadata", "from NaN rows", "full raster", "strips", "random lines",
         "from scan.json")


def _line_period(line_period: float | None, frame_period: float | None, rows_per_sweep: int,
                 flyback: float) -> float:
    if line_period:
        return float(line_period)
    if frame_period:
        lp = (float(frame_period) - flyback) / max(int(rows_per_sweep), 1)
        if lp > 0:
            return lp
        raise InputError(f"the flyback ({flyback * 1e3:g} ms) is not shorter than the frame period "
                         f"({frame_period * 1e3:g} ms)")
    raise InputError("the line period is unknown: set the frame period or the line period in the "
                     "Data widget (or load a movie whose metadata holds its timing)")


def build_pattern(kind: str, movie: Any, metadata: dict[str, Any] | None = None, *,
                  frame_period: float | None = None, line_period: float | None = None,
                  flyback: float = 0.0, bidirectional: bool = False, n_strips: int = 4,
                  order: str = "sequential", strips_per_sweep: int = 1, fraction: float = 0.25,
                  seed: int = 0, path: str | Path | None = None) -> ScanPattern:
    """Build a ScanPattern for ``movie`` (T, Y, X); raise InputError with a message for the widget.

    With an unknown line period, lines are assumed to fill the frame period (minus the flyback).
    A given frame period becomes the pattern's fixed sweep clock.
    """
    shape = tuple(int(s) for s in movie.shape)
    if len(shape) != 3:
        raise InputError(f"the movie has shape {shape}; a scan pattern needs a (T, Y, X) movie")
    t, y, _ = shape
    fp = float(frame_period) if frame_period else None
    common = dict(flyback=float(flyback), bidirectional=bool(bidirectional))
    try:
        if kind == "from movie metadata":
            p = scan_from_metadata(metadata or {})
            if p is None:
                raise InputError("the movie's metadata holds no scan pattern; choose another kind "
                                 "(e.g. 'from NaN rows' or 'full raster')")
        elif kind == "from scan.json":
            if path is None or not Path(path).is_file():
                raise InputError("choose a scan.json file written by napari-sbtt (ScanPattern.to_json)")
            p = ScanPattern.from_json(Path(path))
        elif kind == "full raster":
            lp = _line_period(line_period, fp, y, flyback)
            p = ScanPattern.full_raster(y, t, lp, frame_period=fp, **common)
        elif kind == "strips":
            lp = _line_period(line_period, fp, int(np.ceil(y / n_strips)) * strips_per_sweep, flyback)
            p = ScanPattern.strips(y, t, lp, int(n_strips), order=order,
                                   strips_per_sweep=int(strips_per_sweep), frame_period=fp, **common)
        elif kind == "random lines":
            lp = _line_period(line_period, fp, max(1, int(round(fraction * y))), flyback)
            p = ScanPattern.random_lines(y, t, lp, float(fraction), seed=int(seed),
                                         frame_period=fp, **common)
        elif kind == "from NaN rows":
            mask = infer_row_mask(movie)
            lp = _line_period(line_period, fp, int(mask.sum(axis=1).max()), flyback)
            p = ScanPattern.from_mask(mask, lp, frame_period=fp, **common)
        else:
            raise InputError(f"unknown scan pattern kind {kind!r}; choose one of {', '.join(KINDS)}")
    except InputError:
        raise
    except (ValueError, FileNotFoundError) as e:
        raise InputError(str(e)) from None
    try:
        p.check_movie(shape)
    except ValueError as e:
        raise InputError(str(e)) from None
    return p


def bandwidth_text(pattern: ScanPattern, labels: np.ndarray | None = None) -> str:
    """One paragraph on how much the scan samples: rows per sweep, sweep rate, samples per ROI."""
    rate = 1.0 / pattern.frame_period
    text = (f"{pattern.acquired_fraction():.0%} of the field per sweep "
            f"({pattern.acquired_fraction() * pattern.n_rows:.1f} of {pattern.n_rows} rows), "
            f"{rate:.3g} sweeps/s, {pattern.n_sweeps} sweeps = {pattern.duration:.3g} s.")
    if labels is not None and labels.shape[0] == pattern.n_rows and labels.any():
        ids = np.unique(labels[labels > 0])
        per_roi = roi_sample_rates(pattern.frame_mask(), labels, ids, pattern.duration)
        text += (f" Samples per ROI per second: median {np.median(per_roi):.3g} "
                 f"(min {per_roi.min():.3g}, max {per_roi.max():.3g}) over {ids.size} ROIs.")
    return text


class ScanWidget(Container):
    """Build a scan pattern for the chosen movie, show it as a mask layer, simulate a reduced scan."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer") -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._session = session_for(napari_viewer)
        self.kind = ComboBox(label="pattern", choices=list(KINDS), value="from movie metadata")
        self.n_strips = SpinBox(label="strips", min=1, max=4096, value=4)
        self.order = ComboBox(label="strip order", choices=["sequential", "interleaved"])
        self.strips_per_sweep = SpinBox(label="strips per sweep", min=1, max=4096, value=1)
        self.fraction = FloatSpinBox(label="share of rows", min=0.01, max=1.0, step=0.01, value=0.25)
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self.flyback_ms = FloatSpinBox(label="flyback (ms)", min=0.0, max=1e4, step=0.01, value=0.0)
        self.bidirectional = CheckBox(label="bidirectional", value=False)
        self.file = FileEdit(label="scan.json", mode="r", filter="*.json")
        self.show_button = PushButton(text="Show pattern")
        self.reduce_button = PushButton(text="Simulate reduced scan")
        self.save_path = FileEdit(label="save as", mode="w", filter="*.json")
        self.save_button = PushButton(text="Save scan.json")
        self.reset_button = PushButton(text="Reset to defaults",
                                       tooltip="forget the remembered scan settings")
        self.bandwidth = MessageLabel(label="")
        self.message = MessageLabel(label="")
        self.extend([self.kind, self.n_strips, self.order, self.strips_per_sweep, self.fraction,
                     self.seed, self.flyback_ms, self.bidirectional, self.file, self.show_button,
                     self.reduce_button, self.save_path, self.save_button, self.reset_button,
                     self.bandwidth, self.message])
        #: the scan settings remembered across sessions (restored here, saved on every change)
        self.settings = PersistedValues("scan", {
            "kind": self.kind, "n_strips": self.n_strips, "order": self.order,
            "strips_per_sweep": self.strips_per_sweep, "fraction": self.fraction,
            "flyback_ms": self.flyback_ms, "bidirectional": self.bidirectional})
        self.kind.changed.connect(self._update_visibility)
        self.show_button.changed.connect(self.show_pattern)
        self.reduce_button.changed.connect(self.simulate_reduced)
        self.save_button.changed.connect(self.save_pattern)
        self.reset_button.changed.connect(self.reset_settings)
        self._update_visibility()

    # ------------------------------------------------------------------ helpers
    def _update_visibility(self, *_: Any) -> None:
        k = self.kind.value
        for w in (self.n_strips, self.order, self.strips_per_sweep):
            w.visible = k == "strips"
        for w in (self.fraction, self.seed):
            w.visible = k == "random lines"
        for w in (self.flyback_ms, self.bidirectional):
            w.visible = k in ("full raster", "strips", "random lines", "from NaN rows")
        self.file.visible = k == "from scan.json"

    def build(self) -> tuple[ScanPattern, Any, Any]:
        """Build the pattern for the session's movie; returns (pattern, movie layer, labels layer)."""
        movie, labels = resolve_inputs(self._viewer, self._session)
        if movie is None:
            raise InputError("add a movie first: an Image layer of shape (T, Y, X)")
        frame, line = timing_for(movie, self._session)
        pattern = build_pattern(
            self.kind.value, movie.data, movie.metadata, frame_period=frame,
            line_period=line, flyback=self.flyback_ms.value / 1e3,
            bidirectional=self.bidirectional.value, n_strips=self.n_strips.value,
            order=self.order.value, strips_per_sweep=self.strips_per_sweep.value,
            fraction=self.fraction.value, seed=self.seed.value,
            path=self.file.value if self.kind.value == "from scan.json" else None)
        return pattern, movie, labels

    def _labels_array(self, labels_layer: Any) -> np.ndarray | None:
        if labels_layer is None:
            return None
        arr = np.asarray(labels_layer.data)
        return arr if arr.ndim == 2 else None

    # ------------------------------------------------------------------ actions
    def reset_settings(self, *_: Any) -> None:
        """Return the pattern kind, strips, order, share of rows, flyback and direction to their
        defaults and forget the remembered values."""
        self.settings.reset()
        self.message.show_info("scan settings reset to their defaults")

    def show_pattern(self, *_: Any) -> Any:
        """Build the pattern, store it in the session and show it as '<movie> scan'. Returns the layer."""
        try:
            pattern, movie, labels = self.build()
        except InputError as e:
            self.message.show_error(str(e))
            return None
        self.message.clear()
        self._session.scan, self._session.scan_for = pattern, movie.name
        self._session.changed("scan")
        set_time_axis(movie, pattern.t0, pattern.frame_period)
        mask = RowMaskMovie(pattern.frame_mask(), movie.data.shape[2])
        layer = upsert_image(
            self._viewer, f"{movie.name} scan", mask,
            scale=list(movie.scale), translate=list(movie.translate),
            contrast_limits=(0, 1), colormap="cyan", opacity=0.25, blending="additive",
            metadata={SCAN_KEY: pattern.to_dict(), SCAN_MASK_KEY: True})
        self.bandwidth.show_info(bandwidth_text(pattern, self._labels_array(labels)))
        return layer

    def simulate_reduced(self, *_: Any) -> Any:
        """Apply the pattern to a fully sampled movie: a lazy '<movie> reduced' layer (NaN rows)."""
        try:
            pattern, movie, labels = self.build()
        except InputError as e:
            self.message.show_error(str(e))
            return None
        if self.kind.value in ("from movie metadata", "from NaN rows") and pattern.acquired_fraction() == 1:
            self.message.show_error("this pattern acquires every row; choose strips or random lines "
                                    "to simulate a reduced scan")
            return None
        self.message.clear()
        name = f"{movie.name} reduced"
        set_time_axis(movie, pattern.t0, pattern.frame_period)
        data, kwargs, _kind = timed_movie(MaskedMovie(movie.data, pattern.frame_mask()), name=name, scan=pattern)
        kwargs.update(scale=list(movie.scale), translate=list(movie.translate))  # the movie's Y/X placement
        layer = upsert_image(self._viewer, kwargs.pop("name"), data, **kwargs)
        self._session.scan, self._session.scan_for = pattern, name
        self._session.movie_layer = name
        self._session.changed("movie")
        self.bandwidth.show_info(bandwidth_text(pattern, self._labels_array(labels)))
        return layer

    def save_pattern(self, *_: Any) -> None:
        """Write the current pattern to the chosen scan.json (never over an existing file)."""
        try:
            pattern, _, _ = self.build()
            path = Path(self.save_path.value)
            if path.suffix != ".json":
                raise InputError("choose a file name ending in .json to save the scan pattern")
            pattern.to_json(path)
        except InputError as e:
            self.message.show_error(str(e))
            return
        except OSError as e:
            self.message.show_error(f"could not save the scan pattern: {e}")
            return
        self.message.show_info(f"saved {path}")

    def current_pattern(self) -> ScanPattern | None:
        """The pattern last shown or simulated for the session's movie, if any."""
        movie = find_layer(self._viewer, self._session.movie_layer)
        if movie is not None and self._session.scan_for == movie.name:
            return self._session.scan
        return None
