"""Latent dynamical systems used to make synthetic data with ground truth.

Every function returns latent trajectories as float64 arrays whose last axis is
the latent dimension; time steps are ``dt`` seconds of *model* time apart (the
caller decides how model time maps onto recording time).
"""

from __future__ import annotations

import numpy as np

__all__ = ["lorenz_trajectories", "limit_cycle_trajectories", "standardize"]


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


def standardize(latents: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-variance per latent dimension over all leading axes.

    latents: (..., D) -> same shape, float64.
    """
    flat = latents.reshape(-1, latents.shape[-1])
    mu = flat.mean(axis=0)
    sd = flat.std(axis=0)
    sd[sd == 0] = 1.0
    return (latents - mu) / sd
