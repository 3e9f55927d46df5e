"""The Train tab states what a fit may cost (limits, seconds against the cap, the most time left)
and, after a calcium fit, the held-out verdict against OASIS, adding OASIS's estimate as a layer
when OASIS is better. Driven with reports and results built here: nothing is trained."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_sbtt.model.config import EpochReport  # noqa: E402
from napari_sbtt.plugin._layers import OASIS_KEY, RESULT_KEY  # noqa: E402
from napari_sbtt.plugin._state import TrainState  # noqa: E402
from napari_sbtt.plugin._train_widget import FIT_STEPS  # noqa: E402
from tests.factories import fake_calcium_result, make_labels  # noqa: E402

pytestmark = pytest.mark.gui


def _train(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-sbtt", "Train / Load")
    return widget


def test_the_train_tab_states_the_limits_and_counts_seconds_against_the_cap(viewer):
    train = _train(viewer)
    text = train.limits.text
    assert "600 s (time cap) or 400 epochs" in text and "held-out samples" in text
    train.epochs.value = 50
    assert "600 s (time cap) or 50 epochs" in train.limits.text
    train.max_seconds.value = 0  # the spin box's lowest value: no cap
    assert "no time cap" in train.limits.text and "50 epochs" in train.limits.text
    train.reset_settings()
    assert "600 s (time cap) or 400 epochs" in train.limits.text
    # a fit's reports: 10 epochs of 2 s under the 600 s cap
    report = EpochReport(epoch=9, total_epochs=400, train_loss=1.0, valid_loss=1.1, heldout_loss=1.1, seconds=20.0,
                         best_epoch=8, best_valid_loss=1.1, is_best=False, max_seconds=600.0)
    train._on_reports([report])
    assert "epoch 10/400, 20 s of the 600 s cap, at most 9:40 left (cap)" in train.status.text
    assert train.progress_bar.max == FIT_STEPS
    assert train.progress_bar.value == round(20 / 600 * FIT_STEPS)


def _finish(train, viewer, result):
    train._inputs_used = (None, "rois", "rec")
    train.state.to(TrainState.TRAINING)
    train._on_done(result)


def _compared(verdict: str, estimate: str, *, samples: dict, gaps: dict, oasis_value: float):
    """A fake calcium result with this held-out comparison and OASIS's estimate (all ``oasis_value``)."""
    res = fake_calcium_result()
    res.oasis_rates = np.full_like(res.rates, oasis_value)
    se = {f"{estimate} - oasis": 0.05}
    res.metrics["heldout"] = {
        "share": 0.1, "estimate": estimate, "verdict": verdict,
        "sbtt_beats_oasis": {"SBTT better": True, "OASIS better": False}.get(verdict),
        "samples": {"kind": "samples", "n_samples": 90, "r2": samples, "se": se},
        "gaps": {"kind": "gaps", "n_samples": 60, "r2": gaps, "se": se},
    }
    return res


def test_the_verdict_shows_after_a_fit_and_oasis_gets_a_layer_when_it_is_better(viewer):
    train = _train(viewer)
    viewer.add_labels(make_labels(), name="rois")
    worse = _compared("OASIS better", "network", samples={"network": 0.2, "deconvolution": 0.3},
                      gaps={"network": 0.1, "deconvolution": 0.1, "oasis": 0.4}, oasis_value=0.5)
    _finish(train, viewer, worse)
    assert train.state.state is TrainState.DONE
    assert "OASIS better" in train.message.text and "'rois OASIS'" in train.message.text
    oasis = viewer.layers["rois OASIS"]
    assert oasis.metadata[OASIS_KEY] and RESULT_KEY not in oasis.metadata
    assert oasis.data.shape == viewer.layers["rois activity"].data.shape
    assert np.nanmax(np.asarray(oasis.data[0])) == pytest.approx(0.5)  # OASIS's values painted into the ROIs
    # a later fit where SBTT is better: its verdict, and the stale OASIS layer goes
    better = fake_calcium_result()
    better.metrics["heldout"] = {**worse.metrics["heldout"], "verdict": "SBTT better", "sbtt_beats_oasis": True,
                                 "gaps": {**worse.metrics["heldout"]["gaps"],
                                          "r2": {"network": 0.6, "deconvolution": 0.1, "oasis": 0.4}}}
    _finish(train, viewer, better)
    assert "R² SBTT 0.600 (network), OASIS 0.400: SBTT better" in train.message.text
    assert "rois OASIS" not in [la.name for la in viewer.layers]
    # results that were not compared say so; other likelihoods have no verdict
    _finish(train, viewer, replace(better, metrics={**better.metrics, "heldout": None}))
    assert "not compared" in train.message.text


def test_no_clear_difference_adds_oasis_as_a_layer_too(viewer):
    train = _train(viewer)
    viewer.add_labels(make_labels(), name="rois")
    level = _compared("no clear difference", "combined", samples={"combined": 0.3, "oasis": 0.5},
                      gaps={"combined": 0.4, "oasis": 0.41}, oasis_value=0.25)
    _finish(train, viewer, level)
    assert "no clear difference" in train.message.text and "'rois OASIS'" in train.message.text
    assert np.nanmax(np.asarray(viewer.layers["rois OASIS"].data[0])) == pytest.approx(0.25)