"""napari-side layer helpers: checks of the chosen layers, finding and updating layers, and showing
a result in a viewer.

The layer data itself (a timed movie, a result's activity and labels, the metadata keys) is
built by :mod:`._layer_data`, which the reader shares; this module puts it into a viewer,
updating layers in place on re-runs.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.activity import time_axis
from ..core.scan import ScanPattern
from ._layer_data import (
    FRAME_PERIOD_KEY,
    LINE_PERIOD_KEY,
    OASIS_KEY,
    RESULT_KEY,
    SCAN_KEY,
    SCAN_MASK_KEY,
    TRUTH_KEY,
    TRUTH_LAYER_KEY,
    activity_layer_name,
    oasis_layer_name,
    oasis_layers,
    result_layers,
    roi_features,
)

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = [
    "SCAN_KEY",
    "FRAME_PERIOD_KEY",
    "LINE_PERIOD_KEY",
    "TRUTH_KEY",
    "RESULT_KEY",
    "OASIS_KEY",
    "SCAN_MASK_KEY",
    "is_generated",
    "InputError",
    "scan_from_metadata",
    "timing_from_metadata",
    "check_inputs",
    "set_time_axis",
    "activity_layer_name",
    "roi_features",
    "show_result",
    "find_layer",
    "upsert_image",
]


def is_generated(layer: Any) -> bool:
    """True for layers napari-sbtt made for display (activity, scan mask, OASIS estimate, ground
    truth): never a movie to fit."""
    md = getattr(layer, "metadata", None) or {}
    return RESULT_KEY in md or any(bool(md.get(k)) for k in (SCAN_MASK_KEY, OASIS_KEY, TRUTH_LAYER_KEY))


class InputError(ValueError):
    """The layers or settings chosen in a widget cannot be used; the message says how to fix it."""


# --------------------------------------------------------------------------- metadata
def scan_from_metadata(metadata: dict[str, Any]) -> ScanPattern | None:
    """The ScanPattern stored in a layer's metadata (dict, JSON text or object), or None."""
    value = (metadata or {}).get(SCAN_KEY)
    if value is None:
        return None
    if isinstance(value, ScanPattern):
        return value
    try:
        if isinstance(value, str):
            return ScanPattern.from_dict(json.loads(value))
        if isinstance(value, dict):
            return ScanPattern.from_dict(value)
    except (ValueError, TypeError):
        return None
    return None


def timing_from_metadata(metadata: dict[str, Any]) -> tuple[float | None, float | None]:
    """(frame period, line period) in seconds from a layer's metadata; None where unknown."""
    md = metadata or {}
    scan = scan_from_metadata(md)
    frame = md.get(FRAME_PERIOD_KEY)
    line = md.get(LINE_PERIOD_KEY)
    if scan is not None:
        frame = frame if frame is not None else scan.frame_period
        line = line if line is not None else scan.line_period
    def _pos(v: Any) -> float | None:
        try:
            v = float(v)
        except (TypeError, ValueError):
            return None
        return v if np.isfinite(v) and v > 0 else None
    return _pos(frame), _pos(line)


# --------------------------------------------------------------------------- checks
def check_inputs(movie_layer: Any, labels_layer: Any) -> tuple[Any, np.ndarray]:
    """Check the chosen movie (Image) and ROIs (Labels) layers; return (movie data, labels array).

    Raises InputError with a message for the widget when a layer is missing, the movie is not
    (T, Y, X), the labels do not match the movie's (Y, X) or hold no ROI.
    """
    if movie_layer is None:
        raise InputError("choose a movie: an Image layer of shape (T, Y, X)")
    if labels_layer is None:
        raise InputError(
            "choose the ROIs: add a Labels layer (0 = background, 1..N = ROIs) of the movie's "
            "(Y, X) size, e.g. from File > Open or the 'Synthetic line scan' sample")
    shape = tuple(int(s) for s in movie_layer.data.shape)
    if getattr(movie_layer, "rgb", False):
        raise InputError(f"'{movie_layer.name}' is an RGB image; the movie must be one channel (T, Y, X)")
    if len(shape) != 3:
        raise InputError(
            f"'{movie_layer.name}' has shape {shape}; the movie must be a (T, Y, X) time series "
            f"{'(this is a single 2-D image)' if len(shape) == 2 else ''}".rstrip())
    if shape[0] < 2:
        raise InputError(f"'{movie_layer.name}' has a single frame; the movie needs many frames (T, Y, X)")
    labels = np.asarray(labels_layer.data)
    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.ndim != 2 or labels.shape != shape[1:]:
        raise InputError(
            f"the ROIs '{labels_layer.name}' have shape {labels.shape} but the movie frames are "
            f"{shape[1:]}; use a 2-D Labels layer of the movie's (Y, X) size")
    if not labels.any():
        raise InputError(f"the ROIs '{labels_layer.name}' are empty; paint or load at least one ROI")
    return movie_layer.data, labels


