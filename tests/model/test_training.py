"""Training loop behaviour: callbacks, keeping the best epoch, determinism, checkpoints, adapt."""

from __future__ import annotations

import dataclasses
import itertools
import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_sbtt.core.lorenz_protocol import make_lorenz_spiking, mask_bandwidth  # noqa: E402
from napari_sbtt.model import (  # noqa: E402
    EpochReport,
    SBTTConfig,
    SBTTModel,
    StopTraining,
    fit_trials,
    load_model,
)
from napari_sbtt.model.network import SequentialAutoencoder  # noqa: E402

TINY = dict(readin_size=8, encoder_size=8, generator_size=8, factor_size=3, ic_size=8,
            batch_size=16, max_epochs=6, patience=100, num_threads=1, device="cpu")


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    d = make_lorenz_spiking(n_conditions=6, trials_per_condition=8, n_neurons=7, n_bins=12, seed=1)
    return {
        "train": mask_bandwidth(d.train_counts, 4, 0),
        "valid": mask_bandwidth(d.valid_counts, 4, 1),
        "rates": d.valid_rates,
    }


@pytest.fixture(scope="module")
def fitted(data: dict[str, np.ndarray]) -> SBTTModel:
    return fit_trials(data["train"], data["valid"], config=SBTTConfig(**TINY), seed=3)


@pytest.mark.slow
def test_fit_returns_model_with_history(fitted: SBTTModel, data: dict[str, np.ndarray]) -> None:
    assert fitted.n_neurons == 7 and fitted.likelihood == "poisson"
    assert len(fitted.history) == 6
    assert all(isinstance(r, EpochReport) for r in fitted.history)
    r = fitted.history[-1]
    assert r.total_epochs == 6 and r.seconds > 0 and np.isfinite(r.heldout_loss)
    assert fitted.best_epoch == min(fitted.history, key=lambda r: r.valid_loss).epoch
    pred = fitted.predict(data["valid"])
    assert pred.shape == data["valid"].shape and np.all(np.isfinite(pred)) and np.all(pred >= 0)
    assert fitted.predict(data["valid"][0]).shape == data["valid"][0].shape  # (T, N) accepted
    assert str(fitted.device) == "cpu"


@pytest.mark.slow
def test_progress_stop_keeps_best_weights(data: dict[str, np.ndarray]) -> None:
    cfg = SBTTConfig(**{**TINY, "max_epochs": 20, "learning_rate": 0.05, "max_seconds": 3600.0})
    seen: list[EpochReport] = []

    def cb(rep: EpochReport) -> bool:
        seen.append(rep)
        return rep.epoch == 4

    model = fit_trials(data["train"], data["valid"], config=cfg, progress=cb, seed=5)
    assert [r.epoch for r in seen] == [0, 1, 2, 3, 4]
    assert {r.max_seconds for r in seen} == {3600.0}  # each report states the fit's cap
    assert model.stop_reason == "callback" and len(model.history) == 5
    best = min(seen, key=lambda r: r.valid_loss)
    assert model.best_epoch == best.epoch
    # weights equal those of a run stopped right at the best epoch (same seed -> same path)
    ref = fit_trials(data["train"], data["valid"], config=cfg, seed=5,
                     progress=lambda r: r.epoch == best.epoch)
    for k, v in ref.state_arrays().items():
        np.testing.assert_array_equal(model.state_arrays()[k], v)


@pytest.mark.slow
def test_stop_training_exception_and_string(data: dict[str, np.ndarray]) -> None:
    cfg = SBTTConfig(**TINY)

    def raiser(rep: EpochReport) -> None:
        if rep.epoch == 1:
            raise StopTraining

    m = fit_trials(data["train"], data["valid"], config=cfg, progress=raiser)
    assert len(m.history) == 2 and m.stop_reason == "callback"
    m2 = fit_trials(data["train"], data["valid"], config=cfg, progress=lambda r: "stop")
    assert len(m2.history) == 1


@pytest.mark.slow
def test_deterministic_for_seed(data: dict[str, np.ndarray], fitted: SBTTModel) -> None:
    again = fit_trials(data["train"], data["valid"], config=SBTTConfig(**TINY), seed=3)
    np.testing.assert_array_equal(again.predict(data["valid"]), fitted.predict(data["valid"]))
    other = fit_trials(data["train"], data["valid"], config=SBTTConfig(**TINY), seed=4)
    assert not np.array_equal(other.predict(data["valid"]), fitted.predict(data["valid"]))


