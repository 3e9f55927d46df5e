"""deconvolve_traces: one calcium model across separately recorded traces."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sbtt.core.indicators import calcium_from_spikes, get_indicator
from napari_sbtt.core.metrics import pearson_r
from napari_sbtt.deconvolve import deconvolve_traces

FP = 1 / 30.0
TINY = {"readin_size": 8, "encoder_size": 8, "generator_size": 8, "factor_size": 2, "ic_size": 8,
        "controller_size": 8, "batch_size": 16, "num_threads": 1}


def _neurons(lengths=(1800, 1500, 1200), seed=0):
    rng = np.random.default_rng(seed)
    ind = get_indicator("GCaMP6s")
    spikes, dff = [], []
    for n in lengths:
        s = rng.poisson(0.05, n).astype(float)
        c = calcium_from_spikes(s[:, None], FP, ind)[:, 0]
        spikes.append(s)
        dff.append(c + 0.02 * rng.standard_normal(n))
    return spikes, dff


@pytest.fixture(scope="module")
def done():
    spikes, dff = _neurons()
    dff[1][1::2] = np.nan  # every other frame of the second neuron was not acquired
    res = deconvolve_traces(dff, frame_period=FP, indicator="GCaMP6s",
                            config={"epochs": 3, "model": TINY, "seed": 0})
    return spikes, dff, res


@pytest.mark.slow
def test_rates_on_each_traces_own_grid_track_the_spikes(done):
    spikes, dff, res = done
    assert [r.shape for r in res.rates] == [d.shape for d in dff]
    assert all(np.isfinite(r).all() and (r >= 0).all() for r in res.rates)
    assert res.metrics["estimate"] == "deconvolution"
    for s, r in zip(spikes, res.rates, strict=True):
        assert pearson_r(s, r, sigma_s=0.05, dt_s=FP) > 0.6
    assert res.metrics["heldout"]["samples"]["n_samples"] > 0


@pytest.mark.slow
def test_spikes_per_second_estimate_is_in_the_right_range(done):
    spikes, _, res = done
    true_rate = np.mean([s.sum() / (s.size * FP) for s in spikes])
    est = np.mean([x.mean() for x in res.spikes_per_s])
    assert 0.3 * true_rate < est < 3.0 * true_rate  # an estimate through the preset's dF/F per spike


@pytest.mark.slow
def test_irregular_frame_times_and_a_2d_array():
    spikes, dff = _neurons(lengths=(900, 900), seed=1)
    t = np.arange(900) * FP + np.random.default_rng(2).normal(0, 1e-3, 900)
    res = deconvolve_traces(np.stack(dff, axis=1), times=t, config={"epochs": 2, "model": TINY})
    assert len(res.rates) == 2 and res.spikes_per_s is None  # no indicator named: no spikes/s
    np.testing.assert_allclose(res.times[0], t)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="exactly one of frame_period"):
        deconvolve_traces([np.zeros(100)])
    with pytest.raises(ValueError, match="1-D"):
        deconvolve_traces([np.zeros((10, 2))], frame_period=0.1)
    with pytest.raises(ValueError, match="fewer than 4 samples"):
        deconvolve_traces([np.full(50, np.nan)], frame_period=0.1)
    with pytest.raises(ValueError, match="calcium"):
        deconvolve_traces([np.zeros(50)], frame_period=0.1, config={"likelihood": "poisson"})


def test_a_trace_with_a_gap_in_its_frame_times_and_no_indicator():
    pytest.importorskip("oasis")
    spikes, dff = _neurons(lengths=(900, 700), seed=3)
    t0 = np.arange(900) * FP
    keep = (t0 < 10) | (t0 > 14)  # 4 s without frames: the trace's grid is longer than its frames
    res = deconvolve_traces([dff[0][keep], dff[1]], times=[t0[keep], np.arange(700) * FP],
                            config={"epochs": 1, "model": TINY, "inference_shifts": 1})
    assert res.metrics["decay_estimate_s"] is not None  # started from the traces' own decay
    assert [r.shape for r in res.rates] == [(int(keep.sum()),), (700,)]


def test_the_kernel_keeps_its_start_kinetics_unless_asked_to_learn_them():
    """The run path keeps the kernel's decay and rise where they start (the named preset checked
    against the traces' estimate); kinetics_lr_scale = 1 in the model overrides learns them."""
    from napari_sbtt.config import RunConfig, start_decay_s
    from napari_sbtt.core.kinetics import refine_decay

    _, dff = _neurons(lengths=(900, 700), seed=4)
    base = {"epochs": 2, "inference_shifts": 1, "seed": 0}
    kept = deconvolve_traces(dff, frame_period=FP, indicator="GCaMP6s", config={**base, "model": TINY})
    est = kept.metrics["decay_estimate_s"]
    start = refine_decay(get_indicator("GCaMP6s").tau_decay, est)
    assert start == pytest.approx(start_decay_s(RunConfig(indicator="GCaMP6s"), est))
    assert kept.metrics["tau_decay_s"] == pytest.approx(start, rel=1e-5)
    assert kept.metrics["tau_rise_s"] == pytest.approx(get_indicator("GCaMP6s").tau_rise, rel=1e-5)
    learned = deconvolve_traces(dff, frame_period=FP, indicator="GCaMP6s",
                                config={**base, "model": {**TINY, "kinetics_lr_scale": 1.0}})
    assert learned.metrics["tau_decay_s"] != pytest.approx(start, rel=1e-4)


