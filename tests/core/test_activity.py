"""Lazy display arrays of core.activity: exact values, numpy-compatible slicing, no big allocations."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from napari_sbtt.core.activity import (
    ActivityMovie,
    MaskedMovie,
    RowMaskMovie,
    roi_rows,
    roi_sample_rates,
    roi_summary,
    time_axis,
)
from napari_sbtt.core.scan import ScanPattern


def _toy() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.array([[0, 1, 1, 0], [2, 2, 0, 5], [0, 0, 5, 5]], dtype=np.int32)
    roi_ids = np.array([1, 2, 5])
    rates = np.arange(6 * 3, dtype=np.float32).reshape(6, 3) + 1.0
    return rates, labels, roi_ids


def _dense(rates: np.ndarray, labels: np.ndarray, roi_ids: np.ndarray, bg: float = 0.0) -> np.ndarray:
    out = np.full((rates.shape[0], *labels.shape), bg, dtype=np.float32)
    for i, rid in enumerate(roi_ids):
        out[:, labels == rid] = rates[:, i][:, None]
    return out


def test_activity_movie_paints_each_roi_with_its_rate():
    rates, labels, roi_ids = _toy()
    m = ActivityMovie(rates, labels, roi_ids)
    assert m.shape == (6, 3, 4) and m.ndim == 3 and m.dtype == np.float32 and len(m) == 6
    frame = m[2]
    assert frame.shape == (3, 4)
    np.testing.assert_array_equal(
        frame, [[0, 7, 7, 0], [8, 8, 0, 9], [0, 0, 9, 9]])


@pytest.mark.parametrize(
    "key",
    [0, -1, slice(1, 4), slice(None, None, 2), (slice(None), 1), (3, slice(0, 2), slice(1, 3)),
     (Ellipsis, 2), (np.array([5, 0, 2]),), (1, np.array([True, False, True])), (slice(2, 3), 0, 3),
     (slice(None, None, -1), slice(None), slice(None, None, -2))],
)
def test_activity_movie_slicing_matches_numpy(key):
    rates, labels, roi_ids = _toy()
    lazy = ActivityMovie(rates, labels, roi_ids, background=-1.0)
    dense = _dense(rates, labels, roi_ids, bg=-1.0)
    np.testing.assert_array_equal(lazy[key], dense[key])
    np.testing.assert_array_equal(np.asarray(lazy), dense)


def test_activity_movie_rejects_bad_input():
    rates, labels, roi_ids = _toy()
    with pytest.raises(ValueError, match="one label per column"):
        ActivityMovie(rates, labels, roi_ids[:2])
    with pytest.raises(ValueError, match=r"\(Y, X\)"):
        ActivityMovie(rates, labels[None], roi_ids)
    with pytest.raises(ValueError, match="integer"):
        ActivityMovie(rates, labels.astype(float), roi_ids)
    with pytest.raises(IndexError):
        ActivityMovie(rates, labels, roi_ids)[6]


def test_activity_movie_never_allocates_the_full_volume():
    # 20000 fine bins x 256 x 256 float32 would be 5.2 GB; one frame is 256 kB
    n_t, ny, nx, n = 20_000, 256, 256, 50
    rng = np.random.default_rng(0)
    rates = rng.random((n_t, n), dtype=np.float32)
    labels = rng.integers(0, n + 1, size=(ny, nx)).astype(np.int32)
    tracemalloc.start()
    m = ActivityMovie(rates, labels, np.arange(1, n + 1))
    frame = m[12_345]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert m.shape == (n_t, ny, nx)
    assert peak < 4 * ny * nx * 4  # a few frames' worth at most
    expected = np.where(labels > 0, rates[12_345][np.maximum(labels, 1) - 1], 0)
    np.testing.assert_array_equal(frame, expected)


def test_row_mask_movie_matches_pattern():
    p = ScanPattern.strips(6, 5, 1e-3, 3)
    mm = RowMaskMovie(p.frame_mask(), 4)
    assert mm.shape == (5, 6, 4) and mm.dtype == np.uint8
    dense = np.repeat(p.frame_mask()[:, :, None], 4, axis=2).astype(np.uint8)
    np.testing.assert_array_equal(mm[:], dense)
    np.testing.assert_array_equal(mm[1, 2:5, ::2], dense[1, 2:5, ::2])


def test_masked_movie_blanks_unacquired_rows_lazily():
    rng = np.random.default_rng(1)
    movie = rng.random((5, 6, 4)).astype(np.float32)
    p = ScanPattern.random_lines(6, 5, 1e-3, 0.5, seed=3)
    reduced = MaskedMovie(movie, p.frame_mask())
    expected = np.where(p.frame_mask()[:, :, None], movie, np.nan)
    np.testing.assert_array_equal(reduced[:], expected)
    np.testing.assert_array_equal(reduced[np.array([4, 1])], expected[[4, 1]])
    np.testing.assert_array_equal(reduced[2, 3], expected[2, 3])
    # the inferred pattern of the reduced movie is the pattern we applied
    assert ScanPattern.from_movie(reduced, 1e-3) == ScanPattern.from_mask(p.frame_mask(), 1e-3)
    with pytest.raises(ValueError, match="sweeps"):
        MaskedMovie(movie[:4], p.frame_mask())


def test_integer_movie_masked_as_float():
    movie = np.ones((2, 3, 2), dtype=np.uint16)
    mask = np.array([[True, False, True], [False, True, False]])
    out = MaskedMovie(movie, mask)[:]
    assert out.dtype == np.float32
    assert np.isnan(out[0, 1]).all() and (out[0, 0] == 1).all()


def test_roi_rows_and_sample_rates():
    rates, labels, roi_ids = _toy()
    rows = roi_rows(labels, roi_ids)
    np.testing.assert_array_equal(rows, [[1, 0, 0], [0, 1, 0], [0, 1, 1]])
    # sweeps acquire rows: {0}, {1}, {2}, {0}  -> ROI 1 twice, ROI 2 once, ROI 5 twice in 2 s
    mask = np.zeros((4, 3), dtype=bool)
    mask[[0, 1, 2, 3], [0, 1, 2, 0]] = True
    np.testing.assert_allclose(roi_sample_rates(mask, labels, roi_ids, 2.0), [1.0, 0.5, 1.0])
    with pytest.raises(ValueError):
        roi_sample_rates(mask, labels, roi_ids, 0.0)


def test_roi_summary():
    t = np.linspace(0, 1, 50)
    rates = np.stack([np.sin(6 * t), np.cos(6 * t), np.ones_like(t)], axis=1)
    obs = rates.copy()
    obs[::2] = np.nan
    obs[:, 1] = -obs[:, 1]
    s = roi_summary(obs, rates)
    np.testing.assert_allclose(s["observed_share"], 0.5)
    assert s["fit_r"][0] == pytest.approx(1.0)
    assert s["fit_r"][1] == pytest.approx(-1.0)
    assert np.isnan(s["fit_r"][2])  # constant trace


def test_time_axis_centres_frames_on_their_interval():
    scale, translate = time_axis(0.5, 0.1)
    assert scale == 0.1 and translate == pytest.approx(0.55)
    # a world time inside frame k maps (nearest index) to k
    for k in range(5):
        w = 0.5 + k * 0.1 + 0.03
        assert int(np.round((w - translate) / scale)) == k
    with pytest.raises(ValueError):
        time_axis(0.0, 0.0)
