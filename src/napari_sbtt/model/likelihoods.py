"""Observation models as small modules that return PER-ELEMENT losses.

Every likelihood turns the readout's raw output ``raw`` of shape
(batch, T, N, n_params) into distribution parameters and scores targets of
shape (batch, T, N). The loss is returned per element, so the caller applies
the SBTT mask (only observed neuron-bins count). Targets at unobserved entries
must already be replaced by a harmless value (:attr:`Likelihood.fill_value`),
which keeps both the loss and its gradients finite and exactly zero there
once masked with ``torch.where``.

Units: the likelihood works in *model units*. :class:`Normaliser` maps data
units to model units (per-neuron standardisation for Gaussian and calcium
data, identity for counts and events) and back.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "Likelihood",
    "PoissonLikelihood",
    "GaussianLikelihood",
    "ZIGLikelihood",
    "CalciumLikelihood",
    "Normaliser",
    "make_likelihood",
]

_LOG_2PI = math.log(2.0 * math.pi)


class Normaliser:
    """Per-neuron affine map between data units and model units: ``model = (data - offset) / scale``.

    offset, scale: float64 arrays of shape (N,).
    """

    def __init__(self, offset: np.ndarray, scale: np.ndarray) -> None:
        self.offset = np.asarray(offset, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)

    @classmethod
    def identity(cls, n: int) -> "Normaliser":
        return cls(np.zeros(n), np.ones(n))

    @classmethod
    def standardise(cls, data: np.ndarray) -> "Normaliser":
        """Mean and standard deviation of the observed (non-NaN) values of each neuron."""
        flat = data.reshape(-1, data.shape[-1])
        mu = np.nanmean(flat, axis=0)
        sd = np.nanstd(flat, axis=0)
        bad = ~np.isfinite(sd) | (sd <= 1e-12)
        sd[bad] = 1.0
        mu[~np.isfinite(mu)] = 0.0
        return cls(mu, sd)

    def to_model(self, data: np.ndarray) -> np.ndarray:
        return (data - self.offset) / self.scale

    def to_data(self, values: np.ndarray) -> np.ndarray:
        return values * self.scale + self.offset

    def to_dict(self) -> dict[str, list[float]]:
        return {"offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> "Normaliser":
        return cls(np.asarray(d["offset"], dtype=np.float64), np.asarray(d["scale"], dtype=np.float64))


class Likelihood(nn.Module):
    """Base class. Subclasses set ``n_params`` and implement the methods below."""

    name: str = ""
    n_params: int = 1
    #: value written into unobserved target entries before the loss is computed
    fill_value: float = 0.0

    def __init__(self, n_neurons: int) -> None:
        super().__init__()
        self.n_neurons = n_neurons

    def nll(self, raw: torch.Tensor, target: torch.Tensor,
            visible: torch.Tensor | None = None) -> torch.Tensor:
        """Negative log-likelihood per element. raw: (B, T, N, n_params); target: (B, T, N);
        visible: (B, T, N) bool, the entries the encoder saw (a likelihood with per-window
        nuisance terms fits them to those; the others ignore it)."""
        raise NotImplementedError

    def rates(self, raw: torch.Tensor) -> torch.Tensor:
        """Inferred activity in model units, (B, T, N)."""
        raise NotImplementedError

    def signal(self, raw: torch.Tensor, target: torch.Tensor | None = None,
               visible: torch.Tensor | None = None) -> torch.Tensor:
        """Expected observation in model units, (B, T, N); ``target`` / ``visible`` as in
        :meth:`nll` (used by the calcium likelihood's fitted initial calcium only)."""
        return self.rates(raw)

    def init_readout_bias(self, bias: torch.Tensor, target_model_units: np.ndarray,
                          columns: slice = slice(None)) -> None:
        """Initialise the readout bias (N * n_params,) (and per-neuron parameters) from training
        data in model units (NaN = missing), (..., n) for the n neurons ``columns`` (default: all
        N). Each neuron's start depends on its own column only, so neurons can be initialised a
        block at a time."""

    @staticmethod
    def validate_data(data: np.ndarray, what: str) -> None:
        """Raise ValueError if observed values are impossible for this likelihood."""

    def rate_to_data(self, rates: np.ndarray, norm: Normaliser) -> np.ndarray:
        """Map model-unit rates to data units."""
        return norm.to_data(rates)


# ----------------------------------------------------------------------------
class PoissonLikelihood(Likelihood):
    """Poisson counts; one parameter per neuron: the log-rate (expected count per bin)."""

    name = "poisson"
    n_params = 1

    def nll(self, raw: torch.Tensor, target: torch.Tensor,
            visible: torch.Tensor | None = None) -> torch.Tensor:
        log_rate = raw[..., 0]
        return torch.exp(log_rate) - target * log_rate + torch.lgamma(target + 1.0)

    def rates(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.exp(raw[..., 0])

    def init_readout_bias(self, bias: torch.Tensor, target_model_units: np.ndarray,
                          columns: slice = slice(None)) -> None:
        n = len(range(self.n_neurons)[columns])
        mean = np.nanmean(target_model_units.reshape(-1, n), axis=0)
        mean = np.where(np.isfinite(mean), mean, 1.0)
        with torch.no_grad():
            bias[columns].copy_(torch.as_tensor(np.log(np.maximum(mean, 1e-3)), dtype=bias.dtype))

    @staticmethod
    def validate_data(data: np.ndarray, what: str) -> None:
        obs = data[np.isfinite(data)]
        if obs.size and obs.min() < 0:
            raise ValueError(
                f"{what} has negative values (min {obs.min():g}); the Poisson likelihood needs "
                "counts >= 0. Use likelihood='gaussian' for dF/F or 'calcium' for fluorescence")

    def rate_to_data(self, rates: np.ndarray, norm: Normaliser) -> np.ndarray:
        return rates  # counts are not normalised


# ----------------------------------------------------------------------------
class GaussianLikelihood(Likelihood):
    """Gaussian with a per-neuron learned noise level; data standardised per neuron.

    One readout parameter per neuron: the mean (standardised units).
    """

    name = "gaussian"
    n_params = 1

    def __init__(self, n_neurons: int, min_std: float = 1e-3) -> None:
        super().__init__(n_neurons)
        self.min_std = float(min_std)
        # softplus^-1(0.5): start at half the data standard deviation
        self.raw_std = nn.Parameter(torch.full((n_neurons,), math.log(math.expm1(0.5))))

    def std(self) -> torch.Tensor:
        return F.softplus(self.raw_std) + self.min_std

    def nll(self, raw: torch.Tensor, target: torch.Tensor,
            visible: torch.Tensor | None = None) -> torch.Tensor:
        mean = raw[..., 0]
        sd = self.std()
        z = (target - mean) / sd
        return 0.5 * _LOG_2PI + torch.log(sd) + 0.5 * z * z

    def rates(self, raw: torch.Tensor) -> torch.Tensor:
        return raw[..., 0]


# ----------------------------------------------------------------------------
class ZIGLikelihood(Likelihood):
    """Zero-inflated gamma for deconvolved events (RADICaL).

    With event probability q, an observation is 0 with probability 1 - q and
    otherwise ``s_min + Gamma(shape=k, scale=theta)``. Values <= s_min count as
    "no event". Three readout parameters per neuron: logit q, log k, log theta.
    Inferred rate = expected value q * (s_min + k * theta), in data units.
    """

    name = "zig"
    n_params = 3

    def __init__(self, n_neurons: int, min_event: float = 0.1) -> None:
        super().__init__(n_neurons)
        self.min_event = float(min_event)

    def _params(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logit_q = raw[..., 0]
        log_k = raw[..., 1].clamp(-7.0, 7.0)
        log_theta = raw[..., 2].clamp(-10.0, 10.0)
        return logit_q, log_k, log_theta

    def nll(self, raw: torch.Tensor, target: torch.Tensor,
            visible: torch.Tensor | None = None) -> torch.Tensor:
        logit_q, log_k, log_theta = self._params(raw)
        is_event = target > self.min_event
        # excess over s_min; a harmless 1.0 where there is no event keeps log() finite
        excess = torch.where(is_event, target - self.min_event, torch.ones_like(target))
        k = torch.exp(log_k)
        log_gamma_pdf = ((k - 1.0) * torch.log(excess) - excess * torch.exp(-log_theta)
                         - torch.lgamma(k) - k * log_theta)
        nll_event = F.softplus(-logit_q) - log_gamma_pdf  # -log q - log pdf
        nll_zero = F.softplus(logit_q)  # -log(1 - q)
        return torch.where(is_event, nll_event, nll_zero)

    def rates(self, raw: torch.Tensor) -> torch.Tensor:
        logit_q, log_k, log_theta = self._params(raw)
        return torch.sigmoid(logit_q) * (self.min_event + torch.exp(log_k + log_theta))

    def init_readout_bias(self, bias: torch.Tensor, target_model_units: np.ndarray,
                          columns: slice = slice(None)) -> None:
        flat = target_model_units.reshape(-1, len(range(self.n_neurons)[columns]))
        obs = np.isfinite(flat)
        ev = obs & (np.nan_to_num(flat) > self.min_event)
        q = (ev.sum(0) + 1.0) / (obs.sum(0) + 2.0)
        excess = np.where(ev, np.nan_to_num(flat) - self.min_event, np.nan)
        with np.errstate(all="ignore"):
            m = np.nanmean(excess, axis=0)
        m = np.where(np.isfinite(m) & (m > 0), m, 1.0)
        b = np.stack([np.log(q / (1 - q)), np.zeros_like(q), np.log(m)], axis=1)
        with torch.no_grad():
            bias.view(self.n_neurons, self.n_params)[columns].copy_(torch.as_tensor(b, dtype=bias.dtype))

    @staticmethod
    def validate_data(data: np.ndarray, what: str) -> None:
        obs = data[np.isfinite(data)]
        if obs.size and obs.min() < 0:
            raise ValueError(
                f"{what} has negative values (min {obs.min():g}); the zero-inflated gamma "
                "likelihood needs deconvolved events >= 0")

    def rate_to_data(self, rates: np.ndarray, norm: Normaliser) -> np.ndarray:
        return rates  # events are not normalised


# ----------------------------------------------------------------------------
#: bounds of a learned calcium time constant, log(bins): 0.05 to ~1e5 bins
_LOG_TAU_MIN, _LOG_TAU_MAX = math.log(0.05), math.log(1e5)
#: the rise time constant stays below this share of the decay (the kernel's poles stay distinct)
_MAX_RISE_SHARE = 0.9


#: calcium parameters of checkpoints written before the log time constants, and their new names
_LEGACY_CALCIUM = {"decay_logit": "log_tau_decay", "rise_logit": "log_tau_rise"}
LEGACY_CALCIUM_KEYS = tuple(_LEGACY_CALCIUM)


def rename_legacy_calcium_key(key: str) -> str:
    """A state-dict key with a legacy calcium parameter name replaced by today's (others unchanged)."""
    for old, new in _LEGACY_CALCIUM.items():
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def calcium_state_from_logits(state: dict) -> dict:
    """Convert a calcium likelihood's pole logits (``decay_logit``, ``rise_logit``: per-bin poles
    through a sigmoid, in checkpoints written before the log time constants) to log time
    constants in bins (``log_tau_decay``, ``log_tau_rise``)."""
    out = {}
    for key, value in state.items():
        new = rename_legacy_calcium_key(key)
        if new != key:
            pole = torch.sigmoid(value.double())
            value = (-1.0 / torch.log(pole)).log().float()
        out[new] = value
    return out


class CalciumLikelihood(Likelihood):
    """Calcium forward model with Gaussian noise (deconvolution inside the model).

    latent rate  lambda_t = softplus(raw) >= 0           (model units per bin)
    calcium      c_t = sum_i gamma_i c_{t-i} + lambda_t   (AR(1) or AR(2), per-ROI decay)
    fluorescence F_t = baseline + gain * c_t + noise,  noise ~ N(0, sigma^2) per ROI

    Fluorescence is standardised per ROI (model units). AR(2) uses the two-pole
    form (1 - d z^-1)(1 - r z^-1) with decay pole d and rise pole r in (0, 1), so
    gamma_1 = d + r, gamma_2 = -d r. ``kernel="double_exponential"`` replaces the AR impulse
    response by the indicator's transient averaged over the spike's time inside its bin (the
    shape ``core.indicators.Indicator.kernel`` simulates; decay and rise poles learned), and
    ``delay_bins`` moves either kernel later by an onset delay. Both keep the rates on the
    spikes when the fluorescence rises slowly; the AR(1) kernel puts the activity where the
    fluorescence rises instead (1-2 bins late for GCaMP6f at 60 Hz).
    With ``initial_state`` (default) a second readout channel at the first bin gives the
    calcium c_0 >= 0 left over from activity before the trial (a window cut from a continuous
    recording starts mid-transient), which adds
    c_0 d^t; without it calcium starts at 0 and the rates must explain the leftover
    calcium with a burst at the window start. With ``initial_fit`` c_0 is instead fitted per
    trial and ROI to the entries the encoder saw (:meth:`fitted_initial_calcium`), wherever
    :meth:`nll` / :meth:`signal` are given them (training, validation, held-out predictions).
    ``rates`` returns lambda * gain: the fluorescence jump (model units) that a
    bin's activity adds before it decays (for the double exponential, the jump of the AR(1)
    kernel with the same area, i.e. the same integrated fluorescence); :meth:`rate_to_data`
    turns it into data units (multiplies by the per-ROI data scale).
    """

    name = "calcium"
    n_params = 1

    def __init__(self, n_neurons: int, ar_order: int = 1, decay_bins: float = 10.0,
                 rise_bins: float = 1.0, min_std: float = 1e-3, initial_state: bool = True,
                 delay_bins: float = 0.0, kernel: str = "ar", initial_fit: bool = False) -> None:
        super().__init__(n_neurons)
        #: fit each trial's initial calcium to the entries the encoder saw (signal / nll given them)
        self.initial_fit = bool(initial_fit)
        if ar_order not in (1, 2):
            raise ValueError(f"calcium AR order must be 1 or 2, got {ar_order}")
        if kernel not in ("ar", "double_exponential"):
            raise ValueError(f"calcium kernel must be 'ar' or 'double_exponential', got {kernel!r}")
        self.kernel_shape = kernel
        # the double exponential always has a rise pole
        self.ar_order = 2 if kernel == "double_exponential" else ar_order
        self.min_std = float(min_std)
        self.initial_state = bool(initial_state)
        # second readout channel: the calcium already present at the first bin of a trial
        self.n_params = 2 if self.initial_state else 1
        self.decay_bins0 = float(max(decay_bins, 1e-3))
        if not (math.isfinite(delay_bins) and delay_bins >= 0):
            raise ValueError(f"calcium onset delay must be >= 0 bins, got {delay_bins}")
        self.delay_bins = float(delay_bins)
        d = math.exp(-1.0 / self.decay_bins0)
        # time constants are learned as log(tau in bins): a step changes tau by a share of itself,
        # so a decay several times the initial one is reachable (a pole's logit saturates there)
        self.log_tau_decay = nn.Parameter(torch.full((n_neurons,), math.log(self.decay_bins0)))
        if self.ar_order == 2:
            rise0 = min(max(rise_bins, 1e-3), _MAX_RISE_SHARE * self.decay_bins0)
            self.log_tau_rise = nn.Parameter(torch.full((n_neurons,), math.log(rise0)))
        # gain chosen so that a unit rate gives calcium ~ 1 / (1 - d); start small
        self.log_gain = nn.Parameter(torch.full((n_neurons,), math.log(1.0 - d)))
        self.baseline = nn.Parameter(torch.full((n_neurons,), -0.5))
        self.raw_std = nn.Parameter(torch.full((n_neurons,), math.log(math.expm1(0.5))))

    # -- kernel --
    def tau_decay(self) -> torch.Tensor:
        """(N,) decay time constants in bins."""
        return torch.exp(self.log_tau_decay.clamp(_LOG_TAU_MIN, _LOG_TAU_MAX))

    def tau_rise(self, tau_decay: torch.Tensor | None = None) -> torch.Tensor:
        """(N,) rise time constants in bins, kept below ``_MAX_RISE_SHARE`` of the decay
        (``tau_decay``, bins; default :meth:`tau_decay`)."""
        tau = torch.exp(self.log_tau_rise.clamp(_LOG_TAU_MIN, _LOG_TAU_MAX))
        return torch.minimum(tau, _MAX_RISE_SHARE * (self.tau_decay() if tau_decay is None else tau_decay))

    def decay_pole(self) -> torch.Tensor:
        """(N,) per-bin decay factor d = exp(-1 / tau_decay)."""
        return torch.exp(-1.0 / self.tau_decay())

    def rise_pole(self) -> torch.Tensor:
        """(N,) per-bin rise factor r = exp(-1 / tau_rise)."""
        return torch.exp(-1.0 / self.tau_rise())

    def ar_coefficients(self) -> torch.Tensor:
        """(N, ar_order) AR coefficients gamma_i."""
        d = self.decay_pole()
        if self.ar_order == 1:
            return d[:, None]
        r = self.rise_pole()
        return torch.stack([d + r, -d * r], dim=1)

    def time_constants(self, decay_scale: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(decay, rise) time constants in bins, each (N,), or (M,) with ``decay_scale`` (M,):
        each ROI's decay time multiplied by the factors (an N = 1 likelihood gives M, one per
        factor; otherwise M must be N), the rise kept below ``_MAX_RISE_SHARE`` of the new decay.
        The rise is None for an AR(1) kernel."""
        tau_d = self.tau_decay()
        if decay_scale is not None:
            tau_d = tau_d * decay_scale.to(tau_d.dtype)
        return tau_d, (self.tau_rise(tau_d) if self.ar_order == 2 else None)

    def poles(self, decay_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(decay pole d, rise pole r) of :meth:`time_constants` (``r`` is ``d`` for an AR(1)
        kernel, which does not use it)."""
        tau_d, tau_r = self.time_constants(decay_scale)
        d = torch.exp(-1.0 / tau_d)
        return d, (d if tau_r is None else torch.exp(-1.0 / tau_r))

    def kernel(self, length: int, decay_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Impulse response (N, length) of the calcium kernel (the AR filter's, h_0 = 1, or the
        binned double exponential), moved ``delay_bins`` later (a fractional delay interpolates
        linearly between shifts). ``decay_scale``: (M,) factors on the decay time (:meth:`poles`);
        the kernels are then (M, length)."""
        d, r = self.poles(decay_scale)
        shape = self._double_exponential if self.kernel_shape == "double_exponential" else self._ar_kernel
        if self.delay_bins <= 0:
            return shape(length, d, r)
        whole = int(math.floor(self.delay_bins))
        frac = self.delay_bins - whole
        h = shape(max(length - whole, 1), d, r)
        pad = torch.zeros(h.shape[0], whole + 1, dtype=h.dtype, device=h.device)
        h = torch.cat([pad, h], dim=1)  # h shifted by whole + 1 bins, from index 0
        return ((1.0 - frac) * h[:, 1:] + frac * h[:, :-1])[:, :length]

    @staticmethod
    def _double_exponential(length: int, d: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Bin-averaged difference of exponentials (N, length) of the decay poles ``d`` and rise
        poles ``r`` (N,), scaled to the AR(1) kernel's area.

        Per exponential with pole p = exp(-1 / tau) (tau in bins): the response at lag k averaged
        over a spike time uniform in its bin, sampled at bin centres, is
        K_0 = tau (1 - p^(1/2)) and K_k = tau (p^(1/2) - p^(3/2)) p^(k-1) for k >= 1
        (``core.indicators.Indicator.kernel`` with one decay), whose lags sum to tau. The kernel
        is the decay's K minus the rise's K divided by (tau_d - tau_r) (1 - d), so its area is
        the AR(1) kernel's 1 / (1 - d): a unit rate means the same calcium with either kernel.
        """
        k = torch.arange(length, dtype=d.dtype, device=d.device)

        def binned(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """(K (N, length), tau (N,)) of the exponential with pole p (N,)."""
            log_p = torch.log(p)
            tau = -1.0 / log_p
            sq = torch.sqrt(p)
            K = (tau * (sq - sq * p))[:, None] * torch.exp((k - 1.0).clamp(min=0.0)[None, :]
                                                           * log_p[:, None])
            K[:, 0] = tau * (1.0 - sq)
            return K, tau

        K_d, tau_d = binned(d)
        K_r, tau_r = binned(r)
        return (K_d - K_r) / ((tau_d - tau_r) * (1.0 - d))[:, None]

    def _ar_kernel(self, length: int, d: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Impulse response h (N, length) of the AR filter of decay poles ``d`` (and rise poles
        ``r`` for AR(2)), h_0 = 1."""
        t = torch.arange(length, dtype=d.dtype, device=d.device)
        if self.ar_order == 1:
            return torch.exp(t[None, :] * torch.log(d)[:, None])
        # h_t = sum_{j=0}^t d^j r^(t-j), computed by recursion on the AR(2) equation
        g1, g2 = d + r, -d * r
        hs = [torch.ones_like(d), g1]
        for _ in range(2, length):
            hs.append(g1 * hs[-1] + g2 * hs[-2])
        return torch.stack(hs[:length], dim=1)

    def calcium(self, lam: torch.Tensor) -> torch.Tensor:
        """Causal AR filtering of lam (B, T, N) -> calcium (B, T, N) by FFT convolution."""
        T = lam.shape[1]
        h = self.kernel(T)  # (N, T)
        n_fft = 2 * T
        Lf = torch.fft.rfft(lam, n=n_fft, dim=1)
        Hf = torch.fft.rfft(h.T, n=n_fft, dim=0)  # (F, N)
        return torch.fft.irfft(Lf * Hf[None], n=n_fft, dim=1)[:, :T]

    def gain(self) -> torch.Tensor:
        return torch.exp(self.log_gain)

    def std(self) -> torch.Tensor:
        return F.softplus(self.raw_std) + self.min_std

    def initial_calcium(self, raw: torch.Tensor) -> torch.Tensor | None:
        """Calcium present before the first bin, (B, N) >= 0, read from the trial's first bin
        (channel 1 of the readout, which sees the initial condition); None without that channel."""
        if raw.shape[-1] < 2:
            return None
        return F.softplus(raw[:, 0, :, 1])

    def initial_decay(self, length: int) -> torch.Tensor:
        """(length, N) decay d^t at bins t = 1..length of calcium present before the first bin."""
        d = self.decay_pole()
        t = torch.arange(1, length + 1, dtype=d.dtype, device=d.device)
        return torch.exp(t[:, None] * torch.log(d)[None, :])

    def _fit_initial(self, rates_only: torch.Tensor, decay: torch.Tensor, readout: torch.Tensor,
                     target: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """:meth:`fitted_initial_calcium` from the rates' fluorescence ``rates_only`` (B, T, N),
        the ``decay`` d^t (T, N) and the readout's initial calcium (B, N)."""
        phi = self.gain()[None, :] * decay  # (T, N): the fluorescence of c0 = 1
        resid = torch.where(visible, target - rates_only, torch.zeros_like(rates_only))
        prior = phi[0] ** 2
        num = (resid * phi[None]).sum(dim=1) + prior * readout
        den = (visible.to(phi.dtype) * phi[None] ** 2).sum(dim=1) + prior
        return (num / den).clamp(min=0.0)

    def fitted_initial_calcium(self, raw: torch.Tensor, target: torch.Tensor,
                               visible: torch.Tensor) -> torch.Tensor:
        """Calcium present before each trial's first bin, (B, N) >= 0, fitted by least squares to
        the ``visible`` (bool) entries of ``target`` (B, T, N; model units) given the rates'
        fluorescence, with the readout's :meth:`initial_calcium` as a prior worth one sample at
        the first bin (an ROI with no visible sample in the trial keeps the readout's value).

        The readout's value comes from the factors, so it is low-dimensional across ROIs; fitted,
        each ROI's leftover calcium is its own, and the rates need not follow each ROI's slow
        private fluctuations (the spikes' own, integrated by a slow decay) to explain it.
        """
        rates_only = self.baseline + self.gain() * self.calcium(F.softplus(raw[..., 0]))
        return self._fit_initial(rates_only, self.initial_decay(raw.shape[1]),
                                 self.initial_calcium(raw), target, visible)

    def signal(self, raw: torch.Tensor, target: torch.Tensor | None = None,
               visible: torch.Tensor | None = None) -> torch.Tensor:
        """Expected fluorescence (B, T, N), model units. With ``initial_fit`` and both ``target``
        and ``visible`` given, the calcium before the first bin is fitted to the visible entries
        (:meth:`fitted_initial_calcium`) instead of read out; the rates' calcium is computed once
        either way."""
        g = self.gain()
        c = self.calcium(F.softplus(raw[..., 0]))
        c0 = self.initial_calcium(raw)
        if c0 is None:
            return self.baseline + g * c
        decay = self.initial_decay(raw.shape[1])
        if self.initial_fit and target is not None and visible is not None:
            c0 = self._fit_initial(self.baseline + g * c, decay, c0, target, visible)
        return self.baseline + g * (c + c0[:, None, :] * decay[None])

    def nll(self, raw: torch.Tensor, target: torch.Tensor,
            visible: torch.Tensor | None = None) -> torch.Tensor:
        mean = self.signal(raw, target, visible)
        sd = self.std()
        z = (target - mean) / sd
        return 0.5 * _LOG_2PI + torch.log(sd) + 0.5 * z * z

    def rates(self, raw: torch.Tensor) -> torch.Tensor:
        return F.softplus(raw[..., 0]) * self.gain()

    def sparsity_cost(self, raw: torch.Tensor) -> torch.Tensor:
        """(B, T, N) cost of each bin's jump s under an exponential prior, in units of the
        Gaussian likelihood: s * ||kernel|| / noise_sd (times the config's rate_sparsity)."""
        T = raw.shape[1]
        norm = torch.linalg.vector_norm(self.kernel(T), dim=1)  # (N,) the jump's kernel norm
        return self.rates(raw) * (norm / self.std())

    def init_readout_bias(self, bias: torch.Tensor, target_model_units: np.ndarray,
                          columns: slice = slice(None)) -> None:
        n = len(range(self.n_neurons)[columns])
        flat = np.asarray(target_model_units, dtype=np.float64).reshape(-1, n)
        if np.isfinite(flat).any():
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                low = np.nanpercentile(flat, 10, axis=0)
                mean = np.nanmean(flat, axis=0)
            ok = np.isfinite(low) & np.isfinite(mean) & (mean - low > 1e-3)
            # baseline at the calcium-free level (a low percentile of the fluorescence), gain so
            # that the initial rate softplus(0) = log 2 at steady state reaches the mean
            d = self.decay_pole().detach().double().cpu().numpy()[columns]
            base0 = np.where(ok, low, -0.5)
            gain0 = np.where(ok, (mean - low) * (1.0 - d) / math.log(2.0), 1.0 - d)
            with torch.no_grad():
                self.baseline[columns].copy_(torch.as_tensor(base0, dtype=self.baseline.dtype))
                self.log_gain[columns].copy_(torch.as_tensor(np.log(gain0), dtype=self.log_gain.dtype))
        with torch.no_grad():
            b = torch.zeros(n, self.n_params, dtype=bias.dtype)
            if self.n_params > 1:
                # initial calcium at the steady state of the initial rate softplus(0)
                d = math.exp(-1.0 / self.decay_bins0)
                c_ss = math.log(2.0) / (1.0 - d)
                b[:, 1] = math.log(math.expm1(c_ss))
            bias.view(self.n_neurons, self.n_params)[columns].copy_(b)

    def rate_to_data(self, rates: np.ndarray, norm: Normaliser) -> np.ndarray:
        return rates * norm.scale  # a jump has no offset


# ----------------------------------------------------------------------------
def make_likelihood(name: str, n_neurons: int, config) -> Likelihood:  # noqa: ANN001
    """Build the likelihood module ``name`` for ``n_neurons`` from an SBTTConfig."""
    if name == "poisson":
        return PoissonLikelihood(n_neurons)
    if name == "gaussian":
        return GaussianLikelihood(n_neurons, min_std=config.gaussian_min_std)
    if name == "zig":
        return ZIGLikelihood(n_neurons, min_event=config.zig_min_event)
    if name == "calcium":
        return CalciumLikelihood(n_neurons, ar_order=config.calcium_ar_order,
                                 decay_bins=config.calcium_decay_bins,
                                 rise_bins=config.calcium_rise_bins,
                                 delay_bins=config.calcium_delay_bins,
                                 min_std=config.gaussian_min_std,
                                 initial_state=config.calcium_initial_state,
                                 kernel=config.calcium_kernel,
                                 initial_fit=config.calcium_initial_fit)
    raise ValueError(
        f"unknown likelihood {name!r}; choose one of 'poisson' (spike counts), 'gaussian' (dF/F), "
        "'zig' (deconvolved events) or 'calcium' (fluorescence, deconvolved inside the model)")


#: likelihoods whose data are standardised per neuron (the others: identity)
STANDARDISED = ("gaussian", "calcium")


def normaliser_for(name: str, train: np.ndarray) -> Normaliser:
    """Data -> model units map for likelihood ``name`` estimated on ``train`` (..., N) (NaN =
    missing); each neuron's offset and scale come from its own column."""
    if name in STANDARDISED:
        return Normaliser.standardise(train)
    return Normaliser.identity(train.shape[-1])
