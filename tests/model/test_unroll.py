"""The fused recurrent nodes (model/unroll.py) against straightforward references: outputs
bit-identical, gradients equal up to float32 round-off, random draws the same (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from napari_sbtt.model import SBTTConfig  # noqa: E402
from napari_sbtt.model.likelihoods import make_likelihood  # noqa: E402
from napari_sbtt.model.network import SequentialAutoencoder  # noqa: E402
from napari_sbtt.model.unroll import (  # noqa: E402
    FUSED_GRU_MAX_BATCH_UNITS,
    FUSED_GRU_SMALL_MAX_BATCH_UNITS,
    FUSED_GRU_SMALL_UNITS,
    controller_unroll,
    draw_noise,
    fused_gru_fits,
    gru_sequence,
)


# ----------------------------------------------------------------------------
# the reference: the controller unroll as it was before issue 13, recorded op by op
def reference_unroll(net: SequentialAutoencoder, g: torch.Tensor, enc_out: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    B, T, _ = enc_out.shape
    con = enc_out.new_zeros(B, net.config.controller_size)
    f = net.factor_map(g)
    states, factors = [], []
    kl = enc_out.new_zeros(())
    for t in range(T):
        con = net.controller(torch.cat([enc_out[:, t], f], dim=-1), con)
        mean, logvar = net.co_map(net.drop(con)).chunk(2, dim=-1)
        logvar = logvar.clamp(-10.0, 10.0)
        u = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if net.training else mean
        kl = kl + 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
        g = net.gen_cell(u, g)
        f = net.factor_map(net.drop(g))
        states.append(g)
        factors.append(f)
    return torch.stack(states, 1), torch.stack(factors, 1), kl


def make_net(controller_size: int = 16, dropout: float = 0.1, inferred: int = 1,
             n: int = 6, small: bool = False) -> SequentialAutoencoder:
    sizes = (dict(readin_size=4, encoder_size=3, generator_size=5, factor_size=2, ic_size=3)
             if small else
             dict(readin_size=12, encoder_size=10, generator_size=14, factor_size=4, ic_size=8))
    cfg = SBTTConfig(**sizes, controller_size=controller_size, inferred_input_size=inferred,
                     dropout=dropout)
    torch.manual_seed(0)
    return SequentialAutoencoder(n, cfg, make_likelihood("gaussian", n, cfg))


def run_unroll(net: SequentialAutoencoder, fused: bool, e: torch.Tensor, g0: torch.Tensor,
               seed: int) -> dict[str, torch.Tensor]:
    """Outputs, a fixed weighted loss's gradients and the next random number after the unroll."""
    net.zero_grad(set_to_none=True)
    e = e.clone().requires_grad_()
    g0 = g0.clone().requires_grad_()
    torch.manual_seed(seed)
    if fused:
        states, factors, kl = controller_unroll(e, g0, net.controller, net.co_map, net.gen_cell,
                                                net.factor_map, net.drop.p, net.training)
    else:
        states, factors, kl = reference_unroll(net, g0, e)
    after = torch.rand(3)
    w_f = torch.linspace(-1.0, 1.0, factors.numel()).view_as(factors)
    w_s = torch.linspace(1.0, -0.5, states.numel()).view_as(states)
    ((factors * w_f).sum() + 0.3 * (states * w_s).sum() + 2.0 * kl).backward()
    out = {"states": states.detach(), "factors": factors.detach(), "kl": kl.detach(),
           "after": after, "d_e": e.grad, "d_g0": g0.grad}
    out.update({f"d_{k}": p.grad for k, p in net.named_parameters() if p.grad is not None})
    return out


