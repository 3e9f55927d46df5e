"""Plugin logic without a viewer: state machine, scan pattern building, run settings, sync jobs."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sbtt.core.scan import ScanPattern
from napari_sbtt.plugin._layers import InputError, scan_from_metadata, timing_from_metadata
from napari_sbtt.plugin._scan_widget import KINDS, bandwidth_text, build_pattern
from napari_sbtt.plugin._state import IllegalTransition, TrainState, TrainStateMachine
from napari_sbtt.plugin._train_widget import device_choices


# --------------------------------------------------------------------------- state machine
def test_state_machine_allows_only_explicit_transitions():
    sm = TrainStateMachine()
    seen = []
    sm.connect(lambda old, new: seen.append((old.value, new.value)))
    assert sm.state is TrainState.IDLE and sm.can_start() and not sm.request_stop()
    with pytest.raises(IllegalTransition):
        sm.to(TrainState.DONE)
    sm.to(TrainState.TRAINING)
    assert sm.busy and not sm.can_start()
    with pytest.raises(IllegalTransition):
        sm.to(TrainState.TRAINING)  # no second run while one is going
    assert sm.request_stop() and sm.stop_requested
    sm.to(TrainState.STOPPED, "after 3 epochs")
    assert sm.message == "after 3 epochs" and sm.can_start()
    sm.to(TrainState.TRAINING)
    assert not sm.stop_requested  # a new run starts without the old stop request
    sm.to(TrainState.FAILED, "boom")
    sm.to(TrainState.TRAINING)
    sm.to(TrainState.DONE)
    sm.to(TrainState.IDLE)
    assert seen[0] == ("idle", "training") and seen[-1] == ("done", "idle")


# --------------------------------------------------------------------------- scan patterns
def _movie(pattern: ScanPattern, n_cols: int = 5) -> np.ndarray:
    movie = np.ones((pattern.n_sweeps, pattern.n_rows, n_cols), np.float32)
    movie[~pattern.frame_mask()] = np.nan
    return movie


def test_build_pattern_every_kind(tmp_path):
    truth = ScanPattern.strips(12, 9, 1e-3, 3, frame_period=4e-3)
    movie = _movie(truth)
    md = {"scan_pattern": truth.to_dict()}
    assert build_pattern("from movie metadata", movie, md) == truth
    inferred = build_pattern("from NaN rows", movie, frame_period=4e-3)
    np.testing.assert_array_equal(inferred.frame_mask(), truth.frame_mask())
    assert inferred.line_period == pytest.approx(1e-3)  # 4 rows fill the 4 ms sweep
    full = build_pattern("full raster", movie, line_period=1e-3)
    assert full.acquired_fraction() == 1 and full.frame_period == pytest.approx(12e-3)
    strips = build_pattern("strips", movie, line_period=1e-3, n_strips=4, order="interleaved")
    assert [r.tolist()[0] for r in strips.cycle] == [0, 6, 3, 9]
    rnd = build_pattern("random lines", movie, frame_period=0.012, fraction=0.5, seed=1)
    assert rnd.frame_mask().sum(axis=1).tolist() == [6] * 9
    truth.to_json(tmp_path / "scan.json")
    assert build_pattern("from scan.json", movie, path=tmp_path / "scan.json") == truth
    assert set(KINDS) == {"from movie metadata", "from NaN rows", "full raster", "strips",
                          "random lines", "from scan.json"}


@pytest.mark.parametrize(
    "kind, kwargs, message",
    [
        ("from movie metadata", {}, "holds no scan pattern"),
        ("full raster", {}, "line period is unknown"),
        ("from scan.json", {"path": None}, "choose a scan.json"),
        ("strips", {"line_period": 1e-3, "n_strips": 9}, "n_strips must lie in 1..8"),
        ("full raster", {"frame_period": 1e-3, "flyback": 2e-3}, "flyback"),
        ("spiral", {"line_period": 1e-3}, "unknown scan pattern kind"),
    ],
)
def test_build_pattern_explains_problems(kind, kwargs, message):
    movie = np.ones((4, 8, 3), np.float32)
    with pytest.raises(InputError, match=message):
        build_pattern(kind, movie, {}, **kwargs)


def test_build_pattern_rejects_a_pattern_of_another_movie(tmp_path):
    other = ScanPattern.full_raster(10, 4, 1e-3)
    other.to_json(tmp_path / "scan.json")
    with pytest.raises(InputError, match="does not belong"):
        build_pattern("from scan.json", np.ones((4, 8, 3)), path=tmp_path / "scan.json")
    with pytest.raises(InputError, match=r"\(T, Y, X\)"):
        build_pattern("full raster", np.ones((8, 3)), line_period=1e-3)


def test_bandwidth_text_counts_samples_per_roi():
    p = ScanPattern.strips(4, 8, 1e-3, 2, frame_period=2e-3)  # 2 strips of 2 rows, 500 sweeps/s
    labels = np.zeros((4, 3), np.int32)
    labels[0, 0] = 1  # top strip only: every other sweep -> 250 samples/s
    labels[1:3, 1] = 2  # both strips -> every sweep -> 500 samples/s
    text = bandwidth_text(p, labels)
    assert "50% of the field per sweep" in text and "500 sweeps/s" in text
    assert "min 250" in text and "max 500" in text and "2 ROIs" in text
    assert "Samples per ROI" not in bandwidth_text(p, None)


def test_metadata_timing():
    p = ScanPattern.strips(6, 3, 1e-3, 2, frame_period=5e-3)
    assert timing_from_metadata({"scan_pattern": p.to_json()}) == (5e-3, 1e-3)
    assert timing_from_metadata({"frame_period_s": 0.1}) == (0.1, None)
    assert timing_from_metadata({"frame_period_s": -1, "line_period_s": "x"}) == (None, None)
    assert scan_from_metadata({"scan_pattern": {"format": "other"}}) is None
    assert scan_from_metadata({}) is None


# --------------------------------------------------------------------------- run settings
def test_run_fields_are_the_run_config_settings(qapp):
    from napari_sbtt.config import RunConfig, resolve, settings
    from napari_sbtt.plugin._run_fields import field_value, make_run_fields, run_config_from_fields

    fields = make_run_fields(device_choices=device_choices)
    assert list(fields) == [n for n, s, _ in settings() if s.widget is not None]
    for name, widget in fields.items():
        assert widget.label == RunConfig.setting(name).widget and widget.tooltip
    fields["likelihood"].value = "calcium"
    fields["indicator"].value = "GCaMP8m"
    fields["onset_delay_s"].value = 20.0  # shown in ms
    fields["epochs"].value = 3
    fields["threads"].value = 2
    fields["max_seconds"].value = 0.0  # the lowest value: no budget
    cfg = run_config_from_fields(fields, adapt=True)
    assert (cfg.indicator, cfg.onset_delay_s, cfg.epochs, cfg.threads, cfg.max_seconds, cfg.adapt) == (
        "GCaMP8m", 0.02, 3, 2, None, True)
    model = resolve(cfg, bin_width=0.01)
    assert model.calcium_delay_bins == pytest.approx(2.0) and model.num_threads == 2
    fields["epochs"].value = fields["epochs"].min  # "400 (default)": the model's own
    fields["indicator"].value = fields["indicator"].choices[0]
    assert field_value("epochs", fields["epochs"]) is None and field_value("indicator", fields["indicator"]) is None
    assert fields["epochs"].native.specialValueText() == "400 (default)"
    assert device_choices()[:2] == ["auto", "cpu"]


@pytest.mark.gui
def test_sync_switch_runs_the_job_on_the_calling_thread(qtbot, monkeypatch):
    import threading

    from napari_sbtt.plugin._worker import Job, sync_mode

    monkeypatch.setenv("NAPARI_SBTT_SYNC", "1")
    assert sync_mode()
    seen: dict[str, object] = {}

    def func(control):
        seen["thread"] = threading.current_thread()
        assert control("report 1") is False
        return 42

    job = Job(func, on_reports=lambda r: seen.setdefault("reports", r),
              on_done=lambda v: seen.setdefault("done", v), on_error=lambda e: seen.setdefault("err", e))
    job.start()  # returns only when the job is over
    assert seen["thread"] is threading.main_thread() and seen["done"] == 42
    assert seen["reports"] == ["report 1"] and not job.running
    monkeypatch.setenv("NAPARI_SBTT_SYNC", "0")
    assert not sync_mode()


# --------------------------------------------------------------------------- torch preload
def test_torch_libraries_preload_without_importing_torch():
    """The preload maps torch's libraries (GIL released) and leaves a normal import working."""
    import subprocess
    import sys
    import textwrap

    pytest.importorskip("torch")
    if not sys.platform.startswith("linux"):
        pytest.skip("the check reads /proc/self/maps")
    code = textwrap.dedent("""
        import sys
        from napari_sbtt.plugin._torch_preload import preload_torch_libraries
        names = preload_torch_libraries()
        maps = open("/proc/self/maps").read()
        print("NAMES", ",".join(names))
        print("MAPPED", "libtorch_cpu" in maps, "TORCH", "torch" in sys.modules)
        import torch
        print("SUM", float(torch.ones(3).sum()), "AGAIN", preload_torch_libraries() == names)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "libtorch_cpu.so" in out.stdout.split("NAMES ")[1].splitlines()[0]
    assert "MAPPED True TORCH False" in out.stdout
    assert "SUM 3.0 AGAIN True" in out.stdout
