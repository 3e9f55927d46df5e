"""Likelihoods against closed forms (scipy.stats) and the SBTT masking guarantee."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy import stats  # noqa: E402

from napari_sbtt.model import SBTTConfig  # noqa: E402
from napari_sbtt.model.likelihoods import (  # noqa: E402
    CalciumLikelihood,
    GaussianLikelihood,
    Normaliser,
    PoissonLikelihood,
    ZIGLikelihood,
)
from napari_sbtt.model.sbtt_model import SBTTModel  # noqa: E402
from napari_sbtt.model.training import masked_loss  # noqa: E402

RNG = np.random.default_rng(0)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64)


def test_poisson_matches_scipy() -> None:
    log_rate = RNG.normal(0, 1, (2, 5, 3))
    y = RNG.poisson(np.exp(log_rate)).astype(float)
    nll = PoissonLikelihood(3).double().nll(_t(log_rate)[..., None], _t(y)).numpy()
    np.testing.assert_allclose(nll, -stats.poisson.logpmf(y, np.exp(log_rate)), rtol=1e-10, atol=1e-10)


def test_gaussian_matches_scipy() -> None:
    lik = GaussianLikelihood(3).double()
    mean = RNG.normal(0, 1, (2, 5, 3))
    y = RNG.normal(0, 1, (2, 5, 3))
    sd = lik.std().detach().numpy()
    nll = lik.nll(_t(mean)[..., None], _t(y)).detach().numpy()
    np.testing.assert_allclose(nll, -stats.norm.logpdf(y, mean, sd[None, None]), rtol=1e-10)


def test_zig_matches_closed_form() -> None:
    s_min = 0.1
    lik = ZIGLikelihood(3, min_event=s_min).double()
    raw = RNG.normal(0, 0.5, (2, 6, 3, 3))
    y = np.where(RNG.random((2, 6, 3)) < 0.5, 0.0, s_min + RNG.gamma(2.0, 0.5, (2, 6, 3)))
    nll = lik.nll(_t(raw), _t(y)).numpy()
    q = 1 / (1 + np.exp(-raw[..., 0]))
    k, theta = np.exp(raw[..., 1]), np.exp(raw[..., 2])
    expected = np.where(
        y > s_min,
        -np.log(q) - stats.gamma.logpdf(y, k, loc=s_min, scale=theta),
        -np.log1p(-q),
    )
    np.testing.assert_allclose(nll, expected, rtol=1e-9, atol=1e-9)
    # the mean of the distribution is the inferred rate
    np.testing.assert_allclose(lik.rates(_t(raw)).numpy(), q * (s_min + k * theta), rtol=1e-10)


@pytest.mark.parametrize("order", [1, 2])
def test_calcium_forward_model_matches_recursion(order: int) -> None:
    lik = CalciumLikelihood(2, ar_order=order, decay_bins=5.0, rise_bins=1.0).double()
    raw = RNG.normal(0, 1, (1, 20, 2, 1))
    lam = np.log1p(np.exp(raw[..., 0]))  # softplus
    g = lik.ar_coefficients().detach().numpy()  # (N, order)
    c = np.zeros((20, 2))
    for t in range(20):
        c[t] = lam[0, t]
        for i in range(order):
            if t - 1 - i >= 0:
                c[t] += g[:, i] * c[t - 1 - i]
    gain = lik.gain().detach().numpy()
    f = lik.baseline.detach().numpy() + gain * c
    np.testing.assert_allclose(lik.signal(_t(raw)).detach().numpy()[0], f, rtol=1e-8, atol=1e-10)
    y = f + 0.1 * RNG.normal(size=f.shape)
    sd = lik.std().detach().numpy()
    nll = lik.nll(_t(raw), _t(y[None])).detach().numpy()[0]
    np.testing.assert_allclose(nll, -stats.norm.logpdf(y, f, sd), rtol=1e-8)
    np.testing.assert_allclose(lik.rates(_t(raw)).detach().numpy(), lam * gain, rtol=1e-10)


@pytest.mark.parametrize("likelihood", ["poisson", "gaussian", "zig", "calcium"])
def test_unobserved_entries_have_exactly_zero_influence(likelihood: str) -> None:
    """SBTT: changing a masked input value or target changes neither loss nor any gradient."""
    torch.manual_seed(0)
    cfg = SBTTConfig(readin_size=8, encoder_size=8, generator_size=8, factor_size=3, ic_size=8,
                     dropout=0.0, controller_size=4)
    model = SBTTModel.build(4, likelihood, cfg, Normaliser.identity(4))
    net = model.network.double()
    net.eval()
    obs = torch.as_tensor(RNG.random((2, 10, 4)) < 0.5)
    base = torch.as_tensor(RNG.poisson(1.0, (2, 10, 4)), dtype=torch.float64)

    def run(values: torch.Tensor) -> tuple[float, list[torch.Tensor], torch.Tensor]:
        net.zero_grad()
        target = values.clone().requires_grad_(True)
        inp = torch.where(obs, target, torch.zeros_like(target))
        out = net(inp, obs)
        total, count = masked_loss(net.likelihood.nll(out.raw, target), obs)
        loss = total / count
        loss.backward()
        return loss.item(), [p.grad.clone() for p in net.parameters() if p.grad is not None], target.grad

    loss1, g1, tg1 = run(base)
    changed = torch.where(obs, base, base + 7.0)  # only unobserved values change
    loss2, g2, tg2 = run(changed)
    assert loss1 == loss2
    assert len(g1) == len(g2) and len(g1) > 5
    for a, b in zip(g1, g2, strict=True):
        assert torch.equal(a, b)
    assert torch.all(tg1[~obs] == 0) and torch.all(tg2[~obs] == 0)
    assert torch.any(tg1[obs] != 0)  # the test can fail: observed targets do matter


def test_masked_loss_ignores_nonfinite_unscored_values() -> None:
    nll = torch.tensor([1.0, float("inf"), 2.0], requires_grad=True)
    score = torch.tensor([True, False, True])
    total, count = masked_loss(nll, score)
    total.backward()
    assert total.item() == 3.0 and int(count) == 2
    assert nll.grad.tolist() == [1.0, 0.0, 1.0]


def test_normaliser_round_trip() -> None:
    x = RNG.normal(3, 2, (4, 10, 3))
    x[0, :, 1] = np.nan
    n = Normaliser.standardise(x)
    np.testing.assert_allclose(n.to_data(n.to_model(x)), x)
    n2 = Normaliser.from_dict(n.to_dict())
    np.testing.assert_array_equal(n2.scale, n.scale)
