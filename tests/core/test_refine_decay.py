"""A named indicator's decay checked against the recording's estimate (core.kinetics.refine_decay)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=200, deadline=None)
@given(preset=st.floats(0.05, 5.0), estimate=st.floats(0.05, 5.0))
def test_refine_decay_keeps_a_preset_the_estimate_allows_and_moves_one_it_rules_out(
        preset: float, estimate: float) -> None:
    from napari_sbtt.core.kinetics import ESTIMATE_RATIO_RANGE, refine_decay

    low, high = ESTIMATE_RATIO_RANGE
    refined = refine_decay(preset, estimate)
    lo_true, hi_true = estimate / high, estimate / low  # where the true decay may be
    assert lo_true * (1 - 1e-12) <= refined <= hi_true * (1 + 1e-12)  # always inside
    if lo_true <= preset <= hi_true:
        assert refined == preset  # kept as it is
    else:  # the smallest move: to the nearer end
        assert refined == pytest.approx(lo_true if preset < lo_true else hi_true)
    assert refine_decay(preset, None) == preset
    assert refine_decay(preset, float("nan")) == preset
