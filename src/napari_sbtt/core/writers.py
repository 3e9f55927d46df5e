"""Write results in the formats other tools read: NPZ, HDF5, CSV, an activity-movie TIFF and NWB.

Core layer: every writer takes plain arrays and JSON-ready dicts (the API's
:meth:`napari_sbtt.api.SBTTResult.export` assembles them), so nothing here
imports the API. numpy and tifffile only at import; h5py and pynwb are imported
when an HDF5 or NWB file is written and their absence raises an ImportError
naming the pip extra (``napari-sbtt[hdf5]``, ``napari-sbtt[nwb]``).

Every file is written to a temporary name beside the destination and renamed
into place when complete (:mod:`napari_sbtt.core.atomic`); an existing file is
replaced only with ``overwrite=True``. NaN is the one missing-data marker: it is
stored as NaN in NPZ, HDF5, TIFF and NWB, and as an empty cell in CSV.

Shapes: ``rates``, ``observations`` and ``signal`` are (T_fine, N) per-ROI
values on the fine grid; ``times`` (T_fine,) bin centres in seconds;
``roi_ids`` (N,) the ROI label of each column.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .atomic import atomic_path

__all__ = [
    "EXPORT_FORMATS",
    "format_from_path",
    "write_npz",
    "write_hdf5",
    "write_traces_csv",
    "write_activity_tiff",
    "write_nwb",
    "NWB_SUBJECT_FIELDS",
]

#: file suffix -> export format name
EXPORT_FORMATS: dict[str, str] = {
    ".npz": "npz",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".csv": "csv",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".nwb": "nwb",
}

_TIFF_CHUNK_BYTES = 32 * 1024 * 1024  # activity-movie bytes painted at a time
_BIGTIFF_BYTES = 2**32 - 2**25  # beyond this a classic TIFF (and ImageJ) cannot hold the frames


def format_from_path(path: str | os.PathLike, format: str | None = None) -> str:
    """The export format for ``path``: ``format`` when given, else from the suffix.

    Returns one of ``"npz"``, ``"hdf5"``, ``"csv"``, ``"tiff"``, ``"nwb"``.

    Raises
    ------
    ValueError
        Unknown ``format`` or suffix (the message lists the suffixes understood).
    """
    names = sorted(set(EXPORT_FORMATS.values()))
    if format is not None:
        f = str(format).lower().lstrip(".")
        f = {"h5": "hdf5", "tif": "tiff"}.get(f, f)
        if f not in names:
            raise ValueError(f"unknown export format {format!r}; use one of {names}")
        return f
    suffix = Path(path).suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise ValueError(
            f"{path}: cannot tell the export format from the suffix {suffix or '(none)'!r}; end the "
            f"name with one of {', '.join(EXPORT_FORMATS)} or pass format= one of {names}"
        )
    return EXPORT_FORMATS[suffix]


def _require(module: str, extra: str, path: Any) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{module} is needed to write {path}; install it with `pip install napari-sbtt[{extra}]`"
        ) from None


def _check_2d(name: str, a: np.ndarray, n_t: int, n: int) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != (n_t, n):
        raise ValueError(f"{name} must have shape (T_fine, N) = {(n_t, n)}, got {a.shape}")
    return a


def _json(obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"cannot store {type(o).__name__} as JSON")

    return json.dumps(obj, default=default)


# --------------------------------------------------------------------------- NPZ
def write_npz(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """One self-contained ``.npz``: the result's arrays plus its metadata as JSON text.

    Parameters
    ----------
    arrays
        Name -> array, as in a result folder's ``arrays.npz`` (``rates``,
        ``times``, ``observations``, ``roi_ids``, optionally ``signal``).
    meta
        What a result folder's ``result.json`` holds; stored as the 0-d string
        array ``result_json`` (read it with ``json.loads(str(z["result_json"]))``).

    The file is compressed and holds no pickled objects (``np.load(...,
    allow_pickle=False)`` reads it).
    """
    if "result_json" in arrays:
        raise ValueError("'result_json' is reserved for the metadata; rename that array")
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["result_json"] = np.array(_json(dict(meta)))
    # a file object: numpy appends no suffix
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **payload)
    return Path(path)


# --------------------------------------------------------------------------- HDF5
def write_hdf5(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
    *,
    array_units: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """An HDF5 file with one dataset per array and the metadata as root attributes.

    Layout
    ------
    - datasets ``rates``, ``observations``, ``signal`` (float32 (T_fine, N),
      gzip, NaN = not observed), ``times`` (float64 (T_fine,), seconds, bin
      centres), ``roi_ids`` (int64 (N,)); each has a ``units`` attribute, the
      2-D ones a ``dims = "time, roi"`` attribute;
    - root attributes: ``format``, ``format_version``, ``units`` (of ``rates``),
      ``bin_width_s``, ``t0_s`` and the JSON strings ``config``, ``metrics``,
      ``grid``, ``history`` (from ``meta``).

    ``array_units`` maps array names to a ``units`` attribute; ``rates`` defaults
    to ``meta["units"]`` and ``times`` to seconds.

    Needs h5py (``pip install napari-sbtt[hdf5]``).
    """
    h5py = _require("h5py", "hdf5", path)
    units = str(meta.get("units", ""))
    grid = dict(meta.get("grid") or {})
    units_of = {"rates": units, **dict(array_units or {})}
    with atomic_path(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
        for name, value in arrays.items():
            a = np.asarray(value)
            kw: dict[str, Any] = {}
            if a.ndim == 2 and a.size > 1024:
                kw = {"compression": "gzip", "compression_opts": 4, "shuffle": True,
                      "chunks": (min(a.shape[0], max(1, 2**18 // max(1, a.shape[1]))), a.shape[1])}
            ds = f.create_dataset(name, data=a, **kw)
            if name == "times":
                ds.attrs["units"] = "s"
                ds.attrs["description"] = "fine-grid bin centres"
            elif name == "roi_ids":
                ds.attrs["description"] = "ROI label (labels image value) of each column"
            elif a.ndim == 2:
                ds.attrs["dims"] = "time, roi"
            if name in units_of:
                ds.attrs["units"] = str(units_of[name])
        for key in ("format", "format_version", "package_version", "units", "stopped"):
            if key in meta and meta[key] is not None:
                f.attrs[key] = meta[key]
        if grid:
            f.attrs["bin_width_s"] = float(grid.get("bin_width", math.nan))
            f.attrs["t0_s"] = float(grid.get("t0", math.nan))
        for key in ("config", "metrics", "grid", "history"):
            if key in meta:
                f.attrs[key] = _json(meta[key])
    return Path(path)


# --------------------------------------------------------------------------- CSV
def write_traces_csv(
    path: str | os.PathLike,
    times: np.ndarray,
    traces: np.ndarray,
    roi_ids: Sequence[int] | np.ndarray,
    *,
    overwrite: bool = False,
    fmt: str = "%.7g",
) -> Path:
    """A CSV of traces: a ``time_s`` column (seconds) then one column per ROI (``roi_<id>``).

    Parameters
    ----------
    times
        (T,) seconds.
    traces
        (T, N) values; NaN is written as an empty cell.
    roi_ids
        (N,) ROI ids, used in the header.

    ``numpy.genfromtxt(path, delimiter=",", names=True)`` reads it back (empty
    cells become NaN), as do pandas and spreadsheets.
    """
    times = np.asarray(times, dtype=np.float64).ravel()
    ids = np.asarray(roi_ids).ravel()
    traces = _check_2d("traces", traces, times.size, ids.size)
    header = ",".join(["time_s", *(f"roi_{int(i)}" for i in ids)])

    def fmt_block(block: np.ndarray) -> list[str]:
        out = []
        for row in block:
            out.append(",".join("" if not np.isfinite(v) else (fmt % v) for v in row))
        return out

    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(header + "\n")
        step = 4096
        for k in range(0, times.size, step):
            block = np.column_stack([times[k : k + step], np.asarray(traces[k : k + step], np.float64)])
            fh.write("\n".join(fmt_block(block)) + "\n")
    return Path(path)


# --------------------------------------------------------------------------- TIFF
def write_activity_tiff(
    path: str | os.PathLike,
    rates: np.ndarray,
    labels: np.ndarray,
    roi_ids: Sequence[int] | np.ndarray,
    *,
    bin_width: float | None = None,
    background: float = 0.0,
    chunk_frames: int | None = None,
    overwrite: bool = False,
) -> Path:
    """The activity movie as a float32 (T_fine, Y, X) TIFF: each ROI's pixels hold its rate.

    Parameters
    ----------
    rates
        (T_fine, N) activity per ROI (column ``i`` is ROI ``roi_ids[i]``).
    labels
        (Y, X) integer ROI labels, 0 = background.
    roi_ids
        (N,) label of each column; every id must have pixels in ``labels``.
    bin_width
        Seconds per frame (the fine-grid bin), stored as the ImageJ frame
        interval (``finterval``) so ImageJ/Fiji and napari-sbtt's TIFF reader
        know the frame rate.
    background
        Value of pixels outside every listed ROI.
    chunk_frames
        Frames painted and written at a time (default: about 32 MB of frames);
        the full T_fine x Y x X volume is never allocated.

    Files under 4 GB are ImageJ hyperstacks (axes TYX); larger ones are BigTIFF
    without ImageJ metadata.
    """
    import tifffile

    from .activity import ActivityMovie

    labels = np.asarray(labels)
    ids = np.asarray(roi_ids, dtype=np.int64).ravel()
    rates = np.asarray(rates)
    if rates.ndim != 2 or rates.shape[1] != ids.size:
        raise ValueError(f"rates must have shape (T_fine, N={ids.size}), got {rates.shape}")
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a (Y, X) integer labels image, got {labels.dtype} {labels.shape}")
    missing = [int(i) for i in ids[~np.isin(ids, np.unique(labels))]]  # no table sized by the largest id
    if missing:
        raise ValueError(
            f"ROI id(s) {missing[:20]} of the result have no pixels in the labels image; pass the "
            "labels the result was computed from"
        )
    movie = ActivityMovie(rates.astype(np.float32, copy=False), labels, ids, background=background)
    n_t, n_y, n_x = movie.shape
    frame_bytes = n_y * n_x * 4
    if chunk_frames is None:
        chunk_frames = max(1, _TIFF_CHUNK_BYTES // max(1, frame_bytes))
    chunk_frames = int(chunk_frames)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    big = n_t * frame_bytes > _BIGTIFF_BYTES

    def frames() -> Any:
        for k in range(0, n_t, chunk_frames):
            block = movie[k : min(n_t, k + chunk_frames)]
            yield from block

    metadata: dict[str, Any] = {"axes": "TYX"}
    if bin_width is not None:
        if not (math.isfinite(bin_width) and bin_width > 0):
            raise ValueError(f"bin_width must be a positive number of seconds, got {bin_width}")
        metadata["finterval"] = float(bin_width)
        metadata["unit"] = "pixel"
    with atomic_path(path, overwrite=overwrite) as tmp, tifffile.TiffWriter(tmp, bigtiff=big, imagej=not big) as tw:
        tw.write(frames(), shape=(n_t, n_y, n_x), dtype=np.float32,
                 metadata=metadata if not big else {"axes": "TYX"}, photometric="minisblack")
    return Path(path)


# --------------------------------------------------------------------------- NWB
#: names roiextractors (and neuroconv) give the traces of a ``Fluorescence`` container; the
#: first is what it reads as the deconvolved trace
NWB_DECONVOLVED = "Deconvolved"
#: NWB Subject fields ``subject=`` accepts (strings; ``age`` in ISO 8601, e.g. ``P90D``)
NWB_SUBJECT_FIELDS = ("subject_id", "species", "sex", "age", "date_of_birth", "description",
                      "genotype", "strain", "weight")


def _nwb_subject(subject: Mapping[str, Any] | None, path: Any) -> Any:
    """A pynwb Subject from ``{field: value}`` (None when no fields are given)."""
    if not subject:
        return None
    from pynwb.file import Subject

    unknown = sorted(set(subject) - set(NWB_SUBJECT_FIELDS))
    if unknown:
        raise ValueError(f"{path}: unknown NWB subject field(s) {unknown}; use {', '.join(NWB_SUBJECT_FIELDS)}")
    kw: dict[str, Any] = {k: str(v) for k, v in subject.items() if v is not None and k != "date_of_birth"}
    if subject.get("date_of_birth") is not None:
        dob = subject["date_of_birth"]
        if not isinstance(dob, datetime):
            try:
                dob = datetime.fromisoformat(str(dob))
            except ValueError:
                raise ValueError(f"{path}: subject date_of_birth {dob!r} is not an ISO date (e.g. 2024-01-31)") from None
        kw["date_of_birth"] = dob if dob.tzinfo else dob.replace(tzinfo=timezone.utc)
    return Subject(**kw)


def _mask_iterator(order: np.ndarray, sorted_ids: np.ndarray, ids: np.ndarray, shape: tuple[int, int]) -> Any:
    """The PlaneSegmentation ``image_mask`` column, (n_rois, x, y) float32, painted one ROI at a time.

    Only one (x, y) mask is in memory at a time; the column is written gzip-compressed
    in chunks of one ROI.
    """
    from hdmf.backends.hdf5 import H5DataIO
    from hdmf.data_utils import DataChunkIterator

    n_y, n_x = shape

    def masks() -> Any:
        for rid in ids:
            lo, hi = np.searchsorted(sorted_ids, [rid, rid + 1])
            pix = order[lo:hi]
            m = np.zeros((n_x, n_y), dtype=np.float32)
            m[pix % n_x, pix // n_x] = 1.0
            yield m

    it = DataChunkIterator(data=masks(), maxshape=(int(ids.size), n_x, n_y), dtype=np.dtype(np.float32),
                           buffer_size=1)
    return H5DataIO(it, compression="gzip", compression_opts=4, chunks=(1, n_x, n_y))


def write_nwb(
    path: str | os.PathLike,
    rates: np.ndarray,
    times: np.ndarray,
    roi_ids: Sequence[int] | np.ndarray,
    *,
    bin_width: float,
    units: str,
    description: str = "",
    labels: np.ndarray | None = None,
    source_nwb: str | os.PathLike | None = None,
    segmentation: str | None = None,
    table_rows: Sequence[int] | np.ndarray | None = None,
    frame_period: float | None = None,
    name: str | None = None,
    subject: Mapping[str, Any] | None = None,
    location: str | None = None,
    session_description: str = "napari-sbtt inferred activity",
    extra_series: Sequence[tuple[str, np.ndarray, str, str]] = (),
    overwrite: bool = False,
) -> Path:
    """An NWB file holding the rates as a RoiResponseSeries, laid out per the NWB ophys convention.

    Layout
    ------
    ``processing/ophys/Fluorescence/Deconvolved``: a RoiResponseSeries (T_fine, N)
    inside a ``Fluorescence`` container of the ``ophys`` processing module, its
    ``rois`` region pointing at rows of ``processing/ophys/ImageSegmentation/
    PlaneSegmentation``. This is where roiextractors' ``NwbSegmentationExtractor``
    (and neuroconv, which writes the same layout) expect the deconvolved traces
    (``get_traces(name="deconvolved")``). When ``Deconvolved`` is taken (a copy of an
    input that already has one) the series is named ``SBTTDeconvolved``
    (``SBTTDeconvolved2``, ... when that is taken too).

    Parameters
    ----------
    rates
        (T_fine, N) inferred activity; stored as the series' data (frames, ROIs).
    times
        (T_fine,) bin centres in seconds; ``starting_time = times[0]``.
    roi_ids
        (N,) ROI label of each column.
    bin_width
        Seconds per bin; the series' ``rate`` is ``1 / bin_width`` Hz.
    units
        Units of the rates (the series' ``unit``; also in its description).
    description
        Text added to the series' description.
    labels
        (Y, X) labels image: without ``source_nwb``, a PlaneSegmentation is built
        from it, one row per ROI id (``id`` = the label) with both mask columns:
        ``pixel_mask`` ((x, y, weight) with x = column, y = row, weight 1) and
        ``image_mask`` ((n_rois, x, y) float32, 1 inside, gzip-compressed; it
        also gives readers the image size), with a placeholder imaging plane.
    source_nwb, segmentation, table_rows
        When the input was an NWB file: the output is a copy of ``source_nwb``
        with the series added, its ``rois`` region pointing at rows
        ``table_rows`` (one per column) of the PlaneSegmentation named
        ``segmentation`` in that file - the input's own ROIs. The copy holds
        everything the input held (including any raw movie).
    frame_period
        Seconds per frame of the recording, stored as the placeholder imaging
        plane's ``imaging_rate`` (only when a PlaneSegmentation is built).
    name
        Name of the RoiResponseSeries (default ``Deconvolved``, see Layout; a
        numeric suffix is added if taken).
    subject
        NWB Subject fields (:data:`NWB_SUBJECT_FIELDS`, e.g. ``{"subject_id": "m1",
        "species": "Mus musculus", "sex": "F", "age": "P90D"}``). napari-sbtt does
        not know the animal; without them the file has no Subject, which
        nwbinspector reports (DANDI requires one). A copy of an NWB input keeps the
        input's Subject; passing ``subject`` then is an error unless the input has none.
    location
        Brain area of the imaging plane (for a mouse, an Allen CCF term such as
        ``VISp``, which nwbinspector checks); default ``"unknown"``. Only when a
        PlaneSegmentation is built (a copy keeps the input's imaging plane).
    extra_series
        More RoiResponseSeries of the same ROIs and grid in the same ``Fluorescence``
        container, each ``(name, data (T_fine, N), unit, description)`` (e.g.
        ``EstimatedSpikeRate`` in ``spikes/s``); a numeric suffix is added to a taken name.

    Needs pynwb (``pip install napari-sbtt[nwb]``).

    Raises
    ------
    ValueError
        Neither ``labels`` nor ``source_nwb``; ROIs without pixels; table rows
        outside the source PlaneSegmentation; unknown subject fields.
    """
    pynwb = _require("pynwb", "nwb", path)
    from pynwb.ophys import Fluorescence, RoiResponseSeries

    rates = np.asarray(rates, dtype=np.float32)
    times = np.asarray(times, dtype=np.float64).ravel()
    ids = np.asarray(roi_ids, dtype=np.int64).ravel()
    rates = _check_2d("rates", rates, times.size, ids.size)
    extras = [(str(n), _check_2d(str(n), np.asarray(d, dtype=np.float32), times.size, ids.size), str(u),
               str(dsc)) for n, d, u, dsc in extra_series]
    if not (math.isfinite(bin_width) and bin_width > 0):
        raise ValueError(f"bin_width must be a positive number of seconds, got {bin_width}")
    subject_obj = _nwb_subject(subject, path)
    rate_hz = 1.0 / float(bin_width)
    desc = (
        f"Per-ROI activity inferred by napari-sbtt (SBTT) on a fine time grid: bin width "
        f"{bin_width:.6g} s ({rate_hz:.6g} Hz), starting_time = first bin centre; units: {units}. "
        + description
    ).strip()
    t0 = float(times[0]) if times.size else 0.0

    def add_series(nwbfile: Any, ps: Any, rows: list[int]) -> None:
        if "ophys" in nwbfile.processing:
            module = nwbfile.processing["ophys"]
        else:
            module = nwbfile.create_processing_module(
                name="ophys", description="optical physiology processed by napari-sbtt")
        container = module.data_interfaces.get("Fluorescence")
        if not isinstance(container, Fluorescence):  # absent (or the name holds something else)
            container = Fluorescence(name="Fluorescence" if container is None else "SBTTFluorescence")
            module.add(container)
        taken = set(container.roi_response_series)
        base = name if name is not None else NWB_DECONVOLVED
        if name is None and base in taken:
            base = "SBTT" + NWB_DECONVOLVED
        for series_name, data, unit, text in [(base, rates, str(units), desc), *extras]:
            k, free = 1, series_name
            while free in taken:
                k += 1
                free = f"{series_name}{k}"
            taken.add(free)
            region = ps.create_roi_table_region(
                region=rows, description=f"the {len(rows)} ROIs of the inferred activity, in column order",
                name="rois")
            container.add_roi_response_series(RoiResponseSeries(
                name=free, data=data, rois=region, unit=unit, rate=rate_hz, starting_time=t0,
                description=text))

    if source_nwb is not None:
        src = Path(source_nwb)
        if location is not None:
            raise ValueError(f"{src}: the copy of the input NWB file keeps its imaging plane and location; "
                             "leave out the location")
        if not src.is_file():
            raise FileNotFoundError(
                f"the input NWB file {src} is gone, so its PlaneSegmentation cannot be linked; "
                "restore it, or pass labels= to build a new PlaneSegmentation")
        rows = list(range(ids.size)) if table_rows is None else [int(r) for r in np.asarray(table_rows).ravel()]
        if len(rows) != ids.size:
            raise ValueError(f"table_rows lists {len(rows)} rows for {ids.size} ROIs")
        with atomic_path(path, overwrite=overwrite) as tmp:
            shutil.copyfile(src, tmp)
            with pynwb.NWBHDF5IO(str(tmp), mode="a") as io:
                nwbfile = io.read()
                from pynwb.ophys import PlaneSegmentation

                segs = [o for o in nwbfile.objects.values() if isinstance(o, PlaneSegmentation)]
                hits = [s for s in segs if segmentation is None or s.name == segmentation]
                if len(hits) != 1:
                    have = ", ".join(sorted(s.name for s in segs)) or "none"
                    raise ValueError(
                        f"{src}: cannot find one PlaneSegmentation named {segmentation!r} (found: {have}); "
                        "pass labels= to build a new one")
                ps = hits[0]
                n_ps = len(ps.id)
                if rows and (min(rows) < 0 or max(rows) >= n_ps):
                    raise ValueError(
                        f"{src}: PlaneSegmentation '{ps.name}' has {n_ps} ROIs but the result refers to "
                        f"rows up to {max(rows)}; the result does not come from this file")
                if subject_obj is not None:
                    if nwbfile.subject is not None:
                        raise ValueError(
                            f"{src}: the input NWB file already describes its subject "
                            f"('{nwbfile.subject.subject_id}'), which the copy keeps; leave out the subject")
                    nwbfile.subject = subject_obj
                add_series(nwbfile, ps, rows)
                io.write(nwbfile)
        return Path(path)

    if labels is None:
        raise ValueError(
            "NWB export needs the ROI masks: pass labels= (the (Y, X) labels image the result was "
            "computed from), or export a result computed from an NWB file")
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a (Y, X) integer labels image, got {labels.dtype} {labels.shape}")
    from pynwb.ophys import ImageSegmentation, OpticalChannel

    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    sorted_ids = flat[order]
    for rid in ids:
        lo, hi = np.searchsorted(sorted_ids, [rid, rid + 1])
        if hi <= lo or rid == 0:
            raise ValueError(
                f"ROI id {int(rid)} of the result has no pixels in the labels image; pass the labels "
                "the result was computed from")
    nwbfile = pynwb.NWBFile(
        session_description=session_description, identifier=str(uuid.uuid4()),
        session_start_time=datetime.now(timezone.utc).astimezone(),
        source_script="napari-sbtt", source_script_file_name="napari_sbtt/core/writers.py",
    )
    if subject_obj is not None:
        nwbfile.subject = subject_obj
    device = nwbfile.create_device(name="Microscope", description="not known to napari-sbtt")
    channel = OpticalChannel(name="OpticalChannel", description="not known to napari-sbtt",
                             emission_lambda=math.nan)
    plane_kw: dict[str, Any] = {}
    if frame_period is not None and frame_period > 0:
        plane_kw["imaging_rate"] = 1.0 / float(frame_period)
    plane = nwbfile.create_imaging_plane(
        name="ImagingPlane", optical_channel=channel, device=device,
        description="placeholder written by napari-sbtt: the ROIs' image plane", excitation_lambda=math.nan,
        indicator="unknown", location=str(location) if location else "unknown", **plane_kw)
    module = nwbfile.create_processing_module(name="ophys", description="optical physiology processed by napari-sbtt")
    seg = ImageSegmentation(name="ImageSegmentation")
    module.add(seg)
    ps = seg.create_plane_segmentation(
        name="PlaneSegmentation", imaging_plane=plane,
        description="ROIs of the napari-sbtt labels image (id = label; pixel_mask x = column, y = row; "
                    "image_mask (roi, x, y), 1 inside)")
    n_x = labels.shape[1]
    for rid in ids:
        lo, hi = np.searchsorted(sorted_ids, [rid, rid + 1])
        pix = order[lo:hi]
        ys, xs = pix // n_x, pix % n_x
        ps.add_roi(pixel_mask=[(int(x), int(y), 1.0) for y, x in zip(ys, xs, strict=True)], id=int(rid))
    if ids.size:
        ps.add_column(name="image_mask", description="ROI masks (roi, x, y): 1 inside the ROI, 0 outside",
                      data=_mask_iterator(order, sorted_ids, ids, labels.shape))
    add_series(nwbfile, ps, list(range(ids.size)))
    with atomic_path(path, overwrite=overwrite) as tmp, pynwb.NWBHDF5IO(str(tmp), mode="w") as io:
        io.write(nwbfile)
    return Path(path)
