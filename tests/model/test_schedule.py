"""The training loop's parts: the learning-rate schedule and the two masks (sample validation,
coordinated dropout), each on its own."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_sbtt.model.config import SBTTConfig
from napari_sbtt.model.schedule import LearningRateSchedule


def test_warmup_then_plateau_halving() -> None:
    s = LearningRateSchedule(SBTTConfig(learning_rate=0.1, lr_warmup_epochs=3, lr_patience=2, min_learning_rate=0.02))
    assert [s.epoch_start(e) for e in range(5)] == pytest.approx([0.025, 0.05, 0.075, 0.1, None])
    assert s.batch(0, 1, 4, 0.0) is None  # plateau: no per-batch rate
    assert s.epoch_end(1, best_epoch=0, improved=False) is None  # patience not used up yet
    assert s.epoch_end(2, best_epoch=0, improved=False) == pytest.approx(0.05)
    assert s.epoch_end(3, best_epoch=0, improved=False) is None  # at most once per patience
    assert s.epoch_end(4, best_epoch=0, improved=False) == pytest.approx(0.025)
    assert s.epoch_end(6, best_epoch=0, improved=False) == pytest.approx(0.02)  # floor
    assert s.epoch_end(9, best_epoch=0, improved=False) is None
    assert s.after_divergence() == pytest.approx(0.01) and s.peak == pytest.approx(0.01)


def test_cosine_ends_at_the_minimum_by_epochs_or_by_the_budget() -> None:
    c = SBTTConfig(learning_rate=0.1, lr_schedule="cosine", lr_warmup_epochs=0, max_epochs=10,
                   min_learning_rate=1e-3, max_seconds=100.0)
    s = LearningRateSchedule(c)
    assert s.epoch_start(0) is None and s.epoch_end(5, 0, improved=False) is None
    assert s.batch(0, 0, 2, 0.0) == pytest.approx(0.1)
    assert s.batch(5, 0, 2, 0.0) == pytest.approx(1e-3 + (0.1 - 1e-3) * 0.5)
    assert s.batch(2, 0, 2, 100.0) == pytest.approx(1e-3)  # the budget is spent
    assert s.at(10.0, 0.0) == pytest.approx(1e-3) and math.isfinite(s.at(20.0, 0.0))


def test_coordinated_dropout_scores_only_what_it_hides() -> None:
    torch = pytest.importorskip("torch")
    from napari_sbtt.model.masking import CoordinatedDropout, SampleValidation

    inputs = torch.rand((50, 20, 8), generator=torch.Generator().manual_seed(0)) < 0.7
    seen, scored = CoordinatedDropout(0.3, torch.Generator().manual_seed(1))(inputs)
    assert not (seen & scored).any() and torch.equal(seen | scored, inputs)
    assert 0.25 < float(scored.sum()) / float(inputs.sum()) < 0.35
    off_seen, off_scored = CoordinatedDropout(0.0, torch.Generator())(inputs)
    assert torch.equal(off_seen, inputs) and torch.equal(off_scored, inputs)
    obs = inputs.numpy()

    def training(sv, o):  # the held-out entries of windows o, all of them unpacked
        return sv.training_mask([o], o.shape).rows(np.arange(o.shape[0]))

    def validation(sv, o):
        return sv.validation_mask(lambda: [o], o.shape).rows(np.arange(o.shape[0]))

    held = training(SampleValidation(0.1, np.random.default_rng(0)), obs)
    assert not (held & ~obs).any() and 0.07 < float(held.sum()) / float(obs.sum()) < 0.13
    assert training(SampleValidation(0.0, np.random.default_rng(0)), obs).sum() == 0
    # validation trials always score something: 0.2 of the entries when sample validation is off,
    # all of them when the draw leaves none
    assert float(validation(SampleValidation(0.0, np.random.default_rng(0)), obs).sum()) > 0
    one = np.zeros((1, 3, 1), dtype=bool)
    one[0, 0, 0] = True
    assert np.array_equal(validation(SampleValidation(1e-9, np.random.default_rng(0)), one), one)
