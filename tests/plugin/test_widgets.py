"""napari plugin widgets in a real viewer (Xvfb): open, load, train, stop, fail, reload, close.

Training runs use a tiny movie built here, the small model and 2 epochs, so the whole file
stays within about a minute on 2 CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_sbtt.core.activity import ActivityMovie, MaskedMovie
from napari_sbtt.core.scan import ScanPattern

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_sbtt.plugin._layers import FRAME_PERIOD_KEY, LINE_PERIOD_KEY, RESULT_KEY, SCAN_KEY  # noqa: E402
from napari_sbtt.plugin._settings import ENV_VAR, settings_store  # noqa: E402
from napari_sbtt.plugin._state import TrainState  # noqa: E402

pytestmark = pytest.mark.gui

WIDGETS = {
    "SBTT": "SBTTWidget",
    "Data": "DataWidget",
    "Scan": "ScanWidget",
    "Train / Load": "TrainWidget",
    "Traces": "TracePanel",
}
FINISHED = (TrainState.DONE, TrainState.STOPPED, TrainState.FAILED)


def toy_scan(n_frames: int = 120, size: int = 24, n_side: int = 3, n_strips: int = 3,
             frame_period: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray, ScanPattern]:
    """(movie (T, Y, X) float32 NaN on unacquired rows, labels (Y, X), pattern) with n_side**2 ROIs."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.int32)
    step = size // n_side
    k = 0
    for i in range(n_side):
        for j in range(n_side):
            k += 1
            labels[i * step + 1 : (i + 1) * step - 1, j * step + 1 : (j + 1) * step - 1] = k
    pattern = ScanPattern.strips(size, n_frames, frame_period / (size // n_strips), n_strips,
                                 frame_period=frame_period)
    t = np.arange(n_frames) * frame_period
    latent = np.stack([np.sin(2 * np.pi * 0.5 * t), np.cos(2 * np.pi * 0.3 * t)], axis=1)
    activity = np.exp(latent @ rng.normal(size=(2, k)) * 0.8)
    movie = 0.1 + rng.normal(0, 0.05, (n_frames, size, size)).astype(np.float32)
    for n in range(k):
        movie[:, labels == n + 1] += activity[:, n : n + 1].astype(np.float32)
    movie[~pattern.frame_mask()] = np.nan
    return movie.astype(np.float32), labels, pattern


@pytest.fixture
def toy_viewer(viewer):
    movie, labels, pattern = toy_scan()
    viewer.add_image(movie, name="toy", metadata={SCAN_KEY: pattern.to_dict(),
                                                  FRAME_PERIOD_KEY: pattern.frame_period,
                                                  LINE_PERIOD_KEY: pattern.line_period})
    viewer.add_labels(labels, name="toy ROIs")
    return viewer


def open_widget(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget("napari-sbtt", name)
    return widget


def small_fast(train, epochs=2):
    train.size.value = "small"
    train.epochs.value = epochs
    train.likelihood.value = "gaussian"
    train.device.value = "cpu"
    train.factor.value = 2


def wait_finished(qtbot, train, timeout=60_000):
    qtbot.waitUntil(lambda: train.state.state in FINISHED and train.job is None, timeout=timeout)


# --------------------------------------------------------------------------- opening
def test_every_widget_opens_from_the_manifest(viewer):
    for display_name, cls_name in WIDGETS.items():
        widget = open_widget(viewer, display_name)
        assert type(widget).__name__ == cls_name
    assert len(viewer.window.dock_widgets) >= len(WIDGETS)


@pytest.mark.slow
def test_sample_data_loads_and_trains_in_the_tabbed_widget(viewer, qtbot):
    pytest.importorskip("napari_sbtt.core.synth")
    layers = viewer.open_sample("napari-sbtt", "synthetic_line_scan")
    kinds = sorted(type(la).__name__ for la in layers)
    assert kinds == ["Image", "Labels"]
    movie = next(la for la in layers if type(la).__name__ == "Image")
    labels = next(la for la in layers if type(la).__name__ == "Labels")
    assert movie.data.ndim == 3 and labels.data.shape == movie.data.shape[1:]
    pattern = ScanPattern.from_dict(movie.metadata[SCAN_KEY])
    pattern.check_movie(movie.data.shape)
    assert pattern.acquired_fraction() < 1
    rows_nan = np.isnan(np.asarray(movie.data)).all(axis=2)
    np.testing.assert_array_equal(~rows_nan, pattern.frame_mask())
    truth = movie.metadata["sbtt_truth"]
    assert truth["rates"].shape[1] == len(truth["roi_ids"]) == len(np.unique(labels.data)) - 1
    assert movie.scale[0] == pytest.approx(pattern.frame_period)
    main = open_widget(viewer, "SBTT")
    assert main.data.movie.value.name == movie.name
    assert main.data.frame_period_ms.value == pytest.approx(pattern.frame_period * 1e3, rel=1e-4)
    assert main.data.line_period_ms.value == pytest.approx(pattern.line_period * 1e3, rel=1e-3)
    small_fast(main.train)
    main.train.train_button.clicked()
    wait_finished(qtbot, main.train)
    assert main.train.state.state is TrainState.DONE, main.train.message.text
    assert main.tabs.currentIndex() == 3  # the Traces tab comes forward
    # the trace panel shows the ground truth of the synthetic ROI beside the inference
    t_truth, r_truth = main.traces.canvas.truth_line.get_data()
    roi = main.traces.roi.value
    col = list(truth["roi_ids"]).index(roi)
    np.testing.assert_allclose(r_truth, truth["rates"][:, col])
    assert main.traces.canvas.ax_truth.get_visible()


# --------------------------------------------------------------------------- remembered settings
TRAIN_CHANGES = {"likelihood": "poisson", "size": "small", "epochs": 37, "seed": 5, "factor": 3,
                 "device": "cpu", "threads": 2, "indicator": "GCaMP8m", "onset_delay_s": 20.0,
                 "max_seconds": 60.0}
SCAN_CHANGES = {"kind": "strips", "n_strips": 6, "order": "interleaved", "strips_per_sweep": 2,
                "fraction": 0.4, "flyback_ms": 0.5, "bidirectional": True}
DATA_CHANGES = {"frame_period_ms": 40.0, "line_period_ms": 0.25}


def _values(widget, keys):
    return {k: getattr(widget, k).value for k in keys}


def test_settings_are_remembered_across_sessions_and_reset(make_napari_viewer, isolated_settings):
    first = make_napari_viewer()
    train, scan, data = (open_widget(first, n) for n in ("Train / Load", "Scan", "Data"))
    defaults = [_values(w, c) for w, c in ((train, TRAIN_CHANGES), (scan, SCAN_CHANGES),
                                           (data, DATA_CHANGES))]
    assert defaults[0] != TRAIN_CHANGES and defaults[1] != SCAN_CHANGES
    for widget, changes in ((train, TRAIN_CHANGES), (scan, SCAN_CHANGES), (data, DATA_CHANGES)):
        for key, value in changes.items():
            getattr(widget, key).value = value
    assert isolated_settings.is_file()
    first.close()

    second = make_napari_viewer()  # a new session: the values come back
    train, scan, data = (open_widget(second, n) for n in ("Train / Load", "Scan", "Data"))
    assert _values(train, TRAIN_CHANGES) == TRAIN_CHANGES
    assert _values(scan, SCAN_CHANGES) == pytest.approx(SCAN_CHANGES)
    assert _values(data, DATA_CHANGES) == pytest.approx(DATA_CHANGES)
    assert not scan.n_strips.native.isHidden() and scan.fraction.native.isHidden()  # its fields
    assert sorted(train.settings.restored) == sorted(TRAIN_CHANGES)
    main = open_widget(second, "SBTT")  # the tabbed widget restores the same values
    assert _values(main.train, TRAIN_CHANGES) == TRAIN_CHANGES

    train.reset_button.clicked()
    scan.reset_button.clicked()
    data.reset_button.clicked()
    for widget, changes, default in zip((train, scan, data),
                                        (TRAIN_CHANGES, SCAN_CHANGES, DATA_CHANGES), defaults, strict=True):
        assert _values(widget, changes) == default
        assert widget.settings.saved() == {}
    assert "reset" in train.message.text
    second.close()

    third = make_napari_viewer()
    train = open_widget(third, "Train / Load")
    assert _values(train, TRAIN_CHANGES) == defaults[0] and train.settings.restored == []


def test_unusable_saved_values_are_ignored(viewer):
    store = settings_store()
    for key, value in {"train/device": "tpu", "train/epochs": "many", "train/size": "huge",
                       "train/seed": 12, "train/threads": 100_000, "scan/kind": "spiral",
                       "scan/fraction": "0.5", "scan/bidirectional": "maybe"}.items():
        store.setValue(key, value)
    store.sync()
    train, scan = open_widget(viewer, "Train / Load"), open_widget(viewer, "Scan")
    from napari_sbtt.plugin._run_fields import field_value

    assert (train.device.value, train.size.value) == ("auto", "medium")
    assert field_value("epochs", train.epochs) is None and field_value("threads", train.threads) is None
    assert train.seed.value == 12
    assert scan.kind.value == "from movie metadata" and scan.fraction.value == pytest.approx(0.5)
    assert scan.bidirectional.value is False


def test_settings_store_is_isolated_from_the_users(isolated_settings, monkeypatch):
    assert settings_store().fileName() == str(isolated_settings)
    assert settings_store().allKeys() == []  # nothing leaks in from other tests
    monkeypatch.delenv(ENV_VAR)
    user = settings_store().fileName()
    assert "napari-sbtt" in user and user != str(isolated_settings)


# --------------------------------------------------------------------------- data + scan
def test_data_widget_opens_a_scanimage_movie_with_its_timing(viewer, tmp_path, monkeypatch):
    from tests.factories import make_movie, write_scanimage_bigtiff

    data = open_widget(viewer, "Data")
    write_scanimage_bigtiff(tmp_path / "si.tif", make_movie(t=6, y=32, x=20))
    from qtpy.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(tmp_path / "si.tif"), "")))
    data.open_button.clicked()  # the user picks si.tif in the file dialog
    layer = viewer.layers["si"]
    assert data.movie.value.name == layer.name
    assert data.frame_period_ms.value == pytest.approx(2.5)
    assert data.line_period_ms.value == pytest.approx(0.063)
    assert "scan pattern" in data.opened.text and "2.5 ms" in data.opened.text
    assert layer.scale[0] == pytest.approx(0.0025)
    ScanPattern.from_dict(layer.metadata[SCAN_KEY]).check_movie(layer.data.shape)
    assert data.settings.saved() == {}  # timing from metadata is not remembered as typed

    import tifffile

    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((5, 32, 20), np.uint16))
    plain = data.open_movie_file(tmp_path / "plain.tif")
    assert plain.name == data.movie.value.name == "plain"  # (widgets hold proxies of layers)
    assert "states no timing" in data.opened.text
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    n_layers = len(viewer.layers)
    assert data.open_movie_file(tmp_path / "bad.tif") is None
    assert data.message.is_error and "bad.tif" in data.message.text
    assert len(viewer.layers) == n_layers


