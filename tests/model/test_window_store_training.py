"""Training from a WindowStore (windows drawn from the recording, issue 13 item 3): the same fit,
to the bit, as from the (n_windows, window, N) array of the same windows; no copy of all
windows is made; the held-out entries kept as bits and the per-neuron statistics taken a block
of neurons at a time equal those of the whole array."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from napari_sbtt.core.windows import WindowStore, make_windows, window_starts  # noqa: E402
from napari_sbtt.model import SBTTConfig, fit_trials, training  # noqa: E402
from napari_sbtt.model.likelihoods import Normaliser, make_likelihood  # noqa: E402
from napari_sbtt.model.masking import PackedMask, SampleValidation, random_mask  # noqa: E402

TINY = dict(readin_size=8, encoder_size=8, generator_size=8, factor_size=3, ic_size=8, batch_size=8,
            max_epochs=3, patience=100, num_threads=1, device="cpu", controller_size=4)


def _recording(n_t: int = 260, n: int = 5, seed: int = 0, observed: float = 0.5) -> np.ndarray:
    """(n_t, n) float32 dF/F-like values, NaN where not observed."""
    rng = np.random.default_rng(seed)
    x = (np.cumsum(rng.normal(size=(n_t, n)), axis=0) * 0.1 + rng.normal(size=(n_t, n))).astype(np.float32)
    x[rng.random(x.shape) >= observed] = np.nan
    return x


def _same_fit(a, b) -> None:
    def hist(m):
        return np.array([(r.train_loss, r.valid_loss, r.heldout_loss, r.learning_rate, r.best_epoch)
                         for r in m.history])

    np.testing.assert_array_equal(hist(a), hist(b))  # NaN (no held-out entries) equals NaN
    assert len(a.history) == TINY["max_epochs"]
    np.testing.assert_array_equal(a.normaliser.offset, b.normaliser.offset)
    np.testing.assert_array_equal(a.normaliser.scale, b.normaliser.scale)
    wa, wb = a.state_arrays(), b.state_arrays()
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


@pytest.mark.slow
@pytest.mark.parametrize(("likelihood", "extra"), [
    ("gaussian", {}),                                # validation windows split off (valid_fraction)
    ("calcium", {}),                                 # per-neuron percentile start of the baseline
    ("gaussian", {"valid_fraction": 0.0}),           # early stopping on the held-out entries
    ("gaussian", {"sample_validation": 0.0, "valid_fraction": 0.0}),
])
@pytest.mark.filterwarnings("ignore:no validation trials and sample_validation = 0")
def test_a_store_trains_as_the_array_of_its_windows(likelihood, extra):
    x = _recording()
    if likelihood == "calcium":
        x = x + 3.0
    wins = make_windows(x, 20, 5)
    cfg = SBTTConfig(**{**TINY, **extra})
    from_array = fit_trials(wins.values, likelihood=likelihood, config=cfg, seed=2)
    from_store = fit_trials(WindowStore(x, wins.starts, 20), likelihood=likelihood, config=cfg, seed=2)
    _same_fit(from_array, from_store)
    assert from_store.metadata["n_train_trials"] == from_array.metadata["n_train_trials"]
    assert from_store.metadata["n_bins"] == 20


@pytest.mark.slow
def test_a_memory_mapped_recording_trains_as_the_array(tmp_path):
    x = _recording(n_t=300, n=4, seed=7)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    wins = make_windows(x, 20, 5)
    cfg = SBTTConfig(**TINY)
    _same_fit(fit_trials(wins.values, likelihood="gaussian", config=cfg, seed=8),
              fit_trials(WindowStore(mm, wins.starts, 20), likelihood="gaussian", config=cfg, seed=8))


@pytest.mark.slow
def test_a_subset_of_windows_given_validation_and_adapt_match_too():
    """max_windows (a subset of the starts), validation windows given as a store, and adapt."""
    x = _recording(n_t=400, n=6, seed=3)
    wins = make_windows(x, 16, 4)
    pick = np.sort(np.random.default_rng(0).choice(len(wins.starts), 15, replace=False))
    rest = np.setdiff1d(np.arange(len(wins.starts)), pick)[:6]
    cfg = SBTTConfig(**TINY)
    a = fit_trials(wins.values[pick], wins.values[rest], likelihood="gaussian", config=cfg, seed=5)
    b = fit_trials(WindowStore(x, wins.starts[pick], 16), WindowStore(x, wins.starts[rest], 16),
                   likelihood="gaussian", config=cfg, seed=5)
    _same_fit(a, b)
    other = _recording(n_t=300, n=4, seed=4)  # other ROIs: read-in and readout re-learned
    ow = make_windows(other, 16, 4)
    _same_fit(a.adapt(ow.values, seed=6), a.adapt(WindowStore(other, ow.starts, 16), seed=6))


@pytest.mark.slow
def test_training_takes_a_few_windows_at_a_time(monkeypatch):
    """No read of the store ever holds all windows (blocks of a few windows and of a few neurons),
    and the fit is the same as with the usual block size."""
    x = _recording(n_t=300, n=7, seed=1)
    starts = window_starts(300, 20, 5)
    cfg = SBTTConfig(**TINY)
    usual = fit_trials(WindowStore(x, starts, 20), likelihood="calcium", config=cfg, seed=1)
    taken: list[tuple[int, ...]] = []
    take = WindowStore.take

    def spy(self, idx, columns=None, dtype=None):
        out = take(self, idx, columns, dtype)
        taken.append(out.shape)
        return out

    monkeypatch.setattr(WindowStore, "take", spy)
    monkeypatch.setattr(training, "BLOCK_ENTRIES", 2 * 20 * 7)  # two windows, or 3 ROIs, a block
    small = fit_trials(WindowStore(x + 0, starts, 20), likelihood="calcium", config=cfg, seed=1)
    _same_fit(usual, small)
    n_all = starts.size * 20 * 7
    assert taken and max(int(np.prod(s)) for s in taken) <= n_all * 3 / 7
    assert max(s[0] for s in taken if s[2] == 7) <= 2


def test_the_pipeline_trains_on_a_store_over_the_recording_itself():
    from napari_sbtt.config import RunConfig
    from napari_sbtt.pipeline import training_windows

    x = _recording(n_t=500, n=3)
    store = training_windows(x, 20, 5, RunConfig())
    assert isinstance(store, WindowStore) and store.values is x  # no copy of the recording
    np.testing.assert_array_equal(store.starts, window_starts(500, 20, 5))
    capped = training_windows(x, 20, 5, RunConfig(max_windows=7, seed=4))
    pick = np.sort(np.random.default_rng(4).choice(store.starts.size, 7, replace=False))
    np.testing.assert_array_equal(capped.starts, store.starts[pick])
    np.testing.assert_array_equal(capped.take(np.arange(7)), make_windows(x, 20, 5).values[pick])


# ----------------------------------------------------------------- pieces (no training)

@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 9), t=st.integers(1, 6), m=st.integers(1, 5), seed=st.integers(0, 2**16),
       cuts=st.lists(st.integers(1, 9), min_size=1, max_size=5))
def test_packed_mask_holds_every_bit(n, t, m, seed, cuts):
    rng = np.random.default_rng(seed)
    mask = rng.random((n, t, m)) < 0.4
    blocks, i = [], 0
    for c in cuts * n:  # consecutive blocks of windows of any sizes
        if i >= n:
            break
        blocks.append(mask[i:i + c])
        i += c
    if i < n:
        blocks.append(mask[i:])
    packed = PackedMask.from_blocks(blocks, mask.shape)
    assert packed.bits.nbytes == n * ((t * m + 7) // 8)
    idx = rng.integers(0, n, size=rng.integers(0, 2 * n + 1))
    np.testing.assert_array_equal(packed.rows(idx), mask[idx])
    assert packed.count() == int(mask.sum())


def test_held_out_bits_are_the_draws_of_the_whole_array():
    obs = np.isfinite(make_windows(_recording(), 20, 5).values)
    blocks = [obs[i:i + 3] for i in range(0, obs.shape[0], 3)]
    got = SampleValidation(0.3, np.random.default_rng(1)).training_mask(blocks, obs.shape)
    np.testing.assert_array_equal(got.rows(np.arange(obs.shape[0])), random_mask(obs, 0.3, np.random.default_rng(1)))
    assert SampleValidation(0.0, np.random.default_rng(1)).training_mask(blocks, obs.shape).count() == 0
    # validation: everything observed is scored when the draw leaves nothing
    one = np.zeros((1, 3, 1), dtype=bool)
    one[0, 0, 0] = True
    val = SampleValidation(1e-9, np.random.default_rng(0)).validation_mask(lambda: [one], one.shape)
    np.testing.assert_array_equal(val.rows([0]), one)
    with pytest.raises(ValueError, match="hold 1 windows, not 2"):
        PackedMask.from_blocks([one], (2, 3, 1))


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("likelihood", ["gaussian", "calcium", "poisson", "zig"])
def test_statistics_a_block_of_neurons_at_a_time_equal_the_whole_arrays(monkeypatch, n, likelihood):
    """The normaliser and the readout's start from column blocks (two or three neurons each here)
    equal, to the bit, those computed on the whole (n_windows, T, N) array at once."""
    x = np.abs(_recording(n_t=3000, n=n, seed=n)) + (3.0 if likelihood == "calcium" else 0.0)
    wins = make_windows(x, 30, 10)
    store = WindowStore(x, wins.starts, 30)
    arr = wins.values.astype(np.float64)
    monkeypatch.setattr(training, "BLOCK_ENTRIES", 1)  # the narrowest blocks: 2 (3) columns
    widths = [c.stop - c.start for c, _ in training.column_blocks(store)]
    assert sum(widths) == n and all(w >= 2 for w in widths if n > 1)
    cfg = SBTTConfig()
    norm = training.window_normaliser(likelihood, store)
    whole = Normaliser.standardise(arr) if likelihood in ("gaussian", "calcium") else Normaliser.identity(n)
    np.testing.assert_array_equal(norm.offset, whole.offset)
    np.testing.assert_array_equal(norm.scale, whole.scale)
    a, b = make_likelihood(likelihood, n, cfg), make_likelihood(likelihood, n, cfg)
    bias_a, bias_b = torch.zeros(n * a.n_params), torch.zeros(n * b.n_params)
    a.init_readout_bias(bias_a, whole.to_model(arr))
    training.init_readout(b, bias_b, norm, store)
    assert torch.equal(bias_a, bias_b)
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), k


def test_a_store_is_checked_as_an_array_is():
    x = _recording(n_t=200, n=3)
    x[40:80] = np.nan  # windows 2 and 3 (of 20 bins, no overlap) see nothing: dropped
    store = WindowStore(x, window_starts(200, 20, 0), 20)
    with pytest.warns(UserWarning, match=r"dropping 2 trial\(s\).*\[2, 3\]"):
        kept = training.validate_trials(store, "train", "gaussian")
    np.testing.assert_array_equal(kept.starts, [0, 20, 80, 100, 120, 140, 160, 180])
    assert kept.values is x
    with pytest.raises(ValueError, match="negative values"), pytest.warns(UserWarning, match="dropping 2"):
        training.validate_trials(store, "train", "poisson")
    bad = x.copy()
    bad[5, 1] = np.inf
    with pytest.raises(ValueError, match="contains inf"):
        training.validate_trials(WindowStore(bad, [0], 20), "train", "gaussian")
    with pytest.raises(ValueError, match="never observed"):
        holes = x.copy()
        holes[:, 2] = np.nan
        training.check_neurons_observed(WindowStore(holes, [0, 100], 20))
