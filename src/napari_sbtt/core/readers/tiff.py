"""TIFF movies: memory-mapped or lazily paged (T, Y, X) arrays, plus ScanImage timing.

``open_movie`` never loads a whole file: an uncompressed, contiguous TIFF is
memory-mapped with tifffile; anything else (compressed, tiled, pages separated
by IFDs, as ScanImage writes them) is wrapped in :class:`TiffPageStack`, which
decodes only the pages that are sliced.

ScanImage metadata
------------------
Parsed with tifffile's own ScanImage parsers. ScanImage (2016 and later) writes
BigTIFF files whose header is followed, at byte 16, by a block holding the
non-varying frame data (MATLAB style ``SI.hRoiManager.linePeriod = 6.3e-05``
lines) and the ROI groups (JSON); tifffile reads it as
``TiffFile.scanimage_metadata`` (``FrameData``, ``RoiGroups``). The same two
strings are repeated in the Software and Artist tags of every page, which we
parse (:func:`tifffile.matlabstr2py`, JSON) when the block is missing. The
ImageDescription of each page holds the *varying* frame data: ``frameNumbers``,
``acquisitionNumbers`` and ``frameTimestamps_sec`` (seconds since the
acquisition trigger). ScanImage 3 to 5 keep everything in the ImageDescription
(``state.acq.frameRate=7.8`` / ``scanimage.SI5.scanFrameRate = 30`` lines,
also parsed with :func:`tifffile.matlabstr2py`).

Keys used (seconds unless stated): ``SI.hRoiManager.linePeriod`` (one line,
one direction), ``SI.hRoiManager.scanFramePeriod`` / ``scanFrameRate`` (Hz),
``SI.hRoiManager.linesPerFrame``, ``SI.hScan2D.bidirectional``,
``SI.hScan2D.flybackTimePerFrame``, ``SI.hChannels.channelSave`` (saved
channels), ``SI.hFastZ.enable`` / ``SI.hStackManager.numSlices`` (volumes),
``SI.hRoiManager.mroiEnable`` (multi-ROI). ScanImage 3 files
(``state.acq.frameRate``, ``state.acq.msPerLine`` in milliseconds,
``state.acq.linesPerFrame``, ``state.acq.bidirectionalScan``,
``state.acq.savingChannelN``) are read too.

Frame times: when every page states ``frameTimestamps_sec``, the scan pattern
starts each sweep at its timestamp (:class:`~napari_sbtt.core.scan.ScanPattern`
``sweep_starts``) instead of on the nominal frame clock; timestamps that agree
with the clock to 1 microsecond give the clock (starting at the first timestamp).

Files split by ScanImage (``logFramesPerFile``: ``name_00001_00001.tif``,
``name_00001_00002.tif``, ...): opening any of them opens the whole
acquisition, as one movie, when the neighbouring files (same name up to the
trailing number, consecutive numbers) hold the same non-varying metadata and
frame size, the same ``acquisitionNumbers`` and frame numbers that continue
from one file to the next.

Multi-ROI (mesoscope, ``SI.hRoiManager.mroiEnable = true``) files stack several
scanfields with fly-to lines in one page; they are refused with a message
(not supported yet).
"""

from __future__ import annotations

import json
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..numbers import finite_or_none
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
    frame_timestamps_s
        (T,) float64 start time of each frame in seconds (ScanImage
        ``frameTimestamps_sec``), or None when the file does not state them for
        every frame.
    files
        Every file of the movie in frame order (more than one for a recording
        that ScanImage split across files); ``path`` is the file that was opened.
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
    frame_timestamps_s: np.ndarray | None = field(default=None, compare=False, repr=False)
    files: tuple[str, ...] = ()

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

    def __init__(self, tif: tifffile.TiffFile | list[tifffile.TiffFile], pages: list[Any],
                 frame_shape: tuple[int, int], dtype: np.dtype) -> None:
        self._tifs = list(tif) if isinstance(tif, (list, tuple)) else [tif]
        self._tif = self._tifs[0]
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
            if any(t.filehandle.closed for t in self._tifs):
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
        """Close the underlying file(s)."""
        for t in self._tifs:
            t.close()

    def __enter__(self) -> "TiffPageStack":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TiffPageStack(shape={self.shape}, dtype={self.dtype}, path={self.path!r})"


