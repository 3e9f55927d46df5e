"""Memory follows the image, never the largest ROI id (issue 10, case 8): a labels image may use id
2**40 (ids need not be small or contiguous) in the activity movie, its TIFF export, the per-ROI
rows and sample rates, ROI centroids, neuropil annuli and extraction."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.core.activity import ActivityMovie, roi_rows, roi_sample_rates
from napari_sbtt.core.labels import label_index
from napari_sbtt.core.neuropil import annulus_pixels
from napari_sbtt.core.traces import extract_observations
from napari_sbtt.core.writers import write_activity_tiff

BIG = 2**40


def _labels() -> np.ndarray:
    labels = np.zeros((16, 20), np.int64)
    labels[2:5, 3:7] = 7
    labels[8:12, 10:14] = BIG
    return labels


class _Peak:
    def __enter__(self) -> "_Peak":
        tracemalloc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def test_label_index_maps_ids_to_columns() -> None:
    idx = label_index(_labels(), np.array([BIG, 7]))
    assert idx[3, 4] == 2 and idx[9, 11] == 1 and idx[0, 0] == 0
    assert label_index(_labels(), np.array([7, 7]))[3, 4] == 2  # the last copy, as table[ids] = cols


def test_activity_movie_and_its_tiff_with_a_huge_id(tmp_path: Path) -> None:
    rates = np.arange(10, dtype=np.float32)[:, None] * np.array([[1.0, -1.0]], np.float32)
    with _Peak() as peak:
        movie = ActivityMovie(rates, _labels(), np.array([7, BIG]))
        frame = movie[3]
        write_activity_tiff(tmp_path / "a.tif", rates, _labels(), np.array([7, BIG]), bin_width=0.1)
    assert peak.bytes < 20e6
    assert frame[3, 4] == 3 and frame[9, 11] == -3 and frame[0, 0] == 0
    assert tifffile.imread(tmp_path / "a.tif")[5, 9, 11] == -5
    with pytest.raises(ValueError, match=r"ROI id\(s\) \[1099511627777\] of the result have no pixels"):
        write_activity_tiff(tmp_path / "b.tif", rates, _labels(), np.array([7, BIG + 1]))


def test_roi_rows_and_sample_rates_with_a_huge_id() -> None:
    rows = roi_rows(_labels(), np.array([BIG, 7, BIG]))
    assert rows.shape == (3, 16) and rows[0, 8:12].all() and not rows[0, :8].any() and rows[1, 2:5].all()
    assert (rows[2] == rows[0]).all()
    mask = np.zeros((4, 16), bool)
    mask[:, 8] = True
    np.testing.assert_allclose(roi_sample_rates(mask, _labels(), np.array([7, BIG]), 2.0), [0.0, 2.0])


def test_extraction_with_neuropil_and_a_huge_id() -> None:
    labels = _labels()
    movie = np.random.default_rng(0).normal(100, 1, size=(12, 16, 20))
    ring = annulus_pixels(labels, np.array([BIG]), inner=1, outer=3)[0]
    assert ring.size and not np.isin(labels.ravel()[ring], [7, BIG]).any()
    with _Peak() as peak:
        obs = extract_observations(movie, labels, frame_period=0.05, neuropil=0.7)
    assert peak.bytes < 50e6
    assert obs.roi_ids.tolist() == [7, BIG] and np.isfinite(obs.values).any(axis=0).all()


def test_centroids_of_a_traces_recording_with_a_huge_id(tmp_path: Path) -> None:
    from napari_sbtt.recording import load_recording

    np.save(tmp_path / "t.npy", np.random.default_rng(1).normal(100, 1, size=(40, 2)))
    np.save(tmp_path / "labels.npy", _labels())
    with load_recording(tmp_path / "t.npy", rois=tmp_path / "labels.npy", frame_period=0.05) as rec:
        np.testing.assert_allclose(rec.roi_rows, [3.0, 9.5])
        assert rec.roi_ids.tolist() == [7, BIG]


def test_cli_export_tif_with_a_huge_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from napari_sbtt.api import SBTTResult
    from napari_sbtt.cli import main
    from napari_sbtt.core.scan import FineGrid

    np.save(tmp_path / "labels.npy", _labels())
    SBTTResult(rates=np.ones((4, 2), np.float32), times=np.arange(4) + 0.5,
               observations=np.ones((4, 2), np.float32), roi_ids=np.array([7, BIG]),
               grid=FineGrid(0.0, 1.0, 4), units="a.u.", metrics={}, config={}).save(tmp_path / "res")
    code = main(["export", str(tmp_path / "res"), str(tmp_path / "a.tif"), "--rois", str(tmp_path / "labels.npy")])
    assert code == 0, capsys.readouterr().err
    assert tifffile.imread(tmp_path / "a.tif").shape == (4, 16, 20)


def test_napari_writer_keeps_a_huge_id(tmp_path: Path) -> None:
    from napari_sbtt.api import SBTTResult
    from napari_sbtt.core.scan import FineGrid
    from napari_sbtt.plugin._writer import save_result_with_labels

    res = SBTTResult(rates=np.ones((4, 2), np.float32), times=np.arange(4) + 0.5,
                     observations=np.ones((4, 2), np.float32), roi_ids=np.array([7, BIG]),
                     grid=FineGrid(0.0, 1.0, 4), units="a.u.", metrics={}, config={})
    save_result_with_labels(tmp_path / "r.sbtt", res, _labels())
    assert np.load(tmp_path / "r.sbtt" / "labels.npy").max() == BIG  # not wrapped to int32
