"""Synthetic partial-field two-photon line scans with ground truth.

:func:`simulate` builds a recording in five steps (six with a background subtracted), every one seeded from one
``seed`` (``numpy.random.SeedSequence(seed)`` spawns an independent stream per
step, so a seed gives the same arrays bit for bit):

1. **Footprints.** ``n_rois`` soma-like ellipses (radius range in pixels,
   aspect 0.75-1, random orientation) are placed by rejection sampling so
   that they neither overlap nor come closer than ``min_gap`` pixels nor touch
   the border. ``labels`` (Y, X) int32 holds 0 for background and 1..N. Each
   ROI's spatial weight is 1 inside and falls smoothly (a logistic of the
   distance to the edge, width ``edge_softness`` px) to about 0.5 at its edge;
   it is zero outside its own label, so footprints never overlap.
2. **Latent dynamics and rates** on the fine grid ``pattern.fine_grid(fine_factor)``
   (bin ``dt = frame_period / fine_factor``): a Lorenz attractor, a noisy
   limit cycle or a damped linear system kicked by sparse random input pulses
   (:mod:`napari_sbtt.core.dynamics`) run at ``latent_speed`` model-time units
   per second of recording, standardised; each ROI reads a
   random unit-norm projection ``z_n`` of the latents (standardised again) and
   fires at ``rate = min(baseline_rate_hz * exp(modulation_depth * z_n),
   max_rate_hz)`` Hz. Spikes are Poisson counts per bin, calcium is
   :func:`napari_sbtt.core.indicators.calcium_from_spikes` (dF/F).
3. **Fluorescence** in relative units: a pixel ``p`` at time ``t`` is ::

       F = B_n w_n(p) (1 + c_n(t))                        (its ROI, if any)
         + bg(p) (1 + slow(t) + a * sum_m v_m(p) c_m(t))  (neuropil, everywhere)

   with ``B_n`` the ROI brightness (log-normal, mean 1, spread
   ``brightness_spread``), ``bg`` a smooth background of mean ``background``
   (relative to an ROI's brightness), ``slow`` the shared slow neuropil signal
   (an Ornstein-Uhlenbeck process, time constant ``neuropil_tau`` s, sd
   ``neuropil_slow_sd`` dF/F), ``a = neuropil_amplitude`` and ``v_m`` ROI
   ``m``'s footprint blurred by a Gaussian of ``neuropil_sigma`` px and scaled
   to peak 1 (out-of-focus light of its processes). The render is low rank:
   ``F = base + C_ext(t) @ M`` with ``C_ext = [c_1..c_N, slow]``.
4. **Timing.** Each row of sweep ``k`` is rendered at the fine bin holding its
   acquisition time, ``pattern.row_times()`` (the centre of its line; all
   pixels of a row share the row's bin, since a line lasts far less than a
   bin). Rows that the pattern does not acquire are rendered too, at a notional
   time ``sweep start + (y + 1/2) / Y * sweep duration`` (as if the sweep had
   rastered the whole field), which is what ``full_movie`` shows; in ``movie``
   they are NaN.
5. **Noise.** Photon counts: ``Poisson(q F)`` per pixel and line plus Gaussian
   read noise of sd ``read_noise * sqrt(q * F0_ref)`` photons, where ``q`` is
   photons per relative unit and ``F0_ref`` the mean resting pixel value
   inside ROIs (so ``read_noise`` is relative to the shot noise of a typical
   resting ROI pixel, and both scale together with ``q``).

6. **Background subtracted** (``subtract_background = p``, optional): users
   subtract an estimated background/offset from the movie before dF/F, which
   makes F0 smaller and dF/F transients larger than in raw photon counts. One
   offset ``s`` (photons), the ``p``-th percentile over background pixels
   (label 0) of the time-averaged image of the *acquired* samples of the noisy
   movie, is subtracted from every pixel of ``movie`` (and ``full_movie``);
   values may then be negative, as in real subtracted data.
   ``truth.background_offset`` holds ``s``, ``truth.roi_f0`` the resting ROI
   mean after the subtraction, and the noise calibration below targets the nu
   of the subtracted movie (its F0 is the resting ROI mean minus the offset
   that the noise-free time-averaged image predicts).

Noise calibration (``noise_level`` = target CASCADE nu)
-------------------------------------------------------
nu is defined on the **ROI-mean dF/F of the fully sampled movie**
(``full_movie``; every row of every sweep) at the sweep rate
``1 / pattern.frame_period``, with ``dF/F = F_roi / F0_roi - 1`` and ``F0_roi``
the ROI's resting mean (``truth.roi_f0``, no calcium, no slow neuropil); the
target is the median over ROIs. ``q`` is found in two stages: analytically
(at rest, the ROI mean of ``P`` pixels has dF/F noise sd
``sqrt(F0 + read_sd^2/q) / (sqrt(P q) F0)``, i.e. ``~ 1/sqrt(q)``; solve for
the sd :func:`~napari_sbtt.core.metrics.noise_std_for_level` gives), then
``calibration_rounds`` measured corrections: simulate the ROI-mean traces
exactly (a sum of Poisson pixels is Poisson; each ROI's samples taken at its
centre row's bin) including the activity, with enough independent replicates
for about 20 000 samples per ROI, measure nu with
:func:`~napari_sbtt.core.metrics.noise_level`, and rescale
``q <- q (nu_measured / nu_target)^2`` (the measurement includes what the
analytic start ignores: activity-dependent shot noise, calcium and neuropil
changes between sweeps, photon-count discreteness). The last estimate is
stored as ``truth.nu_calibrated``; the realised movie lands within a few
percent (one realisation of a short recording scatters more). With
``noise_level=None`` the photon scale follows ``f0_photons`` instead
(``q = f0_photons / F0_ref``).

Files (:meth:`SyntheticScan.save`, :func:`load_simulation`): ``movie.tif``
(float32, NaN rows), ``rois.tif`` (int32 labels), ``scan.json``
(:meth:`ScanPattern.to_json`), ``truth.npz`` (numeric arrays only, no pickle)
and ``config.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import lfilter

from .atomic import OutputExistsError, atomic_path
from .dynamics import limit_cycle_trajectories, lorenz_trajectories, pulse_trajectories, standardize
from .indicators import calcium_from_spikes, get_indicator
from .scan import FineGrid, ScanPattern

__all__ = [
    "BackgroundTooHighError",
    "SynthConfig",
    "GroundTruth",
    "SyntheticScan",
    "PRESETS",
    "REGIMES",
    "LATENTS",
    "SCAN_ORDERS",
    "preset_config",
    "scan_overrides",
    "roi_labels",
    "roi_shares_random_lines",
    "line_fraction_for_reduction",
    "simulate",
    "apply_pattern",
    "load_simulation",
]

_FILES = ("movie.tif", "rois.tif", "scan.json", "truth.npz", "config.json")


class BackgroundTooHighError(ValueError):
    """:func:`simulate` refuses ``subtract_background``: the percentile of the background
    pixels would remove (nearly) all of an ROI's resting fluorescence (a crowded field whose
    background pixels carry much neuropil); a lower percentile may not.

    Attributes
    ----------
    percentile : float
        The percentile refused.
    """

    def __init__(self, percentile: float) -> None:
        self.percentile = float(percentile)
        super().__init__(f"subtract_background={percentile:g} would remove (nearly) all of an ROI's resting "
                         "fluorescence; use a lower percentile")


#: Latent dynamics of :class:`SynthConfig` and their dimension.
LATENTS: dict[str, int] = {"lorenz": 3, "limit_cycle": 2, "pulses": 4}
#: Oscillation frequencies (cycles per model-time unit) of the pulse-kicked system.
PULSE_FREQUENCIES: tuple[float, ...] = (0.9, 2.3)
_CHUNK_SWEEPS = 128  # noise is drawn this many sweeps at a time (fixed: keeps streams identical)


# ============================================================================ config
@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a synthetic recording (JSON-serialisable; defaults = preset "default").

    Geometry (pixels)
        field_shape (Y, X); n_rois; radius_range (min, max) semi-major axis;
        aspect_range (min, max) minor/major axis ratio; edge_softness (logistic
        width of the soft edge); min_gap (free pixels between ROIs).
    Latents and rates
        latent "lorenz", "limit_cycle" or "pulses"; latent_speed (model-time
        units per second of recording; the Lorenz attractor turns about once
        per 0.7 model-time units, the limit cycle has period 1); pulse_rate
        (input pulses per model-time unit) and pulse_decay (decay time
        constant in model-time units) of "pulses", a damped linear system of
        two oscillators (:data:`PULSE_FREQUENCIES` cycles per model-time unit)
        kicked by random pulses at Poisson times
        (:func:`napari_sbtt.core.dynamics.pulse_trajectories`);
        baseline_rate_hz, modulation_depth (gain of the log rate), max_rate_hz
        (rates are clipped there). Sparse low-rate firing is a setting of these
        fields, not a latent of its own (:data:`REGIMES` ``"sparse"``).
    Indicator
        indicator (preset name, :data:`napari_sbtt.core.indicators.INDICATORS`);
        indicator_saturation (dF/F asymptote or None).
    Fluorescence
        f0_photons (photons per pixel per line of a typical resting ROI pixel;
        used only when noise_level is None); brightness_spread (log-normal sd of
        ROI brightness); background (neuropil/background brightness relative to
        a mean ROI); neuropil_amplitude (gain of the blurred ROI activity in the
        neuropil); neuropil_sigma (px); neuropil_slow_sd (dF/F);
        neuropil_tau (s).
    Noise
        noise_level (target CASCADE nu of the fully sampled ROI-mean dF/F, or
        None to use f0_photons); read_noise (read-noise sd relative to the shot
        noise of a resting ROI pixel); calibration_rounds;
        subtract_background (None: the movie holds photon counts; a percentile
        p in [0, 100]: one offset, the p-th percentile over background pixels
        of the movie's time-averaged acquired image, is subtracted from every
        pixel, as users subtract an estimated background before dF/F; see the
        module docstring, step 6).
    Scan (seconds)
        scan_kind "full", "strips" or "random_lines"; n_strips, strip_order
        ("sequential"/"interleaved"), strips_per_sweep; line_fraction (random
        lines); line_period; flyback; frame_period (fixed sweep clock or None);
        bidirectional; duration (s) or n_sweeps (wins when set).
    Grid and seed
        fine_factor (fine-grid bins per sweep); seed.
    """

    field_shape: tuple[int, int] = (64, 64)
    n_rois: int = 24
    radius_range: tuple[float, float] = (3.0, 5.0)
    aspect_range: tuple[float, float] = (0.75, 1.0)
    edge_softness: float = 0.7
    min_gap: float = 1.0
    latent: str = "lorenz"
    latent_speed: float = 1.0
    pulse_rate: float = 1.0
    pulse_decay: float = 0.3
    baseline_rate_hz: float = 2.0
    modulation_depth: float = 1.0
    max_rate_hz: float = 30.0
    indicator: str = "GCaMP6f"
    indicator_saturation: float | None = None
    f0_photons: float = 20.0
    brightness_spread: float = 0.3
    background: float = 0.3
    neuropil_amplitude: float = 0.2
    neuropil_sigma: float = 6.0
    neuropil_slow_sd: float = 0.05
    neuropil_tau: float = 3.0
    noise_level: float | None = 2.0
    read_noise: float = 0.5
    calibration_rounds: int = 3
    subtract_background: float | None = None
    scan_kind: str = "strips"
    n_strips: int = 4
    strip_order: str = "sequential"
    strips_per_sweep: int = 1
    line_fraction: float = 0.25
    line_period: float = 1e-3
    flyback: float = 1e-3
    frame_period: float | None = None
    bidirectional: bool = False
    duration: float | None = 60.0
    n_sweeps: int | None = None
    fine_factor: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        # JSON gives lists; keep tuples so configs compare equal after a round trip
        object.__setattr__(self, "field_shape", tuple(int(v) for v in self.field_shape))
        object.__setattr__(self, "radius_range", tuple(float(v) for v in self.radius_range))
        object.__setattr__(self, "aspect_range", tuple(float(v) for v in self.aspect_range))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        Y, X = self.field_shape
        if len(self.field_shape) != 2 or Y < 4 or X < 4:
            raise ValueError(f"field_shape must be (Y, X) with both >= 4, got {self.field_shape}")
        if self.n_rois < 1:
            raise ValueError(f"n_rois must be >= 1, got {self.n_rois}")
        r0, r1 = self.radius_range
        if not 1.0 <= r0 <= r1:
            raise ValueError(f"radius_range must be (min, max) with 1 <= min <= max pixels, got {self.radius_range}")
        if 2 * r1 + 2 >= min(Y, X):
            raise ValueError(f"radius_range max {r1} px is too large for a {Y}x{X} field")
        a0, a1 = self.aspect_range
        if not 0.2 <= a0 <= a1 <= 1.0:
            raise ValueError(f"aspect_range must satisfy 0.2 <= min <= max <= 1, got {self.aspect_range}")
        if self.latent not in LATENTS:
            raise ValueError(f"latent must be one of {', '.join(repr(k) for k in LATENTS)}, got {self.latent!r}")
        for name in ("latent_speed", "pulse_rate", "pulse_decay", "baseline_rate_hz", "max_rate_hz", "f0_photons", "line_period",
                     "neuropil_tau", "edge_softness"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v}")
        for name in ("modulation_depth", "brightness_spread", "background", "neuropil_amplitude",
                     "neuropil_sigma", "neuropil_slow_sd", "read_noise", "flyback", "min_gap"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {v}")
        if self.baseline_rate_hz > self.max_rate_hz:
            raise ValueError(
                f"baseline_rate_hz ({self.baseline_rate_hz}) must not exceed max_rate_hz ({self.max_rate_hz})"
            )
        get_indicator(self.indicator)
        if self.noise_level is not None and not (math.isfinite(self.noise_level) and self.noise_level > 0):
            raise ValueError(f"noise_level must be a positive CASCADE nu or None, got {self.noise_level}")
        if self.scan_kind not in ("full", "strips", "random_lines"):
            raise ValueError(f"scan_kind must be 'full', 'strips' or 'random_lines', got {self.scan_kind!r}")
        if self.duration is None and self.n_sweeps is None:
            raise ValueError("give duration (seconds) or n_sweeps")
        if self.n_sweeps is not None and self.n_sweeps < 1:
            raise ValueError(f"n_sweeps must be >= 1, got {self.n_sweeps}")
        if self.duration is not None and not (math.isfinite(self.duration) and self.duration > 0):
            raise ValueError(f"duration must be a positive number of seconds, got {self.duration}")
        if int(self.fine_factor) != self.fine_factor or self.fine_factor < 1:
            raise ValueError(f"fine_factor must be a whole number >= 1, got {self.fine_factor}")
        if self.calibration_rounds < 0:
            raise ValueError(f"calibration_rounds must be >= 0, got {self.calibration_rounds}")
        p = self.subtract_background
        if p is not None and not (isinstance(p, (int, float)) and not isinstance(p, bool)
                                  and math.isfinite(p) and 0 <= p <= 100):
            raise ValueError(f"subtract_background must be a percentile in [0, 100] or None, got {p!r}")

    # ------------------------------------------------------------------ helpers
    @property
    def latent_dim(self) -> int:
        """3 for Lorenz, 2 for the limit cycle, 4 for pulses (two damped oscillators)."""
        return LATENTS[self.latent]

    def build_pattern(self) -> ScanPattern:
        """The scan pattern this config describes (random lines draw from the config's seed)."""
        Y = self.field_shape[0]
        common = dict(flyback=self.flyback, frame_period=self.frame_period, bidirectional=self.bidirectional)
        if self.scan_kind == "full":
            rows_per_sweep = Y
        elif self.scan_kind == "strips":
            rows_per_sweep = math.ceil(Y / self.n_strips) * self.strips_per_sweep
        else:
            rows_per_sweep = max(1, int(round(self.line_fraction * Y)))
        if self.n_sweeps is not None:
            n = int(self.n_sweeps)
        else:
            period = self.frame_period or rows_per_sweep * self.line_period + self.flyback
            n = max(1, int(round(self.duration / period)))  # type: ignore[operator]
        if self.scan_kind == "full":
            return ScanPattern.full_raster(Y, n, self.line_period, **common)
        if self.scan_kind == "strips":
            return ScanPattern.strips(Y, n, self.line_period, self.n_strips, order=self.strip_order,
                                      strips_per_sweep=self.strips_per_sweep, **common)
        seed = int(np.random.SeedSequence([self.seed, 7]).generate_state(1)[0])
        return ScanPattern.random_lines(Y, n, self.line_period, self.line_fraction, seed=seed, **common)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["field_shape"] = list(self.field_shape)
        d["radius_range"] = list(self.radius_range)
        d["aspect_range"] = list(self.aspect_range)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SynthConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown SynthConfig field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "SynthConfig":
        """A copy with some fields changed (unknown names raise ``ValueError``)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown SynthConfig field(s) {unknown}; valid fields: {sorted(known)}")
        return replace(self, **changes)


#: Activity regimes (the latent-dynamics axis of the benchmark family) as
#: :class:`SynthConfig` overrides:
#:
#: - ``lorenz``, ``limit_cycle``: the smooth attractors of the defaults.
#: - ``pulses``: input-driven population transients, ``latent="pulses"`` (a
#:   damped linear system kicked by sparse random pulses, about one per second,
#:   decaying with 0.3 s; about half of the time the population is at rest).
#: - ``sparse``: sparse low-rate firing, not a dynamical system of its own but a
#:   setting of existing fields: Lorenz latents with a low baseline
#:   (``baseline_rate_hz=0.2``) and a strong gain (``modulation_depth=2``).
#:   Median rate 0.2 Hz, mean about 1.2 Hz, above 5 Hz about 6 % of the time
#:   (rare strong modulation), clipped at ``max_rate_hz``.
REGIMES: dict[str, dict[str, Any]] = {
    "lorenz": dict(latent="lorenz"),
    "limit_cycle": dict(latent="limit_cycle"),
    "pulses": dict(latent="pulses"),
    "sparse": dict(latent="lorenz", baseline_rate_hz=0.2, modulation_depth=2.0),
}

#: Scan orders of :func:`scan_overrides`.
SCAN_ORDERS: tuple[str, ...] = ("sequential", "interleaved", "random_lines")


def scan_overrides(order: str, reduction: int, sweep_period: float, n_rows: int,
                   *, sweep_fraction: float = 0.8, labels: np.ndarray | None = None,
                   min_coverage: float = 0.5) -> dict[str, Any]:
    """:class:`SynthConfig` overrides for a scan that samples each ROI ``reduction`` times less often.

    Parameters
    ----------
    order
        ``"sequential"`` or ``"interleaved"`` strips (``n_strips = reduction``,
        one strip per sweep; each row is acquired in exactly one sweep of every
        ``reduction``, and an ROI no taller than a strip in exactly one, or
        two when split half and half), or ``"random_lines"`` (rows drawn at
        random in every sweep): without ``labels`` a share ``1 / reduction`` of
        the rows, so each *row* is seen ``reduction`` times less often; with
        ``labels`` the share (:func:`line_fraction_for_reduction`) at which
        each *ROI* is expected to be observed (``min_coverage`` of its pixels
        acquired, as trace extraction requires) in ``1 / reduction`` of the
        sweeps.
    reduction
        Whole number >= 1: how many times fewer samples than a full raster at
        the same sweep rate.
    sweep_period
        Seconds per sweep (the fine-grid bin at ``fine_factor=1``): set as
        ``frame_period``, with the acquired lines filling ``sweep_fraction`` of
        it (``line_period = sweep_fraction * sweep_period / rows per sweep``).
    n_rows
        Rows of the field (``field_shape[0]``).

    Returns
    -------
    dict of ``scan_kind``, ``n_strips``/``strip_order`` or ``line_fraction``,
    ``strips_per_sweep``, ``line_period``, ``frame_period`` and ``flyback``.
    """
    if order not in SCAN_ORDERS:
        raise ValueError(f"order must be one of {', '.join(SCAN_ORDERS)}, got {order!r}")
    if isinstance(reduction, bool) or int(reduction) != reduction or not 1 <= reduction <= n_rows:
        raise ValueError(f"reduction must be a whole number in 1..{n_rows} (the rows), got {reduction}")
    if not (math.isfinite(sweep_period) and sweep_period > 0):
        raise ValueError(f"sweep_period must be a positive number of seconds, got {sweep_period}")
    if not 0 < sweep_fraction <= 1:
        raise ValueError(f"sweep_fraction must lie in (0, 1], got {sweep_fraction}")
    reduction = int(reduction)
    if order == "random_lines":
        fraction = 1.0 / reduction if labels is None else \
            line_fraction_for_reduction(labels, reduction, min_coverage=min_coverage)
        rows = max(1, int(round(fraction * n_rows)))  # as ScanPattern.random_lines
        out: dict[str, Any] = dict(scan_kind="random_lines", line_fraction=fraction)
    else:
        rows = math.ceil(n_rows / reduction)
        out = dict(scan_kind="strips", n_strips=reduction, strip_order=order, strips_per_sweep=1)
    out.update(line_period=sweep_fraction * sweep_period / rows, frame_period=float(sweep_period),
               flyback=(1.0 - sweep_fraction) * sweep_period)
    return out


def roi_shares_random_lines(labels: np.ndarray, line_fraction: float, *, min_coverage: float = 0.5) -> np.ndarray:
    """Expected share of sweeps that observe each ROI when every row is acquired with probability ``line_fraction``.

    An ROI counts as observed in a sweep when the acquired rows hold at least
    ``min_coverage`` of its pixels (the rule of trace extraction). Rows are
    taken as independent (a good approximation of drawing
    ``round(line_fraction * Y)`` rows without replacement when ``Y`` is much
    larger than an ROI's height).

    Parameters
    ----------
    labels : (Y, X) int, 0 = background, 1..N = ROI ids.
    line_fraction : share of rows acquired per sweep, in (0, 1].

    Returns
    -------
    ndarray, float64, shape (N,): one share per ROI id 1..N (``labels.max()``); 0 for an absent id.
    """
    if not 0 < line_fraction <= 1:
        raise ValueError(f"line_fraction must lie in (0, 1], got {line_fraction}")
    labels = np.asarray(labels)
    n = int(labels.max()) if labels.size else 0
    out = np.zeros(n)
    for i in range(1, n + 1):
        per_row = (labels == i).sum(axis=1)
        per_row = per_row[per_row > 0]
        total = int(per_row.sum())
        if total == 0:
            continue
        # distribution of acquired pixels: a sum of independent row contributions
        dist = np.zeros(total + 1)
        dist[0] = 1.0
        for c in per_row:
            shifted = np.zeros_like(dist)
            shifted[c:] = dist[: total + 1 - c]
            dist = (1.0 - line_fraction) * dist + line_fraction * shifted
        need = int(math.ceil(total * min_coverage - 1e-9))
        out[i - 1] = float(dist[need:].sum())
    return out


def line_fraction_for_reduction(labels: np.ndarray, reduction: float, *, min_coverage: float = 0.5) -> float:
    """Share of rows per sweep at which the ROIs of ``labels`` are observed in ``1 / reduction`` of the sweeps.

    The mean over ROIs of :func:`roi_shares_random_lines` is solved for by
    bisection (it grows with the share of rows). Because an ROI spans several
    rows and needs ``min_coverage`` of its pixels, the row share is larger
    than ``1 / reduction`` (about 0.2 of the rows for 16 x fewer samples of
    ROIs 6-9 rows tall).
    """
    if not (math.isfinite(reduction) and reduction >= 1):
        raise ValueError(f"reduction must be a number >= 1, got {reduction}")
    target = 1.0 / reduction
    if target >= 1.0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if float(np.mean(roi_shares_random_lines(labels, mid, min_coverage=min_coverage))) < target:
            lo = mid
        else:
            hi = mid
    return hi


def roi_labels(config: SynthConfig) -> np.ndarray:
    """The ROI labels (Y, X) int32 that :func:`simulate` draws for ``config`` (its seed); footprints only, fast."""
    rng_fp = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(8)[0])
    return _place_rois(config, rng_fp)[0]


#: Presets as overrides of the :class:`SynthConfig` defaults. Sizes (float32 movie):
#:
#: - ``tiny``: 32 x 32 px, 6 ROIs, 2 strips, 4 s (~235 sweeps of 17 ms, ~1 MB);
#:   simulates in well under a second; for tests and the napari sample.
#: - ``default``: 64 x 64 px, 24 ROIs, 4 strips of 16 rows (17 ms sweeps, 58.8 Hz;
#:   each ROI seen at ~14.7 Hz), 60 s (3529 sweeps, ~58 MB), GCaMP6f, nu 2;
#:   simulates in about a second, trains in minutes on 2 CPU cores.
#: - ``benchmark``: 160 x 160 px, 200 ROIs, 8 strips of 20 rows (21 ms sweeps,
#:   47.6 Hz), 180 s (8571 sweeps, ~880 MB), GCaMP6f, nu 2.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(field_shape=(32, 32), n_rois=6, radius_range=(2.5, 4.0), n_strips=2, duration=4.0,
                 neuropil_sigma=4.0, baseline_rate_hz=4.0),
    "default": {},
    "benchmark": dict(field_shape=(160, 160), n_rois=200, radius_range=(3.0, 4.5), n_strips=8,
                      duration=180.0),
}


def preset_config(preset: str | SynthConfig = "default", **overrides: Any) -> SynthConfig:
    """The :class:`SynthConfig` of a preset name (or a config) with ``overrides`` applied."""
    if isinstance(preset, SynthConfig):
        base = preset
    else:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        base = SynthConfig(**PRESETS[preset])
    return base.replace(**overrides) if overrides else base


# ============================================================================ results
@dataclass
class GroundTruth:
    """Ground truth of a simulation; time axis 0 is the fine grid, axis 1 the ROIs (id = column + 1).

    Attributes
    ----------
    times : (T_fine,) float64
        Fine-grid bin centres, seconds.
    bin_width : float
        Fine-grid bin width, seconds (``frame_period / fine_factor``).
    t0 : float
        Start of the fine grid, seconds.
    latents : (T_fine, D) float64
        Standardised latent trajectory (D = 3 Lorenz, 2 limit cycle).
    readout : (D, N) float64
        Unit-norm projection of the latents read by each ROI.
    rates : (T_fine, N) float64
        Firing rates, Hz (0 < rate <= max_rate_hz).
    spikes : (T_fine, N) int32
        Spike counts per bin (Poisson with mean ``rates * bin_width``).
    calcium : (T_fine, N) float64
        Noise-free somatic dF/F of each ROI.
    neuropil : (T_fine,) float64
        Shared slow neuropil signal, dF/F.
    roi_ids : (N,) int32
        Label ids 1..N.
    brightness : (N,) float64
        Relative ROI brightness ``B_n`` (mean 1).
    roi_f0 : (N,) float64
        Resting ROI-mean fluorescence in photons per pixel per line (the F0 of
        the ROI-mean dF/F: neuropil under the ROI included; after the
        subtraction of ``background_offset``).
    footprint_weights : (Y, X) float32
        Spatial weight of each ROI pixel (0 outside ROIs; labels say which ROI).
    photon_scale : float
        ``q``, photons per relative fluorescence unit.
    read_noise_sd : float
        Read-noise sd in photons.
    nu_target : float
        Target noise level (NaN when ``noise_level`` was None).
    nu_calibrated : float
        Noise level the calibration measured (median over ROIs).
    background_offset : float
        Photons per pixel per line subtracted from the movie
        (``subtract_background``; 0 when nothing was subtracted).
    """

    times: np.ndarray
    bin_width: float
    t0: float
    latents: np.ndarray
    readout: np.ndarray
    rates: np.ndarray
    spikes: np.ndarray
    calcium: np.ndarray
    neuropil: np.ndarray
    roi_ids: np.ndarray
    brightness: np.ndarray
    roi_f0: np.ndarray
    footprint_weights: np.ndarray
    photon_scale: float
    read_noise_sd: float
    nu_target: float
    nu_calibrated: float
    background_offset: float = 0.0

    @property
    def grid(self) -> FineGrid:
        """The fine grid the truth lives on."""
        return FineGrid(self.t0, self.bin_width, int(self.times.shape[0]))

    @property
    def n_rois(self) -> int:
        return int(self.rates.shape[1])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every field as a numpy array (scalars 0-d), for ``np.savez``."""
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: Any) -> "GroundTruth":
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in arrays and f.default is not MISSING:
                kw[f.name] = f.default  # a field added later; older files lack it
                continue
            if f.name not in arrays:
                raise ValueError(f"truth file lacks the array {f.name!r}")
            a = np.asarray(arrays[f.name])
            kw[f.name] = float(a) if a.ndim == 0 else a
        return cls(**kw)


@dataclass
class SyntheticScan:
    """A simulated recording.

    Attributes
    ----------
    movie : (T, Y, X) float32
        Photon counts (plus read noise) per pixel and line; NaN on rows the
        pattern did not acquire.
    labels : (Y, X) int32
        0 background, 1..N ROI ids.
    pattern : ScanPattern
        Which rows each sweep acquired and when.
    truth : GroundTruth
    config : SynthConfig
    full_movie : (T, Y, X) float32 or None
        Every row of every sweep (``simulate(..., full_movie=True)`` only);
        ``apply_pattern(full_movie, pattern)`` equals ``movie`` exactly.
    """

    movie: np.ndarray
    labels: np.ndarray
    pattern: ScanPattern
    truth: GroundTruth
    config: SynthConfig
    full_movie: np.ndarray | None = None

    @property
    def n_rois(self) -> int:
        return int(self.truth.n_rois)

    def save(self, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write movie.tif, rois.tif, scan.json, truth.npz and config.json into ``out_dir``.

        The folder is created if needed. Nothing is written when any of the
        five files exists and ``overwrite`` is False (``OutputExistsError``).
        Every file is written to a temporary name first and all are renamed
        into place only once all five are complete, so a failure leaves no
        new or partial file behind. ``full_movie`` is not saved.
        """
        import tifffile

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"{out} exists and is not a folder")
        existing = [n for n in _FILES if (out / n).exists()]
        if existing and not overwrite:
            raise OutputExistsError(
                f"{out} already holds {', '.join(existing)}; choose another folder or pass "
                "overwrite=True (--overwrite on the command line) to replace them"
            )
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        movie = np.asarray(self.movie, dtype=np.float32)
        try:
            with contextlib.ExitStack() as stack:
                # entered in reverse so config.json, the 'complete' marker, is renamed last
                tmp = {n: stack.enter_context(atomic_path(out / n, overwrite=overwrite)) for n in reversed(_FILES)}
                tifffile.imwrite(tmp["movie.tif"], movie, photometric="minisblack",
                                 bigtiff=movie.nbytes > 2**31 - 2**25)
                tifffile.imwrite(tmp["rois.tif"], np.asarray(self.labels, dtype=np.int32),
                                 photometric="minisblack")
                tmp["scan.json"].write_text(self.pattern.to_json(), encoding="utf-8")
                with open(tmp["truth.npz"], "wb") as fh:
                    np.savez(fh, **self.truth.to_arrays())
                tmp["config.json"].write_text(self.config.to_json(), encoding="utf-8")
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    out.rmdir()  # only succeeds when empty
            raise
        return out


def load_simulation(path: str | os.PathLike, *, mmap: bool = False) -> SyntheticScan:
    """Read a folder written by :meth:`SyntheticScan.save`.

    With ``mmap=True`` the movie is memory-mapped read-only instead of read
    into memory.
    """
    import tifffile

    p = Path(path)
    missing = [n for n in _FILES if not (p / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{p} is not a saved simulation: missing {', '.join(missing)}")
    movie = tifffile.memmap(p / "movie.tif", mode="r") if mmap else tifffile.imread(p / "movie.tif")
    labels = tifffile.imread(p / "rois.tif").astype(np.int32, copy=False)
    pattern = ScanPattern.from_json(p / "scan.json")
    from .readers.npy import load_npz

    truth = GroundTruth.from_arrays(load_npz(p / "truth.npz"))
    config = SynthConfig.from_dict(json.loads((p / "config.json").read_text(encoding="utf-8")))
    pattern.check_movie(movie.shape)
    return SyntheticScan(movie=movie, labels=labels, pattern=pattern, truth=truth, config=config)


def apply_pattern(movie: np.ndarray, pattern: ScanPattern) -> np.ndarray:
    """A copy of ``movie`` (T, Y, X) with the rows ``pattern`` did not acquire set to NaN.

    Integer movies are returned as float32 (NaN needs a float); float movies
    keep their dtype. Raises ``ScanMismatchError`` when the shapes disagree.
    """
    movie = np.asarray(movie)
    pattern.check_movie(movie.shape)
    dtype = movie.dtype if np.issubdtype(movie.dtype, np.floating) else np.float32
    out = movie.astype(dtype, copy=True)
    out[~pattern.frame_mask()] = np.nan
    return out


# ============================================================================ simulation
def simulate(
    preset: str | SynthConfig = "default",
    *,
    seed: int = 0,
    full_movie: bool = False,
    **overrides: Any,
) -> SyntheticScan:
    """Simulate a partial-field line scan with ground truth (see the module docstring).

    Parameters
    ----------
    preset
        A name from :data:`PRESETS` ("tiny", "default", "benchmark") or a
        :class:`SynthConfig`.
    seed
        Seed of every random draw; the same seed and config give bit-identical
        arrays. Overrides the config's ``seed``.
    full_movie
        Also return the movie with every row of every sweep rendered
        (``SyntheticScan.full_movie``), e.g. to show what a reduced scan drops.
    **overrides
        :class:`SynthConfig` fields to change (e.g. ``noise_level=4``,
        ``scan_kind="random_lines"``).

    Returns
    -------
    SyntheticScan
    """
    cfg = preset_config(preset, **overrides).replace(seed=int(seed))
    streams = np.random.SeedSequence(cfg.seed).spawn(8)
    rng_fp, rng_lat, rng_read, rng_spk, rng_np, rng_cal, rng_poi, rng_gauss = (
        np.random.default_rng(s) for s in streams
    )
    ind = get_indicator(cfg.indicator)
    if cfg.indicator_saturation is not None:
        ind = ind.with_(saturation=cfg.indicator_saturation)

    pattern = cfg.build_pattern()
    grid = pattern.fine_grid(cfg.fine_factor)
    dt = grid.bin_width
    Y, X = cfg.field_shape
    N = cfg.n_rois

    # 1. footprints
    labels, weights, centres = _place_rois(cfg, rng_fp)

    # 2. latents, rates, spikes, calcium on the fine grid
    latents = _latents(cfg, grid.n_bins, dt, rng_lat)
    readout = rng_read.standard_normal((latents.shape[1], N))
    readout /= np.linalg.norm(readout, axis=0, keepdims=True)
    proj = standardize(latents @ readout)
    rates = np.minimum(cfg.baseline_rate_hz * np.exp(cfg.modulation_depth * proj), cfg.max_rate_hz)
    spikes = rng_spk.poisson(rates * dt).astype(np.int32)
    calcium = calcium_from_spikes(spikes, dt, ind)
    slow = _ou(grid.n_bins, dt, cfg.neuropil_tau, cfg.neuropil_slow_sd, rng_np)

    # 3. spatial model: F = base + C_ext @ M, C_ext = [calcium, slow]
    bright = np.exp(cfg.brightness_spread * rng_fp.standard_normal(N) - 0.5 * cfg.brightness_spread**2)
    bg = _background(cfg, rng_np)
    roi_w = np.zeros((N, Y, X))
    for n in range(N):
        roi_w[n] = np.where(labels == n + 1, weights, 0.0)
    M = np.empty((N + 1, Y, X))
    for n in range(N):
        v = gaussian_filter(roi_w[n], cfg.neuropil_sigma, mode="constant", truncate=3.0) if cfg.neuropil_sigma > 0 \
            else roi_w[n].copy()
        v /= max(v.max(), 1e-12)
        v[v < 1e-3] = 0.0
        M[n] = bright[n] * roi_w[n] + cfg.neuropil_amplitude * bg * v
    M[N] = bg
    base = (bright[:, None, None] * roi_w).sum(axis=0) + bg
    c_ext = np.concatenate([calcium, slow[:, None]], axis=1)

    # 4. timing: the fine bin of every row of every sweep (notional times for unacquired rows)
    bins = _row_bins(pattern, grid)

    # ROI summaries for the calibration and F0
    n_pix = np.array([(labels == n + 1).sum() for n in range(N)], dtype=float)
    roi_mask = labels[None] == np.arange(1, N + 1)[:, None, None]
    base_roi = np.array([base[roi_mask[n]].mean() for n in range(N)])
    m_roi = np.stack([M[:, roi_mask[n]].mean(axis=1) for n in range(N)], axis=1)  # (N+1, N)
    f0_ref = float(base[labels > 0].mean())

    # 5. photon scale (noise calibration) and render; with a background subtracted, the
    # calibration's F0 is the resting ROI mean less the offset the noise-free mean image predicts
    f0_roi = base_roi
    if cfg.subtract_background is not None:
        mean_img = base + np.tensordot(c_ext.mean(axis=0), M, axes=1)
        f0_roi = base_roi - _background_percentile(mean_img, labels, cfg.subtract_background)
        if np.any(f0_roi <= 0.05 * base_roi):
            raise BackgroundTooHighError(cfg.subtract_background)
    lam_rel = _roi_mean_rel(c_ext, bins, centres, base_roi, m_roi)
    if cfg.noise_level is None:
        q = cfg.f0_photons / f0_ref
        nu_cal = _measure_nu(q, cfg, lam_rel, f0_roi, n_pix, f0_ref, pattern, rng_cal)
    else:
        q, nu_cal = _calibrate(cfg, lam_rel, base_roi, n_pix, f0_ref, pattern, rng_cal, f0_roi=f0_roi)
    read_sd = cfg.read_noise * math.sqrt(q * f0_ref)

    full = _render(pattern, bins, c_ext, M, base, q, read_sd, rng_poi, rng_gauss)
    offset = 0.0
    if cfg.subtract_background is not None:
        # 6. the user's estimate from the acquired samples of the noisy movie
        offset = _background_percentile(_acquired_mean_image(full, pattern), labels, cfg.subtract_background)
        full -= np.float32(offset)
    movie = apply_pattern(full, pattern) if full_movie else full
    if not full_movie:
        movie[~pattern.frame_mask()] = np.nan

    truth = GroundTruth(
        times=grid.centres,
        bin_width=float(dt),
        t0=float(grid.t0),
        latents=latents,
        readout=readout,
        rates=rates,
        spikes=spikes,
        calcium=calcium,
        neuropil=slow,
        roi_ids=np.arange(1, N + 1, dtype=np.int32),
        brightness=bright,
        roi_f0=q * base_roi - offset,
        footprint_weights=np.where(labels > 0, weights, 0.0).astype(np.float32),
        photon_scale=float(q),
        read_noise_sd=float(read_sd),
        nu_target=float("nan") if cfg.noise_level is None else float(cfg.noise_level),
        nu_calibrated=float(nu_cal),
        background_offset=float(offset),
    )
    return SyntheticScan(movie=movie, labels=labels, pattern=pattern, truth=truth, config=cfg,
                         full_movie=full if full_movie else None)


# ---------------------------------------------------------------------------- steps
def _place_rois(cfg: SynthConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rejection-sample non-overlapping soft ellipses: (labels (Y, X) int32, weights (Y, X), centres (N, 2))."""
    Y, X = cfg.field_shape
    labels = np.zeros((Y, X), dtype=np.int32)
    weights = np.zeros((Y, X))
    centres = np.zeros((cfg.n_rois, 2))
    yy, xx = np.mgrid[0:Y, 0:X].astype(float)
    max_tries = 2000
    for n in range(cfg.n_rois):
        for _ in range(max_tries):
            a = rng.uniform(*cfg.radius_range)
            b = a * rng.uniform(*cfg.aspect_range)
            theta = rng.uniform(0.0, np.pi)
            cy = rng.uniform(a + 1.0, Y - a - 2.0)
            cx = rng.uniform(a + 1.0, X - a - 2.0)
            y0, y1 = int(max(cy - a - cfg.min_gap - 2, 0)), int(min(cy + a + cfg.min_gap + 3, Y))
            x0, x1 = int(max(cx - a - cfg.min_gap - 2, 0)), int(min(cx + a + cfg.min_gap + 3, X))
            dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
            u = dy * np.cos(theta) + dx * np.sin(theta)
            v = -dy * np.sin(theta) + dx * np.cos(theta)
            rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
            inside = rho <= 1.0
            if inside.sum() < 3:
                continue
            # grow by min_gap pixels (in units of the minor axis, the conservative side)
            grown = rho <= 1.0 + cfg.min_gap / b
            if np.any(labels[y0:y1, x0:x1][grown] > 0):
                continue
            dist_to_edge = (1.0 - rho) * math.sqrt(a * b)  # approx. pixels inside the edge
            w = 1.0 / (1.0 + np.exp(-dist_to_edge / cfg.edge_softness))
            w = w / (1.0 / (1.0 + math.exp(-math.sqrt(a * b) / cfg.edge_softness)))
            labels[y0:y1, x0:x1][inside] = n + 1
            weights[y0:y1, x0:x1][inside] = w[inside]
            centres[n] = (cy, cx)
            break
        else:
            raise ValueError(
                f"could not place {cfg.n_rois} non-overlapping ROIs of radius {cfg.radius_range} px with a "
                f"gap of {cfg.min_gap} px in a {Y}x{X} field (placed {n}); lower n_rois, radius_range or "
                "min_gap, or enlarge field_shape"
            )
    return labels, weights, centres


def _latents(cfg: SynthConfig, n_bins: int, dt: float, rng: np.random.Generator) -> np.ndarray:
    """Standardised latents (n_bins, D) at the fine-grid bins; RK4/Euler sub-steps of <= 0.01 model time."""
    model_dt = cfg.latent_speed * dt
    n_sub = max(1, int(math.ceil(model_dt / 0.01 - 1e-9)))
    step = model_dt / n_sub
    if cfg.latent == "pulses":
        # exact integration: no sub-steps needed, pulse times are continuous
        z = pulse_trajectories(1, n_bins, dt=model_dt, frequencies=PULSE_FREQUENCIES, decay=cfg.pulse_decay,
                               pulse_rate=cfg.pulse_rate, rng=rng)[0]
        return standardize(z)
    if cfg.latent == "lorenz":
        z = lorenz_trajectories(1, n_bins * n_sub, dt=step, rng=rng)[0]
    else:
        z = limit_cycle_trajectories(1, n_bins * n_sub, dt=step, period=1.0, rng=rng)[0]
    return standardize(z[n_sub - 1 :: n_sub])


def _ou(n: int, dt: float, tau: float, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck process (n,), time constant ``tau`` s, standard deviation ``sd``."""
    a = math.exp(-dt / tau)
    e = rng.standard_normal(n)
    e[0] /= math.sqrt(1.0 - a * a)  # start in the stationary distribution
    return sd * math.sqrt(1.0 - a * a) * lfilter([1.0], [1.0, -a], e)


def _background(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Smooth background (Y, X), mean ``background``, +-25 % spatial variation."""
    Y, X = cfg.field_shape
    f = gaussian_filter(rng.standard_normal((Y, X)), max(cfg.neuropil_sigma, 2.0), mode="wrap")
    f = (f - f.mean()) / max(f.std(), 1e-12)
    return cfg.background * np.clip(1.0 + 0.25 * f, 0.2, None)


def _row_bins(pattern: ScanPattern, grid: FineGrid) -> np.ndarray:
    """Int64 (T, Y): fine bin of each row's acquisition time; notional raster time for unacquired rows."""
    t = pattern.row_times()
    Y = pattern.n_rows
    notional = pattern.sweep_starts()[:, None] + (np.arange(Y) + 0.5)[None, :] / Y * pattern.sweep_durations()[:, None]
    t = np.where(np.isnan(t), notional, t)
    return grid.index(t)


def _roi_mean_rel(c_ext: np.ndarray, bins: np.ndarray, centres: np.ndarray,
                  base_roi: np.ndarray, m_roi: np.ndarray) -> np.ndarray:
    """Noise-free ROI-mean fluorescence (T, N) of the full movie in relative units, each ROI at its centre row's bins."""
    rows = np.clip(np.round(centres[:, 0]).astype(int), 0, bins.shape[1] - 1)
    fine = c_ext @ m_roi  # (T_fine, N)
    return base_roi[None, :] + fine[bins[:, rows], np.arange(centres.shape[0])[None, :]]


def _measure_nu(q: float, cfg: SynthConfig, lam_rel: np.ndarray, f0_roi: np.ndarray, n_pix: np.ndarray,
                f0_ref: float, pattern: ScanPattern, rng: np.random.Generator) -> float:
    """Median over ROIs of nu of the simulated full-scan ROI-mean dF/F at photon scale ``q``.

    ``f0_roi`` (N,): each ROI's F0 in relative units (its resting mean, less a
    subtracted background).

    Each ROI's nu is averaged over enough independent noise draws to hold at
    least ~20 000 samples, so the estimate is not itself noisy on short recordings.
    """
    read_sd = cfg.read_noise * math.sqrt(q * f0_ref)
    lam = q * lam_rel * n_pix  # expected photons of the ROI sum
    reps = int(min(64, max(1, math.ceil(20000 / lam_rel.shape[0]))))
    # replicates stacked in time: one boundary difference per replicate is negligible
    lam_all = np.tile(lam, (reps, 1))
    # the ROI sum of P Poisson pixels is Poisson; read noise adds P variances
    total = rng.poisson(lam_all) + rng.standard_normal(lam_all.shape) * (read_sd * np.sqrt(n_pix))
    dff = total / n_pix / (q * f0_roi) - 1.0
    return float(np.median(_noise_level(dff, 1.0 / pattern.frame_period)))


def _calibrate(cfg: SynthConfig, lam_rel: np.ndarray, base_roi: np.ndarray, n_pix: np.ndarray,
               f0_ref: float, pattern: ScanPattern, rng: np.random.Generator,
               *, f0_roi: np.ndarray | None = None) -> tuple[float, float]:
    """Photon scale q giving median nu == cfg.noise_level: analytic start, measured corrections.

    ``f0_roi``: the ROIs' dF/F baselines in relative units (default ``base_roi``).
    """
    if f0_roi is None:
        f0_roi = base_roi
    target = float(cfg.noise_level)  # type: ignore[arg-type]
    rate = 1.0 / pattern.frame_period
    sd_target = _noise_std_for_level(target, rate)
    # at rest: var(ROI mean) = (q F0 + read_sd^2) / P with read_sd^2 = read_noise^2 q f0_ref
    g = np.sqrt(base_roi + cfg.read_noise**2 * f0_ref) / (np.sqrt(n_pix) * f0_roi)
    q = float((np.median(g) / sd_target) ** 2)
    nu = _measure_nu(q, cfg, lam_rel, f0_roi, n_pix, f0_ref, pattern, rng)
    for _ in range(cfg.calibration_rounds):
        q *= (nu / target) ** 2
        nu = _measure_nu(q, cfg, lam_rel, f0_roi, n_pix, f0_ref, pattern, rng)
    return q, nu


def _background_percentile(image: np.ndarray, labels: np.ndarray, percentile: float) -> float:
    """The ``percentile`` of ``image`` (Y, X) over background pixels (label 0; all pixels when there are none)."""
    values = image[labels == 0]
    if values.size == 0:
        values = image.ravel()
    return float(np.nanpercentile(values, percentile))


def _acquired_mean_image(movie: np.ndarray, pattern: ScanPattern) -> np.ndarray:
    """(Y, X) float64 mean over the sweeps that acquired each row (what a user averages); chunked."""
    T, Y, X = movie.shape
    total = np.zeros((Y, X))
    count = np.zeros(Y)
    mask = pattern.frame_mask()  # (T, Y)
    for s in range(0, T, _CHUNK_SWEEPS):
        m = mask[s : s + _CHUNK_SWEEPS]
        block = movie[s : s + _CHUNK_SWEEPS].astype(np.float64)
        total += np.einsum("ty,tyx->yx", m.astype(np.float64), block)
        count += m.sum(axis=0)
    mean = total / np.maximum(count, 1)[:, None]
    mean[count == 0] = np.nan
    return mean


def _render(pattern: ScanPattern, bins: np.ndarray, c_ext: np.ndarray, M: np.ndarray, base: np.ndarray,
            q: float, read_sd: float, rng_poi: np.random.Generator,
            rng_gauss: np.random.Generator) -> np.ndarray:
    """Noisy photon movie (T, Y, X) float32, every row rendered at its bin."""
    T, Y = bins.shape
    X = M.shape[2]
    out = np.empty((T, Y, X), dtype=np.float32)
    # noise-free in float32 (the result is stored as float32 anyway), row by row,
    # touching only the components that reach that row
    c32 = (q * c_ext).astype(np.float32)
    for y in range(Y):
        m_y = M[:, y, :].astype(np.float32)
        active = np.flatnonzero(np.any(m_y != 0.0, axis=1))
        out[:, y, :] = (q * base[y]).astype(np.float32)[None, :] + c32[:, active][bins[:, y]] @ m_y[active]
    np.maximum(out, 0.0, out=out)
    for s in range(0, T, _CHUNK_SWEEPS):
        lam = out[s : s + _CHUNK_SWEEPS].astype(np.float64)
        noisy = rng_poi.poisson(lam).astype(np.float32)
        if read_sd > 0:
            noisy += (read_sd * rng_gauss.standard_normal(lam.shape)).astype(np.float32)
        out[s : s + _CHUNK_SWEEPS] = noisy
    return out


# ---------------------------------------------------------------------------- metrics (shared when present)
def _noise_level(dff: np.ndarray, frame_rate_hz: float) -> np.ndarray:
    try:
        from .metrics import noise_level
    except ImportError:  # pragma: no cover - metrics.py is part of the package
        d = np.abs(np.diff(dff, axis=0))
        return np.nanmedian(d, axis=0) / math.sqrt(frame_rate_hz) * 100.0
    return np.asarray(noise_level(dff, frame_rate_hz))


def _noise_std_for_level(nu: float, frame_rate_hz: float) -> float:
    try:
        from .metrics import noise_std_for_level
    except ImportError:  # pragma: no cover
        return nu * math.sqrt(frame_rate_hz) / (100.0 * math.sqrt(2.0) * 0.6744897501960817)
    return float(noise_std_for_level(nu, frame_rate_hz))
