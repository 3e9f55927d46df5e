"""The Data widget opens every recording format (load_recording) in a real viewer (Xvfb).

Movie mode adds the lazy movie and its ROIs and chooses them; traces mode adds the ROIs and
stores the recording in the viewer's session for the Train widget. Nothing is trained here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.core.activity import ActivityMovie
from napari_sbtt.core.scan import FineGrid, ScanPattern

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_sbtt.api import SBTTResult  # noqa: E402
from napari_sbtt.plugin._layers import (  # noqa: E402
    FRAME_PERIOD_KEY,
    LINE_PERIOD_KEY,
    RESULT_KEY,
    SCAN_KEY,
    show_result,
)
from napari_sbtt.plugin._state import session_for  # noqa: E402
from tests.factories import (  # noqa: E402
    LX,
    LY,
    make_caiman,
    make_labels,
    make_movie,
    make_roi_movie,
    make_suite2p,
    write_nwb,
    write_scanimage_bigtiff,
)

pytestmark = pytest.mark.gui


def open_data(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-sbtt", "Data")
    return widget


def pick_in_dialog(monkeypatch, *, file: Path | None = None, folder: Path | None = None) -> None:
    """The user picks ``file`` (or ``folder``) in the next file dialog."""
    from qtpy.QtWidgets import QFileDialog

    if file is not None:
        monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(file), "")))
    if folder is not None:
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder)))


# --------------------------------------------------------------------------- suite2p
def test_suite2p_folder_opens_its_registered_movie_and_rois(viewer, tmp_path, monkeypatch):
    plane = tmp_path / "suite2p" / "plane0"
    make_suite2p(plane, "ops", n_t=50, binary=True)
    data = open_data(viewer)
    pick_in_dialog(monkeypatch, folder=plane)
    data.open_folder_button.clicked()  # the user picks the plane folder
    movie, labels = viewer.layers["suite2p plane0"], viewer.layers["suite2p plane0 ROIs"]
    assert isinstance(movie.data, np.memmap) and movie.data.shape == (50, LY, LX)  # lazy, not loaded
    assert sorted(np.unique(labels.data)) == [0, 1, 2, 3]  # the 3 cells of iscell.npy
    assert movie.metadata[FRAME_PERIOD_KEY] == pytest.approx(1 / 30)  # ops.npy 'fs'
    assert movie.scale[0] == pytest.approx(1 / 30)
    assert data.movie.value.name == movie.name and data.rois.value.name == labels.name
    assert data.frame_period_ms.value == pytest.approx(1e3 / 30, abs=1e-3)  # the field shows 3 decimals
    assert data.settings.saved() == {}  # timing read from the file is not remembered as typed
    assert "fs" in data.opened.text and "3 ROIs" in data.info.text and data.message.text == ""
    s = session_for(viewer)
    assert s.recording is None and s.movie_layer == movie.name and s.labels_layer == labels.name
    rec = s.open_recordings[-1]
    assert movie.data is rec.movie and rec.mode == "movie"


def test_suite2p_folder_as_traces_sets_the_session_recording(viewer, tmp_path):
    plane = tmp_path / "plane0"
    make_suite2p(plane, "ops", n_t=50, binary=True)
    viewer.add_image(np.zeros((5, 8, 8), np.float32), name="other movie")
    data = open_data(viewer)
    assert data.movie.value.name == "other movie"
    data.prefer_traces.value = True
    rec = data.open_recording(plane)
    assert rec is not None and rec.mode == "traces" and rec.traces.shape == (50, 3)
    s = session_for(viewer)
    assert s.recording is rec and s.recording_labels == "suite2p plane0 ROIs"
    assert type(viewer.layers[s.recording_labels]).__name__ == "Labels"
    assert data.movie.value is None and s.movie_layer is None  # no movie chosen: fit the traces
    assert data.info.text == "traces: 3 ROIs x 50 frames from plane0/F.npy; timing: ops.npy field 'fs'"
    assert data.message.text == "" and data.validate()
    assert data.frame_period_ms.value == pytest.approx(1e3 / 30, abs=1e-3)  # the field shows 3 decimals
    viewer.add_image(np.zeros((5, 8, 8), np.float32), name="added later")
    assert data.movie.value is None and s.recording is rec  # no movie is picked behind the user's back
    data.movie.value = viewer.layers["other movie"]  # the user chooses a movie again
    assert s.recording is None and s.recording_labels is None and s.movie_layer == "other movie"


def test_a_folder_that_is_not_a_recording_gives_a_message(viewer, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    data = open_data(viewer)
    pick_in_dialog(monkeypatch, folder=tmp_path / "empty")
    data.open_folder_button.clicked()
    assert data.message.is_error and "not a recording" in data.message.text
    assert len(viewer.layers) == 0 and session_for(viewer).recording is None
    assert data.open_recording(tmp_path / "missing.tif") is None
    assert "not found" in data.message.text


# --------------------------------------------------------------------------- CaImAn, NWB
def test_caiman_results_open_as_traces(viewer, tmp_path):
    pytest.importorskip("h5py")
    p = tmp_path / "cnm.hdf5"
    make_caiman(p, n_t=40)
    data = open_data(viewer)
    rec = data.open_recording(p)
    assert rec.mode == "traces" and rec.n_rois == 3
    s = session_for(viewer)
    assert s.recording is rec and s.recording_labels == "cnm ROIs"
    assert viewer.layers["cnm ROIs"].data.shape == (18, 26)
    assert "traces: 3 ROIs x 40 frames from cnm.hdf5 (estimates/C)" in data.info.text
    assert data.frame_period_ms.value == pytest.approx(1e3 / 30, abs=1e-3)  # the field shows 3 decimals


def test_nwb_opens_as_movie_or_traces_and_closes_with_its_layer(viewer, tmp_path):
    pytest.importorskip("pynwb")
    lab = make_labels(12, 17)
    movie, truth = make_roi_movie(lab, 60)
    rois = [(*np.nonzero(lab == k), np.ones(int((lab == k).sum()))) for k in (1, 2, 3)]
    p = tmp_path / "session.nwb"
    write_nwb(p, movie, rois, traces=truth, rate=20.0)
    data = open_data(viewer)
    rec = data.open_recording(p)
    layer = viewer.layers["session"]
    assert rec.mode == "movie" and layer.data is rec.movie and layer.data.shape == (60, 12, 17)
    assert layer.metadata[FRAME_PERIOD_KEY] == pytest.approx(0.05) and layer.scale[0] == pytest.approx(0.05)
    np.testing.assert_array_equal(viewer.layers["session ROIs"].data, lab)
    assert rec._closers  # the NWB file stays open while the layer reads it
    viewer.layers.remove(layer)
    assert rec._closers == [] and rec not in session_for(viewer).open_recordings  # closed with it
    traces = data.open_recording(p, prefer="traces")
    assert traces.mode == "traces" and session_for(viewer).recording is traces
    assert "RoiResponseSeries" in data.info.text


# --------------------------------------------------------------------------- traces files
def test_traces_file_with_rows_file_uses_the_typed_timing(viewer, tmp_path):
    _, truth = make_roi_movie(make_labels(), 150)
    p = tmp_path / "F.npy"
    np.save(p, truth)
    rows = tmp_path / "rows.csv"
    rows.write_text("row,col\n3,4.5\n7.5,11.5\n12,5.5\n")
    data = open_data(viewer)
    data.roi_file.value = rows
    assert data.open_recording(p) is None  # no timing in the file, none typed
    assert data.message.is_error and "Type the frame period" in data.message.text
    assert len(viewer.layers) == 0 and session_for(viewer).recording is None
    data.frame_period_ms.value = 50.0
    assert data.open_recording(p) is None  # a rows file does not give the image height
    assert "lines per frame" in data.message.text
    data.n_rows.value = 16
    rec = data.open_recording(p)
    assert rec.mode == "traces" and rec.frame_period == pytest.approx(0.05) and rec.n_rows == 16
    assert rec.provenance["timing"] == "frame_period"
    s = session_for(viewer)
    assert s.recording is rec and s.recording_labels is None  # no labels image: centroids as points
    points = viewer.layers["F ROIs"]
    assert type(points).__name__ == "Points"
    np.testing.assert_allclose(points.data, [[3, 4.5], [7.5, 11.5], [12, 5.5]])
    assert list(points.features["index"]) == [1, 2, 3]
    assert data.info.text == "traces: 3 ROIs x 150 frames from F.npy; timing: frame_period"
    assert data.message.text == ""


# --------------------------------------------------------------------------- TIFF
def test_scanimage_tiff_with_roi_file_gives_scan_pattern_and_timing(viewer, tmp_path, monkeypatch):
    labels = make_labels(32, 20)
    p = tmp_path / "si.tif"
    write_scanimage_bigtiff(p, make_roi_movie(labels, 12, dtype="int16")[0], even=False)
    np.save(tmp_path / "rois.npy", labels)
    data = open_data(viewer)
    data.roi_file.value = tmp_path / "rois.npy"
    pick_in_dialog(monkeypatch, file=p)
    data.open_button.clicked()  # the user picks si.tif
    movie, rois = viewer.layers["si"], viewer.layers["si ROIs"]
    pattern = ScanPattern.from_dict(movie.metadata[SCAN_KEY])
    pattern.check_movie(movie.data.shape)
    assert pattern.line_period == pytest.approx(6.3e-5) and pattern.bidirectional
    assert movie.metadata[FRAME_PERIOD_KEY] == pytest.approx(0.0025)
    assert movie.metadata[LINE_PERIOD_KEY] == pytest.approx(6.3e-5)
    assert movie.scale[0] == pytest.approx(0.0025)
    assert data.frame_period_ms.value == pytest.approx(2.5)
    assert data.line_period_ms.value == pytest.approx(0.063)
    assert data.movie.value.name == "si" and data.rois.value.name == "si ROIs"
    assert "scan pattern" in data.opened.text and "3 ROIs" in data.info.text
    np.testing.assert_array_equal(rois.data, labels)
    rec = session_for(viewer).open_recordings[-1]
    assert movie.data is rec.movie and rec._closers  # lazy TIFF pages, file kept open


def test_plain_tiff_with_rois_opens_with_the_typed_frame_period(viewer, tmp_path):
    labels = make_labels()
    p = tmp_path / "movie.tif"
    tifffile.imwrite(p, make_roi_movie(labels, 20)[0])
    np.save(tmp_path / "rois.npy", labels)
    tifffile.imwrite(tmp_path / "timed.tif", make_movie(t=5, y=16, x=20).astype(np.uint16),
                     imagej=True, metadata={"axes": "TYX", "finterval": 0.03})
    data = open_data(viewer)
    data.open_movie_file(tmp_path / "timed.tif")
    assert data.frame_period_ms.value == pytest.approx(30.0)  # filled from timed.tif, not typed
    n_layers = len(viewer.layers)
    assert data.open_recording(p, rois=tmp_path / "rois.npy") is None  # so not used for movie.tif
    assert "does not say when frames were acquired" in data.message.text
    assert "Type the frame period" in data.message.text and len(viewer.layers) == n_layers
    data.frame_period_ms.value = 40.0  # typed by the user
    rec = data.open_recording(p, rois=tmp_path / "rois.npy")
    assert rec.frame_period == pytest.approx(0.04) and rec.provenance["timing"] == "frame_period"
    assert viewer.layers["movie"].scale[0] == pytest.approx(0.04)
    assert data.movie.value.name == "movie" and data.rois.value.name == "movie ROIs"
    # a TIFF without ROIs still opens as a movie only (choose or paint the ROIs)
    tifffile.imwrite(tmp_path / "bare.tif", make_movie(t=5, y=16, x=20))
    layer = data.open_movie_file(tmp_path / "bare.tif")
    assert layer.name == data.movie.value.name == "bare" and "states no timing" in data.opened.text


def test_recordings_are_closed_when_the_viewer_closes(make_napari_viewer, tmp_path):
    labels = make_labels(32, 20)
    p = tmp_path / "si.tif"
    write_scanimage_bigtiff(p, make_roi_movie(labels, 6, dtype="int16")[0], even=False)
    v = make_napari_viewer()
    data = open_data(v)
    rec = data.open_recording(p, rois=labels)
    other = data.open_recording(p, rois=labels)  # a second copy: the first one is still shown
    assert rec._closers and other._closers
    v.close()  # napari removes the layers, then closes the window
    assert rec._closers == [] and other._closers == []
    assert session_for(v).open_recordings == []


# --------------------------------------------------------------------------- results of traces
def _fake_result(n_bins: int = 40) -> SBTTResult:
    rates = np.random.default_rng(0).random((n_bins, 3)).astype(np.float32)
    grid = FineGrid(0.0, 0.025, n_bins)
    return SBTTResult(rates=rates, times=grid.centres, observations=rates.copy(),
                      roi_ids=np.arange(1, 4), grid=grid, units="a.u.", metrics={},
                      config={"factor": 2})


def test_show_result_without_a_movie_uses_the_labels_layer(viewer):
    result = _fake_result()
    labels = viewer.add_labels(make_labels(), name="cnm ROIs", scale=(2.0, 3.0), translate=(1.0, 5.0))
    layer = show_result(viewer, result, None, labels)
    assert layer.name == "cnm ROIs activity" and isinstance(layer.data, ActivityMovie)
    assert layer.data.shape == (40, 16, 20)
    np.testing.assert_allclose(layer.scale, [0.025, 2.0, 3.0])
    np.testing.assert_allclose(layer.translate, [0.0125, 1.0, 5.0])
    assert layer.metadata[RESULT_KEY] is result and layer.metadata["sbtt_movie_layer"] is None
    assert layer.metadata["sbtt_labels_layer"] == "cnm ROIs"
    assert list(labels.features["index"]) == [1, 2, 3]
    again = show_result(viewer, result, None, labels)  # re-runs update the layer in place
    assert again is layer or again.name == layer.name
    assert [la.name for la in viewer.layers].count("cnm ROIs activity") == 1
    # ROIs known by their rows only: a time x ROI image
    table = show_result(viewer, result, None, None, name="F")
    assert table.name == "F activity (time x ROI)" and table.data.shape == (40, 3)
    np.testing.assert_allclose(table.scale, [0.025, 1.0])


# --------------------------------------------------------------------------- training on traces
@pytest.mark.slow
def test_train_fits_a_traces_recording_and_shows_it_in_its_rois(viewer, qtbot, tmp_path):
    """suite2p F.npy opened as traces -> Train (no movie chosen) -> activity painted into the ROIs."""
    from napari_sbtt.plugin._state import TrainState

    plane = tmp_path / "plane0"
    make_suite2p(plane, "ops", n_t=120, offset=10.0)  # F > 0, so dF/F is defined
    data = open_data(viewer)
    data.prefer_traces.value = True
    rec = data.open_recording(plane)
    assert rec is not None and rec.mode == "traces"
    _, train = viewer.window.add_plugin_dock_widget("napari-sbtt", "Train / Load")
    train.size.value, train.epochs.value, train.likelihood.value = "small", 2, "gaussian"
    train.factor.value, train.device.value = 2, "cpu"
    assert train.start_training(), train.message.text
    qtbot.waitUntil(lambda: train.state.state is not TrainState.TRAINING and train.job is None,
                    timeout=120_000)
    assert train.state.state is TrainState.DONE, train.message.text
    result = train.last_result
    assert result.rates.shape[1] == 3 and np.isfinite(result.rates).all()
    assert result.config["recording"]["format"] == "suite2p"
    layer = viewer.layers["suite2p plane0 ROIs activity"]
    assert layer.metadata[RESULT_KEY] is result
    assert isinstance(layer.data, ActivityMovie)
    assert "fit_r" in viewer.layers["suite2p plane0 ROIs"].features
    # a checkpoint for another ROI count is refused with a message, not a run
    other = tmp_path / "other.safetensors"
    result.model.save(other)
    session_for(viewer).recording.roi_ids = np.array([1, 2])  # pretend: 2 ROIs now
    session_for(viewer).recording.traces = rec.traces[:, :2]
    session_for(viewer).recording.roi_rows = rec.roi_rows[:2]
    train.checkpoint.value = other
    assert not train.apply_checkpoint()
    assert "trained on 3 ROIs" in train.message.text and "has 2" in train.message.text