def test_data_widget_reads_timing_and_explains_bad_input(viewer):
    data = open_widget(viewer, "Data")
    assert "movie" in data.message.text  # nothing loaded yet
    movie, labels, pattern = toy_scan()
    viewer.add_image(movie, name="toy", metadata={SCAN_KEY: pattern.to_dict()})
    assert data.movie.value.name == "toy"
    assert data.frame_period_ms.value == pytest.approx(50.0)
    assert data.line_period_ms.value == pytest.approx(pattern.line_period * 1e3, rel=1e-4)
    assert "Labels layer" in data.message.text  # no ROIs yet
    viewer.add_labels(labels[:20], name="wrong shape")
    assert "(20, 24)" in data.message.text and "(24, 24)" in data.message.text
    viewer.add_labels(labels, name="good")
    data.rois.value = viewer.layers["good"]
    assert data.message.text == "" and "9 ROIs" in data.info.text
    viewer.add_image(movie[0], name="frame")
    data.movie.value = viewer.layers["frame"]
    assert "single 2-D image" in data.message.text


def test_scan_widget_builds_shows_and_applies_patterns(toy_viewer):
    scan = open_widget(toy_viewer, "Scan")
    movie = toy_viewer.layers["toy"]
    scan.kind.value = "from NaN rows"
    layer = scan.show_pattern()
    truth = ScanPattern.from_dict(movie.metadata[SCAN_KEY])
    assert scan.message.text == ""
    np.testing.assert_array_equal(np.asarray(layer.data[:, :, 0]).astype(bool), truth.frame_mask())
    assert "33% of the field per sweep" in scan.bandwidth.text
    assert "Samples per ROI per second" in scan.bandwidth.text
    # a fully sampled movie, reduced by random lines, lazily
    full = np.nan_to_num(np.asarray(movie.data), nan=1.0)
    toy_viewer.add_image(full, name="full", metadata={FRAME_PERIOD_KEY: 0.05})
    data = open_widget(toy_viewer, "Data")
    data.movie.value = toy_viewer.layers["full"]
    data.line_period_ms.value = 0.5
    scan.kind.value = "random lines"
    scan.fraction.value = 0.25
    reduced = scan.simulate_reduced()
    assert reduced.name == "full reduced" and isinstance(reduced.data, MaskedMovie)
    frame = np.asarray(reduced.data[3])
    assert np.isnan(frame).all(axis=1).sum() == 24 - 6
    assert data.movie.value.name == "full reduced"  # the Data widget follows the simulation
    # no line timing at all -> a message, not an exception
    data.frame_period_ms.value = 0
    data.line_period_ms.value = 0
    toy_viewer.add_image(full, name="untimed")
    data.movie.value = toy_viewer.layers["untimed"]
    scan.kind.value = "full raster"
    assert scan.show_pattern() is None
    assert "line period is unknown" in scan.message.text


