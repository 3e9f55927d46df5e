"""Manifest, lazy imports, reader and writer of the napari plugin (no training needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from napari_sbtt.api import SBTTResult, load_result
from napari_sbtt.core.activity import ActivityMovie
from napari_sbtt.core.scan import FineGrid, ScanPattern
from napari_sbtt.plugin._files import LABELS_FILE, checkpoint_info
from napari_sbtt.plugin._layers import RESULT_KEY
from napari_sbtt.plugin._reader import get_reader
from napari_sbtt.plugin._writer import write_result
from tests.factories import LX, LY, make_movie, make_suite2p, write_scanimage_bigtiff

MANIFEST = Path(__file__).parents[2] / "src" / "napari_sbtt" / "plugin" / "napari.yaml"


def fake_result(n_bins: int = 40, n_rois: int = 3) -> SBTTResult:
    rng = np.random.default_rng(0)
    rates = rng.random((n_bins, n_rois)).astype(np.float32)
    obs = rates + rng.normal(0, 0.01, rates.shape).astype(np.float32)
    obs[::2, 0] = np.nan
    grid = FineGrid(0.0, 0.025, n_bins)
    return SBTTResult(rates=rates, times=grid.centres, observations=obs,
                      roi_ids=np.arange(1, n_rois + 1), grid=grid, units="a.u.",
                      metrics={}, config={"factor": 2})


def fake_labels(n_rois: int = 3) -> np.ndarray:
    labels = np.zeros((8, 9), np.int32)
    for k in range(n_rois):
        labels[2 * k : 2 * k + 2, 1:4] = k + 1
    return labels


def fake_checkpoint(path: Path, n_neurons: int = 3) -> Path:
    from safetensors.numpy import save_file

    info = {"format": "napari-sbtt-model", "format_version": 1, "n_neurons": n_neurons,
            "likelihood": "gaussian"}
    save_file({"w": np.zeros(2, np.float32)}, str(path), metadata={"napari_sbtt": json.dumps(info)})
    return path


# --------------------------------------------------------------------------- manifest
def test_manifest_is_valid_and_every_command_resolves():
    import importlib

    from npe2 import PluginManifest

    pm = PluginManifest.from_file(MANIFEST)
    assert pm.name == "napari-sbtt"
    titles = {w.display_name for w in pm.contributions.widgets}
    assert {"Data", "Scan", "Train / Load", "Traces", "SBTT"} <= titles
    assert [s.display_name for s in pm.contributions.sample_data] == ["Synthetic line scan", "Super-resolution demo"]
    assert pm.contributions.readers and pm.contributions.writers
    for cmd in pm.contributions.commands:
        module, _, attr = cmd.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), cmd.id


def test_npe2_validate_passes():
    out = subprocess.run([sys.executable, "-m", "npe2", "validate", "napari-sbtt"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_widgets_and_menu_do_not_import_torch():
    """Constructing every widget (and the Plugins menu) in a fresh process leaves torch unimported."""
    code = textwrap.dedent("""
        import sys
        import napari
        v = napari.Viewer(show=False)
        v.window.plugins_menu.aboutToShow.emit()
        for name in ("SBTT", "Data", "Scan", "Train / Load", "Traces"):
            v.window.add_plugin_dock_widget("napari-sbtt", name)
        from napari_sbtt.plugin._reader import get_reader
        get_reader("nothing-here.tif")
        print("TORCH_IMPORTED" if "torch" in sys.modules else "TORCH_FREE")
        v.close()
    """)
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen" if "DISPLAY" not in env else "xcb")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=180, env=env)
    assert "TORCH_FREE" in out.stdout, out.stdout + out.stderr[-3000:]


# --------------------------------------------------------------------------- reader
def test_reader_declines_what_it_does_not_know(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.tif").write_bytes(b"not a tiff at all")
    (tmp_path / "fake.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "half_result").mkdir()
    (tmp_path / "half_result" / "result.json").write_text("{}")
    import tifffile

    tifffile.imwrite(tmp_path / "image2d.tif", np.zeros((8, 8), np.uint16))
    for p in ("notes.txt", "fake.tif", "fake.safetensors", "empty", "half_result", "image2d.tif",
              "missing.tif"):
        assert get_reader(str(tmp_path / p)) is None, p
    assert get_reader([str(tmp_path / "notes.txt"), str(tmp_path / "fake.tif")]) is None
    assert get_reader(None) is None


def test_reader_leaves_plain_tiffs_to_napari(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((5, 6, 7), np.uint16))
    tifffile.imwrite(tmp_path / "untimed_ij.tif", np.zeros((5, 6, 7), np.uint16), imagej=True,
                     metadata={"axes": "TYX"})
    for name in ("plain.tif", "untimed_ij.tif"):
        assert get_reader(str(tmp_path / name)) is None, name
    # npe2 offers readers by file name pattern, so the manifest must not claim TIFFs at all
    from npe2 import PluginManifest

    patterns = PluginManifest.from_file(MANIFEST).contributions.readers[0].filename_patterns
    assert not {"*.tif", "*.tiff"} & set(patterns)


def test_reader_opens_a_scanimage_tiff_with_its_timing(tmp_path):
    frames = make_movie(t=6, y=32, x=20)
    write_scanimage_bigtiff(tmp_path / "si.tif", frames)
    reader = get_reader(str(tmp_path / "si.tif"))
    assert reader is not None
    ((data, meta, kind),) = reader(str(tmp_path / "si.tif"))
    assert kind == "image" and meta["name"] == "si"
    np.testing.assert_array_equal(np.asarray(data), frames)
    md = meta["metadata"]
    assert md["source_format"] == "scanimage"
    assert md["frame_period_s"] == pytest.approx(0.0025)
    assert md["line_period_s"] == pytest.approx(6.3e-05)
    pattern = ScanPattern.from_dict(md["scan_pattern"])
    assert (pattern.n_rows, pattern.n_sweeps) == (32, 6) and pattern.bidirectional
    assert meta["scale"][0] == pytest.approx(0.0025)


def test_reader_opens_an_imagej_tiff_with_a_frame_interval(tmp_path):
    import tifffile

    movie = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    tifffile.imwrite(tmp_path / "ij.tif", movie, imagej=True,
                     metadata={"axes": "TYX", "finterval": 0.04})
    ((data, meta, _),) = get_reader(str(tmp_path / "ij.tif"))(str(tmp_path / "ij.tif"))
    np.testing.assert_array_equal(np.asarray(data), movie)
    assert meta["metadata"]["frame_period_s"] == pytest.approx(0.04)
    assert "line_period_s" not in meta["metadata"]


@pytest.mark.gui
def test_napari_opens_a_plain_tiff_without_asking(make_napari_viewer, tmp_path):
    """With napari-sbtt installed, a plain TIFF has one candidate reader, napari's own."""
    import tifffile
    from napari.plugins import _npe2

    tifffile.imwrite(tmp_path / "plain.tif", np.ones((5, 6, 7), np.uint16))
    readers = _npe2.get_readers(str(tmp_path / "plain.tif"))
    assert "napari-sbtt" not in readers
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "plain.tif"))  # MultipleReaderError if napari would ask
    assert layer.data.shape == (5, 6, 7)


