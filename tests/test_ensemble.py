"""Networks trained side by side and merged into one (napari_sbtt.model.ensemble)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sbtt.model import SBTTConfig, fit_trials, load_model
from napari_sbtt.model.config import MAX_AUTO_COPY_BYTES, MAX_AUTO_MEMBERS, MAX_UNITS
from napari_sbtt.model.ensemble import auto_members, member_threads, merge_networks, merged_config
from napari_sbtt.model.likelihoods import make_likelihood
from napari_sbtt.model.network import SequentialAutoencoder
from napari_sbtt.model.sbtt_model import MEMBER_SEED_STEP

SMALL = dict(readin_size=6, encoder_size=5, generator_size=7, factor_size=3, ic_size=4,
             inferred_input_size=2)


def _members(likelihood: str, config: SBTTConfig, k: int, n: int = 4) -> list[SequentialAutoencoder]:
    nets = []
    for j in range(k):
        torch.manual_seed(j)
        net = SequentialAutoencoder(n, config, make_likelihood(likelihood, n, config))
        with torch.no_grad():  # away from the initialisation, and the likelihood's parameters differ
            for p in net.parameters():
                p.add_(0.3 * torch.randn_like(p))
        nets.append(net.eval())
    return nets


@pytest.mark.parametrize("likelihood", ["poisson", "gaussian", "zig", "calcium"])
@pytest.mark.parametrize("controller", [0, 5])
@pytest.mark.parametrize("variational", [False, True])
def test_merged_network_outputs_the_members_mean(likelihood: str, controller: int, variational: bool) -> None:
    config = SBTTConfig(**SMALL, controller_size=controller, variational_ic=variational)
    members = _members(likelihood, config, 3)
    merged = merge_networks(members, config, likelihood)
    assert merged.config.encoder_size == 3 * config.encoder_size
    assert merged.config.controller_size == 3 * controller and merged.config.ensemble_size == 1
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 9, 4, generator=g)
    mask = torch.rand(2, 9, 4, generator=g) > 0.3
    with torch.no_grad():
        want = torch.stack([m(x * mask, mask).raw for m in members]).mean(0)
        for fused in (True, False):  # the fused unroll and the op-by-op reference
            merged.fused_unroll = fused
            out = merged(x * mask, mask)
            torch.testing.assert_close(out.raw, want, atol=1e-6, rtol=0)
            assert out.factors.shape == (2, 9, 3 * config.factor_size)
    for name, p in merged.likelihood.state_dict().items():
        mean = torch.stack([m.likelihood.state_dict()[name] for m in members]).mean(0)
        torch.testing.assert_close(p, mean)


def test_merging_one_network_keeps_it() -> None:
    config = SBTTConfig(**SMALL)
    (net,) = _members("poisson", config, 1)
    merged = merge_networks([net], config, "poisson")
    for k, v in net.state_dict().items():
        torch.testing.assert_close(merged.state_dict()[k], v)


def test_merge_refuses_networks_of_other_sizes() -> None:
    a = _members("poisson", SBTTConfig(**SMALL), 1)[0]
    b = _members("poisson", SBTTConfig(**{**SMALL, "encoder_size": 6}), 1)[0]
    with pytest.raises(ValueError, match="same sizes"):
        merge_networks([a, b], a.config, "poisson")


def test_merged_config_respects_the_unit_limit() -> None:
    with pytest.raises(ValueError, match="encoder_size"):
        merged_config(SBTTConfig(encoder_size=MAX_UNITS // 2 + 1), 2)
    assert merged_config(SBTTConfig(), 2).generator_size == 2 * SBTTConfig().generator_size


def test_auto_members(monkeypatch: pytest.MonkeyPatch) -> None:
    import napari_sbtt.model.ensemble as ens

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    one_thread = SBTTConfig(num_threads=1, ensemble_size=0)
    monkeypatch.setattr(ens, "default_num_threads", lambda: 16)
    assert auto_members(one_thread, cpu) == MAX_AUTO_MEMBERS
    assert auto_members(one_thread, gpu) == 1
    assert auto_members(one_thread.replace(num_threads=16), cpu) == 1
    assert auto_members(one_thread.replace(ensemble_size=3), cpu) == 3  # asked for: as asked
    # windows too large to copy into a second process: one network, unless asked for
    assert auto_members(one_thread, cpu, data_bytes=MAX_AUTO_COPY_BYTES + 1) == 1
    assert auto_members(one_thread.replace(ensemble_size=2), cpu, data_bytes=MAX_AUTO_COPY_BYTES + 1) == 2
    wide = one_thread.replace(encoder_size=MAX_UNITS // 2 + 1)
    assert auto_members(wide, cpu) == 1  # two would not fit MAX_UNITS
    monkeypatch.setattr(ens, "default_num_threads", lambda: 1)
    assert auto_members(one_thread, cpu) == 1  # no idle core: one network


def test_poisson_defaults_ask_for_auto_ensemble() -> None:
    assert SBTTConfig.default_for("poisson").ensemble_size == 0
    assert SBTTConfig.default_for("calcium").ensemble_size == 1
    with pytest.raises(ValueError, match="ensemble_size"):
        SBTTConfig(ensemble_size=-1)
    with pytest.raises(ValueError, match="ensemble_size"):
        SBTTConfig(ensemble_size=10_000)


def _counts(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rates = np.exp(np.sin(np.linspace(0, 6, 20))[None, :, None] + rng.normal(0, 0.3, (1, 1, 6)))
    x = rng.poisson(np.broadcast_to(rates, (30, 20, 6))).astype(float)
    x[rng.random(x.shape) < 0.5] = np.nan
    return x


def _config(**kw: object) -> SBTTConfig:
    return SBTTConfig(**SMALL).replace(**{"max_epochs": 4, "num_threads": 1, "batch_size": 8,
                                          "ensemble_size": 2, **kw})


def test_ensemble_fit_is_one_model_and_repeats_per_seed(tmp_path) -> None:  # noqa: ANN001
    x = _counts()
    threads = torch.get_num_threads()
    model = fit_trials(x, likelihood="poisson", config=_config(), seed=3)
    assert torch.get_num_threads() == threads
    assert model.config.encoder_size == 2 * SMALL["encoder_size"] and model.config.ensemble_size == 1
    info = model.metadata["ensemble"]
    assert info["members"] == 2 and info["member_epochs"] == [4, 4]
    assert info["member_seeds"][0] == 3 and info["member_seeds"][1] != 3
    again = fit_trials(x, likelihood="poisson", config=_config(), seed=3)
    np.testing.assert_array_equal(model.predict(x), again.predict(x))
    other = fit_trials(x, likelihood="poisson", config=_config(), seed=4)
    assert not np.array_equal(model.predict(x), other.predict(x))
    # one network: saved, loaded and adapted like any other
    model.save(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    adapted = loaded.adapt(x, config=loaded.config.replace(max_epochs=1))
    assert adapted.config.encoder_size == model.config.encoder_size


def test_ensemble_members_differ_and_average() -> None:
    """The merged model predicts the geometric mean of its members' rates (the mean log-rate)."""
    x = _counts(1)
    pair = fit_trials(x, likelihood="poisson", config=_config(), seed=0)
    seeds = pair.metadata["ensemble"]["member_seeds"]
    assert len(set(seeds)) == 2
    rates = pair.predict(x)
    assert np.all(np.isfinite(rates)) and np.all(rates > 0)


