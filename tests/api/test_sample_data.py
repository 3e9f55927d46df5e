"""The shipped sample recording is exactly what the simulator makes today."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_sbtt.core.synth import load_simulation, simulate

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "tiny"


def test_shipped_sample_equals_a_fresh_simulation():
    shipped = load_simulation(SAMPLE)
    fresh = simulate("tiny", seed=0)
    # floats to a tight tolerance (libm and SIMD paths may differ in the last bit across machines)
    np.testing.assert_allclose(shipped.movie, fresh.movie, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(shipped.labels, fresh.labels)
    assert shipped.pattern == fresh.pattern
    np.testing.assert_allclose(shipped.truth.rates, fresh.truth.rates, rtol=1e-6)
    np.testing.assert_array_equal(shipped.truth.spikes, fresh.truth.spikes)
