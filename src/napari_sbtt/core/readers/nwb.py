"""NWB files: the TwoPhotonSeries movie (lazy), its rate, ROI labels and ROI traces.

Axis conventions follow the NWB schema (as pynwb and roiextractors read it):
``TwoPhotonSeries.data`` is (frames, x, y), ``PlaneSegmentation.image_mask``
is (n_rois, x, y) and ``pixel_mask`` rows are ``(x, y, weight)``, with x the
column and y the row of the image. We return everything in napari-sbtt's
(T, Y, X) / (Y, X) order, so the movie and the labels always line up:
the movie is a lazy transposing view and the masks are transposed once.

Files in the wild differ for ``pixel_mask``: suite2p's own NWB export and
neuroconv (roiextractors' pixel masks) write the row into ``x`` and the column
into ``y``. The reader takes ``x`` as the row when the image size (movie,
reference image, or the segmentation's mean/correlation images) is not square
and only that reading fits, or else when the file says suite2p or neuroconv
wrote it (``session_description = "suite2p_proc"``, neuroconv's
``source_script``).
``RoiResponseSeries.data`` is (frames, n_rois) per the schema; we return
traces as (T, N), time first, like every trace array in napari-sbtt.

Needs pynwb (``pip install napari-sbtt[nwb]``); pynwb is imported only when a
file is read.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    ReaderError,
    as_path,
    check_image_shape,
    labels_from_weighted_pixels,
    read_h5_dataset,
    require_pynwb,
)

__all__ = ["NWBData", "NWBMovie", "read_nwb"]


class NWBMovie:
    """A lazy (T, Y, X) view of a TwoPhotonSeries ``data`` dataset stored (T, x, y).

    Indexing reads only the requested frames from the HDF5 file and
    transposes them. The file stays open until the owning :class:`NWBData` is closed.
    """

    def __init__(self, dataset: Any) -> None:
        self._ds = dataset
        n_t, n_x, n_y = (int(s) for s in dataset.shape)
        self.shape: tuple[int, int, int] = (n_t, n_y, n_x)
        self.dtype = np.dtype(dataset.dtype)
        self.ndim = 3
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (3 - (len(key) - 1)) + key[i + 1 :]
        tkey, rest = key[0], key[1:]
        with self._lock:
            if not getattr(getattr(self._ds, "id", None), "valid", True):
                raise ValueError("the NWB file of this movie was closed; read it again with read_nwb")
            if isinstance(tkey, (int, np.integer)):
                n = self.shape[0]
                i = int(tkey)
                if i < -n or i >= n:
                    raise IndexError(f"frame {i} is outside 0..{n - 1}")
                block = np.asarray(self._ds[i % n]).T
                return block[rest]
            if isinstance(tkey, slice):
                block = np.asarray(self._ds[tkey])
            else:
                idx = np.asarray(tkey)
                if idx.dtype == bool:
                    idx = np.flatnonzero(idx)
                idx = idx.astype(np.int64) % self.shape[0]
                order = np.argsort(idx, kind="stable")
                uniq, inv = np.unique(idx[order], return_inverse=True)
                got = np.asarray(self._ds[uniq.tolist()]) if uniq.size else np.empty((0, *self._ds.shape[1:]), self.dtype)
                block = np.empty((idx.size, *got.shape[1:]), dtype=got.dtype)
                block[order] = got[inv]
        return np.swapaxes(block, 1, 2)[(slice(None), *rest)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self[:]
        return a if dtype is None else a.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"NWBMovie(shape={self.shape}, dtype={self.dtype})"


@dataclass
class NWBData:
    """What :func:`read_nwb` found in an NWB file.

    Attributes
    ----------
    path
        The file.
    labels
        int32 (Y, X): 0 = background, ``k + 1`` = row ``k`` of the PlaneSegmentation.
    roi_ids
        int (N,): the PlaneSegmentation's ``id`` of each label.
    traces
        float (T, N) ROI traces from the RoiResponseSeries, column ``k`` = label
        ``k + 1`` (NaN for ROIs the series does not cover), or None when the
        file has none.
    traces_rate_hz
        Sampling rate of ``traces`` in Hz, or None.
    movie
        :class:`NWBMovie` (T, Y, X), lazy; None when the file has no
        TwoPhotonSeries with data in it. Close the NWBData to release the file.
    rate_hz
        Frame rate of the TwoPhotonSeries (``rate``, else from ``timestamps``,
        else the ImagingPlane's ``imaging_rate``), or None.
    series_name, segmentation_name, traces_name
        Names of the objects read (None when absent).
    """

    path: Path
    labels: np.ndarray
    roi_ids: np.ndarray
    traces: np.ndarray | None
    traces_rate_hz: float | None
    movie: NWBMovie | None
    rate_hz: float | None
    series_name: str | None
    segmentation_name: str
    traces_name: str | None
    _io: Any = field(default=None, repr=False, compare=False)

    @property
    def n_rois(self) -> int:
        return int(self.roi_ids.size)

    def close(self) -> None:
        """Close the file (the movie can no longer be read)."""
        if self._io is not None:
            self._io.close()
            self._io = None

    def __enter__(self) -> "NWBData":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _read_all(data: Any, path: Path, dtype: Any = None) -> np.ndarray:
    """All of an NWB column or series' data; an HDF5 dataset's declared size is checked first."""
    if hasattr(getattr(data, "id", None), "get_storage_size"):
        return read_h5_dataset(data, path, dtype)
    arr = data[()] if hasattr(data, "shape") else data
    return np.asarray(arr) if dtype is None else np.asarray(arr, dtype=dtype)


def _rate(obj: Any) -> float | None:
    r = getattr(obj, "rate", None)
    if r is not None and np.isfinite(r) and r > 0:
        return float(r)
    ts = getattr(obj, "timestamps", None)
    if ts is not None:
        t = np.asarray(ts[: min(len(ts), 10001)], dtype=float)
        if t.size > 1:
            d = np.median(np.diff(t))
            if d > 0:
                return float(1.0 / d)
    return None


#: RoiResponseSeries / container names that hold derived traces, not the raw fluorescence
#: (roiextractors' and neuroconv's names, suite2p's containers, napari-sbtt's own export)
_DERIVED_TRACES = ("deconvolved", "neuropil", "denoised", "baseline", "background", "sbtt")


def _is_raw_fluorescence(rrs: Any) -> bool:
    """True for a RoiResponseSeries in a Fluorescence container that is not a derived trace.

    Derived: the series or its container is named for a derived trace (``Deconvolved``,
    ``Neuropil``, ... as roiextractors/neuroconv and suite2p name them, or napari-sbtt's
    ``SBTT...`` outputs; the rates napari-sbtt exports live in ``Fluorescence/Deconvolved``).
    """
    parent = rrs.parent
    if getattr(parent, "neurodata_type", "") != "Fluorescence" and type(parent).__name__ != "Fluorescence":
        return False
    names = (str(rrs.name).lower(), str(parent.name).lower())
    return not any(n.startswith(d) for n in names for d in _DERIVED_TRACES)


def _writer(nwbfile: Any, ps: Any) -> str | None:
    """``"neuroconv"`` or ``"suite2p"`` when the file says one of them wrote it (they put rows in pixel_mask x)."""
    script = f"{getattr(nwbfile, 'source_script', '') or ''} {getattr(nwbfile, 'source_script_file_name', '') or ''}"
    if "neuroconv" in script.lower():
        return "neuroconv"
    if getattr(nwbfile, "session_description", "") == "suite2p_proc" or getattr(ps, "description", "") == "suite2p output":
        return "suite2p"
    return None


def _summary_image_size(nwbfile: Any, *, rows_first: bool) -> tuple[int, int] | None:
    """(Y, X) from the 2-D images of the ophys module's Images containers, when they all agree.

    The NWB schema stores images (x, y); suite2p writes its mean images (rows, columns)
    (``rows_first``).
    """
    module = nwbfile.processing.get("ophys") if hasattr(nwbfile, "processing") else None
    if module is None:
        return None
    shapes = set()
    for obj in module.data_interfaces.values():
        images = getattr(obj, "images", None)
        if not isinstance(images, dict) or getattr(obj, "neurodata_type", "") != "Images":
            continue
        for img in images.values():
            shp = tuple(getattr(getattr(img, "data", None), "shape", ()))
            if len(shp) == 2:
                shapes.add(shp)
    if len(shapes) != 1:
        return None
    a, b = (int(v) for v in shapes.pop())
    return (a, b) if rows_first else (b, a)


def _rows_in_x(xs: list[np.ndarray], ys: list[np.ndarray], shape: tuple[int, int] | None,
               writer: str | None) -> bool:
    """Whether a pixel_mask's x member holds rows (suite2p and neuroconv write it so) instead of columns.

    The schema's x is the column (image masks are (roi, x, y), as our writer and pynwb
    store them). When the image size is known and not square, the masks decide: only one
    reading may fit the image. Otherwise the writer decides: suite2p's save_nwb and
    neuroconv write (row, column) into (x, y).
    """
    if shape is not None and shape[0] != shape[1] and any(x.size for x in xs):
        ny, nx = shape
        x_max = max(int(x.max()) for x in xs if x.size)
        y_max = max(int(y.max()) for y in ys if y.size)
        fits_cols, fits_rows = x_max < nx and y_max < ny, x_max < ny and y_max < nx
        if fits_cols != fits_rows:
            return fits_rows
    return writer in ("neuroconv", "suite2p")


def _pick(objs: list[Any], name: str | None, what: str, path: Path, field_hint: str) -> Any | None:
    if name is not None:
        hits = [o for o in objs if o.name == name]
        if not hits:
            have = ", ".join(sorted({o.name for o in objs})) or "none"
            raise ReaderError(f"{path}: no {what} named {name!r} (found: {have}); {field_hint}")
        return hits[0]
    if len(objs) > 1:
        names = ", ".join(sorted(o.name for o in objs))
        raise ReaderError(
            f"{path}: several {what}s ({names}); choose one by name ({field_hint})"
        )
    return objs[0] if objs else None


def read_nwb(
    path: str | os.PathLike,
    *,
    series: str | None = None,
    segmentation: str | None = None,
    traces: str | None = None,
) -> NWBData:
    """Read an NWB file's two-photon movie, ROI segmentation and ROI traces.

    Parameters
    ----------
    path
        The ``.nwb`` file (HDF5).
    series
        Name of the TwoPhotonSeries to use when there are several.
    segmentation
        Name of the PlaneSegmentation to use when there are several.
    traces
        Name of the RoiResponseSeries to use; by default the raw fluorescence
        (a series in a ``Fluorescence`` container not named for a derived trace
        such as ``Deconvolved`` or ``Neuropil``), else the only one.

    Returns
    -------
    NWBData
        Holds the file open while ``movie`` is not None; close it (or use
        ``with read_nwb(...) as d:``) when done.

    Raises
    ------
    ImportError
        pynwb is not installed.
    ReaderError
        No PlaneSegmentation with ``pixel_mask`` or ``image_mask`` (the message
        names the file and the field), masks outside the image, several
        candidates without a name to choose, traces that do not match the ROIs.
    """
    p = as_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"NWB file not found: {p}")
    pynwb = require_pynwb(p)
    from pynwb.ophys import PlaneSegmentation, RoiResponseSeries, TwoPhotonSeries

    try:
        io = pynwb.NWBHDF5IO(str(p), mode="r")
        nwbfile = io.read()
    except Exception as e:  # noqa: BLE001 - pynwb/hdmf raise many types for foreign files
        raise ReaderError(f"{p} cannot be read as NWB ({e}); check that it is an NWB 2.x HDF5 file") from None
    try:
        objs = list(nwbfile.objects.values())
        tps = _pick([o for o in objs if isinstance(o, TwoPhotonSeries)], series, "TwoPhotonSeries", p,
                    "pass series=NAME")
        segs = [o for o in objs if isinstance(o, PlaneSegmentation)]
        if not segs:
            raise ReaderError(
                f"{p}: no ROI segmentation - the file has no PlaneSegmentation "
                "(processing/ophys/ImageSegmentation/PlaneSegmentation with a 'pixel_mask' or "
                "'image_mask' column); add one (e.g. suite2p's save_NWB, or pynwb's "
                "ImageSegmentation.create_plane_segmentation) or load the ROIs from another file"
            )
        ps = _pick(segs, segmentation, "PlaneSegmentation", p, "pass segmentation=NAME")
        ny = nx = None
        if tps is not None and tps.data is not None and len(getattr(tps.data, "shape", ())) >= 3:
            shp = tuple(tps.data.shape)
            if len(shp) > 3:
                raise ReaderError(
                    f"{p}: TwoPhotonSeries '{tps.name}' data has shape {shp} (frames, x, y, z); "
                    "napari-sbtt analyses one plane (T, Y, X) - save one z-plane as its own series"
                )
            ny, nx = check_image_shape((shp[2], shp[1]), p, f"{tps.name}/data")
        # --- masks
        cols = set(ps.colnames)
        n_rois = len(ps.id)
        roi_ids = _read_all(ps.id.data, p, np.int64) if n_rois else np.empty(0, np.int64)
        if "image_mask" in cols:
            im = ps["image_mask"].data
            shp = tuple(im.shape)
            if len(shp) != 3:
                raise ReaderError(f"{p}: PlaneSegmentation '{ps.name}' field 'image_mask' has shape {shp}; "
                                  "expected (n_rois, x, y) - volumetric masks are not supported")
            check_image_shape((shp[2], shp[1]), p, f"{ps.name}/image_mask")
            if nx is not None and (shp[1], shp[2]) != (nx, ny):
                raise ReaderError(
                    f"{p}: PlaneSegmentation '{ps.name}' field 'image_mask' is {shp[1]} x {shp[2]} (x, y) "
                    f"but TwoPhotonSeries '{tps.name}' frames are {nx} x {ny}; the ROIs belong to another movie"
                )
            ys, xs, ws = [], [], []
            for k in range(shp[0]):
                m = np.asarray(im[k], dtype=float).T  # (y, x)
                yy, xx = np.nonzero(m > 0)
                ys.append(yy)
                xs.append(xx)
                ws.append(m[yy, xx])
            shape = (shp[2], shp[1])
            fld = "image_mask"
        elif "pixel_mask" in cols:
            col = ps["pixel_mask"]
            target = _read_all(col.target.data, p) if hasattr(col, "target") else None
            ends = _read_all(col.data, p, np.int64) if hasattr(col, "target") else None
            if target is None or ends is None:
                raise ReaderError(f"{p}: PlaneSegmentation '{ps.name}' field 'pixel_mask' is not a ragged "
                                  "(x, y, weight) column; re-write the segmentation with pynwb")
            names = target.dtype.names or ()
            if not {"x", "y"} <= set(names):
                raise ReaderError(f"{p}: PlaneSegmentation '{ps.name}' field 'pixel_mask' lacks the x/y "
                                  f"members (has {names}); re-write the segmentation with pynwb")
            starts = np.concatenate([[0], ends[:-1]]) if ends.size else ends
            ys = [np.asarray(target["y"][s:e], dtype=np.int64) for s, e in zip(starts, ends, strict=True)]
            xs = [np.asarray(target["x"][s:e], dtype=np.int64) for s, e in zip(starts, ends, strict=True)]
            ws = [np.asarray(target["weight"][s:e], dtype=float) if "weight" in names else np.ones(e - s)
                  for s, e in zip(starts, ends, strict=True)]
            writer = _writer(nwbfile, ps)
            if ny is None:  # no movie: a reference image (1, x, y) of the segmentation gives the size
                refs = getattr(ps, "reference_images", None)
                refs = list(refs.values()) if isinstance(refs, dict) else list(refs or [])
                for ref in refs:
                    rshape = tuple(getattr(getattr(ref, "data", None), "shape", ()))
                    if len(rshape) == 3:
                        ny, nx = check_image_shape((rshape[2], rshape[1]), p, f"{ref.name}/data")
                        break
            if ny is None:  # the segmentation's summary images (mean image, correlation image)
                size = _summary_image_size(nwbfile, rows_first=writer == "suite2p")
                if size is not None:
                    ny, nx = size
            if _rows_in_x(xs, ys, None if ny is None else (ny, nx), writer):
                xs, ys = ys, xs
            if ny is None:
                ny = max((int(y.max()) + 1 for y in ys if y.size), default=1)
                nx = max((int(x.max()) + 1 for x in xs if x.size), default=1)
                warnings.warn(
                    f"{p}: no TwoPhotonSeries or reference image gives the image size; using the ROIs' "
                    f"extent {ny} x {nx}",
                    stacklevel=2,
                )
            shape = (ny, nx)
            fld = "pixel_mask"
        else:
            raise ReaderError(
                f"{p}: PlaneSegmentation '{ps.name}' has neither a 'pixel_mask' nor an 'image_mask' "
                f"field (columns: {sorted(cols)}); napari-sbtt needs ROI masks - add one of them"
            )
        labels = labels_from_weighted_pixels(
            ys, xs, ws, shape, source=p, field=f"{ps.name}/{fld}", roi_names=roi_ids.tolist()
        )
        # --- traces
        rrs_all = [o for o in objs if isinstance(o, RoiResponseSeries)
                   and getattr(o.rois, "table", None) is ps]
        if traces is None and len(rrs_all) > 1:
            raw = [o for o in rrs_all if _is_raw_fluorescence(o)]
            rrs_all = raw[:1] if raw else rrs_all
        rrs = _pick(rrs_all, traces, "RoiResponseSeries", p, "pass traces=NAME")
        tr = None
        tr_rate = None
        if rrs is not None:
            region = _read_all(rrs.rois.data, p, np.int64).ravel()
            data = _read_all(rrs.data, p, float)
            if data.ndim == 1:
                data = data[:, None]
            if data.ndim != 2:
                raise ReaderError(f"{p}: RoiResponseSeries '{rrs.name}' data has shape {data.shape}; "
                                  "expected (frames, n_rois)")
            if data.shape[1] != region.size:
                if data.shape[0] == region.size:
                    warnings.warn(
                        f"{p}: RoiResponseSeries '{rrs.name}' data is stored (n_rois, frames) instead of "
                        "the schema's (frames, n_rois); transposing it",
                        stacklevel=2,
                    )
                    data = data.T
                else:
                    raise ReaderError(
                        f"{p}: RoiResponseSeries '{rrs.name}' data has {data.shape[1]} columns but its "
                        f"'rois' region names {region.size} ROIs; re-write the traces with pynwb"
                    )
            if region.size and (region.min() < 0 or region.max() >= n_rois):
                raise ReaderError(f"{p}: RoiResponseSeries '{rrs.name}' field 'rois' refers to rows outside "
                                  f"the PlaneSegmentation's {n_rois} ROIs")
            tr = np.full((data.shape[0], n_rois), np.nan)
            tr[:, region] = data
            tr_rate = _rate(rrs)
        # --- movie
        movie = None
        rate = None
        if tps is not None:
            rate = _rate(tps)
            if rate is None:
                r = getattr(getattr(tps, "imaging_plane", None), "imaging_rate", None)
                rate = float(r) if r is not None and r > 0 else None
            if tps.data is not None and len(getattr(tps.data, "shape", ())) == 3 and tps.data.shape[0] > 0:
                movie = NWBMovie(tps.data)
                if tr is not None and tr.shape[0] != movie.shape[0]:
                    raise ReaderError(
                        f"{p}: RoiResponseSeries '{rrs.name}' has {tr.shape[0]} frames but "
                        f"TwoPhotonSeries '{tps.name}' has {movie.shape[0]}; the traces do not belong "
                        "to this movie - pass traces=NAME for the matching series"
                    )
        out = NWBData(
            path=p, labels=labels, roi_ids=roi_ids, traces=tr, traces_rate_hz=tr_rate, movie=movie,
            rate_hz=rate, series_name=None if tps is None else tps.name, segmentation_name=ps.name,
            traces_name=None if rrs is None else rrs.name, _io=io if movie is not None else None,
        )
        if movie is None:
            io.close()
        return out
    except BaseException:
        io.close()
        raise