@pytest.mark.slow
def test_save_load_round_trip(tmp_path, fitted: SBTTModel, data: dict[str, np.ndarray]) -> None:
    fitted.metadata["units"] = "counts per bin"
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(data["valid"]), fitted.predict(data["valid"]))
    assert loaded.config == fitted.config and loaded.best_epoch == fitted.best_epoch
    assert loaded.metadata["units"] == "counts per bin"
    assert [r.valid_loss for r in loaded.history] == [r.valid_loss for r in fitted.history]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fitted.save(path)
    fitted.save(path, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name != "model.safetensors"]  # no temp left


@pytest.mark.slow
def test_load_checks_compatibility(tmp_path, fitted: SBTTModel, data: dict[str, np.ndarray]) -> None:
    path = tmp_path / "m.safetensors"
    fitted.save(path)
    with pytest.raises(ValueError, match="expects 7 neurons but the data has 9.*adapt"):
        load_model(path, n_neurons=9)
    with pytest.raises(ValueError, match="likelihood 'poisson', not 'gaussian'"):
        load_model(path, likelihood="gaussian")
    model = load_model(path)
    assert model.is_compatible(7, "poisson") and not model.is_compatible(8)
    with pytest.raises(ValueError, match="expects 7 neurons"):
        model.predict(np.zeros((2, 12, 9)))


def test_load_rejects_foreign_files(tmp_path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01 not a model at all" * 10)
    with pytest.raises(ValueError, match="not a napari-sbtt model"):
        load_model(junk)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other), metadata={"x": "1"})
    with pytest.raises(ValueError, match="not a napari-sbtt model"):
        load_model(other)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.safetensors")
    bad_meta = tmp_path / "bad.safetensors"
    save_file({"w": torch.zeros(3)}, str(bad_meta),
              metadata={"napari_sbtt": json.dumps({"format": "napari-sbtt-model", "format_version": 1})})
    with pytest.raises(ValueError, match="metadata field 'likelihood' must be one of"):
        load_model(bad_meta)


@pytest.mark.slow
def test_adapt_to_other_neurons_keeps_dynamics(fitted: SBTTModel) -> None:
    d = make_lorenz_spiking(n_conditions=4, trials_per_condition=6, n_neurons=5, n_bins=12, seed=2)
    adapted = fitted.adapt(mask_bandwidth(d.train_counts, 3, 0),
                           config=SBTTConfig(**{**TINY, "max_epochs": 1, "learning_rate": 1e-12}))
    assert adapted.n_neurons == 5 and fitted.n_neurons == 7
    new, old = adapted.state_arrays(), fitted.state_arrays()
    # with a negligible learning rate the dynamics are the pretrained ones
    np.testing.assert_allclose(new["generator.weight_hh_l0"], old["generator.weight_hh_l0"], atol=1e-6)
    np.testing.assert_allclose(new["encoder.weight_hh_l0"], old["encoder.weight_hh_l0"], atol=1e-6)
    assert new["readout.weight"].shape == (5, 3)
    with pytest.raises(ValueError, match="architecture"):
        fitted.adapt(mask_bandwidth(d.train_counts, 3, 0), config=SBTTConfig(**{**TINY, "factor_size": 4}))


@pytest.mark.slow
def test_valid_split_and_sample_validation_only(data: dict[str, np.ndarray]) -> None:
    cfg = SBTTConfig(**{**TINY, "max_epochs": 2})
    m = fit_trials(data["train"], config=cfg)  # valid split off internally
    assert m.metadata["n_train_trials"] == data["train"].shape[0] - round(0.2 * data["train"].shape[0])
    one = fit_trials(data["train"][:1], config=cfg)  # one trial: sample validation only
    r = one.history[-1]
    assert r.valid_loss == r.heldout_loss


