"""Scan pattern timing: hand-worked examples and property tests."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_sbtt.core.scan import FineGrid, ScanMismatchError, ScanPattern, infer_row_mask

MS = 1e-3


def test_strips_hand_worked_times_bidirectional():
    # 4 rows in 2 strips, 1 ms lines, 0.5 ms flyback, 3 sweeps, bidirectional fast axis.
    # sweep 0: rows 0,1 start at 0.0 ms -> centres 0.5, 1.5 ms; lasts 2.5 ms
    # sweep 1: rows 2,3 start at 2.5 ms -> centres 3.0, 4.0 ms
    # sweep 2: rows 0,1 start at 5.0 ms -> centres 5.5, 6.5 ms
    p = ScanPattern.strips(4, 3, 1 * MS, 2, flyback=0.5 * MS, bidirectional=True)
    nan = np.nan
    expected = np.array(
        [[0.5, 1.5, nan, nan], [nan, nan, 3.0, 4.0], [5.5, 6.5, nan, nan]]
    ) * MS
    np.testing.assert_allclose(p.row_times(), expected, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(p.frame_mask(), ~np.isnan(expected))
    np.testing.assert_allclose(p.sweep_starts(), [0, 2.5 * MS, 5.0 * MS])
    assert p.frame_period == pytest.approx(2.5 * MS)
    assert p.duration == pytest.approx(7.5 * MS)
    # second line of each sweep runs backwards
    np.testing.assert_array_equal(
        p.line_directions(), [[1, -1, 0, 0], [0, 0, 1, -1], [1, -1, 0, 0]]
    )
    # pixel times with X = 2: forward line starting at 0 ms -> 0.25, 0.75 ms;
    # backward line (row 1) starting at 1 ms -> pixel 0 at 1.75 ms, pixel 1 at 1.25 ms
    off = p.pixel_offsets(2)
    t = p.row_times()[0][:, None] + p.line_directions()[0][:, None] * off[None, :]
    np.testing.assert_allclose(t[0], [0.25 * MS, 0.75 * MS], atol=1e-15)
    np.testing.assert_allclose(t[1], [1.75 * MS, 1.25 * MS], atol=1e-15)


def test_full_raster_with_frame_clock():
    # 3 rows, 2 ms lines, frame clock 10 ms: sweeps at 0, 10, 20 ms
    p = ScanPattern.full_raster(3, 3, 2 * MS, frame_period=10 * MS, t0=1.0)
    np.testing.assert_allclose(
        p.row_times(),
        1.0 + np.array([[1, 3, 5], [11, 13, 15], [21, 23, 25]]) * MS,
        atol=1e-12,
    )
    assert p.is_uniform
    assert p.acquired_fraction() == 1.0
    np.testing.assert_allclose(p.row_sample_rate(), 100.0)


def test_frame_period_shorter_than_sweep_is_refused():
    with pytest.raises(ValueError, match="shorter than the longest sweep"):
        ScanPattern.full_raster(10, 2, 1 * MS, frame_period=5 * MS)


def test_interleaved_strip_order_and_strips_per_sweep():
    p = ScanPattern.strips(6, 6, MS, 6, order="interleaved")
    assert [int(p.rows_in_sweep(k)[0]) for k in range(6)] == [0, 2, 4, 1, 3, 5]
    q = ScanPattern.strips(8, 2, MS, 4, strips_per_sweep=2)
    np.testing.assert_array_equal(q.rows_in_sweep(0), [0, 1, 2, 3])
    np.testing.assert_array_equal(q.rows_in_sweep(1), [4, 5, 6, 7])


def test_random_lines_fraction_and_seed():
    p = ScanPattern.random_lines(40, 50, MS, 0.25, seed=3)
    m = p.frame_mask()
    assert (m.sum(axis=1) == 10).all()
    assert p == ScanPattern.random_lines(40, 50, MS, 0.25, seed=3)
    assert p != ScanPattern.random_lines(40, 50, MS, 0.25, seed=4)


def test_explicit_rows_keep_their_order():
    p = ScanPattern.from_rows([[3, 0], [1]], 4, MS, n_sweeps=4)
    # row 3 is acquired first in sweep 0
    rt = p.row_times()
    assert rt[0, 3] < rt[0, 0]
    np.testing.assert_array_equal(p.rows_in_sweep(2), [3, 0])
    # sweeps last 2 ms, 1 ms, 2 ms, 1 ms
    np.testing.assert_allclose(p.sweep_starts(), np.array([0, 2, 3, 5]) * MS)
    assert not p.is_uniform


def test_empty_sweep_needs_a_clock():
    with pytest.raises(ValueError, match="frame_period"):
        ScanPattern.from_mask(np.array([[True, False], [False, False]]), MS)
    p = ScanPattern.from_mask(np.array([[True, False], [False, False]]), MS, frame_period=3 * MS)
    np.testing.assert_allclose(p.sweep_starts(), [0, 3 * MS])


def test_bad_rows_are_named():
    with pytest.raises(ValueError, match="0..3"):
        ScanPattern.from_rows([[0, 4]], 4, MS)
    with pytest.raises(ValueError, match="listed twice"):
        ScanPattern.from_rows([[1, 1]], 4, MS)


def test_json_round_trip_and_file(tmp_path):
    p = ScanPattern.strips(10, 7, 0.5 * MS, 5, order="interleaved", flyback=MS, bidirectional=True)
    assert ScanPattern.from_json(p.to_json()) == p
    f = tmp_path / "scan.json"
    p.to_json(f)
    assert ScanPattern.from_json(f) == p
    assert ScanPattern.from_json(str(f)) == p
    with pytest.raises(FileExistsError, match="overwrite"):
        p.to_json(f)
    p.to_json(f, overwrite=True)
    bad = json.loads(p.to_json())
    bad["format"] = "something-else"
    with pytest.raises(ValueError, match="not a napari-sbtt scan pattern"):
        ScanPattern.from_dict(bad)


def test_check_movie_names_the_mismatch():
    p = ScanPattern.full_raster(8, 5, MS)
    p.check_movie((5, 8, 3))
    with pytest.raises(ScanMismatchError, match="6 frames but the scan pattern has 5 sweeps"):
        p.check_movie((6, 8, 3))
    with pytest.raises(ScanMismatchError, match="9 rows"):
        p.check_movie((5, 9, 3))


def test_from_movie_infers_nan_and_zero_rows():
    movie = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32) + 1
    movie[0, 1] = np.nan
    movie[2, 4] = 0
    mask = infer_row_mask(movie, chunk_frames=3)
    assert mask.sum() == 18 and not mask[0, 1] and not mask[2, 4]
    p = ScanPattern.from_movie(movie, MS)
    np.testing.assert_array_equal(p.frame_mask(), mask)


def test_fine_grid_indexing():
    g = FineGrid(t0=0.0, bin_width=0.25, n_bins=4)
    np.testing.assert_allclose(g.centres, [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_array_equal(g.index(np.array([0.0, 0.25, 0.999, np.nan])), [0, 1, 3, -1])
    with pytest.raises(ValueError, match="outside the fine grid"):
        g.index(np.array([1.0]))


@settings(max_examples=60, deadline=None)
@given(
    mask=st.integers(1, 12).flatmap(
        lambda y: st.lists(st.lists(st.booleans(), min_size=y, max_size=y), min_size=1, max_size=15)
    ),
    flyback=st.floats(1e-5, 2e-3),
    bidir=st.booleans(),
    factor=st.integers(1, 6),
)
def test_mask_round_trip_and_timing_properties(mask, flyback, bidir, factor):
    m = np.array(mask, dtype=bool)
    p = ScanPattern.from_mask(m, 1e-3, flyback=flyback, bidirectional=bidir)
    np.testing.assert_array_equal(p.frame_mask(), m)
    assert ScanPattern.from_json(p.to_json()) == p
    rt = p.row_times()
    assert np.array_equal(np.isnan(rt), ~m)
    # acquisition times strictly increase through the recording
    seq = rt[m]  # row-major: sweep by sweep, rows top to bottom = acquisition order
    assert np.all(np.diff(seq) > 0)
    # a chunk of sweeps gets the same line positions as the whole recording
    full = p.line_index()
    for k0, k1 in ((0, len(m)), (len(m) // 2, len(m)), (0, 1)):
        np.testing.assert_array_equal(p.line_index(k0, k1), full[k0:k1])
    # every sample falls inside the recording and onto the fine grid
    g = p.fine_grid(factor)
    idx = g.index(rt)
    assert (idx[m] >= 0).all() and (idx[m] < g.n_bins).all()
    # a sweep's samples fall in that sweep's own bins when sweeps are uniform
    if p.is_uniform and m.any():
        k = np.nonzero(m)[0]
        assert np.all(idx[m] // factor == k)
