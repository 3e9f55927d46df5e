"""Bring your own data: load any supported recording, run SBTT on it, export the result.

:func:`load_recording` turns a TIFF movie (ScanImage or other), a suite2p plane
folder, a CaImAn results file, an NWB file or a plain traces file into one
:class:`Recording`: either a movie with an ROI labels image, or per-frame ROI
traces with each ROI's row, plus the acquisition timing (a scan pattern or a
frame period). :func:`run_recording` sends it to
:func:`~napari_sbtt.api.run_on_stack` or :func:`~napari_sbtt.api.run_on_traces`;
:func:`export_result` (also :meth:`SBTTResult.export <napari_sbtt.api.SBTTResult.export>`)
writes the result as NPZ, HDF5, CSV, an activity-movie TIFF or NWB.

API layer: imports the core only (no napari; torch only once a model is fitted).

Timing rules (the first that applies wins)
------------------------------------------
1. ``scan=`` (a :class:`~napari_sbtt.core.scan.ScanPattern`, its dict, or a
   ``scan.json`` path) - the exact partial-field pattern;
2. ``line_period=`` (seconds per line, optional ``frame_period=``) - for a movie,
   the acquired rows of each frame are found from the movie (rows that are all
   NaN or all 0 were not acquired); for traces, a full raster;
3. ``frame_period=`` - a full raster, each ROI timed by its row;
4. what the file says: ScanImage line timing (a full scan pattern, unacquired
   rows found from the movie), else a frame rate (ScanImage, ImageJ
   ``finterval``, suite2p ``fs``, CaImAn ``fr``, NWB ``rate``).

Otherwise :func:`load_recording` raises an error naming the option to give.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from .core.errors import MissingOptionError, MissingTimingError, OptionError
from .core.limits import (
    MAX_FRAME_PERIOD_S,
    MAX_LINE_PERIOD_S,
    MIN_FRAME_PERIOD_S,
    MIN_LINE_PERIOD_S,
    check_seconds,
)
from .core.readers import ReaderError, detect_format, guess_format
from .core.readers.rois import looks_like_rows, read_labels, read_roi_rows
from .core.scan import ScanPattern, infer_row_mask

if TYPE_CHECKING:  # pragma: no cover
    from .config import RunConfig
    from .core.progress import RunControl
    from .model import SBTTModel
    from .result import SBTTResult

__all__ = [
    "Recording",
    "load_recording",
    "recording_from_arrays",
    "run_recording",
    "recording_observations",
    "read_labels",
    "read_roi_rows",
    "RECORDING_FORMATS",
]

RECORDING_FORMATS = ("tiff", "suite2p", "caiman", "nwb", "traces")
_PREFER = ("movie", "traces")


# --------------------------------------------------------------------------- the recording
@dataclass
class Recording:
    """One recording, ready for :func:`run_recording`.

    Attributes
    ----------
    movie
        (T, Y, X) array-like (memory map, lazy TIFF/NWB view) or None for
        traces-only recordings.
    labels
        int (Y, X) ROI labels image (0 = background, k = ROI id k) or None.
    traces
        float (T, N) per-frame ROI values, NaN where not acquired, or None
        when the movie is used.
    neuropil_traces
        float (T, N) neuropil traces (suite2p ``Fneu``) or None; used only
        with ``config.neuropil`` (a coefficient such as 0.7).
    roi_ids
        int (N,) ROI ids: the labels present (movie mode) or the id of each
        traces column.
    roi_rows
        (N,) each ROI's row: a float centroid row, or per ROI a list of rows;
        None in movie mode (the labels give the rows).
    roi_cols
        float (N,) centroid column of each ROI, or None (kept for display and
        provenance; :func:`run_on_traces` times a sample by its row).
    scan
        The scan pattern, or None for a full raster with ``frame_period``.
    frame_period
        Seconds per frame (used when ``scan`` is None), or None.
    source_format
        One of ``"tiff"``, ``"suite2p"``, ``"caiman"``, ``"nwb"``, ``"traces"``, or ``"arrays"``
        (:func:`recording_from_arrays`).
    path
        The file or folder read.
    n_rows, n_cols
        Y and X of the field of view when known (a full raster of traces needs Y).
    provenance
        JSON-ready record of what was read and how (stored in the result's
        config as ``"recording"``; :func:`export_result` uses it to find the ROI
        masks again).
    """

    movie: Any | None = None
    labels: np.ndarray | None = None
    traces: np.ndarray | None = None
    neuropil_traces: np.ndarray | None = None
    roi_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    roi_rows: Any = None
    roi_cols: np.ndarray | None = None
    scan: ScanPattern | None = None
    frame_period: float | None = None
    source_format: str = ""
    path: Path | None = None
    n_rows: int | None = None
    n_cols: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)

    @property
    def mode(self) -> str:
        """``"movie"`` (movie + labels go to run_on_stack) or ``"traces"`` (to run_on_traces)."""
        return "movie" if self.movie is not None and self.labels is not None else "traces"

    @property
    def n_frames(self) -> int:
        """T, frames (sweeps) in the recording."""
        if self.movie is not None:
            return int(self.movie.shape[0])
        return 0 if self.traces is None else int(self.traces.shape[0])

    @property
    def n_rois(self) -> int:
        """N, ROIs in the recording."""
        return int(np.asarray(self.roi_ids).size)

    def validate(self) -> "Recording":
        """Check that the parts fit together; returns self. Raises ValueError naming the part."""
        where = f"{self.path}: " if self.path is not None else ""
        if self.mode == "movie":
            shape = tuple(int(s) for s in self.movie.shape)  # type: ignore[union-attr]
            if len(shape) != 3:
                raise ValueError(f"{where}the movie must be (T, Y, X), got shape {shape}")
            lab = np.asarray(self.labels)
            if lab.shape != shape[1:]:
                raise ValueError(
                    f"{where}the ROI labels are {lab.shape} but the movie's frames are {shape[1:]}; the "
                    "labels must be drawn on this movie's field of view (same Y, X)")
            if self.scan is not None:
                self.scan.check_movie(shape, what=f"{where}movie")
        else:
            if self.traces is None:
                raise ValueError(f"{where}the recording has neither a movie with ROI labels nor traces")
            tr = np.asarray(self.traces)
            if tr.ndim != 2:
                raise ValueError(f"{where}traces must be (T, N), got shape {tr.shape}")
            n = tr.shape[1]
            if self.n_rois != n:
                raise ValueError(f"{where}{n} traces columns but {self.n_rois} roi_ids")
            if self.roi_rows is None or len(self.roi_rows) != n:
                got = None if self.roi_rows is None else len(self.roi_rows)
                raise ValueError(f"{where}{n} traces columns but roi_rows has {got} entries; give each ROI's row")
            if self.neuropil_traces is not None and np.shape(self.neuropil_traces) != tr.shape:
                raise ValueError(f"{where}neuropil traces {np.shape(self.neuropil_traces)} differ from "
                                 f"the traces {tr.shape}")
            if self.scan is not None:
                self.scan.check_movie((tr.shape[0], self.scan.n_rows), what=f"{where}traces")
            elif self.n_rows is None:
                raise ValueError(f"{where}a full raster of traces needs the image height: set n_rows")
        if self.scan is None and self.frame_period is None:
            raise ValueError(f"{where}no timing: give a scan pattern or frame_period")
        return self

    def close(self) -> None:
        """Release open files (lazy TIFF pages, an NWB file); the movie can no longer be read."""
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------- small readers
def _centroids(labels: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean row and column of each id's pixels; NaN for ids without pixels."""
    from .core.labels import label_index

    ids = np.asarray(ids, dtype=np.int64)
    uniq, inv = np.unique(ids, return_inverse=True)
    idx = label_index(np.asarray(labels), uniq)  # memory follows the image, not the largest id
    ys, xs = np.nonzero(idx)
    v = idx[ys, xs] - 1
    cnt = np.bincount(v, minlength=uniq.size).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.bincount(v, weights=ys, minlength=uniq.size) / cnt
        cx = np.bincount(v, weights=xs, minlength=uniq.size) / cnt
    return cy[inv.ravel()], cx[inv.ravel()]


