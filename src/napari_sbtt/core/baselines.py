"""The baseline a user has today: OASIS deconvolution of each ROI's own samples.

OASIS (Friedrich et al. 2017, the ``oasis-deconv`` package, an optional
dependency: ``pip install napari-sbtt[baselines]``) runs on each ROI's observed
samples taken as a regularly sampled trace at that ROI's own sampling rate, with
an AR(1) calcium model whose decay and noise it estimates itself. Its spike
estimates are then turned into a rate (events per second) and interpolated onto
the fine grid, so it can be scored against the same ground truth as SBTT.

OASIS draws from NumPy's global random generator when its AR(1) estimate falls outside (0, 1)
(it then puts the root near 0.95 or 0.15 plus a small normal draw), which short or drifting
traces reach. Each call here runs it on a generator seeded the same way and puts the caller's
global state back afterwards, so the same trace always gives the same answer (and so the same
recording the same decay estimate and fit) and the user's own random stream is left as it was.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np

__all__ = ["oasis_rates", "oasis_events", "oasis_forecast", "oasis_available", "oasis_decay_time"]


def oasis_available() -> bool:
    """True when ``oasis-deconv`` is installed."""
    try:
        import oasis.functions  # noqa: F401
    except ImportError:
        return False
    return True


#: seed of NumPy's global generator while OASIS runs (module docstring)
OASIS_SEED = 0


@contextlib.contextmanager
def _fixed_global_random_state(seed: int) -> Iterator[None]:
    """NumPy's global generator seeded with ``seed`` inside, the caller's state restored after
    (not thread-safe: the global generator is shared by every thread)."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _oasis(y: np.ndarray, rate_hz: float, tau_d: float | None
           ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """OASIS AR(1) on one regularly sampled trace: (spikes (T,), calcium (T,), baseline, g)."""
    from oasis.functions import deconvolve

    with warnings.catch_warnings(), _fixed_global_random_state(OASIS_SEED):
        warnings.simplefilter("ignore")
        if tau_d is not None:
            c, s, b, g, _ = deconvolve(y.astype(np.float64), tau_d=tau_d, framerate=rate_hz, penalty=1)
        else:
            c, s, b, g, _ = deconvolve(y.astype(np.float64), g=(None,), penalty=1)
    g1 = float(np.ravel(g)[0]) if np.size(g) else 0.0
    return np.asarray(s, dtype=np.float64), np.asarray(c, dtype=np.float64), float(b), g1


def oasis_decay_time(trace: np.ndarray, frame_period: float) -> float:
    """OASIS's own estimate of the calcium decay time constant of one fully sampled trace, seconds.

    ``trace`` (T,) dF/F on a regular grid of ``frame_period`` seconds, no NaN. OASIS fits an
    AR(1) coefficient g from the trace's autocovariance (``deconvolve(..., g=(None,))``); the
    decay time is ``-frame_period / ln g`` (NaN when g is not in (0, 1)).
    """
    y = np.asarray(trace, dtype=np.float64)
    if y.ndim != 1 or not np.isfinite(y).all():
        raise ValueError(f"trace must be a 1-D array without NaN, got shape {y.shape}")
    g = _oasis(y, 1.0 / frame_period, None)[3]
    return float(-frame_period / np.log(g)) if 0.0 < g < 1.0 else float("nan")


def _deconvolve(y: np.ndarray, rate_hz: float, tau_d: float | None) -> np.ndarray:
    return _oasis(y, rate_hz, tau_d)[0]


def oasis_events(observations: np.ndarray, times: np.ndarray, *, tau_d: float | None = None) -> np.ndarray:
    """OASIS AR(1) events per ROI at its own samples: the input of a zero-inflated gamma fit.

    Parameters
    ----------
    observations : (T_fine, N) dF/F samples on the fine grid, NaN where not observed.
    times : (T_fine,) bin centres in seconds.
    tau_d : decay time constant in seconds; None lets OASIS estimate it per ROI.

    Returns
    -------
    (T_fine, N) float64 event sizes (dF/F jump per sample, >= 0) in the observed bins, NaN in
    the others and for an ROI with fewer than 4 samples (RADICaL's recipe: deconvolve each
    ROI's samples at its own rate, then fit the events with ``likelihood="zig"``).
    """
    obs, times = _check_observations(observations, times)
    out = np.full(obs.shape, np.nan)
    for i in range(obs.shape[1]):
        m = np.isfinite(obs[:, i])
        if m.sum() < 4:
            continue
        dt = float(np.median(np.diff(times[m])))
        out[m, i] = np.clip(_deconvolve(obs[m, i], 1.0 / dt, tau_d), 0.0, None)
    return out


