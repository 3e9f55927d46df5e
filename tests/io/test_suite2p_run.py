"""What real suite2p writes opens in napari-sbtt: the plane folder (data.bin, stat, ops, iscell) in
load_recording (movie and traces) and the napari reader, and the NWB that suite2p and neuroconv
write from it in our NWB reader.

The test that runs suite2p is slow and optional (``pip install suite2p``; skipped when it is not
importable). The same reader path is covered cheaply by the non-slow test on a plane folder in
suite2p's layout (tests/_formats.make_suite2p with data.bin).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.core.readers import detect_format, read_suite2p
from napari_sbtt.recording import load_recording
from tests.factories import make_suite2p


def check_plane_folder(plane: Path, n_t: int, shape: tuple[int, int], fs: float) -> int:
    """Open a suite2p plane folder with data.bin every way napari-sbtt can; returns the cell count."""
    from napari_sbtt.plugin._reader import get_reader

    assert detect_format(plane) == "suite2p" and detect_format(plane.parent) == "suite2p"
    raw_f = np.load(plane / "F.npy")
    iscell = np.load(plane / "iscell.npy")[:, 0] > 0
    n_cells = int(iscell.sum())
    binary = np.memmap(plane / "data.bin", dtype=np.int16, mode="r").reshape(n_t, *shape)
    with load_recording(plane) as rec:  # the registered movie (data.bin) and suite2p's ROIs
        assert rec.mode == "movie" and rec.movie.shape == (n_t, *shape) and rec.movie.dtype == np.int16
        np.testing.assert_array_equal(np.asarray(rec.movie[n_t // 2]), binary[n_t // 2])
        assert rec.frame_period == pytest.approx(1 / fs) and rec.labels.shape == shape
        np.testing.assert_array_equal(rec.roi_ids, np.arange(1, n_cells + 1))
        assert rec.provenance["labels_from"] == "stat.npy"
    with load_recording(plane.parent, prefer="traces") as rec:  # suite2p's own traces
        assert rec.mode == "traces" and rec.traces.shape == (n_t, n_cells)
        np.testing.assert_allclose(rec.traces, raw_f[iscell].T)
        assert rec.frame_period == pytest.approx(1 / fs) and (rec.n_rows, rec.n_cols) == shape
    reader = get_reader(str(plane))
    assert reader is not None
    (movie, mmeta, mkind), (labels, lmeta, lkind) = reader(str(plane))
    assert (mkind, lkind) == ("image", "labels") and movie.shape == (n_t, *shape)
    assert mmeta["scale"][0] == pytest.approx(1 / fs) and labels.shape == shape
    assert int(labels.max()) == n_cells
    return n_cells


def test_plane_folder_in_suite2p_layout_opens_every_way(tmp_path: Path) -> None:
    plane = tmp_path / "suite2p" / "plane0"
    make_suite2p(plane, "ops", n_t=40, binary=True)
    assert check_plane_folder(plane, 40, (20, 24), 30.0) == 3


def _movie_for_suite2p(folder: Path) -> tuple[np.ndarray, float]:
    """A 64 x 64 full-raster movie of 10 ROIs, 300 frames (int16 TIFF), from the simulator."""
    from napari_sbtt.core.synth import simulate

    sim = simulate("tiny", field_shape=(64, 64), n_rois=10, radius_range=(3.0, 4.5), scan_kind="full",
                   duration=None, n_sweeps=300, noise_level=0.5, line_period=5e-4, flyback=0.0, seed=3)
    movie = np.clip(np.round(sim.movie * 20), 0, 32000).astype(np.int16)
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "movie.tif", movie)
    return movie, 1.0 / sim.pattern.frame_period


@pytest.mark.slow
def test_real_suite2p_output_opens_in_napari_sbtt(tmp_path: Path) -> None:
    suite2p = pytest.importorskip("suite2p")
    if not hasattr(suite2p, "default_settings"):
        pytest.skip("this test drives suite2p >= 1.0 (run_s2p with settings and db)")
    from napari_sbtt.core.readers import read_nwb

    movie, fs = _movie_for_suite2p(tmp_path / "data")
    settings, db = suite2p.default_settings(), suite2p.default_db()
    db.update(data_path=[str(tmp_path / "data")], save_path0=str(tmp_path / "out"))
    settings.update(fs=fs, tau=0.7, torch_device="cpu", diameter=[8.0, 8.0])
    settings["registration"].update(nonrigid=False, do_bidiphase=False)
    settings["run"]["do_regmetrics"] = False
    # (suite2p's own NWB export, io.save_NWB, fails with pynwb 3+: its external TwoPhotonSeries lacks
    # num_samples; test_nwb_interop reads that layout built with pynwb instead)
    suite2p.run_s2p(db=db, settings=settings)
    plane = tmp_path / "out" / "suite2p" / "plane0"
    assert {"data.bin", "stat.npy", "ops.npy", "iscell.npy", "F.npy"} <= {p.name for p in plane.iterdir()}
    n_cells = check_plane_folder(plane, movie.shape[0], movie.shape[1:], fs)
    assert n_cells >= 3  # suite2p found the simulated cells

    # NWB written from this output by neuroconv (optional): the same ROIs and the raw traces
    from tests.factories import neuroconv_suite2p_nwb

    out = neuroconv_suite2p_nwb(tmp_path / "out" / "suite2p", tmp_path / "neuroconv.nwb")
    with read_nwb(out) as d:  # a square field: the writer tells how pixel_mask is ordered
        assert d.labels.shape == (64, 64)
        np.testing.assert_array_equal(d.labels, read_suite2p(plane, only_cells=False).labels)
        assert d.traces_rate_hz == pytest.approx(fs)
        np.testing.assert_allclose(d.traces, np.load(plane / "F.npy").T, rtol=1e-6)
