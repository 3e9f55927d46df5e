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
:class:`_ChunkSums`; all ways give the same result bit for bit). So NaN (or
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
"""

from __future__ import annotations

import json
import math
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from .dff import DEFAULT_F0_PERCENTILE, DEFAULT_F0_WINDOW, delta_f_over_f
from .errors import MissingTimingError, OptionError
from .neuropil import DEFAULT_INNER, DEFAULT_OUTER, annulus_pixels
from .scan import FineGrid, ScanPattern

__all__ = [
    "Observations",
    "extract_observations",
    "observations_from_traces",
    "DEFAULT_MIN_COVERAGE",
]

#: default share of an ROI's pixels (or listed rows) that a sweep must acquire to observe it
DEFAULT_MIN_COVERAGE = 0.5

_NPZ_FORMAT = "napari-sbtt.observations"
_NPZ_VERSION = 1
_CHUNK_BYTES = 32 * 1024 * 1024  # movie bytes per chunk when chunk_frames is not given
_EPS = 1e-9

#: ``progress`` argument: a callable ``(done_frames, total_frames)`` or a tqdm-like ``update(n)``
Progress = Any


# ---------------------------------------------------------------------------- result type
@dataclass
class Observations:
    """Per-ROI samples on the fine grid.

    Attributes
    ----------
    values
        (T_fine, N) float32, NaN where the ROI was not observed in that bin;
        in ``units``.
    times
        (T_fine,) float64 bin centres in seconds.
    roi_ids
        (N,) int64 ROI ids (labels values), column order of ``values``.
    grid
        The fine grid (``t0``, ``bin_width`` seconds, ``n_bins``).
    sample_times
        (T_fine, N) float64 exact acquisition time (seconds) of each sample,
        NaN where not observed.
    coverage
        (N,) float64 share of sweeps (0..1) in which each ROI was observed.
    units
        ``"raw"``, ``"raw, neuropil-corrected"`` or ``"dF/F"``.
    neuropil
        (T_fine, N) float32 raw neuropil F_neu of the kept samples (NaN
        elsewhere), or None when no neuropil correction was made.
    params
        JSON-ready dict of the settings that produced the observations.
    """

    values: np.ndarray
    times: np.ndarray
    roi_ids: np.ndarray
    grid: FineGrid
    sample_times: np.ndarray
    coverage: np.ndarray
    units: str = "raw"
    neuropil: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        self.times = np.asarray(self.times, dtype=np.float64)
        self.roi_ids = np.asarray(self.roi_ids, dtype=np.int64)
        self.sample_times = np.asarray(self.sample_times, dtype=np.float64)
        self.coverage = np.asarray(self.coverage, dtype=np.float64)
        T, N = self.grid.n_bins, self.roi_ids.size
        if self.values.shape != (T, N):
            raise ValueError(f"values must have shape (T_fine, N) = {(T, N)}, got {self.values.shape}")
        if self.sample_times.shape != (T, N):
            raise ValueError(f"sample_times must have shape {(T, N)}, got {self.sample_times.shape}")
        if self.times.shape != (T,):
            raise ValueError(f"times must have shape ({T},), got {self.times.shape}")
        if self.coverage.shape != (N,):
            raise ValueError(f"coverage must have shape ({N},), got {self.coverage.shape}")
        if self.neuropil is not None:
            self.neuropil = np.asarray(self.neuropil, dtype=np.float32)
            if self.neuropil.shape != (T, N):
                raise ValueError(f"neuropil must have shape {(T, N)}, got {self.neuropil.shape}")

    @property
    def n_bins(self) -> int:
        """Number of fine-grid bins, T_fine."""
        return int(self.grid.n_bins)

    @property
    def n_rois(self) -> int:
        """Number of ROIs, N."""
        return int(self.roi_ids.size)

    def observed_mask(self) -> np.ndarray:
        """Bool (T_fine, N): True where the ROI was observed in that bin."""
        return ~np.isnan(self.values)

    def to_npz(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write to a compressed ``.npz`` atomically (no pickled objects); returns the path."""
        from .atomic import atomic_write

        arrays: dict[str, np.ndarray] = {
            "format": np.array(_NPZ_FORMAT),
            "version": np.array(_NPZ_VERSION),
            "values": self.values,
            "times": self.times,
            "roi_ids": self.roi_ids,
            "grid": np.array([self.grid.t0, self.grid.bin_width, float(self.grid.n_bins)]),
            "sample_times": self.sample_times,
            "coverage": self.coverage,
            "units": np.array(self.units),
            "params": np.array(json.dumps(self.params)),
        }
        if self.neuropil is not None:
            arrays["neuropil"] = self.neuropil

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: numpy appends no suffix
                np.savez_compressed(fh, **arrays)

        atomic_write(path, write, overwrite=overwrite)
        return Path(path)

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> "Observations":
        """Read what :meth:`to_npz` wrote (``allow_pickle=False``)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"observations file not found: {p}")
        from .readers.npy import load_npz

        z = load_npz(p)
        fmt = str(z["format"]) if "format" in z else None
        if fmt != _NPZ_FORMAT:
            raise ValueError(
                f"{p} is not a napari-sbtt observations file (format {fmt!r}, expected "
                f"{_NPZ_FORMAT!r}); write it with Observations.to_npz"
            )
        version = int(z["version"])
        if version > _NPZ_VERSION:
            raise ValueError(
                f"{p} has observations format version {version}, newer than this napari-sbtt "
                f"understands ({_NPZ_VERSION}); upgrade napari-sbtt"
            )
        try:
            g = z["grid"]
            grid = FineGrid(float(g[0]), float(g[1]), int(round(g[2])))
            return cls(
                values=z["values"],
                times=z["times"],
                roi_ids=z["roi_ids"],
                grid=grid,
                sample_times=z["sample_times"],
                coverage=z["coverage"],
                units=str(z["units"]),
                neuropil=z["neuropil"] if "neuropil" in z else None,
                params=json.loads(str(z["params"])),
            )
        except KeyError as e:
            raise ValueError(f"{p} lacks the array {e.args[0]!r}; the file is incomplete") from None


# ---------------------------------------------------------------------------- timing per chunk
class _Timing:
    """Line positions, relative row times and directions of sweeps, without (T, Y) arrays.

    A chunk-sized view of the pattern's own timing (``ScanPattern.line_index`` and
    ``line_timing``): the absolute time of row y in sweep k is ``starts[k] + rel[k, y]``,
    as ``pattern.row_times()`` computes it.
    """

    def __init__(self, pattern: ScanPattern) -> None:
        self.pattern = pattern
        self.starts = pattern.sweep_starts()
        self.n_cycle = len(pattern.cycle)

    def cycle_line_index(self, e0: int, e1: int) -> np.ndarray:
        """Int32 (e1 - e0, Y) position of each row in cycle entries e0..e1-1 (-1 = not acquired)."""
        return self.pattern.cycle_line_index(e0, e1)

    def line_index(self, k0: int, k1: int) -> np.ndarray:
        """Int32 (k1 - k0, Y) position of each row in sweeps k0..k1-1 (-1 = not acquired)."""
        return self.pattern.line_index(k0, k1)

    def rel_rows(self, li: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row centre times relative to the sweep start (s) and directions (+1 / -1; 0 not acquired)."""
        return self.pattern.line_timing(li)


