"""Readers against files written by the real tools (../shared/realdata; skipped when absent).

- a real suite2p plane folder (rochefort-lab/fissa-suite2p-example): 23 ROIs of which 21 are
  cells (iscell), 864 frames of 176 x 156 pixels, ``fs = 1`` Hz in ops.npy, no data.bin;
- a real ScanImage 3.8 TIFF (jefferis/scanimage): 30 frames of 64 x 64 uint16, bidirectional,
  ``state.acq.msPerLine = 1.92`` ms, ``state.acq.frameRate = 8.138`` Hz.

Both are GPL: they stay in ../shared, nothing is copied. suite2p's pickles are read by
whichever suite2p reader the package has (plain np.load or the restricted unpickler).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.core.readers import (
    detect_format,
    read_movie_info,
    read_suite2p,
    scan_pattern_from_tiff,
)
from napari_sbtt.recording import load_recording

REAL = Path(__file__).parents[2] / ".." / "shared" / "realdata"
SUITE2P = REAL / "suite2p-fissa-example" / "suite2p" / "plane0"
SI38 = REAL / "scanimage-3.8" / "Blank-IPA_1s_16r_032.tif"

needs_suite2p = pytest.mark.skipif(not (SUITE2P / "stat.npy").is_file(), reason="../shared/realdata is absent")
needs_si38 = pytest.mark.skipif(not SI38.is_file(), reason="../shared/realdata is absent")


@needs_suite2p
def test_real_suite2p_plane_folder_opens_as_traces() -> None:
    assert detect_format(SUITE2P) == "suite2p" and detect_format(SUITE2P.parent) == "suite2p"
    d = read_suite2p(SUITE2P)
    assert d.layout == "ops" and d.binary is None
    assert d.n_frames == 864 and d.shape == (176, 156) and d.fs == pytest.approx(1.0)
    assert d.n_rois == 21  # the cells among stat.npy's 23 ROIs (iscell.npy)
    raw_f = np.load(SUITE2P / "F.npy")
    iscell = np.load(SUITE2P / "iscell.npy")[:, 0] > 0
    assert raw_f.shape == (23, 864) and iscell.sum() == 21
    np.testing.assert_allclose(d.F, raw_f[iscell].T)  # (T, N), cells only
    for path in (SUITE2P, SUITE2P.parent):
        with load_recording(path) as rec:  # no data.bin: the traces, whatever `prefer` says
            assert rec.mode == "traces" and rec.traces.shape == (864, 21)
            assert rec.frame_period == pytest.approx(1.0) and rec.scan is None
            assert (rec.n_rows, rec.n_cols) == (176, 156) and rec.labels.shape == (176, 156)
            np.testing.assert_array_equal(rec.roi_ids, np.arange(1, 22))
            assert set(np.unique(rec.labels)) == set(range(22))
            assert rec.provenance["timing"] == "ops.npy field 'fs'"
            assert np.isfinite(rec.roi_rows).all() and rec.roi_rows.max() < 176


@needs_suite2p
def test_real_suite2p_plane_folder_in_the_napari_reader() -> None:
    from napari_sbtt.plugin._reader import get_reader

    reader = get_reader(str(SUITE2P))
    assert reader is not None
    layers = reader(str(SUITE2P))
    assert [kind for *_, kind in layers] == ["labels"]  # no registered movie was kept
    labels, meta, _ = layers[0]
    assert labels.shape == (176, 156) and int(labels.max()) == 21
    assert meta["metadata"]["frame_period_s"] == pytest.approx(1.0)


def _si38_labels() -> np.ndarray:
    labels = np.zeros((64, 64), np.int32)
    labels[10:16, 10:16] = 1
    labels[40:48, 30:38] = 2
    return labels


@needs_si38
def test_real_scanimage_38_tiff_timing() -> None:
    assert detect_format(SI38) == "tiff"
    info = read_movie_info(SI38)
    assert info.source == "scanimage" and info.shape == (30, 64, 64) and info.dtype == "<u2"
    assert info.line_period_s == pytest.approx(1.92e-3) and info.bidirectional is True
    assert info.frame_rate_hz == pytest.approx(8.13802083333333) and info.lines_per_frame == 64
    assert info.frame_period_s == pytest.approx(64 * 1.92e-3)  # 8.138 Hz = 64 lines of 1.92 ms
    assert info.frame_timestamps_s is None  # ScanImage 3 logs no per-frame timestamps
    assert info.metadata["state.software.version"] == pytest.approx(3.8)
    sp = scan_pattern_from_tiff(SI38)
    assert sp is not None and (sp.n_rows, sp.n_sweeps) == (64, 30) and sp.bidirectional
    assert sp.line_period == pytest.approx(1.92e-3) and sp.frame_period == pytest.approx(0.12288)
    assert sp.acquired_fraction() == 1.0 and not sp.has_sweep_starts
    np.testing.assert_allclose(sp.row_times()[1, :2], 0.12288 + np.array([0.5, 1.5]) * 1.92e-3)
    np.testing.assert_array_equal(sp.line_directions()[0, :4], [1, -1, 1, -1])
    with load_recording(SI38, rois=_si38_labels()) as rec:
        assert rec.mode == "movie" and rec.movie.shape == (30, 64, 64)
        assert rec.scan == sp and rec.provenance["timing"] == "scanimage"
        np.testing.assert_array_equal(np.asarray(rec.movie[:]), tifffile.imread(SI38))
        np.testing.assert_array_equal(rec.roi_ids, [1, 2])


@needs_si38
def test_real_scanimage_38_tiff_in_the_napari_reader() -> None:
    from napari_sbtt.core.scan import ScanPattern
    from napari_sbtt.plugin._reader import get_reader

    reader = get_reader(str(SI38))
    assert reader is not None
    ((data, meta, kind),) = reader(str(SI38))
    assert kind == "image" and data.shape == (30, 64, 64)
    md = meta["metadata"]
    assert md["source_format"] == "scanimage"
    assert md["frame_period_s"] == pytest.approx(0.12288) and md["line_period_s"] == pytest.approx(1.92e-3)
    sp = ScanPattern.from_dict(md["scan_pattern"])
    assert sp.bidirectional and (sp.n_rows, sp.n_sweeps) == (64, 30)
    assert meta["scale"][0] == pytest.approx(0.12288)


@needs_suite2p
@pytest.mark.slow
def test_real_suite2p_folder_at_1_hz_runs_with_the_defaults() -> None:
    """Its ops say 1 Hz: the window follows the rate (16 frames), no '--config window_s' needed."""
    from napari_sbtt.recording import run_recording

    with load_recording(SUITE2P) as rec:
        res = run_recording(rec, config={"epochs": 2, "inference_shifts": 1})
    assert res.rates.shape == (864, 21) and np.isfinite(res.rates).all()
    assert res.model.metadata["window_bins"] == 16
    assert res.metrics["heldout"]["samples"]["n_samples"] > 0