# --------------------------------------------------------------------------- layers
def find_layer(viewer: "napari.Viewer", name: str | None) -> Any:
    """The layer called ``name``, or None."""
    if name is None:
        return None
    try:
        return viewer.layers[name]
    except (KeyError, ValueError):
        return None


def set_time_axis(layer: Any, t0: float, period: float) -> None:
    """Put a (T, ...) layer on physical time: frame k covers [t0 + k*period, t0 + (k+1)*period)."""
    scale, translate = time_axis(t0, period)
    s = np.array(layer.scale, dtype=float)
    t = np.array(layer.translate, dtype=float)
    if s[0] != scale or t[0] != translate:
        s[0], t[0] = scale, translate
        layer.scale = s
        layer.translate = t


def upsert_image(viewer: "napari.Viewer", name: str, data: Any, **kwargs: Any) -> Any:
    """Update the Image layer ``name`` in place, or add it. Returns the layer."""
    layer = find_layer(viewer, name)
    if layer is not None and layer.__class__.__name__ == "Image" and layer.ndim == len(data.shape):
        for key in ("scale", "translate"):
            if key in kwargs:
                setattr(layer, key, kwargs.pop(key))
        layer.data = data
        for key, value in kwargs.items():
            setattr(layer, key, value)
        return layer
    if layer is not None:
        viewer.layers.remove(layer)
    return viewer.add_image(data, name=name, **kwargs)


def show_result(viewer: "napari.Viewer", result: Any, movie_layer: Any, labels_layer: Any, *,
                name: str | None = None) -> Any:
    """Show ``result`` as layers (updated in place on re-runs); return the activity layer.

    The layers are :func:`._layer_data.result_layers`'. With a movie layer (the movie was
    fitted): "<movie> activity" painted into the ROIs on the fine grid's time axis, the movie's
    time axis set to its frame period (both align in seconds), and the ROI labels' features set.
    With ``movie_layer=None`` (a traces-only result, e.g. ``session.recording``): with a Labels
    layer, "<labels> activity" painted into them (their Y/X scale and translate), else (ROIs
    known by their rows only) a (T_fine, N) image "<name> activity (time x ROI)", ``name``
    defaulting to "SBTT". When the result carries OASIS's estimate (SBTT did not predict the
    held-out samples better than OASIS), a layer "<name> OASIS" like the activity shows it (its name is in the activity
    layer's metadata ``sbtt_oasis_layer``); an earlier run's OASIS layer of that name is removed
    when this result has none.
    """
    grid = result.grid
    meta = {"sbtt_movie_layer": getattr(movie_layer, "name", None)}
    if labels_layer is None:
        if movie_layer is not None:
            raise InputError("choose the ROIs: the result of a movie is painted into its Labels layer")
        base = name or "SBTT"
        place: dict[str, Any] = {}
        ((data, kwargs, _kind),) = result_layers(result, name=base, metadata=meta)
    else:
        labels = np.asarray(labels_layer.data)
        if labels.ndim == 3 and labels.shape[0] == 1:
            labels = labels[0]
        if movie_layer is not None:
            factor = int((result.config or {}).get("factor", 1) or 1)
            set_time_axis(movie_layer, grid.t0, grid.bin_width * factor)
        ref = movie_layer if movie_layer is not None else labels_layer
        base = ref.name
        place = {"labels": labels, "yx_scale": np.asarray(ref.scale, dtype=float)[-2:],
                 "yx_translate": np.asarray(ref.translate, dtype=float)[-2:]}
        ((data, kwargs, _kind),) = result_layers(
            result, name=base, metadata={**meta, "sbtt_labels_layer": labels_layer.name}, **place)
    # OASIS's estimate beside the activity when SBTT did not predict the held-out samples better
    oasis = oasis_layers(result, name=base, metadata=meta, **place)
    previous = find_layer(viewer, oasis_layer_name(base) if place else f"{oasis_layer_name(base)} (time x ROI)")
    if not oasis and previous is not None and previous.metadata.get(OASIS_KEY):
        viewer.layers.remove(previous)  # an earlier run's; this result has none
    kwargs["metadata"]["sbtt_oasis_layer"] = oasis[0][1]["name"] if oasis else None
    layer = upsert_image(viewer, kwargs.pop("name"), data, **kwargs)
    for o_data, o_kwargs, _kind in oasis:
        upsert_image(viewer, o_kwargs.pop("name"), o_data, **o_kwargs)
    _label_time_axis(viewer)
    if labels_layer is not None:
        with contextlib.suppress(Exception):  # features are a convenience; never fail the result on them
            labels_layer.features = roi_features(result)
    return layer


def _label_time_axis(viewer: "napari.Viewer") -> None:
    """Name napari's axis 0 "time (s)" when it still has napari's default name."""
    try:
        labels = tuple(viewer.dims.axis_labels)
        if labels and labels[0] == "0":  # napari's default names: say that axis 0 is time
            viewer.dims.axis_labels = ("time (s)", *labels[1:])
    except Exception:  # noqa: BLE001 - cosmetic
        pass
