"""TIFF movies: memory-mapped or lazily paged (T, Y, X) arrays, plus ScanImage timing.

``open_movie`` never loads a whole file: an uncompressed, contiguous TIFF is
memory-mapped with tifffile; anything else (compressed, tiled, pages separated
by IFDs, as ScanImage writes them) is wrapped in :class:`TiffPageStack`, which
decodes only the pages that are sliced.

ScanImage metadata
------------------
ScanImage (2016 and later) writes BigTIFF files whose header is followed, at
byte 16, by a block holding the magic number 0x07030301, a format version (3
or 4), and the lengths of two strings: the *non-varying frame data* (MATLAB
style ``SI.hRoiManager.linePeriod = 6.3e-05`` lines) and the ROI groups
(JSON). The same two strings are repeated in the Software and Artist tags of
every page; the ImageDescription tag of each page holds the *varying* frame
data (frame number, timestamps). tifffile parses the header block
(``TiffFile.scanimage_metadata['FrameData']``); when that block is missing
(older ScanImage, or files re-saved by other tools) we parse the Software tag
and the ImageDescription text ourselves (:func:`parse_scanimage_text`).

Keys used (seconds unless stated): ``SI.hRoiManager.linePeriod`` (one line,
one direction), ``SI.hRoiManager.scanFramePeriod`` / ``scanFrameRate`` (Hz),
``SI.hRoiManager.linesPerFrame``, ``SI.hScan2D.bidirectional``,
``SI.hScan2D.flybackTimePerFrame``, ``SI.hChannels.channelSave`` (saved
channels), ``SI.hFastZ.enable`` / ``SI.hStackManager.numSlices`` (volumes),
``SI.hRoiManager.mroiEnable`` (multi-ROI). ScanImage 3 files
(``state.acq.frameRate``, ``state.acq.msPerLine`` in milliseconds,
``state.acq.linesPerFrame``, ``state.acq.bidirectionalScan``) are read too.
"""

from __future__ import annotations

import math
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tifffile

from ..scan import ScanPattern, infer_row_mask
from ._common import ReaderError, as_path, check_image_shape

__all__ = [
    "MovieInfo",
    "TiffPageStack",
    "open_movie",
    "read_movie_info",
    "scan_pattern_from_tiff",
    "parse_scanimage_text",
]

_AXIS_NAMES = {
    "C": "channel",
    "Z": "z-plane",
    "S": "colour sample (RGB)",
    "T": "time",
    "I": "image sequence",
    "Q": "unlabelled",
    "R": "tile/region",
    "P": "position",
    "E": "lambda/wavelength",
    "H": "lifetime histogram",
    "A": "angle",
    "L": "exposure",
    "V": "view",
}


@dataclass(frozen=True)
class MovieInfo:
    """What a TIFF file says about its movie and its acquisition timing.

    Attributes
    ----------
    path
        The file.
    shape
        (T, Y, X) of the movie as returned by :func:`open_movie`.
    dtype
        Pixel data type (a numpy dtype string).
    axes
        tifffile's axes string of the series before singleton axes were dropped.
    memmapped
        True when the movie is a read-only view on a memory map of the file
        (no pixel is read until it is used).
    source
        ``"scanimage"``, ``"imagej"`` or None (no known acquisition metadata).
    frame_rate_hz
        Frames per second, or None when the file does not say.
    line_period_s
        Seconds per scanned line (per direction when bidirectional), or None.
    lines_per_frame
        Lines per frame according to the metadata, or None.
    bidirectional
        Fast-axis bidirectional scanning, or None when unknown.
    flyback_s
        Slow-axis flyback time per frame in seconds, or None.
    metadata
        The acquisition keys that were found (flat ``{key: value}``), for provenance.
    """

    path: str
    shape: tuple[int, int, int]
    dtype: str
    axes: str
    memmapped: bool
    source: str | None = None
    frame_rate_hz: float | None = None
    line_period_s: float | None = None
    lines_per_frame: int | None = None
    bidirectional: bool | None = None
    flyback_s: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def frame_period_s(self) -> float | None:
        """Seconds per frame (1 / frame_rate_hz), or None."""
        if self.frame_rate_hz is None or not self.frame_rate_hz > 0:
            return None
        return 1.0 / self.frame_rate_hz

    @property
    def has_line_timing(self) -> bool:
        """True when the file gives enough to time every row (line period and frame clock)."""
        return self.line_period_s is not None and (
            self.frame_rate_hz is not None or self.flyback_s is not None
        )


