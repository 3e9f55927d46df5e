"""Chop a continuous recording into overlapping windows and merge estimates back.

A sequential autoencoder trains on trials of fixed length, but a two-photon
recording is one long stretch of time. :func:`make_windows` cuts the
observations (T, N) on the fine grid into overlapping windows ("trials") of
``length`` bins; after inference, :func:`merge_windows` blends the per-window
estimates (rates, latent factors, ...) back into one (T, M) array.

Conventions
-----------
- Time is counted in fine-grid bins; ``length`` and ``overlap`` are numbers of
  bins, never seconds (see :func:`choose_window` to convert from seconds).
- Window ``i`` covers bins ``starts[i] : starts[i] + length``.
- Windows step by ``stride = length - overlap`` bins from bin 0; when that
  leaves a remainder, one extra window is aligned to end exactly at bin T, so
  it overlaps its predecessor by more than ``overlap`` bins. There is never
  padding, every bin is covered, and every window is full length.
- NaN is the missing-data marker, both in the values and in estimates.

:func:`window_starts` is the single source of the start positions; use it (or
the ``starts`` returned by :func:`make_windows`) wherever windows are needed.
"""

from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = [
    "Windows",
    "window_starts",
    "make_windows",
    "window_weights",
    "merge_windows",
    "choose_window",
    "windows_at",
    "merge_range",
    "WindowStore",
    "WEIGHTINGS",
]

#: Names accepted by ``weighting`` in :func:`window_weights` / :func:`merge_windows`.
WEIGHTINGS: tuple[str, ...] = ("taper", "cosine", "uniform")


class Windows(NamedTuple):
    """Overlapping windows cut from one recording.

    Unpacks as ``values, starts = make_windows(...)``.

    Attributes
    ----------
    values : ndarray, shape (n_windows, length, N)
        Copies of the recording's bins, NaN where not observed; same floating
        dtype as the input (integer input becomes float64).
    starts : ndarray of int64, shape (n_windows,)
        First bin of each window on the recording's time grid (increasing).
    """

    values: np.ndarray
    starts: np.ndarray

    @property
    def n_windows(self) -> int:
        """Number of windows."""
        return int(self.values.shape[0])

    @property
    def length(self) -> int:
        """Bins per window."""
        return int(self.values.shape[1])

    @property
    def n_time(self) -> int:
        """Bins of the recording (the last window ends exactly there)."""
        return int(self.starts[-1]) + self.length