def _as_scan(scan: Any) -> tuple[ScanPattern, str]:
    if isinstance(scan, ScanPattern):
        return scan, "scan pattern"
    if isinstance(scan, Mapping):
        return ScanPattern.from_dict(dict(scan)), "scan dict"
    if isinstance(scan, (str, os.PathLike)):
        return ScanPattern.from_json(Path(scan)), str(scan)
    raise TypeError(f"scan must be a ScanPattern, its dict or a scan.json path, got {type(scan).__name__}")


def _positive(name: str, v: float | None) -> float | None:
    """A frame or line period (seconds) within the physical bounds of :mod:`napari_sbtt.core.limits`."""
    if v is None:
        return None
    lo, hi = ((MIN_FRAME_PERIOD_S, MAX_FRAME_PERIOD_S) if name == "frame_period"
              else (MIN_LINE_PERIOD_S, MAX_LINE_PERIOD_S))
    if isinstance(v, np.generic):
        v = v.item()
    return check_seconds(v, lo, hi, f"{name}_name", spelling=name)


# --------------------------------------------------------------------------- timing
_TIMING_WORDS = {"frame_period": "frame_period=<seconds per frame>", "scan": "scan=<scan.json>",
                 "line_period": "line_period=<seconds per line>"}


def _timing_error(p: Path, what: str, file_field: str | None) -> MissingTimingError:
    hint = ""
    for sib in (p.with_suffix(".scan.json"), p.parent / "scan.json"):
        if sib.is_file():
            hint = f" ({sib} lies beside it: pass it as {{scan}} if it belongs to this recording)"
            break
    field_txt = f" ({file_field} is missing)" if file_field else ""
    return MissingTimingError(
        f"{p}: {what} does not say when frames were acquired{field_txt}. Pass {{frame_period}} for a "
        "full-raster recording, or {scan} for a partial-field scan, or {line_period} to find the "
        f"acquired rows from the movie{hint}", **_TIMING_WORDS)


