"""Reader: napari-sbtt result folders and checkpoints, and the formats of ``core.readers``.

``get_reader`` decides from cheap checks (magic bytes, headers, folder contents) and returns
None for anything it does not know; it never raises. What each path opens as:

- result folder (``result.json`` + ``arrays.npz``): the activity as an Image layer on the
  fine time grid (painted into the ROIs when the folder holds ``labels.npy``, else a
  time x ROI image) and the ROI labels with per-ROI features;
- model checkpoint (``*.safetensors`` written by napari-sbtt): no layer; the checkpoint is
  selected in the Train / Load widget of the current viewer;
- suite2p plane folder: the registered movie (data.bin, memory-mapped) when suite2p kept it,
  and the ROIs as Labels; CaImAn HDF5: the ROIs as Labels (frame period in metadata);
- NWB: the movie (if stored) and the ROIs;
- TIFF movie with timing we use (ScanImage, or ImageJ with a frame interval): a lazy Image with
  the acquisition timing (and, for ScanImage files, the scan pattern) in its metadata. Plain
  TIFFs are declined.

TIFFs and napari. npe2 picks the readers to offer by file name pattern alone, before any
``get_reader`` runs (``PluginManager.iter_compatible_readers``), and napari asks the user to
choose whenever two plugins match (``MultipleReaderError`` -> reader dialog): declining a file
in ``get_reader`` does not stop the question. So the manifest does not claim ``*.tif``;
napari's builtin reader opens TIFFs, and the Data widget's "Open recording..." button
opens a TIFF with its timing (through :func:`movie_layer_data`, or
:func:`napari_sbtt.recording.load_recording` when an ROI file is given). ``get_reader`` still accepts a
timed TIFF when it is called directly (scripts, ``viewer.open(..., plugin=...)`` on a pattern
that matches).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.activity import ActivityMovie, roi_summary, time_axis
from ._files import LABELS_FILE, checkpoint_info, is_result_dir
from ._layers import FRAME_PERIOD_KEY, LINE_PERIOD_KEY, RESULT_KEY, SCAN_KEY

__all__ = ["get_reader", "read_result_layers", "movie_layer_data", "tiff_has_timing",
           "first_frame_contrast"]

LayerData = list[tuple[Any, ...]]


def _single(path: Any) -> str | None:
    if isinstance(path, (list, tuple)):
        return os.fspath(path[0]) if len(path) == 1 else None
    try:
        return os.fspath(path)
    except TypeError:
        return None


def get_reader(path: Any) -> Callable[[Any], LayerData] | None:
    """npe2 reader hook: a function reading ``path``, or None when napari-sbtt does not read it."""
    try:
        p = _single(path)
        if p is None:
            return None
        if is_result_dir(p):
            return _read_result
        if checkpoint_info(p) is not None:
            return _read_checkpoint
        from ..core.readers import detect_format

        fmt = detect_format(p)
        if fmt == "tiff":
            from ..core.readers import read_movie_info

            # raises (so declines) for 2-D or multi-channel TIFFs; plain TIFFs are napari's
            if not tiff_has_timing(read_movie_info(p)):
                return None
        if fmt in _FORMAT_READERS:
            return _FORMAT_READERS[fmt]
        return None
    except Exception:  # noqa: BLE001 - a reader hook must decline, never raise
        return None


# --------------------------------------------------------------------------- results
def read_result_layers(path: str | os.PathLike) -> LayerData:
    """Layer data tuples of a result folder (no model is loaded, so torch is not imported)."""
    from ..api import load_result

    p = Path(path)
    result = load_result(p, load_model=False)
    name = p.name[: -len(".sbtt")] if p.name.endswith(".sbtt") else p.name
    scale, translate = time_axis(result.grid.t0, result.grid.bin_width)
    finite = result.rates[np.isfinite(result.rates)]
    hi = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    meta_common = {"contrast_limits": (lo, hi if hi > lo else lo + 1.0), "colormap": "inferno",
                   "metadata": {RESULT_KEY: result, "sbtt_result_path": str(p),
                                "units": result.units}}
    labels_path = p / LABELS_FILE
    if labels_path.is_file():
        from ..core.readers.npy import load_npy

        labels = load_npy(labels_path)
        labels_name = f"{name} ROIs"
        summary = roi_summary(result.observations, result.rates)
        features = {"index": np.asarray(result.roi_ids, dtype=np.int64),
                    "observed_share": summary["observed_share"], "fit_r": summary["fit_r"]}
        meta_common["metadata"]["sbtt_labels_layer"] = labels_name
        activity = (ActivityMovie(result.rates, labels, result.roi_ids),
                    {"name": f"{name} activity", "scale": (scale, 1.0, 1.0),
                     "translate": (translate, 0.0, 0.0), "blending": "additive", **meta_common},
                    "image")
        return [activity, (labels, {"name": labels_name, "features": features, "opacity": 0.35},
                           "labels")]
    return [(result.rates, {"name": f"{name} activity (time x ROI)", "scale": (scale, 1.0),
                            "translate": (translate, 0.0), **meta_common}, "image")]


def _read_result(path: Any) -> LayerData:
    return read_result_layers(_single(path))


# --------------------------------------------------------------------------- checkpoints
def _read_checkpoint(path: Any) -> LayerData:
    """Select the checkpoint in the current viewer's Train / Load widget; no layer."""
    p = str(Path(_single(path)).resolve())
    try:
        import napari

        from ._state import session_for

        viewer = napari.current_viewer()
        session = session_for(viewer)
        session.pending_checkpoint = p
        session.changed("checkpoint")
        if viewer is not None:
            try:
                viewer.window.add_plugin_dock_widget("napari-sbtt", "Train / Load")
            except Exception:  # noqa: BLE001 - the widget is a convenience here
                pass
    except Exception:  # noqa: BLE001
        pass
    return [(None,)]


