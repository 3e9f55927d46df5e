"""Model search on Ray Tune (napari_sbtt.tune and `napari-sbtt tune`): the search space, ASHA on the
shipped tiny sample with 2 trials, Population Based Training with a real resume."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from napari_sbtt.config import SIZES, RunConfig, resolve, window_seconds
from napari_sbtt.search import SEARCH_SPACE, config_for

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "tiny"
RECORDING = {"rois": str(SAMPLE / "rois.tif"), "scan": str(SAMPLE / "scan.json")}


@pytest.mark.parametrize("end", ["low", "high"])
def test_every_bound_of_the_search_space_is_a_valid_run(end):
    base = RunConfig(model={"encoder_size": 8, "learning_rate": 1.0e-3})
    params = {n: (p.choices[0 if end == "low" else -1] if p.kind == "choice" else getattr(p, end))
              for n, p in SEARCH_SPACE.items()}
    cfg = config_for(base, params, bin_width=0.017)
    model = resolve(cfg, bin_width=0.017)
    for n, p in SEARCH_SPACE.items():
        if p.where == "model":
            assert getattr(model, n) == pytest.approx(params[n])  # the search wins over base.model
    assert "encoder_size" not in cfg.model  # a searched size replaces the base's own layer sizes
    assert cfg.size == params["size"] and model.encoder_size == SIZES[cfg.size].get("encoder_size", 64)
    assert cfg.window_s == pytest.approx(window_seconds(base, 0.017) * params["window_scale"])
    assert {p.where for p in SEARCH_SPACE.values()} == {"model", "size", "window"}
    assert {"learning_rate", "dropout", "coordinated_dropout", "kl_weight", "weight_decay"} <= {
        n for n, p in SEARCH_SPACE.items() if p.perturb}


def test_the_ray_tune_names_come_from_one_module(monkeypatch):
    """Ray >= 2.41 has report / get_checkpoint / Checkpoint / RunConfig / CheckpointConfig in
    ray.tune, Ray 2.9 - 2.40 only in ray.train: all five come from ray.tune only where it has all."""
    pytest.importorskip("ray.tune")
    import ray.train
    import ray.tune

    from napari_sbtt import search

    names = ("report", "get_checkpoint", "Checkpoint", "RunConfig", "CheckpointConfig")
    src = ray.tune if all(hasattr(ray.tune, n) for n in names) else ray.train
    api = search._ray_api()
    assert all(getattr(api, n) is getattr(src, n) for n in names)
    # a Ray whose ray.tune has only some of them: ray.train's, never a mix
    monkeypatch.delattr(ray.tune, "CheckpointConfig", raising=False)
    api = search._ray_api()
    assert all(getattr(api, n) is getattr(ray.train, n) for n in names)


def test_a_trial_row_falls_back_on_the_last_report():
    """Ray 2.41's Population Based Training can leave a trial's result.json (metrics_dataframe)
    empty; the trial's last report still gives its loss and epochs."""
    from types import SimpleNamespace

    from napari_sbtt import search

    last = {"valid_loss": 2.5, "best_valid_loss": 2.4, "epochs_done": 6, "training_iteration": 2, "trial_id": "t0",
            "time_total_s": 3.0}
    res = SimpleNamespace(metrics_dataframe=None, metrics=last, path="/x/t0", error=None,
                          config={"learning_rate": 1e-3})
    (row,) = search._rows([res], ["learning_rate"], max_t=6)
    assert (row.trial, row.best_loss, row.epochs, row.status) == ("t0", 2.4, 6, "done")
    assert row.params == {"learning_rate": 1e-3} and row.seconds == 3.0


@pytest.fixture(scope="module")
def ray_tune(ray_local):
    """The local Ray of tests/api/conftest.py, with Ray Tune (skipped without it)."""
    pytest.importorskip("ray.tune")
    return ray_local