def _check_full_raster(p: Path, movie: Any, src: str) -> None:
    """Refuse a full-raster timing for a movie whose first frames have unacquired rows (a partial scan).

    A row is unacquired when it is all NaN or all exactly 0 (:func:`~napari_sbtt.core.scan.infer_row_mask`),
    as the README says; taking it as data would feed the fit fake samples.
    """
    head = np.asarray(movie[: min(int(movie.shape[0]), 8)])
    empty = ~infer_row_mask(head)
    if empty.any():
        k, y = (int(v[0]) for v in np.nonzero(empty))
        how = "NaN" if np.issubdtype(head.dtype, np.floating) and np.isnan(head[k, y]).all() else "0"
        raise OptionError(
            f"{p}: row {y} of frame {k} is all {how}, so this is a partial-field scan (unacquired rows are "
            f"NaN or 0), but the timing ({src}) describes a full raster. Pass {{line_period}} to find the "
            "acquired rows of each frame, or {scan}", line_period=_TIMING_WORDS["line_period"],
            scan=_TIMING_WORDS["scan"])


def _movie_timing(
    p: Path, movie: Any, scan: Any, frame_period: float | None, line_period: float | None,
    file_scan: Callable[[], ScanPattern | None] | None, file_fp: float | None, what: str,
    file_field: str | None,
) -> tuple[ScanPattern | None, float | None, str]:
    """(scan, frame_period, source of the timing) for a movie."""
    if scan is not None:
        if frame_period is not None or line_period is not None:
            raise OptionError("give either {scan} or {frame_period} / {line_period}, not both; the scan "
                              "pattern already fixes the timing", scan="scan=", frame_period="frame_period=",
                              line_period="line_period=")
        sp, src = _as_scan(scan)
        sp.check_movie(tuple(int(s) for s in movie.shape), what=f"{p}")
        return sp, None, src
    if line_period is not None:
        sp = ScanPattern.from_movie(movie, line_period, frame_period=frame_period)
        return sp, None, "line_period" + (" + frame_period" if frame_period is not None else "")
    if frame_period is not None:
        _check_full_raster(p, movie, "frame_period")
        return None, frame_period, "frame_period"
    if file_scan is not None:
        sp = file_scan()
        if sp is not None:
            return sp, None, "scanimage"
    if file_fp is not None:
        _check_full_raster(p, movie, file_field or "the file's frame rate")
        return None, file_fp, file_field or "file"
    raise _timing_error(p, what, file_field)