@pytest.mark.slow
def test_the_combined_estimate_mixes_the_network_and_the_events_of_each_trace():
    from napari_sbtt.heldout import COMBINED_NETWORK_WEIGHT, EVENTS_COMBINED_NETWORK_WEIGHT

    _, dff = _neurons(lengths=(600, 500), seed=3)
    cfg = {"epochs": 2, "model": TINY, "seed": 0, "compare_oasis": False, "inference_shifts": 1}
    runs = {e: deconvolve_traces(dff, frame_period=FP, indicator="GCaMP6s", config=cfg, estimate=e)
            for e in ("network", "deconvolution", "combined", "events_combined")}
    for name, w in (("combined", COMBINED_NETWORK_WEIGHT), ("events_combined", EVENTS_COMBINED_NETWORK_WEIGHT)):
        assert runs[name].metrics["estimate"] == name
        for net, ev, both in zip(runs["network"].rates, runs["deconvolution"].rates, runs[name].rates,
                                 strict=True):
            np.testing.assert_allclose(both, w * net + (1 - w) * ev, rtol=1e-4, atol=1e-6)


def test_the_heldout_check_starts_unnamed_traces_from_the_lengthened_decay():
    pytest.importorskip("oasis")
    from napari_sbtt.config import RunConfig
    from napari_sbtt.pipeline import checked_decay

    _, dff = _neurons(lengths=(900, 700), seed=5)
    base = {"epochs": 1, "inference_shifts": 1, "model": TINY}
    plain = deconvolve_traces(dff, frame_period=FP, config={**base, "decay_heldout_check": False})
    checked = deconvolve_traces(dff, frame_period=FP, config=base)  # on by default
    est, start = plain.metrics["decay_estimate_s"], checked.metrics["decay_estimate_s"]
    # the same start without a fit (napari_sbtt.traces_decay_estimate), both ways
    from napari_sbtt import traces_decay_estimate

    assert traces_decay_estimate(dff, frame_period=FP) == pytest.approx(start)
    assert traces_decay_estimate(dff, frame_period=FP, config={"decay_heldout_check": False}) == pytest.approx(est)
    assert traces_decay_estimate(dff, frame_period=FP, config={"decay_from_data": False}) is None
    assert est is not None and start > est  # these traces' held-out samples prefer a longer decay
    assert checked.model.config.calcium_decay_seconds == pytest.approx(start)
    # the same rule as the run path's (pipeline.checked_decay); a named indicator leaves it out
    assert checked_decay(np.zeros((4, 1)), np.arange(4.0), 0.3, RunConfig(indicator="GCaMP6s",
                                                                             decay_heldout_check=True)) == 0.3
    assert checked_decay(np.zeros((4, 1)), np.arange(4.0), None, RunConfig(decay_heldout_check=True)) is None
    # an estimate below LENGTHEN_FROM_S (a fast indicator's) is kept without running the check
    assert checked_decay(np.zeros((4, 1)), np.arange(4.0), 0.1, RunConfig(decay_heldout_check=True)) == 0.1