# ---------------------------------------------------------------------- ScanImage text
def parse_scanimage_text(text: str) -> dict[str, Any]:
    """Parse ScanImage ``key = value`` metadata lines into a flat dict (:func:`tifffile.matlabstr2py`).

    Handles the Software-tag / header block format of ScanImage 2016+
    (``SI.hRoiManager.linePeriod = 6.3e-05``), the per-frame ImageDescription
    (``frameTimestamps_sec = 0.033``), the ImageDescription of ScanImage 4/5
    (``scanimage.SI5.scanFrameRate = 30``) and of ScanImage 3
    (``state.acq.frameRate=7.8`` lines separated by carriage returns). Values are
    tifffile's: int, float, bool, str, or nested lists for MATLAB arrays
    (``[1;2]`` -> ``[[1], [2]]``). Text tifffile cannot parse gives ``{}``.
    """
    if not text:
        return {}
    if "\n" not in text and "\r" not in text:
        text += "\n"  # one line: still a structure, not a bare value
    try:
        out = tifffile.matlabstr2py(text)
    except Exception:  # noqa: BLE001 - tifffile does not validate; damaged text is just not metadata
        return {}
    return out if isinstance(out, dict) else {}


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


def _as_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return None


def _scanimage_header(tif: tifffile.TiffFile) -> tuple[dict[str, Any], Any, str]:
    """(non-varying keys, ROI groups or None, the header text) of a ScanImage file.

    ScanImage 2016+: tifffile's ``scanimage_metadata`` (the header block), else the
    Software (frame data) and Artist (ROI groups) tags. Earlier versions: the first
    ImageDescription. The header text identifies the acquisition settings (files of
    one split recording share it).
    """
    page = tif.pages.first
    software = page.software or ""
    keys: dict[str, Any] = {}
    roi_groups = None
    if software.startswith("SI."):
        keys.update(parse_scanimage_text(software))
        header_text = software
        try:
            meta = tif.scanimage_metadata
        except Exception:  # noqa: BLE001 - a damaged header block is not fatal, the tags still help
            meta = None
        if meta:
            if isinstance(meta.get("FrameData"), dict):
                keys.update(meta["FrameData"])
            roi_groups = meta.get("RoiGroups")
        artist = page.tags.valueof(315) if roi_groups is None else None  # Artist: ROI groups (JSON)
        if isinstance(artist, str) and artist.lstrip().startswith("{"):
            try:
                roi_groups = json.loads(artist).get("RoiGroups")
            except (ValueError, AttributeError):
                roi_groups = None
    else:  # ScanImage 3 to 5: the header is in the description
        header_text = page.description or ""
        keys.update(parse_scanimage_text(header_text))
    return _normalise_si_keys(keys), roi_groups, header_text


_FRAME_LINE = re.compile(r"^[ \t]*(?:frameNumbers|acquisitionNumbers|frameTimestamps_sec)[ \t]*=.*$", re.M)


def _frame_data(pages: list[Any]) -> dict[str, np.ndarray]:
    """Per-page ``frameNumbers``, ``acquisitionNumbers`` and ``frameTimestamps_sec`` (NaN where absent).

    Only those lines of each ImageDescription are handed to tifffile's parser, so a
    long ScanImage 4/5 description costs no more than a short one.
    """
    n = len(pages)
    out = {k: np.full(n, np.nan) for k in ("frameNumbers", "acquisitionNumbers", "frameTimestamps_sec")}
    for i, pg in enumerate(pages):
        lines = _FRAME_LINE.findall(getattr(pg, "description", "") or "")
        if not lines:
            continue
        d = parse_scanimage_text("\n".join(lines))
        for k, arr in out.items():
            v = finite_or_none(d.get(k))
            if v is not None:
                arr[i] = v
    return out


def _roi_count(roi_groups: Any) -> int | None:
    """Number of imaging ROIs (scanfields) in ScanImage's RoiGroups, or None when not stated."""
    try:
        rois = roi_groups["imagingRoiGroup"]["rois"]
    except (KeyError, TypeError):
        return None
    return len(rois) if isinstance(rois, list) else 1


def _count(v: Any) -> int:
    """How many channels a ScanImage channel list names (``1``, ``[1;2]`` -> [[1], [2]], ``[1 2]``)."""
    if isinstance(v, (list, tuple)):
        return int(np.asarray(v, dtype=object).size) if v else 0
    return 1


_CHUNK_NAME = re.compile(r"^(?P<prefix>.*?)(?P<num>\d+)(?P<ext>\.tiff?)$", re.IGNORECASE)


