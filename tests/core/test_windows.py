"""Tests for napari_sbtt.core.windows: cutting a recording and merging it back."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_sbtt.core.windows import (
    WEIGHTINGS,
    Windows,
    choose_window,
    make_windows,
    merge_windows,
    window_starts,
    window_weights,
)

# ---------------------------------------------------------------- hand-worked


@pytest.mark.parametrize(
    ("n_time", "length", "overlap", "expected"),
    [
        (10, 4, 1, [0, 3, 6]),  # stride 3 lands exactly on the end
        (15, 10, 2, [0, 5]),  # remainder: last window aligned to end at 15
        (12, 4, 0, [0, 4, 8]),  # plain tiling
        (13, 4, 0, [0, 4, 8, 9]),  # tiling plus an end-aligned window
        (7, 7, 3, [0]),  # one window covering everything
        (5, 1, 0, [0, 1, 2, 3, 4]),
    ],
)
def test_window_starts_hand_worked(n_time, length, overlap, expected):
    starts = window_starts(n_time, length, overlap)
    assert starts.dtype == np.int64
    assert starts.tolist() == expected


def test_make_windows_values_and_unpacking():
    x = np.arange(20.0).reshape(10, 2)
    w = make_windows(x, 4, 1)
    assert isinstance(w, Windows)
    values, starts = w
    assert values.shape == (3, 4, 2)
    assert starts.tolist() == [0, 3, 6]
    np.testing.assert_array_equal(values[1], x[3:7])
    np.testing.assert_array_equal(values[2], x[6:10])
    assert (w.n_windows, w.length, w.n_time) == (3, 4, 10)
    values[0, 0, 0] = -1.0  # a copy, not a view on x
    assert x[0, 0] == 0.0


def test_make_windows_dtypes():
    assert make_windows(np.ones((6, 2), np.float32), 3, 1).values.dtype == np.float32
    assert make_windows(np.ones((6, 2), np.int32), 3, 1).values.dtype == np.float64


def test_recording_shorter_than_window_names_fix():
    with pytest.raises(ValueError, match=r"window length <= 5"):
        make_windows(np.zeros((5, 3)), 8, 2)


@pytest.mark.parametrize(("length", "overlap"), [(4, 4), (4, -1), (0, 0)])
def test_bad_length_or_overlap(length, overlap):
    with pytest.raises(ValueError):
        window_starts(10, length, overlap)


def test_non_integer_bins_rejected():
    with pytest.raises(TypeError):
        window_starts(10, 4.0, 1)  # type: ignore[arg-type]


def test_1d_values_rejected_with_fix():
    with pytest.raises(ValueError, match=r"values\[:, None\]"):
        make_windows(np.zeros(10), 4, 1)


def test_taper_weights_hand_worked():
    # starts [0, 2, 4] with length 4: each neighbour shares 2 bins
    w = window_weights(np.array([0, 2, 4]), 4)
    np.testing.assert_allclose(
        w,
        [
            [1.0, 1.0, 0.75, 0.25],
            [0.25, 0.75, 0.75, 0.25],
            [0.25, 0.75, 1.0, 1.0],
        ],
    )
    # neighbours cross-fade: in each shared bin the two ramps sum to 1
    np.testing.assert_allclose(w[0, 2:] + w[1, :2], 1.0)
    np.testing.assert_allclose(w[1, 2:] + w[2, :2], 1.0)


def test_cosine_weights_cross_fade():
    w = window_weights(np.array([0, 3]), 6, weighting="cosine")
    np.testing.assert_allclose(w[0, :3], 1.0)
    np.testing.assert_allclose(w[0, 3:] + w[1, :3], 1.0)
    assert np.all(np.diff(w[0, 3:]) < 0)  # falls toward the window's edge


def test_uniform_and_custom_weights():
    starts = np.array([0, 2])
    np.testing.assert_array_equal(window_weights(starts, 4, weighting="uniform"), 1.0)
    prof = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(window_weights(starts, 4, weighting=prof), [prof, prof])
    with pytest.raises(ValueError, match="strictly positive"):
        window_weights(starts, 4, weighting=np.array([0.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="unknown weighting"):
        window_weights(starts, 4, weighting="hann")


def test_merge_hand_worked_taper():
    # two windows of 4 bins over 6 bins, overlap 2; window 0 says 0, window 1 says 1
    est = np.stack([np.zeros((4, 1)), np.ones((4, 1))])
    out = merge_windows(est, np.array([0, 2]), 6)
    np.testing.assert_allclose(out[:, 0], [0.0, 0.0, 0.25, 0.75, 1.0, 1.0])


def test_merge_hand_worked_uniform():
    est = np.stack([np.zeros((4, 1)), np.ones((4, 1))])
    out = merge_windows(est, np.array([0, 2]), 6, weighting="uniform")
    np.testing.assert_allclose(out[:, 0], [0.0, 0.0, 0.5, 0.5, 1.0, 1.0])


def test_merge_edges_count_least():
    # window 0 is right except at its last bin (its edge), window 1 agrees elsewhere
    truth = np.arange(8.0)[:, None]
    (vals, starts) = make_windows(truth, 6, 4)  # starts [0, 2]
    vals = vals.copy()
    vals[0, -1, 0] += 10.0  # bad estimate at window 0's edge (bin 5)
    out = merge_windows(vals, starts, 8)
    tapered_err = abs(out[5, 0] - truth[5, 0])
    uniform_err = abs(merge_windows(vals, starts, 8, weighting="uniform")[5, 0] - truth[5, 0])
    assert tapered_err < uniform_err
    np.testing.assert_allclose(tapered_err, 10.0 * 0.125)  # ramp (0 + 0.5) / 4


def test_merge_other_width_and_trailing_axes():
    x = np.random.default_rng(0).normal(size=(30, 4))
    vals, starts = make_windows(x, 8, 3)
    factors = vals[..., :2] * 2.0  # M = 2 "latent factors"
    np.testing.assert_array_equal(merge_windows(factors, starts, 30), 2.0 * x[:, :2])
    extra = np.stack([vals, -vals], axis=-1)  # (n_windows, length, 4, 2)
    out = merge_windows(extra, starts, 30)
    assert out.shape == (30, 4, 2)
    np.testing.assert_array_equal(out[..., 1], -x)


def test_merge_nan_handling():
    est = np.full((2, 4, 1), np.nan)
    est[0, :, 0] = [1.0, 2.0, 3.0, np.nan]
    est[1, :, 0] = [np.nan, 5.0, np.nan, np.nan]
    out = merge_windows(est, np.array([0, 2]), 6, weighting="uniform")
    # bin 2: window 0 = 3, window 1 NaN -> 3; bin 3: NaN + 5 -> 5; bin 4,5 all NaN
    np.testing.assert_array_equal(out[:, 0], [1.0, 2.0, 3.0, 5.0, np.nan, np.nan])


def test_merge_rejects_bad_inputs():
    est = np.zeros((2, 4, 1))
    with pytest.raises(ValueError, match="cover every bin"):
        merge_windows(est, np.array([0, 2]), 7)  # last bin uncovered: wrong n_time
    with pytest.raises(ValueError, match="cover every bin"):
        merge_windows(est, np.array([0, 5]), 9)  # gap at bin 4
    with pytest.raises(ValueError, match="do not fit"):
        merge_windows(est, np.array([0, 4]), 6)
    with pytest.raises(ValueError, match="strictly increasing"):
        merge_windows(est, np.array([2, 0]), 6)
    with pytest.raises(ValueError, match="starts must have shape"):
        merge_windows(est, np.array([0, 1, 2]), 6)
    with pytest.raises(ValueError, match="n_windows, length, M"):
        merge_windows(np.zeros((2, 4)), np.array([0, 2]), 6)


def test_choose_window():
    assert choose_window(0.02) == (50, 12)  # SBTT demo: 50 bins of 20 ms
    assert choose_window(0.01, window_s=0.5, overlap_fraction=0.5) == (50, 25)
    assert choose_window(0.02, n_time=30) == (30, 8)
    assert choose_window(1.0, window_s=0.1) == (1, 0)
    with pytest.raises(ValueError):
        choose_window(0.0)
    with pytest.raises(ValueError):
        choose_window(0.02, overlap_fraction=1.0)


# ---------------------------------------------------------------- properties


@st.composite
def recording(draw, with_nan: bool = True):
    n_time = draw(st.integers(1, 120))
    length = draw(st.integers(1, n_time))
    overlap = draw(st.integers(0, length - 1))
    n = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # wide dynamic range so that a naive weighted mean would not round-trip
    x = rng.normal(size=(n_time, n)) * 10.0 ** rng.uniform(-8, 8, size=(n_time, n))
    if with_nan:
        x[rng.random((n_time, n)) < draw(st.sampled_from([0.0, 0.3, 0.9, 1.0]))] = np.nan
    return x, length, overlap, rng


@settings(max_examples=150, deadline=None)
@given(recording(), st.sampled_from(WEIGHTINGS))
def test_round_trip_exact(rec, weighting):
    x, length, overlap, _ = rec
    vals, starts = make_windows(x, length, overlap)
    out = merge_windows(vals, starts, x.shape[0], weighting=weighting)
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, x)  # bitwise, NaN where x is NaN


@settings(max_examples=150, deadline=None)
@given(recording(with_nan=False))
def test_starts_cover_every_bin(rec):
    x, length, overlap, _ = rec
    n_time = x.shape[0]
    starts = window_starts(n_time, length, overlap)
    assert starts[0] == 0
    assert starts[-1] + length == n_time  # end-aligned, no padding
    assert np.all(np.diff(starts) > 0)
    assert np.all(np.diff(starts) <= length - overlap)  # at least `overlap` shared
    coverage = np.zeros(n_time, int)
    for s in starts:
        coverage[s : s + length] += 1
    assert np.all(coverage >= 1)
    # no superfluous window: dropping the last one would uncover the end
    assert len(starts) == 1 or starts[-2] + length < n_time


@settings(max_examples=100, deadline=None)
@given(recording(with_nan=False), st.sampled_from(WEIGHTINGS))
def test_weights_strictly_positive_and_bounded(rec, weighting):
    x, length, overlap, _ = rec
    starts = window_starts(x.shape[0], length, overlap)
    w = window_weights(starts, length, weighting=weighting)
    assert w.shape == (len(starts), length)
    assert np.all(w > 0) and np.all(w <= 1)
    assert w[0, 0] == 1.0 and w[-1, -1] == 1.0  # recording edges: full weight


@settings(max_examples=100, deadline=None)
@given(recording(), st.sampled_from(WEIGHTINGS))
def test_merge_is_a_convex_combination(rec, weighting):
    x, length, overlap, rng = rec
    vals, starts = make_windows(np.nan_to_num(x), length, overlap)
    est = rng.normal(size=vals.shape)
    est[rng.random(est.shape) < 0.2] = np.nan
    out = merge_windows(est, starts, x.shape[0], weighting=weighting)
    lo = np.full(out.shape, np.inf)
    hi = np.full(out.shape, -np.inf)
    n_ok = np.zeros(out.shape, int)
    for e, s in zip(est, starts, strict=True):
        sl = slice(s, s + length)
        lo[sl] = np.fmin(lo[sl], e)
        hi[sl] = np.fmax(hi[sl], e)
        n_ok[sl] += ~np.isnan(e)
    np.testing.assert_array_equal(np.isnan(out), n_ok == 0)
    ok = n_ok > 0
    assert np.all(out[ok] >= lo[ok] - 1e-12) and np.all(out[ok] <= hi[ok] + 1e-12)


@settings(max_examples=50, deadline=None)
@given(recording(with_nan=False))
def test_merge_is_linear(rec):
    x, length, overlap, rng = rec
    vals, starts = make_windows(x, length, overlap)
    a = rng.normal(size=vals.shape)
    b = rng.normal(size=vals.shape)
    n_time = x.shape[0]
    np.testing.assert_allclose(
        merge_windows(2.0 * a - 3.0 * b, starts, n_time),
        2.0 * merge_windows(a, starts, n_time) - 3.0 * merge_windows(b, starts, n_time),
        atol=1e-9,
    )
