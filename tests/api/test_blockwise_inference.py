"""Inference block by block gives the numbers of all windows at once (issue 13, long recordings)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from napari_sbtt.core.windows import make_windows, merge_windows  # noqa: E402
from napari_sbtt.model import SBTTConfig, fit_trials  # noqa: E402
from napari_sbtt.pipeline import infer_observations  # noqa: E402


def _reference(model, obs, window, overlap, output, shifts):
    """The inference before it went blockwise: every window at once."""
    n_t, n = obs.shape
    acc = np.zeros((n_t, n))
    done = set()
    for k in range(shifts):
        off = int(round(k * window / shifts)) % window
        if off in done:
            continue
        done.add(off)
        data = np.concatenate([np.full((off, n), np.nan, obs.dtype), obs]) if off else obs
        wins = make_windows(data, window, overlap)
        acc += merge_windows(model.predict(wins.values, output=output), wins.starts, data.shape[0])[off:]
    return (acc / len(done)).astype(np.float32)


@pytest.fixture(scope="module")
def model_and_obs():
    rng = np.random.default_rng(0)
    obs = (rng.normal(size=(400, 6)) + 1).astype(np.float32)
    obs[rng.random(obs.shape) < 0.5] = np.nan
    cfg = SBTTConfig(readin_size=8, encoder_size=8, generator_size=8, factor_size=3, ic_size=8, batch_size=2,
                     max_epochs=1, num_threads=1, device="cpu")
    model = fit_trials(make_windows(obs, 24, 6).values, likelihood="gaussian", config=cfg, seed=0)
    return model, obs


@pytest.mark.parametrize("shifts", [1, 4])
@pytest.mark.parametrize(("output", "overlap"), [("rates", 6), ("signal", 6), ("rates", 21)])
def test_blockwise_inference_equals_all_windows_at_once(model_and_obs, shifts, output, overlap):
    model, obs = model_and_obs
    want = _reference(model, obs, 24, overlap, output, shifts)
    # 8 windows = one inference batch of this model; with an overlap of 21 a bin is in 8 windows,
    # so the windows a block carries over span blocks
    for block in (8, 16, None):
        got = infer_observations(model, obs, window=24, overlap=overlap, output=output, shifts=shifts,
                                 block_windows=block)
        np.testing.assert_array_equal(got, want)
