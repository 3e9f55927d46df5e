"""What each sweep acquires of each ROI, in (ROI, row) *segments*.

An ROI (or its neuropil annulus) is split into segments, one per image row it covers: the
segment's pixel count (``weight``) and the sum of its pixels' time offsets along the line. A
sweep acquires a segment when it acquires the segment's row. From the scan pattern alone,
:class:`SweepStats` gives for any block of sweeps which segments are acquired, each ROI's
acquired weight and the mean acquisition time of its acquired pixels (a :class:`SweepBlock`);
:class:`SegmentSummer` sums a chunk of movie frames over each segment's pixels. Both are used
by :mod:`napari_sbtt.core.traces` (through :mod:`napari_sbtt.core.gather` for the pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import scipy.sparse as sp

from .scan import ScanPattern

__all__ = ["RowTiming", "Segments", "SegmentSummer", "segments_from_pixels", "SweepStats", "SweepBlock",
           "SegmentGroup"]

_EPS = 1e-9


class RowTiming:
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


class SegmentGroup(NamedTuple):
    """Segments of one pixel count, gathered together by :class:`SegmentSummer`."""

    segments: np.ndarray  # (S_L,) segment numbers
    length: int  # L, pixels per segment
    offset: int  # where the group's pixel indices start in SegmentSummer.index
    size: int  # L * S_L (twice that for a lone segment)


class SegmentTable(NamedTuple):
    """Segments of one pixel count and their (L, S_L) pixel indices."""

    segments: np.ndarray
    pixels: np.ndarray


@dataclass
class Segments:
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


class SegmentSummer:
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
        self.groups: list[SegmentGroup] = []
        self.tables: list[SegmentTable] = []
        index = []
        offset = 0
        for L in np.unique(lens[lens > 0]):
            segs = np.flatnonzero(lens == L)
            segs = segs[np.argsort(pix[starts[segs]], kind="stable")]  # by address: cache-friendly
            idx = pix[starts[segs][None, :] + np.arange(L)[:, None]]  # (L, S_L): layout [l][s]
            self.tables.append(SegmentTable(segs, np.ascontiguousarray(idx.T).T))  # rows of idx.T: one segment
            if segs.size == 1:
                idx = np.repeat(idx, 2, axis=1)  # see the class notes
            index.append(idx.reshape(-1))
            self.groups.append(SegmentGroup(segs, int(L), offset, idx.size))
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


def segments_from_pixels(member_roi: np.ndarray, member_pix: np.ndarray, n_rois: int, n_cols: int,
                          offsets: np.ndarray) -> tuple[Segments, np.ndarray]:
    """Segments of pixel memberships; also the segment index of every membership."""
    row = member_pix // n_cols
    key = member_roi.astype(np.int64) * (1 << 32) + row
    ukey, inv = np.unique(key, return_inverse=True)
    inv = inv.reshape(-1)
    seg = Segments(
        roi=(ukey >> 32).astype(np.int64),
        row=(ukey & ((1 << 32) - 1)).astype(np.int64),
        weight=np.bincount(inv, minlength=ukey.size).astype(np.float64),
        offset=np.bincount(inv, weights=offsets[member_pix % n_cols], minlength=ukey.size),
        n_rois=n_rois,
    )
    return seg, inv


class SweepBlock(NamedTuple):
    """What a block of m sweeps acquires (:meth:`SweepStats.sweeps`); N ROIs, S segments."""

    acquired: np.ndarray  # (m, S) bool: the segment's row was acquired (all tables)
    weight: np.ndarray  # (m, N) acquired pixels of each ROI
    rel: np.ndarray  # (m, N) mean acquisition time of those pixels from the sweep start, s
    observed: np.ndarray  # (m, N) bool: the sweep observes the ROI (min_coverage, and neuropil)
    neuropil_weight: np.ndarray | None = None  # (m, N) acquired annulus pixels
    neuropil_rel: np.ndarray | None = None  # (m, N) their mean time from the sweep start, s


class SweepStats:
    """What each sweep acquires of each ROI: a function of the scan pattern alone.

    For a block of sweeps (rows of line indices ``li``) it gives a :class:`SweepBlock`: the
    acquired segments of every table (the ROI's segments and, optionally, its neuropil
    segments), and per table the acquired weight (pixels) and mean acquisition time relative to
    the sweep start of each ROI.
    When the pattern's cycle is short these are computed once per cycle entry
    and looked up per chunk; else per chunk. The arithmetic is the same both
    ways, so the result does not depend on it.
    """

    _MAX_TABLE = 1 << 22  # cycle entries x segments kept as tables

    def __init__(self, timing: RowTiming, tables: Sequence[Segments], min_coverage: float,
                 n_sweeps: int) -> None:
        if not 1 <= len(tables) <= 2:
            raise ValueError("SweepStats takes the ROI segments and at most one neuropil table")
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
        parts: list[SweepBlock] = []
        step = max(1, (1 << 21) // max(S, 1))
        for e0 in range(0, C, step):
            e1 = min(e0 + step, C)
            st = self._compute(timing.cycle_line_index(e0, e1))
            self.n_observed += (st.observed * uses[e0:e1, None]).sum(axis=0)
            if keep:
                parts.append(st)
        self._table = SweepBlock(*(None if a[0] is None else np.concatenate(a) for a in zip(*parts, strict=True))
                                 ) if keep else None

    def _compute(self, li: np.ndarray) -> SweepBlock:
        rel_row, d_row = self.timing.rel_rows(li)
        acq = li[:, self.rows] >= 0
        rel_seg, d_seg = rel_row[:, self.rows], d_row[:, self.rows]
        out: list[np.ndarray] = []
        observed = None
        for i, (seg, ind) in enumerate(zip(self.tables, self.inds, strict=True)):
            s = slice(self.bounds[i], self.bounds[i + 1])
            a = acq[:, s]
            w = np.asarray((a * seg.weight) @ ind)
            tsum = np.asarray((a * (rel_seg[:, s] * seg.weight + d_seg[:, s] * seg.offset)) @ ind)
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = tsum / w
            out += [w, rel]
            ok = w >= self.total * (self.min_coverage - _EPS) if i == 0 else w > 0
            observed = ok if observed is None else observed & ok
        return SweepBlock(acq, out[0], out[1], observed, *out[2:])

    def sweeps(self, k0: int, k1: int) -> SweepBlock:
        """What sweeps k0..k1-1 acquire."""
        if self._table is not None:
            e = np.arange(k0, k1) % self.timing.n_cycle
            return SweepBlock(*(None if a is None else a[e] for a in self._table))
        return self._compute(self.timing.line_index(k0, k1))

    def sums(self, i: int, acq: np.ndarray, seg_sums: np.ndarray) -> np.ndarray:
        """(m, N) sums of the acquired segments of table i; ``seg_sums`` (m, S) must be finite."""
        s = slice(self.bounds[i], self.bounds[i + 1])
        return np.asarray((seg_sums[:, s] * acq[:, s]) @ self.inds[i])
