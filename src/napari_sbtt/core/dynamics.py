"""Latent dynamical systems used to make synthetic data with ground truth.

Every function returns latent trajectories as float64 arrays whose last axis is
the latent dimension; time steps are ``dt`` seconds of *model* time apart (the
caller decides how model time maps onto recording time).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

__all__ = ["lorenz_trajectories", "limit_cycle_trajectories", "pulse_trajectories", "standardize"]


def _lorenz_field(x: np.ndarray, sigma: float, rho: float, beta: float) -> np.ndarray:
    """Lorenz vector field for states ``x`` of shape (..., 3)."""
    dx = np.empty_like(x)
    dx[..., 0] = sigma * (x[..., 1] - x[..., 0])
    dx[..., 1] = x[..., 0] * (rho - x[..., 2]) - x[..., 1]
    dx[..., 2] = x[..., 0] * x[..., 1] - beta * x[..., 2]
    return dx


def lorenz_trajectories(
    n_traj: int,
    n_steps: int,
    *,
    dt: float = 0.01,
    sigma: float = 10.0,
    rho: float = 28.0,
    beta: float = 8.0 / 3.0,
    burn_in: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Integrate the Lorenz system with fourth-order Runge-Kutta.

    Initial conditions are drawn near the attractor: a random start in
    [-15, 15] x [-15, 15] x [10, 40] integrated for ``burn_in`` steps first, so
    every trajectory starts on the attractor at an independent phase.

    Returns
    -------
    ndarray, float64, shape (n_traj, n_steps, 3)
    """
    if n_traj < 1 or n_steps < 1:
        raise ValueError(f"n_traj and n_steps must be >= 1, got {n_traj} and {n_steps}")
    rng = np.random.default_rng(rng)
    x = np.column_stack(
        [
            rng.uniform(-15.0, 15.0, n_traj),
            rng.uniform(-15.0, 15.0, n_traj),
            rng.uniform(10.0, 40.0, n_traj),
        ]
    )
    out = np.empty((n_traj, n_steps, 3))
    for step in range(burn_in + n_steps):
        k1 = _lorenz_field(x, sigma, rho, beta)
        k2 = _lorenz_field(x + 0.5 * dt * k1, sigma, rho, beta)
        k3 = _lorenz_field(x + 0.5 * dt * k2, sigma, rho, beta)
        k4 = _lorenz_field(x + dt * k3, sigma, rho, beta)
        x = x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        if step >= burn_in:
            out[:, step - burn_in] = x
    return out