def _traces_timing(
    p: Path, n_t: int, n_rows: int | None, scan: Any, frame_period: float | None,
    line_period: float | None, file_fp: float | None, what: str, file_field: str | None,
) -> tuple[ScanPattern | None, float | None, int | None, str]:
    """(scan, frame_period, n_rows, source of the timing) for traces of ``n_t`` frames."""
    if scan is not None:
        if frame_period is not None or line_period is not None:
            raise OptionError("give either {scan} or {frame_period} / {line_period}, not both; the scan "
                              "pattern already fixes the timing", scan="scan=", frame_period="frame_period=",
                              line_period="line_period=")
        sp, src = _as_scan(scan)
        if sp.n_sweeps != n_t:
            raise ValueError(
                f"{p}: the traces have {n_t} frames but the scan pattern ({src}) has {sp.n_sweeps} sweeps; "
                "the traces and the scan pattern must come from the same recording")
        if n_rows is not None and sp.n_rows != n_rows:
            raise ValueError(
                f"{p}: the field of view has {n_rows} rows but the scan pattern ({src}) has {sp.n_rows}; "
                "use the scan pattern of this recording")
        return sp, None, sp.n_rows, src
    if line_period is not None:
        if n_rows is None:
            raise MissingOptionError(f"{p}: a full raster with a line period needs the image height: pass {{n_rows}} "
                              "or {scan}", n_rows="n_rows=<lines per frame>", scan=_TIMING_WORDS["scan"])
        sp = ScanPattern.full_raster(n_rows, n_t, line_period, frame_period=frame_period)
        return sp, None, n_rows, "line_period"
    fp = frame_period if frame_period is not None else file_fp
    if fp is None:
        raise _timing_error(p, what, file_field)
    if n_rows is None:
        raise MissingOptionError(
            f"{p}: the ROI rows do not give the image height, which times each row within the frame; "
            "pass {n_rows}, or {scan}", n_rows="n_rows=<lines per frame>", scan=_TIMING_WORDS["scan"])
    return None, fp, n_rows, "frame_period" if frame_period is not None else (file_field or "file")


# --------------------------------------------------------------------------- per format
def _load_tiff(p: Path, rois: Any, scan: Any, fp: float | None, lp: float | None,
               rec: Recording) -> None:
    from .core.readers import TiffPageStack, open_movie, scan_pattern_from_tiff

    if rois is None:
        raise MissingOptionError(
            f"{p}: a TIFF movie carries no ROIs; pass {{rois}} a labels image (.tif/.npy, 0 = background, "
            "1..N = ROI ids)", rois="rois=")
    labels = read_labels(rois)
    movie, info = open_movie(p)
    if isinstance(movie, TiffPageStack):
        rec._closers.append(movie.close)
    if labels.shape != tuple(movie.shape[1:]):
        rec.close()
        raise ValueError(
            f"{rois if isinstance(rois, (str, os.PathLike)) else 'rois'}: the labels are {labels.shape} but "
            f"the frames of {p} are {tuple(movie.shape[1:])}; draw the ROIs on this movie's field of view")
    has_si = info.source == "scanimage" and info.line_period_s is not None
    what = "the TIFF (no ScanImage line timing, no ImageJ frame interval)" if not has_si else "the TIFF"
    try:
        sp, fper, src = _movie_timing(
            p, movie, scan, fp, lp, (lambda: scan_pattern_from_tiff(p)) if has_si else None,
            info.frame_period_s, what, f"{info.source} frame rate" if info.frame_period_s else None)
    except BaseException:
        rec.close()
        raise
    rec.movie, rec.labels, rec.scan, rec.frame_period = movie, labels, sp, fper
    rec.roi_ids = np.unique(labels[labels > 0]).astype(np.int64)
    rec.n_rows, rec.n_cols = int(movie.shape[1]), int(movie.shape[2])
    rec.provenance.update(timing=src, tiff_source=info.source)
    if len(info.files) > 1:  # a recording ScanImage split across files
        rec.provenance["tiff_files"] = [str(Path(f).resolve()) for f in info.files]