# ---------------------------------------------------------------------------- segments
@dataclass
class _Segments:
    """(ROI, row) segments: the rows of each ROI with pixel count and summed pixel-time offset."""

    roi: np.ndarray  # (S,) int64 column 0..N-1
    row: np.ndarray  # (S,) int64
    weight: np.ndarray  # (S,) float64 pixels (or 1 per listed row)
    offset: np.ndarray  # (S,) float64 sum of forward-line pixel offsets, seconds
    n_rois: int

    @property
    def total(self) -> np.ndarray:
        """(N,) summed weight of each ROI."""
        return np.bincount(self.roi, weights=self.weight, minlength=self.n_rois)

    def indicator(self) -> sp.csr_matrix:
        """Sparse (S, N) 0/1: which ROI each segment belongs to."""
        S = self.roi.size
        return sp.csr_matrix((np.ones(S), (np.arange(S), self.roi)), shape=(S, self.n_rois))


class _SegmentSummer:
    """Sums of the movie over each segment's pixels, for a chunk of frames.

    Segments are grouped by their pixel count L; for each group one ``np.take``
    gathers the pixels laid out as (c, L, S_L) and a sum over L adds whole
    contiguous vectors. This is about twice as fast as a sparse matrix
    product (which must transpose the gathered chunk) and exact for integer
    movies (summed in 32/64-bit integers). A pixel may belong to several
    segments (overlapping neuropil annuli). The pixels of a segment are added
    in order (a group of one segment is gathered twice so that numpy never
    switches to pairwise summation), so float sums do not depend on how the
    segments are grouped.
    """

    def __init__(self, pix: np.ndarray, seg: np.ndarray, n_seg: int, dtype: np.dtype) -> None:
        order = np.argsort(seg, kind="stable")
        pix, seg = pix[order], seg[order]
        lens = np.bincount(seg, minlength=n_seg)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        self.n_seg = n_seg
        self.groups: list[tuple[np.ndarray, int, int, int]] = []  # (segments, L, offset, size)
        self.tables: list[tuple[np.ndarray, np.ndarray]] = []  # (segments, (L, S_L) pixel indices)
        index = []
        offset = 0
        for L in np.unique(lens[lens > 0]):
            segs = np.flatnonzero(lens == L)
            segs = segs[np.argsort(pix[starts[segs]], kind="stable")]  # by address: cache-friendly
            idx = pix[starts[segs][None, :] + np.arange(L)[:, None]]  # (L, S_L): layout [l][s]
            self.tables.append((segs, np.ascontiguousarray(idx.T).T))  # rows of idx.T: one segment
            if segs.size == 1:
                idx = np.repeat(idx, 2, axis=1)  # see the class notes
            index.append(idx.reshape(-1))
            self.groups.append((segs, int(L), offset, idx.size))
            offset += idx.size
        self.index = np.concatenate(index).astype(np.intp) if index else np.empty(0, dtype=np.intp)
        dtype = np.dtype(dtype)
        if np.issubdtype(dtype, np.integer) and dtype.itemsize <= 2:
            # exact: a segment has at most one row of pixels (< 65536 for these sums)
            self.acc = np.dtype(np.int64) if lens.max(initial=0) >= 32768 else (
                np.dtype(np.uint32) if dtype.kind == "u" else np.dtype(np.int32))
        elif np.issubdtype(dtype, np.integer):
            self.acc = np.dtype(np.int64) if dtype.itemsize <= 4 else np.dtype(np.float64)
        else:
            self.acc = np.dtype(np.float64)

    def __call__(self, frames: np.ndarray, shift: int = 0, out: np.ndarray | None = None) -> np.ndarray:
        """(c, P) frames -> (c, n_seg) float64 segment sums (NaN pixels give NaN).

        Reads columns ``pixel + shift`` of ``frames`` (any C-contiguous 2-D
        array, e.g. several frames per row); writes into ``out`` if given.
        """
        c = frames.shape[0]
        g = np.take(frames, self.index if shift == 0 else self.index + shift, axis=1)
        if out is None:
            out = np.empty((c, self.n_seg), dtype=np.float64)
        for segs, L, o, n in self.groups:
            s = g[:, o : o + n].reshape(c, L, n // L).sum(axis=1, dtype=self.acc)
            out[:, segs] = s if n // L == segs.size else s[:, :1]
        return out

    def sum_pairs(self, flat: np.ndarray, acq: np.ndarray, frame_size: int, out: np.ndarray) -> None:
        """Sums of the acquired (frame, segment) pairs only.

        ``flat`` is the chunk as one 1-D array, ``acq`` (c, n_seg) bool; writes the
        sums of acquired pairs into ``out`` (c, n_seg) and leaves the rest alone.
        """
        for segs, idx in self.tables:
            fi, sj = np.nonzero(acq[:, segs])
            if fi.size == 0:
                continue
            if fi.size == 1:
                fi, sj = np.repeat(fi, 2), np.repeat(sj, 2)  # see the class notes
            # gathered frame by frame (cache- and TLB-friendly), then laid out (L, P) to add in order
            g = np.take(flat, idx.T[sj] + (fi * frame_size)[:, None])  # (P, L)
            out[fi, segs[sj]] = np.ascontiguousarray(g.T).sum(axis=0, dtype=self.acc)


def _segments_from_pixels(member_roi: np.ndarray, member_pix: np.ndarray, n_rois: int, n_cols: int,
                          offsets: np.ndarray) -> tuple[_Segments, np.ndarray]:
    """Segments of pixel memberships; also the segment index of every membership."""
    row = member_pix // n_cols
    key = member_roi.astype(np.int64) * (1 << 32) + row
    ukey, inv = np.unique(key, return_inverse=True)
    inv = inv.reshape(-1)
    seg = _Segments(
        roi=(ukey >> 32).astype(np.int64),
        row=(ukey & ((1 << 32) - 1)).astype(np.int64),
        weight=np.bincount(inv, minlength=ukey.size).astype(np.float64),
        offset=np.bincount(inv, weights=offsets[member_pix % n_cols], minlength=ukey.size),
        n_rois=n_rois,
    )
    return seg, inv


class _SweepStats:
    """What each sweep acquires of each ROI: a function of the scan pattern alone.

    For a block of sweeps (rows of line indices ``li``) it gives, per segment
    table (the ROI's segments and, optionally, its neuropil segments):
    ``acq`` (m, S) acquired segments, ``w`` (m, N) acquired weight (pixels),
    ``rel`` (m, N) mean acquisition time relative to the sweep start (s).
    When the pattern's cycle is short these are computed once per cycle entry
    and looked up per chunk; else per chunk. The arithmetic is the same both
    ways, so the result does not depend on it.
    """

    _MAX_TABLE = 1 << 22  # cycle entries x segments kept as tables

    def __init__(self, timing: _Timing, tables: Sequence[_Segments], min_coverage: float,
                 n_sweeps: int) -> None:
        self.timing = timing
        self.tables = list(tables)
        self.inds = [t.indicator() for t in self.tables]
        self.rows = np.concatenate([t.row for t in self.tables])
        self.bounds = np.cumsum([0] + [t.row.size for t in self.tables])
        self.total = self.tables[0].total
        self.min_coverage = min_coverage
        C, S = timing.n_cycle, self.rows.size
        uses = np.bincount(np.arange(n_sweeps) % C, minlength=C)  # sweeps per cycle entry
        keep = C * S <= self._MAX_TABLE
        self.n_observed = np.zeros(self.total.size, dtype=np.int64)
        parts: list[tuple[np.ndarray, ...]] = []
        step = max(1, (1 << 21) // max(S, 1))
        for e0 in range(0, C, step):
            e1 = min(e0 + step, C)
            st = self._compute(timing.cycle_line_index(e0, e1))
            self.n_observed += (st[-1] * uses[e0:e1, None]).sum(axis=0)
            if keep:
                parts.append(st)
        self._table = [np.concatenate(a) for a in zip(*parts)] if keep else None

    def _compute(self, li: np.ndarray) -> tuple[np.ndarray, ...]:
        rel_row, d_row = self.timing.rel_rows(li)
        acq = li[:, self.rows] >= 0
        rel_seg, d_seg = rel_row[:, self.rows], d_row[:, self.rows]
        out: list[np.ndarray] = [acq]
        observed = None
        for i, (seg, ind) in enumerate(zip(self.tables, self.inds)):
            s = slice(self.bounds[i], self.bounds[i + 1])
            a = acq[:, s]
            w = np.asarray((a * seg.weight) @ ind)
            tsum = np.asarray((a * (rel_seg[:, s] * seg.weight + d_seg[:, s] * seg.offset)) @ ind)
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = tsum / w
            out += [w, rel]
            ok = w >= self.total * (self.min_coverage - _EPS) if i == 0 else w > 0
            observed = ok if observed is None else observed & ok
        out.append(observed)
        return tuple(out)

    def sweeps(self, k0: int, k1: int) -> tuple[np.ndarray, ...]:
        """(acq, w_0, rel_0, [w_1, rel_1,] observed) for sweeps k0..k1-1."""
        if self._table is not None:
            e = np.arange(k0, k1) % self.timing.n_cycle
            return tuple(a[e] for a in self._table)
        return self._compute(self.timing.line_index(k0, k1))

    def sums(self, i: int, acq: np.ndarray, seg_sums: np.ndarray) -> np.ndarray:
        """(m, N) sums of the acquired segments of table i; ``seg_sums`` (m, S) must be finite."""
        s = slice(self.bounds[i], self.bounds[i + 1])
        return np.asarray((seg_sums[:, s] * acq[:, s]) @ self.inds[i])


class _ChunkSums:
    """Per chunk of frames: each ROI's (and annulus') sum over its segments acquired in each sweep.

    Only the pixels of acquired segments are read. Strategies (``_GATHER``):

    - ``"phase"`` (periodic patterns): sweeps ``k`` and ``k + len(cycle)`` acquire
      the same segments, so each cycle entry (phase) gets its own
      :class:`_SegmentSummer` over just its acquired segments, and one
      ``np.take`` gathers them for all sweeps of that phase in the chunk: a
      chunk whose length is a multiple of the cycle is viewed, without a copy,
      as (frames / cycle, cycle * Y * X) and the phase selects the columns.
    - ``"pairs"`` (e.g. random lines, whose cycle is the whole recording): the
      (sweep, segment) pairs acquired in the chunk are gathered with per-chunk
      indices (a pixel index table per segment length plus frame offsets).
    - ``"all"``: every segment of every sweep, unacquired ones then dropped
      (the original method; cheaper than "pairs" when most pixels are acquired).

    ``"auto"`` uses "phase" when the cycle is short against the chunk and its
    index tables are small, else per chunk "pairs" or "all" by the share of
    pixels acquired. All give the same sums bit for bit: a segment's pixels
    are added in order (exact for integer movies), then each ROI's acquired
    segments in segment order starting from 0, as a sparse product does.
    """

    _PHASE_INDEX_BUDGET = 1 << 22  # pixel indices kept for all cycle phases together
    _PAIRS_BELOW = 0.15  # "auto": gather pairs when less than this share of pixels is acquired (measured)

    def __init__(self, pattern: ScanPattern, stats: "_SweepStats", pix: np.ndarray, seg: np.ndarray,
                 seg_rows: np.ndarray, seg_out: np.ndarray, n_out: int, dtype: np.dtype,
                 frame_size: int, chunk_frames: int, check_nan: bool) -> None:
        self.stats = stats
        self.seg_out = seg_out
        self.n_out = n_out
        self.frame_size = frame_size
        self.check_nan = check_nan
        S = seg_rows.size
        self.n_seg = S
        self.all = _SegmentSummer(pix, seg, S, dtype)
        self.seg_len = np.bincount(seg, minlength=S).astype(np.float64)
        self.n_member = max(1, pix.size)
        C = self.n_cycle = len(pattern.cycle)
        mode = _GATHER
        if mode == "auto":
            mode = "mixed"
            if C <= max(1, chunk_frames // 8):
                per_row = np.bincount(seg_rows[seg], minlength=pattern.n_rows)
                if sum(int(per_row[r].sum()) for r in pattern.cycle) <= self._PHASE_INDEX_BUDGET:
                    mode = "phase"
        self.mode = mode
        self.phases: list[tuple[_SegmentSummer, np.ndarray, sp.csc_matrix] | None] = []
        if mode == "phase":
            row_seg_order = np.argsort(seg_rows, kind="stable")
            row_bounds = np.searchsorted(seg_rows[row_seg_order], np.arange(pattern.n_rows + 1))
            local = np.full(S, -1, dtype=np.int64)
            for rows in pattern.cycle:
                sel = np.sort(np.concatenate(
                    [row_seg_order[row_bounds[r]: row_bounds[r + 1]] for r in rows] + [np.empty(0, np.int64)]
                )).astype(np.int64)
                if sel.size == 0:
                    self.phases.append(None)
                    continue
                local[sel] = np.arange(sel.size)
                mem = local[seg] >= 0
                summer = _SegmentSummer(pix[mem], local[seg[mem]], sel.size, dtype)
                local[sel] = -1
                comb = sp.csc_matrix((np.ones(sel.size), (seg_out[sel], np.arange(sel.size))),
                                     shape=(n_out, sel.size))
                self.phases.append((summer, sel, comb))

    def __call__(self, frames: np.ndarray, k0: int, acq: np.ndarray) -> tuple[np.ndarray, tuple[int, int] | None]:
        """Frames (c, Y * X) of sweeps k0.. and their acquired segments (c, S) ->
        ((c, n_out) sums, first (frame in chunk, segment) with a NaN sum or None)."""
        if self.mode == "phase":
            return self._by_phase(frames, k0)
        c = frames.shape[0]
        mode = self.mode
        if mode == "mixed":
            share = float(np.count_nonzero(acq, axis=0) @ self.seg_len) / (c * self.n_member)
            mode = "pairs" if share < self._PAIRS_BELOW else "all"
        if mode == "pairs":
            seg_sums = np.zeros((c, self.n_seg))
            self.all.sum_pairs(frames.reshape(-1), acq, self.frame_size, seg_sums)
        else:
            seg_sums = self.all(frames)
        bad = None
        if self.check_nan:
            finite = np.isfinite(seg_sums)
            if not finite.all():
                hit = acq & ~finite
                if hit.any():
                    i, j = np.argwhere(hit)[0]
                    bad = (int(i), int(j))
                seg_sums[~finite] = 0.0  # unacquired rows: dropped below
        out = np.zeros((c, self.n_out))
        tables = self.stats.bounds.size - 1
        n = self.n_out // tables
        for t in range(tables):
            out[:, t * n : (t + 1) * n] = self.stats.sums(t, acq, seg_sums)
        return out, bad

    def _by_phase(self, frames: np.ndarray, k0: int) -> tuple[np.ndarray, tuple[int, int] | None]:
        c, P = frames.shape
        C = self.n_cycle
        m = c // C  # whole cycles in the chunk: frame q + i * C is row i, column block q of `main`
        r = c - m * C
        main = frames[: m * C].reshape(m, C * P) if m else None
        out = np.zeros((c, self.n_out))
        bad: tuple[int, int] | None = None
        for q in range(min(C, c)):
            phase = self.phases[(k0 + q) % C]
            if phase is None:
                continue
            summer, sel, comb = phase
            n_q = m + (q < r)
            sums = np.empty((n_q, sel.size))
            if m:
                summer(main, q * P, out=sums[:m])
            if q < r:
                summer(frames[m * C + q : m * C + q + 1], out=sums[m:])
            if self.check_nan:
                finite = np.isfinite(sums)
                if not finite.all():
                    i, j = np.argwhere(~finite)[0]  # first bad frame of this phase, then segment
                    cand = (q + int(i) * C, int(sel[j]))
                    bad = cand if bad is None else min(bad, cand)
                    continue
            out[q::C] = (comb @ np.ascontiguousarray(sums.T)).T
        return out, bad


#: how :class:`_ChunkSums` gathers: "auto", "phase", "pairs", "mixed" or "all" (tests)
_GATHER = "auto"


# ---------------------------------------------------------------------------- binning
class _GridAccumulator:
    """Places per-sweep samples (values and times, (c, N), NaN = none) on the fine grid.

    Samples that share a bin are averaged (values, times, neuropil alike).
    The one place where samples meet the grid, for movies and traces alike.
    """

    def __init__(self, grid: FineGrid, n_rois: int, *, max_per_bin: int, with_neuropil: bool) -> None:
        self.grid = grid
        shape = (grid.n_bins, n_rois)
        self.values = np.zeros(shape, dtype=np.float32)
        self.times = np.zeros(shape, dtype=np.float64)
        self.neuropil = np.zeros(shape, dtype=np.float32) if with_neuropil else None
        self.count = np.zeros(shape, dtype=np.min_scalar_type(max(1, max_per_bin)))
        self.n_rois = n_rois
        self.samples_per_roi = np.zeros(n_rois, dtype=np.int64)

    def add(self, values: np.ndarray, times: np.ndarray, neuropil: np.ndarray | None = None) -> None:
        ok = np.isfinite(values) & np.isfinite(times)
        if not ok.any():
            return
        r, c = np.nonzero(ok)
        b = self.grid.index(times[r, c])
        flat = b * self.n_rois + c
        np.add.at(self.values.reshape(-1), flat, values[r, c].astype(np.float32))
        np.add.at(self.times.reshape(-1), flat, times[r, c])
        if self.neuropil is not None and neuropil is not None:
            np.add.at(self.neuropil.reshape(-1), flat, neuropil[r, c].astype(np.float32))
        np.add.at(self.count.reshape(-1), flat, 1)
        self.samples_per_roi += np.bincount(c, minlength=self.n_rois)

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        n = self.count
        empty = n == 0
        many = n > 1
        arrays = [self.values, self.times] + ([self.neuropil] if self.neuropil is not None else [])
        for a in arrays:
            if many.any():
                a[many] /= n[many]
            a[empty] = np.nan
        return self.values, self.times, self.neuropil


def _max_per_bin(pattern: ScanPattern, grid: FineGrid) -> int:
    """Upper bound on the samples of one ROI that can share a fine bin (one per sweep)."""
    shortest = float(pattern.sweep_durations().min())
    return int(math.ceil(grid.bin_width / shortest)) + 1


# ---------------------------------------------------------------------------- shared helpers
def _advise(block: Any, advice: int) -> None:
    """``madvise`` the pages of an ``np.memmap`` chunk (best effort; nothing for other arrays)."""
    m = getattr(block, "_mmap", None)
    if m is None or not hasattr(m, "madvise"):
        return
    if not isinstance(block, np.ndarray) or not block.flags.c_contiguous or block.nbytes == 0:
        return
    try:
        base = np.frombuffer(m, dtype=np.uint8)
        start = block.ctypes.data - base.ctypes.data
        size = base.size
        del base
        lo = (start // mmap.PAGESIZE) * mmap.PAGESIZE
        hi = min(start + block.nbytes, size)
        if 0 <= lo < hi:
            m.madvise(advice, lo, hi - lo)
    except (ValueError, OSError, BufferError, AttributeError):
        pass


def _release_pages(block: Any) -> None:
    """Unmap the pages of a consumed ``np.memmap`` chunk from this process (file data stays cached).

    Without this, every page of a memory-mapped movie that was read stays mapped,
    so the process's resident size (RSS) grows to the size of the file even
    though the kernel could drop those pages at any time. Only shared mappings
    (modes ``r``, ``r+``, ``w+``) are released, never copy-on-write ones
    (mode ``c``), whose private changes would be lost.
    """
    if getattr(block, "mode", "c") != "c" and hasattr(mmap, "MADV_DONTNEED"):
        _advise(block, mmap.MADV_DONTNEED)


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


def _finish(acc: _GridAccumulator, roi_ids: np.ndarray, n_observed: np.ndarray, n_sweeps: int,
            *, neuropil: float | None, dff: bool, f0_window: float, f0_percentile: float,
            params: dict[str, Any]) -> Observations:
    values, times, neu = acc.finish()
    units = "raw" if neuropil is None else "raw, neuropil-corrected"
    if dff:
        values = delta_f_over_f(values, times, roi_ids, window=f0_window, percentile=f0_percentile)
        units = "dF/F"
    return Observations(
        values=values,
        times=acc.grid.centres,
        roi_ids=roi_ids,
        grid=acc.grid,
        sample_times=times,
        coverage=n_observed / float(n_sweeps),
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
    roi_seg, roi_inv = _segments_from_pixels(roi_col, roi_pix, N, X, offsets)
    if neuropil is not None:
        rings = annulus_pixels(labels, ids, inner=neuropil_inner, outer=neuropil_outer)
        empty = [int(i) for i, r in zip(ids, rings) if r.size == 0]
        if empty:
            raise ValueError(
                f"ROI id(s) {empty[:20]} have no neuropil pixels: every pixel within "
                f"neuropil_outer={neuropil_outer:g} px belongs to an ROI or lies in the "
                f"neuropil_inner={neuropil_inner:g} px gap. Increase neuropil_outer, lower "
                "neuropil_inner, or pass neuropil=None"
            )
        neu_pix = np.concatenate(rings)
        neu_col = np.repeat(np.arange(N), [r.size for r in rings])
        neu_seg, neu_inv = _segments_from_pixels(neu_col, neu_pix, N, X, offsets)
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
    timing = _Timing(pattern)
    stats = _SweepStats(timing, tables, min_coverage, T)
    n_observed = stats.n_observed
    if np.any(n_observed == 0):
        extra = " together with at least one pixel of their neuropil annulus" if neuropil is not None else ""
        raise _never_observed_error(ids[n_observed == 0], min_coverage, extra)

    check_nan = not np.issubdtype(dtype, np.integer)
    seg_out = np.concatenate([t.roi + i * N for i, t in enumerate(tables)])
    gather = _ChunkSums(
        pattern, stats, np.concatenate([roi_pix, neu_pix]), np.concatenate([roi_inv, neu_inv + n_roi_seg]),
        all_rows, seg_out, len(tables) * N, dtype, Y * X, chunk_frames, check_nan,
    )
    acc = _GridAccumulator(grid, N, max_per_bin=_max_per_bin(pattern, grid), with_neuropil=neuropil is not None)
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
        acq, observed = st[0], st[-1]
        sums, bad = gather(frames, k0, acq)  # (c, N [+ N])
        if bad is not None:
            row_values = frames[bad[0]].reshape(Y, X)[int(all_rows[bad[1]])]
            raise _nan_error(k0 + bad[0], bad[1], all_rows, n_roi_seg, roi_seg, neu_seg, ids,
                             infinite=not np.isnan(row_values).any())
        w, rel = st[1], st[2]
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = np.where(observed, sums[:, :N] / w, np.nan)
        times = np.where(observed, timing.starts[k0:k1, None] + rel, np.nan)
        fneu = None
        if neu_seg is not None:
            wn = st[3]
            with np.errstate(invalid="ignore", divide="ignore"):
                fneu = np.where(observed, sums[:, N:] / wn, np.nan)
            vals = vals - neuropil * fneu
        acc.add(vals, times, fneu)
        _release_pages(block)
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


def _nan_error(frame: int, s: int, all_rows: np.ndarray, n_roi_seg: int, roi_seg: _Segments,
               neu_seg: _Segments | None, ids: np.ndarray, *, infinite: bool = False) -> ValueError:
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
    seg = _Segments(roi=roi_arr, row=np.concatenate(seg_row), weight=np.ones(roi_arr.size),
                    offset=offs, n_rois=N)
    grid = pattern.fine_grid(factor)
    timing = _Timing(pattern)
    stats = _SweepStats(timing, [seg], min_coverage, T)
    n_acquired = stats.n_observed
    if np.any(n_acquired == 0):
        raise _never_observed_error(ids[n_acquired == 0], min_coverage, what="listed rows")
    acc = _GridAccumulator(grid, N, max_per_bin=_max_per_bin(pattern, grid), with_neuropil=Fneu is not None)
    n_observed = np.zeros(N, dtype=np.int64)
    dropped = 0
    chunk_frames = max(1, int(chunk_frames))
    for k0 in range(0, T, chunk_frames):
        k1 = min(k0 + chunk_frames, T)
        st = stats.sweeps(k0, k1)
        acquired = st[-1]
        tmean = timing.starts[k0:k1, None] + st[2]
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