def test_traces_are_standardised_and_stacked_as_they_are_fitted() -> None:
    from napari_sbtt.deconvolve import stack_traces, standardise_trace

    rng = np.random.default_rng(0)
    y = 5.0 + 2.0 * rng.standard_normal(400)
    y[::3] = np.nan  # frames not kept
    z, offset, scale = standardise_trace(y)
    assert np.isnan(z[::3]).all() and np.nanmedian(z) == pytest.approx(0.0, abs=1e-12)
    # white noise: the frame differences' robust sd over sqrt 2 is the noise sd, so z has sd ~ 1
    assert np.nanstd(z) == pytest.approx(1.0, abs=0.15)
    assert np.allclose(z * scale + offset, y, equal_nan=True)
    stacked, times = stack_traces([np.ones(5), np.arange(3.0)], 0.1)
    assert stacked.shape == (5, 2) and np.isnan(stacked[3:, 1]).all() and stacked[2, 1] == 2.0
    assert np.allclose(times, np.arange(5) * 0.1)


@pytest.mark.slow
@pytest.mark.parametrize("verdict", ["no clear difference", "SBTT better"])
def test_oasis_rides_along_where_sbtt_did_not_win(monkeypatch, verdict):
    import napari_sbtt.heldout as heldout
    from napari_sbtt.core.baselines import oasis_available, oasis_rates

    if not oasis_available():
        pytest.skip("oasis-deconv is not installed")
    monkeypatch.setattr(heldout, "verdict_against_oasis", lambda *a: verdict)
    _, dff = _neurons(lengths=(900, 600))
    dff[1][::3] = np.nan
    res = deconvolve_traces(dff, frame_period=FP, config={"epochs": 1, "model": TINY, "seed": 0})
    assert res.metrics["heldout"]["verdict"] == verdict
    if verdict == "SBTT better":
        assert res.oasis_rates is None
        return
    assert [o.shape for o in res.oasis_rates] == [r.shape for r in res.rates]
    for y, o in zip(dff, res.oasis_rates, strict=True):  # OASIS on the trace's own frames, per frame
        t = np.arange(y.size) * FP
        np.testing.assert_allclose(o, oasis_rates(y[:, None], t)[:, 0] * FP)


def test_each_trace_is_deconvolved_with_its_own_decay():
    """trace_decays=True scales the shared kernel's decay per trace by the trace's own AR(1) decay
    over the traces' median: a fast indicator's traces get shorter decays than a slow one's and
    their events change; by default every trace is deconvolved with one kernel."""
    pytest.importorskip("oasis")
    rng = np.random.default_rng(7)
    dff = []
    for name in ("GCaMP8m", "GCaMP6s", "GCaMP6s", "GCaMP6s"):
        s = rng.poisson(0.05, 1500).astype(float)
        dff.append(calcium_from_spikes(s[:, None], FP, get_indicator(name))[:, 0] + 0.02 * rng.standard_normal(1500))
    cfg = {"epochs": 1, "model": TINY, "seed": 0, "compare_oasis": False, "inference_shifts": 1}
    own = deconvolve_traces(dff, frame_period=FP, indicator="GCaMP6s", config=cfg, trace_decays=True)
    one = deconvolve_traces(dff, frame_period=FP, indicator="GCaMP6s", config=cfg)
    fast, *slow = own.metrics["trace_decay_s"]
    assert fast < 0.75 * min(slow)
    assert len(set(one.metrics["trace_decay_s"])) == 1
    assert one.metrics["trace_decay_s"][0] == pytest.approx(own.metrics["tau_decay_s"])
    assert not np.allclose(own.rates[0], one.rates[0])
    # spikes/s under each trace's own kernel: a shorter kernel's jump holds fewer spikes
    ratio = [np.nansum(s) / np.nansum(r) for s, r in zip(own.spikes_per_s, own.rates, strict=True)]
    ratio_one = [np.nansum(s) / np.nansum(r) for s, r in zip(one.spikes_per_s, one.rates, strict=True)]
    assert ratio[0] < 0.8 * ratio_one[0]