def _load_suite2p(p: Path, rois: Any, scan: Any, fp: float | None, lp: float | None, prefer: str,
                  rec: Recording) -> None:
    from .core.readers import read_suite2p

    d = read_suite2p(p)
    rec.path = d.plane_dir
    ops = "ops.npy" if d.layout == "ops" else "settings.npy"
    file_fp = 1.0 / d.fs if d.fs else None
    field_name = f"{ops} field 'fs'"
    rec.n_rows, rec.n_cols = d.shape
    rec.provenance.update(plane_dir=str(d.plane_dir.resolve()), layout=d.layout, overlap=d.overlap, only_cells=True)
    if prefer == "movie" and d.binary is not None:
        movie = d.movie()
        labels = d.labels if rois is None else read_labels(rois)
        if labels.shape != d.shape:
            raise ValueError(f"rois: the labels are {labels.shape} but suite2p's frames are {d.shape}")
        sp, fper, src = _movie_timing(p, movie, scan, fp, lp, None, file_fp, "suite2p's options", field_name)
        rec.movie, rec.labels, rec.scan, rec.frame_period = movie, labels, sp, fper
        rec.roi_ids = np.unique(labels[labels > 0]).astype(np.int64)
        rec.provenance.update(timing=src, movie=str(d.binary), labels_from="rois" if rois is not None else "stat.npy")
        return
    if rois is not None:
        raise OptionError(
            f"{p}: suite2p's traces belong to its own ROIs (stat.npy); leave out {{rois}}, or use "
            "{prefer_movie} with a kept data.bin to extract your own ROIs from the registered movie",
            rois="rois=", prefer_movie="prefer='movie'")
    rows = d.med_rows.astype(float)
    cols = d.med[:, 1].astype(float)
    ids = np.arange(1, d.n_rois + 1, dtype=np.int64)
    bad = ~np.isfinite(rows) | ~np.isfinite(cols)
    if bad.any():  # no 'med' field: centroid of the painted pixels
        cy, cx = _centroids(d.labels, ids)
        rows[bad], cols[bad] = cy[bad], cx[bad]
    sp, fper, n_rows, src = _traces_timing(p, d.n_frames, d.shape[0], scan, fp, lp, file_fp,
                                          "suite2p's options", field_name)
    rec.traces, rec.neuropil_traces = d.F, d.Fneu
    rec.labels, rec.roi_ids, rec.roi_rows, rec.roi_cols = d.labels, ids, rows, cols
    rec.scan, rec.frame_period, rec.n_rows = sp, fper, n_rows
    rec.provenance.update(timing=src, traces="F.npy", labels_from="stat.npy")


def _load_caiman(p: Path, rois: Any, scan: Any, fp: float | None, lp: float | None,
                 rec: Recording) -> None:
    from .core.readers import read_caiman

    if rois is not None:
        raise OptionError(f"{p}: CaImAn's traces belong to its own components (estimates/A); leave out {{rois}}",
                          rois="rois=")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = read_caiman(p)
    for w in caught:
        warnings.warn(str(w.message), w.category, stacklevel=3)
    ids = np.arange(1, d.n_rois + 1, dtype=np.int64)
    cy, cx = _centroids(d.labels, ids)
    keep = np.isfinite(cy)
    if not keep.any():
        raise ValueError(f"{p}: no component keeps any pixel in 'estimates/A'; lower the threshold in read_caiman")
    if not keep.all():
        warnings.warn(f"{p}: components {d.component_index[~keep].tolist()} have no pixels in the labels "
                      "image; their traces are left out", stacklevel=3)
    file_fp = 1.0 / d.fr if d.fr else None
    sp, fper, n_rows, src = _traces_timing(p, d.C.shape[0], d.dims[0], scan, fp, lp, file_fp,
                                          "the CaImAn file", "'params/data/fr'")
    rec.traces = np.ascontiguousarray(d.C[:, keep])
    rec.labels, rec.roi_ids, rec.roi_rows, rec.roi_cols = d.labels, ids[keep], cy[keep], cx[keep]
    rec.scan, rec.frame_period, rec.n_rows, rec.n_cols = sp, fper, n_rows, d.dims[1]
    rec.provenance.update(timing=src, traces="estimates/C", labels_from="estimates/A",
                          threshold=d.threshold, only_accepted=True)


