"""A real resume (weights, AdamW moments, schedule, generators): the model search's Population
Based Training depends on it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_sbtt.core.lorenz_protocol import make_lorenz_spiking, mask_bandwidth  # noqa: E402
from napari_sbtt.model import SBTTConfig, fit_trials  # noqa: E402
from napari_sbtt.model.checkpoint import read_training_state, save_training_state  # noqa: E402

TINY = dict(readin_size=8, encoder_size=8, generator_size=8, factor_size=3, ic_size=8, batch_size=8,
            max_epochs=8, patience=100, lr_warmup_epochs=2, lr_patience=1, num_threads=1, device="cpu",
            controller_size=4)


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    d = make_lorenz_spiking(n_conditions=4, trials_per_condition=6, n_neurons=6, n_bins=12, seed=2)
    return mask_bandwidth(d.train_counts, 3, 0)


def _losses(model) -> list[tuple[float, float, float]]:
    return [(r.train_loss, r.valid_loss, r.learning_rate) for r in model.history]


def test_a_resumed_fit_equals_one_that_never_stopped(train, tmp_path):
    cfg = SBTTConfig(**TINY)
    whole = fit_trials(train, likelihood="poisson", config=cfg, seed=3)

    saved = tmp_path / "state.safetensors"
    models = []

    def keep(report, snapshot):  # a snapshot every epoch must not change the fit
        state, model = snapshot()
        models.append(model)
        if report.epoch == 3:
            save_training_state(state, saved)

    stopped = fit_trials(train, likelihood="poisson", config=cfg, seed=3, checkpoint=keep,
                         progress=lambda r: r.epoch == 3)
    assert len(stopped.history) == 4
    np.testing.assert_array_equal(np.array(_losses(stopped)), np.array(_losses(whole))[:4])
    # the snapshot's model holds the best weights so far
    best = models[3]
    assert best.best_epoch == stopped.best_epoch
    for k, v in stopped.state_arrays().items():
        np.testing.assert_array_equal(best.state_arrays()[k], v)

    state = read_training_state(saved)
    assert state.epoch == 4 and len(state.history) == 4 and state.optimizer["state"]
    resumed = fit_trials(train, likelihood="poisson", config=cfg, seed=3, resume=state)
    assert len(resumed.history) == cfg.max_epochs
    np.testing.assert_array_equal(np.array(_losses(resumed)), np.array(_losses(whole)))
    assert resumed.best_epoch == whole.best_epoch
    for k, v in whole.state_arrays().items():
        np.testing.assert_array_equal(resumed.state_arrays()[k], v, err_msg=k)


def test_a_perturbed_learning_rate_scales_the_schedule(train, tmp_path):
    cfg = SBTTConfig(**TINY)
    states = {}
    fit_trials(train, likelihood="poisson", config=cfg, seed=3,
               checkpoint=lambda r, snap: states.setdefault("s", snap()[0]) if r.epoch == 3 else None,
               progress=lambda r: r.epoch == 3)
    lr_before = states["s"].history[-1].learning_rate
    hot = cfg.replace(learning_rate=cfg.learning_rate * 2, weight_decay=1e-2, dropout=0.2)
    resumed = fit_trials(train, likelihood="poisson", config=hot, seed=3, resume=states["s"], progress=lambda r: True)
    assert resumed.history[4].learning_rate == pytest.approx(2 * lr_before)


def test_a_file_that_is_no_training_state_is_named(tmp_path):
    p = tmp_path / "x.safetensors"
    p.write_bytes(b"nonsense")
    with pytest.raises(ValueError, match="x.safetensors is not a napari-sbtt training state"):
        read_training_state(p)


def test_preparing_the_training_data_block_by_block_changes_no_number(train, monkeypatch):
    """Long recordings: the masks and model-unit tensors are built a block of windows at a time
    (no float64 copy of the whole training set); the fit is the same to the bit."""
    from napari_sbtt.model import masking, training

    cfg = SBTTConfig(**{**TINY, "max_epochs": 3})
    whole = fit_trials(train, likelihood="poisson", config=cfg, seed=4)
    monkeypatch.setattr(masking, "BLOCK_ENTRIES", 50)  # a few windows per block
    monkeypatch.setattr(training, "BLOCK_ENTRIES", 50)
    obs = np.isfinite(train)
    np.testing.assert_array_equal(masking.random_mask(obs, 0.3, np.random.default_rng(1)),
                                  obs & (np.random.default_rng(1).random(obs.shape) < 0.3))
    blocks = fit_trials(train, likelihood="poisson", config=cfg, seed=4)
    np.testing.assert_array_equal(np.array(_losses(blocks)), np.array(_losses(whole)))
    for k, v in whole.state_arrays().items():
        np.testing.assert_array_equal(blocks.state_arrays()[k], v, err_msg=k)


def test_float32_windows_fit_as_their_float64_values(train):
    """fit_trials keeps float32 windows float32 until the train / validation split (no float64 copy
    of the whole set); the numbers are those of the same values given as float64."""
    cfg = SBTTConfig(**{**TINY, "max_epochs": 2})
    x32 = train.astype(np.float32)
    a = fit_trials(x32, likelihood="poisson", config=cfg, seed=5)
    b = fit_trials(x32.astype(np.float64), likelihood="poisson", config=cfg, seed=5)
    np.testing.assert_array_equal(np.array(_losses(a)), np.array(_losses(b)))
    for k, v in b.state_arrays().items():
        np.testing.assert_array_equal(a.state_arrays()[k], v, err_msg=k)
