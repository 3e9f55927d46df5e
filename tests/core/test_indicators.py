"""Calcium indicators: kernels, spikes -> dF/F, AR coefficients, presets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from napari_sbtt.core.indicators import INDICATORS, Indicator, calcium_from_spikes, get_indicator

TWO_DECAYS = Indicator("two", tau_rise=0.02, tau_decay=0.2, amplitude=0.5, tau_decay2=1.5, decay2_fraction=0.3)


def test_presets_exist_and_are_ordered_by_speed() -> None:
    assert set(INDICATORS) == {"GCaMP6f", "GCaMP6s", "GCaMP7f", "GCaMP8f", "GCaMP8m", "GCaMP8s"}
    d = {k: v.tau_decay for k, v in INDICATORS.items()}
    assert d["GCaMP8f"] < d["GCaMP8m"] < d["GCaMP8s"]
    assert d["GCaMP6f"] < d["GCaMP6s"]
    assert INDICATORS["GCaMP8s"].peak_time < INDICATORS["GCaMP6f"].peak_time
    # jGCaMP7f: slower rise than the jGCaMP8s, faster decay than GCaMP6f and 6s
    assert INDICATORS["GCaMP7f"].peak_time > INDICATORS["GCaMP8s"].peak_time
    assert INDICATORS["GCaMP7f"].half_decay_time < INDICATORS["GCaMP6f"].half_decay_time
    assert get_indicator("jGCaMP7f") is INDICATORS["GCaMP7f"]
    # the measured presets (benchmarks/measure_indicators.py)
    assert INDICATORS["GCaMP6f"].tau_decay == pytest.approx(0.58)
    assert INDICATORS["GCaMP8s"].amplitude == pytest.approx(0.72)


@pytest.mark.parametrize("ind", [*INDICATORS.values(), TWO_DECAYS], ids=lambda i: i.name)
def test_kernel_peak_and_half_decay_times(ind: Indicator) -> None:
    dt = 1e-4
    k = ind.kernel(dt)
    t = np.arange(k.size) * dt
    i_peak = int(np.argmax(k))
    assert t[i_peak] == pytest.approx(ind.peak_time, abs=2 * dt)
    assert k.max() == pytest.approx(ind.amplitude, rel=1e-3)
    after = np.flatnonzero(k[i_peak:] < 0.5 * ind.amplitude)[0] + i_peak
    assert t[after] == pytest.approx(ind.half_decay_time, abs=2 * dt)
    assert k[-1] < 1e-3 * ind.amplitude  # default duration reaches the tail


def test_single_decay_peak_time_is_analytic() -> None:
    ind = Indicator("x", tau_rise=0.05, tau_decay=0.5, amplitude=1.0)
    tr, td = 0.05, 0.5
    assert ind.peak_time == pytest.approx(math.log(td / tr) * tr * td / (td - tr), rel=1e-12)
    # continuous response at the peak is the amplitude, zero before the spike
    assert float(ind.response(ind.peak_time)) == pytest.approx(1.0, rel=1e-12)
    assert float(ind.response(-0.01)) == 0.0


@pytest.mark.parametrize("dt", [1 / 7.5, 1 / 30, 1 / 122])
def test_bin_averaged_kernel_conserves_the_integral(dt: float) -> None:
    # bins tile the time after the spike exactly, so sum(K) * dt = integral of h
    for ind in (INDICATORS["GCaMP6f"], INDICATORS["GCaMP8f"], TWO_DECAYS):
        k = ind.kernel(dt, duration=60.0)
        integral = sum(c * tau for c, tau in ind._terms())
        assert k.sum() * dt == pytest.approx(integral, rel=1e-9)


@pytest.mark.parametrize("ind", [INDICATORS["GCaMP6f"], INDICATORS["GCaMP8m"], TWO_DECAYS], ids=lambda i: i.name)
def test_calcium_from_spikes_equals_direct_convolution(ind: Indicator) -> None:
    rng = np.random.default_rng(0)
    dt = 1 / 60
    spikes = rng.poisson(0.2, size=(700, 4)).astype(float)
    out = calcium_from_spikes(spikes, dt, ind)
    k = ind.kernel(dt, duration=spikes.shape[0] * dt)
    direct = np.stack([np.convolve(spikes[:, n], k)[: spikes.shape[0]] for n in range(4)], axis=1)
    assert out.shape == spikes.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, direct, rtol=1e-10, atol=1e-12)
    # 1-D input, preset by name
    np.testing.assert_allclose(calcium_from_spikes(spikes[:, 0], dt, ind), direct[:, 0], atol=1e-12)


def test_saturation_is_applied_after_summing() -> None:
    ind = INDICATORS["GCaMP8s"].with_(saturation=2.0)
    s = np.zeros(200)
    s[10] = 5
    lin = calcium_from_spikes(s, 0.01, INDICATORS["GCaMP8s"])
    sat = calcium_from_spikes(s, 0.01, ind)
    np.testing.assert_allclose(sat, lin / (1 + lin / 2.0))
    assert sat.max() < 2.0


def test_ar_coefficients() -> None:
    ind = INDICATORS["GCaMP6f"]
    dt = 1 / 60
    (g1,) = ind.ar_coefficients(dt, 1)
    assert g1 == pytest.approx(math.exp(-dt / ind.tau_decay))
    g = ind.ar_coefficients(dt, 2)
    d, r = math.exp(-dt / ind.tau_decay), math.exp(-dt / ind.tau_rise)
    np.testing.assert_allclose(g, [d + r, -d * r])
    n = 300
    imp = np.zeros(n)
    imp[0] = 1.0
    for order in (1, 2):
        gg = ind.ar_coefficients(dt, order)
        resp = ind.ar_gain(dt, order) * lfilter([1.0], np.r_[1.0, -gg], imp)
        assert resp.max() == pytest.approx(ind.amplitude, rel=1e-9)
    # the AR(2) impulse response is the continuous transient one bin after the spike ...
    resp2 = lfilter([1.0], np.r_[1.0, -g], imp)
    cont = ind.response((np.arange(n) + 1) * dt)
    np.testing.assert_allclose(resp2 / resp2.max(), cont / cont.max(), rtol=1e-9, atol=1e-12)
    # ... and close to the bin-averaged kernel
    k = ind.kernel(dt, duration=n * dt)
    assert np.corrcoef(resp2, k)[0, 1] > 0.97
    with pytest.raises(ValueError, match="order"):
        ind.ar_coefficients(dt, 3)


def test_get_indicator_and_validation() -> None:
    assert get_indicator("jgcamp8s") is INDICATORS["GCaMP8s"]
    assert get_indicator("GCAMP6F") is INDICATORS["GCaMP6f"]
    assert get_indicator(TWO_DECAYS.to_dict()) == TWO_DECAYS
    with pytest.raises(ValueError, match="unknown indicator"):
        get_indicator("GCaMP99")
    with pytest.raises(ValueError, match="tau_rise"):
        Indicator("bad", tau_rise=0.5, tau_decay=0.2, amplitude=0.1)
    with pytest.raises(ValueError, match="amplitude"):
        Indicator("bad", tau_rise=0.01, tau_decay=0.2, amplitude=0.0)
    with pytest.raises(ValueError, match="tau_decay2"):
        Indicator("bad", tau_rise=0.01, tau_decay=0.2, amplitude=0.1, decay2_fraction=0.2)
    with pytest.raises(ValueError, match="finite"):
        calcium_from_spikes(np.array([0.0, np.nan]), 0.01, "GCaMP6f")
    with pytest.raises(ValueError, match="dt"):
        INDICATORS["GCaMP6f"].kernel(0.0)


def test_gcamp7f_preset_matches_the_quoted_kinetics() -> None:
    # Zhang et al. 2023 in vivo (as quoted): half-rise ~25 ms, half-decay 0.18-0.27 s after the peak
    ind = INDICATORS["GCaMP7f"]
    from scipy.optimize import brentq

    half_rise = brentq(lambda t: float(ind.response(t)) - 0.5 * ind.amplitude, 1e-9, ind.peak_time)
    assert 0.015 < half_rise < 0.03
    assert 0.18 <= ind.half_decay_time - ind.peak_time <= 0.27
