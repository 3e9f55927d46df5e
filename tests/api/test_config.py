"""The run configuration: settings metadata, validation generated from it, and resolve()."""

from __future__ import annotations

import dataclasses
import math

import pytest

from napari_sbtt.config import (
    RUN_MODEL_DEFAULTS,
    SIZES,
    RunConfig,
    SettingError,
    batch_size_for,
    learns_kinetics,
    resolve,
    settings,
    window_seconds,
)
from napari_sbtt.model.config import SBTTConfig


def test_every_field_carries_its_setting_and_the_defaults_validate() -> None:
    names = [f.name for f in dataclasses.fields(RunConfig)]
    table = list(settings())
    assert [n for n, _, _ in table] == names
    for name, s, default in table:
        assert s.help and s.kind in ("int", "number", "bool", "choice", "object"), name
        s.validate(name, default)
        if s.kind in ("int", "number"):
            assert s.low is not None and s.high is not None, name


def test_size_presets_change_only_layer_sizes() -> None:
    layer_fields = {"readin_size", "encoder_size", "generator_size", "factor_size", "ic_size"}
    for size, sizes in SIZES.items():
        assert set(sizes) <= layer_fields
        cfg = resolve(RunConfig(size=size), bin_width=0.02)
        assert cfg.batch_size == RUN_MODEL_DEFAULTS["batch_size"]  # "small" used to set 16
        assert all(getattr(cfg, k) == v for k, v in sizes.items())
    assert resolve(RunConfig(size="medium"), bin_width=0.02).encoder_size == SBTTConfig().encoder_size
    # adapting keeps the checkpoint's architecture whatever the size says
    base = SBTTConfig(encoder_size=8)
    assert resolve(RunConfig(size="large"), bin_width=0.02, base=base).encoder_size == 8


def test_onset_delay_in_seconds_reaches_the_calcium_kernel_only() -> None:
    cfg = resolve(RunConfig(onset_delay_s=0.02), bin_width=0.01)
    assert cfg.calcium_delay_seconds == 0.02 and math.isclose(cfg.calcium_delay_bins, 2.0)
    assert resolve(RunConfig(), bin_width=0.01).calcium_delay_seconds is None
    gauss = resolve(RunConfig(likelihood="gaussian"), bin_width=0.01)
    assert gauss.calcium_delay_seconds is None  # not a calcium model: nothing to delay
    # an explicit model setting wins
    own = resolve(RunConfig(onset_delay_s=0.02, model={"calcium_delay_seconds": 0.03}), bin_width=0.01)
    assert own.calcium_delay_seconds == 0.03
    with pytest.raises(SettingError, match="'onset_delay_s' must be a number from 0 to 1"):
        RunConfig(onset_delay_s=5.0)


def test_run_fields_that_are_model_settings_win_over_model() -> None:
    cfg = resolve(RunConfig(epochs=7, threads=3, max_seconds=None, model={"max_epochs": 2, "num_threads": 1}),
                  bin_width=0.01)
    assert cfg.max_epochs == 7 and cfg.num_threads == 3 and cfg.max_seconds is None
    assert resolve(RunConfig(), bin_width=0.01).num_threads == 1
    assert resolve(RunConfig(), bin_width=0.01, base=SBTTConfig(num_threads=0)).num_threads == 0


def test_setting_errors_in_python_and_in_flag_words() -> None:
    with pytest.raises(SettingError) as err:
        RunConfig(factor=0)
    assert str(err.value) == "run setting 'factor' must be a whole number from 1 to 1024, got 0"
    assert err.value.message_for("--factor") == "--factor must be a whole number from 1 to 1024, got 0"
    with pytest.raises(SettingError) as err:
        RunConfig(onset_delay_s=-0.005)
    assert err.value.message_for("--onset-delay-ms") == "--onset-delay-ms must be a number from 0 to 1000 ms, got -5"
    with pytest.raises(SettingError, match="'size' must be one of"):
        RunConfig(size="huge")