@pytest.mark.slow
@pytest.mark.parametrize("likelihood", ["gaussian", "zig", "calcium"])
def test_other_likelihoods_fit_and_predict(likelihood: str, data: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(0)
    x = data["train"] * 0.5 + (rng.normal(0, 0.1, data["train"].shape) if likelihood != "zig" else 0)
    cfg = SBTTConfig(**{**TINY, "max_epochs": 2, "controller_size": 4 if likelihood == "gaussian" else 0,
                        "variational_ic": likelihood == "calcium", "calcium_ar_order": 2})
    m = fit_trials(x, likelihood=likelihood, config=cfg)
    rates = m.predict(x)
    sig = m.predict(x, output="signal")
    assert rates.shape == x.shape and np.all(np.isfinite(rates)) and np.all(np.isfinite(sig))
    if likelihood in ("zig", "calcium"):
        assert np.all(rates >= 0)
    if likelihood == "calcium":
        assert not np.allclose(rates, sig)


@pytest.mark.slow
def test_divergence_rolls_back_and_never_returns_nan(data: dict[str, np.ndarray]) -> None:
    cfg = SBTTConfig(**{**TINY, "max_epochs": 4, "max_divergence_retries": 2})
    calls = {"n": 0}
    # poison the network's output (not nn.GRU.forward: training runs the encoder as a fused node)
    net_cls = SequentialAutoencoder
    orig = net_cls.forward

    poison = {"from": 5, "to": 6}  # epoch 0 has 3 batches; poison 2 batches of epoch 1

    def poisoned(self, *a, **k):
        out = orig(self, *a, **k)
        if self.training:
            calls["n"] += 1
            if poison["from"] <= calls["n"] <= poison["to"]:
                out = dataclasses.replace(out, raw=out.raw * float("nan"))
        return out

    net_cls.forward = poisoned
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            m = fit_trials(data["train"], data["valid"], config=cfg)
    finally:
        net_cls.forward = orig
    assert any("non-finite loss" in str(x.message) for x in w)
    assert m.history[-1].learning_rate < cfg.learning_rate
    assert np.all(np.isfinite(m.predict(data["valid"])))
    # diverging from the start, with no usable epoch: a clear error, not NaN rates
    calls["n"], poison["from"], poison["to"] = 0, 1, 10**6
    net_cls.forward = poisoned
    try:
        with pytest.raises(FloatingPointError, match="learning_rate"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_trials(data["train"], data["valid"], config=cfg)
    finally:
        net_cls.forward = orig


@pytest.mark.slow
def test_cosine_schedule_warms_up_then_anneals(data: dict[str, np.ndarray]) -> None:
    cfg = SBTTConfig(**{**TINY, "max_epochs": 8, "lr_schedule": "cosine", "lr_warmup_epochs": 2,
                        "learning_rate": 0.01, "min_learning_rate": 1e-4})
    m = fit_trials(data["train"], data["valid"], config=cfg, seed=3)
    lrs = [r.learning_rate for r in m.history]
    assert len(lrs) == 8
    assert lrs[0] < lrs[2]  # warm-up ramp
    assert all(a >= b for a, b in itertools.pairwise(lrs[2:]))  # then monotone annealing
    assert lrs[-1] < 0.01 * 0.2
    again = fit_trials(data["train"], data["valid"], config=cfg, seed=3)
    np.testing.assert_allclose(again.predict(data["valid"]), m.predict(data["valid"]))
    with pytest.raises(ValueError, match="lr_schedule"):
        SBTTConfig(lr_schedule="step")


@pytest.mark.slow
def test_fit_trials_without_a_config_uses_the_likelihoods_benchmark_defaults():
    from napari_sbtt.model.config import LIKELIHOOD_DEFAULTS

    poisson = SBTTConfig.default_for("poisson")
    for key, value in LIKELIHOOD_DEFAULTS["poisson"].items():
        assert getattr(poisson, key) == value
    assert poisson.max_seconds == 90.0 and poisson.coordinated_dropout == 0.0
    assert SBTTConfig.default_for("calcium") == SBTTConfig()
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, size=(10, 20, 4)).astype(float)
    model = fit_trials(counts, likelihood="poisson", seed=0,
                       progress=lambda r: r.epoch >= 1)  # two epochs are enough to see the config
    # one network per idle core (at most two), merged into one network that many times as wide
    from napari_sbtt.model.ensemble import auto_members, merged_config

    k = model.metadata.get("ensemble", {}).get("members", 1)
    assert k == auto_members(poisson, torch.device("cpu"))
    assert model.config == (merged_config(poisson, k) if k > 1 else poisson)
