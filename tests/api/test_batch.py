"""Batch runs on Ray (napari_sbtt.batch and `napari-sbtt batch`): 3 recordings, one broken ->
2 result folders and 1 failure in the summary; a rerun skips the 2."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.batchrun import RECORDING_OPTIONS, result_names, row_from_metrics, run_one
from napari_sbtt.cli import main
from napari_sbtt.cluster import RAY_MISSING, require_ray
from napari_sbtt.isolated import ModelFile
from napari_sbtt.result import is_result_dir, load_result
from tests.factories import tiny_config

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "tiny"


def _sessions(tmp_path: Path) -> list[Path]:
    """Two copies of the shipped tiny line scan and a broken one (frames of another size than the
    ROIs and the scan pattern), sharing rois.tif and scan.json."""
    d = tmp_path / "sessions"
    d.mkdir()
    shutil.copy(SAMPLE / "movie.tif", d / "mouse1.tif")
    shutil.copy(SAMPLE / "movie.tif", d / "mouse2.tif")
    tifffile.imwrite(d / "broken.tif", np.zeros((20, 16, 16), np.float32))
    return [d / "mouse1.tif", d / "broken.tif", d / "mouse2.tif"]


def test_result_names_are_unique_and_stable():
    names = result_names(["/a/s1/plane0", "/a/s2/plane0", "/x/m.tif", "/y/m.tif", "/z/m.tif", "/q/k.ome.tif"])
    assert names == ["s1_plane0", "s2_plane0", "x_m", "y_m", "z_m", "k"]
    assert result_names(["/a/m.tif", "/a/m.tiff"]) == ["a_m", "a_m_2"]
    assert "rois" in RECORDING_OPTIONS


def test_a_summary_row_reads_each_estimates_own_test():
    held = {"verdict": "SBTT better",
            "samples": {"r2": {"network": 0.1, "deconvolution": 0.5, "combined": 0.3, "events_combined": 0.45,
                               "oasis": 0.4}},
            "gaps": {"r2": {"network": 0.6, "deconvolution": 0.2, "combined": 0.55, "events_combined": 0.3,
                            "oasis": 0.25}}}
    rows = {e: row_from_metrics("rec", "out", "done", {"heldout": held, "estimate": e}, 1.0)
            for e in ("combined", "network", "deconvolution", "events_combined")}
    assert (rows["combined"].heldout_r2, rows["combined"].oasis_r2) == (0.55, 0.25)  # the gap test
    assert rows["events_combined"].heldout_r2 == 0.3  # the gap test too
    assert rows["network"].heldout_r2 == 0.6
    assert (rows["deconvolution"].heldout_r2, rows["deconvolution"].oasis_r2) == (0.5, 0.4)  # the samples


def test_without_ray_the_error_says_how_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ImportError) as e:
        require_ray()
    assert str(e.value) == RAY_MISSING and 'pip install "napari-sbtt[tune]"' in str(e.value)


def test_run_one_reports_a_broken_recording_without_raising(tmp_path):
    rec = _sessions(tmp_path)[1]
    row = run_one(str(rec), str(tmp_path / "out"), {"rois": str(SAMPLE / "rois.tif"),
                                                  "scan": str(SAMPLE / "scan.json")}, tiny_config())
    assert row.status == "failed" and str(rec) in row.error and "\n" not in row.error
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_batch_three_recordings_one_broken_then_rerun_skips(tmp_path, capsys, ray_local):
    sessions = _sessions(tmp_path)
    out = tmp_path / "out"
    cfg = json.dumps(tiny_config(likelihood="calcium", epochs=2))
    argv = ["batch", *map(str, sessions), "--out", str(out), "--rois", str(SAMPLE / "rois.tif"),
            "--scan", str(SAMPLE / "scan.json"), "--config", cfg]
    assert main(argv) == 1  # a recording failed
    text = capsys.readouterr().out
    assert text.strip().splitlines()[-1].startswith("3 recordings: 2 done, 0 skipped (already complete), 1 failed")
    assert sorted(p.name for p in out.iterdir()) == ["batch_summary.csv", "batch_summary.md", "mouse1", "mouse2"]
    for name in ("mouse1", "mouse2"):
        assert is_result_dir(out / name)
        res = load_result(out / name, load_model=False)
        assert res.config["recording"]["path"] == str(sessions[0 if name == "mouse1" else 2].resolve())
        # one core per task: one network each, not one per core of the machine
        assert "ensemble" not in ModelFile(out / name / "model.safetensors").metadata
    rows = list(csv.DictReader(io.StringIO((out / "batch_summary.csv").read_text())))
    assert [r["status"] for r in rows] == ["done", "failed", "done"]
    assert [Path(r["recording"]).name for r in rows] == ["mouse1.tif", "broken.tif", "mouse2.tif"]
    bad = rows[1]["error"]
    assert "broken.tif" in bad and "\n" not in bad and bad in text
    for r in (rows[0], rows[2]):
        assert -1 <= float(r["fit_r"]) <= 1 and float(r["seconds"]) > 0 and r["error"] == ""
        assert r["estimate"] in ("combined", "deconvolution", "events_combined") and r["verdict"]
    assert "| mouse1.tif | mouse1 | done |" in (out / "batch_summary.md").read_text()
    before = {n: (out / n / "arrays.npz").stat().st_mtime_ns for n in ("mouse1", "mouse2")}

    # the rerun skips the two finished recordings and tries the broken one again
    assert main(argv) == 1
    text = capsys.readouterr().out
    assert text.strip().splitlines()[-1].startswith("3 recordings: 0 done, 2 skipped (already complete), 1 failed")
    rows2 = list(csv.DictReader(io.StringIO((out / "batch_summary.csv").read_text())))
    assert [r["status"] for r in rows2] == ["skipped", "failed", "skipped"]
    assert rows2[0]["fit_r"] == rows[0]["fit_r"]  # numbers read back from the result folder
    assert before == {n: (out / n / "arrays.npz").stat().st_mtime_ns for n in ("mouse1", "mouse2")}

    # a folder of the same name holding something else is reported, never replaced
    (out / "mouse1").rename(tmp_path / "moved")
    (out / "mouse1").mkdir()
    (out / "mouse1" / "notes.txt").write_text("mine")
    from napari_sbtt.batchrun import batch

    summary = batch([sessions[0]], out, config=tiny_config(), recording_options={
        "rois": SAMPLE / "rois.tif", "scan": SAMPLE / "scan.json"})
    assert summary.rows[0].status == "failed" and "not a napari-sbtt result folder" in summary.rows[0].error
    assert (out / "mouse1" / "notes.txt").read_text() == "mine"


def test_the_package_names_batch_and_tune_are_the_functions():
    import napari_sbtt as ns
    import napari_sbtt.batchrun  # noqa: F401 - importing the modules must not shadow the functions
    import napari_sbtt.search  # noqa: F401

    assert callable(ns.batch) and ns.batch.__name__ == "batch"
    assert callable(ns.tune) and ns.tune.__name__ == "tune"


@pytest.mark.slow
def test_an_interrupted_batch_writes_its_summary_and_a_rerun_finishes(tmp_path, ray_local):
    from napari_sbtt.batchrun import BatchInterrupted, batch

    sessions = [s for s in _sessions(tmp_path) if s.name != "broken.tif"]
    shutil.copy(SAMPLE / "movie.tif", sessions[0].parent / "mouse3.tif")
    sessions.append(sessions[0].parent / "mouse3.tif")
    out = tmp_path / "out"
    opts = {"rois": SAMPLE / "rois.tif", "scan": SAMPLE / "scan.json"}

    def ctrl_c(row):
        raise KeyboardInterrupt

    # Ctrl-C as the first recording finishes; one recording at a time (both of Ray's 2 CPUs per
    # task), so that the next has barely started: with two at once a loaded machine could let
    # every recording finish before the interrupt reached them
    with pytest.raises(BatchInterrupted) as e:
        batch(sessions, out, config=tiny_config(), recording_options=opts, cpus_per_task=2, progress=ctrl_c)
    rows = e.value.summary.rows
    assert len(rows) == 3 and rows[0].status in ("done", "interrupted")
    assert sum(r.status == "done" for r in rows) >= 1 and sum(r.status == "interrupted" for r in rows) >= 1
    assert "interrupted" in (out / "batch_summary.md").read_text()
    assert all(r.error.startswith("interrupted") for r in rows if r.status == "interrupted")

    again = batch(sessions, out, config=tiny_config(), recording_options=opts)
    assert not again.failed and again.count("done") + again.count("skipped") == 3
    assert again.count("skipped") >= 1 and all(is_result_dir(out / n) for n in ("mouse1", "mouse2", "mouse3"))


def test_the_summary_tells_apart_recordings_of_one_name(tmp_path):
    from napari_sbtt.batchrun import BatchRow, summary_markdown

    rows = [BatchRow(str(tmp_path / f"s{i}" / "movie.tif"), str(tmp_path / "out" / f"s{i}_movie"),
                     "failed" if i == 2 else "done", error="broken" if i == 2 else "")
            for i in (1, 2)]
    table = summary_markdown(rows)
    assert "| movie.tif | s1_movie | done |" in table
    assert "| movie.tif | s2_movie | failed |" in table


def test_a_ctrl_c_after_the_last_recording_still_writes_the_summary(tmp_path, ray_local):
    """Nothing left to stop: the interrupt still ends in BatchInterrupted with every row."""
    from napari_sbtt.batchrun import BatchInterrupted, batch

    session = _sessions(tmp_path)[0]
    opts = {"rois": SAMPLE / "rois.tif", "scan": SAMPLE / "scan.json"}

    def ctrl_c(row):
        raise KeyboardInterrupt

    with pytest.raises(BatchInterrupted) as e:
        batch([session], tmp_path / "out", config=tiny_config(), recording_options=opts, progress=ctrl_c)
    assert [r.status for r in e.value.summary.rows] == ["done"]
    assert (tmp_path / "out" / "batch_summary.md").exists()