def test_window_seconds_is_one_second_unless_the_kinetics_learn() -> None:
    assert window_seconds(RunConfig(window_s=2.5), 0.01) == 2.5
    # the kernel kept where it starts (the default): 1 s whatever the indicator, 16 bins at least
    assert window_seconds(RunConfig(indicator="GCaMP6s"), 0.01) == window_seconds(RunConfig(), 0.01) == 1.0
    assert window_seconds(RunConfig(indicator="GCaMP6s"), 0.5) == 8.0
    # a fit that learns the decay gets two decays to see one in
    learning = RunConfig(indicator="GCaMP6s", model={"kinetics_lr_scale": 1.0})
    assert learns_kinetics(learning) and not learns_kinetics(RunConfig())
    assert window_seconds(learning, 0.01) == pytest.approx(2.5)
    assert window_seconds(RunConfig(likelihood="poisson", model={"kinetics_lr_scale": 1.0}), 0.01) == 1.0


def test_batch_size_follows_the_number_of_windows() -> None:
    assert [batch_size_for(n) for n in (1, 60, 64, 200, 512, 10_000)] == [8, 8, 8, 25, 64, 64]
    cfg = RunConfig()
    assert resolve(cfg, bin_width=0.02, n_windows=60).batch_size == 8
    assert resolve(cfg, bin_width=0.02, n_windows=1800).batch_size == 64
    assert resolve(cfg, bin_width=0.02).batch_size == RUN_MODEL_DEFAULTS["batch_size"]
    own = RunConfig(model={"batch_size": 16})
    assert resolve(own, bin_width=0.02, n_windows=1800).batch_size == 16  # the user's wins
    adapted = resolve(cfg, bin_width=0.02, base=SBTTConfig(batch_size=32), n_windows=1800)
    assert adapted.batch_size == 32  # adapting keeps the model's own


def test_the_recordings_decay_starts_an_unnamed_fit_and_refines_a_named_preset() -> None:
    from napari_sbtt.config import decay_estimate_wanted, start_decay_s
    from napari_sbtt.core.kinetics import ESTIMATE_RATIO_RANGE

    low, high = ESTIMATE_RATIO_RANGE
    assert decay_estimate_wanted(RunConfig())
    assert decay_estimate_wanted(RunConfig(indicator="GCaMP6s"))  # to check the preset
    assert not decay_estimate_wanted(RunConfig(decay_from_data=False))
    assert not decay_estimate_wanted(RunConfig(model={"calcium_decay_seconds": 1.0}))
    assert not decay_estimate_wanted(RunConfig(likelihood="gaussian"))
    assert start_decay_s(RunConfig(), 1.7) == 1.7
    assert start_decay_s(RunConfig(indicator="GCaMP6s"), 1.7) == 1.25  # the estimate allows the preset
    assert start_decay_s(RunConfig(indicator="GCaMP6s"), None) == 1.25
    # an estimate that rules the preset out moves it to the nearest decay the estimate allows
    assert start_decay_s(RunConfig(indicator="GCaMP6f"), 3.0) == pytest.approx(3.0 / high)
    assert start_decay_s(RunConfig(indicator="GCaMP6f"), 0.58 * low * 0.5) == pytest.approx(0.58 * 0.5)
    assert start_decay_s(RunConfig(), None) == 0.58  # no estimate: the default indicator's
    assert resolve(RunConfig(), bin_width=0.02, decay_s=1.7).calcium_decay_seconds == 1.7
    assert resolve(RunConfig(indicator="GCaMP6f"), bin_width=0.02,
                   decay_s=3.0).calcium_decay_seconds == pytest.approx(3.0 / high)
    assert window_seconds(RunConfig(), 0.02, 1.7) == 1.0  # the kernel is kept: 1 s
    assert window_seconds(RunConfig(model={"kinetics_lr_scale": 0.5}), 0.02, 1.7) == pytest.approx(3.4)


def test_an_onset_delay_needs_the_calcium_likelihood() -> None:
    with pytest.raises(SettingError, match="onset_delay_s.*unless the likelihood is 'calcium'"):
        RunConfig(likelihood="poisson", onset_delay_s=0.02)
    assert RunConfig(likelihood="calcium", onset_delay_s=0.02).onset_delay_s == 0.02
