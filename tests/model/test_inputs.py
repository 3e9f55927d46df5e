"""Bad input gives clear errors; the config round-trips through JSON."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from napari_sbtt.model.config import EpochReport, SBTTConfig


def test_config_json_round_trip() -> None:
    cfg = SBTTConfig(factor_size=5, controller_size=16, calcium_ar_order=2,
                     calcium_decay_seconds=0.5, bin_width=0.033, max_seconds=90.0)
    back = SBTTConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert math.isclose(back.calcium_decay_bins, 0.5 / 0.033)


def test_config_rejects_unknown_and_bad_values() -> None:
    with pytest.raises(ValueError, match=r"unknown SBTTConfig key\(s\) \['hidden'\]"):
        SBTTConfig.from_dict({"hidden": 3})
    with pytest.raises(ValueError, match="learning_rate must be a finite number"):
        SBTTConfig(learning_rate=float("nan"))
    with pytest.raises(ValueError, match="max_seconds"):
        SBTTConfig(max_seconds=float("inf"))
    with pytest.raises(ValueError, match="coordinated_dropout must be in"):
        SBTTConfig(coordinated_dropout=1.0)
    with pytest.raises(ValueError, match="calcium_ar_order"):
        SBTTConfig(calcium_ar_order=3)
    with pytest.raises(ValueError, match="needs bin_width"):
        SBTTConfig(calcium_decay_seconds=0.4)
    with pytest.raises(ValueError, match="device"):
        SBTTConfig(device="gpu")
    with pytest.raises(ValueError, match="factor_size must be a positive integer"):
        SBTTConfig(factor_size=0)
    assert SBTTConfig().resolved_num_threads() >= 1


def test_epoch_report_round_trip() -> None:
    r = EpochReport(epoch=1, total_epochs=5, train_loss=1.0, valid_loss=2.0, heldout_loss=float("nan"),
                    seconds=0.1, best_epoch=1, best_valid_loss=2.0, is_best=True)
    assert EpochReport.from_dict(r.to_dict()).valid_loss == 2.0
    assert r.max_seconds is None and EpochReport.from_dict(r.to_dict()).max_seconds is None
    capped = EpochReport.from_dict({**r.to_dict(), "max_seconds": 600.0})  # the fit's cap rides along
    assert capped.max_seconds == 600.0
    with pytest.raises(ValueError, match="max_seconds"):
        EpochReport.from_dict({**r.to_dict(), "max_seconds": "600"})


def test_config_module_does_not_import_torch() -> None:
    code = ("import sys; import napari_sbtt.model.config as c; c.SBTTConfig(); "
            "import napari_sbtt; napari_sbtt.SBTTConfig; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


torch = pytest.importorskip("torch")
from napari_sbtt.model import SBTTConfig as _C  # noqa: E402
from napari_sbtt.model import fit_trials  # noqa: E402

FAST = _C(readin_size=4, encoder_size=4, generator_size=4, factor_size=2, ic_size=4,
          max_epochs=1, num_threads=1, device="cpu")


def _counts(shape=(6, 10, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(1.0, shape).astype(float)


@pytest.mark.parametrize(
    "data, match",
    [
        (np.zeros((10, 3)), r"3 dimensions \(n_trials, T, N\); got shape \(10, 3\).*data\[None\]"),
        (np.zeros((2, 2, 3)), "T = 2 bins per trial; need at least 3"),
        (np.full((2, 10, 3), np.nan), "no observed values at all"),
        (-_counts(), "negative values.*Poisson.*gaussian"),
        (np.where(np.arange(3) == 1, np.nan, _counts()), r"neuron\(s\) \[1\] are never observed in train"),
        (np.where(np.arange(10)[:, None] == 4, np.inf, _counts()), "contains inf.*NaN"),
    ],
)
def test_bad_training_data(data: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_trials(data, config=FAST)


def test_bad_arguments() -> None:
    x = _counts()
    with pytest.raises(ValueError, match="unknown likelihood 'gamma'.*poisson"):
        fit_trials(x, likelihood="gamma", config=FAST)
    with pytest.raises(ValueError, match="valid has 4 neurons but train has 3"):
        fit_trials(x, _counts((2, 10, 4)), config=FAST)
    with pytest.raises(ValueError, match="config must be an SBTTConfig"):
        fit_trials(x, config={"max_epochs": 1})  # type: ignore[arg-type]


@pytest.mark.slow
def test_all_nan_trials_are_dropped_with_warning() -> None:
    x = _counts((7, 10, 3))
    x[2] = np.nan
    with pytest.warns(UserWarning, match=r"dropping 1 trial\(s\) with no observed values \(indices \[2\]\)"):
        m = fit_trials(x, config=FAST)
    assert m.metadata["n_train_trials"] == 6 - round(0.2 * 6)


@pytest.mark.slow
def test_predict_rejects_other_shapes() -> None:
    m = fit_trials(_counts(), config=FAST)
    with pytest.raises(ValueError, match="expects 3 neurons but the data has 5"):
        m.predict(_counts((2, 10, 5)))
    with pytest.raises(ValueError, match=r"\(n_trials, T, N\) or \(T, N\)"):
        m.predict(np.zeros(4))
    with pytest.raises(ValueError, match="output must be 'rates' or 'signal'"):
        m.predict(_counts(), output="spikes")  # type: ignore[arg-type]
