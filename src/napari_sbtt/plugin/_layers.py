"""Layer conventions of napari-sbtt: metadata keys, time axes, and results as layers.

Layer metadata written by the sample data, the reader and the widgets (all optional):

- ``scan_pattern``: the movie's :class:`~napari_sbtt.core.scan.ScanPattern` as a dict
  (``ScanPattern.to_dict()``);
- ``frame_period_s`` / ``line_period_s``: acquisition timing in seconds;
- ``sbtt_truth``: ground truth of synthetic data, ``{"times", "rates", "roi_ids", "units"}``;
- ``sbtt_result`` (on the activity layer): the :class:`~napari_sbtt.api.SBTTResult` shown.

Time is physical on every layer: the movie's time axis has ``scale = frame period`` and the
activity's ``scale = fine bin width``, both translated so that frame/bin k is centred on its
interval (:func:`napari_sbtt.core.activity.time_axis`), so at any world time both show the
frame and the bin that contain it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.activity import ActivityMovie, roi_summary, time_axis
from ..core.scan import ScanPattern

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = [
    "SCAN_KEY",
    "FRAME_PERIOD_KEY",
    "LINE_PERIOD_KEY",
    "TRUTH_KEY",
    "RESULT_KEY",
    "SCAN_MASK_KEY",
    "is_generated",
    "InputError",
    "scan_from_metadata",
    "timing_from_metadata",
    "check_inputs",
    "set_time_axis",
    "activity_layer_name",
    "show_result",
    "find_layer",
    "upsert_image",
]

SCAN_KEY = "scan_pattern"
FRAME_PERIOD_KEY = "frame_period_s"
LINE_PERIOD_KEY = "line_period_s"
TRUTH_KEY = "sbtt_truth"
RESULT_KEY = "sbtt_result"
SCAN_MASK_KEY = "sbtt_scan_mask"


def is_generated(layer: Any) -> bool:
    """True for layers napari-sbtt made for display (activity, scan mask): never a movie to fit."""
    md = getattr(layer, "metadata", None) or {}
    return RESULT_KEY in md or bool(md.get(SCAN_MASK_KEY))


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


def activity_layer_name(movie_name: str) -> str:
    return f"{movie_name} activity"


def _contrast(rates: np.ndarray) -> tuple[float, float]:
    finite = rates[np.isfinite(rates)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [1, 99.5])
    lo = min(float(lo), 0.0) if lo >= 0 else float(lo)
    if not hi > lo:
        hi = lo + 1.0
    return lo, float(hi)


def roi_features(result: Any) -> dict[str, np.ndarray]:
    """Per-ROI table for the labels layer: index (label), observed share, fit r, mean activity."""
    n = result.rates.shape[1]
    m = result.metrics or {}
    share = m.get("observed_share_per_roi")
    fit = m.get("fit_r_per_roi")
    if share is None or fit is None or len(share) != n or len(fit) != n:
        s = roi_summary(result.observations, result.rates)
        share, fit = s["observed_share"], s["fit_r"]
    return {
        "index": np.asarray(result.roi_ids, dtype=np.int64),
        "observed_share": np.asarray(share, dtype=float),
        "fit_r": np.asarray(fit, dtype=float),
        "mean_activity": np.nanmean(result.rates, axis=0).astype(float),
    }


def show_result(viewer: "napari.Viewer", result: Any, movie_layer: Any, labels_layer: Any, *,
                name: str | None = None) -> Any:
    """Show ``result`` as layers (updated in place on re-runs); return the activity layer.

    With a movie layer (the movie was fitted):

    - "<movie> activity": an Image of the activity painted into the ROIs (lazy
      :class:`~napari_sbtt.core.activity.ActivityMovie`), time axis = the fine grid;
    - the movie's time axis is set to its frame period, so both align in seconds;
    - the ROI labels get per-ROI features (observed share, fit r, mean activity).

    With ``movie_layer=None`` (a traces-only result, e.g. ``session.recording``):

    - with a Labels layer: "<labels> activity", the activity painted into those labels, its
      Y/X scale and translate taken from the labels layer, time = the fine grid; the labels
      get the per-ROI features;
    - without one (``labels_layer=None``, ROIs known by their rows only): a (T_fine, N)
      Image "<name> activity (time x ROI)", time on axis 0 in seconds, one column per ROI.

    ``name`` (default: the movie's or the labels' name, else "SBTT") names the activity
    layer when there is neither.
    """
    grid = result.grid
    t_scale, t_translate = time_axis(grid.t0, grid.bin_width)
    meta = {RESULT_KEY: result, "sbtt_movie_layer": getattr(movie_layer, "name", None),
            "sbtt_labels_layer": getattr(labels_layer, "name", None), "units": result.units}
    common = {"contrast_limits": _contrast(result.rates), "colormap": "inferno", "metadata": meta}
    if labels_layer is None:
        if movie_layer is not None:
            raise InputError("choose the ROIs: the result of a movie is painted into its Labels layer")
        base = name or "SBTT"
        layer = upsert_image(viewer, f"{base} activity (time x ROI)", np.asarray(result.rates),
                             scale=[t_scale, 1.0], translate=[t_translate, 0.0], **common)
        _label_time_axis(viewer)
        return layer
    labels = np.asarray(labels_layer.data)
    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]
    if movie_layer is not None:
        factor = int((result.config or {}).get("factor", 1) or 1)
        set_time_axis(movie_layer, grid.t0, grid.bin_width * factor)
        ref = movie_layer
    else:
        ref = labels_layer
    yx_scale = list(np.asarray(ref.scale, dtype=float)[-2:])
    yx_translate = list(np.asarray(ref.translate, dtype=float)[-2:])
    data = ActivityMovie(result.rates, labels.astype(np.int64, copy=False), result.roi_ids)
    layer = upsert_image(
        viewer,
        activity_layer_name(ref.name),
        data,
        scale=[t_scale, *yx_scale],
        translate=[t_translate, *yx_translate],
        blending="additive",
        **common,
    )
    _label_time_axis(viewer)
    try:
        labels_layer.features = roi_features(result)
    except Exception:  # noqa: BLE001 - features are a convenience; never fail the result on them
        pass
    return layer


def _label_time_axis(viewer: "napari.Viewer") -> None:
    """Name napari's axis 0 "time (s)" when it still has napari's default name."""
    try:
        labels = tuple(viewer.dims.axis_labels)
        if labels and labels[0] == "0":  # napari's default names: say that axis 0 is time
            viewer.dims.axis_labels = ("time (s)", *labels[1:])
    except Exception:  # noqa: BLE001 - cosmetic
        pass