def _load_nwb(p: Path, rois: Any, scan: Any, fp: float | None, lp: float | None, prefer: str,
              rec: Recording) -> None:
    from .core.readers import read_nwb

    d = read_nwb(p)
    rec._closers.append(d.close)
    try:
        file_fp = 1.0 / d.rate_hz if d.rate_hz else None
        seg = {"path": str(p.resolve()), "name": d.segmentation_name}
        rec.n_rows, rec.n_cols = (int(s) for s in d.labels.shape)
        if (prefer == "movie" and d.movie is not None) or d.traces is None:
            if d.movie is None:
                raise ReaderError(
                    f"{p}: neither a TwoPhotonSeries movie nor a RoiResponseSeries linked to PlaneSegmentation "
                    f"'{d.segmentation_name}'; add the movie or the ROI traces to the file")
            labels = d.labels if rois is None else read_labels(rois)
            if labels.shape != tuple(d.movie.shape[1:]):
                raise ValueError(f"rois: the labels are {labels.shape} but the NWB frames are {d.movie.shape[1:]}")
            sp, fper, src = _movie_timing(p, d.movie, scan, fp, lp, None, file_fp,
                                          f"TwoPhotonSeries '{d.series_name}'", "its 'rate' / 'imaging_rate'")
            rec.movie, rec.labels, rec.scan, rec.frame_period = d.movie, labels, sp, fper
            rec.roi_ids = np.unique(labels[labels > 0]).astype(np.int64)
            rec.provenance.update(timing=src, series=d.series_name)
            if rois is None:
                rec.provenance["segmentation"] = seg
            return
        if rois is not None:
            raise OptionError(f"{p}: the NWB traces belong to PlaneSegmentation '{d.segmentation_name}'; leave "
                              "out {rois}", rois="rois=")
        tr = d.traces
        covered = np.isfinite(tr).any(axis=0)
        ids = np.arange(1, d.n_rois + 1, dtype=np.int64)
        cy, cx = _centroids(d.labels, ids)
        keep = covered & np.isfinite(cy)
        if not keep.any():
            raise ValueError(f"{p}: RoiResponseSeries '{d.traces_name}' covers no ROI with pixels")
        tr_fp = 1.0 / d.traces_rate_hz if d.traces_rate_hz else file_fp
        sp, fper, n_rows, src = _traces_timing(p, tr.shape[0], rec.n_rows, scan, fp, lp, tr_fp,
                                              f"RoiResponseSeries '{d.traces_name}'", "its 'rate'")
        rec.traces = np.ascontiguousarray(tr[:, keep])
        rec.labels, rec.roi_ids, rec.roi_rows, rec.roi_cols = d.labels, ids[keep], cy[keep], cx[keep]
        rec.scan, rec.frame_period, rec.n_rows = sp, fper, n_rows
        rec.provenance.update(timing=src, traces=d.traces_name, segmentation=seg)
        rec.close()  # traces are in memory; release the file
    except BaseException:
        rec.close()
        raise


def _load_traces(p: Path, rois: Any, scan: Any, fp: float | None, lp: float | None, n_rows: int | None,
                 rec: Recording, dataset: str | None = None) -> None:
    from .core.readers import read_traces

    if rois is None:
        raise MissingOptionError(
            f"{p}: a traces file does not say where each ROI is; pass {{rois}} a labels image (.tif/.npy) "
            "or a rows file (.csv/.npy, one line per ROI: its row, or row and column)", rois="rois=")
    n_frames = None
    if scan is not None:
        n_frames = _as_scan(scan)[0].n_sweeps
    traces = read_traces(p, n_frames=n_frames, dataset=dataset)
    n = traces.shape[1]
    if looks_like_rows(rois):
        rows, cols = read_roi_rows(rois)
        if rows.size != n:
            raise ValueError(f"{rois if isinstance(rois, (str, os.PathLike)) else 'rois'}: {rows.size} ROI rows "
                             f"but {p} has {n} traces (columns after orientation); give one line per ROI")
        ids = np.arange(1, n + 1, dtype=np.int64)
        labels = None
        rec.provenance["rows_from"] = str(rois) if isinstance(rois, (str, os.PathLike)) else "array"
    else:
        labels = read_labels(rois)
        ids = np.unique(labels[labels > 0]).astype(np.int64)
        if ids.size != n:
            raise ValueError(
                f"{rois if isinstance(rois, (str, os.PathLike)) else 'rois'}: the labels image has {ids.size} ROIs "
                f"but {p} has {n} traces; column k of the traces must be the k-th smallest ROI id")
        rows, cols = _centroids(labels, ids)
        if n_rows is not None and n_rows != labels.shape[0]:
            raise ValueError(f"n_rows={n_rows} but the labels image has {labels.shape[0]} rows")
        n_rows = labels.shape[0]
        rec.n_cols = labels.shape[1]
    sp, fper, n_rows, src = _traces_timing(p, traces.shape[0], n_rows, scan, fp, lp, None,
                                          "a traces file", None)
    if rows.max() >= (sp.n_rows if sp is not None else n_rows) or rows.min() < 0:
        raise ValueError(f"ROI rows {rows.min():g}..{rows.max():g} lie outside the image's "
                         f"{sp.n_rows if sp is not None else n_rows} rows")
    rec.traces, rec.labels, rec.roi_ids, rec.roi_rows, rec.roi_cols = traces, labels, ids, rows, cols
    rec.scan, rec.frame_period, rec.n_rows = sp, fper, n_rows
    rec.provenance.update(timing=src)