def test_writer_and_reader_round_trip_a_result(tmp_path):
    result, labels = fake_result(), fake_labels()
    data = ActivityMovie(result.rates, labels, result.roi_ids)
    assert write_result(str(tmp_path / "plain"), data, {"metadata": {}}) == []  # not a result layer
    written = write_result(str(tmp_path / "run1"), data, {"metadata": {RESULT_KEY: result}})
    assert written == [str(tmp_path / "run1.sbtt")]
    assert (tmp_path / "run1.sbtt" / LABELS_FILE).is_file()
    back = load_result(tmp_path / "run1.sbtt", load_model=False)
    np.testing.assert_array_equal(back.rates, result.rates)

    reader = get_reader(str(tmp_path / "run1.sbtt"))
    assert reader is not None
    layers = reader(str(tmp_path / "run1.sbtt"))
    (act, act_meta, kind), (lab, lab_meta, lkind) = layers
    assert kind == "image" and lkind == "labels" and act_meta["name"] == "run1 activity"
    assert act.shape == (40, 8, 9)
    np.testing.assert_array_equal(act[7], data[7])
    assert act_meta["scale"][0] == pytest.approx(0.025)
    assert act_meta["translate"][0] == pytest.approx(0.0125)
    np.testing.assert_array_equal(lab_meta["features"]["index"], [1, 2, 3])
    assert lab_meta["features"]["observed_share"][0] == pytest.approx(0.5)
    assert act_meta["metadata"]["sbtt_labels_layer"] == lab_meta["name"]

    # a result saved without labels opens as a time x ROI image
    result.save(tmp_path / "bare")
    (rates, meta, kind), = get_reader(str(tmp_path / "bare"))(str(tmp_path / "bare"))
    assert rates.shape == (40, 3) and "time x ROI" in meta["name"]


