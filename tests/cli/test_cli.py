"""The command line: simulate and extract, with their summaries and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_sbtt.cli import main
from napari_sbtt.core.scan import ScanPattern
from napari_sbtt.core.traces import Observations


def test_simulate_then_extract(tmp_path, capsys):
    sim_dir = tmp_path / "sim"
    assert main(["simulate", str(sim_dir), "--preset", "tiny", "--seed", "3"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "simulated preset 'tiny' seed 3" in line
    assert sorted(p.name for p in sim_dir.iterdir()) == [
        "config.json", "movie.tif", "rois.tif", "scan.json", "truth.npz"
    ]
    movie = tifffile.imread(sim_dir / "movie.tif")
    pattern = ScanPattern.from_json(sim_dir / "scan.json")
    np.testing.assert_array_equal(np.isnan(movie).all(axis=2), ~pattern.frame_mask())

    out = tmp_path / "obs.npz"
    assert main(["extract", str(sim_dir / "movie.tif"), "--rois", str(sim_dir / "rois.tif"),
                 "--scan", str(sim_dir / "scan.json"), "--out", str(out)]) == 0
    assert "extracted" in capsys.readouterr().out
    obs = Observations.from_npz(out)
    assert obs.values.shape == (pattern.fine_grid(1).n_bins, tifffile.imread(sim_dir / "rois.tif").max())

    # a second run refuses to overwrite, and says how
    assert main(["simulate", str(sim_dir), "--preset", "tiny"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["simulate", str(sim_dir), "--preset", "tiny", "--overwrite"]) == 0


def test_extract_with_a_scan_of_another_movie(tmp_path, capsys):
    sim_dir = tmp_path / "sim"
    main(["simulate", str(sim_dir), "--preset", "tiny"])
    other = ScanPattern.full_raster(32, 7, 1e-3)
    other.to_json(tmp_path / "other.json")
    rc = main(["extract", str(sim_dir / "movie.tif"), "--rois", str(sim_dir / "rois.tif"),
               "--scan", str(tmp_path / "other.json"), "--out", str(tmp_path / "o.npz")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "scan pattern does not belong to this movie" in err
    assert not (tmp_path / "o.npz").exists()


def test_unknown_preset_is_named(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "x"), "--preset", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--version"], ["simulate", "--help"]])
def test_help_and_version(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0


def test_indicator_and_onset_delay_flags_reach_the_run_config():
    from napari_sbtt.cli import CliError, _run_config, build_parser

    args = build_parser().parse_args(["run", "m.tif", "--out", "o", "--indicator", "GCaMP8s",
                                      "--onset-delay-ms", "20",
                                      "--config", '{"model": {"batch_size": 4}}'])
    cfg = _run_config(args)
    assert cfg["indicator"] == "GCaMP8s"
    assert cfg["onset_delay_s"] == 0.02 and cfg["model"] == {"batch_size": 4}  # ms -> s in one place
    bad = build_parser().parse_args(["run", "m.tif", "--out", "o", "--onset-delay-ms", "-5"])
    poisson = build_parser().parse_args(["run", "m.tif", "--out", "o", "--likelihood", "poisson",
                                         "--onset-delay-ms", "20"])
    with pytest.raises(CliError, match="--onset-delay-ms must be 0 unless the likelihood is 'calcium'.*got 20$"):
        _run_config(poisson)
    with pytest.raises(CliError, match="--onset-delay-ms must be a number from 0 to 1000 ms, got -5"):
        _run_config(bad)
    # an optional setting takes 'none'
    cfg = _run_config(build_parser().parse_args(["run", "m.tif", "--out", "o", "--max-seconds", "none",
                                                 "--size", "small", "--threads", "2"]))
    assert cfg == {"max_seconds": None, "size": "small", "threads": 2}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "m.tif", "--out", "o", "--indicator", "GFP"])
    # the demo's simulated recording fixes its indicator
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--indicator", "GCaMP8m"])
