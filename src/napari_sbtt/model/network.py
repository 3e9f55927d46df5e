"""The sequential autoencoder: read-in -> BiGRU encoder -> initial condition ->
GRU generator (optional LFADS-style controller) -> factors -> readout.

Shapes: B trials, T bins, N neurons. The network never sees NaN: inputs are
zero-filled where unobserved and a 0/1 mask channel tells it what was seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import SBTTConfig
from .likelihoods import Likelihood
from .unroll import controller_unroll, dropout_noise, gru_sequence

__all__ = ["SequentialAutoencoder", "NetworkOutput", "DYNAMICS_PREFIXES"]

#: parameter-name prefixes that form the shared dynamics (kept when adapting to another N)
DYNAMICS_PREFIXES = ("encoder.", "ic_map.", "ic_to_gen.", "generator.", "gen_cell.",
                     "controller.", "co_map.", "factor_map.")


@dataclass
class NetworkOutput:
    raw: torch.Tensor
    """readout output (B, T, N, n_params)"""
    factors: torch.Tensor
    """(B, T, factor_size)"""
    kl: torch.Tensor
    """scalar: summed KL divergence per trial, averaged over the batch (0 when nothing is variational)"""


class SequentialAutoencoder(nn.Module):
    """SBTT sequential autoencoder for ``n_neurons`` neurons and a likelihood module."""

    #: run each recurrent part (controller unroll; encoder and generator at small batches) as
    #: one autograd node with a hand-written backward pass (:mod:`.unroll`: bit-identical
    #: outputs, gradients equal up to float32 round-off; the default calcium run trains ~2.5x
    #: faster on a CPU); False records them op by op as autograd does (the reference, kept for
    #: benchmarks and checks)
    fused_unroll: bool = True

    #: where dropout masks and the variational samples are drawn from in training: None is
    #: torch's default generator (nn.Dropout's); a network trained beside others in an ensemble
    #: (:mod:`.ensemble`, in a thread or a process) gets a generator of its own, so that its fit
    #: repeats per seed
    noise: torch.Generator | None = None

    def __init__(self, n_neurons: int, config: SBTTConfig, likelihood: Likelihood) -> None:
        super().__init__()
        c = config
        self.n_neurons = n_neurons
        self.config = c
        self.likelihood = likelihood
        self.readin = nn.Linear(2 * n_neurons, c.readin_size)
        self.encoder = nn.GRU(c.readin_size, c.encoder_size, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(c.dropout)
        ic_out = 2 * c.ic_size if c.variational_ic else c.ic_size
        self.ic_map = nn.Linear(2 * c.encoder_size, ic_out)
        self.ic_to_gen = nn.Linear(c.ic_size, c.generator_size)
        self.use_controller = c.controller_size > 0
        if self.use_controller:
            # controller sees the encoder's per-bin outputs and the previous factors
            self.controller = nn.GRUCell(2 * c.encoder_size + c.factor_size, c.controller_size)
            self.co_map = nn.Linear(c.controller_size, 2 * c.inferred_input_size)
            self.gen_cell = nn.GRUCell(c.inferred_input_size, c.generator_size)
        else:
            self.generator = nn.GRU(1, c.generator_size, batch_first=True)
        self.factor_map = nn.Linear(c.generator_size, c.factor_size)
        self.readout = nn.Linear(c.factor_size, n_neurons * likelihood.n_params)

    # ------------------------------------------------------------------
    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> NetworkOutput:
        """values: (B, T, N) zero where unobserved; mask: (B, T, N) bool, True where the encoder may look."""
        B, T, N = values.shape
        x = torch.cat([values * mask, mask.to(values.dtype)], dim=-1)
        x = self.readin(x)
        # enc_out (B, T, 2E); h_n (2, B, E)
        enc_out, h_n = gru_sequence(self.encoder, x) if self.fused_unroll else self.encoder(x)
        h = self._drop(torch.cat([h_n[0], h_n[1]], dim=-1))
        ic_params = self.ic_map(h)
        kl = values.new_zeros(())
        if self.config.variational_ic:
            mean, logvar = ic_params.chunk(2, dim=-1)
            logvar = logvar.clamp(-10.0, 10.0)
            ic = mean + torch.exp(0.5 * logvar) * self._normal(mean) if self.training else mean
            kl = kl + 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
        else:
            ic = ic_params
        g0 = torch.tanh(self.ic_to_gen(self._drop(ic)))
        if self.use_controller:
            states, factors, kl_co = self._unroll_with_controller(g0, self._drop(enc_out))
            kl = kl + kl_co
        else:
            zeros = values.new_zeros(B, T, 1)
            h0 = g0.unsqueeze(0).contiguous()
            states, _ = (gru_sequence(self.generator, zeros, h0) if self.fused_unroll
                         else self.generator(zeros, h0))
            factors = self.factor_map(self._drop(states))
        raw = self.readout(factors).view(B, T, N, self.likelihood.n_params)
        return NetworkOutput(raw=raw, factors=factors, kl=kl)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout of ``x`` (nn.Dropout's, or the same distribution drawn from ``noise``)."""
        if self.noise is None or not self.training or self.drop.p == 0.0:
            return self.drop(x)
        return x * dropout_noise(x, self.drop.p, self.noise)

    def _normal(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normal draws shaped like ``like`` (from ``noise`` when set)."""
        if self.noise is None:
            return torch.randn_like(like)
        return torch.randn(like.shape, dtype=like.dtype, device=like.device, generator=self.noise)

    def _unroll_with_controller(self, g: torch.Tensor, enc_out: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Generator states (B, T, G), factors (B, T, F) and the inferred inputs' KL from the
        initial generator state g (B, G) and the (dropped-out) encoder outputs (B, T, 2E)."""
        if self.fused_unroll:
            return controller_unroll(enc_out, g, self.controller, self.co_map, self.gen_cell,
                                     self.factor_map, self.drop.p, self.training, generator=self.noise)
        return self._unroll_stepwise(g, enc_out)

    def _unroll_stepwise(self, g: torch.Tensor, enc_out: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The reference unroll, recorded by autograd op by op (same arguments and results)."""
        B, T, _ = enc_out.shape
        c = self.config
        con = enc_out.new_zeros(B, c.controller_size)
        f = self.factor_map(g)
        states, factors = [], []
        kl = enc_out.new_zeros(())
        for t in range(T):
            con = self.controller(torch.cat([enc_out[:, t], f], dim=-1), con)
            mean, logvar = self.co_map(self._drop(con)).chunk(2, dim=-1)
            logvar = logvar.clamp(-10.0, 10.0)
            u = mean + torch.exp(0.5 * logvar) * self._normal(mean) if self.training else mean
            kl = kl + 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
            g = self.gen_cell(u, g)
            f = self.factor_map(self._drop(g))
            states.append(g)
            factors.append(f)
        return torch.stack(states, 1), torch.stack(factors, 1), kl

    # ------------------------------------------------------------------
    def dynamics_state(self) -> dict[str, torch.Tensor]:
        """The parameters shared across datasets (encoder core, IC, generator, controller, factors)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(DYNAMICS_PREFIXES)}