def test_stop_ends_every_member_and_keeps_the_best() -> None:
    seen: list[int] = []

    def progress(report):  # noqa: ANN001, ANN202
        seen.append(report.epoch)
        return "stop" if report.epoch >= 1 else None

    model = fit_trials(_counts(), likelihood="poisson", config=_config(max_epochs=200), seed=0,
                       progress=progress)
    assert model.stop_reason == "callback"
    assert seen == sorted(seen) and seen[-1] == 1  # reports stop once a stop was asked for
    assert max(model.metadata["ensemble"]["member_epochs"]) < 200


def test_an_error_in_the_callers_progress_reaches_the_caller() -> None:
    def progress(report):  # noqa: ANN001, ANN202
        raise RuntimeError("boom in progress")

    with pytest.raises(RuntimeError, match="boom in progress"):
        fit_trials(_counts(), likelihood="poisson", config=_config(max_epochs=50), seed=0, progress=progress)


def test_ensemble_cannot_resume_or_adapt() -> None:
    x = _counts()
    one = fit_trials(x, likelihood="poisson", config=_config(ensemble_size=1), seed=0)
    with pytest.raises(ValueError, match="ensemble_size"):
        fit_trials(x, likelihood="poisson", init=one, config=one.config.replace(ensemble_size=2))
    # auto (0) quietly trains one network where an ensemble cannot be
    adapted = fit_trials(x, likelihood="poisson", init=one, config=one.config.replace(ensemble_size=0))
    assert "ensemble" not in adapted.metadata


