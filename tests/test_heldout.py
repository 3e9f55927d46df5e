"""heldout: the held-out comparison of the network, the deconvolution and OASIS."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sbtt.core.baselines import oasis_available
from napari_sbtt.heldout import compare_heldout, heldout_mask


def _kernel(length: int = 120, tau_d: float = 15.0, tau_r: float = 1.5) -> np.ndarray:
    t = np.arange(length, dtype=float)
    k = np.exp(-t / tau_d) - np.exp(-(t + 1.0) / tau_r)
    return k / k.max()


class _KnownModel:
    """Stands in for a fitted calcium model: only its observation model is used."""

    def __init__(self, n: int, sd: float) -> None:
        self.n, self.sd = n, sd

    def observation_model(self) -> dict[str, np.ndarray]:
        return {"kernel": np.tile(_kernel(), (self.n, 1)), "baseline": np.zeros(self.n),
                "noise_sd": np.full(self.n, self.sd)}


def _recording(T: int = 4000, n: int = 4, sd: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    spikes = (rng.random((T, n)) < 0.02) * rng.uniform(0.5, 1.5, (T, n))
    clean = np.stack([np.convolve(spikes[:, i], _kernel())[:T] for i in range(n)], axis=1)
    return clean + sd * rng.standard_normal((T, n)), clean


def test_heldout_mask_is_a_seeded_share_and_leaves_every_roi_samples() -> None:
    obs = np.ones((1000, 3), bool)
    obs[:, 2] = False
    obs[:5, 2] = True  # an ROI with 5 samples keeps them all
    a = heldout_mask(obs, 0.1, seed=3)
    np.testing.assert_array_equal(a, heldout_mask(obs, 0.1, seed=3))
    assert not (a & ~obs).any()
    assert 0.07 < a[:, :2].mean() < 0.13
    assert not a[:, 2].any()


def test_the_comparison_scores_both_estimates_and_names_the_better_one_when_asked() -> None:
    values, clean = _recording()
    truth_net = compare_heldout(_KnownModel(4, 0.05), values, np.arange(values.shape[0]) * 0.01,
                                network_signal=lambda kept: clean, estimate="auto", oasis=False)
    assert truth_net.estimate == "network" and truth_net.verdict == "not compared"
    assert truth_net.r2["network"] > truth_net.r2["deconvolution"]
    assert truth_net.n_samples > 1000 and truth_net.sbtt_beats_oasis is None
    blind = compare_heldout(_KnownModel(4, 0.05), values, np.arange(values.shape[0]) * 0.01,
                            network_signal=lambda kept: np.zeros_like(kept), estimate="auto",
                            oasis=False)
    assert blind.estimate == "deconvolution"
    assert blind.r2["deconvolution"] - blind.r2["network"] > 2 * blind.se["deconvolution - network"]
    fixed = compare_heldout(_KnownModel(4, 0.05), values, np.arange(values.shape[0]) * 0.01,
                            network_signal=lambda kept: np.zeros_like(kept), oasis=False)
    assert fixed.estimate == "network"  # no switching unless asked


@pytest.mark.skipif(not oasis_available(), reason="oasis-deconv is not installed")
def test_oasis_is_scored_on_the_same_held_out_samples() -> None:
    values, clean = _recording(seed=2)
    res = compare_heldout(_KnownModel(4, 0.05), values, np.arange(values.shape[0]) * 0.01,
                          network_signal=lambda kept: clean)
    assert set(res.r2) == {"network", "deconvolution", "oasis"}
    assert res.verdict == "SBTT better" and res.sbtt_beats_oasis is True
    assert "OASIS" in res.summary() and res.to_dict()["sbtt_beats_oasis"] is True
    worse = compare_heldout(_KnownModel(4, 0.05), values, np.arange(values.shape[0]) * 0.01,
                            network_signal=lambda kept: np.zeros_like(kept))
    assert worse.verdict == "OASIS better" and "OASIS's estimate" in worse.summary()


def test_share_and_estimate_are_checked() -> None:
    values, clean = _recording(T=200)
    with pytest.raises(ValueError, match="share"):
        compare_heldout(_KnownModel(4, 0.05), values, np.arange(200) * 0.01,
                        network_signal=lambda kept: clean, share=1.5)
    with pytest.raises(ValueError, match="estimate"):
        compare_heldout(_KnownModel(4, 0.05), values, np.arange(200) * 0.01,
                        network_signal=lambda kept: clean, estimate="best")
