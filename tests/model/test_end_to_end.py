"""End-to-end: SBTT on sparse Lorenz spiking data beats a no-dynamics baseline."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
from scipy.ndimage import gaussian_filter1d  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402

from napari_sbtt.core.lorenz_protocol import make_lorenz_spiking, mask_bandwidth  # noqa: E402
from napari_sbtt.model import SBTTConfig, fit_trials  # noqa: E402


def smoothed_observed(counts: np.ndarray, sigma: float) -> np.ndarray:
    """Baseline without dynamics: Gaussian-smoothed observed counts (normalised convolution
    over the observed bins of each neuron, so NaN bins are filled from their neighbours)."""
    obs = np.isfinite(counts)
    num = gaussian_filter1d(np.where(obs, counts, 0.0), sigma, axis=1, mode="nearest")
    den = gaussian_filter1d(obs.astype(float), sigma, axis=1, mode="nearest")
    mean = np.nanmean(counts, axis=(0, 1))
    return np.where(den > 1e-3, num / np.maximum(den, 1e-12), mean)


def r2(truth: np.ndarray, pred: np.ndarray) -> float:
    n = truth.shape[-1]
    return float(r2_score(truth.reshape(-1, n), pred.reshape(-1, n)))


@pytest.mark.slow
def test_sbtt_beats_smoothing_on_sparse_lorenz() -> None:
    d = make_lorenz_spiking(n_conditions=30, trials_per_condition=12, n_neurons=20, n_bins=40, seed=0)
    train = mask_bandwidth(d.train_counts, 8, 0)
    valid = mask_bandwidth(d.valid_counts, 8, 1)
    cfg = SBTTConfig(readin_size=32, encoder_size=32, generator_size=32, ic_size=32, factor_size=4,
                     batch_size=32, max_epochs=60, patience=30, learning_rate=1e-2, num_threads=1)
    # bounded by epochs, not seconds: CPU fits are deterministic per seed, so the outcome does not
    # depend on how busy the machine is (measured: R2 0.38 at 40 epochs, 0.41 at 70)
    model = fit_trials(train, valid, config=cfg, seed=0)
    r2_model = r2(d.valid_rates, model.predict(valid))
    r2_smooth = max(r2(d.valid_rates, smoothed_observed(valid, s)) for s in (1.0, 2.0, 4.0))
    r2_mean = r2(d.valid_rates, np.broadcast_to(np.nanmean(train, axis=(0, 1)), valid.shape))
    print(f"R2 model {r2_model:.3f}, smoothing {r2_smooth:.3f}, mean {r2_mean:.3f}")
    assert r2_model > r2_smooth + 0.1, (r2_model, r2_smooth)
    assert r2_model > r2_mean + 0.3, (r2_model, r2_mean)
