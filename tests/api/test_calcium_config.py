"""Run-level defaults and calcium wiring of RunConfig -> SBTTConfig (config.resolve)."""

from __future__ import annotations

import math

from napari_sbtt.config import DEFAULT_INDICATOR, RUN_MODEL_DEFAULTS, RunConfig, resolve
from napari_sbtt.core.indicators import get_indicator
from napari_sbtt.model import SBTTConfig


def test_run_defaults_apply_to_fresh_fits_and_user_overrides_win() -> None:
    cfg = resolve(RunConfig(), bin_width=0.017)
    for k, v in RUN_MODEL_DEFAULTS.items():
        assert getattr(cfg, k) == v
    assert cfg.max_seconds == RunConfig().max_seconds
    assert cfg.calcium_initial_state
    user = resolve(RunConfig(model={"batch_size": 32, "controller_size": 0}), bin_width=0.017)
    assert user.batch_size == 32 and user.controller_size == 0


def test_calcium_decay_starts_from_the_indicator() -> None:
    cfg = resolve(RunConfig(indicator="GCaMP8m"), bin_width=0.01)
    assert math.isclose(cfg.calcium_decay_bins, get_indicator("GCaMP8m").tau_decay / 0.01)
    # no indicator: the default indicator's decay, not SBTTConfig's 10 bins
    cfg = resolve(RunConfig(), bin_width=0.02)
    assert math.isclose(cfg.calcium_decay_bins, get_indicator(DEFAULT_INDICATOR).tau_decay / 0.02)
    # an explicit decay in bins is kept
    cfg = resolve(RunConfig(model={"calcium_decay": 7.0}), bin_width=0.02)
    assert math.isclose(cfg.calcium_decay_bins, 7.0)


def test_adapting_keeps_the_loaded_models_architecture() -> None:
    base = SBTTConfig(batch_size=64, controller_size=0)
    cfg = resolve(RunConfig(adapt=True), bin_width=0.017, base=base)
    assert cfg.controller_size == 0 and cfg.batch_size == 64


def test_calcium_kernel_fields_in_seconds_and_their_errors() -> None:
    import pytest

    cfg = SBTTConfig(calcium_kernel="double_exponential", calcium_rise_seconds=0.016,
                     calcium_delay_seconds=0.02, bin_width=0.01)
    assert math.isclose(cfg.calcium_rise_bins, 1.6) and math.isclose(cfg.calcium_delay_bins, 2.0)
    assert SBTTConfig().calcium_delay_bins == 0.0 and SBTTConfig().calcium_kernel == "double_exponential"
    with pytest.raises(ValueError, match="calcium_kernel"):
        SBTTConfig(calcium_kernel="gamma")
    with pytest.raises(ValueError, match="calcium_delay_seconds"):
        SBTTConfig(calcium_delay_seconds=-0.01, bin_width=0.01)
    with pytest.raises(ValueError, match="calcium_delay_seconds needs bin_width"):
        SBTTConfig(calcium_delay_seconds=0.01)
    with pytest.raises(ValueError, match="calcium_delay"):
        SBTTConfig(calcium_delay=-1.0)
    # the run level starts the rise from the indicator too
    run = resolve(RunConfig(indicator="GCaMP6f"), bin_width=0.008)
    assert math.isclose(run.calcium_rise_bins, get_indicator("GCaMP6f").tau_rise / 0.008)


def test_checkpoints_from_before_the_kernel_fields_keep_the_ar_kernel() -> None:
    from napari_sbtt.model.header import upgrade_checkpoint_info

    old = SBTTConfig().to_dict()
    for key in ("calcium_kernel", "calcium_delay", "calcium_rise_seconds", "calcium_delay_seconds"):
        old.pop(key)
    info = upgrade_checkpoint_info({"format_version": 1, "config": old})
    cfg = SBTTConfig.from_dict(info["config"])
    assert cfg.calcium_kernel == "ar" and cfg.calcium_delay_bins == 0.0
    # fresh runs use the indicator-shaped kernel
    assert resolve(RunConfig(), bin_width=0.017).calcium_kernel == "double_exponential"
