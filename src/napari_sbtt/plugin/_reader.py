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

import contextlib
import os
from pathlib import Path
from typing import Any, Callable

from ._files import LABELS_FILE, checkpoint_info, is_result_dir
from ._layer_data import FRAME_PERIOD_KEY, LABELS_OPACITY, LayerData, result_layers, timed_movie

#: what a reader returns: layer data tuples
Layers = list[LayerData]

__all__ = ["get_reader", "read_result_layers", "movie_layer_data", "tiff_has_timing"]


def _single(path: Any) -> str | None:
    if isinstance(path, (list, tuple)):
        return os.fspath(path[0]) if len(path) == 1 else None
    try:
        return os.fspath(path)
    except TypeError:
        return None


def get_reader(path: Any) -> Callable[[Any], Layers] | None:
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
def read_result_layers(path: str | os.PathLike) -> Layers:
    """Layer data tuples of a result folder (no model is loaded, so torch is not imported):
    :func:`._layer_data.result_layers` with the folder's ``labels.npy`` when it has one."""
    from ..api import load_result

    p = Path(path)
    result = load_result(p, load_model=False)
    name = p.name[: -len(".sbtt")] if p.name.endswith(".sbtt") else p.name
    labels = None
    if (p / LABELS_FILE).is_file():
        from ..core.readers.npy import load_npy

        labels = load_npy(p / LABELS_FILE)
    return result_layers(result, name=name, labels=labels,
                         labels_name=f"{name} ROIs" if labels is not None else None,
                         metadata={"sbtt_result_path": str(p)})


def _read_result(path: Any) -> Layers:
    return read_result_layers(_single(path))


# --------------------------------------------------------------------------- checkpoints
def _read_checkpoint(path: Any) -> Layers:
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
            with contextlib.suppress(Exception):  # the widget is a convenience here
                viewer.window.add_plugin_dock_widget("napari-sbtt", "Train / Load")
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


def movie_layer_data(path: str | os.PathLike) -> Layers:
    """One Image layer tuple for a (T, Y, X) TIFF movie, opened lazily (memory-mapped).

    The metadata holds the source path and format, the frame and line periods the file states
    and, for ScanImage files, the scan pattern; the time axis is in seconds when the frame
    period is known (:func:`._layer_data.timed_movie`). Raises FileNotFoundError or
    ``ReaderError`` (a ValueError) with a message for the user.
    """
    from ..core.readers import open_movie, scan_pattern_from_tiff

    p = os.fspath(path)
    movie, info = open_movie(p)
    metadata: dict[str, Any] = {"source_path": p, "source_format": info.source or "tiff"}
    if len(info.files) > 1:
        metadata["source_files"] = list(info.files)
    pattern = None
    if info.has_line_timing:
        try:
            pattern = scan_pattern_from_tiff(p, detect_unacquired_rows=False)
        except ValueError:
            pattern = None
    return [timed_movie(movie, name=Path(p).stem, frame_period=info.frame_period_s,
                        line_period=info.line_period_s, scan=pattern, metadata=metadata)]


def _read_tiff(path: Any) -> Layers:
    return movie_layer_data(_single(path))


def _rate_meta(rate_hz: float | None) -> dict[str, Any]:
    return {FRAME_PERIOD_KEY: 1.0 / rate_hz} if rate_hz else {}


def _timed_movie(movie: Any, name: str, source: Any, rate_hz: float | None) -> LayerData:
    return timed_movie(movie, name=name, frame_period=1.0 / rate_hz if rate_hz else None,
                       metadata={"source_path": str(source)})


def _read_suite2p(path: Any) -> Layers:
    from ..core.readers import read_suite2p

    data = read_suite2p(_single(path))
    out: Layers = []
    if data.binary is not None:  # the registered movie suite2p kept (data.bin), memory-mapped
        out.append(_timed_movie(data.movie(), "suite2p registered movie", data.plane_dir, data.fs))
    out.append((data.labels, {"name": "suite2p ROIs", "opacity": LABELS_OPACITY,
                              "metadata": {"source_path": str(data.plane_dir), **_rate_meta(data.fs)}},
                "labels"))
    return out


def _read_caiman(path: Any) -> Layers:
    from ..core.readers import read_caiman

    data = read_caiman(_single(path))
    return [(data.labels, {"name": "CaImAn ROIs", "opacity": LABELS_OPACITY,
                           "metadata": {"source_path": str(data.path), **_rate_meta(data.fr)}},
             "labels")]


def _read_nwb(path: Any) -> Layers:
    from ..core.readers import read_nwb

    data = read_nwb(_single(path))
    out: Layers = []
    if data.movie is not None:
        out.append(_timed_movie(data.movie, data.series_name or "NWB movie", data.path, data.rate_hz))
    out.append((data.labels, {"name": data.segmentation_name or "NWB ROIs", "opacity": LABELS_OPACITY},
                "labels"))
    return out


_FORMAT_READERS: dict[str, Callable[[Any], Layers]] = {
    "tiff": _read_tiff,
    "suite2p": _read_suite2p,
    "caiman": _read_caiman,
    "nwb": _read_nwb,
}
