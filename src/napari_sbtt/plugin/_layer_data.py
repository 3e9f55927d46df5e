"""napari layer data of napari-sbtt's things, built in one place: (data, kwargs, kind) tuples.

The reader returns these tuples, the widgets add or update layers from them, and the writer
reads back what they put in the metadata. Pure: no Qt, no napari; numpy and the core only.

- :func:`timed_movie`: a (T, Y, X) movie with its acquisition timing in the metadata (frame and
  line period, scan pattern, source) and its time axis in seconds;
- :func:`result_layers`: a result's activity (painted into the ROI labels when there are labels,
  else a time x ROI image) on the fine grid's time axis, and the labels with per-ROI features;
- :func:`oasis_layers`: OASIS's estimate the same way, when the result carries it (OASIS predicted
  the held-out samples better than SBTT);
- :func:`truth_layers`: the ground-truth rates of synthetic data painted into the ROI labels,
  beside the movie (the samples' comparison for the activity).

Layer metadata keys (all optional) written here and read by the widgets: ``scan_pattern`` (the
:class:`~napari_sbtt.core.scan.ScanPattern` as a dict), ``frame_period_s`` / ``line_period_s``
(seconds), ``sbtt_truth`` (ground truth of synthetic data: times, rates, roi_ids, units),
``sbtt_result`` (on an activity layer: the :class:`~napari_sbtt.result.SBTTResult` it shows),
``sbtt_oasis`` (True on an OASIS estimate layer), ``sbtt_truth_layer`` (True on a ground-truth
layer).

Time is physical on every layer: the movie's time axis has ``scale = frame period`` and the
activity's ``scale = fine bin width``, both translated so that frame/bin k is centred on its
interval (:func:`napari_sbtt.core.activity.time_axis`), so at any world time both show the
frame and the bin that contain it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..core.activity import ActivityMovie, roi_summary, time_axis

__all__ = [
    "SCAN_KEY",
    "FRAME_PERIOD_KEY",
    "LINE_PERIOD_KEY",
    "TRUTH_KEY",
    "RESULT_KEY",
    "OASIS_KEY",
    "TRUTH_LAYER_KEY",
    "SCAN_MASK_KEY",
    "LABELS_OPACITY",
    "LayerData",
    "timed_movie",
    "result_layers",
    "roi_features",
    "rates_contrast",
    "first_frame_contrast",
    "activity_layer_name",
    "oasis_layer_name",
    "oasis_layers",
    "truth_layers",
]

SCAN_KEY = "scan_pattern"
FRAME_PERIOD_KEY = "frame_period_s"
LINE_PERIOD_KEY = "line_period_s"
TRUTH_KEY = "sbtt_truth"
RESULT_KEY = "sbtt_result"
OASIS_KEY = "sbtt_oasis"
TRUTH_LAYER_KEY = "sbtt_truth_layer"
SCAN_MASK_KEY = "sbtt_scan_mask"
#: opacity of ROI labels drawn over a movie
LABELS_OPACITY = 0.35

#: (data, layer keyword arguments, layer type), as napari's reader hooks return them
LayerData = tuple[Any, dict[str, Any], str]


def activity_layer_name(base: str) -> str:
    """The name of the activity layer of a movie (or labels layer) called ``base``."""
    return f"{base} activity"


def oasis_layer_name(base: str) -> str:
    """The name of the OASIS estimate layer of a movie (or labels layer) called ``base``."""
    return f"{base} OASIS"


def first_frame_contrast(movie: Any) -> tuple[float, float] | None:
    """Contrast limits (1st and 99.5th percentile) of frame 0 of a lazy (T, Y, X) movie.

    Reads one frame only, so napari never scans a memory-mapped or lazily decoded movie to
    find its range; None when frame 0 has no finite value (e.g. all rows unacquired).
    """
    frame0 = np.asarray(movie[0], dtype=float)
    if not np.isfinite(frame0).any():
        return None
    lo, hi = np.nanpercentile(frame0, [1, 99.5])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def rates_contrast(rates: np.ndarray) -> tuple[float, float]:
    """Contrast limits of an activity layer: from min(0, the 1st percentile) to the 99.5th."""
    finite = rates[np.isfinite(rates)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [1, 99.5])
    lo = min(float(lo), 0.0)
    if not hi > lo:
        hi = lo + 1.0
    return lo, float(hi)


def roi_features(result: Any) -> dict[str, np.ndarray]:
    """Per-ROI table for the labels layer: index (label), observed share, fit r, mean activity.

    Observed share and fit r are the run's own (``metrics``); a result without them (built by
    hand) gets them from :func:`napari_sbtt.core.activity.roi_summary`.
    """
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


def timed_movie(movie: Any, *, name: str, frame_period: float | None = None, line_period: float | None = None,
                scan: Any = None, metadata: Mapping[str, Any] | None = None) -> LayerData:
    """An Image layer tuple of a (T, Y, X) movie with its timing.

    ``scan`` (a ScanPattern) times it when given (its first sweep's start and its mean frame
    period; both periods go into the metadata too), else ``frame_period`` / ``line_period``
    (seconds). Without a frame period the time axis stays in frames. ``metadata``: more keys
    (source path and format...). The contrast comes from the first frame only.
    """
    md: dict[str, Any] = dict(metadata or {})
    t0 = 0.0
    if scan is not None:
        md[SCAN_KEY] = scan.to_dict()
        t0 = float(scan.t0)
        frame_period = float(scan.frame_period) if frame_period is None else frame_period
        line_period = float(scan.line_period) if line_period is None else line_period
    if frame_period is not None:
        md[FRAME_PERIOD_KEY] = float(frame_period)
    if line_period is not None:
        md[LINE_PERIOD_KEY] = float(line_period)
    kwargs: dict[str, Any] = {"name": name, "metadata": md}
    period = float(scan.frame_period) if scan is not None else frame_period
    if period is not None:
        scale, translate = time_axis(t0, period)
        kwargs["scale"], kwargs["translate"] = (scale, 1.0, 1.0), (translate, 0.0, 0.0)
    limits = first_frame_contrast(movie)
    if limits is not None:
        kwargs["contrast_limits"] = limits
    return (movie, kwargs, "image")


def result_layers(result: Any, *, name: str, labels: np.ndarray | None = None,
                  labels_name: str | None = None, yx_scale: Sequence[float] = (1.0, 1.0),
                  yx_translate: Sequence[float] = (0.0, 0.0),
                  metadata: Mapping[str, Any] | None = None) -> list[LayerData]:
    """The layers of ``result``: its activity, and its ROI labels with per-ROI features.

    With ``labels`` ((Y, X) ROI ids), the activity "<name> activity" is painted frame by frame into
    them (a lazy :class:`~napari_sbtt.core.activity.ActivityMovie`, its Y/X placed by
    ``yx_scale`` / ``yx_translate``) and, when ``labels_name`` is given, a Labels layer of that name
    with :func:`roi_features` follows; without labels the activity is a (T_fine, N) image
    "<name> activity (time x ROI)". Time is the fine grid's in seconds. The activity's metadata
    holds the result (``sbtt_result``), its units, the labels layer's name and ``metadata``.
    """
    grid = result.grid
    t_scale, t_translate = time_axis(grid.t0, grid.bin_width)
    md = {RESULT_KEY: result, "units": result.units, "sbtt_labels_layer": labels_name, **dict(metadata or {})}
    common = {"contrast_limits": rates_contrast(np.asarray(result.rates)), "colormap": "inferno", "metadata": md}
    if labels is None:
        return [(np.asarray(result.rates), {"name": f"{activity_layer_name(name)} (time x ROI)",
                                            "scale": (t_scale, 1.0), "translate": (t_translate, 0.0), **common},
                 "image")]
    labels = np.asarray(labels)
    activity = (ActivityMovie(result.rates, labels.astype(np.int64, copy=False), result.roi_ids),
                {"name": activity_layer_name(name), "scale": (t_scale, *map(float, yx_scale)),
                 "translate": (t_translate, *map(float, yx_translate)), "blending": "additive", **common},
                "image")
    if labels_name is None:
        return [activity]
    return [activity, (labels, {"name": labels_name, "features": roi_features(result),
                                "opacity": LABELS_OPACITY}, "labels")]


def oasis_layers(result: Any, *, name: str, labels: np.ndarray | None = None,
                 yx_scale: Sequence[float] = (1.0, 1.0), yx_translate: Sequence[float] = (0.0, 0.0),
                 metadata: Mapping[str, Any] | None = None) -> list[LayerData]:
    """OASIS's estimate of ``result`` as a layer like its activity (:func:`result_layers`), or []
    when the result has none (``oasis_rates`` is kept only when SBTT did not predict the
    held-out samples better than OASIS). Named "<name> OASIS" (painted into ``labels``) or "<name> OASIS (time x ROI)";
    its metadata holds ``sbtt_oasis`` (never taken for a movie to fit), the units and ``metadata``.
    """
    oasis = getattr(result, "oasis_rates", None)
    if oasis is None:
        return []
    oasis = np.asarray(oasis)
    t_scale, t_translate = time_axis(result.grid.t0, result.grid.bin_width)
    md = {OASIS_KEY: True, "units": result.units, **dict(metadata or {})}
    common = {"contrast_limits": rates_contrast(oasis), "colormap": "inferno", "metadata": md}
    if labels is None:
        return [(oasis, {"name": f"{oasis_layer_name(name)} (time x ROI)", "scale": (t_scale, 1.0),
                         "translate": (t_translate, 0.0), **common}, "image")]
    labels = np.asarray(labels)
    return [(ActivityMovie(oasis, labels.astype(np.int64, copy=False), result.roi_ids),
             {"name": oasis_layer_name(name), "scale": (t_scale, *map(float, yx_scale)),
              "translate": (t_translate, *map(float, yx_translate)), "blending": "additive", **common},
             "image")]


def truth_layers(truth: Mapping[str, Any], labels: np.ndarray, *, name: str, gap_px: int = 4) -> list[LayerData]:
    """The ground truth of synthetic data as an Image layer "<name> ground truth (Hz)": each ROI's
    true firing rate (Hz) painted into ``labels`` ((Y, X)) on the truth's fine grid in seconds,
    placed ``gap_px`` pixels to the right of the movie, so the movie with the inferred activity and
    the truth are seen side by side at every time.

    ``truth``: ``times`` (T,) bin centres in seconds, ``rates`` (T, N) in Hz, ``roi_ids`` (N,);
    optional ``t0`` and ``bin_width`` (else from ``times``). Its metadata holds
    ``sbtt_truth_layer`` (never taken for a movie to fit) and the units.
    """
    times = np.asarray(truth["times"], dtype=float)
    rates = np.asarray(truth["rates"], dtype=np.float32)
    ids = np.asarray(truth["roi_ids"])
    bin_width = float(truth.get("bin_width") or (np.median(np.diff(times)) if times.size > 1 else 1.0))
    t0 = float(truth.get("t0", times[0] - bin_width / 2 if times.size else 0.0))
    t_scale, t_translate = time_axis(t0, bin_width)
    labels = np.asarray(labels)
    finite = rates[np.isfinite(rates)]
    hi = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    return [(ActivityMovie(rates, labels.astype(np.int64, copy=False), ids),
             {"name": f"{name} ground truth (Hz)", "scale": (t_scale, 1.0, 1.0),
              "translate": (t_translate, 0.0, float(labels.shape[1] + gap_px)),
              "contrast_limits": (0.0, hi if hi > 0 else 1.0), "colormap": "inferno",
              "metadata": {TRUTH_LAYER_KEY: True, "units": "Hz"}},
             "image")]