def _numbered_neighbours(p: Path) -> tuple[list[Path], int]:
    """Files named like ``p`` up to its trailing number, consecutive numbers, in order; and p's index."""
    m = _CHUNK_NAME.match(p.name)
    if m is None:
        return [p], 0
    prefix, num, ext = m.group("prefix"), m.group("num"), m.group("ext")
    found: dict[int, Path] = {}
    try:
        for q in p.parent.iterdir():
            mq = _CHUNK_NAME.match(q.name)
            if (mq is not None and mq.group("prefix") == prefix and mq.group("ext") == ext
                    and len(mq.group("num")) == len(num) and q.is_file()):
                found[int(mq.group("num"))] = q
    except OSError:
        return [p], 0
    k = int(num)
    lo, hi = k, k
    while lo - 1 in found:
        lo -= 1
    while hi + 1 in found:
        hi += 1
    return [found[i] if i != k else p for i in range(lo, hi + 1)], k - lo


def _same_acquisition(prev: dict[str, np.ndarray], nxt: dict[str, np.ndarray]) -> bool:
    """True when ``nxt``'s frames continue ``prev``'s: same acquisition, next frame number."""
    fn_a, fn_b = prev["frameNumbers"], nxt["frameNumbers"]
    if not (fn_a.size and fn_b.size and np.isfinite(fn_a[-1]) and np.isfinite(fn_b[0])):
        return False
    if fn_b[0] != fn_a[-1] + 1:
        return False
    acq_a, acq_b = prev["acquisitionNumbers"][-1], nxt["acquisitionNumbers"][0]
    return bool(np.isnan(acq_a) and np.isnan(acq_b)) or acq_a == acq_b


def _split_recording(p: Path, tif: tifffile.TiffFile, header: str, pages: list[Any],
                     frames: dict[str, np.ndarray]) -> tuple[list[Any], list[Any], dict[str, np.ndarray]]:
    """The files of a recording ScanImage split across files: (TiffFiles, pages, frame data), in order.

    Starts from ``p`` (already open as ``tif``) and adds the numbered neighbours while
    each continues the acquisition (:func:`_same_acquisition`) with the same header text,
    frame shape and dtype. Neighbours that do not are left alone (a separate recording).
    """
    names, k = _numbered_neighbours(p)
    if len(names) == 1 or not np.isfinite(frames["frameNumbers"]).all():
        return [tif], pages, frames
    shape, dtype = tif.pages.first.shape, tif.pages.first.dtype
    parts: list[tuple[Any, list[Any], dict[str, np.ndarray]]] = [(tif, pages, frames)]

    def load(q: Path) -> tuple[Any, list[Any], dict[str, np.ndarray]] | None:
        try:
            t = tifffile.TiffFile(q)
        except Exception:  # noqa: BLE001 - an unreadable neighbour is not part of the recording
            return None
        try:
            first = t.pages.first
            if (first.software or "") != header or first.shape != shape or first.dtype != dtype:
                t.close()
                return None
            pg = list(t.pages)
            return t, pg, _frame_data(pg)
        except Exception:  # noqa: BLE001
            t.close()
            return None

    for q in reversed(names[:k]):  # earlier files, nearest first
        got = load(q)
        if got is None or not _same_acquisition(got[2], parts[0][2]):
            if got is not None:
                got[0].close()
            break
        parts.insert(0, got)
    for q in names[k + 1:]:
        got = load(q)
        if got is None or not _same_acquisition(parts[-1][2], got[2]):
            if got is not None:
                got[0].close()
            break
        parts.append(got)
    tifs = [t for t, _, _ in parts]
    all_pages = [pg for _, pgs, _ in parts for pg in pgs]
    merged = {key: np.concatenate([f[key] for _, _, f in parts]) for key in frames}
    return tifs, all_pages, merged


# ---------------------------------------------------------------------- opening
def _squeezed_frame_axes(series: Any, path: Any) -> tuple[int, int, int]:
    """(T, Y, X) of a series, or a ReaderError naming the offending axis and the fix."""
    shape, axes = tuple(series.shape), str(series.axes)
    if 0 in shape:
        raise ReaderError(
            f"{path}: the TIFF holds no frames (shape {shape}); the recording was not saved - export the "
            "movie again")
    kept = [(n, a) for n, a in zip(shape, axes, strict=False) if n != 1 or a in "YX"]
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


def _refuse_truncated(path: Path, shape: tuple[int, ...], dtype: Any, pages: list[Any]) -> None:
    """Raise a ReaderError naming a truncated file: fewer pages than frames, uncompressed, and the
    file shorter than the frames its header describes (an interrupted copy or download)."""
    first = next((pg for pg in pages if pg is not None), None)
    if first is None or int(getattr(first, "compression", 1)) != 1:
        return  # compressed data may be smaller than the frames; nothing to conclude
    need = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    have = path.stat().st_size
    if have < need:
        raise ReaderError(
            f"{path}: the file is truncated: its header describes {shape[0]} frames of "
            f"{'x'.join(str(int(n)) for n in shape[1:])} ({need} bytes of pixels) but the file holds "
            f"{have} bytes; copy it again from the original (an interrupted copy or download)")