# --------------------------------------------------------------------------- training
@pytest.mark.slow
def test_train_two_epochs_then_reload_checkpoint(toy_viewer, qtbot, tmp_path):
    train = open_widget(toy_viewer, "Train / Load")
    traces = open_widget(toy_viewer, "Traces")
    small_fast(train)
    train.train_button.clicked()
    assert train.state.state is TrainState.TRAINING and train.train_button.text == "Stop"
    wait_finished(qtbot, train)
    assert train.state.state is TrainState.DONE, train.message.text
    assert train.train_button.text == "Train"
    assert len(train.loss_plot.epochs) == 2
    movie = toy_viewer.layers["toy"]
    act = toy_viewer.layers["toy activity"]
    result = act.metadata[RESULT_KEY]
    assert isinstance(act.data, ActivityMovie)  # painted on demand, never T_fine x Y x X in memory
    assert act.data.shape == (result.rates.shape[0], 24, 24) and result.rates.shape[0] == 240
    # physical time: activity bins are half a frame; both centred on their intervals
    assert movie.scale[0] == pytest.approx(0.05) and act.scale[0] == pytest.approx(0.025)
    assert act.translate[0] == pytest.approx(0.0125) and movie.translate[0] == pytest.approx(0.025)
    feats = toy_viewer.layers["toy ROIs"].features
    assert list(feats["index"]) == list(range(1, 10))
    assert {"observed_share", "fit_r"} <= set(feats.columns)
    # trace panel shows the selected ROI and moves only its cursor
    toy_viewer.layers["toy ROIs"].selected_label = 5
    assert traces.roi.value == 5
    traces.canvas.draw()
    draws = traces.canvas.n_full_draws
    toy_viewer.dims.set_point(0, 3.0)
    assert traces.canvas.cursor_time == pytest.approx(toy_viewer.dims.point[0])
    assert traces.canvas.n_full_draws == draws
    # save the checkpoint, apply it: same rates
    ckpt = tmp_path / "model.safetensors"
    train.save_model_path.value = ckpt
    assert train.save_checkpoint() and ckpt.is_file()
    train.checkpoint.value = ckpt
    assert train.apply_checkpoint()
    wait_finished(qtbot, train)
    assert train.state.state is TrainState.DONE, train.message.text
    again = toy_viewer.layers["toy activity"]
    assert again is act  # updated in place
    np.testing.assert_allclose(again.metadata[RESULT_KEY].rates, result.rates, rtol=1e-5, atol=1e-6)
    # a checkpoint for other ROIs -> a message, no run
    toy_viewer.layers["toy ROIs"].data = np.where(toy_viewer.layers["toy ROIs"].data > 8, 0,
                                                  toy_viewer.layers["toy ROIs"].data)
    assert not train.apply_checkpoint()
    assert "trained on 9 ROIs" in train.message.text and "has 8" in train.message.text
    assert train.state.state is TrainState.DONE