def assert_close_grads(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    keys = sorted(k for k in a if k.startswith("d_"))
    assert keys == sorted(k for k in b if k.startswith("d_"))
    for k in keys:
        scale = float(b[k].abs().max()) + 1e-12
        assert float((a[k] - b[k]).abs().max()) <= 1e-5 * scale, k


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dropout,inferred", [(0.1, 1), (0.0, 2), (0.3, 3)])
def test_controller_unroll_matches_reference(training: bool, dropout: float, inferred: int) -> None:
    net = make_net(dropout=dropout, inferred=inferred)
    net.train(training)
    gen = torch.Generator().manual_seed(1)
    e = torch.randn(5, 23, 2 * net.config.encoder_size, generator=gen)
    g0 = torch.randn(5, net.config.generator_size, generator=gen)
    ref = run_unroll(net, False, e, g0, seed=7)
    new = run_unroll(net, True, e, g0, seed=7)
    # same random draws, same kernels: outputs bit for bit, and the stream left where it was
    assert torch.equal(new["states"], ref["states"])
    assert torch.equal(new["factors"], ref["factors"])
    assert torch.equal(new["after"], ref["after"])
    assert torch.allclose(new["kl"], ref["kl"], rtol=1e-6)
    assert_close_grads(new, ref)


def test_controller_unroll_without_grad_is_the_same() -> None:
    net = make_net()
    for training in (True, False):
        net.train(training)
        e, g0 = torch.randn(4, 9, 20), torch.randn(4, 14)
        with torch.no_grad():
            torch.manual_seed(3)
            ref = reference_unroll(net, g0, e)
            torch.manual_seed(3)
            new = controller_unroll(e, g0, net.controller, net.co_map, net.gen_cell,
                                    net.factor_map, net.drop.p, training)
        assert torch.equal(new[0], ref[0]) and torch.equal(new[1], ref[1])
        assert torch.allclose(new[2], ref[2], rtol=1e-6)


class _Parts(nn.Module):
    def __init__(self, net: SequentialAutoencoder, noise: tuple) -> None:
        super().__init__()
        self.controller, self.co_map = net.controller, net.co_map
        self.gen_cell, self.factor_map = net.gen_cell, net.factor_map
        self.noise = noise

    def forward(self, e: torch.Tensor, g0: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return controller_unroll(e, g0, self.controller, self.co_map, self.gen_cell,
                                 self.factor_map, 0.0, True, noise=self.noise)


@pytest.mark.parametrize("training", [True, False])
def test_controller_unroll_gradcheck(training: bool) -> None:
    """The hand-written backward pass against finite differences, in float64, for the inputs
    and every weight (fixed random draws)."""
    net = make_net(controller_size=3, inferred=2, small=True).double()
    B, T = 2, 4
    sizes = (3, 2, net.config.generator_size)
    torch.manual_seed(0)
    noise = draw_noise(B, T, sizes, 0.3, training, torch.zeros((), dtype=torch.float64))
    parts = _Parts(net, noise)
    names = [k for k, _ in parts.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in parts.named_parameters()]
    e = torch.randn(B, T, 2 * net.config.encoder_size, dtype=torch.float64, requires_grad=True)
    g0 = torch.randn(B, net.config.generator_size, dtype=torch.float64, requires_grad=True)

    def f(e: torch.Tensor, g0: torch.Tensor, *ps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.func.functional_call(parts, dict(zip(names, ps, strict=True)), (e, g0))

    assert torch.autograd.gradcheck(f, (e, g0, *params), eps=1e-6, atol=1e-6, rtol=1e-4,
                                     fast_mode=True)


# ----------------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional,with_h0,B,T,n_in,H", [
    (True, False, 8, 30, 12, 16), (False, True, 8, 17, 1, 14), (True, True, 3, 5, 4, 6),
    (False, False, 1, 1, 3, 5)])
def test_gru_sequence_matches_nn_gru(bidirectional: bool, with_h0: bool, B: int, T: int,
                                     n_in: int, H: int) -> None:
    torch.manual_seed(0)
    gru = nn.GRU(n_in, H, batch_first=True, bidirectional=bidirectional)
    x = torch.randn(B, T, n_in)
    h0 = torch.randn(2 if bidirectional else 1, B, H) if with_h0 else None
    res = []
    for fused in (False, True):
        gru.zero_grad(set_to_none=True)
        xx = x.clone().requires_grad_()
        hh = h0.clone().requires_grad_() if h0 is not None else None
        out, h_n = gru_sequence(gru, xx, hh) if fused else gru(xx, hh)
        if fused:
            assert "GRUSequence" in type(out.grad_fn).__name__  # the fused node ran
        w_o = torch.linspace(-1.0, 1.0, out.numel()).view_as(out)
        w_h = torch.linspace(1.0, -2.0, h_n.numel()).view_as(h_n)
        ((out * w_o).sum() + (h_n * w_h).sum()).backward()
        grads = {"d_x": xx.grad, **{f"d_{k}": p.grad for k, p in gru.named_parameters()}}
        if hh is not None:
            grads["d_h0"] = hh.grad
        res.append((out.detach(), h_n.detach(), out.stride(), grads))
    (o_ref, h_ref, s_ref, g_ref), (o_new, h_new, s_new, g_new) = res
    assert torch.equal(o_new, o_ref) and torch.equal(h_new, h_ref) and s_new == s_ref
    assert_close_grads(g_new, g_ref)


def test_gru_sequence_gradcheck() -> None:
    torch.manual_seed(0)
    gru = nn.GRU(3, 4, batch_first=True, bidirectional=True).double()
    names = [k for k, _ in gru.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in gru.parameters()]
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = gru

        def forward(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return gru_sequence(self.gru, x, h0)

    wrap = Wrap()

    def f(x: torch.Tensor, h0: torch.Tensor, *ps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.func.functional_call(wrap, {f"gru.{n}": p for n, p in zip(names, ps, strict=True)},
                                          (x, h0))

    assert torch.autograd.gradcheck(f, (x, h0, *params), eps=1e-6, atol=1e-6, rtol=1e-4,
                                     fast_mode=True)


def test_gru_sequence_falls_back_to_nn_gru() -> None:
    """Inference, and batches past the overhead-bound range, run nn.GRU itself."""
    gru = nn.GRU(2, 8, batch_first=True)
    big = FUSED_GRU_SMALL_MAX_BATCH_UNITS // 8 + 1
    out, _ = gru_sequence(gru, torch.randn(big, 3, 2, requires_grad=True))
    assert "GRUSequence" not in type(out.grad_fn).__name__
    out, _ = gru_sequence(gru, torch.randn(big - 1, 3, 2, requires_grad=True))
    assert "GRUSequence" in type(out.grad_fn).__name__
    with torch.no_grad():
        out, _ = gru_sequence(gru, torch.randn(2, 3, 2))
    assert out.grad_fn is None


@pytest.mark.parametrize(("batch", "units", "fused"), [
    (8, 64, True), (32, 64, True), (33, 64, False), (64, 64, False),
    (128, 32, True), (129, 32, False), (256, 16, True), (257, 16, False), (2048, 1, True),
])
def test_fused_gru_fits_the_measured_range(batch: int, units: int, fused: bool) -> None:
    """Fused up to 2048 trials x units, up to 4096 for GRUs of at most 32 units (where it
    measured faster than autograd's recording)."""
    assert fused_gru_fits(batch, units) is fused
    assert FUSED_GRU_MAX_BATCH_UNITS == 2048 and FUSED_GRU_SMALL_UNITS == 32


# ----------------------------------------------------------------------------
@pytest.mark.parametrize("controller_size", [0, 16])
def test_network_fused_matches_stepwise(controller_size: int) -> None:
    """The whole network, training mode with dropout: same outputs bit for bit with the fused
    nodes and with autograd's op-by-op recording, gradients equal up to round-off."""
    net = make_net(controller_size=controller_size, dropout=0.2)
    net.train()
    gen = torch.Generator().manual_seed(2)
    values = torch.randn(6, 15, 6, generator=gen)
    mask = torch.rand(6, 15, 6, generator=gen) < 0.4
    res = []
    try:
        for fused in (False, True):
            SequentialAutoencoder.fused_unroll = fused
            net.zero_grad(set_to_none=True)
            torch.manual_seed(11)
            out = net(values, mask)
            loss = (out.raw ** 2).mean() + 0.1 * out.kl
            loss.backward()
            grads = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
            res.append((out.raw.detach(), out.factors.detach(), out.kl.detach(), grads))
    finally:
        SequentialAutoencoder.fused_unroll = True
    (r0, f0, k0, g0), (r1, f1, k1, g1) = res
    assert torch.equal(r1, r0) and torch.equal(f1, f0)
    assert torch.allclose(k1, k0, rtol=1e-6)
    assert_close_grads({f"d_{k}": v for k, v in g1.items()}, {f"d_{k}": v for k, v in g0.items()})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_controller_unroll_on_cuda_matches_cpu() -> None:
    net = make_net()
    net.eval()
    e, g0 = torch.randn(4, 12, 20), torch.randn(4, 14)
    cpu = run_unroll(net, True, e, g0, seed=0)
    net.cuda()
    gpu = run_unroll(net, True, e.cuda(), g0.cuda(), seed=0)
    for k in ("states", "factors", "kl", "d_e", "d_g0"):
        assert torch.allclose(gpu[k].cpu(), cpu[k], rtol=1e-4, atol=1e-5), k


@pytest.mark.slow
def test_short_fit_same_numbers_as_stepwise() -> None:
    """A deterministic fit with the controller: fused and op-by-op training reach the same
    rates up to float32 round-off, and two fused fits are identical."""
    from napari_sbtt.core.lorenz_protocol import make_lorenz_spiking, mask_bandwidth
    from napari_sbtt.model import fit_trials

    d = make_lorenz_spiking(n_conditions=4, trials_per_condition=6, n_neurons=7, n_bins=20, seed=1)
    train = mask_bandwidth(d.train_counts, 4, 0)
    cfg = SBTTConfig(readin_size=12, encoder_size=12, generator_size=12, factor_size=3,
                     ic_size=8, controller_size=8, batch_size=8, max_epochs=5, patience=100,
                     num_threads=1, device="cpu")
    preds = []
    try:
        for fused in (True, False, True):
            SequentialAutoencoder.fused_unroll = fused
            model = fit_trials(train, None, config=cfg, seed=4)
            preds.append(model.predict(train))
    finally:
        SequentialAutoencoder.fused_unroll = True
    assert np.array_equal(preds[0], preds[2])
    scale = np.abs(preds[1]).max()
    assert np.abs(preds[0] - preds[1]).max() <= 1e-3 * scale
