"""ROI observations on the fine grid, from a movie or from per-frame traces.

:func:`extract_observations` streams a (T, Y, X) movie in chunks of frames and,
for every sweep and ROI, takes the mean over the ROI's pixels in the rows that
sweep acquired; :func:`observations_from_traces` does the same for per-frame
ROI traces computed elsewhere (suite2p ``F.npy``, ...). Both place each sample
in the fine-grid bin (``pattern.fine_grid(factor)``) of its acquisition time
and return :class:`Observations`.

Rules
-----
- *Acquisition time of a sample*: the mean acquisition time of the pixels it
  averages, each pixel timed as in :mod:`napari_sbtt.core.scan` (row centre
  plus the pixel's offset along its line, mirrored on backward lines of
  bidirectional scans).
- *Partly acquired ROIs*: a sweep observes an ROI only when at least
  ``min_coverage`` (default 0.5) of the ROI's pixels lie in rows acquired in
  that sweep. The mean over a thin edge of an ROI is a biased sample: edge
  pixels are dimmer, carry more neuropil and out-of-focus light, and its time
  is that of the edge rows only. Requiring half of the pixels keeps every
  sample representative of the ROI's bulk while still letting an ROI that
  straddles a strip boundary be observed from either side.
- *Two samples in one bin* (possible only when sweeps have different
  durations, so that the grid's ``frame_period`` is their mean) are averaged,
  values and times alike.
- *Missing data*: NaN, everywhere.

Chunks
------
Each ROI is split into (ROI, row) *segments*. For every chunk of frames, only
the pixels of segments whose row the sweep acquired are gathered (``np.take``
straight from the movie: a memory-mapped movie is never copied, and pages of
rows a sweep did not acquire are not even touched) and summed per segment
(exactly, in integers, for integer movies); each ROI's (and annulus')
acquired segments are then added. For a periodic pattern (strips, a full
raster: sweeps ``k`` and ``k + len(cycle)`` acquire the same rows) one gather
per cycle phase covers all the chunk's sweeps of that phase; for
non-periodic ones (random lines) the acquired (sweep, segment) pairs are
gathered, or, when most pixels are acquired anyway, everything (see
:class:`napari_sbtt.core.gather.ChunkSums`; all ways give the same result bit for bit). So NaN (or
anything) in unacquired rows never reaches a sample. NaN in an acquired row
of an ROI or its neuropil annulus is an error. Peak memory is a few times the
chunk plus the result, independent of T; the pages of a memory-mapped movie
(``np.memmap``, ``tifffile.memmap``) are unmapped from the process once their
chunk is done, so its resident size does not grow to the file's size either
(the data stays in the page cache).

Progress protocol
-----------------
``progress`` is either an object with an ``update(n)`` method (a ``tqdm`` bar:
it is advanced by the number of frames in each chunk) or a callable
``progress(done_frames, total_frames)`` called after each chunk.

Modules
-------
The pieces live beside this one: :mod:`.observations` (the result type and its file),
:mod:`.segments` (what each sweep acquires of each ROI), :mod:`.gather` (summing a chunk of
frames over the acquired segments), :mod:`.binning` (samples onto the fine grid).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np

from .binning import GridAccumulator, max_per_bin
from .dff import DEFAULT_F0_PERCENTILE, DEFAULT_F0_WINDOW, delta_f_over_f_where_defined
from .errors import MissingTimingError, OptionError
from .gather import GATHER_MODES, ChunkSums, release_pages
from .neuropil import DEFAULT_INNER, DEFAULT_OUTER, annulus_pixels
from .observations import Observations
from .scan import ScanPattern
from .segments import RowTiming, Segments, SweepStats, segments_from_pixels

__all__ = [
    "Observations",
    "extract_observations",
    "observations_from_traces",
    "DEFAULT_MIN_COVERAGE",
    "GATHER_MODES",
]

#: default share of an ROI's pixels (or listed rows) that a sweep must acquire to observe it
DEFAULT_MIN_COVERAGE = 0.5

_CHUNK_BYTES = 32 * 1024 * 1024  # movie bytes per chunk when chunk_frames is not given

#: ``progress`` argument: a callable ``(done_frames, total_frames)`` or a tqdm-like ``update(n)``
Progress = Any


def _report(progress: Progress | None, step: int, done: int, total: int) -> None:
    if progress is None:
        return
    if hasattr(progress, "update"):
        progress.update(step)
    elif callable(progress):
        progress(done, total)
    else:
        raise TypeError(
            "progress must be a callable progress(done_frames, total_frames) or an object with "
            f"an update(n) method such as a tqdm bar; got {type(progress).__name__}"
        )


def _check_min_coverage(min_coverage: float) -> float:
    if not (isinstance(min_coverage, (int, float)) and 0 < min_coverage <= 1):
        raise ValueError(
            f"min_coverage must lie in (0, 1] (the share of an ROI that a sweep must acquire), "
            f"got {min_coverage}"
        )
    return float(min_coverage)


def _resolve_pattern(pattern: ScanPattern | None, frame_period: float | None, n_sweeps: int,
                     n_rows: int | None) -> ScanPattern:
    if pattern is not None:
        if frame_period is not None:
            raise ValueError(
                "give either a scan pattern or frame_period (for a full raster), not both; the "
                "pattern already fixes the timing"
            )
        if not isinstance(pattern, ScanPattern):
            raise TypeError(f"pattern must be a ScanPattern or None, got {type(pattern).__name__}")
        return pattern
    if frame_period is None:
        raise MissingTimingError(
            "without a scan pattern the timing is unknown: pass {scan} or, for a full-raster "
            "recording, {frame_period}", scan="pattern=ScanPattern(...)",
            frame_period="frame_period=<seconds per frame>")
    if not (isinstance(frame_period, (int, float)) and math.isfinite(frame_period) and frame_period > 0):
        raise ValueError(f"frame_period must be a positive number of seconds, got {frame_period}")
    if n_rows is None:
        raise ValueError("a full raster needs the number of rows: pass n_rows=<Y>")
    return ScanPattern.full_raster(n_rows, n_sweeps, frame_period / n_rows, frame_period=frame_period)


def _never_observed_error(ids: Sequence[int], min_coverage: float, extra: str = "",
                          what: str = "pixels") -> ValueError:
    ids = [int(i) for i in ids]
    return ValueError(
        f"the scan pattern never observes ROI id(s) {ids[:20]}{' ...' if len(ids) > 20 else ''}: "
        f"no sweep acquires at least min_coverage={min_coverage:g} of their {what}{extra}. Lower "
        "min_coverage, use a scan pattern that visits those rows, or drop those ROIs with roi_ids="
    )


def _finish(acc: GridAccumulator, roi_ids: np.ndarray, n_observed: np.ndarray, n_sweeps: int,
            *, neuropil: float | None, dff: bool, f0_window: float, f0_percentile: float,
            params: dict[str, Any]) -> Observations:
    values, times, neu = acc.finish()
    coverage = n_observed / float(n_sweeps)
    units = "raw" if neuropil is None else "raw, neuropil-corrected"
    if dff:
        values, kept, smooth = delta_f_over_f_where_defined(values, times, roi_ids, window=f0_window,
                                                            percentile=f0_percentile)
        units = "dF/F"
        if smooth > 1:
            warnings.warn(
                f"the dF/F baseline F0 ({f0_percentile:g}th percentile over {f0_window:g} s) reached zero on "
                f"some ROIs (dim ROIs, a subtracted background, shot noise); F0 is taken from each ROI's "
                f"samples averaged over {smooth} consecutive samples instead", stacklevel=3)
            params = {**params, "f0_smooth_samples": smooth}
        if not kept.all():
            left = [int(i) for i in np.asarray(roi_ids)[~kept]]
            warnings.warn(
                f"left out ROI id(s) {left[:20]}{' ...' if len(left) > 20 else ''}: their dF/F baseline "
                f"F0 reaches zero ({f0_percentile:g}th percentile over {f0_window:g} s"
                f"{f' of samples averaged over {smooth}' if smooth > 1 else ''}), so dF/F is "
                "undefined there (dim ROIs on a subtracted background); the other ROIs are fitted",
                stacklevel=3)
            values, times, coverage = values[:, kept], times[:, kept], coverage[kept]
            roi_ids = np.asarray(roi_ids)[kept]
            neu = None if neu is None else neu[:, kept]
            params = {**params, "dff_left_out": left}
    return Observations(
        values=values,
        times=acc.grid.centres,
        roi_ids=roi_ids,
        grid=acc.grid,
        sample_times=times,
        coverage=coverage,
        units=units,
        neuropil=neu,
        params=params,
    )


def _check_neuropil(neuropil: float | None) -> float | None:
    if neuropil is None:
        return None
    if isinstance(neuropil, bool) or not isinstance(neuropil, (int, float)) or not math.isfinite(neuropil):
        raise ValueError(
            f"neuropil must be None or a correction coefficient such as 0.7, got {neuropil!r}"
        )
    if not 0 <= neuropil <= 2:
        raise ValueError(f"the neuropil coefficient should lie in 0..2 (0.7 is usual), got {neuropil}")
    return float(neuropil)


# ---------------------------------------------------------------------------- movie
def _check_labels(labels: Any, movie_shape: tuple[int, ...]) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(
            f"labels must be a 2-D (Y, X) labels image, got shape {labels.shape}; for a 3-D "
            "stack of masks, convert it to one labels image (0 = background, 1..N = ROI ids)"
        )
    if labels.shape != tuple(movie_shape[1:]):
        raise ValueError(
            f"labels have shape {labels.shape} but the movie's frames are {tuple(movie_shape[1:])}; "
            "the labels must be drawn on this movie's field of view (same Y, X)"
        )
    if labels.dtype == bool:
        labels = labels.astype(np.int64)
    elif not np.issubdtype(labels.dtype, np.integer):
        if not np.issubdtype(labels.dtype, np.floating) or not np.all(np.mod(labels, 1) == 0):
            raise ValueError(
                f"labels must hold whole-number ROI ids (0 = background), got dtype {labels.dtype}"
            )
        labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be >= 0 (0 = background, 1..N = ROI ids); found negative ids")
    return labels.astype(np.int64, copy=False)


def _select_rois(labels: np.ndarray, roi_ids: Sequence[int] | np.ndarray | None) -> np.ndarray:
    present = np.unique(labels)
    present = present[present != 0]
    if roi_ids is None:
        if present.size == 0:
            raise ValueError(
                "the labels image holds no ROI (all pixels are 0 = background); draw or load ROIs first"
            )
        return present.astype(np.int64)
    ids = np.asarray(roi_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"roi_ids must be a non-empty 1-D list of ROI ids, got {roi_ids!r}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"roi_ids must be whole numbers, got dtype {ids.dtype}")
    if np.unique(ids).size != ids.size:
        raise ValueError("roi_ids lists an ROI twice; list each id once")
    missing = [int(i) for i in ids if i == 0 or i not in set(present.tolist())]
    if missing:
        raise ValueError(
            f"ROI id(s) {missing[:20]} have no pixels in the labels image (0 is background); "
            f"pick ids among those present ({present.size} ROIs, e.g. {present[:10].tolist()})"
        )
    return ids.astype(np.int64)


def extract_observations(
    movie: Any,
    labels: Any,
    pattern: ScanPattern | None = None,
    *,
    factor: int = 1,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    roi_ids: Sequence[int] | np.ndarray | None = None,
    frame_period: float | None = None,
    neuropil: float | None = None,
    neuropil_inner: float = DEFAULT_INNER,
    neuropil_outer: float = DEFAULT_OUTER,
    dff: bool = False,
    f0_window: float = DEFAULT_F0_WINDOW,
    f0_percentile: float = DEFAULT_F0_PERCENTILE,
    chunk_frames: int | None = None,
    progress: Progress | None = None,
    gather: str = "auto",
) -> Observations:
    """Per-ROI samples of a partial-field movie, placed on the fine grid.

    Parameters
    ----------
    movie
        (T, Y, X) array-like sliceable along T (numpy array, ``np.memmap``,
        ``tifffile.memmap``, a zarr array, a dask array); read
        ``chunk_frames`` frames at a time, never whole. Integer or float;
        unacquired rows may hold anything (NaN, zeros).
    labels
        (Y, X) labels image: 0 = background, ROI ids > 0 (need not be
        contiguous).
    pattern
        The scan pattern of the movie (``pattern.check_movie`` must pass).
        ``None`` means a full raster, timed by ``frame_period``: every row in
        every frame, ``line_period = frame_period / Y``.
    factor
        Fine-grid bins per sweep; bin width = ``pattern.frame_period / factor`` s.
    min_coverage
        Share (0, 1] of an ROI's pixels that a sweep must acquire for the ROI
        to count as observed in it (see the module notes: default 0.5 avoids
        biased samples from an ROI's edge).
    roi_ids
        ROI ids to extract, in this column order; default every id in
        ``labels``, ascending.
    frame_period
        Seconds per frame, only with ``pattern=None``.
    neuropil
        ``None`` (no correction) or a coefficient ``c``: each sample becomes
        ``F - c * F_neu`` (suite2p uses 0.7), ``F_neu`` being the mean of the
        ROI's annulus pixels (:func:`napari_sbtt.core.neuropil.annulus_pixels`)
        in the rows acquired in the same sweep. A sweep that acquires none of
        an ROI's annulus pixels gives no sample of that ROI (NaN): a
        correction cannot be made, and an uncorrected sample would not match
        the others.
    neuropil_inner, neuropil_outer
        Annulus gap and outer radius in pixels from the ROI's nearest pixel.
    dff
        Return dF/F = (F - F0) / F0 instead of raw F (after any neuropil
        correction), F0 a running percentile of the ROI's own observed samples
        (:mod:`napari_sbtt.core.dff`).
    f0_window, f0_percentile
        F0 window in seconds (full width) and percentile (0..100).
    chunk_frames
        Frames read per chunk; default: about 32 MB of movie data.
    progress
        A tqdm-like object (``update(n_frames)`` after each chunk) or a
        callable ``progress(done_frames, total_frames)``.
    gather
        How the pixels are read (:data:`napari_sbtt.core.gather.GATHER_MODES`): "auto"
        (default) or one way, for tests and benchmarks; every way gives the same numbers.

    Returns
    -------
    Observations
        ``values`` (T_fine, N) float32 in ``units`` ("raw", "raw,
        neuropil-corrected" or "dF/F"), NaN where not observed.

    Raises
    ------
    ValueError
        Bad shapes, no ROI, unknown ``roi_ids``, an ROI that the pattern never
        observes, NaN in an acquired row of an ROI or its annulus.
    ScanMismatchError
        The pattern belongs to a movie of another shape.
    """
    shape = getattr(movie, "shape", None)
    if shape is None:
        raise TypeError(
            f"movie must be an array-like with a shape (numpy, memmap, zarr, dask), got {type(movie).__name__}"
        )
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ValueError(
            f"movie must have shape (T, Y, X), got shape {shape}; for a multi-channel or "
            "multi-plane stack, pass one channel/plane at a time"
        )
    dtype = np.dtype(getattr(movie, "dtype", np.float64))
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise ValueError(f"movie must hold integer or float pixels, got dtype {dtype}")
    T, Y, X = shape
    if T == 0 or Y == 0 or X == 0:
        raise ValueError(f"movie is empty (shape {shape})")
    labels = _check_labels(labels, shape)
    ids = _select_rois(labels, roi_ids)
    pattern = _resolve_pattern(pattern, frame_period, T, Y)
    pattern.check_movie(shape)
    min_coverage = _check_min_coverage(min_coverage)
    neuropil = _check_neuropil(neuropil)
    if chunk_frames is not None and (int(chunk_frames) != chunk_frames or chunk_frames < 1):
        raise ValueError(f"chunk_frames must be a whole number >= 1, got {chunk_frames}")
    grid = pattern.fine_grid(factor)
    N = ids.size

    # --- memberships: ROI pixels, then annulus pixels
    flat = labels.reshape(-1)
    sorter = np.argsort(ids)
    pos = np.clip(np.searchsorted(ids[sorter], flat), 0, N - 1)
    hit = ids[sorter][pos] == flat
    roi_pix = np.flatnonzero(hit)
    roi_col = sorter[pos[roi_pix]].astype(np.int64)
    offsets = pattern.pixel_offsets(X)
    roi_seg, roi_inv = segments_from_pixels(roi_col, roi_pix, N, X, offsets)
    if neuropil is not None:
        rings = annulus_pixels(labels, ids, inner=neuropil_inner, outer=neuropil_outer)
        empty = [int(i) for i, r in zip(ids, rings, strict=True) if r.size == 0]
        if empty:
            raise ValueError(
                f"ROI id(s) {empty[:20]} have no neuropil pixels: every pixel within "
                f"neuropil_outer={neuropil_outer:g} px belongs to an ROI or lies in the "
                f"neuropil_inner={neuropil_inner:g} px gap. Increase neuropil_outer, lower "
                "neuropil_inner, or pass neuropil=None"
            )
        neu_pix = np.concatenate(rings)
        neu_col = np.repeat(np.arange(N), [r.size for r in rings])
        neu_seg, neu_inv = segments_from_pixels(neu_col, neu_pix, N, X, offsets)
    else:
        neu_pix = np.empty(0, dtype=np.int64)
        neu_seg, neu_inv = None, np.empty(0, dtype=np.int64)

    n_roi_seg = roi_seg.roi.size
    tables = [roi_seg] + ([neu_seg] if neu_seg is not None else [])
    n_seg_all = n_roi_seg + (neu_seg.roi.size if neu_seg is not None else 0)
    all_rows = np.concatenate([t.row for t in tables])
    if chunk_frames is None:
        # ~32 MB of movie per chunk, and at most ~2M (frame, segment) pairs in the temporaries
        chunk_frames = max(1, min(_CHUNK_BYTES // max(1, Y * X * dtype.itemsize), (1 << 21) // n_seg_all))
        n_cycle = len(pattern.cycle)
        if n_cycle <= chunk_frames // 8:
            chunk_frames -= chunk_frames % n_cycle  # whole cycles: every chunk starts at phase 0
    chunk_frames = int(chunk_frames)

    # --- what each sweep acquires, from the pattern alone: fail before reading the movie
    timing = RowTiming(pattern)
    stats = SweepStats(timing, tables, min_coverage, T)
    n_observed = stats.n_observed
    if np.any(n_observed == 0):
        extra = " together with at least one pixel of their neuropil annulus" if neuropil is not None else ""
        raise _never_observed_error(ids[n_observed == 0], min_coverage, extra)

    check_nan = not np.issubdtype(dtype, np.integer)
    seg_out = np.concatenate([t.roi + i * N for i, t in enumerate(tables)])
    chunk_sums = ChunkSums(
        pattern, stats, np.concatenate([roi_pix, neu_pix]), np.concatenate([roi_inv, neu_inv + n_roi_seg]),
        all_rows, seg_out, len(tables) * N, dtype, Y * X, chunk_frames, check_nan, gather=gather,
    )
    acc = GridAccumulator(grid, N, max_per_bin=max_per_bin(pattern, grid), with_neuropil=neuropil is not None)
    for k0 in range(0, T, chunk_frames):
        k1 = min(k0 + chunk_frames, T)
        block = movie[k0:k1]  # a view of a memory-mapped movie: only the gathered pixels are read
        if not isinstance(block, np.ndarray):
            block = np.asarray(block)
        if block.shape != (k1 - k0, Y, X):
            raise ValueError(
                f"reading frames {k0}..{k1 - 1} gave shape {block.shape}, expected {(k1 - k0, Y, X)}; "
                "the movie must be sliceable along its first axis"
            )
        frames = np.ascontiguousarray(block).reshape(k1 - k0, Y * X).view(np.ndarray)
        st = stats.sweeps(k0, k1)
        acq, observed = st.acquired, st.observed
        sums, bad = chunk_sums(frames, k0, acq)  # (c, N [+ N])
        if bad is not None:
            row_values = frames[bad[0]].reshape(Y, X)[int(all_rows[bad[1]])]
            raise _nan_error(k0 + bad[0], bad[1], all_rows, n_roi_seg, roi_seg, neu_seg, ids,
                             infinite=not np.isnan(row_values).any())
        w, rel = st.weight, st.rel
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = np.where(observed, sums[:, :N] / w, np.nan)
        times = np.where(observed, timing.starts[k0:k1, None] + rel, np.nan)
        fneu = None
        if neu_seg is not None:
            wn = st.neuropil_weight
            with np.errstate(invalid="ignore", divide="ignore"):
                fneu = np.where(observed, sums[:, N:] / wn, np.nan)
            vals = vals - neuropil * fneu
        acc.add(vals, times, fneu)
        release_pages(block)
        _report(progress, k1 - k0, k1, T)
    params = {
        "source": "movie",
        "factor": int(factor),
        "min_coverage": min_coverage,
        "neuropil": neuropil,
        "neuropil_inner": float(neuropil_inner) if neuropil is not None else None,
        "neuropil_outer": float(neuropil_outer) if neuropil is not None else None,
        "dff": bool(dff),
        "f0_window_s": float(f0_window) if dff else None,
        "f0_percentile": float(f0_percentile) if dff else None,
        "movie_shape": list(shape),
    }
    return _finish(acc, ids, n_observed, T, neuropil=neuropil, dff=dff, f0_window=f0_window,
                   f0_percentile=f0_percentile, params=params)


def _nan_error(frame: int, s: int, all_rows: np.ndarray, n_roi_seg: int, roi_seg: Segments,
               neu_seg: Segments | None, ids: np.ndarray, *, infinite: bool = False) -> ValueError:
    """The error for a non-finite pixel in an acquired row: NaN (a row the pattern wrongly says was
    acquired) or inf (a value no measurement gives)."""
    row = int(all_rows[s])
    if s < n_roi_seg:
        what = f"ROI id {int(ids[roi_seg.roi[s]])}"
    else:
        what = f"the neuropil annulus of ROI id {int(ids[neu_seg.roi[s - n_roi_seg]])}"  # type: ignore[union-attr]
    if infinite:
        return ValueError(
            f"the movie holds an infinite value (inf) in frame {frame}, row {row} (pixels of {what}); no "
            "measurement gives inf. Replace it in the movie (NaN marks a row the scan did not acquire) or "
            "re-export the movie")
    return OptionError(
        f"the movie holds NaN in frame {frame}, row {row} (pixels of {what}), but the scan pattern "
        f"says row {row} was acquired in sweep {frame}. Give this movie's scan pattern ({{scan}}), or "
        "{line_period} to find the acquired rows from the movie's NaN rows, or fix the movie",
        scan="pattern=", line_period="ScanPattern.from_movie(movie, line_period)")


# ---------------------------------------------------------------------------- traces
def observations_from_traces(
    traces: Any,
    roi_rows: Sequence[int | float | Sequence[int]],
    pattern: ScanPattern | None = None,
    *,
    factor: int = 1,
    roi_cols: Sequence[float] | np.ndarray | None = None,
    n_cols: int | None = None,
    frame_period: float | None = None,
    n_rows: int | None = None,
    roi_ids: Sequence[int] | np.ndarray | None = None,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    neuropil: float | None = None,
    neuropil_traces: Any = None,
    dff: bool = False,
    f0_window: float = DEFAULT_F0_WINDOW,
    f0_percentile: float = DEFAULT_F0_PERCENTILE,
    chunk_frames: int = 4096,
    progress: Progress | None = None,
) -> Observations:
    """Observations from per-frame ROI traces (e.g. suite2p ``F.npy``), without a movie.

    Parameters
    ----------
    traces
        (T, N) per-frame ROI values; NaN = not acquired in that frame.
        (suite2p stores (N, T): pass ``F.T``.)
    roi_rows
        N entries: each ROI's row (an int, or a float centroid rounded to the
        nearest row) or a list of its rows. A sample's time is the mean of the
        acquired listed rows' times; with a list, a sweep observes the ROI
        only when it acquires at least ``min_coverage`` of the listed rows.
    pattern
        The scan pattern (``n_sweeps`` must equal T); ``None`` = full raster
        with ``frame_period`` and ``n_rows``.
    factor
        Fine-grid bins per sweep.
    roi_cols, n_cols
        Optional (N,) centroid column of each ROI (may be fractional) and the
        frame width X; they add the pixel offset along the line (mirrored on
        backward lines), as for a movie. Without them the row centre is used.
    frame_period, n_rows
        Full-raster timing, only with ``pattern=None``.
    roi_ids
        (N,) ids for the columns; default 1..N.
    min_coverage
        See above.
    neuropil, neuropil_traces
        Coefficient c and (T, N) neuropil traces (suite2p ``Fneu.npy`` transposed):
        each sample becomes ``F - c * F_neu``; a NaN ``F_neu`` drops the sample.
    dff, f0_window, f0_percentile
        As in :func:`extract_observations`.
    chunk_frames
        Frames timed at a time (bounds the temporary (chunk, Y) arrays).
    progress
        As in :func:`extract_observations`.

    Notes
    -----
    Samples are kept where the trace is finite *and* the pattern acquires the
    ROI (as above). A finite value in a sweep that did not acquire the ROI's
    rows cannot come from that sweep's light, so it is dropped; the count of
    such values is stored in ``params["dropped_unacquired"]``.
    """
    F = np.asarray(traces)
    if F.ndim != 2:
        raise ValueError(
            f"traces must have shape (T, N) (frames x ROIs), got shape {F.shape}; for one ROI "
            "use traces[:, None]"
        )
    if not (np.issubdtype(F.dtype, np.integer) or np.issubdtype(F.dtype, np.floating)):
        raise ValueError(f"traces must be numeric, got dtype {F.dtype}")
    T, N = F.shape
    if T == 0 or N == 0:
        raise ValueError(f"traces are empty (shape {F.shape})")
    if len(roi_rows) != N:
        raise ValueError(
            f"roi_rows has {len(roi_rows)} entries but traces have {N} ROIs (columns); give one "
            "row (or list of rows) per ROI. suite2p traces are (N, T): pass F.T"
        )
    pattern = _resolve_pattern(pattern, frame_period, T, n_rows)
    pattern.check_movie((T, pattern.n_rows), what="traces")
    Y = pattern.n_rows
    min_coverage = _check_min_coverage(min_coverage)
    neuropil = _check_neuropil(neuropil)
    Fneu = None
    if neuropil is not None:
        if neuropil_traces is None:
            raise ValueError("neuropil correction from traces needs neuropil_traces=(T, N) (suite2p Fneu.T)")
        Fneu = np.asarray(neuropil_traces, dtype=np.float64)
        if Fneu.shape != F.shape:
            raise ValueError(f"neuropil_traces must have the shape of traces {F.shape}, got {Fneu.shape}")
    elif neuropil_traces is not None:
        raise ValueError("neuropil_traces given without a coefficient: pass neuropil=0.7 (say) as well")
    if roi_ids is None:
        ids = np.arange(1, N + 1, dtype=np.int64)
    else:
        ids = np.asarray(roi_ids)
        if ids.shape != (N,) or not np.issubdtype(ids.dtype, np.integer) or np.unique(ids).size != N:
            raise ValueError(f"roi_ids must be {N} distinct whole numbers, got {roi_ids!r}")
        ids = ids.astype(np.int64)

    # segments: one per (ROI, listed row), weight 1
    seg_roi, seg_row = [], []
    for j, r in enumerate(roi_rows):
        rows = np.atleast_1d(np.asarray(r, dtype=np.float64))
        if rows.ndim != 1 or rows.size == 0 or not np.all(np.isfinite(rows)):
            raise ValueError(f"roi_rows[{j}] must be a row or a non-empty list of rows, got {r!r}")
        rows = np.unique(np.rint(rows).astype(np.int64))
        if rows.min() < 0 or rows.max() >= Y:
            raise ValueError(
                f"roi_rows[{j}] = {r!r} lies outside the {Y} rows of the scan pattern (0..{Y - 1})"
            )
        seg_roi.append(np.full(rows.size, j))
        seg_row.append(rows)
    roi_arr = np.concatenate(seg_roi)
    offs = np.zeros(roi_arr.size)
    if roi_cols is not None:
        if n_cols is None or int(n_cols) != n_cols or n_cols < 1:
            raise ValueError("roi_cols needs n_cols=<X>, the number of pixels per line")
        cols = np.asarray(roi_cols, dtype=np.float64)
        if cols.shape != (N,) or not np.all(np.isfinite(cols)):
            raise ValueError(f"roi_cols must be {N} finite column positions, got shape {cols.shape}")
        if cols.min() < 0 or cols.max() > n_cols - 1:
            raise ValueError(f"roi_cols must lie in 0..{n_cols - 1} (n_cols={n_cols})")
        po = pattern.pixel_offsets(int(n_cols))
        # offsets are linear in x, so interpolation is exact for fractional columns
        offs = np.interp(cols, np.arange(int(n_cols)), po)[roi_arr]
    seg = Segments(roi=roi_arr, row=np.concatenate(seg_row), weight=np.ones(roi_arr.size),
                    offset=offs, n_rois=N)
    grid = pattern.fine_grid(factor)
    timing = RowTiming(pattern)
    stats = SweepStats(timing, [seg], min_coverage, T)
    n_acquired = stats.n_observed
    if np.any(n_acquired == 0):
        raise _never_observed_error(ids[n_acquired == 0], min_coverage, what="listed rows")
    acc = GridAccumulator(grid, N, max_per_bin=max_per_bin(pattern, grid), with_neuropil=Fneu is not None)
    n_observed = np.zeros(N, dtype=np.int64)
    dropped = 0
    chunk_frames = max(1, int(chunk_frames))
    for k0 in range(0, T, chunk_frames):
        k1 = min(k0 + chunk_frames, T)
        st = stats.sweeps(k0, k1)
        acquired = st.observed
        tmean = timing.starts[k0:k1, None] + st.rel
        vals = F[k0:k1].astype(np.float64)
        finite = np.isfinite(vals)
        dropped += int(np.count_nonzero(finite & ~acquired))
        keep = acquired & finite
        fneu = None
        if Fneu is not None:
            fneu = Fneu[k0:k1]
            vals = vals - neuropil * fneu
            keep &= np.isfinite(vals)
        n_observed += keep.sum(axis=0)
        acc.add(np.where(keep, vals, np.nan), np.where(keep, tmean, np.nan),
                None if fneu is None else np.where(keep, fneu, np.nan))
        _report(progress, k1 - k0, k1, T)
    if np.any(n_observed == 0):
        never = ids[n_observed == 0]
        raise ValueError(
            f"ROI id(s) {[int(i) for i in never[:20]]} have no finite value in any sweep that "
            "acquires them; check that the traces' columns match roi_rows and that NaN marks only "
            "unacquired frames"
        )
    params = {
        "source": "traces",
        "factor": int(factor),
        "min_coverage": min_coverage,
        "neuropil": neuropil,
        "dff": bool(dff),
        "f0_window_s": float(f0_window) if dff else None,
        "f0_percentile": float(f0_percentile) if dff else None,
        "dropped_unacquired": dropped,
    }
    return _finish(acc, ids, n_observed, T, neuropil=neuropil, dff=dff, f0_window=f0_window,
                   f0_percentile=f0_percentile, params=params)