@pytest.mark.slow
def test_the_widget_runs_the_librarys_run(toy_viewer, qtbot):
    """One run path: the widget's result is the library's for the same settings, number for number
    (the widget builds a Recording of its layers and calls recording.run_recording)."""
    from napari_sbtt.api import run_on_stack
    from napari_sbtt.config import RunConfig

    train = open_widget(toy_viewer, "Train / Load")
    small_fast(train)
    train.max_seconds.value = 0.0  # no budget: the numbers do not depend on the machine's speed
    train.train_button.clicked()
    wait_finished(qtbot, train)
    assert train.state.state is TrainState.DONE, train.message.text
    got = train.last_result
    assert got.config["recording"]["movie_layer"] == "toy" and got.config["recording"]["format"] == "arrays"
    settings = RunConfig.from_dict({k: v for k, v in got.config.items() if k in RunConfig().to_dict()})
    movie, labels, pattern = toy_scan()
    want = run_on_stack(movie, labels, pattern, config=settings)
    np.testing.assert_array_equal(got.rates, want.rates)
    np.testing.assert_array_equal(got.observations, want.observations)


@pytest.mark.slow
def test_stop_keeps_best_model(toy_viewer, qtbot):
    train = open_widget(toy_viewer, "Train / Load")
    small_fast(train, epochs=500)
    train.train_button.clicked()
    qtbot.waitUntil(lambda: len(train.loss_plot.epochs) >= 1, timeout=60_000)
    train.train_button.clicked()  # Stop
    assert train.state.stop_requested and train.train_button.text == "Stopping..."
    wait_finished(qtbot, train)
    assert train.state.state is TrainState.STOPPED, train.message.text
    result = train.last_result
    assert result.stopped and result.model is not None and len(result.history) < 500
    assert np.isfinite(result.rates).all()
    assert "toy activity" in toy_viewer.layers
    assert train.state.can_start() and train.train_button.text == "Train"


