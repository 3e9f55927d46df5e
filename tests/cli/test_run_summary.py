"""`napari-sbtt run` says what the fit costs (seconds against the cap, the most time left) and,
for a calcium result, the held-out verdict against OASIS in its summary line."""

from __future__ import annotations

import json

import pytest

from napari_sbtt.cli import main
from napari_sbtt.heldout import VERDICTS
from tests.factories import fake_calcium_result

TINY_MODEL = {"readin_size": 8, "encoder_size": 12, "generator_size": 12, "factor_size": 3, "ic_size": 8,
              "batch_size": 16}


@pytest.fixture
def sim_dir(tmp_path):
    d = tmp_path / "sim"
    assert main(["simulate", str(d), "--preset", "tiny", "--seed", "1"]) == 0
    return d


def _run_args(d, out, cfg):
    return ["run", str(d / "movie.tif"), "--rois", str(d / "rois.tif"), "--scan", str(d / "scan.json"),
            "--config", json.dumps(cfg), "--out", str(out)]


def test_a_calcium_run_shows_the_cap_the_time_left_and_the_verdict(sim_dir, tmp_path, capsys):
    capsys.readouterr()
    cfg = {"epochs": 3, "window_s": 1.0, "model": TINY_MODEL, "inference_shifts": 1, "max_seconds": 300}
    assert main(_run_args(sim_dir, tmp_path / "res", cfg)) == 0
    out, err = capsys.readouterr()
    # the bar counts seconds against the cap and bounds the time left; never tqdm's epoch rate
    assert "epoch 3/3" in err and "of the 300 s cap" in err and "at most" in err
    assert "epoch/s" not in err and "s/epoch" not in err
    verdict = json.loads((tmp_path / "res" / "result.json").read_text())["metrics"]["heldout"]["verdict"]
    assert verdict in VERDICTS
    line = out.strip().splitlines()[-1]
    assert "held-out" in line and (verdict in line or "not compared" in line)


def test_when_oasis_is_better_the_summary_says_so_and_where_its_estimate_is(sim_dir, tmp_path, capsys,
                                                                             monkeypatch):
    import numpy as np

    import napari_sbtt.recording as recording

    fake = fake_calcium_result(ids=(1, 2, 3, 4, 5, 6))
    fake.oasis_rates = np.zeros_like(fake.rates)
    fake.metrics["heldout"] = {
        "share": 0.1, "estimate": "deconvolution", "verdict": "OASIS better", "sbtt_beats_oasis": False,
        "samples": {"kind": "samples", "n_samples": 90, "r2": {"network": 0.2, "deconvolution": 0.3, "oasis": 0.5},
                    "se": {"deconvolution - oasis": 0.02}},
        "gaps": {"kind": "gaps", "n_samples": 60, "r2": {"network": 0.1, "deconvolution": 0.1}, "se": {}},
    }
    monkeypatch.setattr(recording, "run_recording", lambda *a, **k: fake)
    capsys.readouterr()
    assert main(_run_args(sim_dir, tmp_path / "res", {"epochs": 1})) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "OASIS 0.500: OASIS better" in line and "R² SBTT 0.300 (deconvolution)" in line
    assert "oasis_rates" in line and str(tmp_path / "res" / "arrays.npz") in line


@pytest.mark.parametrize("has_oasis", [True, False])
def test_no_clear_difference_points_to_oasis_only_where_the_result_has_it(sim_dir, tmp_path, capsys, monkeypatch,
                                                                          has_oasis):
    import numpy as np

    import napari_sbtt.recording as recording

    fake = fake_calcium_result(ids=(1, 2, 3, 4, 5, 6))
    fake.oasis_rates = np.zeros_like(fake.rates) if has_oasis else None  # an older result may lack it
    fake.metrics["heldout"] = {
        "share": 0.1, "estimate": "combined", "verdict": "no clear difference", "sbtt_beats_oasis": None,
        "samples": {"kind": "samples", "n_samples": 90, "r2": {"combined": 0.3, "oasis": 0.5}, "se": {}},
        "gaps": {"kind": "gaps", "n_samples": 60, "r2": {"combined": 0.4, "oasis": 0.41}, "se": {}},
    }
    monkeypatch.setattr(recording, "run_recording", lambda *a, **k: fake)
    capsys.readouterr()
    assert main(_run_args(sim_dir, tmp_path / "res", {"epochs": 1})) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "OASIS 0.410: no clear difference" in line
    assert ("oasis_rates" in line) is has_oasis
