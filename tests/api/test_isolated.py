"""Fits in a child process (napari_sbtt.isolated): same numbers, stop, abort, errors, model file."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from napari_sbtt.api import RunStopped, run_on_observations
from napari_sbtt.core.progress import RunControl
from napari_sbtt.core.synth import simulate
from napari_sbtt.core.traces import extract_observations
from napari_sbtt.isolated import IsolatedRunError, ModelFile, RunAborted, run_isolated

CFG = {"epochs": 2, "seed": 3, "factor": 2, "likelihood": "gaussian", "window_s": 0.5,
       "model": {"num_threads": 1, "generator_size": 16, "encoder_size": 16, "factor_size": 4,
                 "ic_size": 16, "readin_size": 16, "controller_size": 0}}


@pytest.fixture(scope="module")
def obs_and_scan():
    sim = simulate("tiny", seed=0)
    obs = extract_observations(sim.movie, sim.labels, sim.pattern, factor=2, dff=True)
    return obs, sim.pattern


@pytest.fixture(scope="module")
def isolated_result(obs_and_scan):
    obs, scan = obs_and_scan
    reports: list = []
    result = run_isolated(obs, scan=scan, config=CFG, progress=reports.append)
    return result, reports


@pytest.mark.slow
def test_same_numbers_as_in_process(obs_and_scan, isolated_result):
    obs, scan = obs_and_scan
    iso, reports = isolated_result
    here = run_on_observations(obs, config=CFG, scan=scan)
    np.testing.assert_array_equal(iso.rates, here.rates)
    np.testing.assert_array_equal(iso.signal, here.signal)
    assert iso.config["scan"] == here.config["scan"]
    assert [type(r).__name__ for r in reports].count("EpochReport") == 2
    assert reports[0].stage == "start"  # the user hears of the child before torch has loaded
    assert iso.metrics["epochs_run"] == 2 and not iso.stopped


@pytest.mark.slow
def test_model_file_saves_loads_and_cleans_up(obs_and_scan, isolated_result, tmp_path):
    obs, _ = obs_and_scan
    iso, _ = isolated_result
    mf = iso.model
    assert isinstance(mf, ModelFile)
    assert mf.likelihood == "gaussian" and mf.n_neurons == obs.values.shape[1]
    members = (mf.metadata.get("ensemble") or {}).get("members", 1)  # one network per core, merged
    assert mf.config.generator_size == 16 * members
    dest = mf.save(tmp_path / "m.safetensors")
    assert dest.read_bytes() == mf.path.read_bytes()
    with pytest.raises(FileExistsError):
        mf.save(dest)
    # the file applies like the model it stands for, in and out of process
    applied = run_on_observations(obs, model=mf, config=CFG)
    np.testing.assert_allclose(applied.rates, iso.rates, rtol=1e-5, atol=1e-6)
    again = run_isolated(obs, model=dest, config=CFG)
    np.testing.assert_array_equal(again.rates, applied.rates)
    folder = again.model.path.parent
    del again
    gc.collect()
    assert not folder.exists()


@pytest.mark.slow
def test_stop_before_the_first_report_keeps_a_model(obs_and_scan):
    obs, _ = obs_and_scan
    control = RunControl()
    control.stop()  # before the child has even started
    result = run_isolated(obs, config={**CFG, "epochs": 500}, control=control)
    assert result.stopped and 1 <= len(result.history) <= 2
    assert np.isfinite(result.rates).all()


@pytest.mark.slow
def test_abort_kills_the_child_quickly(obs_and_scan):
    obs, _ = obs_and_scan
    t0 = time.perf_counter()
    control = RunControl()
    threading.Timer(0.5, control.abort).start()
    with pytest.raises(RunAborted):
        run_isolated(obs, config={**CFG, "epochs": 500}, control=control)
    assert time.perf_counter() - t0 < 15


def test_child_errors_come_back_with_their_type(obs_and_scan, tmp_path):
    obs, _ = obs_and_scan
    with pytest.raises(FileNotFoundError, match="no model file"):
        run_isolated(obs, model=tmp_path / "missing.safetensors", config=CFG)
    with pytest.raises(ValueError, match="generator_size must be a positive integer"):
        run_isolated(obs, config={**CFG, "model": {**CFG["model"], "generator_size": 0}})


def test_a_dying_child_is_reported(obs_and_scan, monkeypatch):
    import napari_sbtt.isolated as iso

    obs, _ = obs_and_scan
    monkeypatch.setattr(iso, "child_command", lambda: [sys.executable, "-c", "import sys; sys.exit(7)"])
    with pytest.raises(IsolatedRunError, match="exit code 7"):
        run_isolated(obs, config=CFG)


@pytest.mark.slow
def test_the_parent_never_imports_torch(tmp_path):
    """run_on_stack(isolate=True) from a fresh interpreter: no torch there, a usable result."""
    script = textwrap.dedent(f"""
        import json, sys
        from napari_sbtt.api import run_on_stack
        from napari_sbtt.core.synth import simulate
        sim = simulate("tiny", seed=0)
        stops = []
        r = run_on_stack(sim.movie, sim.labels, sim.pattern, config={json.dumps(CFG)},
                         isolate=True, progress=lambda rep: stops.append(rep) and False)
        r.save({str(tmp_path / 'res')!r})
        print(json.dumps({{"torch": "torch" in sys.modules, "shape": list(r.rates.shape),
                          "reports": len(stops)}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["torch"] is False and info["reports"] >= 2
    assert (tmp_path / "res" / "model.safetensors").is_file()


def test_stopping_during_extraction_still_raises(obs_and_scan):
    from napari_sbtt.api import run_on_stack

    sim = simulate("tiny", seed=0)
    with pytest.raises(RunStopped):
        run_on_stack(sim.movie, sim.labels, sim.pattern, config=CFG, isolate=True,
                     progress=lambda r: True)


@pytest.mark.slow
def test_progress_that_raises_stop_training_stops_and_keeps_a_model(obs_and_scan):
    from napari_sbtt.model.config import StopTraining

    obs, _ = obs_and_scan

    def progress(report):
        if getattr(report, "epoch", -1) >= 0:
            raise StopTraining

    result = run_isolated(obs, config={**CFG, "epochs": 500}, progress=progress)
    assert result.stopped and len(result.history) <= 3