def load_recording(
    path: str | os.PathLike,
    *,
    rois: Any = None,
    scan: ScanPattern | Mapping[str, Any] | str | os.PathLike | None = None,
    frame_period: float | None = None,
    line_period: float | None = None,
    prefer: str = "movie",
    n_rows: int | None = None,
    format: str | None = None,
    dataset: str | None = None,
) -> Recording:
    """Read a recording in any supported format into a :class:`Recording`.

    Parameters
    ----------
    path
        A TIFF movie (ScanImage or other), a suite2p plane folder (or a folder
        holding one plane), a CaImAn ``.hdf5`` results file, an ``.nwb`` file, or
        a traces file (``.npy``/``.npz``/``.csv``/``.tsv``/``.txt``/``.h5``).
    rois
        ROI positions for formats without their own: a (Y, X) labels image
        (array, ``.tif``/``.npy``; 0 = background) for TIFF movies and traces
        files, or for traces files a rows file / array with one line per ROI
        holding its row (or row and column, pixels from the top-left). For
        suite2p and NWB movies it replaces the file's own ROIs.
    scan
        The scan pattern (ScanPattern, its dict, or a ``scan.json`` path).
    frame_period
        Seconds per frame, for a full raster (or with ``line_period``).
    line_period
        Seconds per scanned line; with a movie, the acquired rows of each frame
        are found from the movie (all-NaN or all-zero rows were not acquired).
    prefer
        ``"movie"`` (default): use the movie and the ROI masks when the file has
        both (suite2p ``data.bin``, NWB TwoPhotonSeries); ``"traces"``: use the
        file's ROI traces (suite2p ``F.npy``/``Fneu.npy``, NWB RoiResponseSeries).
        CaImAn results and traces files always give traces.
    n_rows
        Lines per frame (Y), needed only for a traces file with a rows file and no scan pattern.
    format
        Force the format (one of ``RECORDING_FORMATS``) instead of detecting it.
    dataset
        For a traces ``.npz`` / HDF5 file holding several arrays: the name of the traces.

    Returns
    -------
    Recording
        Close it (``rec.close()`` or ``with load_recording(...) as rec:``) to
        release lazily read files.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError (ReaderError)
        An unrecognised or malformed file, a missing timing or ROI option, or
        parts that do not fit together; the message names the file, the field
        and the option to give.
    """
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"recording not found: {p}")
    if prefer not in _PREFER:
        raise ValueError(f"prefer must be one of {_PREFER}, got {prefer!r}")
    fp = _positive("frame_period", frame_period)
    lp = _positive("line_period", line_period)
    # a file detection declines goes to the reader its name suggests, whose message is precise
    fmt = format if format is not None else (detect_format(p) or guess_format(p))
    if fmt is None:
        kind = "folder" if p.is_dir() else "file"
        raise ReaderError(
            f"{p}: not a recording napari-sbtt reads. Give a TIFF movie, a suite2p plane folder (with "
            "stat.npy), a CaImAn .hdf5 results file, an NWB file, or a traces file "
            f"(.npy/.csv/.h5); this {kind} is none of them")
    if fmt not in RECORDING_FORMATS:
        raise ValueError(f"format must be one of {RECORDING_FORMATS}, got {fmt!r}")
    if dataset is not None and fmt != "traces":
        raise OptionError(f"{p}: {{dataset}} names an array of a traces file, but this is a {fmt} recording",
                          dataset="dataset=")
    rec = Recording(source_format=fmt, path=p)
    rec.provenance = {"format": fmt, "path": str(p.resolve()), "prefer": prefer,
                      "rois": str(Path(rois).expanduser().resolve()) if isinstance(rois, (str, os.PathLike))
                      else (None if rois is None else "array")}
    if fmt == "tiff":
        _load_tiff(p, rois, scan, fp, lp, rec)
    elif fmt == "suite2p":
        _load_suite2p(p, rois, scan, fp, lp, prefer, rec)
    elif fmt == "caiman":
        _load_caiman(p, rois, scan, fp, lp, rec)
    elif fmt == "nwb":
        _load_nwb(p, rois, scan, fp, lp, prefer, rec)
    else:
        _load_traces(p, rois, scan, fp, lp, n_rows, rec, dataset)
    rec.provenance["mode"] = rec.mode
    rec.provenance["image_shape"] = (None if rec.n_rows is None or rec.n_cols is None
                                     else [int(rec.n_rows), int(rec.n_cols)])
    try:
        return rec.validate()
    except BaseException:
        rec.close()
        raise


