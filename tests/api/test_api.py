"""run_on_stack end to end on the tiny synthetic scan: fit, stop, save, load, apply."""

from __future__ import annotations

import json

import numpy as np
import pytest

import napari_sbtt as ns
from napari_sbtt.api import RunConfig, RunStopped, StageReport, load_result
from napari_sbtt.core.atomic import OutputExistsError

TINY_MODEL = {
    "readin_size": 8, "encoder_size": 12, "generator_size": 12, "factor_size": 3,
    "ic_size": 8, "batch_size": 16,
}


@pytest.fixture(scope="module")
def sim():
    return ns.simulate("tiny", seed=1)


@pytest.fixture(scope="module")
def result(sim):
    return ns.run_on_stack(
        sim.movie, sim.labels, sim.pattern,
        config={"epochs": 3, "window_s": 1.0, "likelihood": "gaussian", "model": TINY_MODEL},
    )


@pytest.mark.slow
def test_result_shapes_units_and_grid(sim, result):
    n = sim.labels.max()
    grid = sim.pattern.fine_grid(1)
    assert result.rates.shape == (grid.n_bins, n) == result.observations.shape
    np.testing.assert_allclose(result.times, grid.centres)
    assert np.isfinite(result.rates).all()
    # the observations are exactly the extraction's: NaN where an ROI was not acquired
    obs = ns.extract_observations(sim.movie, sim.labels, sim.pattern, dff=True)
    np.testing.assert_array_equal(np.isnan(result.observations), np.isnan(obs.values))
    np.testing.assert_allclose(result.observations, obs.values, equal_nan=True)
    np.testing.assert_array_equal(result.roi_ids, np.arange(1, n + 1))
    assert 0 < result.metrics["observed_share"] < 1
    assert result.metrics["epochs_run"] == 3
    assert not result.stopped


@pytest.mark.slow
def test_save_load_round_trip_and_no_overwrite(tmp_path, result):
    out = result.save(tmp_path / "res")
    back = load_result(out)
    np.testing.assert_array_equal(back.rates, result.rates)
    np.testing.assert_array_equal(back.observations, result.observations)
    assert back.grid == result.grid and back.units == result.units
    assert back.config["likelihood"] == "gaussian"
    with pytest.raises(OutputExistsError, match="overwrite"):
        result.save(out)
    result.save(out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]  # no temporary left behind
    # the stored model applied to the same movie reproduces the rates
    # ... with no settings repeated: the checkpoint brings its likelihood and window
    again = ns.run_on_stack(*_inputs(back), model=out / "model.safetensors")
    np.testing.assert_allclose(again.rates, result.rates, rtol=1e-5, atol=1e-6)
    assert again.metrics["epochs_run"] == result.metrics["epochs_run"]  # history came along, no refit


def _inputs(res):
    sim = ns.simulate("tiny", seed=1)
    return sim.movie, sim.labels, sim.pattern


@pytest.mark.slow
def test_checkpoint_for_other_units_is_refused(sim, result):
    with pytest.raises(ValueError, match="dF/F"):
        ns.run_on_stack(sim.movie, sim.labels, sim.pattern, model=result.model, config={"dff": False})


@pytest.mark.slow
def test_checkpoint_for_other_rois_is_refused(sim, result):
    labels = sim.labels.copy()
    labels[labels == labels.max()] = 0  # one ROI fewer
    with pytest.raises(ValueError, match="neurons|ROI"):
        ns.run_on_stack(sim.movie, labels, sim.pattern, model=result.model,
                        config={"likelihood": "gaussian", "window_s": 1.0})


@pytest.mark.slow
def test_stop_during_training_keeps_best_and_returns_result(sim):
    seen: list = []

    def progress(report):
        seen.append(report)
        return hasattr(report, "epoch") and report.epoch >= 1  # stop after the second epoch

    res = ns.run_on_stack(
        sim.movie, sim.labels, sim.pattern, progress=progress,
        config={"epochs": 50, "window_s": 1.0, "likelihood": "gaussian", "model": TINY_MODEL},
    )
    assert res.stopped
    assert res.metrics["epochs_run"] == 2
    assert np.isfinite(res.rates).all()
    stages = {r.stage for r in seen if isinstance(r, StageReport)}
    assert {"extract", "infer"} <= stages


def test_stop_during_extraction_raises(sim):
    with pytest.raises(RunStopped):
        ns.run_on_stack(sim.movie, sim.labels, sim.pattern, progress=lambda r: True,
                        config={"likelihood": "gaussian"})


