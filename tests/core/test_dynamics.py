"""Latent dynamical systems of the simulator: the pulse-kicked damped linear system."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sbtt.core.dynamics import pulse_trajectories


def test_pulses_are_seeded_and_shaped() -> None:
    a = pulse_trajectories(2, 500, dt=0.01, rng=3)
    b = pulse_trajectories(2, 500, dt=0.01, rng=3)
    c = pulse_trajectories(2, 500, dt=0.01, rng=4)
    assert a.shape == (2, 500, 4) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert pulse_trajectories(1, 10, frequencies=(1.0, 2.0, 3.0), rng=0).shape == (1, 10, 6)


def test_between_pulses_the_state_follows_the_closed_form() -> None:
    dt, decay, f = 0.01, 0.3, 1.5
    z = pulse_trajectories(1, 4000, dt=dt, frequencies=(f,), decay=decay, pulse_rate=0.5, rng=11)[0]
    norm = np.linalg.norm(z, axis=1)
    jumps = np.flatnonzero(np.diff(norm) > 0) + 1  # steps where a pulse arrived (norm only decays otherwise)
    k0 = int(np.flatnonzero(norm > 0)[0])
    assert np.all(z[:k0] == 0.0)  # at rest before the first pulse
    assert jumps.size >= 2
    k1 = int(jumps[jumps > k0][0])  # the next pulse
    assert k1 - k0 > 5
    # until then: exp(-t/decay) times a rotation at f cycles per time unit
    t = np.arange(1, k1 - k0) * dt
    w0 = z[k0, 0] + 1j * z[k0, 1]
    expected = w0 * np.exp((-1.0 / decay + 2j * np.pi * f) * t)
    got = z[k0 + 1 : k1, 0] + 1j * z[k0 + 1 : k1, 1]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_state_relaxes_between_pulses_and_pulse_count_is_poisson() -> None:
    dt, rate, n = 0.005, 1.0, 200_000  # 1000 time units
    z = pulse_trajectories(1, n, dt=dt, pulse_rate=rate, decay=0.3, rng=0)[0]
    norm = np.linalg.norm(z, axis=1)
    # pulses are jumps: count steps where the norm grows (it only decays otherwise)
    jumps = int((np.diff(norm) > 0).sum())
    assert jumps == pytest.approx(rate * n * dt, rel=0.1)
    # about half the time at rest (pulses every ~1 unit, decay 0.3)
    quiet = float((norm < 0.1 * norm.max()).mean())
    assert 0.2 < quiet < 0.8


def test_pulses_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="decay"):
        pulse_trajectories(1, 10, decay=0.0)
    with pytest.raises(ValueError, match="pulse_rate"):
        pulse_trajectories(1, 10, pulse_rate=-1.0)
    with pytest.raises(ValueError, match="frequencies"):
        pulse_trajectories(1, 10, frequencies=())
    with pytest.raises(ValueError, match="n_traj"):
        pulse_trajectories(0, 10)
