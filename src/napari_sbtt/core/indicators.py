"""Calcium indicators: the dF/F response to one spike, and spikes -> dF/F.

An :class:`Indicator` describes the fluorescence transient of one action
potential as a difference of exponentials (time ``t`` in seconds after the
spike, ``t >= 0``)::

    h(t) = amplitude / norm * ((1 - w) exp(-t / tau_decay)
                               + w exp(-t / tau_decay2) - exp(-t / tau_rise))

with ``w = decay2_fraction`` (0 for a single decay) and ``norm`` the peak of the
bracket, so ``max h = amplitude`` (peak dF/F per spike, as a fraction: 0.2 =
20 %). Spikes add linearly; an optional saturation maps the summed linear
dF/F ``x`` to ``x / (1 + x / saturation)`` (``saturation`` is the dF/F
asymptote).

Sampling on a grid of bin width ``dt`` (:meth:`Indicator.kernel`,
:func:`calcium_from_spikes`): a spike counted in bin ``i`` is taken to fall
uniformly at random inside that bin, and the calcium of bin ``j`` is the value
at the bin's *centre* averaged over that uniform spike time, i.e.
``K[k] = (1/dt) * integral of h over ((k - 1/2) dt, (k + 1/2) dt]`` (``h = 0``
before the spike). This is exact for every ``dt`` and keeps timing unbiased on
coarse grids. Each exponential term of ``K`` is geometric from lag 1 on, so
the whole convolution is a sum of first-order IIR filters
(``scipy.signal.lfilter``), O(T) per ROI.

The model's AR(p) calcium likelihood uses
``c[t] = g[0] c[t-1] + ... + g[p-1] c[t-p] + gain * s[t]``
(:meth:`Indicator.ar_coefficients`, :meth:`Indicator.ar_gain`).

Presets
-------
Values are for mouse cortex in vivo (layer 2/3 pyramidal neurons, two-photon).

- ``GCaMP6f`` and ``GCaMP8s``: **measured** on the CASCADE ground truth
  (Rupprecht et al. 2021) with ``benchmarks/measure_indicators.py --gt-dir
  ../shared/groundtruth``: least-squares kernel from the juxtacellular spike
  train to dF/F per recording, parametric fit, median per neuron then over
  neurons. GCaMP6f: DS09 (Chen et al. 2013 data, 60 Hz, 11 neurons / 33
  recordings): tau_rise 16 ms, tau_decay 0.58 s, 0.13 dF/F per spike.
  jGCaMP8s: DS32 (122 Hz, 39 neurons / 174 recordings with >= 20 spikes):
  tau_rise 4.5 ms, tau_decay 0.47 s, 0.72 dF/F per spike. These are
  *effective* linear kernels: they average over isolated spikes and bursts
  (GCaMP responses are supralinear in bursts) and the rise is limited by the
  frame rate (a rise time well below the frame period is poorly resolved). For
  comparison, Chen et al. 2013 (Nature 499:295) report for single spikes in
  V1 a GCaMP6f peak near 0.2 dF/F and a half-decay near 0.15 s; the longer
  effective decay here is what a deconvolution sees in real, bursty data
  (suite2p recommends tau 0.7 s for GCaMP6f).
- ``GCaMP6s``: not measured here. Chen et al. 2013: larger, slower single-spike
  transients than GCaMP6f (peak about 0.25 dF/F, rise ~0.1-0.2 s to peak);
  decay set to 1.25 s, the value suite2p recommends for GCaMP6s. Rounded.
- ``GCaMP7f`` (jGCaMP7f): not measured here; a literature-like preset for
  benchmarks. Dana et al. 2019 (Nature Methods 16:649, jGCaMP7) report
  jGCaMP7f as faster and more sensitive than GCaMP6f; the in vivo single-spike
  comparison in Zhang et al. 2023 (Nature 615:884, mouse V1, 122 Hz) gives
  jGCaMP7f a half-rise time of about 25 ms and a half-decay of about
  0.18-0.27 s (values as quoted by secondary tables of those papers; we had no
  access to the primary full text). Preset: tau_rise 50 ms, tau_decay 0.25 s
  (half-rise 22 ms, peak at 0.10 s, half-decay 0.23 s after the peak), peak
  0.2 dF/F per spike (about GCaMP6f's literature single-spike peak).
- ``GCaMP8f``, ``GCaMP8m``: not measured here. Zhang et al. 2023 (Nature
  615:884, jGCaMP8): half-rise about 2 ms, decays markedly faster than
  jGCaMP8s (8f fastest), single-spike responses smaller than 8s (8f smallest).
  Rise 3 ms; decay and amplitude are scaled from the measured jGCaMP8s by the
  ordering in that paper (8f: 0.15 s, 0.3 dF/F; 8m: 0.25 s, 0.5 dF/F). Rough
  values; measure on your own data when it matters. For comparison, the in
  vivo single-spike half-decay times quoted from Zhang et al. 2023 are about
  67 ms (8f), 118 ms (8m) and 307 ms (8s), half-rise 7-10 ms; these presets
  decay to half 0.11 s (8f), 0.18 s (8m) and 0.33 s (8s, measured) after their
  peak, i.e. 8f and 8m are slower than those quotes. They are kept as they are
  so earlier results stay comparable.

No preset sets a saturation (``saturation=None``): pass one when simulating
large bursts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy.signal import lfilter

__all__ = ["Indicator", "INDICATORS", "get_indicator", "calcium_from_spikes"]


@dataclass(frozen=True)
class Indicator:
    """A calcium indicator's single-spike dF/F transient (see the module docstring).

    Parameters
    ----------
    name
        Preset or user name.
    tau_rise
        Rise time constant in seconds (> 0, smaller than every decay).
    tau_decay
        (First) decay time constant in seconds.
    amplitude
        Peak dF/F per spike (fraction: 0.2 = 20 %), before saturation.
    tau_decay2
        Optional second decay time constant in seconds.
    decay2_fraction
        Weight of the second decay component in [0, 1) (0 = one decay).
    saturation
        Optional dF/F asymptote: summed linear dF/F ``x`` becomes
        ``x / (1 + x / saturation)``. ``None`` = linear.
    source
        Where the values come from (free text).
    """

    name: str
    tau_rise: float
    tau_decay: float
    amplitude: float
    tau_decay2: float | None = None
    decay2_fraction: float = 0.0
    saturation: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        for field in ("tau_rise", "tau_decay", "amplitude"):
            v = getattr(self, field)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{self.name}: {field} must be a positive number, got {v}")
        if not 0.0 <= self.decay2_fraction < 1.0:
            raise ValueError(f"{self.name}: decay2_fraction must lie in [0, 1), got {self.decay2_fraction}")
        if self.decay2_fraction > 0 and self.tau_decay2 is None:
            raise ValueError(f"{self.name}: decay2_fraction > 0 needs tau_decay2")
        if self.tau_decay2 is not None and not (math.isfinite(self.tau_decay2) and self.tau_decay2 > 0):
            raise ValueError(f"{self.name}: tau_decay2 must be a positive number, got {self.tau_decay2}")
        decays = [self.tau_decay] + ([self.tau_decay2] if self.decay2_fraction > 0 else [])
        if self.tau_rise >= min(decays):
            raise ValueError(
                f"{self.name}: tau_rise ({self.tau_rise} s) must be shorter than every decay "
                f"time constant ({min(decays)} s)"
            )
        if self.saturation is not None and not (math.isfinite(self.saturation) and self.saturation > 0):
            raise ValueError(f"{self.name}: saturation must be a positive dF/F or None, got {self.saturation}")

    # ------------------------------------------------------------ continuous kernel
    def _shape_terms(self) -> list[tuple[float, float]]:
        """(weight, tau) of the un-normalised bracket: decays positive, rise negative."""
        terms = [(1.0 - self.decay2_fraction, self.tau_decay)]
        if self.decay2_fraction > 0:
            terms.append((self.decay2_fraction, float(self.tau_decay2)))  # type: ignore[arg-type]
        terms.append((-1.0, self.tau_rise))
        return terms

    def _bracket(self, t: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        return sum(w * np.exp(-t / tau) for w, tau in self._shape_terms())  # type: ignore[return-value]

    @property
    def peak_time(self) -> float:
        """Seconds from the spike to the peak of the continuous transient."""
        if self.decay2_fraction == 0:
            tr, td = self.tau_rise, self.tau_decay
            return float(math.log(td / tr) * tr * td / (td - tr))
        from scipy.optimize import minimize_scalar

        hi = 5.0 * max(self.tau_decay, float(self.tau_decay2))
        grid = np.linspace(0.0, hi, 4001)
        i = int(np.argmax(self._bracket(grid)))
        lo_b, hi_b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        res = minimize_scalar(lambda t: -float(self._bracket(t)), bounds=(lo_b, hi_b), method="bounded",
                              options={"xatol": 1e-9})
        return float(res.x)

    def _terms(self) -> list[tuple[float, float]]:
        """(coefficient in dF/F, tau in s) of the normalised kernel h(t) = sum c exp(-t/tau)."""
        norm = float(self._bracket(self.peak_time))
        return [(self.amplitude * w / norm, tau) for w, tau in self._shape_terms()]

    def response(self, t: np.ndarray | float) -> np.ndarray:
        """Continuous single-spike dF/F (linear, no saturation) at ``t`` seconds after the spike; 0 for t < 0."""
        t = np.asarray(t, dtype=float)
        tt = np.clip(t, 0.0, None)
        out = sum(c * np.exp(-tt / tau) for c, tau in self._terms())
        return np.where(t >= 0, out, 0.0)

    @property
    def half_decay_time(self) -> float:
        """Seconds from the spike until the transient falls back to half its peak."""
        from scipy.optimize import brentq

        tp = self.peak_time
        hi = tp + 20.0 * max(self.tau_decay, self.tau_decay2 or 0.0)
        return float(brentq(lambda t: float(self.response(t)) - 0.5 * self.amplitude, tp, hi, xtol=1e-10))

    @property
    def effective_decay(self) -> float:
        """Weight-averaged decay time constant in seconds (``tau_decay`` with one decay)."""
        if self.decay2_fraction == 0:
            return self.tau_decay
        return (1 - self.decay2_fraction) * self.tau_decay + self.decay2_fraction * float(self.tau_decay2)

    @property
    def decay(self) -> float:
        """Alias of :attr:`effective_decay` (seconds): the one decay time constant of an AR(1) model."""
        return self.effective_decay

    def default_duration(self) -> float:
        """Seconds after which the transient is below 1e-4 of its peak."""
        return self.peak_time + max(self.tau_decay, self.tau_decay2 or 0.0) * math.log(1e4 * 2)

    # ------------------------------------------------------------ sampled kernel
    def _bin_terms(self, dt: float) -> list[tuple[float, float, float]]:
        """Per exponential term: (K[0], K[1], d) of the bin-averaged kernel, with K[k] = K[1] d^(k-1) for k >= 1."""
        out = []
        for c, tau in self._terms():
            k0 = c * tau / dt * (1.0 - math.exp(-0.5 * dt / tau))
            k1 = c * tau / dt * (math.exp(-0.5 * dt / tau) - math.exp(-1.5 * dt / tau))
            out.append((k0, k1, math.exp(-dt / tau)))
        return out

    def kernel(self, dt: float, duration: float | None = None) -> np.ndarray:
        """dF/F response to one spike in bin 0, at the centres of bins of width ``dt`` seconds.

        Parameters
        ----------
        dt
            Bin width in seconds.
        duration
            Kernel length in seconds (``ceil(duration / dt)`` samples, at least
            1); default :meth:`default_duration` (to 1e-4 of the peak).

        Returns
        -------
        ndarray, float64, shape (K,)
            ``K[k]``: bin-averaged linear dF/F at lag ``k`` bins (see the module
            docstring); no saturation.
        """
        _check_dt(dt)
        if duration is None:
            duration = self.default_duration()
        n = max(1, int(math.ceil(duration / dt - 1e-9)))
        k = np.arange(n, dtype=float)
        out = np.zeros(n)
        for k0, k1, d in self._bin_terms(dt):
            with np.errstate(under="ignore"):
                term = k1 * d ** np.clip(k - 1, 0, None)
            term[0] = k0
            out += term
        return out

    def saturate(self, x: np.ndarray) -> np.ndarray:
        """Apply the saturation to linear dF/F ``x`` (identity when ``saturation`` is None)."""
        if self.saturation is None:
            return x
        return x / (1.0 + x / self.saturation)

    # ------------------------------------------------------------ AR models
    def ar_coefficients(self, dt: float, order: int = 2) -> np.ndarray:
        """AR coefficients ``g`` of ``c[t] = sum_i g[i] c[t-1-i] + gain * s[t]`` for bin width ``dt``.

        ``order=1``: ``g = [exp(-dt / tau)]`` with tau the :attr:`effective_decay`
        (instantaneous rise). ``order=2``: ``g = [d + r, -d r]`` with
        ``d = exp(-dt / effective_decay)``, ``r = exp(-dt / tau_rise)``, whose
        impulse response ``gain * (d^(k+1) - r^(k+1)) / (d - r)`` is the
        difference-of-exponentials kernel sampled one bin after the spike.

        Returns
        -------
        ndarray, float64, shape (order,)
        """
        _check_dt(dt)
        d = math.exp(-dt / self.effective_decay)
        if order == 1:
            return np.array([d])
        if order == 2:
            r = math.exp(-dt / self.tau_rise)
            return np.array([d + r, -d * r])
        raise ValueError(f"order must be 1 or 2, got {order}")

    def ar_gain(self, dt: float, order: int = 2) -> float:
        """Per-spike increment of the AR(``order``) model so its impulse response peaks at ``amplitude`` (dF/F)."""
        g = self.ar_coefficients(dt, order)
        n = max(4, int(math.ceil(self.default_duration() / dt)) + 2)
        imp = lfilter([1.0], np.concatenate([[1.0], -g]), np.r_[1.0, np.zeros(n - 1)])
        return float(self.amplitude / imp.max())

    # ------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times in seconds, amplitudes in dF/F)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Indicator":
        return cls(**d)

    def with_(self, **changes: Any) -> "Indicator":
        """A copy with some fields changed (e.g. ``saturation=2.0``)."""
        return replace(self, **changes)


def _check_dt(dt: float) -> None:
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive bin width in seconds, got {dt}")


_MEASURED = "measured: benchmarks/measure_indicators.py on CASCADE ground truth"

#: Presets by name (see the module docstring for the sources).
INDICATORS: dict[str, Indicator] = {
    ind.name: ind
    for ind in (
        Indicator("GCaMP6f", tau_rise=0.016, tau_decay=0.58, amplitude=0.13,
                  source=_MEASURED + " DS09 (60 Hz, 11 neurons)"),
        Indicator("GCaMP6s", tau_rise=0.05, tau_decay=1.25, amplitude=0.25,
                  source="rounded from Chen et al. 2013 (Nature 499:295); decay as suite2p recommends"),
        Indicator("GCaMP7f", tau_rise=0.05, tau_decay=0.25, amplitude=0.2,
                  source="literature-like: Dana et al. 2019 (Nat Methods 16:649); in vivo kinetics as "
                         "compared in Zhang et al. 2023 (Nature 615:884)"),
        Indicator("GCaMP8f", tau_rise=0.003, tau_decay=0.15, amplitude=0.3,
                  source="rough, after Zhang et al. 2023 (Nature 615:884), scaled from measured GCaMP8s"),
        Indicator("GCaMP8m", tau_rise=0.003, tau_decay=0.25, amplitude=0.5,
                  source="rough, after Zhang et al. 2023 (Nature 615:884), scaled from measured GCaMP8s"),
        Indicator("GCaMP8s", tau_rise=0.0045, tau_decay=0.47, amplitude=0.72,
                  source=_MEASURED + " DS32 (122 Hz, 39 neurons)"),
    )
}


def get_indicator(indicator: str | Indicator | dict[str, Any]) -> Indicator:
    """An :class:`Indicator` from a preset name (case-insensitive, 'j' prefix optional), a dict or itself."""
    if isinstance(indicator, Indicator):
        return indicator
    if isinstance(indicator, dict):
        return Indicator.from_dict(indicator)
    key = str(indicator).strip().lower()
    if key.startswith("jgcamp"):
        key = key[1:]
    for name, ind in INDICATORS.items():
        if name.lower() == key:
            return ind
    raise ValueError(f"unknown indicator {indicator!r}; presets: {', '.join(INDICATORS)}")


def calcium_from_spikes(spikes: np.ndarray, dt: float, indicator: str | Indicator) -> np.ndarray:
    """dF/F from spike counts on a grid of bin width ``dt`` seconds.

    Parameters
    ----------
    spikes : ndarray, shape (T,) or (T, N)
        Spike counts per bin (any non-negative numbers; NaN is not allowed).
    dt : float
        Bin width in seconds.
    indicator : str or Indicator
        Preset name or indicator.

    Returns
    -------
    ndarray, float64, same shape as ``spikes``
        dF/F (fraction) at the bin centres: the causal convolution of the
        spikes with :meth:`Indicator.kernel` (exact, any length, computed with
        first-order IIR filters), then :meth:`Indicator.saturate`.
    """
    ind = get_indicator(indicator)
    _check_dt(dt)
    s = np.asarray(spikes, dtype=np.float64)
    if s.ndim not in (1, 2):
        raise ValueError(f"spikes must have shape (T,) or (T, N), got {s.shape}")
    if s.shape[0] and not np.all(np.isfinite(s)):
        raise ValueError("spikes must be finite (NaN is not a spike count)")
    out = np.zeros_like(s)
    for k0, k1, d in ind._bin_terms(dt):
        out += lfilter([k0, k1 - d * k0], [1.0, -d], s, axis=0)
    return ind.saturate(out)