def test_run_config_rejects_unknown_settings():
    with pytest.raises(ValueError, match="unknown run setting"):
        RunConfig.from_dict({"epocs": 3})
    cfg = RunConfig(epochs=4, model={"generator_size": 16})
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_bad_inputs_name_the_problem(sim):
    with pytest.raises(ValueError, match="shape"):
        ns.run_on_stack(sim.movie[0], sim.labels, sim.pattern)
    with pytest.raises(ValueError):
        ns.run_on_stack(sim.movie, sim.labels[:-1], sim.pattern)
    with pytest.raises(ValueError, match="no ROI"):
        ns.run_on_stack(sim.movie, np.zeros_like(sim.labels), sim.pattern)
    other = ns.ScanPattern.full_raster(sim.movie.shape[1], sim.movie.shape[0] + 1, 1e-3)
    with pytest.raises(ValueError, match="sweeps"):
        ns.run_on_stack(sim.movie, sim.labels, other)


def test_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, napari_sbtt as ns; ns.ScanPattern; ns.simulate; ns.extract_observations; "
        "import napari_sbtt.api, napari_sbtt.cli; "
        "bad = [m for m in ('torch', 'napari', 'qtpy') if m in sys.modules]; print(bad); "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


class _EchoModel:
    """A stand-in model: predicts each window's input (NaN -> 0) plus the bin's position in it."""

    def __init__(self, position: float = 0.0) -> None:
        self.position = position

    def predict(self, values, output="rates"):
        t = np.arange(values.shape[1], dtype=np.float64)[None, :, None]
        return np.nan_to_num(values) + self.position * t


def test_inference_shifts_keep_alignment_and_average_window_positions():
    from napari_sbtt.api import infer_observations

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(203, 3)).astype(np.float32)
    obs[rng.random(obs.shape) < 0.6] = np.nan
    for shifts in (1, 2, 4, 7):
        # a position-free model gives back its input whatever the shifts: no bin is misplaced
        out = infer_observations(_EchoModel(), obs, window=40, overlap=10, shifts=shifts)
        np.testing.assert_allclose(out, np.nan_to_num(obs), atol=1e-6)
    # with a window-position effect, shifting spreads each bin over several window positions
    one = infer_observations(_EchoModel(1.0), obs, window=40, overlap=10, shifts=1)
    four = infer_observations(_EchoModel(1.0), obs, window=40, overlap=10, shifts=4)
    pos1 = one - np.nan_to_num(obs)
    pos4 = four - np.nan_to_num(obs)
    assert np.ptp(pos4[50:150, 0]) < 0.5 * np.ptp(pos1[50:150, 0])
    with pytest.raises(ValueError, match="inference_shifts"):
        RunConfig(inference_shifts=0)


@pytest.fixture(scope="module")
def calcium_result(sim):
    return ns.run_on_stack(
        sim.movie, sim.labels, sim.pattern,
        config={"epochs": 3, "window_s": 1.0, "model": TINY_MODEL, "inference_shifts": 1},
    )


@pytest.mark.slow
def test_calcium_result_has_events_and_the_held_out_comparison(tmp_path, calcium_result):
    from napari_sbtt.heldout import VERDICTS

    m = calcium_result.metrics
    assert m["estimate"] in ("combined", "deconvolution", "events_combined")  # "auto", the default, chose one
    assert calcium_result.events.shape == calcium_result.rates.shape
    assert (calcium_result.events >= 0).all()
    ho = m["heldout"]
    assert ho["estimate"] == m["estimate"] and ho["verdict"] in VERDICTS
    assert ho["samples"]["n_samples"] > 0 and ho["gaps"]["n_samples"] > 0
    assert set(ho["gaps"]["r2"]) >= {"network", "deconvolution", "combined", "events_combined"}
    if ho["verdict"] in ("OASIS better", "no clear difference"):  # OASIS's estimate rides along, in the rates' units
        assert calcium_result.oasis_rates.shape == calcium_result.rates.shape
    else:
        assert calcium_result.oasis_rates is None
    est = m["spikes_estimate"]  # activity in estimated spikes/s, through the indicator's dF/F per spike
    assert est["available"] and est["indicator"] == "GCaMP6f" and len(est["dff_per_spike"]) == calcium_result.n_rois
    sp = calcium_result.spikes_per_s()
    assert np.array_equal(np.isnan(sp), np.isnan(calcium_result.rates))
    per = np.array(est["dff_per_spike"], dtype=float)
    np.testing.assert_allclose(sp, calcium_result.rates / per / calcium_result.grid.bin_width, rtol=1e-4)
    back = load_result(calcium_result.save(tmp_path / "r"))
    assert back.metrics["heldout"] == ho
    np.testing.assert_array_equal(back.events, calcium_result.events)


