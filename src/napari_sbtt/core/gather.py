"""Summing a chunk of movie frames over the ROI segments each sweep acquired.

:class:`ChunkSums` reads only the pixels of acquired segments (``np.take`` straight from the
movie: a memory-mapped movie is never copied, and pages of rows a sweep did not acquire are not
touched), in one of the ways of :data:`GATHER_MODES`, all bit-identical; :func:`release_pages`
unmaps a consumed chunk of a memory-mapped movie from the process.
"""

from __future__ import annotations

import mmap
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from .scan import ScanPattern
from .segments import SegmentSummer, SweepStats

__all__ = ["ChunkSums", "ChunkResult", "PhaseGather", "GATHER_MODES", "release_pages"]

#: how :class:`ChunkSums` gathers: "auto" (default: by the pattern), or one way for tests and
#: benchmarks: "phase", "pairs", "mixed" (pairs or all per chunk) or "all"
GATHER_MODES = ("auto", "phase", "pairs", "mixed", "all")


class ChunkResult(NamedTuple):
    """Sums of a chunk: ``sums`` (c, n_out) float64 per ROI (and annulus) of each sweep, and
    ``bad``, the first (frame in chunk, segment) whose acquired pixels hold NaN or inf, or None."""

    sums: np.ndarray
    bad: tuple[int, int] | None


class PhaseGather(NamedTuple):
    """One cycle entry of a periodic pattern: the summer of its acquired segments, those
    segments, and the sparse (n_out, n_segments) map that adds them into ROIs."""

    summer: SegmentSummer
    segments: np.ndarray
    combine: sp.csc_matrix


class ChunkSums:
    """Per chunk of frames: each ROI's (and annulus') sum over its segments acquired in each sweep.

    Only the pixels of acquired segments are read. Strategies (``gather``, one of
    :data:`GATHER_MODES`):

    - ``"phase"`` (periodic patterns): sweeps ``k`` and ``k + len(cycle)`` acquire
      the same segments, so each cycle entry (phase) gets its own
      :class:`SegmentSummer` over just its acquired segments, and one
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

    def __init__(self, pattern: ScanPattern, stats: SweepStats, pix: np.ndarray, seg: np.ndarray,
                 seg_rows: np.ndarray, seg_out: np.ndarray, n_out: int, dtype: np.dtype,
                 frame_size: int, chunk_frames: int, check_nan: bool, gather: str = "auto") -> None:
        if gather not in GATHER_MODES:
            raise ValueError(f"gather must be one of {GATHER_MODES}, got {gather!r}")
        self.stats = stats
        self.seg_out = seg_out
        self.n_out = n_out
        self.frame_size = frame_size
        self.check_nan = check_nan
        S = seg_rows.size
        self.n_seg = S
        self.all = SegmentSummer(pix, seg, S, dtype)
        self.seg_len = np.bincount(seg, minlength=S).astype(np.float64)
        self.n_member = max(1, pix.size)
        C = self.n_cycle = len(pattern.cycle)
        mode = gather
        if mode == "auto":
            mode = "mixed"
            if max(1, chunk_frames // 8) >= C:
                per_row = np.bincount(seg_rows[seg], minlength=pattern.n_rows)
                if sum(int(per_row[r].sum()) for r in pattern.cycle) <= self._PHASE_INDEX_BUDGET:
                    mode = "phase"
        self.mode = mode
        self.phases: list[PhaseGather | None] = []
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
                summer = SegmentSummer(pix[mem], local[seg[mem]], sel.size, dtype)
                local[sel] = -1
                comb = sp.csc_matrix((np.ones(sel.size), (seg_out[sel], np.arange(sel.size))),
                                     shape=(n_out, sel.size))
                self.phases.append(PhaseGather(summer, sel, comb))

    def __call__(self, frames: np.ndarray, k0: int, acq: np.ndarray) -> ChunkResult:
        """Frames (c, Y * X) of sweeps k0.. and their acquired segments (c, S) -> the sums and the
        first non-finite one (:class:`ChunkResult`)."""
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
        return ChunkResult(out, bad)

    def _by_phase(self, frames: np.ndarray, k0: int) -> ChunkResult:
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
        return ChunkResult(out, bad)


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


def release_pages(block: Any) -> None:
    """Unmap the pages of a consumed ``np.memmap`` chunk from this process (file data stays cached).

    Without this, every page of a memory-mapped movie that was read stays mapped,
    so the process's resident size (RSS) grows to the size of the file even
    though the kernel could drop those pages at any time. Only shared mappings
    (modes ``r``, ``r+``, ``w+``) are released, never copy-on-write ones
    (mode ``c``), whose private changes would be lost.
    """
    if getattr(block, "mode", "c") != "c" and hasattr(mmap, "MADV_DONTNEED"):
        _advise(block, mmap.MADV_DONTNEED)
