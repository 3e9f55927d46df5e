"""`napari-sbtt run INPUT` for every format, and `napari-sbtt export RESULT_DIR OUT.{npz,h5,csv,tif,nwb}`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.cli import main
from tests.factories import (
    LX,
    LY,
    make_caiman,
    make_labels,
    make_roi_movie,
    make_suite2p,
    tiny_config,
    write_nwb,
)

h5py = pytest.importorskip("h5py")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out.strip(), err


def _cfg(**kw: object) -> str:
    return json.dumps(tiny_config(**kw))


@pytest.mark.slow
def test_run_suite2p_folder_then_export_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_suite2p(tmp_path / "suite2p" / "plane0", "ops", n_t=120, offset=50.0)
    res = tmp_path / "res"
    code, out, err = _run(["run", str(tmp_path / "suite2p"), "--out", str(res), "--config", _cfg()], capsys)
    assert code == 0, err
    assert out.startswith("inferred 3 ROIs x 120 bins of 33.3 ms (done) -> ") and "\n" not in out
    has_nwb = importlib.util.find_spec("pynwb") is not None
    for name in ("r.npz", "r.h5", "r.csv", "r.tif") + (("r.nwb",) if has_nwb else ()):
        code, out, err = _run(["export", str(res), str(tmp_path / name)], capsys)
        assert code == 0, err
        assert out.startswith("exported 3 ROIs x 120 bins") and str(tmp_path / name) in out
    with np.load(tmp_path / "r.npz", allow_pickle=False) as z:
        rates = z["rates"]
        assert json.loads(str(z["result_json"]))["config"]["recording"]["format"] == "suite2p"
    with h5py.File(tmp_path / "r.h5", "r") as f:
        np.testing.assert_array_equal(f["rates"][()], rates)
    csv = np.genfromtxt(tmp_path / "r.csv", delimiter=",", names=True)
    np.testing.assert_allclose(csv["roi_2"], rates[:, 1], rtol=1e-5)
    movie = tifffile.imread(tmp_path / "r.tif")  # labels re-read from stat.npy
    assert movie.shape == (120, LY, LX) and movie[:, 5, 5].std() > 0
    pynwb = pytest.importorskip("pynwb")
    with pynwb.NWBHDF5IO(str(tmp_path / "r.nwb"), "r") as io:
        rrs = io.read().processing["ophys"]["Fluorescence"]["Deconvolved"]
        assert rrs.rate == pytest.approx(30.0) and len(rrs.rois.table.id) == 3
        np.testing.assert_array_equal(rrs.data[()], rates)
    # outputs are not overwritten without --overwrite
    code, _, err = _run(["export", str(res), str(tmp_path / "r.csv")], capsys)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    code, _, err = _run(["export", str(res), str(tmp_path / "r.csv"), "--what", "observations", "--overwrite"],
                        capsys)
    assert code == 0
    code, _, err = _run(["export", str(tmp_path), str(tmp_path / "x.h5")], capsys)
    assert code == 2 and "not a napari-sbtt result folder" in err
    code, _, err = _run(["export", str(res), str(tmp_path / "x.xlsx")], capsys)
    assert code == 2 and "cannot tell the export format" in err


@pytest.mark.slow
def test_run_plain_tiff_asks_for_the_timing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = make_labels()
    movie, _ = make_roi_movie(labels, 60)
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    tifffile.imwrite(tmp_path / "rois.tif", labels)
    base = ["run", str(tmp_path / "movie.tif"), "--rois", str(tmp_path / "rois.tif"), "--out", str(tmp_path / "res")]
    code, _, err = _run(base, capsys)
    assert code == 2 and "movie.tif" in err and "--frame-period" in err and "--scan" in err
    code, out, err = _run([*base, "--frame-period", "0.05", "--config", _cfg(window_s=0.5), "--epochs", "1"], capsys)
    assert code == 0, err
    assert out.startswith("inferred 3 ROIs x 60 bins of 50 ms")
    assert json.loads((tmp_path / "res" / "result.json").read_text())["config"]["epochs"] == 1  # flag wins
    code, out, err = _run(["export", str(tmp_path / "res"), str(tmp_path / "act.tif")], capsys)
    assert code == 0, err  # labels found again from --rois recorded in the result
    assert tifffile.imread(tmp_path / "act.tif").shape == (60, 16, 20)


@pytest.mark.slow
def test_run_nwb_and_export_links_the_input_rois(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pynwb = pytest.importorskip("pynwb")
    lab = make_labels(12, 17)
    movie, truth = make_roi_movie(lab, 80)
    rois = []
    for k in (1, 2, 3):
        y, x = np.nonzero(lab == k)
        rois.append((y, x, np.ones(y.size)))
    src = tmp_path / "rec.nwb"
    write_nwb(src, movie, rois, traces=truth, rate=20.0)
    code, out, err = _run(["run", str(src), "--prefer", "traces", "--out", str(tmp_path / "res"),
                           "--config", _cfg(window_s=0.5)], capsys)
    assert code == 0, err
    code, out, err = _run(["export", str(tmp_path / "res"), str(tmp_path / "out.nwb")], capsys)
    assert code == 0, err
    with pynwb.NWBHDF5IO(str(tmp_path / "out.nwb"), "r") as io:
        nwb = io.read()
        rrs = nwb.processing["ophys"]["Fluorescence"]["Deconvolved"]
        assert rrs.rois.table is nwb.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
        np.testing.assert_array_equal(rrs.rois.data[()], [0, 1, 2])
        assert rrs.data.shape == (80, 3) and rrs.rate == pytest.approx(20.0)


@pytest.mark.slow
def test_run_caiman_and_traces_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_caiman(tmp_path / "cnm.hdf5", n_t=100, offset=20.0)
    code, out, err = _run(["run", str(tmp_path / "cnm.hdf5"), "--out", str(tmp_path / "c"), "--config", _cfg()],
                          capsys)
    assert code == 0, err
    assert out.startswith("inferred 3 ROIs x 100 bins of 33.3 ms")
    code, _, err = _run(["run", str(tmp_path / "cnm.hdf5"), "--rois", str(tmp_path / "x.tif"),
                         "--out", str(tmp_path / "c2")], capsys)
    assert code == 2 and "leave out --rois" in err and "rois=" not in err
    _, truth = make_roi_movie(make_labels(), 100)
    np.savetxt(tmp_path / "F.csv", truth, delimiter=",")
    np.savetxt(tmp_path / "rows.csv", np.array([[3.0, 4.5], [7.5, 11.5], [12.0, 5.5]]), delimiter=",")
    base = ["run", str(tmp_path / "F.csv"), "--rois", str(tmp_path / "rows.csv"), "--frame-period", "0.05",
            "--out", str(tmp_path / "t"), "--config", _cfg(window_s=0.5)]
    code, _, err = _run(base, capsys)
    assert code == 2 and "--n-rows" in err
    code, out, err = _run([*base, "--n-rows", "16"], capsys)
    assert code == 0, err
    # a rows file gives no masks: the activity movie needs --rois, and says so
    code, _, err = _run(["export", str(tmp_path / "t"), str(tmp_path / "act.tif")], capsys)
    assert code == 2 and "--rois" in err
    code, _, err = _run(["export", str(tmp_path / "t"), str(tmp_path / "act.tif"), "--rois",
                         str(_save(tmp_path / "lab.npy", make_labels()))], capsys)
    assert code == 0, err


def _save(p: Path, a: np.ndarray) -> Path:
    np.save(p, a)
    return p


def test_extract_command_still_writes_observations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = make_labels()
    movie, _ = make_roi_movie(labels, 20)
    tifffile.imwrite(tmp_path / "m.tif", movie)
    tifffile.imwrite(tmp_path / "r.tif", labels)
    code, out, err = _run(["extract", str(tmp_path / "m.tif"), "--rois", str(tmp_path / "r.tif"),
                           "--frame-period", "0.05", "--out", str(tmp_path / "obs.npz")], capsys)
    assert code == 0, err
    assert out.startswith("extracted 3 ROIs x 20 bins of 50 ms, 60 samples (100.0% of neuron-bins observed)")