@pytest.mark.slow
def test_estimate_can_be_the_deconvolution(sim, calcium_result):
    from napari_sbtt.heldout import deconvolve_with_model

    res = ns.run_on_observations(
        ns.extract_observations(sim.movie, sim.labels, sim.pattern, dff=True),
        model=calcium_result.model,
        config={"estimate": "deconvolution", "compare_oasis": False, "inference_shifts": 1})
    events, fitted = deconvolve_with_model(calcium_result.model, res.observations.astype(np.float64))
    np.testing.assert_allclose(res.rates, events.astype(np.float32))
    np.testing.assert_allclose(res.signal, fitted.astype(np.float32), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(res.events, res.rates)
    assert res.metrics["estimate"] == "deconvolution" and res.metrics["heldout"] is None
    with pytest.raises(ValueError, match="estimate"):
        RunConfig(estimate="best")


@pytest.mark.slow
def test_estimate_can_be_the_network_and_the_events_combined(sim, calcium_result):
    from napari_sbtt.heldout import COMBINED_NETWORK_WEIGHT

    obs = ns.extract_observations(sim.movie, sim.labels, sim.pattern, dff=True)
    cfg = {"compare_oasis": False, "inference_shifts": 1}
    net = ns.run_on_observations(obs, model=calcium_result.model, config={**cfg, "estimate": "network"})
    both = ns.run_on_observations(obs, model=calcium_result.model, config={**cfg, "estimate": "combined"})
    w = COMBINED_NETWORK_WEIGHT
    np.testing.assert_allclose(both.rates, w * net.rates + (1 - w) * net.events, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(both.events, net.events)
    assert both.metrics["estimate"] == "combined" and both.metrics["heldout"] is None


def test_a_run_without_an_indicator_starts_from_the_recordings_decay(sim):
    pytest.importorskip("oasis")
    from napari_sbtt.core.kinetics import estimate_decay_time

    small = {"readin_size": 8, "encoder_size": 8, "generator_size": 8, "ic_size": 8, "factor_size": 3}
    res = ns.run_on_stack(sim.movie, sim.labels, sim.pattern,
                          config={"epochs": 1, "inference_shifts": 1, "model": small})
    obs = ns.extract_observations(sim.movie, sim.labels, sim.pattern, dff=True)
    est = estimate_decay_time(obs.values, obs.times)
    assert est is not None and res.metrics["decay_estimate_s"] == pytest.approx(est)
    assert res.model.config.calcium_decay_seconds == pytest.approx(est)
    named = ns.run_on_stack(sim.movie, sim.labels, sim.pattern,
                            config={"indicator": "GCaMP6s", "epochs": 1, "inference_shifts": 1, "model": small})
    # a named preset is checked against the same estimate and kept where the estimate allows it
    # (core.kinetics.refine_decay; GCaMP6s's 1.25 s lies within estimate / 1.5 .. estimate / 0.19)
    assert named.metrics["decay_estimate_s"] == pytest.approx(est)
    assert named.model.config.calcium_decay_seconds == 1.25
    from napari_sbtt.core.kinetics import ESTIMATE_RATIO_RANGE, refine_decay

    fast = ns.run_on_stack(sim.movie, sim.labels, sim.pattern,
                           config={"indicator": "GCaMP8f", "epochs": 1, "inference_shifts": 1, "model": small})
    moved = refine_decay(0.15, est)
    assert moved == pytest.approx(est / ESTIMATE_RATIO_RANGE[1])  # this recording rules 0.15 s out
    assert fast.model.config.calcium_decay_seconds == pytest.approx(moved)


def test_the_heldout_check_lengthens_only_an_unnamed_runs_decay(sim, monkeypatch):
    pytest.importorskip("oasis")
    from napari_sbtt.config import RunConfig
    from napari_sbtt.core import kinetics
    from napari_sbtt.pipeline import recording_decay

    obs = ns.extract_observations(sim.movie, sim.labels, sim.pattern, dff=True)
    est = kinetics.estimate_decay_time(obs.values, obs.times, bin_width=obs.grid.bin_width)
    assert est is not None
    assert recording_decay(obs, RunConfig(decay_heldout_check=False)) == pytest.approx(est)
    assert RunConfig().decay_heldout_check  # on by default
    seen = {}

    def longer_best(values, times, start_s, **kw):  # held-out samples that prefer 4x the estimate
        seen.update(start=start_s, **kw)
        return {start_s: 0.5, 4 * start_s: 0.6}

    monkeypatch.setattr(kinetics, "heldout_decay_scores", longer_best)
    checked = recording_decay(obs, RunConfig(decay_heldout_check=True))
    assert checked == pytest.approx(2 * est)  # sqrt(est * 4 est)
    assert seen["start"] == pytest.approx(est) and seen["rise_s"] == pytest.approx(0.016)
    ruled = recording_decay(obs, RunConfig(decay_heldout_check=True, model={"calcium_rise_seconds": 0.03}))
    assert ruled == pytest.approx(2 * est) and seen["rise_s"] == pytest.approx(0.03)
    # a named indicator's preset is refined by the plain estimate, as before
    assert recording_decay(obs, RunConfig(indicator="GCaMP6s", decay_heldout_check=True)) == pytest.approx(est)
    assert RunConfig.from_dict(RunConfig(decay_heldout_check=True).to_dict()).decay_heldout_check