def _refuse_mroi(path: Any, keys: dict[str, Any], roi_groups: Any) -> None:
    """One-line ReaderError for a multi-ROI (mesoscope) ScanImage file, which we cannot time or split yet."""
    if not _as_bool(keys.get("SI.hRoiManager.mroiEnable")):
        return
    n = _roi_count(roi_groups)
    rois = f", {n} scanfield(s) in RoiGroups" if n is not None else ""
    raise ReaderError(
        f"{path}: multi-ROI (mesoscope) ScanImage files (SI.hRoiManager.mroiEnable = true{rois}) are not "
        "supported yet: each page stacks the scanfields with fly-to lines, which cannot be timed as one "
        "raster - cut one scanfield into its own (T, Y, X) movie and build its ScanPattern with "
        "ScanPattern.from_rows")


def _scanimage_shape(first: Any, n_pages: int, keys: dict[str, Any], path: Any) -> tuple[int, int, int]:
    if len(first.shape) != 2:
        raise ReaderError(f"{path}: ScanImage pages of shape {first.shape} are not 2-D frames")
    ny, nx = check_image_shape(first.shape[:2], path, "ImageLength/ImageWidth")
    channels = _count(keys.get("SI.hChannels.channelSave", 1))
    field_name = "SI.hChannels.channelSave"
    si3 = [k for k in (f"state.acq.savingChannel{i}" for i in range(1, 5)) if _as_bool(keys.get(k))]
    if "SI.hChannels.channelSave" not in keys and si3:
        channels, field_name = len(si3), " / ".join(si3)
    if channels > 1:
        shown = keys.get("SI.hChannels.channelSave") if field_name == "SI.hChannels.channelSave" else "1"
        raise ReaderError(
            f"{path}: ScanImage saved {channels} channels ({field_name} = "
            f"{shown}); their frames are interleaved along the page "
            "axis (C). napari-sbtt needs one channel - save only the functional channel in ScanImage, "
            f"or split it: tifffile.imwrite('ch1.tif', tifffile.imread(path)[0::{channels}])"
        )
    fastz = _as_bool(keys.get("SI.hFastZ.enable"))
    slices = finite_or_none(keys.get("SI.hStackManager.actualNumSlices", keys.get("SI.hStackManager.numSlices")))
    if fastz and slices is not None and slices > 1:
        raise ReaderError(
            f"{path}: ScanImage recorded fast-Z volumes of {int(slices)} planes (SI.hFastZ.enable = true, "
            "SI.hStackManager.numSlices); the pages interleave planes (Z). napari-sbtt analyses one "
            f"plane - split it, e.g. tifffile.imwrite('plane0.tif', tifffile.imread(path)[0::{int(slices)}])"
        )
    return int(n_pages), int(ny), int(nx)


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
    tifs = [tif]
    try:
        keys: dict[str, Any] = {}
        source: str | None = None
        timestamps: np.ndarray | None = None
        first = tif.pages.first
        if first.is_scanimage or (first.software or "").startswith("SI."):
            source = "scanimage"
            keys, roi_groups, header = _scanimage_header(tif)
            _refuse_mroi(p, keys, roi_groups)
            pages = list(tif.pages)
            frames = _frame_data(pages)
            if (first.software or "").startswith("SI."):
                tifs, pages, frames = _split_recording(p, tif, header, pages, frames)
            shape = _scanimage_shape(first, len(pages), keys, p)
            axes = "TYX"
            dtype = first.dtype
            ts = frames["frameTimestamps_sec"]
            timestamps = ts if ts.size and np.isfinite(ts).all() else None
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
        if movie is None and len(tifs) == 1:
            movie = _strided_memmap(p, pages, shape, byteorder_dtype)
        memmapped = movie is not None
        if movie is None:
            if len(pages) != shape[0] or any(pg is None for pg in pages):
                _refuse_truncated(p, shape, dtype, pages)
                raise ReaderError(
                    f"{p}: the {shape[0]} frames are not stored one per page ({len(pages)} pages) and "
                    "the data are not contiguous, so they cannot be read lazily; re-save the movie "
                    "as a multi-page TIFF, e.g. tifffile.imwrite(out, tifffile.imread(path))"
                )
            check_image_shape(shape[1:], p, "ImageLength/ImageWidth")  # each decoded frame is allocated
            movie = TiffPageStack(tifs, pages, shape[1:], dtype)
        else:
            tif.close()
        info = MovieInfo(
            path=str(p), shape=tuple(int(s) for s in shape), dtype=np.dtype(dtype).str, axes=axes,
            memmapped=memmapped, source=source, metadata=keys if source == "scanimage" else
            {k: v for k, v in keys.items() if isinstance(v, (int, float, str, bool))},
            frame_timestamps_s=timestamps, files=tuple(str(t.filehandle.path) for t in tifs),
            **info_kw,
        )
        return movie, info
    except BaseException:
        for t in tifs:
            t.close()
        raise