def test_failure_is_shown_and_can_run_again(toy_viewer, qtbot, monkeypatch):
    # a setting the fitting process rejects: the failure happens in the child process and its
    # message comes back to the widget
    import os

    from napari_sbtt.plugin import _train_widget

    if os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip("this machine may have the CUDA device the test asks for")
    fields_config = _train_widget.run_config_from_fields
    monkeypatch.setattr(_train_widget, "run_config_from_fields",
                        lambda fields, **kw: fields_config(fields, **kw).replace(device="cuda"))
    train = open_widget(toy_viewer, "Train / Load")
    small_fast(train)
    train.train_button.clicked()
    wait_finished(qtbot, train)
    assert train.state.state is TrainState.FAILED
    assert "device 'cuda' was asked for" in train.message.text and train.message.is_error
    assert train.train_button.text == "Train" and train.train_button.enabled
    assert train.state.can_start()
    assert "toy activity" not in toy_viewer.layers
    # a crash that is not a user mistake also ends in the failed state, with its type named
    monkeypatch.undo()
    monkeypatch.setattr(_train_widget, "run_job", _crash)
    train.train_button.clicked()
    wait_finished(qtbot, train)
    assert train.state.state is TrainState.FAILED
    assert "RuntimeError: simulated failure inside the fit" in train.message.text
    assert train.state.can_start()


