"""Trace extraction: exact samples, timing, coverage rule, chunking, errors, I/O."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_sbtt.core.atomic import OutputExistsError
from napari_sbtt.core.dff import running_percentile_baseline
from napari_sbtt.core.neuropil import annulus_pixels
from napari_sbtt.core.scan import ScanMismatchError, ScanPattern
from napari_sbtt.core.segments import RowTiming
from napari_sbtt.core.traces import Observations, extract_observations, observations_from_traces


def ramp_movie(T: int, Y: int, X: int) -> np.ndarray:
    """Pixel value 100 * frame + 10 * row + column (float32)."""
    k, y, x = np.meshgrid(np.arange(T), np.arange(Y), np.arange(X), indexing="ij")
    return (100.0 * k + 10 * y + x).astype(np.float32)


def tiny():
    """4 frames of 4 x 4, two strips (rows 0-1, rows 2-3), line period 1 s, 2 ROIs (ids 1, 5)."""
    T, Y, X = 4, 4, 4
    movie = ramp_movie(T, Y, X)
    labels = np.zeros((Y, X), dtype=np.int32)
    labels[1, 0:2] = 1  # left half of row 1
    labels[2, 3] = 5
    labels[3, 2:4] = 5
    return movie, labels


def assert_same(a: Observations, b: Observations) -> None:
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.sample_times, b.sample_times)
    np.testing.assert_array_equal(a.coverage, b.coverage)
    np.testing.assert_array_equal(a.roi_ids, b.roi_ids)
    assert a.grid == b.grid and a.units == b.units


# ---------------------------------------------------------------------------- hand-worked example
@pytest.mark.parametrize("bidirectional", [False, True])
def test_hand_worked_example(bidirectional: bool) -> None:
    movie, labels = tiny()
    p = ScanPattern.strips(4, 4, 1.0, 2, bidirectional=bidirectional)
    movie[~p.frame_mask()] = np.nan  # unacquired rows are NaN
    obs = extract_observations(movie, labels, p, factor=4)
    # sweeps last 2 s (2 lines of 1 s); factor 4 -> 16 bins of 0.5 s
    assert obs.grid.bin_width == 0.5 and obs.n_bins == 16
    np.testing.assert_allclose(obs.times, 0.25 + 0.5 * np.arange(16))
    np.testing.assert_array_equal(obs.roi_ids, [1, 5])
    # ROI 1 = row 1, columns 0 and 1; row 1 is the second line (j=1) of sweeps 0 and 2.
    # pixel offsets for X=4, line 1 s: -0.375, -0.125, 0.125, 0.375 around the centre 1.5 s.
    # forward: (1.125 + 1.375) / 2 = 1.25 s; backward (bidirectional): (1.875 + 1.625) / 2 = 1.75 s
    t1 = 1.75 if bidirectional else 1.25
    # ROI 5 = (2, 3), (3, 2), (3, 3) in sweeps 1 and 3 (start 2 s): row 2 forward centre 2.5 s,
    # row 3 centre 3.5 s (backward if bidirectional)
    t5 = (2.875 + 3.375 + 3.125) / 3 if bidirectional else (2.875 + 3.625 + 3.875) / 3
    expect_t = np.full((16, 2), np.nan)
    expect_v = np.full((16, 2), np.nan)
    for k, off in [(0, 0.0), (2, 4.0)]:
        b = int((t1 + off) // 0.5)
        expect_t[b, 0] = t1 + off
        expect_v[b, 0] = 100 * k + (10 + 11) / 2
    for k, off in [(1, 0.0), (3, 4.0)]:
        b = int((t5 + off) // 0.5)
        expect_t[b, 1] = t5 + off
        expect_v[b, 1] = 100 * k + (23 + 32 + 33) / 3
    assert np.flatnonzero(~np.isnan(expect_t[:, 0])).tolist() == ([3, 11] if bidirectional else [2, 10])
    assert np.flatnonzero(~np.isnan(expect_t[:, 1])).tolist() == [6, 14]
    np.testing.assert_allclose(obs.sample_times, expect_t, rtol=0, atol=1e-12)
    np.testing.assert_allclose(obs.values, expect_v.astype(np.float32), rtol=1e-7)
    np.testing.assert_array_equal(obs.observed_mask(), ~np.isnan(expect_v))
    np.testing.assert_array_equal(obs.coverage, [0.5, 0.5])
    assert obs.units == "raw" and obs.neuropil is None
    assert obs.values.dtype == np.float32 and obs.sample_times.dtype == np.float64


def test_factor_one_full_raster_from_frame_period() -> None:
    movie, labels = tiny()
    obs = extract_observations(movie, labels, None, frame_period=2.0)
    # full raster: line period 0.5 s; every ROI observed in every frame, one bin per frame
    assert obs.n_bins == 4 and obs.grid.bin_width == 2.0
    np.testing.assert_allclose(obs.values[:, 0], 100 * np.arange(4) + 10.5)
    # row 1 centre 0.75 s; columns 0, 1 offsets -0.1875, -0.0625 -> 0.625 s
    np.testing.assert_allclose(obs.sample_times[:, 0], 2.0 * np.arange(4) + 0.625)
    np.testing.assert_array_equal(obs.coverage, [1.0, 1.0])


def test_timing_helper_matches_scan_pattern() -> None:
    patterns = [
        ScanPattern.strips(10, 7, 0.01, 3, bidirectional=True, flyback=0.003),
        ScanPattern.random_lines(12, 9, 0.02, 0.4, seed=3, bidirectional=True, frame_period=0.3),
        ScanPattern.from_rows([[3, 1, 2], [0], [5, 4]], 6, 0.1, n_sweeps=8, bidirectional=True),
    ]
    for p in patterns:
        tm = RowTiming(p)
        li = tm.line_index(2, p.n_sweeps)
        np.testing.assert_array_equal(li, tm.cycle_line_index(0, len(p.cycle))[np.arange(2, p.n_sweeps) % len(p.cycle)])
        rel, d = tm.rel_rows(li)
        t = np.where(li >= 0, tm.starts[2:, None] + rel, np.nan)
        np.testing.assert_array_equal(t, p.row_times()[2:])
        np.testing.assert_array_equal(d, p.line_directions()[2:])


def test_long_cycle_without_tables_gives_the_same(monkeypatch) -> None:
    from napari_sbtt.core.segments import SweepStats

    movie, labels, p = random_case(4)
    kw = dict(factor=2, min_coverage=0.3, neuropil=0.7, neuropil_inner=0.5, neuropil_outer=3)
    ref = extract_observations(movie, labels, p, chunk_frames=5, **kw)
    monkeypatch.setattr(SweepStats, "_MAX_TABLE", 0)  # compute per chunk instead
    assert_same(ref, extract_observations(movie, labels, p, chunk_frames=5, **kw))


def test_irregular_sweeps_share_a_bin_and_are_averaged() -> None:
    # sweeps of 1 and 3 lines without a frame clock: frame_period is their mean (2 s), so
    # ROI 1 (row 0, read in every sweep) falls twice in some bins
    p = ScanPattern.from_rows([[0], [0, 1, 2]], 3, 1.0, n_sweeps=4)
    movie = ramp_movie(4, 3, 2)
    labels = np.zeros((3, 2), int)
    labels[0, :] = 1
    obs = extract_observations(movie, labels, p)
    # sweep starts 0, 1, 4, 5; row-0 times 0.5, 1.5, 4.5, 5.5 -> bins (2 s) 0, 0, 2, 2
    np.testing.assert_allclose(obs.sample_times[:, 0], [1.0, np.nan, 5.0, np.nan])
    np.testing.assert_allclose(obs.values[:, 0], [50.5, np.nan, 250.5, np.nan])
    assert obs.coverage[0] == 1.0


# ---------------------------------------------------------------------------- coverage rule
def test_partly_acquired_roi_rule() -> None:
    movie = ramp_movie(2, 4, 4)
    labels = np.zeros((4, 4), int)
    labels[1, 0:3] = 7  # 3 pixels in strip 0 (rows 0-1)
    labels[2, 0] = 7  # 1 pixel in strip 1 (rows 2-3)
    p = ScanPattern.strips(4, 2, 1.0, 2)
    half = extract_observations(movie, labels, p, min_coverage=0.5)
    # sweep 0 acquires 3/4 of the ROI -> observed, mean of the acquired pixels only
    np.testing.assert_allclose(half.values[:, 0], [11.0, np.nan])
    np.testing.assert_allclose(half.coverage, [0.5])
    quarter = extract_observations(movie, labels, p, min_coverage=0.25)
    np.testing.assert_allclose(quarter.values[:, 0], [11.0, 120.0])
    np.testing.assert_allclose(quarter.coverage, [1.0])
    with pytest.raises(ValueError, match=r"never observes ROI id\(s\) \[7\].*min_coverage"):
        extract_observations(movie, labels, p, min_coverage=0.8)
    whole = extract_observations(movie, labels, ScanPattern.full_raster(4, 2, 0.5), min_coverage=1.0)
    np.testing.assert_allclose(whole.values[:, 0], [(10 + 11 + 12 + 20) / 4, 100 + (10 + 11 + 12 + 20) / 4])


# ---------------------------------------------------------------------------- chunks, memmap, NaN
def random_case(seed: int, T: int = 13, Y: int = 9, X: int = 7):
    rng = np.random.default_rng(seed)
    movie = rng.normal(100, 10, (T, Y, X)).astype(np.float32)
    labels = np.zeros((Y, X), int)
    labels[0:3, 0:3] = 2
    labels[3:5, 2:7] = 9
    labels[6:9, 1:4] = 4
    labels[8, 6] = 11
    p = ScanPattern.random_lines(Y, T, 0.001, 0.5, seed=seed, bidirectional=True)
    movie[~p.frame_mask()] = np.nan
    return movie, labels, p


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk=st.integers(1, 14), seed=st.integers(0, 3), factor=st.integers(1, 3))
def test_chunk_size_invariance(chunk: int, seed: int, factor: int) -> None:
    movie, labels, p = random_case(seed)
    kw = dict(factor=factor, min_coverage=0.3, neuropil=0.7, neuropil_inner=0.5, neuropil_outer=3)
    ref = extract_observations(movie, labels, p, chunk_frames=movie.shape[0], **kw)
    got = extract_observations(movie, labels, p, chunk_frames=chunk, **kw)
    assert_same(ref, got)
    np.testing.assert_array_equal(ref.neuropil, got.neuropil)


def test_memmap_input(tmp_path) -> None:
    movie, labels, p = random_case(1)
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float32, shape=movie.shape)
    mm[:] = movie
    mm.flush()
    ro = np.load(tmp_path / "m.npy", mmap_mode="r")
    assert isinstance(ro, np.memmap)
    assert_same(extract_observations(movie, labels, p, min_coverage=0.3),
                extract_observations(ro, labels, p, min_coverage=0.3, chunk_frames=4))


def test_tifffile_memmap_input(tmp_path) -> None:
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(0)
    movie = rng.integers(0, 4000, (10, 8, 6), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", movie)
    mm = tifffile.memmap(tmp_path / "m.tif", mode="r")
    labels = np.zeros((8, 6), int)
    labels[1:3, 1:4] = 3
    labels[5:8, 0:2] = 1
    p = ScanPattern.strips(8, 10, 0.01, 2)
    a = extract_observations(movie, labels, p)
    b = extract_observations(mm, labels, p, chunk_frames=3)
    assert_same(a, b)
    # integer sums are exact
    np.testing.assert_array_equal(a.values[0::2, 1], movie[0::2, 1:3, 1:4].mean(axis=(1, 2)).astype(np.float32))


def test_nan_and_garbage_in_unacquired_rows_do_not_leak() -> None:
    movie, labels, p = random_case(2)
    zeros = np.where(np.isnan(movie), 0, movie)
    huge = np.where(np.isnan(movie), 1e30, movie)
    kw = dict(min_coverage=0.3, neuropil=0.7, neuropil_inner=0.5, neuropil_outer=3)
    a = extract_observations(movie, labels, p, **kw)
    assert_same(a, extract_observations(zeros, labels, p, **kw))
    assert_same(a, extract_observations(huge, labels, p, **kw))
    assert np.isfinite(a.values[a.observed_mask()]).all()
    assert np.nanmax(np.abs(a.values)) < 1000
    # NaN in an acquired row outside every ROI and annulus is not read
    movie2 = movie.copy()
    labels2 = labels.copy()
    labels2[:, 6] = 0
    labels2[8, 5] = 12
    obs = extract_observations(movie2, labels2, p, min_coverage=0.3)
    k = int(np.flatnonzero(p.frame_mask()[:, 0])[0])
    movie2[k, 0, 6] = np.nan  # row 0 acquired in sweep k; pixel (0, 6) is no ROI's
    assert_same(obs, extract_observations(movie2, labels2, p, min_coverage=0.3))


def test_nan_in_acquired_row_is_an_error() -> None:
    movie, labels, p = random_case(0)
    k = int(np.flatnonzero(p.frame_mask()[:, 4])[0])
    movie[k, 4, 3] = np.nan  # row 4 acquired in sweep k; (4, 3) belongs to ROI 9
    with pytest.raises(ValueError, match=rf"NaN in frame {k}, row 4 \(pixels of ROI id 9\).*Give this movie's scan pattern"):
        extract_observations(movie, labels, p, min_coverage=0.3, chunk_frames=3)


# ---------------------------------------------------------------------------- errors
def test_bad_inputs() -> None:
    movie, labels = tiny()
    p = ScanPattern.strips(4, 4, 1.0, 2)
    with pytest.raises(ValueError, match=r"shape \(T, Y, X\)"):
        extract_observations(movie[0], labels, p)
    with pytest.raises(TypeError, match="array-like"):
        extract_observations([[1]], labels, p)
    with pytest.raises(ValueError, match="2-D"):
        extract_observations(movie, labels[None], p)
    with pytest.raises(ValueError, match=r"labels have shape \(4, 3\).*\(4, 4\)"):
        extract_observations(movie, labels[:, :3], p)
    with pytest.raises(ValueError, match="no ROI"):
        extract_observations(movie, np.zeros((4, 4), int), p)
    with pytest.raises(ValueError, match=r"ROI id\(s\) \[3\] have no pixels"):
        extract_observations(movie, labels, p, roi_ids=[1, 3])
    with pytest.raises(ValueError, match="whole-number"):
        extract_observations(movie, labels + 0.5, p)
    with pytest.raises(ScanMismatchError, match="5 sweeps"):
        extract_observations(movie, labels, ScanPattern.strips(4, 5, 1.0, 2))
    with pytest.raises(ScanMismatchError, match="8 rows"):
        extract_observations(np.zeros((4, 8, 4)), np.pad(labels, ((0, 4), (0, 0))), ScanPattern.strips(4, 4, 1.0, 2))
    with pytest.raises(ValueError, match="frame_period"):
        extract_observations(movie, labels, None)
    with pytest.raises(ValueError, match="not both"):
        extract_observations(movie, labels, p, frame_period=2.0)
    with pytest.raises(ValueError, match="min_coverage"):
        extract_observations(movie, labels, p, min_coverage=0)
    with pytest.raises(ValueError, match="chunk_frames"):
        extract_observations(movie, labels, p, chunk_frames=0)
    with pytest.raises(ValueError, match="coefficient"):
        extract_observations(movie, labels, p, neuropil=True)
    # a pattern that never visits rows 2-3 never observes ROI 5
    only_top = ScanPattern.from_rows([[0, 1]], 4, 1.0, n_sweeps=4)
    with pytest.raises(ValueError, match=r"never observes ROI id\(s\) \[5\]"):
        extract_observations(movie, labels, only_top)
    # ...unless ROI 5 is left out
    assert extract_observations(movie, labels, only_top, roi_ids=[1]).n_rois == 1


def test_roi_ids_select_and_order() -> None:
    movie, labels = tiny()
    p = ScanPattern.strips(4, 4, 1.0, 2)
    a = extract_observations(movie, labels, p)
    b = extract_observations(movie, labels, p, roi_ids=[5, 1])
    np.testing.assert_array_equal(b.roi_ids, [5, 1])
    np.testing.assert_array_equal(b.values, a.values[:, ::-1])


# ---------------------------------------------------------------------------- progress
def test_progress_protocols() -> None:
    movie, labels = tiny()
    p = ScanPattern.strips(4, 4, 1.0, 2)
    calls = []
    extract_observations(movie, labels, p, chunk_frames=3, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(3, 4), (4, 4)]

    class Bar:
        n = 0

        def update(self, k: int) -> None:
            self.n += k

    bar = Bar()
    extract_observations(movie, labels, p, chunk_frames=3, progress=bar)
    assert bar.n == 4


# ---------------------------------------------------------------------------- neuropil
def test_annulus_pixels() -> None:
    labels = np.zeros((9, 9), int)
    labels[4, 4] = 1
    labels[4, 6] = 2
    (ring,) = annulus_pixels(labels, np.array([1]), inner=1.0, outer=2.0)
    yy, xx = np.divmod(ring, 9)
    d = np.hypot(yy - 4, xx - 4)
    assert np.all((d > 1) & (d <= 2))
    assert 4 * 9 + 6 not in ring  # ROI 2's pixel is excluded
    assert len(ring) == 8 - 1  # distances sqrt2 (4) and 2 (4), minus ROI 2


def test_neuropil_correction_and_missing_annulus() -> None:
    T, Y, X = 2, 6, 6
    movie = np.full((T, Y, X), 10.0)
    movie[:, 2:4, :] = 50.0  # ROI rows
    movie[1] *= 2
    labels = np.zeros((Y, X), int)
    labels[2:4, :] = 1  # whole rows: the annulus lies in rows 0-1 and 4-5 only
    both = ScanPattern.from_rows([[0, 1, 2, 3, 4, 5], [2, 3]], Y, 0.1)
    obs = extract_observations(movie, labels, both, neuropil=0.7, neuropil_inner=0.5, neuropil_outer=2)
    # sweep 0 acquires the annulus: 50 - 0.7 * 10; sweep 1 acquires none of it -> not observed
    np.testing.assert_allclose(obs.values[:, 0], [43.0, np.nan])
    np.testing.assert_allclose(obs.neuropil[:, 0], [10.0, np.nan])
    assert obs.coverage[0] == 0.5 and obs.units == "raw, neuropil-corrected"
    never = ScanPattern.from_rows([[2, 3]], Y, 0.1, n_sweeps=T)
    with pytest.raises(ValueError, match="neuropil annulus"):
        extract_observations(movie, labels, never, neuropil=0.7, neuropil_inner=0.5, neuropil_outer=2)
    crowded = np.ones((Y, X), int)
    crowded[0, 0] = 2
    with pytest.raises(ValueError, match="no neuropil pixels.*neuropil=None"):
        extract_observations(movie, crowded, ScanPattern.full_raster(Y, T, 0.1), neuropil=0.7)


# ---------------------------------------------------------------------------- dF/F
def test_dff_constant_and_exact_baseline() -> None:
    movie, labels = tiny()
    movie += 1000
    p = ScanPattern.strips(4, 4, 1.0, 2)
    raw = extract_observations(movie, labels, p)
    obs = extract_observations(movie, labels, p, dff=True, f0_window=100.0, f0_percentile=8)
    # one window covers the whole recording: F0 is the 8th percentile of each ROI's samples
    for j in range(2):
        v = raw.values[:, j].astype(np.float64)
        f0 = np.percentile(v[~np.isnan(v)], 8)
        np.testing.assert_allclose(obs.values[:, j], ((v - f0) / f0).astype(np.float32), rtol=1e-5)
    assert obs.units == "dF/F"


def test_running_baseline_follows_drift() -> None:
    t = np.arange(0, 600, 0.25)
    rng = np.random.default_rng(0)
    base = 100 + 0.1 * t
    f = base + np.where(rng.random(t.size) < 0.05, 50.0, 0.0)  # sparse transients on a drift
    f[1::3] = np.nan  # unobserved samples
    times = np.where(np.isnan(f), np.nan, t)
    f0 = running_percentile_baseline(f[:, None], times[:, None], window=30.0, percentile=8)[:, 0]
    ok = ~np.isnan(f)
    assert np.isnan(f0[~ok]).all()
    inner = ok & (t > 20) & (t < 580)
    assert np.abs(f0[inner] - base[inner]).max() < 2.0  # the 8th percentile sits near the drift


def test_dff_rejects_nonpositive_baseline() -> None:
    movie, labels = tiny()
    movie -= 500
    p = ScanPattern.strips(4, 4, 1.0, 2)
    with pytest.raises(ValueError, match=r"F0 is <= 0 for ROI id\(s\) \[1, 5\].*offset.*dff=False"):
        extract_observations(movie, labels, p, dff=True)


# ---------------------------------------------------------------------------- npz
def test_npz_round_trip(tmp_path) -> None:
    movie, labels, p = random_case(3)
    obs = extract_observations(movie, labels, p, factor=2, min_coverage=0.3, neuropil=0.7,
                               neuropil_inner=0.5, neuropil_outer=3)
    path = tmp_path / "obs.npz"
    obs.to_npz(path)
    back = Observations.from_npz(path)
    assert_same(obs, back)
    np.testing.assert_array_equal(obs.neuropil, back.neuropil)
    np.testing.assert_array_equal(obs.times, back.times)
    assert back.params == obs.params and back.params["neuropil"] == 0.7
    with pytest.raises(OutputExistsError):
        obs.to_npz(path)
    plain = extract_observations(movie, labels, p, min_coverage=0.3)
    plain.to_npz(path, overwrite=True)
    assert Observations.from_npz(path).neuropil is None
    # no suffix: written exactly where asked
    odd = tmp_path / "observations"
    plain.to_npz(odd)
    assert odd.is_file() and not (tmp_path / "observations.npz").exists()
    assert_same(plain, Observations.from_npz(odd))
    np.savez(tmp_path / "other.npz", values=np.zeros(3))
    with pytest.raises(ValueError, match="not a napari-sbtt observations file"):
        Observations.from_npz(tmp_path / "other.npz")
    assert list(tmp_path.glob(".*")) == []  # no temporary files left


# ---------------------------------------------------------------------------- traces
def single_row_case():
    T, Y, X = 12, 6, 8
    rng = np.random.default_rng(5)
    movie = rng.normal(200, 20, (T, Y, X))
    labels = np.zeros((Y, X), int)
    labels[0, 1:4] = 3
    labels[2, 5:8] = 1
    labels[3, 0:2] = 8
    labels[5, 2:7] = 4
    p = ScanPattern.strips(Y, T, 0.002, 3, order="interleaved", bidirectional=True)
    return movie, labels, p


def test_traces_agree_with_movie() -> None:
    movie, labels, p = single_row_case()
    ids = np.array([1, 3, 4, 8])
    obs = extract_observations(movie, labels, p, factor=3)
    mask = p.frame_mask()
    traces = np.full((movie.shape[0], ids.size), np.nan)
    rows, cols = [], []
    for j, i in enumerate(ids):
        yy, xx = np.nonzero(labels == i)
        rows.append(int(yy[0]))
        cols.append(xx.mean())
        traces[:, j] = movie[:, yy, xx].mean(axis=1)
        traces[~mask[:, yy[0]], j] = np.nan
    tr = observations_from_traces(traces, rows, p, factor=3, roi_cols=cols, n_cols=8, roi_ids=ids)
    np.testing.assert_array_equal(tr.observed_mask(), obs.observed_mask())
    np.testing.assert_allclose(tr.values, obs.values, rtol=1e-6)
    np.testing.assert_allclose(tr.sample_times, obs.sample_times, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(tr.coverage, obs.coverage)
    assert tr.params["dropped_unacquired"] == 0
    # finite values in sweeps that did not acquire the ROI are dropped and counted
    filled = np.where(np.isnan(traces), 0.0, traces)
    tr2 = observations_from_traces(filled, rows, p, factor=3, roi_cols=cols, n_cols=8, roi_ids=ids)
    np.testing.assert_array_equal(tr2.values, tr.values)
    assert tr2.params["dropped_unacquired"] == int(np.isnan(traces).sum())


def test_traces_row_lists_and_full_raster() -> None:
    T = 6
    traces = np.arange(T * 2, dtype=float).reshape(T, 2)
    traces[2, 1] = np.nan  # a dropped frame
    obs = observations_from_traces(traces, [[0, 1, 2, 3], 7.2], None, frame_period=1.0, n_rows=10)
    # full raster, line 0.1 s: ROI 0 at the mean of row centres 0.05..0.35 = 0.2 s; ROI 1 at row 7
    np.testing.assert_allclose(obs.sample_times[:, 0], np.arange(T) + 0.2)
    np.testing.assert_allclose(obs.sample_times[:, 1], np.where(np.arange(T) == 2, np.nan, np.arange(T) + 0.75))
    np.testing.assert_allclose(obs.coverage, [1.0, 5 / 6])
    strips = ScanPattern.strips(10, T, 0.1, 2)  # rows 0-4, then 5-9
    dropped = traces.copy()
    dropped[3, 1] = np.nan
    half = observations_from_traces(dropped, [[3, 4, 5, 6], [7]], strips, min_coverage=0.5)
    # ROI 0: half its rows in every sweep; ROI 1 (row 7): sweeps 1, 3, 5, but 3 has NaN
    np.testing.assert_allclose(half.coverage, [1.0, 2 / 6])
    np.testing.assert_allclose(half.values[:, 1], [np.nan, 3, np.nan, np.nan, np.nan, 11])
    with pytest.raises(ValueError, match="never observes"):
        observations_from_traces(traces, [[3, 4, 5, 6], [7]], strips, min_coverage=0.75)


def test_traces_bad_inputs() -> None:
    p = ScanPattern.strips(10, 6, 0.1, 2)
    tr = np.ones((6, 2))
    with pytest.raises(ValueError, match=r"\(T, N\)"):
        observations_from_traces(np.ones(6), [1], p)
    with pytest.raises(ValueError, match="F.T"):
        observations_from_traces(tr, [1, 2, 3], p)
    with pytest.raises(ScanMismatchError, match="7 frames"):
        observations_from_traces(np.ones((7, 2)), [1, 2], p)
    with pytest.raises(ValueError, match="outside the 10 rows"):
        observations_from_traces(tr, [1, 12], p)
    with pytest.raises(ValueError, match="n_cols"):
        observations_from_traces(tr, [1, 2], p, roi_cols=[0, 1])
    with pytest.raises(ValueError, match="n_rows"):
        observations_from_traces(tr, [1, 2], None, frame_period=1.0)
    with pytest.raises(ValueError, match="neuropil_traces"):
        observations_from_traces(tr, [1, 2], p, neuropil=0.7)
    nan = tr.copy()
    nan[:, 1] = np.nan
    with pytest.raises(ValueError, match=r"ROI id\(s\) \[2\] have no finite value"):
        observations_from_traces(nan, [1, 2], p)


def test_traces_neuropil() -> None:
    p = ScanPattern.full_raster(4, 3, 0.1)
    F = np.full((3, 1), 100.0)
    Fneu = np.array([[10.0], [np.nan], [20.0]])
    obs = observations_from_traces(F, [1], p, neuropil=0.5, neuropil_traces=Fneu)
    np.testing.assert_allclose(obs.values[:, 0], [95.0, np.nan, 90.0])
    np.testing.assert_allclose(obs.neuropil[:, 0], [10.0, np.nan, 20.0])
    np.testing.assert_allclose(obs.coverage, [2 / 3])


# ---------------------------------------------------------------------------- gather strategies
def reference_observations(movie, labels, p, *, factor, min_coverage, neuropil=None, inner=0.5, outer=3.0):
    """Per sweep and ROI, straight from the definitions (slow): mean of the acquired pixels."""
    T, Y, X = movie.shape
    ids = np.unique(labels)
    ids = ids[ids > 0]
    grid = p.fine_grid(factor)
    rt, dirs, off, mask = p.row_times(), p.line_directions(), p.pixel_offsets(X), p.frame_mask()
    rings = annulus_pixels(labels, ids, inner=inner, outer=outer) if neuropil is not None else None
    vals = np.zeros((grid.n_bins, ids.size), np.float32)
    neu = np.zeros((grid.n_bins, ids.size), np.float32)
    times = np.zeros((grid.n_bins, ids.size))
    count = np.zeros((grid.n_bins, ids.size), int)
    n_obs = np.zeros(ids.size)
    for j, i in enumerate(ids):
        pix = np.flatnonzero(labels.reshape(-1) == i)
        rows, cols = np.divmod(pix, X)
        for k in range(T):
            a = mask[k, rows]
            if a.sum() < pix.size * (min_coverage - 1e-9):
                continue
            frame = movie[k].reshape(-1).astype(np.float64)
            v = frame[pix[a]].sum() / a.sum()
            fn = None
            if rings is not None:
                ra = mask[k, rings[j] // X]
                if not ra.any():
                    continue
                fn = frame[rings[j][ra]].sum() / ra.sum()
                v = v - neuropil * fn
            t = np.mean(rt[k, rows[a]] + dirs[k, rows[a]] * off[cols[a]])
            b = int(grid.index(np.array([t]))[0])
            vals[b, j] += np.float32(v)
            times[b, j] += t
            if fn is not None:
                neu[b, j] += np.float32(fn)
            count[b, j] += 1
            n_obs[j] += 1
    with np.errstate(invalid="ignore"):
        return (np.where(count > 0, vals / np.maximum(count, 1).astype(np.float32), np.nan),
                np.where(count > 0, times / np.maximum(count, 1), np.nan),
                np.where(count > 0, neu / np.maximum(count, 1).astype(np.float32), np.nan), n_obs / T)


@st.composite
def scan_cases(draw):
    Y, X, T = draw(st.integers(2, 9)), draw(st.integers(1, 7)), draw(st.integers(1, 16))
    C = draw(st.sampled_from([1, 2, 3, 4, T]))
    cycle = [draw(st.permutations(range(Y)))[: draw(st.integers(0, Y))] for _ in range(min(C, T))]
    line = 0.01
    p = ScanPattern(Y, cycle, T, line, bidirectional=draw(st.booleans()),
                    **({"frame_period": Y * line * draw(st.sampled_from([1.0, 1.5]))} if draw(st.booleans())
                       else {"flyback": line * draw(st.integers(1, 3))}))
    labels = np.asarray(draw(st.lists(st.integers(0, 4), min_size=Y * X, max_size=Y * X))).reshape(Y, X)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kind = draw(st.sampled_from(["uint16", "float32", "float64"]))
    if kind == "uint16":
        movie = rng.integers(0, 4096, (T, Y, X)).astype(np.uint16)
    else:
        movie = rng.integers(0, 1000, (T, Y, X)).astype(kind)
        if kind == "float64":
            movie += rng.random((T, Y, X))  # not exact: checks that the strategies add in the same order
        movie[~p.frame_mask()] = np.nan
    return movie, labels, p, kind


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scan_cases(), chunk=st.integers(1, 17), factor=st.integers(1, 3),
       min_coverage=st.sampled_from([0.2, 0.5, 1.0]), neuropil=st.sampled_from([None, 0.7]))
def test_gather_strategies_are_bit_identical_and_match_reference(case, chunk, factor, min_coverage,
                                                                  neuropil) -> None:
    from napari_sbtt.core.gather import GATHER_MODES

    movie, labels, p, kind = case
    kw = dict(factor=factor, min_coverage=min_coverage, neuropil=neuropil, neuropil_inner=0.5, neuropil_outer=3,
              chunk_frames=chunk)
    results = {}
    for mode in GATHER_MODES:
        try:
            results[mode] = extract_observations(movie, labels, p, gather=mode, **kw)
        except ValueError as e:
            results[mode] = str(e)
    ref = results.pop("all")  # the original method: gather everything, drop unacquired segments
    for mode, got in results.items():
        if isinstance(ref, str):
            assert got == ref, mode
            continue
        for f in ["values", "sample_times", "coverage", "neuropil"]:
            a, b = getattr(ref, f), getattr(got, f)
            assert (a is None) == (b is None) and (a is None or a.tobytes() == b.tobytes()), (mode, f)
    if isinstance(ref, str):
        assert "never observes" in ref or "no neuropil pixels" in ref or "holds no ROI" in ref
        return
    v, t, fn, cov = reference_observations(movie, labels, p, factor=factor, min_coverage=min_coverage,
                                           neuropil=neuropil)
    np.testing.assert_array_equal(ref.coverage, cov)
    np.testing.assert_array_equal(np.isnan(ref.values), np.isnan(v))
    if kind == "float64":
        np.testing.assert_allclose(ref.values, v, rtol=1e-6)
    else:  # exact sums: the same float32 samples
        np.testing.assert_array_equal(ref.values, v)
        if neuropil is not None:
            np.testing.assert_array_equal(ref.neuropil, fn)
    np.testing.assert_allclose(ref.sample_times, t, rtol=0, atol=1e-12)


def test_nan_in_acquired_row_is_an_error_in_every_strategy() -> None:
    movie, labels, p = random_case(0)
    k = int(np.flatnonzero(p.frame_mask()[:, 4])[0])
    movie[k, 4, 3] = np.nan  # ROI 9
    strips = ScanPattern.strips(9, 13, 0.001, 3)
    clean = np.random.default_rng(0).normal(100, 10, movie.shape).astype(np.float32)
    movie2 = np.where(strips.frame_mask()[:, :, None], clean, np.nan)
    k2 = int(np.flatnonzero(strips.frame_mask()[:, 7])[1])
    movie2[k2, 7, 2] = np.nan  # ROI 4
    movie2[k2 + 1, 0, 0] = np.nan  # unacquired: ignored (and later anyway)
    for mode in ["auto", "phase", "pairs", "mixed", "all"]:
        with pytest.raises(ValueError, match=rf"NaN in frame {k}, row 4 \(pixels of ROI id 9\)"):
            extract_observations(movie, labels, p, min_coverage=0.3, chunk_frames=5, gather=mode)
        with pytest.raises(ValueError, match=rf"NaN in frame {k2}, row 7 \(pixels of ROI id 4\)"):
            extract_observations(movie2, labels, strips, min_coverage=0.3, chunk_frames=8, gather=mode)
    with pytest.raises(ValueError, match="gather must be one of"):
        extract_observations(movie, labels, p, min_coverage=0.3, gather="fast")


def test_periodic_pattern_reads_only_acquired_rows(monkeypatch) -> None:
    # count the pixels gathered: only those in the rows each sweep acquired
    _, labels, _ = random_case(1)
    p = ScanPattern.strips(9, 13, 0.001, 3)
    movie = np.random.default_rng(1).normal(100, 10, (13, 9, 7)).astype(np.float32)
    movie[~p.frame_mask()] = np.nan
    expect = extract_observations(movie, labels, p, min_coverage=0.3)
    from napari_sbtt.core import traces

    mask = p.frame_mask()
    calls = []
    real_take = np.take

    def take(a, idx, *args, **kwargs):
        out = real_take(a, idx, *args, **kwargs)
        calls.append(out.size)  # pixels gathered
        return out

    monkeypatch.setattr(traces.np, "take", take)
    got = extract_observations(movie, labels, p, min_coverage=0.3)  # chunks of whole cycles: "phase"
    assert_same(expect, got)
    n_roi_pixels = int((labels > 0).sum())
    # each sweep gathers only the ROI pixels of its own strip (a lone segment of a length twice)
    acquired = sum(int(((labels > 0) & mask[k][:, None]).sum()) for k in range(13))
    assert acquired <= sum(calls) <= 2 * acquired and 2 * acquired < 13 * n_roi_pixels