def limit_cycle_trajectories(
    n_traj: int,
    n_steps: int,
    *,
    dt: float = 0.01,
    period: float = 1.0,
    radius: float = 1.0,
    relaxation: float = 2.0,
    noise: float = 0.1,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Noisy Stuart-Landau (Hopf normal form) oscillator, a stable limit cycle.

    ``period`` is in the same time units as ``dt``. Euler-Maruyama with phase
    noise of standard deviation ``noise`` per sqrt(time unit); ``relaxation``
    sets how fast the amplitude returns to ``radius``.

    Returns
    -------
    ndarray, float64, shape (n_traj, n_steps, 2)
    """
    if n_traj < 1 or n_steps < 1:
        raise ValueError(f"n_traj and n_steps must be >= 1, got {n_traj} and {n_steps}")
    rng = np.random.default_rng(rng)
    omega = 2.0 * np.pi / period
    phase = rng.uniform(0.0, 2.0 * np.pi, n_traj)
    amp = radius * rng.uniform(0.5, 1.5, n_traj)
    out = np.empty((n_traj, n_steps, 2))
    sq = np.sqrt(dt)
    for step in range(n_steps):
        amp = amp + dt * relaxation * amp * (1.0 - (amp / radius) ** 2)
        amp = amp + 0.5 * noise * radius * sq * rng.standard_normal(n_traj)
        amp = np.abs(amp)
        phase = phase + dt * omega + noise * sq * rng.standard_normal(n_traj)
        out[:, step, 0] = amp * np.cos(phase)
        out[:, step, 1] = amp * np.sin(phase)
    return out


def pulse_trajectories(
    n_traj: int,
    n_steps: int,
    *,
    dt: float = 0.01,
    frequencies: tuple[float, ...] = (0.9, 2.3),
    decay: float = 0.3,
    pulse_rate: float = 1.0,
    amplitude: float = 1.0,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """A stable, damped linear system kicked by sparse random input pulses.

    The state ``z`` (dimension ``D = 2 * len(frequencies)``) is a set of damped
    oscillators: block ``j`` rotates at ``frequencies[j]`` cycles per time unit and
    decays with time constant ``decay`` (``dz/dt = A z + u(t)``, every eigenvalue
    of ``A`` has real part ``-1 / decay``). The input ``u`` is a train of delta
    pulses at the times of a Poisson process of rate ``pulse_rate`` per time unit;
    each pulse adds an independent Gaussian vector of total standard deviation
    ``amplitude`` (``N(0, amplitude^2 / D)`` per dimension) to the state. Between
    pulses the state relaxes to 0, so activity comes in population transients
    whose onsets a model has to infer as inputs.

    Integration is exact: every step applies the closed-form propagator of ``A``
    for ``dt``, and a pulse at time ``tau`` inside a step is propagated for the
    remaining ``t_{k+1} - tau``. Pulse times are continuous, not snapped to steps.
    The state starts at 0 (before any pulse). Time units are those of ``dt``.

    Returns
    -------
    ndarray, float64, shape (n_traj, n_steps, 2 * len(frequencies))
        ``out[:, k]`` is the state at the end of step ``k`` (time ``(k + 1) dt``).
    """
    if n_traj < 1 or n_steps < 1:
        raise ValueError(f"n_traj and n_steps must be >= 1, got {n_traj} and {n_steps}")
    freqs = np.asarray(frequencies, dtype=float).ravel()
    if freqs.size < 1 or not np.all(np.isfinite(freqs)):
        raise ValueError(f"frequencies must hold at least one finite number, got {frequencies}")
    for name, v in (("dt", dt), ("decay", decay), ("pulse_rate", pulse_rate), ("amplitude", amplitude)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v}")
    rng = np.random.default_rng(rng)
    d = 2 * freqs.size
    omega = 2.0 * np.pi * freqs

    def propagate(z: np.ndarray, t: np.ndarray | float) -> np.ndarray:
        """Apply exp(A t) to states z (..., D); t broadcasts over the leading axes."""
        t = np.asarray(t, dtype=float)[..., None]
        c, s = np.cos(omega * t), np.sin(omega * t)
        x, y = z[..., 0::2], z[..., 1::2]
        out = np.empty_like(z)
        out[..., 0::2] = c * x - s * y
        out[..., 1::2] = s * x + c * y
        return out * np.exp(-t / decay)

    # all pulses first (count per step, then times and vectors), so the draws do
    # not depend on how the loop below is organised
    counts = rng.poisson(pulse_rate * dt, size=(n_traj, n_steps))
    total = int(counts.sum())
    offsets = rng.uniform(0.0, dt, size=total)  # time from the pulse to the end of its step
    kicks = rng.standard_normal((total, d)) * (amplitude / math.sqrt(d))
    kicks = propagate(kicks, offsets)  # each pulse's contribution at the end of its step
    step_input = np.zeros((n_traj, n_steps, d))
    traj, step = np.nonzero(counts)
    owner = np.repeat(np.arange(traj.size), counts[traj, step])
    np.add.at(step_input, (traj[owner], step[owner]), kicks)

    # each oscillator block as one complex state w = x + i y: w[k] = lam w[k-1] + input[k]
    lam = np.exp((-1.0 / decay + 1j * omega) * dt)  # (D/2,)
    w_in = step_input[..., 0::2] + 1j * step_input[..., 1::2]
    out = np.empty((n_traj, n_steps, d))
    for j in range(freqs.size):
        w = lfilter([1.0], [1.0, -lam[j]], w_in[..., j], axis=1)
        out[..., 2 * j] = w.real
        out[..., 2 * j + 1] = w.imag
    return out


def standardize(latents: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-variance per latent dimension over all leading axes.

    latents: (..., D) -> same shape, float64.
    """
    flat = latents.reshape(-1, latents.shape[-1])
    mu = flat.mean(axis=0)
    sd = flat.std(axis=0)
    sd[sd == 0] = 1.0
    return (latents - mu) / sd
