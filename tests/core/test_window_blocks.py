"""Windows cut and merged block by block (long recordings): the same numbers as all at once."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sbtt.core.windows import (
    WindowStore,
    make_windows,
    merge_range,
    merge_windows,
    window_starts,
    window_weights,
    windows_at,
)


def _recording(n_t: int = 203, n: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_t, n)).astype(np.float32)
    x[rng.random(x.shape) < 0.6] = np.nan
    return x


@pytest.mark.parametrize("offset", [0, 1, 7])
def test_windows_at_are_the_windows_of_the_padded_recording(offset):
    x = _recording()
    padded = np.concatenate([np.full((offset, x.shape[1]), np.nan, np.float32), x])
    wins = make_windows(padded, 20, 5)
    got = windows_at(x, wins.starts, 20, offset=offset)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, wins.values)


@pytest.mark.parametrize("block", [1, 3, 8, 100])
def test_merging_block_by_block_is_bit_identical(block):
    rng = np.random.default_rng(1)
    n_t, length, overlap = 203, 20, 7
    starts = window_starts(n_t, length, overlap)
    est = rng.normal(size=(starts.size, length, 4))
    est[rng.random(est.shape) < 0.1] = np.nan
    whole = merge_windows(est, starts, n_t)
    weights = window_weights(starts, length)
    out = np.empty_like(whole)
    lo = 0
    for i0 in range(0, starts.size, block):  # bins up to the next block's first start
        i1 = min(starts.size, i0 + block)
        hi = int(starts[i1]) if i1 < starts.size else n_t
        first = int(np.searchsorted(starts + length, lo, side="right"))  # the first window covering lo
        out[lo:hi] = merge_range(est[first:i1], first, starts, weights, lo, hi)
        lo = hi
    np.testing.assert_array_equal(out, whole)


def test_window_store_takes_what_make_windows_holds(tmp_path):
    x = _recording()
    wins = make_windows(x, 16, 4)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mm[:] = x
    mm.flush()
    for values in (x, np.load(tmp_path / "x.npy", mmap_mode="r")):
        store = WindowStore(values, wins.starts, 16)
        assert store.shape == wins.values.shape and len(store) == wins.n_windows
        idx = np.array([3, 0, 7, 7])
        np.testing.assert_array_equal(store.take(idx), wins.values[idx])
        got = np.concatenate([b for _, b in store.blocks(5)])
        np.testing.assert_array_equal(got, wins.values)
    with pytest.raises(ValueError, match="do not fit"):
        WindowStore(x, [0, 200], 16)