def test_own_noise_generator_repeats_dropout_draws() -> None:
    config = SBTTConfig(**SMALL, dropout=0.5, controller_size=5, variational_ic=True)
    (net,) = _members("poisson", config, 1)
    net.train()
    x = torch.randn(2, 9, 4)
    mask = torch.ones(2, 9, 4, dtype=torch.bool)
    outs = []
    for _ in range(2):
        net.noise = torch.Generator().manual_seed(11)
        torch.manual_seed(0)
        a = net(x, mask).raw
        torch.manual_seed(1)  # the global generator no longer matters
        outs.append((a, net(x, mask).raw))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])
    assert not torch.equal(outs[0][0], outs[0][1])


def test_member_threads_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import napari_sbtt.model.config as cfg

    monkeypatch.setattr(cfg, "default_num_threads", lambda: 8)
    assert member_threads(SBTTConfig(num_threads=0), 2) == 4
    assert member_threads(SBTTConfig(num_threads=0), 16) == 1
    assert member_threads(SBTTConfig(num_threads=3), 2) == 3  # asked for: as asked


def test_too_wide_an_ensemble_is_refused_before_training() -> None:
    wide = _config(encoder_size=MAX_UNITS // 2 + 1)
    with pytest.raises(ValueError, match="ensemble_size = 2 .* encoder_size"):
        fit_trials(_counts(), likelihood="poisson", config=wide, progress=lambda r: pytest.fail("trained"))


def test_merged_validation_loss_is_reported() -> None:
    model = fit_trials(_counts(), likelihood="poisson", config=_config(), seed=0)
    info = model.metadata["ensemble"]
    assert np.isfinite(info["merged_valid_loss"]) and info["failed_member_seeds"] == []
    assert model.best_valid_loss == info["member_best_valid_loss"][0]


def test_a_member_without_a_usable_epoch_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import napari_sbtt.model.sbtt_model as sm

    real_fit, lock, calls = sm.Trainer.fit, threading.Lock(), []

    def fit(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        with lock:
            calls.append(1)
            first = len(calls) == 1
        if first:
            raise FloatingPointError("training produced no finite validation loss")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(sm.Trainer, "fit", fit)
    with pytest.warns(UserWarning, match="1 of the 2 networks"):
        model = fit_trials(_counts(), likelihood="poisson", config=_config(), seed=0)
    assert model.metadata["ensemble"]["members"] == 1 and len(model.metadata["ensemble"]["failed_member_seeds"]) == 1
    assert model.config.encoder_size == SMALL["encoder_size"]

    # every member, the child process's too, without a usable epoch: the fit fails
    diverging = _config(learning_rate=1e30, max_divergence_retries=0, grad_clip=0.0)
    with pytest.raises(FloatingPointError, match="no usable epoch"):
        fit_trials(_counts(), likelihood="poisson", config=diverging, seed=0)


def test_a_member_whose_process_fails_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import napari_sbtt.model.member_process as mp

    monkeypatch.setattr(mp.sys, "executable", "/nonexistent/python3")
    with pytest.warns(UserWarning, match="could not start a process"):
        model = fit_trials(_counts(), likelihood="poisson", config=_config(), seed=0)
    info = model.metadata["ensemble"]
    assert info["members"] == 1 and info["failed_member_seeds"] == [MEMBER_SEED_STEP]
    assert model.config.encoder_size == SMALL["encoder_size"]  # the first network alone
    assert np.all(np.isfinite(model.predict(_counts())))


def test_member_process_ends_when_its_parent_goes() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "napari_sbtt.model.member_process"], input=b"",
                          capture_output=True, timeout=120)
    assert done.returncode == 3 and done.stdout == b""