def _crash(*args, **kwargs):
    raise RuntimeError("simulated failure inside the fit")


@pytest.mark.slow
def test_training_runs_in_a_child_process(toy_viewer, qtbot, tmp_path):
    """The fit runs in a child process (tests/test_isolated.py checks that the parent never
    imports torch); its model comes back as a checkpoint file that saves like a model."""
    from napari_sbtt.isolated import ModelFile

    train = open_widget(toy_viewer, "Train / Load")
    small_fast(train)
    train.train_button.clicked()
    wait_finished(qtbot, train)
    assert train.state.state is TrainState.DONE, train.message.text
    assert isinstance(train.last_result.model, ModelFile)
    train.save_model_path.value = str(tmp_path / "m.safetensors")
    assert train.save_checkpoint()
    assert (tmp_path / "m.safetensors").read_bytes() == train.last_result.model.path.read_bytes()


def test_bad_inputs_give_messages_not_runs(viewer):
    train = open_widget(viewer, "Train / Load")
    assert not train.start_training()
    assert "movie" in train.message.text
    movie, labels, _ = toy_scan()
    viewer.add_image(movie, name="toy", metadata={FRAME_PERIOD_KEY: 0.05})
    assert not train.start_training()
    assert "Labels layer" in train.message.text
    viewer.add_labels(labels[:, :20], name="narrow")
    assert not train.start_training()
    assert "(24, 20)" in train.message.text
    assert train.state.state is TrainState.IDLE


@pytest.mark.slow
def test_closing_the_viewer_stops_the_worker(make_napari_viewer, qtbot):
    from superqt.utils._qthreading import WorkerBase

    v = make_napari_viewer()
    movie, labels, pattern = toy_scan()
    v.add_image(movie, name="toy", metadata={SCAN_KEY: pattern.to_dict()})
    v.add_labels(labels, name="toy ROIs")
    train = open_widget(v, "Train / Load")
    small_fast(train, epochs=500)
    train.train_button.clicked()
    job = train.job
    qtbot.waitUntil(lambda: len(train.loss_plot.epochs) >= 1, timeout=60_000)
    v.close()
    assert job.wait(60.0)
    qtbot.waitUntil(lambda: not any(w.isRunning() if hasattr(w, "isRunning") else False
                                    for w in list(WorkerBase._worker_set)), timeout=10_000)
    assert not job.running


def test_plots_follow_the_napari_theme(viewer):
    """The trace panel and the loss plot take napari's theme colours and follow a theme change."""
    from matplotlib.colors import to_hex
    from napari.utils.theme import get_theme

    traces = open_widget(viewer, "Traces")
    train = open_widget(viewer, "Train / Load")
    canvas, loss = traces.canvas, train.loss_plot
    for name in ("light", "dark", "light"):
        viewer.theme = name
        theme = get_theme(name)
        bg, fg = theme.background.as_hex(), theme.text.as_hex()
        assert to_hex(canvas.figure.get_facecolor()) == bg
        for ax in (canvas.ax_obs, canvas.ax_rate):
            assert to_hex(ax.get_facecolor()) == bg
            assert to_hex(ax.xaxis.label.get_color()) == fg and to_hex(ax.title.get_color()) == fg
            assert {to_hex(t.get_color()) for t in ax.get_yticklabels()} <= {fg}
            assert to_hex(ax.spines["left"].get_edgecolor()) == fg
        assert to_hex(canvas.cursors[0].get_color()) == fg
        assert (loss.colours.background, loss.colours.text) == (bg, fg)
        loss.grab()  # paints with them
    assert get_theme("light").background.as_hex() != get_theme("dark").background.as_hex()
