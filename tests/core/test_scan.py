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


# ---------------------------------------------------------------------------- measured sweep starts
def test_measured_sweep_starts_time_every_row():
    # 3 rows, 1 ms lines, sweeps measured at 0, 4.2 and 7.9 ms (a jittery clock of ~4 ms)
    starts = np.array([0.0, 4.2, 7.9]) * MS
    p = ScanPattern.full_raster(3, 3, MS, frame_period=4 * MS, sweep_starts=starts, bidirectional=True)
    assert p.has_sweep_starts and p.t0 == 0.0
    np.testing.assert_allclose(p.sweep_starts(), starts)
    np.testing.assert_allclose(p.row_times(), starts[:, None] + np.array([0.5, 1.5, 2.5])[None, :] * MS)
    # gaps between starts, the last sweep lasts the nominal frame period
    np.testing.assert_allclose(p.sweep_durations(), [4.2 * MS, 3.7 * MS, 4 * MS])
    assert p.frame_period == pytest.approx((4.2 + 3.7 + 4) / 3 * MS) and not p.is_uniform
    assert p.duration == pytest.approx(11.9 * MS)
    grid = p.fine_grid(2)
    assert grid.bin_width == pytest.approx(p.frame_period / 2) and grid.n_bins == 6
    # without a nominal period the last sweep lasts the median gap; t0 follows the first start
    q = ScanPattern.full_raster(3, 3, MS, sweep_starts=starts + 1.0)
    assert q.t0 == pytest.approx(1.0)
    np.testing.assert_allclose(q.sweep_durations()[-1], 3.95 * MS)
    assert "measured sweep starts" in repr(q)


def test_measured_sweep_starts_are_checked():
    with pytest.raises(ValueError, match="one start time per sweep"):
        ScanPattern.full_raster(3, 3, MS, sweep_starts=[0.0, 0.01])
    with pytest.raises(ValueError, match=r"sweep 2 starts .* after sweep 1, which needs 0.003 s"):
        ScanPattern.full_raster(3, 3, MS, sweep_starts=[0.0, 0.004, 0.0055])
    with pytest.raises(ValueError, match="sweep 1 starts"):
        ScanPattern.full_raster(3, 2, MS, sweep_starts=[0.01, 0.0])
    with pytest.raises(ValueError, match="finite"):
        ScanPattern.full_raster(3, 2, MS, sweep_starts=[0.0, np.nan])
    with pytest.raises(ValueError, match="disagree"):
        ScanPattern.full_raster(3, 2, MS, t0=5.0, sweep_starts=[0.0, 0.01])
    # strips: a sweep of 2 rows needs only 2 line periods before the next starts
    p = ScanPattern.from_rows([[0, 1], [2, 3]], 4, MS, n_sweeps=3, sweep_starts=[0.0, 0.0021, 0.0043])
    assert p.n_sweeps == 3 and p.rows_in_sweep(2).tolist() == [0, 1]


def test_measured_sweep_starts_json_round_trip():
    starts = [0.5, 0.5042, 0.5081]
    p = ScanPattern.full_raster(3, 3, MS, frame_period=4 * MS, sweep_starts=starts)
    d = json.loads(p.to_json())
    assert d["version"] == 2 and d["sweep_starts_s"] == starts
    q = ScanPattern.from_json(p.to_json())
    assert q == p and q.has_sweep_starts
    np.testing.assert_array_equal(q.row_times(), p.row_times())
    # patterns on a clock are written as before (version 1, no sweep_starts_s)
    d1 = json.loads(ScanPattern.full_raster(3, 3, MS).to_json())
    assert d1["version"] == 1 and "sweep_starts_s" not in d1
    d["version"] = 3
    with pytest.raises(ValueError, match="newer than this napari-sbtt"):
        ScanPattern.from_dict(d)


def test_traces_use_the_measured_sweep_starts():
    from napari_sbtt.core.traces import extract_observations

    starts = np.array([0.0, 0.0105, 0.0198, 0.0301])
    p = ScanPattern.full_raster(4, 4, 2 * MS, frame_period=0.01, sweep_starts=starts)
    labels = np.zeros((4, 3), np.int32)
    labels[2, :] = 1
    movie = np.arange(4 * 4 * 3, dtype=np.float32).reshape(4, 4, 3)
    obs = extract_observations(movie, labels, pattern=p, factor=4, dff=False)
    got = obs.sample_times[:, 0]
    np.testing.assert_allclose(got[np.isfinite(got)], starts + 2.5 * 2 * MS)  # row 2's line centre