class TiffPageStack:
    """A lazy (T, Y, X) view of a multi-page TIFF: each frame is one page, decoded on demand.

    Supports ``shape``, ``dtype``, ``ndim``, ``len()`` and numpy-style
    indexing whose first index is an int, a slice, or a list/array of frame
    indices (or a boolean mask over frames); further indices select within the
    frames. ``np.asarray(stack)`` reads every page (only do that for small files).
    Reads are serialised with a lock, so the stack may be shared between threads.
    Close it with :meth:`close` (or use it as a context manager).
    """

    def __init__(self, tif: tifffile.TiffFile, pages: list[Any], frame_shape: tuple[int, int], dtype: np.dtype) -> None:
        self._tif = tif
        self._pages = pages
        self.shape: tuple[int, int, int] = (len(pages), int(frame_shape[0]), int(frame_shape[1]))
        self.dtype = np.dtype(dtype)
        self.ndim = 3
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def path(self) -> str:
        return str(self._tif.filehandle.path)

    def __len__(self) -> int:
        return self.shape[0]

    def _frame(self, i: int) -> np.ndarray:
        with self._lock:
            if self._tif.filehandle.closed:
                raise ValueError(f"the TIFF file {self.path} was closed; open it again with open_movie")
            try:
                a = np.asarray(self._pages[i].asarray())
            except (MemoryError, KeyboardInterrupt):
                raise
            except Exception as e:  # noqa: BLE001 - codecs raise zlib.error, ValueError, RuntimeError...
                raise ReaderError(
                    f"{self.path}: frame {i} cannot be decoded ({type(e).__name__}: {e}); the file is damaged "
                    "- copy it again from the acquisition computer, or re-export the movie") from None
        if a.size != self.shape[1] * self.shape[2]:
            raise ReaderError(f"{self.path}: frame {i} has shape {a.shape}, not {self.shape[1:]} like the first "
                              "frame; re-save the movie with frames of one size")
        a = a.reshape(self.shape[1:])
        return a.astype(self.dtype, copy=False)

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            fill = 3 - (len(key) - 1)
            key = key[:i] + (slice(None),) * fill + key[i + 1 :]
        if len(key) > 3:
            raise IndexError(f"too many indices for a (T, Y, X) movie: {len(key)}")
        tkey, rest = key[0], key[1:]
        n = self.shape[0]
        if isinstance(tkey, (int, np.integer)):
            i = int(tkey)
            if i < -n or i >= n:
                raise IndexError(f"frame {i} is outside 0..{n - 1}")
            return self._frame(i % n)[rest]
        if isinstance(tkey, slice):
            idx = np.arange(*tkey.indices(n))
        else:
            arr = np.asarray(tkey)
            if arr.dtype == bool:
                if arr.shape != (n,):
                    raise IndexError(f"a boolean frame mask must have shape ({n},), got {arr.shape}")
                idx = np.flatnonzero(arr)
            elif np.issubdtype(arr.dtype, np.integer) and arr.ndim == 1:
                if arr.size and (arr.min() < -n or arr.max() >= n):
                    raise IndexError(f"frame indices must lie in 0..{n - 1}")
                idx = arr % n if arr.size else arr.astype(np.int64)
            else:
                raise IndexError(f"unsupported frame index {tkey!r}; use an int, a slice or a 1-D int array")
        out = np.empty((idx.size, *self.shape[1:]), dtype=self.dtype)
        for j, i in enumerate(idx):
            out[j] = self._frame(int(i))
        return out[(slice(None), *rest)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self[:]
        return a if dtype is None else a.astype(dtype, copy=False)

    def close(self) -> None:
        """Close the underlying file."""
        self._tif.close()

    def __enter__(self) -> "TiffPageStack":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TiffPageStack(shape={self.shape}, dtype={self.dtype}, path={self.path!r})"


# ---------------------------------------------------------------------- ScanImage text
_NUM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _parse_value(s: str) -> Any:
    s = s.strip().rstrip(";").strip()
    if not s:
        return ""
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("inf", "+inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    if low == "nan":
        return math.nan
    if _NUM.match(s):
        f = float(s)
        return int(f) if re.match(r"^[+-]?\d+$", s) else f
    if len(s) >= 2 and s[0] == "'" and s[-1] == "'":
        return s[1:-1]
    if s[0] in "[{" and s[-1] in "]}":
        inner = s[1:-1].replace(";", " ").replace(",", " ").split()
        vals = [_parse_value(v) for v in inner]
        return vals
    return s


def parse_scanimage_text(text: str) -> dict[str, Any]:
    """Parse ScanImage ``key = value`` metadata text into a flat dict.

    Handles the Software-tag / header block format of ScanImage 2016+
    (``SI.hRoiManager.linePeriod = 6.3e-05``), the ImageDescription format of
    ScanImage 4/5 (``scanimage.SI5.scanFrameRate = 30``) and of ScanImage 3
    (``state.acq.frameRate=7.8``). Values become int, float, bool, str or lists
    of those; anything else stays a string.
    """
    out: dict[str, Any] = {}
    for line in text.replace("\r", "\n").split("\n"):
        if "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if not key or " " in key:
            continue
        try:
            out[key] = _parse_value(value)
        except ValueError:
            out[key] = value.strip()
    return out


def _normalise_si_keys(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        k2 = k[len("scanimage.") :] if k.startswith("scanimage.") else k
        k2 = re.sub(r"^SI\d+\.", "SI.", k2)
        out[k2] = v
    return out


def _lookup(d: dict[str, Any], exact: list[str], suffixes: tuple[str, ...] = ()) -> Any:
    for k in exact:
        if k in d and d[k] not in ("", None, []):
            return d[k]
    for k, v in d.items():
        last = k.rsplit(".", 1)[-1].lower()
        if last in suffixes and v not in ("", None, []):
            return v
    return None


def _as_float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _as_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return None


def _scanimage_keys(tif: tifffile.TiffFile) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    page = tif.pages.first
    desc = page.description or ""
    if desc:
        keys.update(parse_scanimage_text(desc))
    software = page.software or ""
    if software.startswith("SI."):
        keys.update(parse_scanimage_text(software))
    try:
        meta = tif.scanimage_metadata
    except Exception:  # noqa: BLE001 - a damaged header block is not fatal, the tags still help
        meta = None
    if meta and isinstance(meta.get("FrameData"), dict):
        keys.update(meta["FrameData"])
    return _normalise_si_keys(keys)


def _count(v: Any) -> int:
    if isinstance(v, (list, tuple)):
        return len(v)
    return 1


# ---------------------------------------------------------------------- opening
def _squeezed_frame_axes(series: Any, path: Any) -> tuple[int, int, int]:
    """(T, Y, X) of a series, or a ReaderError naming the offending axis and the fix."""
    shape, axes = tuple(series.shape), str(series.axes)
    if 0 in shape:
        raise ReaderError(
            f"{path}: the TIFF holds no frames (shape {shape}); the recording was not saved - export the "
            "movie again")
    kept = [(n, a) for n, a in zip(shape, axes) if n != 1 or a in "YX"]
    if "S" in [a for _, a in kept]:
        raise ReaderError(
            f"{path}: the image has a colour-sample axis S (axes {axes!r}, shape {shape}); "
            "napari-sbtt needs one grey-level channel per frame - save a single channel "
            "(e.g. tifffile.imwrite('movie_ch0.tif', tifffile.imread(path)[..., 0]))"
        )
    if len(kept) < 2 or [a for _, a in kept[-2:]] != ["Y", "X"]:
        raise ReaderError(
            f"{path}: cannot find the Y and X axes of the frames (axes {axes!r}, shape {shape}); "
            "save the movie as a plain multi-page TIFF of shape (T, Y, X)"
        )
    if len(kept) == 2:
        raise ReaderError(
            f"{path}: this is a single 2-D image (shape {shape}), not a movie; napari-sbtt "
            "needs a (T, Y, X) stack of frames - export every frame of the recording"
        )
    extra = kept[:-2]
    if len(extra) == 1:
        n, a = extra[0]
        if a == "C":
            raise ReaderError(
                f"{path}: the leading axis is a channel axis C of length {n} (axes {axes!r}), not "
                "time; napari-sbtt needs a (T, Y, X) movie - save one channel's frames as a "
                "multi-page TIFF"
            )
        return n, kept[-2][0], kept[-1][0]
    named = ", ".join(f"{a} ({_AXIS_NAMES.get(a, 'unknown')}, length {n})" for n, a in extra)
    raise ReaderError(
        f"{path}: the movie has more axes than (T, Y, X): {named} (axes {axes!r}, shape {shape}). "
        "napari-sbtt analyses one channel of one plane - save that as its own (T, Y, X) TIFF "
        "first, e.g. tifffile.imwrite('plane0_ch0.tif', tifffile.imread(path)[:, 0, 0])"
    )


def _scanimage_shape(tif: tifffile.TiffFile, keys: dict[str, Any], path: Any) -> tuple[int, int, int]:
    n_pages = len(tif.pages)
    ny, nx = check_image_shape(tif.pages.first.shape[:2], path, "ImageLength/ImageWidth")
    if len(tif.pages.first.shape) != 2:
        raise ReaderError(f"{path}: ScanImage pages of shape {tif.pages.first.shape} are not 2-D frames")
    channels = _count(keys.get("SI.hChannels.channelSave", 1))
    if channels > 1:
        raise ReaderError(
            f"{path}: ScanImage saved {channels} channels (SI.hChannels.channelSave = "
            f"{keys.get('SI.hChannels.channelSave')}); their frames are interleaved along the page "
            "axis (C). napari-sbtt needs one channel - save only the functional channel in ScanImage, "
            f"or split it: tifffile.imwrite('ch1.tif', tifffile.imread(path)[0::{channels}])"
        )
    fastz = _as_bool(keys.get("SI.hFastZ.enable"))
    slices = _as_float(keys.get("SI.hStackManager.actualNumSlices", keys.get("SI.hStackManager.numSlices")))
    if fastz and slices is not None and slices > 1:
        raise ReaderError(
            f"{path}: ScanImage recorded fast-Z volumes of {int(slices)} planes (SI.hFastZ.enable = true, "
            "SI.hStackManager.numSlices); the pages interleave planes (Z). napari-sbtt analyses one "
            f"plane - split it, e.g. tifffile.imwrite('plane0.tif', tifffile.imread(path)[0::{int(slices)}])"
        )
    return n_pages, int(ny), int(nx)


def _strided_memmap(
    path: Any, pages: list[Any], shape: tuple[int, int, int], dtype: np.dtype
) -> np.ndarray | None:
    """A read-only (T, Y, X) view on the file when every page is one uncompressed block at a fixed stride.

    ScanImage and many acquisition programs write each frame's pixels followed by
    its IFD, so the frames are evenly spaced but not contiguous. None when the
    layout does not allow it (compressed, tiled, uneven spacing).
    """
    n_t, n_y, n_x = shape
    if len(pages) != n_t or n_t == 0 or any(pg is None for pg in pages):
        return None
    try:
        kf = pages[0].keyframe
        if (
            kf.compression != 1
            or kf.fillorder != 1
            or kf.is_tiled
            or kf.samplesperpixel != 1
            or kf.bitspersample != dtype.itemsize * 8
            or tuple(kf.shape) != (n_y, n_x)
        ):
            return None
        frame_bytes = n_y * n_x * dtype.itemsize
        starts = np.empty(n_t, dtype=np.int64)
        for i, pg in enumerate(pages):
            offs, counts = pg.dataoffsets, pg.databytecounts
            if sum(counts) != frame_bytes:
                return None
            for j in range(1, len(offs)):
                if offs[j] != offs[j - 1] + counts[j - 1]:
                    return None
            starts[i] = offs[0]
    except (AttributeError, TypeError, IndexError):
        return None
    stride = int(starts[1] - starts[0]) if n_t > 1 else frame_bytes
    if n_t > 1 and (stride < frame_bytes or not np.all(np.diff(starts) == stride)):
        return None
    length = (n_t - 1) * stride + frame_bytes
    base = np.memmap(path, dtype=np.uint8, mode="r", offset=int(starts[0]), shape=(length,))
    arr = np.ndarray(
        shape=shape, dtype=dtype, buffer=base, offset=0,
        strides=(stride, n_x * dtype.itemsize, dtype.itemsize),
    )
    arr.flags.writeable = False
    return arr


def _open(path: str | os.PathLike) -> tuple[Any, MovieInfo]:
    p = as_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"TIFF file not found: {p}")
    try:
        tif = tifffile.TiffFile(p)
    except Exception as e:  # noqa: BLE001 - tifffile raises several types for non-TIFF input
        raise ReaderError(f"{p} is not a readable TIFF file ({e}); check the file or re-export it") from None
    try:
        keys: dict[str, Any] = {}
        source: str | None = None
        first = tif.pages.first
        if first.is_scanimage or (first.software or "").startswith("SI."):
            source = "scanimage"
            keys = _scanimage_keys(tif)
            shape = _scanimage_shape(tif, keys, p)
            axes = "TYX"
            pages = list(tif.pages)
            dtype = first.dtype
            if len(pages) != shape[0]:
                raise ReaderError(f"{p}: found {len(pages)} pages but expected {shape[0]} frames")
            contiguous = False
        else:
            series = tif.series[0]
            shape = _squeezed_frame_axes(series, p)
            axes = str(series.axes)
            dtype = series.dtype
            if tif.is_imagej:
                source = "imagej"
                keys = dict(tif.imagej_metadata or {})
            pages = [pg for pg in series.pages]
            contiguous = series.dataoffset is not None
        info_kw = _timing_from_keys(keys, source)
        byteorder_dtype = np.dtype(dtype).newbyteorder(tif.byteorder)
        movie: Any = None
        if contiguous:
            try:
                movie = tifffile.memmap(p, series=0, mode="r").reshape(shape)
            except (ValueError, OSError):
                movie = None
        if movie is None:
            movie = _strided_memmap(p, pages, shape, byteorder_dtype)
        memmapped = movie is not None
        if movie is None:
            if len(pages) != shape[0] or any(pg is None for pg in pages):
                raise ReaderError(
                    f"{p}: the {shape[0]} frames are not stored one per page ({len(pages)} pages) and "
                    "the data are not contiguous, so they cannot be read lazily; re-save the movie "
                    "as a multi-page TIFF, e.g. tifffile.imwrite(out, tifffile.imread(path))"
                )
            check_image_shape(shape[1:], p, "ImageLength/ImageWidth")  # each decoded frame is allocated
            movie = TiffPageStack(tif, pages, shape[1:], dtype)
        else:
            tif.close()
        info = MovieInfo(
            path=str(p), shape=tuple(int(s) for s in shape), dtype=np.dtype(dtype).str, axes=axes,
            memmapped=memmapped, source=source, metadata=keys if source == "scanimage" else
            {k: v for k, v in keys.items() if isinstance(v, (int, float, str, bool))},
            **info_kw,
        )
        return movie, info
    except BaseException:
        tif.close()
        raise


def _timing_from_keys(keys: dict[str, Any], source: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if source == "imagej":
        finterval = _as_float(keys.get("finterval"))
        fps = _as_float(keys.get("fps"))
        if finterval and finterval > 0:
            out["frame_rate_hz"] = 1.0 / finterval
        elif fps and fps > 0:
            out["frame_rate_hz"] = fps
        return out
    if source != "scanimage":
        return out
    line = _as_float(_lookup(keys, ["SI.hRoiManager.linePeriod"], ("lineperiod", "scanlineperiod")))
    if line is None:
        ms = _as_float(keys.get("state.acq.msPerLine"))
        line = ms / 1000.0 if ms is not None else None
    period = _as_float(_lookup(keys, ["SI.hRoiManager.scanFramePeriod"], ("scanframeperiod",)))
    rate = _as_float(_lookup(keys, ["SI.hRoiManager.scanFrameRate", "state.acq.frameRate"], ("scanframerate",)))
    if period is not None and period > 0:
        out["frame_rate_hz"] = 1.0 / period
    elif rate is not None and rate > 0:
        out["frame_rate_hz"] = rate
    lpf = _as_float(_lookup(keys, ["SI.hRoiManager.linesPerFrame", "state.acq.linesPerFrame"], ("linesperframe",)))
    bidi = _as_bool(_lookup(keys, ["SI.hScan2D.bidirectional", "state.acq.bidirectionalScan"],
                            ("bidirectional", "bidirectionalscan")))
    fly = _as_float(_lookup(keys, ["SI.hScan2D.flybackTimePerFrame"], ("flybacktimeperframe",)))
    if line is not None and line > 0:
        out["line_period_s"] = line
    if lpf is not None and lpf > 0:
        out["lines_per_frame"] = int(lpf)
    if bidi is not None:
        out["bidirectional"] = bidi
    if fly is not None and fly >= 0:
        out["flyback_s"] = fly
    return out


def open_movie(path: str | os.PathLike) -> tuple[Any, MovieInfo]:
    """Open a (T, Y, X) TIFF movie without loading it.

    Parameters
    ----------
    path
        A multi-page TIFF or BigTIFF (plain, ImageJ hyperstack with singleton
        channel/slice axes, or ScanImage).

    Returns
    -------
    movie
        A read-only memory-mapped array of shape (T, Y, X) when every frame is
        stored uncompressed in one block (contiguous, or evenly spaced between
        IFDs as ScanImage writes them), else a :class:`TiffPageStack` (lazy,
        one page decoded per frame sliced; close it when done).
    info
        :class:`MovieInfo` with the acquisition timing the file states.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ReaderError
        For a file that is not a TIFF, a single 2-D image, or a movie with
        extra axes (channels, z-planes, colour samples); the message names the
        axis and how to save a (T, Y, X) movie instead.
    """
    return _open(path)


def read_movie_info(path: str | os.PathLike) -> MovieInfo:
    """Only the :class:`MovieInfo` of a TIFF movie (the file is closed again)."""
    movie, info = _open(path)
    if isinstance(movie, TiffPageStack):
        movie.close()
    return info


def scan_pattern_from_tiff(
    path: str | os.PathLike,
    *,
    detect_unacquired_rows: bool = True,
    chunk_frames: int = 256,
) -> ScanPattern | None:
    """The scan pattern a ScanImage TIFF was acquired with, or None when the file does not say.

    For a ScanImage file this is a full raster of ``Y`` rows over ``T`` sweeps
    with ScanImage's line period, flyback, frame clock (``scanFramePeriod``,
    else ``1 / scanFrameRate``) and bidirectional flag. With
    ``detect_unacquired_rows`` the movie is read ``chunk_frames`` frames at a
    time, and when some rows are entirely NaN or zero in some frames, those
    rows are treated as not acquired (:meth:`ScanPattern.from_movie` timing:
    the acquired rows of each sweep are scanned top to bottom, one line period
    each).

    Other TIFFs (no line timing in the metadata) give None: the caller must
    ask the user for the line period and frame period.

    Raises
    ------
    ReaderError
        When the ScanImage timing contradicts the movie (e.g. the frame period
        is shorter than ``Y`` lines) or the file uses multi-ROI scanning, which
        cannot be timed as a single raster.
    """
    movie, info = _open(path)
    try:
        if info.source != "scanimage" or info.line_period_s is None:
            return None
        keys = info.metadata
        if _as_bool(keys.get("SI.hRoiManager.mroiEnable")):
            raise ReaderError(
                f"{info.path}: multi-ROI scanning (SI.hRoiManager.mroiEnable = true) stacks several "
                "scanfields with fly-to lines in one image, which cannot be timed as one raster; "
                "build the ScanPattern yourself with ScanPattern.from_rows"
            )
        n_t, n_y, _ = info.shape
        line = info.line_period_s
        frame_period = info.frame_period_s
        flyback = info.flyback_s or 0.0
        if info.lines_per_frame is not None and info.lines_per_frame != n_y:
            warnings.warn(
                f"{info.path}: SI.hRoiManager.linesPerFrame = {info.lines_per_frame} but the frames "
                f"have {n_y} rows; timing rows by the movie's {n_y} rows",
                stacklevel=2,
            )
        if frame_period is not None and frame_period < n_y * line * (1 - 1e-6):
            raise ReaderError(
                f"{info.path}: the ScanImage frame period {frame_period:.6g} s is shorter than "
                f"{n_y} lines x SI.hRoiManager.linePeriod {line:.6g} s; the metadata do not match "
                "this movie - pass the timing by hand with ScanPattern.full_raster"
            )
        if frame_period is not None:
            frame_period = max(frame_period, n_y * line)
        kw = dict(flyback=flyback, frame_period=frame_period, bidirectional=bool(info.bidirectional))
        if detect_unacquired_rows:
            mask = infer_row_mask(movie, chunk_frames=chunk_frames)
            if not mask.all():
                return ScanPattern.from_mask(mask, line, **kw)
        return ScanPattern.full_raster(n_y, n_t, line, **kw)
    finally:
        if isinstance(movie, TiffPageStack):
            movie.close()