def _timing_from_keys(keys: dict[str, Any], source: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if source == "imagej":
        finterval = finite_or_none(keys.get("finterval"))
        fps = finite_or_none(keys.get("fps"))
        if finterval and finterval > 0:
            out["frame_rate_hz"] = 1.0 / finterval
        elif fps and fps > 0:
            out["frame_rate_hz"] = fps
        return out
    if source != "scanimage":
        return out
    line = finite_or_none(_lookup(keys, ["SI.hRoiManager.linePeriod"], ("lineperiod", "scanlineperiod")))
    if line is None:
        ms = finite_or_none(keys.get("state.acq.msPerLine"))
        line = ms / 1000.0 if ms is not None else None
    period = finite_or_none(_lookup(keys, ["SI.hRoiManager.scanFramePeriod"], ("scanframeperiod",)))
    rate = finite_or_none(_lookup(keys, ["SI.hRoiManager.scanFrameRate", "state.acq.frameRate"], ("scanframerate",)))
    if period is not None and period > 0:
        out["frame_rate_hz"] = 1.0 / period
    elif rate is not None and rate > 0:
        out["frame_rate_hz"] = rate
    lpf = finite_or_none(_lookup(keys, ["SI.hRoiManager.linesPerFrame", "state.acq.linesPerFrame"], ("linesperframe",)))
    bidi = _as_bool(_lookup(keys, ["SI.hScan2D.bidirectional", "state.acq.bidirectionalScan"],
                            ("bidirectional", "bidirectionalscan")))
    fly = finite_or_none(_lookup(keys, ["SI.hScan2D.flybackTimePerFrame"], ("flybacktimeperframe",)))
    if line is not None and line > 0:
        out["line_period_s"] = line
    if lpf is not None and lpf > 0:
        out["lines_per_frame"] = int(lpf)
    if bidi is not None:
        out["bidirectional"] = bidi
    if fly is not None and fly >= 0:
        out["flyback_s"] = fly
    return out


_CLOCK_TOLERANCE_S = 1e-6  # frame timestamps this close to the nominal clock give the clock


def _timed(info: MovieInfo, build: Any) -> ScanPattern:
    """``build()``, with a bad frame timestamp reported as a ReaderError naming the file and the field."""
    try:
        return build()
    except ValueError as e:
        if info.frame_timestamps_s is None:
            raise
        raise ReaderError(
            f"{info.path}: the ScanImage frame timestamps (frameTimestamps_sec) cannot time this movie ({e}); "
            "pass the timing yourself (frame_period= / line_period=, --frame-period / --line-period) to use "
            "the nominal frame clock") from None


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
    else ``1 / scanFrameRate``) and bidirectional flag. When every frame states
    its ``frameTimestamps_sec``, the sweeps start at those times
    (``ScanPattern(sweep_starts=...)``; timestamps within 1 microsecond of the
    nominal clock give the clock, started at the first timestamp). With
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
        is shorter than ``Y`` lines, or frame timestamps closer together than
        a frame's lines) or the file uses multi-ROI scanning, which cannot be
        timed as a single raster.
    """
    movie, info = _open(path)
    try:
        if info.source != "scanimage" or info.line_period_s is None:
            return None
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
        kw: dict[str, Any] = dict(flyback=flyback, frame_period=frame_period, bidirectional=bool(info.bidirectional))
        ts = info.frame_timestamps_s
        if ts is not None:
            clock = None if frame_period is None else ts[0] + np.arange(ts.size) * frame_period
            if clock is not None and np.max(np.abs(ts - clock)) <= _CLOCK_TOLERANCE_S:
                kw["t0"] = float(ts[0])
            else:
                kw["sweep_starts"] = ts
        if detect_unacquired_rows:
            mask = infer_row_mask(movie, chunk_frames=chunk_frames)
            if not mask.all():
                return _timed(info, lambda: ScanPattern.from_mask(mask, line, **kw))
        return _timed(info, lambda: ScanPattern.full_raster(n_y, n_t, line, **kw))
    finally:
        if isinstance(movie, TiffPageStack):
            movie.close()