def recording_from_arrays(
    movie: Any,
    labels: Any,
    *,
    scan: ScanPattern | Mapping[str, Any] | str | os.PathLike | None = None,
    frame_period: float | None = None,
    line_period: float | None = None,
    name: str = "movie",
    provenance: Mapping[str, Any] | None = None,
) -> Recording:
    """A :class:`Recording` of a (T, Y, X) movie and its (Y, X) ROI labels already in memory
    (napari layers, arrays in a script), timed by the timing rules above (1-3: ``scan``, then
    ``line_period`` with the acquired rows found from the movie, then ``frame_period``).

    ``name`` names the movie in messages; ``provenance`` is added to the recording's record.
    Raises an :class:`~napari_sbtt.core.errors.OptionError` naming the option to give when the
    timing is missing or does not fit the movie.
    """
    p = Path(name)
    lab = read_labels(labels, what=f"{name} ROIs")
    fp = _positive("frame_period", frame_period)
    lp = _positive("line_period", line_period)
    sp, fper, src = _movie_timing(p, movie, scan, fp, lp, None, None, f"the movie {name!r}", None)
    rec = Recording(movie=movie, labels=lab, scan=sp, frame_period=fper, source_format="arrays",
                    roi_ids=np.unique(lab[lab > 0]).astype(np.int64), n_rows=int(movie.shape[1]),
                    n_cols=int(movie.shape[2]))
    rec.provenance = {"format": "arrays", "name": name, "mode": "movie", "timing": src, **dict(provenance or {})}
    return rec.validate()


# --------------------------------------------------------------------------- run
def recording_observations(
    rec: Recording,
    *,
    config: "RunConfig | dict[str, Any] | None" = None,
    progress: Callable[[Any], Any] | None = None,
    control: "RunControl | None" = None,
) -> tuple[Any, ScanPattern | None, float | None]:
    """The first half of :func:`run_recording`: the recording's samples on the fine grid.

    Returns ``(observations, scan, frame_period)``: :class:`~napari_sbtt.core.traces.Observations`
    and the timing to record with the result (``frame_period`` is None when ``scan`` is given).
    """
    from .api import observations_for_stack, observations_for_traces
    from .config import RunConfig
    from .core.progress import RunControl

    rec.validate()
    cfg = RunConfig.coerce(config)
    control = RunControl.of(progress, control)
    fp = rec.frame_period if rec.scan is None else None
    if rec.mode == "movie":
        obs = observations_for_stack(rec.movie, rec.labels, rec.scan, config=cfg, control=control,
                                     frame_period=fp)
        return obs, rec.scan, fp
    neu = rec.neuropil_traces if cfg.neuropil is not None else None
    if cfg.neuropil is not None and neu is None:
        raise ValueError(
            f"{rec.path}: config neuropil={cfg.neuropil} needs neuropil traces, which this "
            f"{rec.source_format} recording does not have; set neuropil=None")
    obs = observations_for_traces(
        rec.traces, rec.roi_rows, rec.scan, config=cfg, control=control, frame_period=fp,
        n_rows=rec.n_rows if rec.scan is None else None, neuropil_traces=neu, roi_ids=rec.roi_ids)
    return obs, rec.scan, fp


def run_recording(
    rec: Recording,
    *,
    model: "SBTTModel | str | os.PathLike | None" = None,
    config: "RunConfig | dict[str, Any] | None" = None,
    progress: Callable[[Any], Any] | None = None,
    isolate: bool = False,
    control: "RunControl | None" = None,
    nice: int = 0,
) -> "SBTTResult":
    """Run SBTT on a :class:`Recording`: movie + labels as run_on_stack, traces + rows as run_on_traces.

    Parameters
    ----------
    rec
        From :func:`load_recording` (or built by hand).
    model, config, progress, isolate, control, nice
        As in :func:`napari_sbtt.api.run_on_stack` (``nice``: with ``isolate``, lower the child
        process's CPU priority by this much). With ``config.neuropil`` set
        (a coefficient such as 0.7), traces recordings use their neuropil traces
        (suite2p ``Fneu``); movies use an annulus around each ROI.

    Returns
    -------
    SBTTResult
        ``result.config["recording"]`` records the source (format, path,
        timing source, where the ROIs came from), so
        :func:`napari_sbtt.export.export_result` can find the ROI masks again.
    """
    import time

    from .api import run_on_observations
    from .config import RunConfig
    from .core.progress import RunControl

    cfg = RunConfig.coerce(config)
    control = RunControl.of(progress, control)
    t0 = time.perf_counter()
    obs, scan, fp = recording_observations(rec, config=cfg, control=control)
    result = run_on_observations(obs, model=model, config=cfg, scan=scan, frame_period=fp,
                                 isolate=isolate, seconds_extract=time.perf_counter() - t0,
                                 control=control, nice=nice)
    result.config["recording"] = dict(rec.provenance)
    return result