def test_bad_search_arguments_are_refused_before_any_trial(tmp_path, ray_tune):
    from napari_sbtt import tune

    with pytest.raises(ValueError, match="unknown setting"):
        tune(SAMPLE / "movie.tif", tmp_path / "o", space=["lr"], recording_options=RECORDING)
    with pytest.raises(ValueError, match="none of \\['size'\\] can change"):
        tune(SAMPLE / "movie.tif", tmp_path / "o", space=["size"], scheduler="pbt", recording_options=RECORDING)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_tune_cli_two_trials_on_the_tiny_sample(tmp_path, capsys, ray_tune):
    from napari_sbtt.cli import _run_config, build_parser, main

    out = tmp_path / "search"
    argv = ["tune", str(SAMPLE / "movie.tif"), "--rois", RECORDING["rois"], "--scan", RECORDING["scan"],
            "--trials", "2", "--epochs", "3", "--cpus-per-trial", "1", "--out", str(out), "--verbose", "0"]
    assert main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("2 trials (2 ran): best ") and str(out / "result") in last
    assert {"best_config.json", "trials.csv", "trials.md", "result", "ray"} <= {p.name for p in out.iterdir()}
    rows = list(csv.DictReader(io.StringIO((out / "trials.csv").read_text())))
    assert len(rows) == 2 and all(r["status"] != "failed" for r in rows)
    losses = [float(r["valid_loss"]) for r in rows]
    meta = json.loads((out / "result" / "result.json").read_text())
    assert meta["config"]["search"]["valid_loss"] == pytest.approx(min(losses))
    assert meta["metrics"]["best_valid_loss"] == pytest.approx(min(losses))  # the best trial's own model
    # best_config.json is a run config `napari-sbtt run --config` takes
    best = json.loads((out / "best_config.json").read_text())
    args = build_parser().parse_args(["run", "m.tif", "--out", "o", "--config", str(out / "best_config.json")])
    assert RunConfig.from_dict(_run_config(args)) == RunConfig.from_dict(best)
    assert best["model"]["learning_rate"] == pytest.approx(meta["config"]["search"]["params"]["learning_rate"])
    # the result folder is a normal one: export reads it
    assert main(["export", str(out / "result"), str(tmp_path / "r.npz")]) == 0
    with np.load(tmp_path / "r.npz") as z:
        assert z["rates"].shape[1] == 6 and np.isfinite(z["rates"]).all()
    # a second search into the same folder needs --overwrite
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.slow
def test_population_based_training_resumes_from_checkpoints(tmp_path, ray_tune):
    from napari_sbtt import tune

    outcome = tune(SAMPLE / "movie.tif", tmp_path / "pbt", trials=2, scheduler="pbt", perturbation_interval=2,
                   space=["learning_rate", "dropout"], recording_options=RECORDING, verbose=0,
                   config={"epochs": 6, "size": "small", "max_seconds": None})
    assert len(outcome.trials) == 2 and all(t.status != "failed" for t in outcome.trials)
    experiment = next((tmp_path / "pbt" / "ray").iterdir())
    assert (experiment / "pbt_global.txt").read_text().strip()  # PBT exploited a checkpoint
    for progress in experiment.glob("*/progress.csv"):
        epochs = [int(r["epoch"]) for r in csv.DictReader(io.StringIO(progress.read_text()))]
        # a real resume goes on counting epochs; a restart from scratch would report 0 again
        assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs), epochs
        assert epochs[-1] == 5
    assert (tmp_path / "pbt" / "result" / "model.safetensors").is_file()


def test_a_trial_reports_at_most_every_few_seconds_and_ends_with_its_last_epoch(monkeypatch):
    """Each report is a round trip to Ray's driver: a trial reports when REPORT_EVERY_S has passed
    (plus at PBT's checkpoint epochs) and once more after its last epoch, with a checkpoint when a
    new best epoch came since the last report."""
    from types import SimpleNamespace

    from napari_sbtt import search

    sent = []

    class FakeApi:
        Checkpoint = SimpleNamespace(from_directory=lambda d: ("ckpt", sorted(os.listdir(d))))

        @staticmethod
        def report(metrics, checkpoint=None):
            sent.append((metrics[search.EPOCHS], checkpoint is not None))

        @staticmethod
        def get_checkpoint():
            return None

    clock = iter(float(t) for t in range(0, 1000, 2))  # every call: 2 s later
    monkeypatch.setattr(search.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(search, "_ray_api", lambda: FakeApi)
    monkeypatch.setattr(search, "REPORT_EVERY_S", 5.0)
    reports = [SimpleNamespace(epoch=e, valid_loss=1.0 / (e + 1), heldout_loss=1.0, train_loss=1.0,
                               best_valid_loss=1.0 / (e + 1), learning_rate=1e-3, is_best=e < 3)
               for e in range(7)]

    def fake_fit(*args, checkpoint=None, **kwargs):
        for r in reports:
            checkpoint(r, lambda: (SimpleNamespace(), SimpleNamespace(save=lambda p: Path(p).touch())))

    monkeypatch.setattr("napari_sbtt.model.fit_trials", fake_fit)
    from napari_sbtt.model import checkpoint as ckpt_mod

    monkeypatch.setattr(ckpt_mod, "save_training_state", lambda state, p: Path(p).touch())
    import napari_sbtt as ns

    sim = ns.simulate("tiny", seed=1)
    obs = ns.extract_observations(sim.movie, sim.labels, sim.pattern, dff=True)
    search.trial({}, obs, RunConfig(epochs=7).to_dict())
    # the clock starts at 0 and moves 2 s per epoch: reports at 6 s (epoch 3) and 12 s (epoch 6),
    # then nothing pending; the epochs before each report are folded into it
    epochs = [e for e, _ in sent]
    assert epochs == sorted(epochs) and epochs[-1] == 7 and len(sent) < 7
    assert sent[0][1] is True  # new best epochs since the start: with a checkpoint


def test_the_first_trial_is_the_run_itself():
    from napari_sbtt.search import run_point

    base = RunConfig()
    point = run_point(base, list(SEARCH_SPACE), 0.02)
    assert point["size"] == base.size and point["window_scale"] == 1.0
    same = config_for(base, point, 0.02)
    assert resolve(same, bin_width=0.02) == resolve(base, bin_width=0.02)  # what `run` fits with
    assert window_seconds(same, 0.02) == pytest.approx(window_seconds(base, 0.02))
    for name, p in SEARCH_SPACE.items():
        if p.where == "model":
            assert p.low <= point[name] <= p.high
    wild = run_point(RunConfig(model={"kl_weight": 10.0}), ["kl_weight"], 0.02)
    assert wild == {"kl_weight": SEARCH_SPACE["kl_weight"].high}  # clipped into the search's bounds