def test_members_end_at_the_fits_deadline() -> None:
    """Both networks stop on the same wall clock: the child's clock counts its own start-up."""
    import time

    reports: list = []
    t = time.perf_counter()
    model = fit_trials(_counts(), likelihood="poisson", config=_config(max_epochs=100000, patience=100000, max_seconds=6.0),
                       seed=0, progress=reports.append)
    took = time.perf_counter() - t
    info = model.metadata["ensemble"]
    assert info["member_stop_reasons"] == ["time_budget", "time_budget"]
    assert took < 6.0 + 5.0
    assert all(6.0 <= s < 6.0 + 2.0 for s in info["member_seconds"])  # the child's start-up counted
    assert {r.max_seconds for r in reports} == {6.0}  # the cap the user set, whichever network reports


def test_the_run_path_trains_one_network_per_core_and_deconvolve_traces_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """config.RUN_MODEL_DEFAULTS asks for auto (two networks on two cores); deconvolve_traces
    (config.TRACES_MODEL_DEFAULTS) trains one unless its model overrides say otherwise."""
    import napari_sbtt as ns
    import napari_sbtt.model.ensemble as ens
    from napari_sbtt.deconvolve import deconvolve_traces

    monkeypatch.setattr(ens, "default_num_threads", lambda: 2)
    tiny = {"readin_size": 8, "encoder_size": 8, "generator_size": 8, "factor_size": 2, "ic_size": 8,
            "controller_size": 8, "batch_size": 16}
    sim = ns.simulate("tiny", seed=1)
    res = ns.run_on_stack(sim.movie, sim.labels, sim.pattern,
                          config={"epochs": 2, "window_s": 1.0, "model": tiny, "compare_oasis": False})
    assert res.model.metadata["ensemble"]["members"] == 2
    assert res.model.config.encoder_size == 16
    assert res.model.config.calcium_initial_fit  # the run path fits each window's leftover calcium
    rng = np.random.default_rng(0)
    traces = [rng.poisson(0.5, 400).astype(float), rng.poisson(0.5, 300).astype(float)]
    cfg = {"epochs": 1, "model": tiny, "compare_oasis": False, "inference_shifts": 1}
    one = deconvolve_traces(traces, frame_period=0.05, indicator="GCaMP6f", config=cfg)
    assert "ensemble" not in one.model.metadata
    assert one.model.config.calcium_initial_fit  # traces too
    two = deconvolve_traces(traces, frame_period=0.05, indicator="GCaMP6f",
                            config={**cfg, "model": {**tiny, "ensemble_size": 2}})
    assert two.model.metadata["ensemble"]["members"] == 2


def test_a_member_processs_warnings_reach_the_caller() -> None:
    config = _config(valid_fraction=0.0, sample_validation=0.0)  # early stopping on the training loss
    with pytest.warns(UserWarning, match="network 2: no validation trials"):
        fit_trials(_counts(), likelihood="poisson", config=config, seed=0)
