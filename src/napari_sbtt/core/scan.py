"""Scan patterns: which rows each sweep acquires, and exactly when.

A recording is a sequence of *sweeps* (frames). Sweep ``k`` acquires a list of
rows in order, one row per ``line_period`` seconds, then the slow mirror flies
back for ``flyback`` seconds. So sweep ``k`` lasts
``len(rows_k) * line_period + flyback`` seconds; when ``frame_period`` is given
the sweeps are instead clocked at ``t0 + k * frame_period`` (the frame clock of
most microscopes), which must be at least as long as every sweep.

Timing conventions (all in seconds):

- the line that acquires the ``j``-th row of sweep ``k`` (``j`` counted from 0
  in acquisition order) starts at ``sweep_start[k] + j * line_period``;
- a row's acquisition time is the *centre* of its line,
  ``line start + line_period / 2``;
- pixel ``x`` of ``n_cols`` pixels in a forward line is acquired at
  ``line start + (x + 0.5) / n_cols * line_period``; with ``bidirectional=True``
  (resonant/fast-axis bidirectional scanning) odd lines of a sweep (``j`` odd)
  run backwards, so pixel ``x`` is at ``line start + (n_cols - x - 0.5) / n_cols
  * line_period``. The row centre is the same either way.

Patterns are stored compactly as a *cycle* of per-sweep row lists repeated over
``n_sweeps`` sweeps (a full raster is a cycle of one; random lines are a cycle
as long as the recording).

When the microscope logs when each frame started (ScanImage's
``frameTimestamps_sec``), ``sweep_starts`` gives those times instead of a
perfect clock: sweep ``k`` starts at ``sweep_starts[k]`` and the last sweep
lasts ``frame_period`` (if given) or the median gap between starts.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .limits import (
    MAX_FACTOR,
    MAX_FRAME_PERIOD_S,
    MAX_IMAGE_SIDE,
    MAX_LINE_PERIOD_S,
    MAX_SWEEPS,
    MIN_FRAME_PERIOD_S,
    MIN_LINE_PERIOD_S,
)

__all__ = ["ScanPattern", "FineGrid", "ScanMismatchError"]

_FORMAT = "napari-sbtt.scan-pattern"
_FORMAT_VERSION = 2  # 2: optional "sweep_starts_s" (files without it are written as version 1)


class ScanMismatchError(ValueError):
    """A scan pattern does not fit the movie or traces it is used with."""


@dataclass(frozen=True)
class FineGrid:
    """The time grid of the result: ``n_bins`` bins of ``bin_width`` seconds from ``t0``.

    Bin ``i`` covers ``[t0 + i * bin_width, t0 + (i + 1) * bin_width)``.
    """

    t0: float
    bin_width: float
    n_bins: int

    @property
    def centres(self) -> np.ndarray:
        """Bin centres in seconds, shape (n_bins,)."""
        return self.t0 + (np.arange(self.n_bins) + 0.5) * self.bin_width

    @property
    def edges(self) -> np.ndarray:
        """Bin edges in seconds, shape (n_bins + 1,)."""
        return self.t0 + np.arange(self.n_bins + 1) * self.bin_width

    @property
    def rate_hz(self) -> float:
        """Sampling rate of the grid in Hz."""
        return 1.0 / self.bin_width

    def index(self, times: np.ndarray) -> np.ndarray:
        """Bin index of each time (seconds); NaN times give -1. Same shape as ``times``.

        Times outside the grid raise ``ValueError``.
        """
        times = np.asarray(times, dtype=float)
        idx = np.full(times.shape, -1, dtype=np.int64)
        ok = np.isfinite(times)
        # a tiny tolerance keeps times that sit exactly on an edge in the later bin
        raw = (times[ok] - self.t0) / self.bin_width
        idx[ok] = np.floor(raw + 1e-9).astype(np.int64)
        if ok.any() and (idx[ok].min() < 0 or idx[ok].max() >= self.n_bins):
            raise ValueError(
                f"times from {np.nanmin(times):.6g} s to {np.nanmax(times):.6g} s fall outside "
                f"the fine grid [{self.t0:.6g}, {self.t0 + self.n_bins * self.bin_width:.6g}) s"
            )
        return idx


def _as_rows(rows: Sequence[int] | np.ndarray, n_rows: int, where: str) -> np.ndarray:
    arr = np.asarray(rows)
    if arr.ndim != 1:
        raise ValueError(f"{where}: a sweep's rows must be a 1-D list of row indices")
    if arr.size and not np.issubdtype(arr.dtype, np.integer) and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ValueError(f"{where}: row indices must be whole numbers, got {arr[:5]}")
    arr = arr.astype(np.int32)
    if arr.size and (arr.min() < 0 or arr.max() >= n_rows):
        raise ValueError(
            f"{where}: row indices must lie in 0..{n_rows - 1} (the movie has {n_rows} rows), "
            f"got {int(arr.min())}..{int(arr.max())}"
        )
    if np.unique(arr).size != arr.size:
        raise ValueError(f"{where}: a row is listed twice in one sweep; list each row once")
    arr.setflags(write=False)
    return arr


class ScanPattern:
    """Which rows each sweep acquires and when.

    Parameters
    ----------
    n_rows
        Rows in the field of view (Y).
    cycle
        Per-sweep row lists, each in acquisition order; sweep ``k`` uses
        ``cycle[k % len(cycle)]``.
    n_sweeps
        Number of sweeps (frames, T) in the recording.
    line_period
        Seconds per acquired line (for bidirectional scanning: per direction).
    flyback
        Seconds after the last line of a sweep before the next sweep starts.
        Ignored for the timing when ``frame_period`` is given.
    frame_period
        Optional fixed sweep clock in seconds; must be >= every sweep's duration.
    t0
        Start time of sweep 0 in seconds.
    bidirectional
        Fast-axis bidirectional scanning: odd lines of each sweep run backwards.
    sweep_starts
        Optional (n_sweeps,) start time of every sweep in seconds, strictly
        increasing (measured frame timestamps). Each gap must be at least that
        sweep's lines (``len(rows) * line_period``). ``t0`` is then
        ``sweep_starts[0]``; ``frame_period``, if given, is the duration of the
        last sweep (else the median gap is), and ``flyback`` is not used for timing.
    """

    def __init__(
        self,
        n_rows: int,
        cycle: Sequence[Sequence[int] | np.ndarray],
        n_sweeps: int,
        line_period: float,
        *,
        flyback: float = 0.0,
        frame_period: float | None = None,
        t0: float = 0.0,
        bidirectional: bool = False,
        sweep_starts: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        if int(n_rows) != n_rows or not 1 <= n_rows <= MAX_IMAGE_SIDE:
            raise ValueError(f"n_rows must be a whole number from 1 to {MAX_IMAGE_SIDE}, got {n_rows}")
        if int(n_sweeps) != n_sweeps or not 1 <= n_sweeps <= MAX_SWEEPS:
            raise ValueError(f"n_sweeps must be a whole number from 1 to {MAX_SWEEPS}, got {n_sweeps}")
        if not (math.isfinite(line_period) and MIN_LINE_PERIOD_S <= line_period <= MAX_LINE_PERIOD_S):
            raise ValueError(f"line_period must be a number of seconds from {MIN_LINE_PERIOD_S:g} to "
                             f"{MAX_LINE_PERIOD_S:g} (one scanned line), got {line_period}")
        if not (math.isfinite(flyback) and 0 <= flyback <= MAX_FRAME_PERIOD_S):
            raise ValueError(f"flyback must be from 0 to {MAX_FRAME_PERIOD_S:g} seconds, got {flyback}")
        if not math.isfinite(t0):
            raise ValueError(f"t0 must be a finite time in seconds, got {t0}")
        if len(cycle) < 1:
            raise ValueError("cycle must hold at least one sweep's row list")
        self.n_rows = int(n_rows)
        self.n_sweeps = int(n_sweeps)
        self.line_period = float(line_period)
        self.flyback = float(flyback)
        self.t0 = float(t0)
        self.bidirectional = bool(bidirectional)
        self.cycle: tuple[np.ndarray, ...] = tuple(
            _as_rows(r, self.n_rows, f"sweep {i} of the cycle") for i, r in enumerate(cycle)
        )
        longest = max(r.size for r in self.cycle) * self.line_period
        if frame_period is None and self.flyback == 0 and sweep_starts is None and any(r.size == 0 for r in self.cycle):
            raise ValueError(
                "a sweep that acquires no rows would last no time (flyback is 0); pass "
                "frame_period= (the microscope's frame clock) or a flyback > 0"
            )
        if frame_period is not None:
            frame_period = float(frame_period)
            if not (math.isfinite(frame_period) and MIN_FRAME_PERIOD_S <= frame_period <= MAX_FRAME_PERIOD_S):
                raise ValueError(f"frame_period must be a number of seconds from {MIN_FRAME_PERIOD_S:g} to "
                                 f"{MAX_FRAME_PERIOD_S:g}, got {frame_period}")
            if frame_period < longest * (1 - 1e-9):
                raise ValueError(
                    f"frame_period {frame_period:.6g} s is shorter than the longest sweep "
                    f"({longest:.6g} s = {longest / self.line_period:.0f} lines x "
                    f"{self.line_period:.6g} s); lengthen frame_period or shorten line_period"
                )
        self._frame_period = frame_period
        self._sweep_starts: np.ndarray | None = None
        if sweep_starts is not None:
            self._sweep_starts = self._check_sweep_starts(sweep_starts, t0)
            self.t0 = float(self._sweep_starts[0])

    def _check_sweep_starts(self, sweep_starts: Sequence[float] | np.ndarray, t0: float) -> np.ndarray:
        st = np.array(sweep_starts, dtype=np.float64)
        if st.shape != (self.n_sweeps,):
            raise ValueError(f"sweep_starts must hold one start time per sweep ({self.n_sweeps}), got shape {st.shape}")
        if not np.all(np.isfinite(st)):
            raise ValueError("sweep_starts must be finite times in seconds (no NaN or inf)")
        if t0 != 0.0 and t0 != st[0]:
            raise ValueError(f"t0 ({t0}) and sweep_starts[0] ({st[0]}) disagree; give only sweep_starts")
        gaps = np.diff(st)
        lines = np.resize(np.array([r.size for r in self.cycle], dtype=float), self.n_sweeps) * self.line_period
        short = np.flatnonzero(gaps < lines[:-1] * (1 - 1e-9))
        if gaps.size and (gaps.min() <= 0 or short.size):
            k = int(np.flatnonzero(gaps <= 0)[0]) if gaps.min() <= 0 else int(short[0])
            raise ValueError(
                f"sweep {k + 1} starts {gaps[k]:.6g} s after sweep {k}, which needs {lines[k]:.6g} s for its "
                f"lines; sweep start times must increase by at least each sweep's lines x line_period")
        if self._frame_period is None and self.n_sweeps == 1 and lines[0] == 0 and self.flyback == 0:
            raise ValueError("a single sweep without rows has no duration; pass frame_period=")
        st.setflags(write=False)
        return st

    # ------------------------------------------------------------------ constructors
    @classmethod
    def full_raster(
        cls,
        n_rows: int,
        n_sweeps: int,
        line_period: float,
        *,
        flyback: float = 0.0,
        frame_period: float | None = None,
        t0: float = 0.0,
        bidirectional: bool = False,
        sweep_starts: Sequence[float] | np.ndarray | None = None,
    ) -> "ScanPattern":
        """Every row in every sweep, top to bottom (``sweep_starts``: measured start times, see the class)."""
        return cls(
            n_rows, [np.arange(n_rows)], n_sweeps, line_period, flyback=flyback,
            frame_period=frame_period, t0=t0, bidirectional=bidirectional, sweep_starts=sweep_starts,
        )

    @classmethod
    def strips(
        cls,
        n_rows: int,
        n_sweeps: int,
        line_period: float,
        n_strips: int,
        *,
        order: str = "sequential",
        strips_per_sweep: int = 1,
        flyback: float = 0.0,
        frame_period: float | None = None,
        t0: float = 0.0,
        bidirectional: bool = False,
    ) -> "ScanPattern":
        """Split the field into ``n_strips`` contiguous horizontal strips and visit them round-robin.

        Each sweep acquires ``strips_per_sweep`` strips (top to bottom). ``order``:
        ``"sequential"`` visits strips 0, 1, 2, ...; ``"interleaved"`` visits the
        even-numbered strips then the odd ones (0, 2, 4, 1, 3, 5), so consecutive
        sweeps land far apart. Strips differ by at most one row when ``n_rows`` is
        not a multiple of ``n_strips``.
        """
        if not 1 <= n_strips <= n_rows:
            raise ValueError(f"n_strips must lie in 1..{n_rows} (the number of rows), got {n_strips}")
        if not 1 <= strips_per_sweep <= n_strips:
            raise ValueError(f"strips_per_sweep must lie in 1..n_strips={n_strips}, got {strips_per_sweep}")
        if n_strips % strips_per_sweep:
            raise ValueError(
                f"n_strips ({n_strips}) must be a multiple of strips_per_sweep ({strips_per_sweep}) "
                "so every sweep acquires the same number of strips"
            )
        bounds = np.linspace(0, n_rows, n_strips + 1).round().astype(int)
        strips = [np.arange(bounds[i], bounds[i + 1]) for i in range(n_strips)]
        if order == "sequential":
            visit = list(range(n_strips))
        elif order == "interleaved":
            visit = list(range(0, n_strips, 2)) + list(range(1, n_strips, 2))
        else:
            raise ValueError(f"order must be 'sequential' or 'interleaved', got {order!r}")
        cycle = []
        for i in range(0, n_strips, strips_per_sweep):
            chosen = sorted(visit[i : i + strips_per_sweep])
            cycle.append(np.concatenate([strips[s] for s in chosen]))
        return cls(
            n_rows, cycle, n_sweeps, line_period, flyback=flyback,
            frame_period=frame_period, t0=t0, bidirectional=bidirectional,
        )

    @classmethod
    def random_lines(
        cls,
        n_rows: int,
        n_sweeps: int,
        line_period: float,
        fraction: float,
        *,
        seed: int = 0,
        flyback: float = 0.0,
        frame_period: float | None = None,
        t0: float = 0.0,
        bidirectional: bool = False,
    ) -> "ScanPattern":
        """Each sweep acquires ``round(fraction * n_rows)`` rows drawn at random, top to bottom.

        Rows are drawn without replacement, independently per sweep, from
        ``numpy.random.default_rng(seed)``.
        """
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
        k = max(1, int(round(fraction * n_rows)))
        rng = np.random.default_rng(seed)
        cycle = [np.sort(rng.choice(n_rows, size=k, replace=False)) for _ in range(n_sweeps)]
        return cls(
            n_rows, cycle, n_sweeps, line_period, flyback=flyback,
            frame_period=frame_period, t0=t0, bidirectional=bidirectional,
        )

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Sequence[int]],
        n_rows: int,
        line_period: float,
        *,
        n_sweeps: int | None = None,
        flyback: float = 0.0,
        frame_period: float | None = None,
        t0: float = 0.0,
        bidirectional: bool = False,
        sweep_starts: Sequence[float] | np.ndarray | None = None,
    ) -> "ScanPattern":
        """An explicit list of per-sweep row lists, each in acquisition order.

        With ``n_sweeps`` larger than ``len(rows)`` the list repeats as a cycle.
        """
        return cls(
            n_rows, rows, len(rows) if n_sweeps is None else n_sweeps, line_period,
            flyback=flyback, frame_period=frame_period, t0=t0, bidirectional=bidirectional,
            sweep_starts=sweep_starts,
        )

    @classmethod
    def from_mask(
        cls,
        mask: np.ndarray,
        line_period: float,
        *,
        flyback: float = 0.0,
        frame_period: float | None = None,
        t0: float = 0.0,
        bidirectional: bool = False,
        sweep_starts: Sequence[float] | np.ndarray | None = None,
    ) -> "ScanPattern":
        """From a bool frame mask (T, Y), True where a row was acquired; rows acquired top to bottom.

        A (T, Y, X) mask is accepted when every row is either fully acquired or
        not at all.
        """
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise ValueError(f"mask must be boolean (True = acquired), got dtype {mask.dtype}")
        if mask.ndim == 3:
            rows = mask.any(axis=2)
            if not np.array_equal(rows, mask.all(axis=2)):
                raise ValueError(
                    "a (T, Y, X) mask must acquire whole rows; partly acquired rows cannot be "
                    "timed by a line scan pattern. Pass a (T, Y) row mask instead"
                )
            mask = rows
        if mask.ndim != 2:
            raise ValueError(f"mask must have shape (T, Y) or (T, Y, X), got shape {mask.shape}")
        cycle = _compress_cycle([np.flatnonzero(m) for m in mask])
        return cls(
            mask.shape[1], cycle, mask.shape[0], line_period, flyback=flyback,
            frame_period=frame_period, t0=t0, bidirectional=bidirectional, sweep_starts=sweep_starts,
        )

    @classmethod
    def from_movie(
        cls,
        movie: Any,
        line_period: float,
        *,
        flyback: float = 0.0,
        frame_period: float | None = None,
        t0: float = 0.0,
        bidirectional: bool = False,
        chunk_frames: int = 256,
    ) -> "ScanPattern":
        """Infer the pattern from a movie (T, Y, X) whose unacquired rows are NaN or constant zero.

        A row counts as not acquired when all its pixels are NaN, or all are
        exactly 0. The movie is read ``chunk_frames`` frames at a time.
        """
        mask = infer_row_mask(movie, chunk_frames=chunk_frames)
        return cls.from_mask(
            mask, line_period, flyback=flyback, frame_period=frame_period, t0=t0,
            bidirectional=bidirectional,
        )

    # ------------------------------------------------------------------ timing
    def rows_in_sweep(self, k: int) -> np.ndarray:
        """Rows acquired by sweep ``k``, in acquisition order (read-only int32 array)."""
        if not 0 <= k < self.n_sweeps:
            raise IndexError(f"sweep {k} is outside 0..{self.n_sweeps - 1}")
        return self.cycle[k % len(self.cycle)]

    def sweep_durations(self) -> np.ndarray:
        """Seconds from the start of each sweep to the start of the next, shape (T,).

        With measured ``sweep_starts`` these are the gaps between them; the last
        sweep lasts ``frame_period`` when given, else the median gap.
        """
        if self._sweep_starts is not None:
            st = self._sweep_starts
            gaps = np.diff(st)
            if self._frame_period is not None:
                last = self._frame_period
            elif gaps.size:
                last = float(np.median(gaps))
            else:
                last = self.cycle[0].size * self.line_period + self.flyback
            return np.append(gaps, last)
        if self._frame_period is not None:
            return np.full(self.n_sweeps, self._frame_period)
        per_cycle = np.array([r.size * self.line_period + self.flyback for r in self.cycle])
        return np.resize(per_cycle, self.n_sweeps)

    @property
    def has_sweep_starts(self) -> bool:
        """True when the sweeps start at measured times (``sweep_starts``), not on a clock."""
        return self._sweep_starts is not None

    def sweep_starts(self) -> np.ndarray:
        """Start time of each sweep in seconds, shape (T,)."""
        if self._sweep_starts is not None:
            return self._sweep_starts.copy()
        d = self.sweep_durations()
        starts = np.empty(self.n_sweeps)
        starts[0] = self.t0
        np.cumsum(d[:-1], out=starts[1:])
        starts[1:] += self.t0
        return starts

    @property
    def frame_period(self) -> float:
        """Seconds per sweep: the fixed clock if set (and no measured starts), else the mean sweep duration."""
        if self._frame_period is not None and self._sweep_starts is None:
            return self._frame_period
        return float(self.sweep_durations().mean())

    @property
    def is_uniform(self) -> bool:
        """True when every sweep lasts the same time (so frame_period is exact)."""
        d = self.sweep_durations()
        return bool(np.allclose(d, d[0], rtol=1e-12, atol=0))

    @property
    def duration(self) -> float:
        """Seconds from the start of sweep 0 to the end of the last sweep."""
        return float(self.sweep_durations().sum())

    def frame_mask(self) -> np.ndarray:
        """Bool (T, Y), True where row y was acquired in sweep k."""
        per_cycle = np.zeros((len(self.cycle), self.n_rows), dtype=bool)
        for i, r in enumerate(self.cycle):
            per_cycle[i, r] = True
        return per_cycle[np.arange(self.n_sweeps) % len(self.cycle)]

    def cycle_line_index(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Int32 (stop - start, Y): position j of each row in cycle entries start..stop-1, -1 if not acquired."""
        stop = len(self.cycle) if stop is None else stop
        out = np.full((stop - start, self.n_rows), -1, dtype=np.int32)
        for i in range(start, stop):
            r = self.cycle[i]
            out[i - start, r] = np.arange(r.size)
        return out

    def line_index(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Int32 (stop - start, Y): position j of each row within sweeps start..stop-1, -1 if not acquired.

        Only the cycle entries those sweeps use are built, so a chunk of a long
        random-lines recording costs memory for the chunk alone.
        """
        stop = self.n_sweeps if stop is None else stop
        k = np.arange(start, stop) % len(self.cycle)
        if stop - start >= len(self.cycle):
            return self.cycle_line_index()[k]
        out = np.full((stop - start, self.n_rows), -1, dtype=np.int32)
        for i, e in enumerate(k):
            r = self.cycle[e]
            out[i, r] = np.arange(r.size)
        return out

    def line_timing(self, line_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row centre times relative to the sweep start (s) and line directions, from a line index.

        line_index: int (..., Y) as :meth:`line_index` returns. Returns float64 times
        ``(j + 0.5) * line_period`` and int8 directions (+1 forward, -1 backward, 0 not
        acquired), both of the same shape.
        """
        li = np.asarray(line_index)
        rel = (li + 0.5) * self.line_period
        d = np.where(li < 0, 0, 1).astype(np.int8)
        if self.bidirectional:
            d[(li >= 0) & (li % 2 == 1)] = -1
        return rel, d

    def row_times(self) -> np.ndarray:
        """Float64 (T, Y): the centre time of each acquired row's line in seconds, NaN if not acquired."""
        j = self.line_index()
        rel, _ = self.line_timing(j)
        t = self.sweep_starts()[:, None] + rel
        t[j < 0] = np.nan
        return t

    def line_directions(self) -> np.ndarray:
        """Int8 (T, Y): +1 for a forward line, -1 for a backward line, 0 where not acquired."""
        return self.line_timing(self.line_index())[1]

    def pixel_offsets(self, n_cols: int) -> np.ndarray:
        """Float64 (n_cols,): a forward line's pixel times relative to the line centre, seconds.

        A backward line's offsets are the negatives; so the time of pixel x in
        row y of sweep k is ``row_times()[k, y] + line_directions()[k, y] * pixel_offsets(X)[x]``.
        """
        return ((np.arange(n_cols) + 0.5) / n_cols - 0.5) * self.line_period

    def fine_grid(self, factor: int) -> FineGrid:
        """The fine time grid with ``factor`` bins per sweep (bin = frame_period / factor)."""
        if isinstance(factor, bool) or int(factor) != factor or not 1 <= factor <= MAX_FACTOR:
            raise ValueError(f"factor must be a whole number from 1 to {MAX_FACTOR} (fine-grid bins per sweep), "
                             f"got {factor}")
        bw = self.frame_period / int(factor)
        n = int(math.ceil(self.duration / bw - 1e-9))
        return FineGrid(self.t0, bw, max(n, 1))

    # ------------------------------------------------------------------ summaries
    def acquired_fraction(self) -> float:
        """Share of the field's rows acquired per sweep, averaged over sweeps (0..1)."""
        sizes = np.array([r.size for r in self.cycle], dtype=float)
        return float(np.resize(sizes, self.n_sweeps).mean() / self.n_rows)

    def row_sample_rate(self) -> np.ndarray:
        """Float64 (Y,): how often each row is acquired, samples per second."""
        return self.frame_mask().sum(axis=0) / self.duration

    def check_movie(self, shape: Sequence[int], what: str = "movie") -> None:
        """Raise ``ScanMismatchError`` unless ``shape`` starts with (n_sweeps, n_rows)."""
        shape = tuple(int(s) for s in shape)
        if len(shape) < 2:
            raise ScanMismatchError(f"the {what} has shape {shape}; expected (T, Y, X)")
        problems = []
        if shape[0] != self.n_sweeps:
            problems.append(f"{shape[0]} frames but the scan pattern has {self.n_sweeps} sweeps")
        if shape[1] != self.n_rows:
            problems.append(f"{shape[1]} rows but the scan pattern has {self.n_rows} rows")
        if problems:
            raise ScanMismatchError(
                f"the scan pattern does not belong to this {what}: the {what} has "
                + " and ".join(problems)
                + ". Use the scan.json written with this movie, or rebuild the pattern for its shape"
            )

    def __repr__(self) -> str:
        return (
            f"ScanPattern(n_rows={self.n_rows}, n_sweeps={self.n_sweeps}, "
            f"cycle={len(self.cycle)} sweep(s), line_period={self.line_period:g} s, "
            f"frame_period={self.frame_period:g} s, acquired={self.acquired_fraction():.0%}"
            f"{', bidirectional' if self.bidirectional else ''}"
            f"{', measured sweep starts' if self._sweep_starts is not None else ''})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScanPattern):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times in seconds); ``sweep_starts_s`` only when the pattern has them."""
        d = {
            "format": _FORMAT,
            "version": 1 if self._sweep_starts is None else _FORMAT_VERSION,
            "n_rows": self.n_rows,
            "n_sweeps": self.n_sweeps,
            "line_period_s": self.line_period,
            "flyback_s": self.flyback,
            "frame_period_s": self._frame_period,
            "t0_s": self.t0,
            "bidirectional": self.bidirectional,
            "cycle": [r.tolist() for r in self.cycle],
        }
        if self._sweep_starts is not None:
            d["sweep_starts_s"] = self._sweep_starts.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str | os.PathLike | None = None) -> "ScanPattern":
        """Inverse of :meth:`to_dict`. Every field's JSON type is checked (``"no"`` is not a boolean,
        ``"0.001"`` not a number, ``32.0`` not a whole number); errors name ``source`` and the field."""
        where = f"{source}: " if source is not None else ""
        if not isinstance(d, dict):
            raise ValueError(f"{where}a scan pattern must be a JSON object, got a JSON {_json_kind(d)}; write it "
                             "with ScanPattern.to_json")
        if d.get("format") != _FORMAT:
            raise ValueError(
                f"{where}not a napari-sbtt scan pattern (format field is {d.get('format')!r}, "
                f"expected {_FORMAT!r})"
            )
        missing = [k for k in ("n_rows", "n_sweeps", "line_period_s", "cycle") if k not in d]
        if missing:
            raise ValueError(f"{where}scan pattern JSON lacks the field {missing[0]!r}")

        def bad(name: str, want: str) -> ValueError:
            v = d[name]
            return ValueError(f"{where}scan pattern field {name!r} must be {want}, got {v!r} "
                              f"(a JSON {_json_kind(v)})")

        version = d.get("version", 0)
        if not _is_int(version) or version < 0:
            raise bad("version", "a whole number")
        if version > _FORMAT_VERSION:
            raise ValueError(
                f"{where}scan pattern format version {version} is newer than this napari-sbtt "
                f"understands ({_FORMAT_VERSION}); upgrade napari-sbtt"
            )
        for name in ("n_rows", "n_sweeps"):
            if not _is_int(d[name]):
                raise bad(name, "a whole number")
        for name in ("line_period_s", "flyback_s", "t0_s"):
            if name in d and not _is_number(d[name]):
                raise bad(name, "a number of seconds")
        if d.get("frame_period_s") is not None and not _is_number(d["frame_period_s"]):
            raise bad("frame_period_s", "null or a number of seconds")
        if "bidirectional" in d and not isinstance(d["bidirectional"], bool):
            raise bad("bidirectional", "true or false")
        cycle = d["cycle"]
        if not isinstance(cycle, list) or not all(isinstance(r, list) and all(_is_int(i) for i in r)
                                                  for r in cycle):
            raise ValueError(f"{where}scan pattern field 'cycle' must be a list of per-sweep lists of row "
                             "indices (whole numbers)")
        try:
            return cls(
                d["n_rows"], cycle, d["n_sweeps"], d["line_period_s"],
                flyback=d.get("flyback_s", 0.0), frame_period=d.get("frame_period_s"),
                t0=d.get("t0_s", 0.0) if d.get("sweep_starts_s") is None else 0.0,
                bidirectional=d.get("bidirectional", False), sweep_starts=d.get("sweep_starts_s"),
            )
        except ValueError as e:
            raise ValueError(f"{where}{e}") from None

    def to_json(self, path: str | os.PathLike | None = None, *, overwrite: bool = False) -> str:
        """Serialise to JSON; with ``path``, also write it there atomically.

        An existing file is only replaced when ``overwrite=True``.
        """
        text = json.dumps(self.to_dict(), separators=(",", ":"))
        if path is not None:
            from .atomic import atomic_write_text

            atomic_write_text(path, text, overwrite=overwrite)
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> "ScanPattern":
        """From a JSON string or the path of a JSON file."""
        if isinstance(source, os.PathLike) or (
            isinstance(source, str) and not source.lstrip().startswith("{")
        ):
            p = Path(source)
            if not p.is_file():
                raise FileNotFoundError(f"scan pattern file not found: {p}")
            try:
                d = json.loads(p.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise ValueError(f"{p} is not valid JSON: {e}") from None
            return cls.from_dict(d, source=p)
        try:
            d = json.loads(source)
        except ValueError as e:
            raise ValueError(f"the scan pattern is not valid JSON: {e}") from None
        return cls.from_dict(d)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _json_kind(v: Any) -> str:
    for kind, name in ((bool, "boolean"), ((int, float), "number"), (str, "string"), (list, "array"),
                       (dict, "object")):
        if isinstance(v, kind):
            return name
    return "null" if v is None else type(v).__name__


def _compress_cycle(rows: list[np.ndarray]) -> list[np.ndarray]:
    """Shortest prefix that repeats to give ``rows`` (so a periodic mask stores one period)."""
    n = len(rows)
    for period in range(1, n + 1):
        if all(np.array_equal(rows[i], rows[i % period]) for i in range(period, n)):
            return rows[:period]
    return rows


def infer_row_mask(movie: Any, *, chunk_frames: int = 256) -> np.ndarray:
    """Bool (T, Y): True where a row holds data, False where it is all NaN or all exactly zero.

    ``movie`` is any (T, Y, X) array-like that supports slicing along T; it is
    read ``chunk_frames`` frames at a time.
    """
    shape = tuple(movie.shape)
    if len(shape) != 3:
        raise ValueError(f"movie must have shape (T, Y, X), got shape {shape}")
    out = np.empty(shape[:2], dtype=bool)
    for s in range(0, shape[0], chunk_frames):
        block = np.asarray(movie[s : s + chunk_frames])
        if np.issubdtype(block.dtype, np.floating):
            nan_row = np.isnan(block).all(axis=2)
        else:
            nan_row = np.zeros(block.shape[:2], dtype=bool)
        zero_row = ~np.any(block != 0, axis=2)
        out[s : s + chunk_frames] = ~(nan_row | zero_row)
    return out