def oasis_forecast(observations: np.ndarray, times: np.ndarray, held: np.ndarray, *,
                   tau_d: float | None = None) -> np.ndarray:
    """OASIS's prediction of held-out samples from the others, as its AR(1) model states it.

    Each ROI's samples are one regular series; OASIS denoises it with the held-out samples
    replaced by the linear interpolation of their kept neighbours (only so that the series stays
    regular), and the prediction of a held-out sample is the model's value there given the kept
    samples before it: ``b + c_prev * g**k``, the calcium of the previous kept sample decayed by
    the ``k`` sample steps since (OASIS's events happen at samples, so none is known in between).

    Parameters
    ----------
    observations : (T_fine, N) samples, NaN where not observed (held-out samples included).
    times : (T_fine,) bin centres in seconds.
    held : (T_fine, N) bool, the held-out samples.

    Returns
    -------
    (T_fine, N) float64: at a held-out sample its prediction, at a kept sample OASIS's denoised
    value (``b + c``); NaN in unobserved bins, for an ROI with fewer than 4 kept samples, and at
    a held-out sample with no kept sample before it.
    """
    obs, times = _check_observations(observations, times)
    held = np.asarray(held, dtype=bool)
    out = np.full(obs.shape, np.nan)
    for i in range(obs.shape[1]):
        own = np.flatnonzero(np.isfinite(obs[:, i]))
        is_held = held[own, i]
        kept = own[~is_held]
        if kept.size < 4 or not is_held.any():
            continue
        y = np.interp(times[own], times[kept], obs[kept, i])
        dt = float(np.median(np.diff(times[own])))
        _, c, b, g = _oasis(y, 1.0 / dt, tau_d)
        out[kept, i] = b + c[~is_held]
        pos = np.arange(own.size)
        last_kept = np.maximum.accumulate(np.where(~is_held, pos, -1))
        for j in np.flatnonzero(is_held):
            p = last_kept[j]
            if p >= 0:
                out[own[j], i] = b + c[p] * g ** (j - p)
    return out


def _check_observations(observations: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not oasis_available():
        raise ImportError(
            "the OASIS baseline needs the oasis-deconv package: pip install napari-sbtt[baselines]"
        )
    obs = np.asarray(observations, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if obs.ndim != 2 or times.shape != (obs.shape[0],):
        raise ValueError(
            f"observations must be (T_fine, N) and times (T_fine,), got {obs.shape} and {times.shape}"
        )
    return obs, times


def oasis_rates(
    observations: np.ndarray,
    times: np.ndarray,
    *,
    tau_d: float | None = None,
) -> np.ndarray:
    """OASIS AR(1) deconvolution per ROI on its observed samples, interpolated to the fine grid.

    Parameters
    ----------
    observations : (T_fine, N) dF/F samples on the fine grid, NaN where not observed.
    times : (T_fine,) bin centres in seconds.
    tau_d : decay time constant in seconds; None lets OASIS estimate the AR(1) coefficient
        from each ROI's samples ("own parameter estimation").

    Returns
    -------
    (T_fine, N) float64 inferred spike rate in events per second (in OASIS's units: spike
    amplitude in dF/F per sample divided by the sample interval), linearly interpolated
    between samples and held constant before the first and after the last sample; NaN
    for an ROI with fewer than 4 samples.
    """
    events = oasis_events(observations, times, tau_d=tau_d)
    times = np.asarray(times, dtype=np.float64)
    out = np.full(events.shape, np.nan)
    for i in range(events.shape[1]):
        m = np.isfinite(events[:, i])
        if not m.any():
            continue
        t = times[m]
        out[:, i] = np.interp(times, t, events[m, i] / float(np.median(np.diff(t))))
    return out