def test_the_reader_and_the_widgets_show_a_result_with_the_same_layers(make_napari_viewer, tmp_path):
    """One source of layer data: the activity opened from a result folder and the one the Train
    widget shows carry the same contrast, time axis, colormap and per-ROI features."""
    from napari_sbtt.plugin._layers import show_result
    from napari_sbtt.plugin._writer import save_result_with_labels

    result, labels = fake_result(), fake_labels()
    result.metrics = {"observed_share_per_roi": [0.5, 1.0, 1.0], "fit_r_per_roi": [0.9, 0.8, 0.7]}
    save_result_with_labels(tmp_path / "run", result, labels)
    (_, read_meta, _), (_, read_labels, _) = get_reader(str(tmp_path / "run"))(str(tmp_path / "run"))
    viewer = make_napari_viewer()
    labels_layer = viewer.add_labels(labels, name="run ROIs")
    shown = show_result(viewer, result, None, labels_layer)
    assert (shown.name, read_meta["name"]) == ("run ROIs activity", "run activity")  # after their source
    np.testing.assert_allclose(shown.contrast_limits, read_meta["contrast_limits"])
    np.testing.assert_allclose(shown.scale, read_meta["scale"])
    np.testing.assert_allclose(shown.translate, read_meta["translate"])
    assert shown.colormap.name == read_meta["colormap"]
    for key, values in read_labels["features"].items():
        np.testing.assert_allclose(labels_layer.features[key], values)
    np.testing.assert_allclose(read_labels["features"]["fit_r"], [0.9, 0.8, 0.7])  # the run's own


def test_checkpoint_header_is_read_without_torch(tmp_path):
    ckpt = fake_checkpoint(tmp_path / "m.safetensors", n_neurons=7)
    info = checkpoint_info(ckpt)
    assert info["n_neurons"] == 7 and info["likelihood"] == "gaussian"
    assert get_reader(str(ckpt)) is not None
    assert checkpoint_info(tmp_path / "none.safetensors") is None


@pytest.mark.gui
def test_opening_a_checkpoint_selects_it_in_the_train_widget(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    ckpt = fake_checkpoint(tmp_path / "m.safetensors")
    assert viewer.open(str(ckpt), plugin="napari-sbtt") == []
    from napari_sbtt.plugin._state import session_for

    assert session_for(viewer).pending_checkpoint == str(ckpt.resolve())
    train = viewer.window.dock_widgets["Train / Load (napari-sbtt)"]
    assert Path(train.checkpoint.value) == ckpt.resolve()
    assert "press 'Apply checkpoint'" in train.message.text


@pytest.mark.parametrize("binary", [True, False])
def test_reader_opens_a_suite2p_folder_with_its_registered_movie(tmp_path, binary):
    plane = tmp_path / "suite2p" / "plane0"
    make_suite2p(plane, "ops", n_t=50, binary=binary)
    reader = get_reader(str(plane))
    assert reader is not None
    layers = reader(str(plane))
    kinds = [kind for *_, kind in layers]
    assert kinds == (["image", "labels"] if binary else ["labels"])
    labels = layers[-1][0]
    assert labels.shape == (LY, LX) and labels.max() == 3  # ROI 2 of 4 is not a cell
    if binary:
        movie, meta, _ = layers[0]
        assert movie.shape == (50, LY, LX) and movie.dtype == np.int16
        assert isinstance(movie, np.memmap)  # never read whole
        assert meta["metadata"]["frame_period_s"] == pytest.approx(1 / 30.0)  # fs in ops.npy
        assert meta["scale"][0] == pytest.approx(1 / 30.0)  # time axis in seconds


def test_the_tests_run_on_qt6_through_qtpy():
    """qtpy (napari, our widgets) and pytest-qt use the same Qt 6 binding, even with PyQt5 installed."""
    import qtpy
    from napari._qt import qt_main_window
    from pytestqt.qt_compat import qt_api

    assert qtpy.API_NAME == "PyQt6" and qtpy.QT6
    assert qt_api.pytest_qt_api == "pyqt6"
    # napari's "support for the PyQt5 backend is deprecated" notice is shown only on Qt 5
    assert getattr(qt_main_window, "SHOW_QT_WARNING", False) is False
