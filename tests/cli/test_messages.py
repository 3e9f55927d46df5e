"""One-line errors in the words of the command line (issue 10, cases 4, 9 and 11).

Each case below used to end in a traceback, a misleading message, Python argument names shown to
CLI users, or (case 4) a "successful" run on fake samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.cli import CLI_WORDS, main
from napari_sbtt.core.dff import delta_f_over_f
from tests.factories import make_caiman, make_labels, make_roi_movie


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert "Traceback" not in err and line.startswith("napari-sbtt ")
    return line


@pytest.fixture
def rois(tmp_path: Path) -> Path:
    tifffile.imwrite(tmp_path / "rois.tif", make_labels())
    return tmp_path / "rois.tif"


def _run(movie: Path, rois: Path, *extra: str) -> list[str]:
    return ["run", str(movie), "--rois", str(rois), "--out", str(movie.parent / "res"), *extra]


# --------------------------------------------------------------------------- case 4
@pytest.mark.parametrize("config", [None, '{"dff": false}'])
def test_zero_filled_unacquired_rows_are_not_taken_as_data(tmp_path: Path, rois: Path, config: str | None,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    movie, _ = make_roi_movie(make_labels(), 60)
    movie[0::2, 8:] = 0  # a partial-field scan saved with 0 where rows were not acquired
    movie[1::2, :8] = 0
    tifffile.imwrite(tmp_path / "m.tif", movie)
    extra = ["--frame-period", "0.05"] + (["--config", config] if config else [])
    line = _error(_run(tmp_path / "m.tif", rois, *extra), capsys)
    assert "m.tif: row 8 of frame 0 is all 0, so this is a partial-field scan" in line
    assert "--line-period <seconds per line>" in line and "--scan" in line and "line_period=" not in line
    assert not (tmp_path / "res").exists()


def test_the_f0_message_names_cli_options_and_unacquired_zeros(tmp_path: Path, rois: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    movie = np.random.default_rng(0).normal(0, 1, size=(60, 16, 20)).astype(np.float32)  # F0 < 0
    tifffile.imwrite(tmp_path / "m.tif", movie)
    line = _error(_run(tmp_path / "m.tif", rois, "--frame-period", "0.05"), capsys)
    assert "m.tif: the dF/F baseline F0 is <= 0" in line
    assert "--config '{\"dff\": false}'" in line and "--line-period" in line and "dff=False" not in line
    with pytest.raises(ValueError, match="dff=False") as e:  # Python callers get Python words
        delta_f_over_f(np.full((5, 1), -1.0), np.arange(5.0)[:, None], np.array([1]))
    assert "rows the scan did not acquire with 0" in str(e.value)


# --------------------------------------------------------------------------- case 9
def test_a_corrupt_compressed_tiff_page_is_one_line(tmp_path: Path, rois: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    movie, _ = make_roi_movie(make_labels(), 30)
    tifffile.imwrite(tmp_path / "z.tif", movie, compression="zlib")
    data = bytearray((tmp_path / "z.tif").read_bytes())
    with tifffile.TiffFile(tmp_path / "z.tif") as tif:
        off, n = tif.pages[3].dataoffsets[0], tif.pages[3].databytecounts[0]
    data[off + 5 : off + n - 5] = b"\0" * (n - 10)
    (tmp_path / "z.tif").write_bytes(bytes(data))
    line = _error(_run(tmp_path / "z.tif", rois, "--frame-period", "0.05"), capsys)
    assert "z.tif: frame 3 cannot be decoded" in line and "damaged" in line


# --------------------------------------------------------------------------- case 11
def test_inf_pixels_are_reported_as_inf(tmp_path: Path, rois: Path, capsys: pytest.CaptureFixture[str]) -> None:
    movie, _ = make_roi_movie(make_labels(), 30)
    movie = movie.astype(np.float32)
    movie[5, 3, 4] = np.inf
    tifffile.imwrite(tmp_path / "inf.tif", movie)
    line = _error(_run(tmp_path / "inf.tif", rois, "--frame-period", "0.05"), capsys)
    assert "inf.tif: the movie holds an infinite value (inf) in frame 5, row 3" in line and "NaN in" not in line


def test_nan_in_an_acquired_row_names_cli_options(tmp_path: Path, rois: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    movie, _ = make_roi_movie(make_labels(), 30)
    movie = movie.astype(np.float32)
    movie[5, 3, 4] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", movie)
    line = _error(_run(tmp_path / "nan.tif", rois, "--frame-period", "0.05"), capsys)
    assert "holds NaN in frame 5, row 3" in line and "--scan" in line and "--line-period" in line
    assert "pattern=" not in line and "ScanPattern" not in line


def test_a_tiff_without_frames_says_so(tmp_path: Path, rois: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(UserWarning):
        tifffile.imwrite(tmp_path / "empty.tif", np.zeros((0, 16, 20), np.uint16))
    line = _error(_run(tmp_path / "empty.tif", rois, "--frame-period", "0.05"), capsys)
    assert "empty.tif: the TIFF holds no frames" in line and "Y and X axes" not in line


def test_detection_does_not_hide_the_readers_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h5py = pytest.importorskip("h5py")
    np.save(tmp_path / "rows.npy", np.array([1.0, 5.0, 9.0]))
    common = ["--rois", str(tmp_path / "rows.npy"), "--frame-period", "0.05", "--n-rows", "16"]
    (tmp_path / "t.csv").write_text("1,2,3\n4,x,6\n" + "\n".join("1,2,3" for _ in range(30)))
    line = _error(["run", str(tmp_path / "t.csv"), *common, "--out", str(tmp_path / "a")], capsys)
    assert "t.csv: line 2 holds 'x', which is not a number" in line
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    line = _error(["run", str(tmp_path / "obj.npy"), *common, "--out", str(tmp_path / "b")], capsys)
    assert "obj.npy: holds pickled Python objects" in line
    make_caiman(tmp_path / "cnm.hdf5")
    with h5py.File(tmp_path / "cnm.hdf5", "a") as f:
        del f["estimates/A"]
    line = _error(["run", str(tmp_path / "cnm.hdf5"), "--out", str(tmp_path / "c")], capsys)
    assert "cnm.hdf5: no 'estimates/A'" in line
    (tmp_path / "notes.txt").write_text("hello")
    line = _error(["run", str(tmp_path / "notes.txt"), *common, "--out", str(tmp_path / "d")], capsys)
    assert "notes.txt: only a header line, no data rows" in line


def test_a_traces_file_with_several_arrays_names_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "t.npz", a=np.ones((30, 3)), b=np.ones((30, 3)))
    np.save(tmp_path / "rows.npy", np.array([1.0, 5.0, 9.0]))
    args = ["run", str(tmp_path / "t.npz"), "--rois", str(tmp_path / "rows.npy"), "--frame-period", "0.05",
            "--n-rows", "16", "--out", str(tmp_path / "res")]
    line = _error(args, capsys)
    assert "holds several arrays (a, b); pass --dataset NAME" in line and "dataset=" not in line
    line = _error([*args, "--dataset", "c"], capsys)
    assert "no array 'c' (has a, b)" in line


def test_extract_without_timing_names_cli_options(tmp_path: Path, rois: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    movie, _ = make_roi_movie(make_labels(), 20)
    tifffile.imwrite(tmp_path / "m.tif", movie)
    line = _error(["extract", str(tmp_path / "m.tif"), "--rois", str(rois), "--out", str(tmp_path / "o.npz")],
                  capsys)
    assert "--scan <scan.json>" in line and "--frame-period <seconds per frame>" in line
    assert "pattern=ScanPattern" not in line and "frame_period=" not in line


def test_a_model_for_other_rois_names_the_adapt_setting(tmp_path: Path, rois: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    from napari_sbtt.model import SBTTConfig, SBTTModel
    from napari_sbtt.model.likelihoods import Normaliser

    SBTTModel.build(5, "gaussian", SBTTConfig(readin_size=4, encoder_size=4, generator_size=4, factor_size=2,
                                              ic_size=4), Normaliser.identity(5)).save(tmp_path / "m.safetensors")
    movie, _ = make_roi_movie(make_labels(), 30)
    tifffile.imwrite(tmp_path / "mv.tif", movie)
    line = _error(_run(tmp_path / "mv.tif", rois, "--frame-period", "0.05", "--model",
                       str(tmp_path / "m.safetensors")), capsys)
    assert "was trained on 5 ROIs but this recording has 3" in line
    assert "--config '{\"adapt\": true}'" in line and "model.adapt" not in line
    assert CLI_WORDS["adapt"] in line


def test_model_help_matches_what_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "a checkpoint (.safetensors) or a result folder holding model.safetensors" in out


def test_export_labels_message_names_rois(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from napari_sbtt.api import SBTTResult
    from napari_sbtt.core.scan import FineGrid

    SBTTResult(rates=np.ones((4, 3), np.float32), times=np.arange(4) + 0.5,
               observations=np.ones((4, 3), np.float32), roi_ids=np.arange(1, 4), grid=FineGrid(0.0, 1.0, 4),
               units="a.u.", metrics={}, config={}).save(tmp_path / "res")
    line = _error(["export", str(tmp_path / "res"), str(tmp_path / "a.tif")], capsys)
    assert "pass --rois <labels image .tif/.npy>" in line and "labels=" not in line
    assert json.loads((tmp_path / "res" / "result.json").read_text())["format"] == "napari-sbtt-result"
