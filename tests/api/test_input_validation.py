"""Strict types and sane bounds at every boundary (issue 10, cases 5, 9 and 13).

Settings arrive as JSON (``--config``, scan.json, checkpoint metadata): ``"false"`` is not a
boolean, ``"0.001"`` not a number, ``32.0`` not a row count. Physical settings are bounded far
outside real microscopes. Every mistake is one line (rc 2) naming the file or option and the
field, before any work is done.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.api import RunConfig
from napari_sbtt.cli import main
from napari_sbtt.core.scan import ScanPattern
from napari_sbtt.model.config import SBTTConfig
from tests.factories import make_labels, make_roi_movie


def _movie_args(tmp_path: Path) -> list[str]:
    labels = make_labels()
    movie, _ = make_roi_movie(labels, 60)
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    tifffile.imwrite(tmp_path / "rois.tif", labels)
    return ["run", str(tmp_path / "movie.tif"), "--rois", str(tmp_path / "rois.tif"), "--out", str(tmp_path / "res")]


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err  # one line, before any progress bar
    return err


# --------------------------------------------------------------------------- RunConfig (case 5)
@pytest.mark.parametrize("settings, message", [
    ({"dff": "false"}, "'dff' must be true or false"),
    ({"adapt": "no"}, "'adapt' must be true or false"),
    ({"seed": "x"}, "'seed' must be a whole number"),
    ({"seed": 1.5}, "'seed' must be a whole number"),
    ({"epochs": True}, "'epochs' must be a whole number"),
    ({"factor": 2.0}, "'factor' must be a whole number"),
    ({"model": [1]}, "'model' must be a JSON object"),
    ({"model": {"generator_size": "64"}}, "generator_size must be a positive integer"),
    ({"model": {"calcium_ar_order": True}}, "calcium_ar_order must be 1 or 2"),
    ({"window_s": "1"}, "'window_s' must be a number"),
    ({"min_coverage": 0}, "'min_coverage' must be a number above 0"),
    ({"neuropil": "0.7"}, "'neuropil' must be a number"),
    ({"inference_shifts": 0}, "'inference_shifts' must be a whole number"),
    ({"indicator": 5}, "'indicator' must be an indicator name"),
    ({"likelihood": "Gaussian"}, "'likelihood' must be one of"),
    ({"device": "gpu"}, "'device' must be"),
    ({"max_seconds": float("inf")}, "'max_seconds' must be a number"),
])
def test_run_settings_are_strictly_typed(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(settings)


def test_run_settings_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        RunConfig.from_dict([("dff", False)])  # type: ignore[arg-type]


@pytest.mark.parametrize("config, message", [
    ('{"dff": "false"}', "'dff' must be true or false"),
    ('{"seed": "x"}', "'seed' must be a whole number"),
    ('{"model": [1]}', "'model' must be a JSON object"),
])
def test_cli_config_type_errors_are_one_line_before_any_work(tmp_path: Path, config: str, message: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    err = _one_line_error([*_movie_args(tmp_path), "--frame-period", "0.05", "--config", config], capsys)
    assert f"--config {config}: run setting {message}" in err


def test_sbtt_config_booleans_and_integers_are_strict() -> None:
    with pytest.raises(ValueError, match="variational_ic must be True or False"):
        SBTTConfig(variational_ic="false")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="calcium_ar_order must be 1 or 2"):
        SBTTConfig(calcium_ar_order=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="encoder_size must be a positive integer"):
        SBTTConfig(encoder_size=8.0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- scan.json (cases 5 and 9)
def _scan(**change: object) -> dict:
    d = ScanPattern.full_raster(16, 60, 0.002).to_dict()
    d.update(change)
    return d


@pytest.mark.parametrize("d, message", [
    (_scan(bidirectional="no"), "field 'bidirectional' must be true or false, got 'no'"),
    (_scan(line_period_s="0.002"), "field 'line_period_s' must be a number of seconds, got '0.002'"),
    (_scan(n_rows=None), "field 'n_rows' must be a whole number, got None"),
    (_scan(n_rows=16.0), "field 'n_rows' must be a whole number, got 16.0"),
    (_scan(frame_period_s=[0.03]), "field 'frame_period_s' must be null or a number"),
    (_scan(cycle=[["1", "2"]]), "field 'cycle' must be a list of per-sweep lists"),
    (_scan(version="1"), "field 'version' must be a whole number"),
    ([_scan()], "a scan pattern must be a JSON object, got a JSON array"),
])
def test_scan_json_fields_are_strictly_typed(tmp_path: Path, d: object, message: str) -> None:
    p = tmp_path / "scan.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="scan.json: .*" + message.replace("(", r"\(").replace("[", r"\[")):
        ScanPattern.from_json(p)


def test_bidirectional_no_is_not_bidirectional_any_more() -> None:
    assert not ScanPattern.from_dict(_scan(bidirectional=False)).bidirectional
    with pytest.raises(ValueError):
        ScanPattern.from_dict(_scan(bidirectional="no"))


def test_cli_bad_scan_json_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "scan.json").write_text(json.dumps(_scan(line_period_s="0.002")))
    err = _one_line_error([*_movie_args(tmp_path), "--scan", str(tmp_path / "scan.json")], capsys)
    assert "scan.json" in err and "'line_period_s'" in err


# --------------------------------------------------------------------------- bounds (case 13)
@pytest.mark.parametrize("flags, message", [
    (["--onset-delay-ms", "1e9"], "--onset-delay-ms must be a number from 0 to 1000 ms"),
    (["--onset-delay-ms", "-5"], "--onset-delay-ms must be a number from 0 to 1000 ms"),
    (["--factor", "100000000"], "--factor must be a whole number from 1 to 1024"),
    (["--line-period", "1e-300"], "--line-period must be a number of seconds from 1e-06 to 1"),
    (["--frame-period", "1e9"], "--frame-period must be a number of seconds from 1e-05 to 3600"),
    (["--frame-period", "nan"], "--frame-period must be a number of seconds"),
])
def test_cli_physical_settings_are_bounded(tmp_path: Path, flags: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    extra = [] if any(f in flags for f in ("--frame-period", "--line-period")) else ["--frame-period", "0.05"]
    err = _one_line_error([*_movie_args(tmp_path), *extra, *flags], capsys)
    assert message in err and "frame_period=" not in err and "line_period=" not in err


def test_library_physical_settings_are_bounded() -> None:
    with pytest.raises(ValueError, match="line_period must be a number of seconds from 1e-06"):
        ScanPattern.full_raster(16, 10, 1e-300)
    with pytest.raises(ValueError, match="line_period must be a number of seconds from 1e-06"):
        ScanPattern.from_dict(_scan(line_period_s=1e-300))
    with pytest.raises(ValueError, match="frame_period must be a number of seconds from 1e-05 to 3600"):
        ScanPattern.full_raster(16, 10, 0.001, frame_period=1e7)
    with pytest.raises(ValueError, match="factor must be a whole number from 1 to 1024"):
        ScanPattern.full_raster(16, 10, 0.001).fine_grid(10**8)
    with pytest.raises(ValueError, match="calcium_delay_seconds must be None or a number of seconds from 0 to 1"):
        SBTTConfig(calcium_delay_seconds=1e6, bin_width=0.01)
    with pytest.raises(ValueError, match="'factor' must be a whole number from 1 to 1024"):
        RunConfig(factor=10**8)


def test_cli_extract_factor_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = make_labels()
    movie, _ = make_roi_movie(labels, 20)
    tifffile.imwrite(tmp_path / "m.tif", movie)
    np.save(tmp_path / "rois.npy", labels)
    err = _one_line_error(["extract", str(tmp_path / "m.tif"), "--rois", str(tmp_path / "rois.npy"),
                           "--frame-period", "0.05", "--factor", "100000000", "--out", str(tmp_path / "o.npz")],
                          capsys)
    assert "factor must be a whole number from 1 to 1024" in err


# --------------------------------------------------------------------------- result.json (case 5)
@pytest.mark.parametrize("field, value, message", [
    ("grid", {"t0": "0", "bin_width": 1.0, "n_bins": 4}, "field 'grid' must be finite numbers"),
    ("grid", [0, 1, 4], "field 'grid' must be an object"),
    ("units", None, "field 'units' must be text"),
    ("stopped", "no", "field 'stopped' must be true or false"),
    ("grid", {"t0": 0.0, "bin_width": 1.0, "n_bins": 5}, "shapes do not fit together or the grid of 5 bins"),
])
def test_an_edited_result_folder_gets_a_message(tmp_path: Path, field: str, value: object, message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from napari_sbtt.api import SBTTResult, load_result
    from napari_sbtt.core.scan import FineGrid

    SBTTResult(rates=np.ones((4, 3), np.float32), times=np.arange(4) + 0.5,
               observations=np.ones((4, 3), np.float32), roi_ids=np.arange(1, 4), grid=FineGrid(0.0, 1.0, 4),
               units="a.u.", metrics={}, config={}).save(tmp_path / "res")
    meta = json.loads((tmp_path / "res" / "result.json").read_text())
    meta[field] = value
    (tmp_path / "res" / "result.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=message):
        load_result(tmp_path / "res")
    err = _one_line_error(["export", str(tmp_path / "res"), str(tmp_path / "r.csv")], capsys)
    assert message in err
