"""The SBTT demo's Lorenz spiking dataset (numpy only), our first evaluation protocol: R^2 of the
inferred against the true rates of all validation neuron-bins when only ``b`` of 29 neurons are
observed per bin (the demo's published R^2 are :data:`PUBLISHED_R2`).

Recipe (SBTT demo, snel-repo/sbtt-demo, and the LFADS synthetic Lorenz data it
derives from): a 3-d Lorenz latent simulated for 50 bins of 20 ms, projected to
29 neurons, exponentiated into firing rates and sampled as Poisson counts; 65
conditions (independent initial conditions on the attractor) x 24 trials each,
1560 trials split 80/20 at random into 1248 training and 312 validation trials.
Bandwidth-limited sampling keeps exactly ``b`` of the 29 neurons in every bin of
every trial (NaN elsewhere), drawn independently per bin.

Details the demo repository does not ship (its HDF5 file is not public in
source form) and that we therefore fix here, following the LFADS convention:

- Lorenz (sigma 10, rho 28, beta 8/3) integrated by RK4 with dt = 0.01 model-time
  units, every 2nd step kept, so one 20 ms bin = 0.02 model-time units and one
  trial (1 s) spans about 1.5 turns of the attractor;
- latents are centred per dimension over all conditions and bins, then divided
  by their largest absolute value (all dimensions together), so they lie in [-1, 1];
- log-rates = log(base_rate * bin_width) + z @ W with W_ij ~ N(0, weight_scale^2),
  base_rate = 15 spikes/s and weight_scale = 1.5; this gives mean rates near
  20 spikes/s (about 0.4 expected counts per 20 ms bin) with a wide per-neuron
  dynamic range, close to the LFADS Lorenz data;
- true rates are reported as expected counts per bin (spikes/s * 0.02 s), the
  units in which a Poisson model infers them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dynamics import lorenz_trajectories

__all__ = ["LorenzSpikingDataset", "make_lorenz_spiking", "mask_bandwidth", "PUBLISHED_R2"]

#: R^2 of the SBTT demo (snel-repo/sbtt-demo result.png) for b = 29 ... 2 kept neurons per bin
PUBLISHED_R2 = {29: 0.911, 25: 0.908, 20: 0.891, 15: 0.888, 10: 0.852, 5: 0.757, 3: 0.590, 2: 0.339}


@dataclass
class LorenzSpikingDataset:
    """Spike counts and ground-truth rates; arrays are (n_trials, n_bins, n_neurons) float64.

    Rates are expected counts per bin. ``*_condition`` give each trial's condition index.
    """

    train_counts: np.ndarray
    valid_counts: np.ndarray
    train_rates: np.ndarray
    valid_rates: np.ndarray
    train_condition: np.ndarray
    valid_condition: np.ndarray
    latents: np.ndarray
    """(n_conditions, n_bins, 3) normalised Lorenz latents"""
    weights: np.ndarray
    """(3, n_neurons) latent -> log-rate weights"""
    bin_width: float


def make_lorenz_spiking(
    *,
    n_conditions: int = 65,
    trials_per_condition: int = 24,
    n_neurons: int = 29,
    n_bins: int = 50,
    bin_width: float = 0.02,
    base_rate: float = 15.0,
    weight_scale: float = 1.5,
    lorenz_dt: float = 0.01,
    steps_per_bin: int = 2,
    train_fraction: float = 0.8,
    seed: int = 0,
) -> LorenzSpikingDataset:
    """Build the protocol-1 dataset (defaults = the SBTT demo's sizes); see the module docstring."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    rng = np.random.default_rng(seed)
    raw = lorenz_trajectories(n_conditions, n_bins * steps_per_bin, dt=lorenz_dt, rng=rng)
    lat = raw[:, ::steps_per_bin]
    lat = lat - lat.reshape(-1, 3).mean(axis=0)
    lat = lat / np.abs(lat).max()
    weights = rng.normal(0.0, weight_scale, size=(3, n_neurons))
    log_rates = np.log(base_rate * bin_width) + lat @ weights  # (C, T, N)
    rates = np.exp(log_rates)
    cond = np.repeat(np.arange(n_conditions), trials_per_condition)
    all_rates = rates[cond]
    counts = rng.poisson(all_rates).astype(np.float64)
    n_total = cond.size
    n_train = int(round(train_fraction * n_total))
    perm = rng.permutation(n_total)
    tr, va = np.sort(perm[:n_train]), np.sort(perm[n_train:])
    return LorenzSpikingDataset(
        train_counts=counts[tr], valid_counts=counts[va],
        train_rates=all_rates[tr], valid_rates=all_rates[va],
        train_condition=cond[tr], valid_condition=cond[va],
        latents=lat, weights=weights, bin_width=bin_width,
    )


def mask_bandwidth(data: np.ndarray, bandwidth: int, rng: np.random.Generator | int | None = None
                   ) -> np.ndarray:
    """Keep exactly ``bandwidth`` randomly chosen neurons in every (trial, bin); NaN elsewhere.

    data: (n_trials, T, N). Returns a float64 copy.
    """
    data = np.asarray(data, dtype=np.float64)
    N = data.shape[-1]
    if not 1 <= bandwidth <= N:
        raise ValueError(f"bandwidth must be between 1 and {N}, got {bandwidth}")
    rng = np.random.default_rng(rng)
    order = np.argsort(rng.random(data.shape), axis=-1)
    keep = np.zeros(data.shape, dtype=bool)
    np.put_along_axis(keep, order[..., :bandwidth], True, axis=-1)
    return np.where(keep, data, np.nan)