# --------------------------------------------------------------------------- movies and ROIs
def tiff_has_timing(info: Any) -> bool:
    """True for a TIFF whose metadata times the movie: ScanImage, or ImageJ with a frame interval.

    ``info`` is a :class:`~napari_sbtt.core.readers.MovieInfo`.
    """
    if info.source == "scanimage":
        return info.frame_period_s is not None or info.line_period_s is not None
    return info.source == "imagej" and info.frame_period_s is not None


def movie_layer_data(path: str | os.PathLike) -> LayerData:
    """One Image layer tuple for a (T, Y, X) TIFF movie, opened lazily (memory-mapped).

    The metadata holds the source path and format, the frame and line periods the file states
    and, for ScanImage files, the scan pattern; the time axis is in seconds when the frame
    period is known. Raises FileNotFoundError or ``ReaderError`` (a ValueError) with a message
    for the user.
    """
    from ..core.readers import open_movie, scan_pattern_from_tiff

    p = os.fspath(path)
    movie, info = open_movie(p)
    metadata: dict[str, Any] = {"source_path": p, "source_format": info.source or "tiff"}
    if info.frame_period_s is not None:
        metadata[FRAME_PERIOD_KEY] = info.frame_period_s
    if info.line_period_s is not None:
        metadata[LINE_PERIOD_KEY] = info.line_period_s
    kwargs: dict[str, Any] = {"name": Path(p).stem, "metadata": metadata}
    t0, frame_period = 0.0, info.frame_period_s
    if info.has_line_timing:
        try:
            pattern = scan_pattern_from_tiff(p, detect_unacquired_rows=False)
        except ValueError:
            pattern = None
        if pattern is not None:
            metadata[SCAN_KEY] = pattern.to_dict()
            t0, frame_period = pattern.t0, pattern.frame_period  # frame timestamps, when the file has them
    if len(info.files) > 1:
        metadata["source_files"] = list(info.files)
    if frame_period is not None:
        scale, translate = time_axis(t0, frame_period)
        kwargs["scale"] = (scale, 1.0, 1.0)
        kwargs["translate"] = (translate, 0.0, 0.0)
    limits = first_frame_contrast(movie)
    if limits is not None:
        kwargs["contrast_limits"] = limits
    return [(movie, kwargs, "image")]


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


def _read_tiff(path: Any) -> LayerData:
    return movie_layer_data(_single(path))


def _rate_meta(rate_hz: float | None) -> dict[str, Any]:
    return {FRAME_PERIOD_KEY: 1.0 / rate_hz} if rate_hz else {}


def _timed_movie(movie: Any, name: str, source: Any, rate_hz: float | None) -> tuple[Any, ...]:
    """An Image layer tuple for a (T, Y, X) movie, its time axis in seconds when the rate is known."""
    meta: dict[str, Any] = {"name": name,
                            "metadata": {"source_path": str(source), **_rate_meta(rate_hz)}}
    if rate_hz:
        scale, translate = time_axis(0.0, 1.0 / rate_hz)
        meta["scale"], meta["translate"] = (scale, 1.0, 1.0), (translate, 0.0, 0.0)
    return (movie, meta, "image")


def _read_suite2p(path: Any) -> LayerData:
    from ..core.readers import read_suite2p

    data = read_suite2p(_single(path))
    out: LayerData = []
    if data.binary is not None:  # the registered movie suite2p kept (data.bin), memory-mapped
        out.append(_timed_movie(data.movie(), "suite2p registered movie", data.plane_dir, data.fs))
    out.append((data.labels, {"name": "suite2p ROIs", "opacity": 0.35,
                              "metadata": {"source_path": str(data.plane_dir), **_rate_meta(data.fs)}},
                "labels"))
    return out


def _read_caiman(path: Any) -> LayerData:
    from ..core.readers import read_caiman

    data = read_caiman(_single(path))
    return [(data.labels, {"name": "CaImAn ROIs", "opacity": 0.35,
                           "metadata": {"source_path": str(data.path), **_rate_meta(data.fr)}},
             "labels")]


def _read_nwb(path: Any) -> LayerData:
    from ..core.readers import read_nwb

    data = read_nwb(_single(path))
    out: LayerData = []
    if data.movie is not None:
        out.append(_timed_movie(data.movie, data.series_name or "NWB movie", data.path, data.rate_hz))
    out.append((data.labels, {"name": data.segmentation_name or "NWB ROIs", "opacity": 0.35},
                "labels"))
    return out


_FORMAT_READERS: dict[str, Callable[[Any], LayerData]] = {
    "tiff": _read_tiff,
    "suite2p": _read_suite2p,
    "caiman": _read_caiman,
    "nwb": _read_nwb,
}
