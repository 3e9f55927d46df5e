"""core.units: the dF/F jump one spike makes, and activity in estimated spikes/s."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sbtt.core.indicators import get_indicator
from napari_sbtt.core.units import (
    SPIKE_RATE_UNITS,
    dff_jump_per_spike,
    spikes_estimate,
    spikes_per_second,
)


@pytest.mark.parametrize("name", ["GCaMP6f", "GCaMP8m"])
@pytest.mark.parametrize("dt", [0.004, 0.03])
def test_a_model_kernel_that_is_the_transient_over_c_gives_c_per_spike(name: str, dt: float) -> None:
    ind = get_indicator(name)
    shape = ind.kernel(dt)
    # the same transient per unit jump as per 1/c spikes: one spike is a jump of c
    kernels = np.stack([shape / 0.5, shape / 3.0, np.zeros_like(shape)])
    per = dff_jump_per_spike(name, kernels, dt)
    np.testing.assert_allclose(per[:2], [0.5, 3.0], rtol=1e-9)
    assert np.isnan(per[2])  # a kernel with no area converts nothing
    # a unit-peak kernel of the indicator's shape: one spike is a jump of the transient's peak
    np.testing.assert_allclose(dff_jump_per_spike(ind, shape / shape.max(), dt), shape.max(), rtol=1e-9)
    if dt < ind.tau_rise:  # fine bins: that peak is the preset's peak dF/F per spike
        assert shape.max() == pytest.approx(ind.amplitude, rel=0.1)

def test_spikes_per_second_divides_by_the_jump_and_the_bin_and_keeps_nan() -> None:
    rates = np.array([[0.2, 0.0], [np.nan, 0.4], [0.1, 0.1]], dtype=np.float32)
    out = spikes_per_second(rates, np.array([0.2, 0.1]), 0.01)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[100.0, 0.0], [np.nan, 400.0], [50.0, 100.0]], rtol=1e-6)
    assert spikes_per_second(rates.astype(np.float64), 0.2, 0.01).dtype == np.float64


def test_the_estimate_needs_dff_and_records_what_it_used() -> None:
    k = np.tile(get_indicator("GCaMP6f").kernel(0.02) / 0.13, (2, 1))
    est = spikes_estimate(k, "GCaMP6f", 0.02, "dF/F")
    assert est["available"] and est["indicator"] == "GCaMP6f" and est["units"] == SPIKE_RATE_UNITS
    assert est["amplitude"] == get_indicator("GCaMP6f").amplitude
    np.testing.assert_allclose(est["dff_per_spike"], [0.13, 0.13])
    assert "estimate" in est["note"]
    assert est["indicator_named"] and "assumed" not in est["note"]
    unnamed = spikes_estimate(k, "GCaMP6f", 0.02, "dF/F", indicator_named=False)
    assert not unnamed["indicator_named"] and "no indicator was named" in unnamed["note"]
    raw = spikes_estimate(k, "GCaMP6f", 0.02, "raw")
    assert not raw["available"] and raw["dff_per_spike"] is None and "dF/F" in raw["reason"]
    with pytest.raises(ValueError, match="kernel"):
        dff_jump_per_spike("GCaMP6f", np.zeros((2, 3, 4)), 0.02)
