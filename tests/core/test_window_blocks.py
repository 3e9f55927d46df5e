"""Windows cut and merged block by block (long recordings): the same numbers as all at once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=60, deadline=None)
@given(n_t=st.integers(1, 60), n=st.integers(1, 5), data=st.data())
def test_window_store_windows_subsets_and_columns(n_t, n, data):
    """take(idx, columns) is make_windows' array indexed the same way, for any starts; a subset
    is those windows in that order; an array of windows is a store of itself (no copy)."""
    length = data.draw(st.integers(1, n_t))
    overlap = data.draw(st.integers(0, length - 1))
    x = _recording(n_t, n, seed=n_t * 7 + n)
    wins = make_windows(x, length, overlap)
    store = WindowStore(x, wins.starts, length)
    idx = np.array(data.draw(st.lists(st.integers(0, len(store) - 1), max_size=8)), dtype=np.int64)
    c0 = data.draw(st.integers(0, n - 1))
    cols = slice(c0, data.draw(st.integers(c0 + 1, n)))
    np.testing.assert_array_equal(store.take(idx, columns=cols), wins.values[idx][:, :, cols])
    sub = store.subset(idx)
    assert sub.values is x and sub.shape == (idx.size, length, n)
    np.testing.assert_array_equal(sub.take(np.arange(idx.size)), wins.values[idx])
    own = WindowStore.from_windows(wins.values)
    assert np.shares_memory(own.values, wins.values) and own.shape == wins.values.shape
    np.testing.assert_array_equal(own.take(idx), wins.values[idx])


def test_integer_values_become_float64_a_window_at_a_time():
    x = np.arange(40, dtype=np.int16).reshape(20, 2)
    store = WindowStore(x, [0, 5, 10], 8)
    assert store.dtype == np.float64
    got = store.take([2, 0])
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, make_windows(x, 8, 3).values[[2, 0]])
    with pytest.raises(ValueError, match=r"must be \(n_windows, length, N\)"):
        WindowStore.from_windows(x)