def _as_int(name: str, value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer number of bins, got {value!r}")
    return int(value)


def window_starts(n_time: int, length: int, overlap: int) -> np.ndarray:
    """First bin of every window that covers a recording of ``n_time`` bins.

    Parameters
    ----------
    n_time : int
        Bins in the recording (T).
    length : int
        Bins per window, ``1 <= length <= n_time``.
    overlap : int
        Bins shared by consecutive windows, ``0 <= overlap < length``. The
        last window may overlap its predecessor by more, because it is aligned
        to end exactly at ``n_time``.

    Returns
    -------
    ndarray of int64, shape (n_windows,)
        ``0, stride, 2 * stride, ...`` with ``stride = length - overlap``, plus
        ``n_time - length`` if the regular grid stops short of the end.

    Raises
    ------
    ValueError
        If ``length`` or ``overlap`` are out of range, or the recording is
        shorter than one window.
    """
    n_time = _as_int("n_time", n_time)
    length = _as_int("length", length)
    overlap = _as_int("overlap", overlap)
    if length < 1:
        raise ValueError(f"window length must be >= 1 bin, got {length}")
    if not 0 <= overlap < length:
        raise ValueError(
            f"overlap must satisfy 0 <= overlap < length (= {length}), got {overlap}; "
            f"use an overlap between 0 and {length - 1} bins"
        )
    if n_time < length:
        raise ValueError(
            f"recording has {n_time} bins but the window length is {length} bins; "
            f"use a window length <= {n_time} bins (or a longer recording)"
        )
    stride = length - overlap
    starts = np.arange(0, n_time - length + 1, stride, dtype=np.int64)
    if starts[-1] + length < n_time:
        starts = np.append(starts, np.int64(n_time - length))
    return starts


def make_windows(values: ArrayLike, length: int, overlap: int) -> Windows:
    """Cut a recording into overlapping windows of ``length`` bins.

    Parameters
    ----------
    values : array_like, shape (T, N)
        Observations on the fine grid (for example dF/F or spike counts per
        bin), NaN where the ROI was not observed. Extra trailing axes are
        carried along: (T, *rest) gives windows (n_windows, length, *rest).
    length : int
        Bins per window, ``1 <= length <= T``.
    overlap : int
        Bins shared by consecutive windows, ``0 <= overlap < length``.

    Returns
    -------
    Windows
        ``values`` (n_windows, length, N), a copy (writing to it does not touch
        the input), and ``starts`` (n_windows,) from :func:`window_starts`.
        The windows cover every bin; the last one ends exactly at T.

    Raises
    ------
    ValueError
        If ``values`` is not at least 1-D along time, or ``length`` /
        ``overlap`` do not fit (see :func:`window_starts`).

    Examples
    --------
    >>> x = np.arange(10.0)[:, None]
    >>> w, starts = make_windows(x, length=4, overlap=1)
    >>> starts.tolist()
    [0, 3, 6]
    >>> bool(np.array_equal(merge_windows(w, starts, 10), x))
    True
    """
    arr = np.asarray(values)
    if arr.ndim < 1:
        raise ValueError("values must have a time axis: expected shape (T, N), got a scalar")
    if arr.ndim == 1:
        raise ValueError(
            f"values must be (T, N), got shape {arr.shape}; "
            "for a single trace pass values[:, None]"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    starts = window_starts(arr.shape[0], length, overlap)
    index = starts[:, None] + np.arange(length, dtype=np.int64)[None, :]
    return Windows(values=arr[index], starts=starts)


def _taper(ramp: np.ndarray, weighting: str) -> np.ndarray:
    """Map ramp positions in (0, 1) to taper weights in (0, 1)."""
    if weighting == "taper":
        return ramp
    # "cosine": raised-cosine cross-fade; sin^2 + cos^2 = 1 across a pair.
    return np.sin(0.5 * np.pi * ramp) ** 2


def window_weights(
    starts: ArrayLike,
    length: int,
    *,
    weighting: str | ArrayLike = "taper",
) -> np.ndarray:
    """Per-bin weight of every window in the overlap average.

    Parameters
    ----------
    starts : array_like of int, shape (n_windows,)
        Window starts, strictly increasing (as from :func:`window_starts`).
    length : int
        Bins per window.
    weighting : {"taper", "cosine", "uniform"} or array_like, shape (length,)
        - ``"taper"`` (default): inside the bins that a window shares with its
          neighbour, its weight ramps linearly, ``(j + 0.5) / L`` at the j-th
          shared bin counted from the window's edge, for an overlap of L bins;
          elsewhere 1. Two neighbours' ramps sum to exactly 1 (a cross-fade),
          so each window's edge bins, where a recurrent model's estimate is
          worst (little context), count least.
        - ``"cosine"``: the same with a raised-cosine ramp ``sin^2(pi/2 * r)``.
        - ``"uniform"``: every bin weighs 1 (plain mean of the estimates).
        - an array of ``length`` strictly positive finite numbers: the same
          fixed profile for every window.

        Tapers use the actual overlap with each neighbour, so the last window
        (aligned to the end of the recording) gets a longer ramp. Where a
        window's two ramps meet (overlap > length / 2) they are multiplied.
        The recording's first and last bins are in no overlap and weigh 1:
        no weight is ever 0.

    Returns
    -------
    ndarray, float64, shape (n_windows, length)
        Strictly positive weights.
    """
    length = _as_int("length", length)
    starts_arr = np.asarray(starts)
    if starts_arr.ndim != 1 or starts_arr.size == 0:
        raise ValueError(f"starts must be a non-empty 1-D array, got shape {starts_arr.shape}")
    n_windows = starts_arr.size

    if not isinstance(weighting, str):
        profile = np.asarray(weighting, dtype=np.float64)
        if profile.shape != (length,):
            raise ValueError(
                f"a weighting array must have shape (length,) = ({length},), "
                f"got {profile.shape}"
            )
        if not (np.all(np.isfinite(profile)) and np.all(profile > 0)):
            raise ValueError(
                "a weighting array must be finite and strictly positive; "
                "add a small floor (e.g. np.maximum(w, 1e-3)) to zero entries"
            )
        return np.broadcast_to(profile, (n_windows, length)).copy()

    if weighting not in WEIGHTINGS:
        raise ValueError(
            f"unknown weighting {weighting!r}; use one of {WEIGHTINGS} or an array of "
            "shape (length,)"
        )
    weights = np.ones((n_windows, length), dtype=np.float64)
    if weighting == "uniform" or n_windows == 1:
        return weights

    starts_i = starts_arr.astype(np.int64)
    # overlap of window i with window i + 1, in bins, clipped to [0, length]
    shared = np.clip(starts_i[:-1] + length - starts_i[1:], 0, length)
    j = np.arange(length, dtype=np.float64)
    for i in range(n_windows):
        left = int(shared[i - 1]) if i > 0 else 0
        right = int(shared[i]) if i < n_windows - 1 else 0
        if left > 0:
            weights[i, :left] *= _taper((j[:left] + 0.5) / left, weighting)
        if right > 0:
            weights[i, length - right :] *= _taper((j[:right][::-1] + 0.5) / right, weighting)
    return weights


def merge_windows(
    estimates: ArrayLike,
    starts: ArrayLike,
    n_time: int,
    *,
    weighting: str | ArrayLike = "taper",
) -> np.ndarray:
    """Blend per-window estimates back into one recording-long array.

    Each bin's value is the weighted mean of the estimates of all windows that
    cover it, with the weights of :func:`window_weights`.

    Parameters
    ----------
    estimates : array_like, shape (n_windows, length, M)
        One estimate per window and bin; M need not equal the N of the
        observations (for example M latent factors). Trailing axes beyond the
        third are carried along. NaN entries are left out of the average.
        Values are expected to be finite or NaN.
    starts : array_like of int, shape (n_windows,)
        The window starts that :func:`make_windows` returned (strictly
        increasing).
    n_time : int
        Bins in the recording (T). Every bin must be covered by a window.
    weighting : {"taper", "cosine", "uniform"} or array_like, shape (length,)
        See :func:`window_weights`; default ``"taper"``.

    Returns
    -------
    ndarray, float64, shape (n_time, M)
        A bin is NaN only if every window's estimate for it is NaN.

    Notes
    -----
    The mean is computed as ``ref + sum_i w_i (e_i - ref) / sum_i w_i``, where
    ``ref`` is the non-NaN estimate with the largest weight in that bin. This is
    the weighted mean, and it makes the round trip exact to the bit:
    ``merge_windows(*make_windows(x, L, o), len(x)) == x`` for every x, with
    NaN kept where x is NaN.

    Raises
    ------
    ValueError
        If shapes disagree, starts are not increasing or leave the recording,
        or some bin is not covered by any window.
    """
    est = np.asarray(estimates, dtype=np.float64)
    if est.ndim < 3:
        raise ValueError(
            f"estimates must be (n_windows, length, M), got shape {est.shape}; "
            "for one value per bin pass estimates[..., None]"
        )
    n_time = _as_int("n_time", n_time)
    starts_arr = np.asarray(starts)
    if starts_arr.ndim != 1 or starts_arr.size != est.shape[0]:
        raise ValueError(
            f"starts must have shape (n_windows,) = ({est.shape[0]},), got {starts_arr.shape}; "
            "pass the starts returned by make_windows"
        )
    if not np.issubdtype(starts_arr.dtype, np.integer):
        raise TypeError(f"starts must be integer bin indices, got dtype {starts_arr.dtype}")
    starts_i = starts_arr.astype(np.int64)
    n_windows, length = est.shape[:2]
    rest = est.shape[2:]
    if np.any(np.diff(starts_i) <= 0):
        raise ValueError("starts must be strictly increasing; pass the starts from make_windows")
    if starts_i[0] < 0 or starts_i[-1] + length > n_time:
        raise ValueError(
            f"windows of {length} bins at starts {starts_i[0]}..{starts_i[-1]} do not fit in "
            f"n_time = {n_time} bins; pass the n_time of the recording the windows came from"
        )
    # every bin covered: first window at 0, no gaps, last one ends at n_time
    gaps = starts_i[1:] > starts_i[:-1] + length
    if starts_i[0] != 0 or starts_i[-1] + length != n_time or np.any(gaps):
        raise ValueError(
            "the windows do not cover every bin of the recording (starts "
            f"{starts_i[0]}..{starts_i[-1]}, length {length}, n_time {n_time}); "
            "pass the starts from make_windows/window_starts and the same n_time"
        )

    weights = window_weights(starts_i, length, weighting=weighting)
    flat = est.reshape(n_windows, length, -1)
    m = flat.shape[2]

    # Pass 1: reference = non-NaN estimate with the largest weight per (bin, column).
    ref = np.full((n_time, m), np.nan)
    ref_w = np.zeros((n_time, m))
    for i in range(n_windows):
        sl = slice(starts_i[i], starts_i[i] + length)
        w = np.broadcast_to(weights[i][:, None], (length, m))
        take = ~np.isnan(flat[i]) & (w > ref_w[sl])
        ref[sl][take] = flat[i][take]
        ref_w[sl][take] = w[take]

    # Pass 2: weighted mean of the deviations from the reference.
    num = np.zeros((n_time, m))
    den = np.zeros((n_time, m))
    for i in range(n_windows):
        sl = slice(starts_i[i], starts_i[i] + length)
        dev = flat[i] - ref[sl]
        ok = ~np.isnan(dev)
        w = weights[i][:, None]
        num[sl] += w * np.where(ok, dev, 0.0)
        den[sl] += w * ok

    with np.errstate(invalid="ignore", divide="ignore"):
        out = ref + num / den  # den == 0 exactly where ref is NaN
    return out.reshape((n_time, *rest))


def windows_at(values: np.ndarray, starts: ArrayLike, length: int, *, offset: int = 0,
               dtype: DTypeLike | None = None) -> np.ndarray:
    """The windows of ``values`` (T, N) that start at ``starts`` on a grid shifted by ``offset``
    bins: window i holds bins ``starts[i] - offset ... + length`` of ``values``, NaN for bins
    before 0 (the unobserved padding a shifted grid starts with) or from T on.

    Returns (len(starts), length, N), a copy of only these windows in ``values``' dtype (float64
    for integer input): what :func:`make_windows` gives for them, without the whole recording's
    windows in memory. ``values`` may be a memory map; only the windows' bins are read.
    ``dtype`` (a floating dtype): the copy's dtype instead, converted as the bins are copied.
    """
    arr = values
    if dtype is None:
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.dtype(np.float64)
    st = np.asarray(starts, dtype=np.int64) - int(offset)
    n_t = arr.shape[0]
    # integer values are converted window by window (no float64 copy of the whole recording)
    out = np.empty((st.size, int(length), *arr.shape[1:]), dtype=dtype)
    for i, s0 in enumerate(st):
        lo, hi = max(0, s0), min(n_t, s0 + length)
        if lo > s0 or hi < s0 + length:
            out[i] = np.nan
        if hi > lo:
            out[i, lo - s0:hi - s0] = arr[lo:hi]
    return out


def merge_range(estimates: np.ndarray, first: int, starts: np.ndarray, weights: np.ndarray,
                lo: int, hi: int) -> np.ndarray:
    """Bins ``lo`` to ``hi`` of :func:`merge_windows`, from the estimates of windows
    ``first, first + 1, ...`` only (which must include every window covering those bins).

    estimates: (k, length, M) float64 of windows ``first ... first + k - 1``; ``starts`` and
    ``weights`` (n_windows, length): of all windows (:func:`window_weights` depends on the
    neighbours). Returns (hi - lo, M) float64, bit for bit the rows ``lo:hi`` of
    ``merge_windows`` over all windows (the same operations per bin, in the same window order),
    so a recording can be merged block by block with the estimates of a few windows in memory.
    """
    length = estimates.shape[1]
    m = estimates.shape[2]
    ref = np.full((hi - lo, m), np.nan)
    ref_w = np.zeros((hi - lo, m))
    num = np.zeros((hi - lo, m))
    den = np.zeros((hi - lo, m))
    spans = []
    for j in range(estimates.shape[0]):
        s0 = int(starts[first + j])
        a, b = max(lo, s0), min(hi, s0 + length)
        if b > a:
            spans.append((j, slice(a - lo, b - lo), slice(a - s0, b - s0)))
    for j, dst, src in spans:  # pass 1: the reference, as merge_windows
        est = estimates[j, src]
        w = np.broadcast_to(weights[first + j, src][:, None], est.shape)
        take = ~np.isnan(est) & (w > ref_w[dst])
        ref[dst][take] = est[take]
        ref_w[dst][take] = w[take]
    for j, dst, src in spans:  # pass 2
        dev = estimates[j, src] - ref[dst]
        ok = ~np.isnan(dev)
        w = weights[first + j, src][:, None]
        num[dst] += w * np.where(ok, dev, 0.0)
        den[dst] += w * ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return ref + num / den


class WindowStore:
    """Training windows drawn from one continuous recording instead of all held in memory.

    ``values`` (T, N) is kept once, not copied (a numpy array or a ``np.memmap`` of a file, for
    recordings larger than memory; data units, NaN where not observed); window i is bins
    ``starts[i] ... starts[i] + length`` of it. ``take(idx)`` copies just the windows asked for,
    (len(idx), length, N), which is what ``make_windows(values, length, overlap).values[idx]``
    holds. ``starts`` may be a subset of :func:`window_starts` (``max_windows``), in any order
    (:meth:`subset`: a train / validation split), and may repeat a start.

    Memory: the recording's (T, N) once, against about ``length / (length - overlap)`` copies (4/3
    for the default overlap) in one (n_windows, length, N) array for :func:`make_windows`.

    Windows already cut into an array (n_windows, length, N) are a store too
    (:meth:`from_windows`: the array seen as one recording of the windows end to end, no copy).
    """

    def __init__(self, values: np.ndarray, starts: ArrayLike, length: int) -> None:
        self.values = values
        self.starts = np.asarray(starts, dtype=np.int64)
        self.length = int(length)
        if self.values.ndim != 2:
            raise ValueError(f"values must be (T, N), got shape {self.values.shape}")
        if self.starts.ndim != 1:
            raise ValueError(f"starts must be 1-D (n_windows,), got shape {self.starts.shape}")
        if self.length < 1:
            raise ValueError(f"window length must be >= 1 bin, got {self.length}")
        if self.starts.size and (self.starts.min() < 0 or self.starts.max() + self.length > self.values.shape[0]):
            raise ValueError(f"windows of {self.length} bins at starts {self.starts.min()}..{self.starts.max()} "
                             f"do not fit in {self.values.shape[0]} bins")

    @classmethod
    def from_windows(cls, windows: np.ndarray) -> "WindowStore":
        """The windows of an (n_windows, length, N) array as a store: ``take(idx)`` equals
        ``windows[idx]`` (float64 for integer input). No copy for a C-contiguous array (its
        (n_windows * length, N) reshape is a view)."""
        arr = np.asarray(windows)
        if arr.ndim != 3:
            raise ValueError(f"windows must be (n_windows, length, N), got shape {arr.shape}")
        n, length, n_cols = arr.shape
        if length < 1:
            raise ValueError(f"windows must have at least 1 bin, got shape {arr.shape}")
        return cls(arr.reshape(n * length, n_cols), np.arange(n, dtype=np.int64) * length, length)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_windows, length, N), the shape of the windows as one array."""
        return (int(self.starts.size), self.length, int(self.values.shape[1]))

    @property
    def dtype(self) -> np.dtype:
        """dtype of :meth:`take`'s windows: the values' floating dtype, float64 for integers."""
        dt = self.values.dtype
        return dt if np.issubdtype(dt, np.floating) else np.dtype(np.float64)

    def __len__(self) -> int:
        return int(self.starts.size)

    def take(self, idx: ArrayLike, columns: slice | None = None,
             dtype: DTypeLike | None = None) -> np.ndarray:
        """Windows ``idx`` (indices into ``starts``) as a (len(idx), length, N) copy; with
        ``columns`` (a slice of the N columns) only those columns, (len(idx), length, n_columns)
        (a memory map reads just their bytes of each window's rows). ``dtype``: a floating dtype
        for the copy (default :attr:`dtype`), converted as the bins are copied."""
        values = self.values if columns is None else self.values[:, columns]
        return windows_at(values, self.starts[np.asarray(idx, dtype=np.int64)], self.length, dtype=dtype)

    def subset(self, idx: ArrayLike) -> "WindowStore":
        """A store of windows ``idx`` of this one, in that order (same values, no copy)."""
        return WindowStore(self.values, self.starts[np.asarray(idx, dtype=np.int64)], self.length)

    def blocks(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first index, windows) for consecutive blocks of ``size`` windows."""
        for i0 in range(0, len(self), max(1, int(size))):
            yield i0, self.take(np.arange(i0, min(len(self), i0 + max(1, int(size)))))


#: a window never has fewer bins than this (slow volumetric recordings: 1-5 Hz per plane)
MIN_WINDOW_BINS = 16


def auto_window_s(bin_s: float, tau_decay_s: float | None = None) -> float:
    """The window length (seconds) a recording gets when none is asked for.

    ``max(1 s, 16 bins)``, or ``max(1 s, 2 x tau_decay_s, 16 bins)`` when a decay is given: 1 s is
    the window the benchmarks chose for 15-60 Hz scans, 16 bins let the encoder see a few samples
    of a slow recording (a 1 Hz plane gets 16 s windows), and a window of two decays lets a
    transient decay inside it, which a fit that *learns* the kernel's decay needs
    (:func:`napari_sbtt.config.window_seconds` passes the decay only then). A kernel kept where it
    starts (the default) does not: each window's calcium at its start is inferred, and on the
    benchmark family's tune halves windows of two decays cost the network the rhythm of slow-indicator
    recordings (a 2 Hz limit cycle under GCaMP6f kept at 0.58 s: r 0.10 with 1.16 s windows, 0.65
    with 1 s; benchmarks/RESULTS.md, "Windows of one second").
    """
    if not (math.isfinite(bin_s) and bin_s > 0):
        raise ValueError(f"bin_s must be a positive duration in seconds, got {bin_s}")
    tau = 0.0 if tau_decay_s is None else float(tau_decay_s)
    return max(1.0, 2.0 * tau, MIN_WINDOW_BINS * bin_s)


def choose_window(
    bin_s: float,
    *,
    window_s: float = 1.0,
    overlap_fraction: float = 0.25,
    n_time: int | None = None,
) -> tuple[int, int]:
    """Pick a window length and overlap in bins from durations in seconds.

    Parameters
    ----------
    bin_s : float
        Width of one fine-grid bin in seconds (> 0).
    window_s : float
        Desired window duration in seconds (default 1 s, the SBTT demo's
        50 bins of 20 ms).
    overlap_fraction : float
        Share of the window that consecutive windows overlap, in [0, 1).
    n_time : int, optional
        Bins in the recording; if given and shorter than the desired window,
        the window shrinks to the whole recording.

    Returns
    -------
    (length, overlap) : tuple of int
        ``length >= 1`` bins and ``0 <= overlap < length`` bins, ready for
        :func:`make_windows`.
    """
    if not (math.isfinite(bin_s) and bin_s > 0):
        raise ValueError(f"bin_s must be a positive duration in seconds, got {bin_s}")
    if not (math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a positive duration in seconds, got {window_s}")
    if not 0 <= overlap_fraction < 1:
        raise ValueError(f"overlap_fraction must be in [0, 1), got {overlap_fraction}")
    length = max(1, int(round(window_s / bin_s)))
    if n_time is not None:
        n_time = _as_int("n_time", n_time)
        if n_time < 1:
            raise ValueError(f"n_time must be >= 1 bin, got {n_time}")
        length = min(length, n_time)
    overlap = min(int(round(overlap_fraction * length)), length - 1)
    return length, overlap
