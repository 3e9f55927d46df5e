"""Calcium observation model: initial calcium state, decay recovery, initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_sbtt.model import SBTTConfig
from napari_sbtt.model.likelihoods import CalciumLikelihood, make_likelihood

RNG = np.random.default_rng(3)


def _inv_softplus(x: np.ndarray) -> np.ndarray:
    return np.log(np.expm1(x))


def _window_mid_transient(T: int = 60, decay: float = 8.0, rate: float = 0.2, c0: float = 6.0,
                          noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """A window cut out of a continuous recording: calcium c0 left from earlier spikes."""
    d = math.exp(-1.0 / decay)
    c = np.zeros(T)
    prev = c0
    for t in range(T):
        c[t] = d * prev + rate
        prev = c[t]
    y = 0.1 * c + noise * RNG.standard_normal(T)
    return y, d


def _fit_free_rates(lik: CalciumLikelihood, y: np.ndarray, steps: int = 800) -> np.ndarray:
    """Maximise the likelihood over free per-bin raw outputs (kernel fixed) with a smoothness
    penalty on the rates (a stand-in for the network's rate prior); return the rates."""
    T = y.shape[0]
    raw = torch.zeros(1, T, 1, lik.n_params, dtype=torch.float64)
    raw[..., 0] = float(_inv_softplus(np.array(0.2)))
    if lik.n_params > 1:
        raw[..., 1] = float(_inv_softplus(np.array(2.0)))
    raw.requires_grad_(True)
    target = torch.as_tensor(y, dtype=torch.float64)[None, :, None]
    opt = torch.optim.Adam([raw], lr=0.2)
    for _ in range(steps):
        opt.zero_grad()
        rates = lik.rates(raw)
        loss = lik.nll(raw, target).sum() + 100.0 * (rates[:, 1:] - rates[:, :-1]).pow(2).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return lik.rates(raw)[0, :, 0].numpy()


def _lik(initial_state: bool, decay: float = 8.0) -> CalciumLikelihood:
    lik = CalciumLikelihood(1, decay_bins=decay, initial_state=initial_state).double()
    with torch.no_grad():
        lik.log_gain.fill_(math.log(0.1))
        lik.baseline.fill_(0.0)
        lik.raw_std.fill_(math.log(math.expm1(0.02)))
    for p in lik.parameters():
        p.requires_grad_(False)
    return lik


def test_initial_state_removes_window_start_bias() -> None:
    y, _ = _window_mid_transient()
    with_state = _fit_free_rates(_lik(True), y)
    without = _fit_free_rates(_lik(False), y)
    true_jump = 0.1 * 0.2  # gain * rate
    # without an initial state the leftover calcium must be explained by a burst at the start
    assert without[:2].max() > 10 * true_jump
    # with it, the first bins look like the rest of the window
    assert with_state[:2].max() < 3 * true_jump
    assert abs(np.median(with_state) - true_jump) < 0.5 * true_jump


def test_initial_state_channel_shapes_and_default() -> None:
    lik = make_likelihood("calcium", 3, SBTTConfig())
    assert lik.n_params == 2
    raw = torch.zeros(2, 10, 3, 2)
    assert lik.signal(raw).shape == (2, 10, 3)
    assert lik.rates(raw).shape == (2, 10, 3)
    # the initial-state channel only changes the signal, never the rates
    raw2 = raw.clone()
    raw2[:, 0, :, 1] = 5.0
    assert torch.equal(lik.rates(raw), lik.rates(raw2))
    assert (lik.signal(raw2) > lik.signal(raw)).all()
    # a one-channel raw (old checkpoints, explicit initial_state=False) still works
    assert make_likelihood("calcium", 3, SBTTConfig(calcium_initial_state=False)).n_params == 1


@pytest.mark.parametrize("true_decay", [5.0, 20.0])
def test_calcium_forward_model_recovers_known_decay(true_decay: float) -> None:
    """Known rates, unknown kernel: the decay, gain and baseline are learned by the likelihood."""
    T, N = 300, 2
    lam = RNG.gamma(0.3, 1.0, size=(T, N))
    d = math.exp(-1.0 / true_decay)
    c = np.zeros((T, N))
    for t in range(T):
        c[t] = (d * c[t - 1] if t else 0.0) + lam[t]
    y = 0.5 + 0.2 * c + 0.05 * RNG.standard_normal((T, N))
    lik = CalciumLikelihood(N, decay_bins=10.0, initial_state=False).double()
    raw = torch.as_tensor(_inv_softplus(lam), dtype=torch.float64)[None, :, :, None]
    target = torch.as_tensor(y, dtype=torch.float64)[None]
    lik.init_readout_bias(torch.zeros(N, dtype=torch.float64), y[None])
    opt = torch.optim.Adam(lik.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        lik.nll(raw, target).mean().backward()
        opt.step()
    decay = lik.tau_decay().detach().numpy()
    np.testing.assert_allclose(decay, true_decay, rtol=0.1)
    np.testing.assert_allclose(lik.gain().detach().numpy(), 0.2, rtol=0.1)


def test_init_readout_bias_starts_at_the_data_level() -> None:
    lik = CalciumLikelihood(2, decay_bins=10.0)
    data = RNG.normal(size=(4, 50, 2))
    data[..., 1] += 3.0
    data[RNG.random(data.shape) < 0.5] = np.nan
    bias = torch.zeros(2 * lik.n_params)
    lik.init_readout_bias(bias, data)
    low = np.nanpercentile(data.reshape(-1, 2), 10, axis=0)
    np.testing.assert_allclose(lik.baseline.detach().numpy(), low, rtol=1e-5)
    # steady-state signal of the initial rate equals the mean
    with torch.no_grad():
        raw = bias.view(1, 1, 2, lik.n_params).expand(1, 200, 2, lik.n_params).contiguous()
        sig = lik.signal(raw)[0, -1].numpy()
    np.testing.assert_allclose(sig, np.nanmean(data.reshape(-1, 2), axis=0), atol=0.05)


# --------------------------------------------------------------------------- kernel shape
@pytest.mark.parametrize(("indicator", "dt"), [("GCaMP6f", 0.017), ("GCaMP6f", 0.005),
                                                ("GCaMP8m", 0.017), ("GCaMP6s", 0.033)])
def test_double_exponential_kernel_is_the_indicators_binned_transient(indicator: str, dt: float) -> None:
    from napari_sbtt.core.indicators import get_indicator

    ind = get_indicator(indicator)
    lik = CalciumLikelihood(1, decay_bins=ind.tau_decay / dt, rise_bins=ind.tau_rise / dt,
                            kernel="double_exponential").double()
    n = 200
    h = lik.kernel(n)[0].detach().numpy()
    ref = ind.kernel(dt, duration=n * dt)[:n]
    np.testing.assert_allclose(h / h.max(), ref / ref.max(), rtol=1e-6, atol=1e-9)
    # same area as the AR(1) kernel of that decay: a unit rate means the same calcium
    ar1 = CalciumLikelihood(1, decay_bins=ind.tau_decay / dt).double()
    np.testing.assert_allclose(lik.kernel(20000).sum().item(), ar1.kernel(20000).sum().item(), rtol=1e-4)


def test_onset_delay_moves_the_kernel_later() -> None:
    base = CalciumLikelihood(2, decay_bins=6.0).double().kernel(30).detach().numpy()
    two = CalciumLikelihood(2, decay_bins=6.0, delay_bins=2.0).double().kernel(30).detach().numpy()
    np.testing.assert_array_equal(two[:, :2], 0.0)
    np.testing.assert_allclose(two[:, 2:], base[:, :-2])
    half = CalciumLikelihood(2, decay_bins=6.0, delay_bins=1.5).double().kernel(30).detach().numpy()
    np.testing.assert_allclose(half[:, 2:], 0.5 * (base[:, 1:-1] + base[:, :-2]))
    assert half[0, 0] == 0.0 and math.isclose(half[0, 1], 0.5 * base[0, 0])
    with pytest.raises(ValueError, match="delay"):
        CalciumLikelihood(1, delay_bins=-1.0)
    with pytest.raises(ValueError, match="double_exponential"):
        CalciumLikelihood(1, kernel="gamma")


def _slow_rise_trace(T: int = 80, spikes: tuple[int, ...] = (20, 50)) -> np.ndarray:
    """Fluorescence of isolated spikes through a slow-rising indicator (rise 2 bins, decay 12)."""
    from napari_sbtt.core.indicators import Indicator

    ind = Indicator("slow", tau_rise=2.0, tau_decay=12.0, amplitude=1.0)
    s = np.zeros(T)
    s[list(spikes)] = 1.0
    return np.convolve(s, ind.kernel(1.0, duration=T))[:T]


@pytest.mark.parametrize(("kernel", "delay"), [("double_exponential", 0.0), ("ar", 2.0)])
def test_a_kernel_with_the_rise_keeps_the_rates_on_the_spikes(kernel: str, delay: float) -> None:
    """Fitting free rates to a slow-rising transient: the AR(1) kernel puts the activity where
    the fluorescence rises (late); the binned double exponential (or an onset delay) puts it
    on the spike bins."""
    y = _slow_rise_trace()

    def fitted_peaks(lik: CalciumLikelihood) -> list[int]:
        with torch.no_grad():
            lik.log_gain.fill_(0.0)
            lik.baseline.fill_(0.0)
            lik.raw_std.fill_(math.log(math.expm1(0.02)))
        for p in lik.parameters():
            p.requires_grad_(False)
        rates = _fit_free_rates(lik, y * 0.1 / y.max(), steps=1500)
        return [int(np.argmax(rates[s - 8: s + 8])) + s - 8 for s in (20, 50)]

    late = fitted_peaks(CalciumLikelihood(1, decay_bins=12.0, initial_state=False).double())
    assert all(p >= s + 1 for p, s in zip(late, (20, 50), strict=True))
    right = fitted_peaks(CalciumLikelihood(1, decay_bins=12.0, rise_bins=2.0, delay_bins=delay,
                                           kernel=kernel, initial_state=False).double())
    assert all(abs(p - s) <= 1 for p, s in zip(right, (20, 50), strict=True)), right
    assert sum(abs(p - s) for p, s in zip(right, (20, 50), strict=True)) < sum(p - s for p, s in zip(late, (20, 50), strict=True))


def _tiny_calcium_model(**cfg):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(12, 30, 3))
    data[rng.random(data.shape) < 0.3] = np.nan
    return _tiny_calcium_model_of(data, **cfg)


def _tiny_calcium_model_of(data: np.ndarray, **cfg):
    from napari_sbtt.model import fit_trials

    cfg = {"calcium_kernel": "double_exponential", **cfg}
    config = SBTTConfig(max_epochs=2, batch_size=4, readin_size=8, encoder_size=8, generator_size=8,
                        factor_size=2, ic_size=8, calcium_decay=12.0, calcium_rise=1.5, num_threads=1,
                        **cfg)
    return fit_trials(data, likelihood="calcium", config=config, seed=0), data


def test_time_constants_are_learned_as_log_bins() -> None:
    lik = CalciumLikelihood(2, decay_bins=12.0, rise_bins=1.5, kernel="double_exponential")
    np.testing.assert_allclose(lik.tau_decay().detach().numpy(), 12.0, rtol=1e-6)
    np.testing.assert_allclose(lik.tau_rise().detach().numpy(), 1.5, rtol=1e-6)
    with torch.no_grad():  # a rise longer than the decay is held below it: the poles stay distinct
        lik.log_tau_rise.fill_(math.log(50.0))
    assert (lik.tau_rise() < lik.tau_decay()).all()


@pytest.mark.slow
def test_a_checkpoint_with_pole_logits_loads_as_time_constants(tmp_path) -> None:
    """Checkpoints written before the log time constants hold sigmoid logits of the poles."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from napari_sbtt.model import load_model

    model, data = _tiny_calcium_model()
    path = tmp_path / "new.safetensors"
    model.save(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict
    old = {}
    for k, v in tensors.items():
        if k.endswith("log_tau_decay") or k.endswith("log_tau_rise"):
            pole = torch.exp(-1.0 / torch.exp(v.double()))
            name = k.replace("log_tau_decay", "decay_logit").replace("log_tau_rise", "rise_logit")
            old[name] = torch.log(pole / (1 - pole)).float()
        else:
            old[k] = v
    info = json.loads(meta["napari_sbtt"])
    meta = {**meta, "napari_sbtt": json.dumps({**info, "format_version": 1})}  # as such files say
    save_file(old, str(tmp_path / "old.safetensors"), metadata=meta)
    loaded = load_model(tmp_path / "old.safetensors")
    lik0, lik1 = model.network.likelihood, loaded.network.likelihood
    np.testing.assert_allclose(lik1.tau_decay().detach().numpy(), lik0.tau_decay().detach().numpy(),
                               rtol=1e-4)
    np.testing.assert_allclose(loaded.predict(data[:2]), model.predict(data[:2]), rtol=1e-3, atol=1e-5)
    assert json.loads(meta["napari_sbtt"])["likelihood"] == "calcium"


@pytest.mark.slow
def test_a_format_1_checkpoint_without_a_kernel_field_loads_with_the_ar_kernel(tmp_path) -> None:
    """Format 1 configs written before calcium_kernel existed mean the AR kernel; format 2 names it."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from napari_sbtt.model import load_model, read_checkpoint_info
    from napari_sbtt.model.header import FORMAT_VERSION, checkpoint_header_info

    model, data = _tiny_calcium_model(calcium_kernel="ar")
    path = tmp_path / "new.safetensors"
    model.save(path)
    assert read_checkpoint_info(path)["format_version"] == FORMAT_VERSION == 2
    with safe_open(str(path), framework="pt") as f:
        info = json.loads(f.metadata()["napari_sbtt"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict
    info["format_version"] = 1
    del info["config"]["calcium_kernel"]
    for h in info["history"]:
        h["extra"] = {}  # written by format 1, never used
    assert info["history"]
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata={"napari_sbtt": json.dumps(info)})
    assert checkpoint_header_info(tmp_path / "old.safetensors")["config"]["calcium_kernel"] == "ar"
    loaded = load_model(tmp_path / "old.safetensors")
    assert loaded.config.calcium_kernel == "ar"
    np.testing.assert_array_equal(loaded.predict(data[:2]), model.predict(data[:2]))
    # in a format 2 file a missing field means today's default, which these weights do not fit
    info["format_version"] = 2
    for h in info["history"]:
        del h["extra"]
    save_file(tensors, str(tmp_path / "v2.safetensors"), metadata={"napari_sbtt": json.dumps(info)})
    with pytest.raises(ValueError, match="do not match the sizes"):
        load_model(tmp_path / "v2.safetensors")


@pytest.mark.slow
def test_observation_model_in_data_units() -> None:
    model, data = _tiny_calcium_model()
    om = model.observation_model()
    n = data.shape[-1]
    assert om["kernel"].shape[0] == n and om["kernel"].shape[1] >= 6 * om["tau_decay_bins"].max()
    assert (om["noise_sd"] > 0).all() and om["baseline"].shape == (n,)
    lik = model.network.likelihood
    np.testing.assert_allclose(om["noise_sd"], lik.std().detach().numpy() * model.normaliser.scale,
                               rtol=1e-5)


@pytest.mark.slow
def test_observation_model_turns_the_rates_into_the_models_fluorescence() -> None:
    """baseline + kernel * rates is the network's signal (no calcium before the window), so the
    deconvolution's jumps and the network's rates are in the same units."""
    model, data = _tiny_calcium_model(calcium_initial_state=False)
    om = model.observation_model()
    rates = model.predict(data[:3])
    signal = model.predict(data[:3], output="signal")
    T = data.shape[1]
    for i in range(data.shape[-1]):
        conv = np.stack([np.convolve(rates[w, :, i], om["kernel"][i])[:T] for w in range(3)])
        np.testing.assert_allclose(om["baseline"][i] + conv, signal[:, :, i], rtol=1e-4, atol=1e-5)


def test_observation_model_with_decay_scales() -> None:
    """decay_scale (M,) scales each kernel's decay: factors of 1 give the model's own kernels, a
    one-ROI model gives one kernel per factor with its baseline and noise repeated, and a scaled
    kernel is the one of a likelihood started at the scaled decay; bad factors are refused."""
    model, data = _tiny_calcium_model()
    om = model.observation_model()
    same = model.observation_model(decay_scale=np.ones(3))
    for k in om:
        np.testing.assert_allclose(same[k], om[k], rtol=1e-12)
    scaled = model.observation_model(decay_scale=np.array([0.5, 1.0, 2.0]))
    np.testing.assert_allclose(scaled["tau_decay_bins"], om["tau_decay_bins"] * [0.5, 1.0, 2.0], rtol=1e-6)
    assert scaled["kernel"].shape[1] > om["kernel"].shape[1]  # six of the longest decay
    lik = model.network.likelihood
    ref = CalciumLikelihood(1, decay_bins=float(scaled["tau_decay_bins"][2]),
                            rise_bins=float(lik.tau_rise()[2].detach()), kernel="double_exponential")
    L = scaled["kernel"].shape[1]
    np.testing.assert_allclose(scaled["kernel"][2], ref.kernel(L).detach().double().numpy()[0], rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="3 ROIs"):
        model.observation_model(decay_scale=np.ones(2))
    with pytest.raises(ValueError, match="positive"):
        model.observation_model(decay_scale=np.array([1.0, 0.0, 1.0]))
    one, _ = _tiny_calcium_model_of(data[..., :1])
    many = one.observation_model(decay_scale=np.array([0.8, 1.0, 1.25, 1.0]))
    assert many["kernel"].shape[0] == 4 and many["baseline"].shape == many["noise_sd"].shape == (4,)
    own = one.observation_model()["kernel"][0]
    np.testing.assert_allclose(many["kernel"][1, :own.size], own, rtol=1e-12)
    assert np.all(many["baseline"] == one.observation_model()["baseline"][0])


@pytest.mark.slow
def test_rate_sparsity_changes_the_fit_and_is_validated() -> None:
    dense, _ = _tiny_calcium_model()
    sparse, _ = _tiny_calcium_model(rate_sparsity=2.0)
    a, b = dense.state_arrays(), sparse.state_arrays()
    assert any(not np.allclose(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="rate_sparsity"):
        SBTTConfig(rate_sparsity=-1.0)


def test_kinetics_lr_scale_zero_keeps_the_start_and_one_learns() -> None:
    """kinetics_lr_scale = 0 keeps the kernel's decay and rise where they start while the other
    weights train; the default (1) moves them like every weight; a negative scale is refused."""
    frozen, _ = _tiny_calcium_model(kinetics_lr_scale=0.0)
    learned, _ = _tiny_calcium_model()
    fa, la = frozen.state_arrays(), learned.state_arrays()
    decay = next(k for k in fa if k.endswith("log_tau_decay"))
    rise = next(k for k in fa if k.endswith("log_tau_rise"))
    np.testing.assert_allclose(fa[decay], math.log(12.0), rtol=1e-6)
    np.testing.assert_allclose(fa[rise], math.log(1.5), rtol=1e-6)
    assert not np.allclose(la[decay], math.log(12.0))
    assert any(not np.allclose(fa[k], la[k]) for k in fa if "log_tau" not in k)
    with pytest.raises(ValueError, match="kinetics_lr_scale"):
        SBTTConfig(kinetics_lr_scale=-0.5)


def test_rise_lr_scale_learns_the_rise_while_the_decay_stays() -> None:
    """rise_lr_scale gives the rise its own learning-rate share: 1 with kinetics_lr_scale 0
    learns the rise and keeps the decay where it starts; a negative share is refused."""
    model, _ = _tiny_calcium_model(kinetics_lr_scale=0.0, rise_lr_scale=1.0)
    state = model.state_arrays()
    decay = next(k for k in state if k.endswith("log_tau_decay"))
    rise = next(k for k in state if k.endswith("log_tau_rise"))
    np.testing.assert_allclose(state[decay], math.log(12.0), rtol=1e-6)
    assert not np.allclose(state[rise], math.log(1.5))
    with pytest.raises(ValueError, match="rise_lr_scale"):
        SBTTConfig(rise_lr_scale=-0.5)


def _fit_lik(n: int = 3, decay: float = 10.0) -> CalciumLikelihood:
    return make_likelihood("calcium", n, SBTTConfig(calcium_initial_fit=True, calcium_decay=decay)).double()


def test_fitted_initial_calcium_recovers_the_leftover_calcium_of_each_roi() -> None:
    lik = _fit_lik(decay=200.0)  # a slow indicator: the leftover calcium lasts the whole window
    B, T, N = 2, 60, 3
    raw = torch.zeros(B, T, N, 2, dtype=torch.float64)
    raw[..., 0] = -3.0  # little activity inside the window
    true_c0 = torch.tensor([[0.0, 2.0, 7.0], [4.0, 0.5, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        # the fluorescence of that leftover calcium on top of the window's own activity
        without = lik.signal(raw.clone().index_fill_(3, torch.tensor([1]), -30.0))
        d = lik.decay_pole()
        t = torch.arange(1, T + 1, dtype=d.dtype)
        target = without + lik.gain() * true_c0[:, None, :] * torch.exp(t[:, None] * torch.log(d))[None]
    visible = torch.ones(B, T, N, dtype=torch.bool)
    visible[:, ::3] = False  # some entries hidden: fitted to the others only
    fitted = lik.fitted_initial_calcium(raw, target, visible)
    # the readout's value (softplus(0) = 0.69) is a prior worth one sample at the first bin: of
    # ~40 visible samples, a pull of a few per cent only
    readout = lik.initial_calcium(raw)
    assert ((fitted - true_c0).abs() <= 0.05 * (readout - true_c0).abs() + 1e-6).all()
    # fitted, the signal follows the target on the visible entries
    assert torch.allclose(lik.signal(raw, target, visible)[visible], target[visible], atol=0.05)
    # without the target, or with initial_fit off, the readout's value as before
    assert torch.equal(lik.signal(raw), lik.signal(raw, None, None))
    off = make_likelihood("calcium", N, SBTTConfig()).double()
    off.load_state_dict(lik.state_dict())
    assert torch.equal(off.signal(raw, target, visible), off.signal(raw))


def test_fitted_initial_calcium_without_samples_keeps_the_readout_and_is_never_negative() -> None:
    lik = _fit_lik()
    raw = torch.zeros(1, 20, 3, 2, dtype=torch.float64)
    raw[:, 0, :, 1] = 1.5
    target = torch.full((1, 20, 3), -50.0, dtype=torch.float64)  # far below the baseline
    none = torch.zeros(1, 20, 3, dtype=torch.bool)
    assert torch.allclose(lik.fitted_initial_calcium(raw, target, none), lik.initial_calcium(raw))
    visible = ~none
    assert (lik.fitted_initial_calcium(raw, target, visible) == 0).all()
    # the loss through the fitted calcium has finite gradients for the network's output
    raw.requires_grad_(True)
    lik.nll(raw, torch.zeros(1, 20, 3, dtype=torch.float64), visible).sum().backward()
    assert torch.isfinite(raw.grad).all() and raw.grad[..., 0].abs().sum() > 0


def test_initial_fit_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="calcium_initial_fit"):
        SBTTConfig(calcium_initial_fit=1)
