"""load_recording / run_recording: every supported format, built in tmp_path, into a Recording and a result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.cli import CLI_WORDS
from napari_sbtt.core.errors import MissingOptionError
from napari_sbtt.core.readers import ReaderError
from napari_sbtt.core.scan import ScanPattern
from napari_sbtt.recording import Recording, load_recording, read_roi_rows, run_recording
from tests.factories import (
    LX,
    LY,
    make_caiman,
    make_labels,
    make_roi_movie,
    make_suite2p,
    tiny_config,
    write_nwb,
    write_scanimage_bigtiff,
)

h5py = pytest.importorskip("h5py")


def _check_result(result, rec: Recording) -> None:
    n_t, n = result.rates.shape
    assert n == rec.n_rois and n_t >= rec.n_frames
    assert np.isfinite(result.rates).all()
    np.testing.assert_array_equal(result.roi_ids, rec.roi_ids)
    prov = result.config["recording"]
    assert prov["format"] == rec.source_format and prov["mode"] == rec.mode
    json.dumps(result.config)  # provenance stays JSON-ready


# ============================================================================ TIFF
@pytest.mark.slow
def test_scanimage_tiff_gives_its_scan_pattern_and_runs(tmp_path: Path) -> None:
    labels = make_labels(32, 20)
    movie, _ = make_roi_movie(labels, 80, dtype="int16")
    p = tmp_path / "si.tif"
    write_scanimage_bigtiff(p, movie)
    tifffile.imwrite(tmp_path / "rois.tif", labels)
    with load_recording(p, rois=tmp_path / "rois.tif") as rec:
        assert rec.source_format == "tiff" and rec.mode == "movie"
        assert rec.scan is not None and rec.frame_period is None  # no typing by the user
        assert rec.scan.line_period == pytest.approx(6.3e-05) and rec.scan.bidirectional
        assert rec.scan.frame_period == pytest.approx(0.0025) and rec.scan.n_sweeps == 80
        np.testing.assert_array_equal(rec.roi_ids, [1, 2, 3])
        assert rec.provenance["timing"] == "scanimage"
        result = run_recording(rec, config=tiny_config(window_s=0.025))
    _check_result(result, rec)
    assert result.config["scan"]["line_period_s"] == pytest.approx(6.3e-05)
    assert result.grid.bin_width == pytest.approx(0.0025)


def test_plain_tiff_needs_timing_and_says_which_option(tmp_path: Path) -> None:
    labels = make_labels()
    movie, _ = make_roi_movie(labels, 30)
    p = tmp_path / "movie.tif"
    tifffile.imwrite(p, movie)
    np.save(tmp_path / "rois.npy", labels)
    (tmp_path / "scan.json").write_text("{}")
    with pytest.raises(ValueError) as e:
        load_recording(p, rois=tmp_path / "rois.npy")
    msg = str(e.value)
    assert str(p) in msg and "frame_period=" in msg and "scan=" in msg and "--" not in msg
    assert "scan.json lies beside it" in msg
    cli = e.value.render(CLI_WORDS)  # the command line names its own options instead
    assert "--frame-period" in cli and "--scan" in cli and "=" not in cli.split("acquired")[-1]
    with pytest.raises(ValueError, match=r"carries no ROIs; pass rois= a labels image"):
        load_recording(p, frame_period=0.05)
    with pytest.raises(ValueError, match=r"small.npy: the labels are \(8, 8\) but the frames of .*movie.tif are \(16, 20\)"):
        np.save(tmp_path / "small.npy", np.ones((8, 8), np.int32))
        load_recording(p, rois=tmp_path / "small.npy", frame_period=0.05)
    with load_recording(p, rois=labels, frame_period=0.05) as rec:
        assert rec.scan is None and rec.frame_period == 0.05 and rec.provenance["rois"] == "array"
    # ImageJ frame interval is timing enough
    q = tmp_path / "ij.tif"
    tifffile.imwrite(q, movie, imagej=True, metadata={"axes": "TYX", "finterval": 0.04})
    with load_recording(q, rois=labels) as rec:
        assert rec.frame_period == pytest.approx(0.04)


@pytest.mark.slow
def test_tiff_with_line_period_finds_the_acquired_rows_and_runs(tmp_path: Path) -> None:
    labels = make_labels()
    movie, _ = make_roi_movie(labels, 60)
    movie = movie.astype(np.float32)
    movie[0::2, 8:] = np.nan  # even frames acquire rows 0-7, odd frames rows 8-15
    movie[1::2, :8] = np.nan
    p = tmp_path / "strips.tif"
    tifffile.imwrite(p, movie)
    with pytest.raises(ValueError, match=r"row 8 of frame 0 is all NaN.*partial-field.*line_period="):
        load_recording(p, rois=labels, frame_period=0.02)
    with load_recording(p, rois=labels, line_period=0.001, frame_period=0.02) as rec:
        assert rec.scan is not None and len(rec.scan.cycle) == 2
        np.testing.assert_array_equal(rec.scan.rows_in_sweep(0), np.arange(8))
        np.testing.assert_array_equal(rec.scan.rows_in_sweep(1), np.arange(8, 16))
        result = run_recording(rec, config=tiny_config(window_s=0.2, factor=2))
    _check_result(result, rec)
    # 2 fine bins per sweep: ROI 1 (rows 2-4) is seen on even sweeps only, ROI 3 (rows 11-13) on odd
    # ones, ROI 2 (rows 6-9, half in each strip, min_coverage 0.5) on every sweep
    share = np.isfinite(result.observations).mean(axis=0)
    np.testing.assert_allclose(share, [0.25, 0.5, 0.25])
    # a scan that contradicts the movie names both
    bad = ScanPattern.full_raster(16, 59, 0.001)
    with pytest.raises(ValueError, match="59"):
        load_recording(p, rois=labels, scan=bad)
    with pytest.raises(ValueError, match="either scan= or frame_period="):
        load_recording(p, rois=labels, scan=bad, frame_period=0.02)


# ============================================================================ suite2p
@pytest.mark.slow
def test_suite2p_traces_with_med_rows_and_fs(tmp_path: Path) -> None:
    ref = make_suite2p(tmp_path / "suite2p" / "plane0", "ops", n_t=120, offset=50.0)
    rec = load_recording(tmp_path / "suite2p", prefer="movie")  # no data.bin: traces
    assert rec.source_format == "suite2p" and rec.mode == "traces"
    assert rec.traces.shape == (120, 3) and rec.neuropil_traces.shape == (120, 3)
    np.testing.assert_array_equal(rec.traces, ref["F"][[0, 1, 3]].T)
    np.testing.assert_array_equal(rec.roi_rows, [5, 5, 15])
    assert rec.frame_period == pytest.approx(1 / 30) and rec.n_rows == LY and rec.n_cols == LX
    result = run_recording(rec, config=tiny_config(neuropil=0.7))
    _check_result(result, rec)
    assert result.config["observations"]["neuropil"] == 0.7
    with pytest.raises(ValueError, match="leave out rois="):
        load_recording(tmp_path / "suite2p", rois=np.zeros((LY, LX), int))


@pytest.mark.slow
def test_suite2p_registered_movie_and_new_layout(tmp_path: Path) -> None:
    ref = make_suite2p(tmp_path / "plane0", "db", n_t=90, offset=5.0, binary=True)
    rec = load_recording(tmp_path / "plane0")
    assert rec.mode == "movie" and isinstance(rec.movie, np.memmap) and rec.movie.shape == (90, LY, LX)
    assert rec.frame_period == pytest.approx(1 / 15)  # settings.npy 'fs'
    np.testing.assert_array_equal(rec.movie[3], ref["movie"][3])
    result = run_recording(rec, config=tiny_config(window_s=0.6))
    _check_result(result, rec)
    tr = load_recording(tmp_path / "plane0", prefer="traces")
    assert tr.mode == "traces" and tr.traces.shape == (90, 3)


def test_suite2p_without_fs_names_the_field_and_the_option(tmp_path: Path) -> None:
    plane = tmp_path / "plane0"
    make_suite2p(plane, "none", n_t=40, offset=5.0)
    with pytest.warns(UserWarning, match="image size"), pytest.raises(ValueError, match=r"field 'fs' is missing.*frame_period="):
        load_recording(plane)
    with pytest.warns(UserWarning):
        rec = load_recording(plane, frame_period=0.1)
    assert rec.frame_period == 0.1 and rec.provenance["timing"] == "frame_period"


# ============================================================================ CaImAn
@pytest.mark.slow
def test_caiman_results_load_as_traces_with_centroid_rows(tmp_path: Path) -> None:
    p = tmp_path / "cnm.hdf5"
    ref = make_caiman(p, n_t=120, offset=20.0)
    rec = load_recording(p)
    assert rec.source_format == "caiman" and rec.mode == "traces"
    np.testing.assert_allclose(rec.traces, ref["C"].T.astype(np.float32))
    np.testing.assert_allclose(rec.roi_rows, [4, 4, 12], atol=0.6)  # component centres (rows 4, 4, 12)
    assert rec.frame_period == pytest.approx(1 / 30) and rec.n_rows == 18
    result = run_recording(rec, config=tiny_config())
    _check_result(result, rec)
    # a file without the frame rate names the field
    q = tmp_path / "nofr.hdf5"
    make_caiman(q, n_t=40)
    with h5py.File(q, "a") as f:
        del f["params/data/fr"]
        f["params/data/fr"] = "NoneType"
    with pytest.raises(ValueError, match=r"nofr.hdf5: .*'params/data/fr' is missing.*frame_period="):
        load_recording(q)


# ============================================================================ NWB
def _nwb_rois() -> list:
    lab = make_labels(12, 17)
    out = []
    for k in (1, 2, 3):
        y, x = np.nonzero(lab == k)
        out.append((y, x, np.ones(y.size)))
    return out


@pytest.mark.slow
def test_nwb_movie_and_traces(tmp_path: Path) -> None:
    pytest.importorskip("pynwb")
    lab = make_labels(12, 17)
    movie, truth = make_roi_movie(lab, 100)
    p = tmp_path / "rec.nwb"
    write_nwb(p, movie, _nwb_rois(), traces=truth, rate=20.0)
    rec = load_recording(p)
    try:
        assert rec.mode == "movie" and rec.movie.shape == (100, 12, 17) and rec.frame_period == 0.05
        np.testing.assert_array_equal(rec.labels, lab)
        assert rec.provenance["segmentation"]["name"] == "PlaneSegmentation"
        result = run_recording(rec, config=tiny_config(window_s=0.5))
    finally:
        rec.close()
    _check_result(result, rec)
    tr = load_recording(p, prefer="traces")
    assert tr.mode == "traces" and tr._closers == []  # traces in memory, file closed
    np.testing.assert_allclose(tr.traces, truth)
    np.testing.assert_allclose(tr.roi_rows, [3, 7.5, 11], atol=1e-9)  # ROI 3 clipped to row 11


def test_nwb_without_segmentation_is_refused_naming_the_field(tmp_path: Path) -> None:
    pytest.importorskip("pynwb")
    p = tmp_path / "raw.nwb"
    write_nwb(p, make_roi_movie(make_labels(8, 9), 3)[0], [], with_segmentation=False)
    with pytest.raises(ReaderError, match=r"raw.nwb: no ROI segmentation.*PlaneSegmentation"):
        load_recording(p)


# ============================================================================ traces files
@pytest.mark.slow
def test_traces_csv_with_rows_file_and_npy_with_labels(tmp_path: Path) -> None:
    labels = make_labels()
    _, truth = make_roi_movie(labels, 150)
    p = tmp_path / "traces.csv"
    np.savetxt(p, truth, delimiter=",", header="a,b,c", comments="")
    rows = tmp_path / "rows.csv"
    rows.write_text("row,col\n3,4.5\n7.5,11.5\n12,5.5\n")
    rec = load_recording(p, rois=rows, frame_period=0.05, n_rows=16)
    assert rec.source_format == "traces" and rec.labels is None and rec.n_rows == 16
    np.testing.assert_allclose(rec.roi_rows, [3, 7.5, 12])
    np.testing.assert_allclose(rec.roi_cols, [4.5, 11.5, 5.5])
    result = run_recording(rec, config=tiny_config(window_s=0.5))
    _check_result(result, rec)
    # (N, T) .npy + labels image: oriented by the longer axis, rows from the labels' centroids
    q = tmp_path / "traces.npy"
    np.save(q, truth.T)
    rec2 = load_recording(q, rois=labels, scan=ScanPattern.full_raster(16, 150, 0.002))
    assert rec2.traces.shape == (150, 3) and rec2.scan is not None and rec2.n_cols == 20
    np.testing.assert_allclose(rec2.roi_rows, [3, 7.5, 12])


def test_traces_malformed_inputs_name_the_file_and_the_fix(tmp_path: Path) -> None:
    labels = make_labels()
    p = tmp_path / "t.npy"
    np.save(p, np.ones((150, 3)))
    with pytest.raises(ValueError, match=r"t.npy: a traces file does not say where each ROI is; pass rois="):
        load_recording(p, frame_period=0.05)
    with pytest.raises(ReaderError, match=r"t.npy: traces have shape \(150, 3\) but the movie has 140 frames"):
        load_recording(p, rois=labels, scan=ScanPattern.full_raster(16, 140, 0.002))
    np.save(tmp_path / "rows.npy", np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"rows.npy: 2 ROI rows but .*t.npy has 3 traces"):
        load_recording(p, rois=tmp_path / "rows.npy", frame_period=0.05, n_rows=16)
    np.save(tmp_path / "rows3.npy", np.array([1.0, 2.0, 3.0]))
    with pytest.raises(MissingOptionError, match=r"pass n_rows=<lines per frame>") as missing:
        load_recording(p, rois=tmp_path / "rows3.npy", frame_period=0.05)
    assert "n_rows" in missing.value.options  # what to ask for, without reading the text
    with pytest.raises(MissingOptionError) as missing:
        load_recording(p, frame_period=0.05)
    assert missing.value.options == ("rois",)
    lab4 = labels.copy()
    lab4[0, 0] = 4
    with pytest.raises(ValueError, match="the labels image has 4 ROIs but .*t.npy has 3 traces"):
        load_recording(p, rois=lab4, frame_period=0.05)
    with pytest.raises(ValueError, match=r"ROI 1 has no row"):
        read_roi_rows(np.array([1.0, np.nan]))
    other = tmp_path / "notes"
    other.mkdir()
    with pytest.raises(ReaderError, match=r"notes: not a recording napari-sbtt reads"):
        load_recording(other)
    with pytest.raises(FileNotFoundError):
        load_recording(tmp_path / "missing.tif")
    with pytest.raises(ValueError, match="prefer must be"):
        load_recording(p, prefer="both")
    with pytest.raises(ValueError, match="frame_period must be a number of seconds from 1e-05 to 3600, got -1"):
        load_recording(p, rois=labels, frame_period=-1)


def test_recording_layer_imports_without_napari_or_torch() -> None:
    code = (
        "import sys; import napari_sbtt.recording, napari_sbtt.core.writers, napari_sbtt.cli; "
        "bad = [m for m in ('napari', 'qtpy', 'torch', 'pynwb') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
