"""The recurrent parts of the SBTT network as single autograd nodes with hand-written backward
passes (back-propagation through time).

Why: a GRU stepped once per time bin, recorded by autograd op by op, costs several thousand
tiny operations and as many autograd nodes per batch, and on a CPU that bookkeeping, not
arithmetic, is what a training step spends its time on (the LFADS-style controller even
steps two GRU cells per bin from Python). Here each recurrent part is one autograd node:

- forward: the stock kernels that ``nn.GRU``, ``nn.GRUCell``, ``nn.Linear`` and
  ``nn.Dropout`` call, in the same order, with dropout masks drawn from the same random
  stream in the same order, only without recording; on the CPU, outputs are bit-identical
  to the modules' (on CUDA, nn.Dropout draws its masks with a fused kernel of its own, so
  the masks differ there, not their distribution);
- backward: the gate activations of all bins are recomputed at once from the saved states
  (two matrix products per cell), the gradient is carried back bin by bin (about ten small
  operations per cell and bin), and the weight gradients of all bins are formed afterwards
  in one matrix product per weight. That sums over (bin, trial) in another order than
  autograd, so gradients differ from autograd's by float32 round-off, not in the maths.

Shapes: B trials, T bins; D encoder output width (2 x encoder_size), C controller units,
I inferred inputs, G generator units, F factors, H a GRU's units.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "FUSED_GRU_MAX_BATCH_UNITS",
    "FUSED_GRU_SMALL_MAX_BATCH_UNITS",
    "FUSED_GRU_SMALL_UNITS",
    "LOGVAR_LIMIT",
    "controller_unroll",
    "draw_noise",
    "dropout_noise",
    "fused_gru_fits",
    "gru_gates",
    "gru_sequence",
]

#: clamp of the inferred inputs' log-variance
LOGVAR_LIMIT = 10.0

#: :func:`gru_sequence` replaces autograd's recording of nn.GRU only up to this many
#: trials x units per step (and up to :data:`FUSED_GRU_SMALL_MAX_BATCH_UNITS` for GRUs of at
#: most :data:`FUSED_GRU_SMALL_UNITS` units): the fused node recomputes the gates in its backward
#: pass, which pays off while a step is dominated by per-operation overhead (small batches) and
#: costs more than it saves once the arithmetic dominates. Measured on 2 CPU cores, one thread,
#: forward and backward of one GRU over 50 / 122 bins (``benchmarks/throughput.py --gru-grid``;
#: RESULTS.md, "Issue 14, sixteenth session"): up to 2048 trials x units the fused node is
#: faster in 29 of 30 cases (1.18-2.59x; one 0.96x); at 4096 both are level (0.87-1.05x), yet
#: the whole fit of the Lorenz protocol (32 units, batch 128) runs 1.13x faster per epoch with
#: its GRUs fused (fewer autograd nodes beside them); beyond 4096 the fused node is slower
#: (0.59-0.91x).
FUSED_GRU_MAX_BATCH_UNITS = 2048

#: GRUs with at most this many units are fused up to :data:`FUSED_GRU_SMALL_MAX_BATCH_UNITS`
FUSED_GRU_SMALL_UNITS = 32

#: the trials x units bound of :data:`FUSED_GRU_SMALL_UNITS`-unit (or smaller) GRUs
FUSED_GRU_SMALL_MAX_BATCH_UNITS = 4096


def fused_gru_fits(batch: int, units: int) -> bool:
    """Whether :func:`gru_sequence` fuses a GRU of ``units`` units over ``batch`` trials (where
    that measured faster than autograd's recording on a CPU; see
    :data:`FUSED_GRU_MAX_BATCH_UNITS`)."""
    size = int(batch) * int(units)
    limit = FUSED_GRU_SMALL_MAX_BATCH_UNITS if units <= FUSED_GRU_SMALL_UNITS else FUSED_GRU_MAX_BATCH_UNITS
    return size <= limit


def dropout_noise(like: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """The scaled mask that ``nn.Dropout(p)`` multiplies a tensor shaped like ``like`` with in
    training on the CPU: Bernoulli(1 - p) / (1 - p), drawn from ``generator`` (None: the
    default generator, exactly as ATen's dropout draws it)."""
    return torch.empty_like(like).bernoulli_(1.0 - p, generator=generator).div_(1.0 - p)


# ----------------------------------------------------------------------------
# GRU cell algebra shared by both nodes

def gru_gates(ig: Tensor, hg: Tensor, h_prev: Tensor) -> list[Tensor]:
    """What back-propagation through GRU steps h' = (h - n) z + n needs, for all bins at once.

    ig, hg (T, B, 3H): input and hidden pre-activations (with biases) in the order [r, z, n];
    h_prev (T, B, H): the state each step started from. Returns [k (T, B, 2, H): d z_pre / d h'
    and d n_pre / d h'; c (T, B, H): d r_pre / d n_pre; hid (T, B, 3H): [1, 1, r], which turns
    input-gate gradients into hidden-gate ones; z (T, B, H): d h / d h' directly].
    """
    H = h_prev.shape[-1]
    rz = torch.sigmoid(ig[..., :2 * H] + hg[..., :2 * H])
    r, z = rz[..., :H], rz[..., H:]
    h_n = hg[..., 2 * H:]
    n = torch.tanh(ig[..., 2 * H:] + r * h_n)
    one_z = 1.0 - z
    k = torch.stack([(h_prev - n) * z * one_z, one_z * (1.0 - n * n)], dim=2)
    c = h_n * r * (1.0 - r)
    hid = torch.ones_like(hg)
    hid[..., 2 * H:] = r
    return [k, c, hid, z.contiguous()]


class _CellViews:
    """Per-bin views of the gradient buffers of one GRU cell (made once: indexing inside the
    loop costs as much as the arithmetic)."""

    def __init__(self, d_ig: Tensor, d_hg: Tensor, gates: list[Tensor]) -> None:
        T, B, H3 = d_ig.shape
        H = H3 // 3
        self.ig, self.hg = d_ig.unbind(0), d_hg.unbind(0)
        self.ig_r = d_ig[..., :H].unbind(0)
        self.ig_zn = d_ig[..., H:].view(T, B, 2, H).unbind(0)
        self.ig_n = d_ig[..., 2 * H:].unbind(0)
        self.k, self.c = gates[0].unbind(0), gates[1].unbind(0)
        self.hid, self.z = gates[2].unbind(0), gates[3].unbind(0)

    def step(self, t: int, dh: Tensor, w_hh: Tensor) -> Tensor:
        """Back through bin t: ``dh`` is the gradient of the step's output state (B, H). Writes
        the gradients of the pre-activations of bin t and returns that of the state before."""
        torch.mul(dh.unsqueeze(1), self.k[t], out=self.ig_zn[t])
        torch.mul(self.ig_n[t], self.c[t], out=self.ig_r[t])
        torch.mul(self.ig[t], self.hid[t], out=self.hg[t])
        return torch.addmm(dh * self.z[t], self.hg[t], w_hh)


def _flat(a: Tensor) -> Tensor:
    return a.reshape(-1, a.shape[-1])


# ----------------------------------------------------------------------------
# controller + generator unroll

def draw_noise(B: int, T: int, sizes: tuple[int, int, int], p: float, training: bool,
               like: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Per-bin random draws of the unroll, in the order the op-by-op unroll makes them: dropout
    of the controller state (B, C), the inferred-input noise (B, I), dropout of the generator
    state (B, G). Returns stacks (T, B, C), (T, B, I), (T, B, G); None where nothing is drawn
    (eval mode, or dropout 0). ``generator``: where the draws come from (None: torch's default
    generator)."""
    if not training:
        return None, None, None
    C, I, G = sizes  # noqa: E741 - controller, inferred-input and generator sizes
    drop = p > 0.0
    m1: list[Tensor] = []
    eps: list[Tensor] = []
    m2: list[Tensor] = []
    c_like = like.new_empty(B, C)
    g_like = like.new_empty(B, G)
    for _ in range(T):
        if drop:
            m1.append(dropout_noise(c_like, p, generator))
        eps.append(torch.randn(B, I, dtype=like.dtype, device=like.device, generator=generator))
        if drop:
            m2.append(dropout_noise(g_like, p, generator))
    return ((torch.stack(m1) if drop else None), torch.stack(eps),
            (torch.stack(m2) if drop else None))


def _unroll_forward(e: Tensor, g0: Tensor, m1: Tensor | None, eps: Tensor | None,
                    m2: Tensor | None, p: list[Tensor], save: bool) -> list[Tensor]:
    """The unroll with the kernels nn.GRUCell / nn.Linear / nn.Dropout call, in their order.

    Returns [states (B, T, G), factors (B, T, F), co (T, B, 2I)] and, with ``save``, stacked
    over bins (T, B, .): controller inputs, controller states, dropped controller states,
    inferred inputs, generator states, dropped generator states.
    """
    wc_ih, wc_hh, bc_ih, bc_hh, w_co, b_co, wg_ih, wg_hh, bg_ih, bg_hh, w_f, b_f = p
    B, T = e.shape[0], e.shape[1]
    w_co_t, w_f_t = w_co.t(), w_f.t()
    es = e.transpose(0, 1).contiguous().unbind(0)
    m1s = m1.unbind(0) if m1 is not None else es
    epss = eps.unbind(0) if eps is not None else es
    m2s = m2.unbind(0) if m2 is not None else es
    con = e.new_zeros(B, wc_hh.shape[1])
    g = g0
    f = torch.addmm(b_f, g, w_f_t)
    xs, cons, cds, cos, us, gs, gds, fs = [], [], [], [], [], [], [], []
    for t in range(T):
        x = torch.cat([es[t], f], dim=-1)
        con = torch.gru_cell(x, con, wc_ih, wc_hh, bc_ih, bc_hh)
        cd = con * m1s[t] if m1 is not None else con
        co = torch.addmm(b_co, cd, w_co_t)
        mean, logvar = co.chunk(2, dim=-1)
        if eps is not None:
            logvar = logvar.clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT)
            u = mean + torch.exp(0.5 * logvar) * epss[t]
        else:
            u = mean
        g = torch.gru_cell(u, g, wg_ih, wg_hh, bg_ih, bg_hh)
        gd = g * m2s[t] if m2 is not None else g
        f = torch.addmm(b_f, gd, w_f_t)
        cos.append(co)
        gs.append(g)
        fs.append(f)
        if save:
            xs.append(x)
            cons.append(con)
            cds.append(cd)
            us.append(u)
            gds.append(gd)
    out = [torch.stack(gs, 1), torch.stack(fs, 1), torch.stack(cos)]
    if save:
        out += [torch.stack(v) for v in (xs, cons, cds, us, gs, gds)]
    return out


def _kl(co: Tensor, B: int) -> Tensor:
    """KL divergence of the inferred inputs' posteriors N(mean, exp(logvar)) from N(0, 1),
    summed over inputs and bins, averaged over trials; co (T, B, 2I)."""
    mean, logvar = co.chunk(2, dim=-1)
    lv = logvar.clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT)
    return (0.5 * (mean.pow(2) + lv.exp() - 1.0 - lv)).sum() / B


class _ControllerUnroll(torch.autograd.Function):
    """Autograd node of the whole unroll; see :func:`controller_unroll`."""

    @staticmethod
    def forward(ctx: Any, e: Tensor, g0: Tensor, m1: Tensor | None, eps: Tensor | None,
                m2: Tensor | None, *p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ctx.set_materialize_grads(False)
        out = _unroll_forward(e, g0, m1, eps, m2, list(p), save=True)
        ctx.save_for_backward(e, g0, m1, eps, m2, *p, *out[2:])
        return out[0], out[1], _kl(out[2], e.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, d_states: Tensor | None, d_factors: Tensor | None,
                 d_kl: Tensor | None) -> tuple[Tensor | None, ...]:
        e, g0, m1, eps, m2 = ctx.saved_tensors[:5]
        p = ctx.saved_tensors[5:17]
        co, xs, cons, cds, us, gs, gds = ctx.saved_tensors[17:]
        wc_ih, wc_hh, bc_ih, bc_hh, w_co, _b_co, wg_ih, wg_hh, bg_ih, bg_hh, w_f, _b_f = p
        B, T, D = e.shape
        C, G, Fs, I = wc_hh.shape[1], wg_hh.shape[1], w_f.shape[0], w_co.shape[0] // 2  # noqa: E741
        # states each step started from, and the gates of all bins
        con_prev = torch.cat([cons.new_zeros(1, B, C), cons[:-1]])
        g_prev = torch.cat([g0.unsqueeze(0), gs[:-1]])
        gates_c = gru_gates(F.linear(xs, wc_ih, bc_ih), F.linear(con_prev, wc_hh, bc_hh), con_prev)
        gates_g = gru_gates(F.linear(us, wg_ih, bg_ih), F.linear(g_prev, wg_hh, bg_hh), g_prev)
        # co = [mean, logvar]: d co / d u (u = mean + exp(logvar / 2) eps in training, u = mean
        # in eval mode) and the KL's gradient (summed over bins and inputs, mean over trials)
        mean, logvar = co.chunk(2, dim=-1)
        lv = logvar.clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT)
        inside = ((logvar >= -LOGVAR_LIMIT) & (logvar <= LOGVAR_LIMIT)).to(co.dtype)
        per_u = torch.ones_like(co)
        per_u[..., I:] = 0.5 * torch.exp(0.5 * lv) * eps * inside if eps is not None else 0.0
        if d_kl is not None:
            kl_part = torch.cat([mean, 0.5 * (lv.exp() - 1.0) * inside], dim=-1) * (d_kl / B)
        else:
            kl_part = torch.zeros_like(co)
        d_ig_c, d_hg_c = e.new_empty(T, B, 3 * C), e.new_empty(T, B, 3 * C)
        d_ig_g, d_hg_g = e.new_empty(T, B, 3 * G), e.new_empty(T, B, 3 * G)
        d_co, d_f_all = e.new_empty(T, B, 2, I), e.new_empty(T, B, Fs)
        cc, cg = _CellViews(d_ig_c, d_hg_c, gates_c), _CellViews(d_ig_g, d_hg_g, gates_g)
        pus, kls = per_u.view(T, B, 2, I).unbind(0), kl_part.view(T, B, 2, I).unbind(0)
        dcos, dfs = d_co.unbind(0), d_f_all.unbind(0)
        dfac = d_factors.unbind(1) if d_factors is not None else None
        dsts = d_states.unbind(1) if d_states is not None else None
        m1s = m1.unbind(0) if m1 is not None else None
        m2s = m2.unbind(0) if m2 is not None else None
        wc_f = wc_ih[:, D:].contiguous()
        dg, dcon, df = e.new_zeros(B, G), e.new_zeros(B, C), e.new_zeros(B, Fs)
        for t in range(T - 1, -1, -1):
            # f_t = factor_map(drop(g_t)) feeds the output and the controller's next step
            if dfac is not None:
                torch.add(dfac[t], df, out=dfs[t])
            else:
                dfs[t].copy_(df)
            dgd = dfs[t].mm(w_f)
            dg = torch.addcmul(dg, dgd, m2s[t]) if m2s is not None else dg + dgd
            if dsts is not None:
                dg = dg + dsts[t]
            dg = cg.step(t, dg, wg_hh)
            du = cg.ig[t].mm(wg_ih)
            torch.addcmul(kls[t], pus[t], du.unsqueeze(1), out=dcos[t])
            dcd = dcos[t].view(B, 2 * I).mm(w_co)
            dcon = torch.addcmul(dcon, dcd, m1s[t]) if m1s is not None else dcon + dcd
            dcon = cc.step(t, dcon, wc_hh)
            df = cc.ig[t].mm(wc_f)
        # df is now the gradient of f_{-1} = factor_map(g0), the controller's first input
        need = ctx.needs_input_grad
        grads: list[Tensor | None] = [None] * 17
        ic, hc, ig, hg = _flat(d_ig_c), _flat(d_hg_c), _flat(d_ig_g), _flat(d_hg_g)
        fco, ff = d_co.view(T * B, 2 * I), _flat(d_f_all)
        if need[0]:
            grads[0] = ic.mm(wc_ih[:, :D]).view(T, B, D).transpose(0, 1)
        if need[1]:
            grads[1] = dg + df.mm(w_f)
        for i, dpre, inputs in ((5, ic, xs), (6, hc, con_prev), (9, fco, cds), (11, ig, us),
                                (12, hg, g_prev)):
            if need[i]:
                grads[i] = dpre.t().mm(_flat(inputs))
        for i, dpre in ((7, ic), (8, hc), (10, fco), (13, ig), (14, hg)):
            if need[i]:
                grads[i] = dpre.sum(0)
        if need[15]:
            grads[15] = ff.t().mm(_flat(gds)) + df.t().mm(g0)
        if need[16]:
            grads[16] = ff.sum(0) + df.sum(0)
        return tuple(grads)


def controller_unroll(e: Tensor, g0: Tensor, controller: nn.GRUCell, co_map: nn.Linear,
                      gen_cell: nn.GRUCell, factor_map: nn.Linear, dropout: float, training: bool,
                      noise: tuple[Tensor | None, Tensor | None, Tensor | None] | None = None,
                      generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Run controller and generator over T bins.

    e: (B, T, D) the (dropped-out) encoder outputs the controller reads; g0: (B, G) the
    generator's initial state. Per bin the controller reads [e_t, f_{t-1}] (f_{-1} = the
    factors of g0), its dropped-out state gives the mean and log-variance of the inferred
    input u_t (sampled in training, the mean in eval mode), the generator steps on u_t and the
    factors are read off its dropped-out state. Returns the generator states (B, T, G), the
    factors (B, T, F) and the inferred inputs' KL divergence from N(0, 1), summed over inputs
    and bins and averaged over trials (a scalar).

    ``noise``: the random draws to use, as :func:`draw_noise` returns them, instead of drawing
    them here (``dropout`` and ``training`` are then ignored); ``generator``: where they are drawn
    from otherwise (None: torch's default generator).
    """
    B, T, _ = e.shape
    sizes = (controller.hidden_size, co_map.out_features // 2, gen_cell.hidden_size)
    if noise is None:
        noise = draw_noise(B, T, sizes, float(dropout), training, e, generator)
    m1, eps, m2 = noise
    params = [controller.weight_ih, controller.weight_hh, controller.bias_ih, controller.bias_hh,
              co_map.weight, co_map.bias, gen_cell.weight_ih, gen_cell.weight_hh,
              gen_cell.bias_ih, gen_cell.bias_hh, factor_map.weight, factor_map.bias]
    if any(t is None for t in params):
        raise ValueError("controller_unroll needs GRU cells and linear maps with biases")
    if not (torch.is_grad_enabled() and (e.requires_grad or g0.requires_grad
                                         or any(w.requires_grad for w in params))):
        out = _unroll_forward(e, g0, m1, eps, m2, params, save=False)
        return out[0], out[1], _kl(out[2], B)
    return _ControllerUnroll.apply(e, g0, m1, eps, m2, *params)


# ----------------------------------------------------------------------------
# nn.GRU (one layer, batch_first, with biases, one or two directions)

class _GRUSequence(torch.autograd.Function):
    """Autograd node of a one-layer GRU over a whole sequence; see :func:`gru_sequence`."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, h0: Tensor, *weights: Tensor) -> tuple[Tensor, Tensor]:
        n_dir = len(weights) // 4
        out, h_n = torch.gru(x, h0, list(weights), True, 1, 0.0, True, n_dir == 2, True)
        ctx.save_for_backward(x, h0, out, *weights)
        ctx.set_materialize_grads(False)
        return out, h_n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, d_out: Tensor | None, d_hn: Tensor | None
                 ) -> tuple[Tensor | None, ...]:
        x, h0, out = ctx.saved_tensors[:3]
        weights = ctx.saved_tensors[3:]
        n_dir = len(weights) // 4
        B, T, In = x.shape
        H = h0.shape[-1]
        need = ctx.needs_input_grad
        grads: list[Tensor | None] = [None] * (2 + len(weights))
        xt = x.transpose(0, 1)  # (T, B, In)
        outs = out.transpose(0, 1)  # (T, B, n_dir * H)
        dx: Tensor | None = None
        dh0: list[Tensor] = []
        for k in range(n_dir):
            w_ih, w_hh, b_ih, b_hh = weights[4 * k:4 * k + 4]
            hs = outs[..., k * H:(k + 1) * H]
            start = h0[k].unsqueeze(0)
            prev = torch.cat([start, hs[:-1]]) if k == 0 else torch.cat([hs[1:], start])
            gates = gru_gates(F.linear(xt, w_ih, b_ih), F.linear(prev, w_hh, b_hh), prev)
            d_ig, d_hg = x.new_empty(T, B, 3 * H), x.new_empty(T, B, 3 * H)
            cell = _CellViews(d_ig, d_hg, gates)
            d_o = (d_out.transpose(0, 1)[..., k * H:(k + 1) * H].unbind(0)
                   if d_out is not None else None)
            dh = d_hn[k] if d_hn is not None else x.new_zeros(B, H)
            for t in (range(T - 1, -1, -1) if k == 0 else range(T)):
                if d_o is not None:
                    dh = dh + d_o[t]
                dh = cell.step(t, dh, w_hh)
            dh0.append(dh)
            ig, hg = _flat(d_ig), _flat(d_hg)
            if need[0]:
                part = ig.mm(w_ih)
                dx = part if dx is None else dx.add_(part)
            base = 2 + 4 * k
            if need[base]:
                grads[base] = ig.t().mm(_flat(xt))
            if need[base + 1]:
                grads[base + 1] = hg.t().mm(_flat(prev))
            if need[base + 2]:
                grads[base + 2] = ig.sum(0)
            if need[base + 3]:
                grads[base + 3] = hg.sum(0)
        if need[0] and dx is not None:
            grads[0] = dx.view(T, B, In).transpose(0, 1)
        if need[1]:
            grads[1] = torch.stack(dh0, 0)
        return tuple(grads)


def gru_sequence(gru: nn.GRU, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``gru(x, h0)``: output (B, T, D*H) and final states (D, B, H) for x (B, T, In) and h0
    (D, B, H) (None: zeros), D = 2 for a bidirectional GRU.

    For a one-layer, batch_first GRU with biases on the CPU, with gradients needed and at
    most as many trials x units as :func:`fused_gru_fits` allows, the whole sequence is one autograd
    node with a hand-written backward pass (outputs bit-identical to nn.GRU's, gradients equal
    up to float32 round-off); otherwise (inference; larger batches; CUDA, whose cuDNN kernels
    are fused already; other GRUs) nn.GRU itself runs.
    """
    n_dir = 2 if gru.bidirectional else 1
    suffixes = ("_l0", "_l0_reverse")[:n_dir]
    weights = ([getattr(gru, f"{kind}{sfx}") for sfx in suffixes
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")] if gru.bias else [])
    fused = (x.device.type == "cpu" and gru.num_layers == 1 and gru.batch_first and gru.bias
             and getattr(gru, "proj_size", 0) == 0 and x.dim() == 3
             and fused_gru_fits(x.shape[0], gru.hidden_size)
             and torch.is_grad_enabled()
             and (x.requires_grad or (h0 is not None and h0.requires_grad)
                  or any(w.requires_grad for w in weights)))
    if not fused:
        return gru(x, h0)
    if h0 is None:
        h0 = x.new_zeros(n_dir, x.shape[0], gru.hidden_size)
    return _GRUSequence.apply(x, h0, *weights)
