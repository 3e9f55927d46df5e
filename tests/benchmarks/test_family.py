"""The benchmark family (benchmarks/family.py) and the ground-truth helper (benchmarks/_common.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from napari_sbtt.core.metrics import noise_std_for_level

BENCH = Path(__file__).parents[2] / "benchmarks"
GROUNDTRUTH = Path(__file__).parents[2] / ".." / "shared" / "groundtruth"


def _load(name: str) -> ModuleType:
    """Import a benchmark script by path (they import ``_common`` from their own folder)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def family() -> ModuleType:
    return _load("family")


@pytest.fixture(scope="module")
def common() -> ModuleType:
    return _load("_common")


def test_cells_are_deterministic_and_seeded(family: ModuleType) -> None:
    a = family.sample_cells(24, seed=0)
    b = family.sample_cells(24, seed=0)
    assert a == b
    c = family.sample_cells(24, seed=1)
    assert [x.describe() for x in c] != [x.describe() for x in a]
    assert len({x.seed for x in a}) == 24  # every recording its own seed


def test_every_level_of_every_axis_appears_in_each_half(family: ModuleType) -> None:
    cells = family.sample_cells(24, seed=0)
    tune = [c for c in cells if c.half == "tune"]
    report = [c for c in cells if c.half == "report"]
    assert [c.index for c in tune] == list(range(0, 24, 2))
    assert [c.index for c in report] == list(range(1, 24, 2))
    assert {c.index for c in tune}.isdisjoint({c.index for c in report})
    assert {c.seed for c in tune}.isdisjoint({c.seed for c in report})
    for half in (tune, report):
        for axis, levels in family.AXES.items():
            seen = [getattr(c, axis) for c in half]
            assert set(seen) == set(levels), axis
            counts = [seen.count(v) for v in levels]
            assert max(counts) - min(counts) <= 1, axis  # balanced


def test_cells_respect_the_noise_rule_and_the_size_caps(family: ModuleType) -> None:
    for seed in (0, 1, 2):
        for c in family.sample_cells(24, seed=seed):
            # the same dF/F noise per sample at every sweep period (nu referred to 30 Hz)
            assert c.sample_noise_sd == pytest.approx(float(noise_std_for_level(c.nu, 30.0)))
            assert c.synth_noise_level == pytest.approx(c.nu * np.sqrt(30.0 * c.sweep_period))
            Y, X = c.field_shape
            assert Y % c.reduction == 0 and Y // c.reduction >= family.MIN_STRIP_ROWS
            assert family.PX_PER_ROI * c.n_rois <= Y * X
            assert 0 < c.duration_s <= c.duration_min * 60
            assert c.duration_s * c.n_rois <= family.MAX_ROI_SECONDS
            assert c.duration_s / c.sweep_period * Y * X <= family.MAX_PIXELS


def test_small_families_and_the_quick_cells(family: ModuleType) -> None:
    cells = family.sample_cells(3, seed=0)
    assert [c.half for c in cells] == ["tune", "report", "tune"]
    quick = family.quick_cells()
    assert len(quick) == 2 and {c.half for c in quick} == {"tune", "report"}
    assert all(c.n_rois == 10 and c.duration_s == 12 for c in quick)
    with pytest.raises(ValueError, match="cells"):
        family.sample_cells(0)


def test_a_cell_builds_its_recording(family: ModuleType) -> None:
    for cell in family.quick_cells():
        cfg = cell.synth_config()
        pat = cfg.build_pattern()
        assert pat.frame_period == pytest.approx(cell.sweep_period)
        assert pat.duration == pytest.approx(cell.duration_s, rel=0.01)
        assert cfg.indicator == cell.indicator and cfg.n_rois == cell.n_rois
        assert cfg.noise_level == pytest.approx(cell.synth_noise_level)
        assert cfg.subtract_background == family.SUBTRACT_BACKGROUND
        assert cfg.scan_kind == ("random_lines" if cell.scan == "random_lines" else "strips")


def test_the_summary_gives_median_and_worst_margin_per_half(family: ModuleType) -> None:
    rows = [{"cell": {"half": h}, "margin": m}
            for h, m in [("tune", 0.1), ("tune", -0.05), ("tune", 0.2), ("report", 0.03)]]
    rows.append({"cell": {"half": "report"}, "margin": None, "failed": "observations: F0 <= 0"})
    lines = family.summary(rows)
    assert lines[0] == "tune half: 3 cells, median margin +0.100, worst -0.050, 1 below -0.02"
    assert lines[1].startswith("report half: 1 cells, median margin +0.030, worst +0.030, 0 below -0.02; 1 failed")


def test_list_prints_the_cells_without_fitting(family: ModuleType, capsys) -> None:
    assert family.main(["--list", "--half", "report"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 + 12 and all("| report |" in line for line in out[2:])


@pytest.mark.slow
def test_quick_run_writes_rows_and_resumes(family: ModuleType, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "fam"
    assert family.main(["--quick", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [r["cell"]["index"] for r in rows] == [0, 1]
    for r in rows:
        assert np.isfinite(r["sbtt"]["r"]) and np.isfinite(r["oasis"]["r"])
        assert r["margin"] == pytest.approx(r["sbtt"]["r"] - r["oasis"]["r"])
        assert r["sbtt"]["epochs"] <= 3 and r["variant"] == "indicator named"
    md = out.with_suffix(".md").read_text()
    assert "tune half: 1 cells" in md and "report half: 1 cells" in md
    # a rerun finds both cells done and fits nothing
    monkeypatch.setattr(family, "run_cell", lambda *a, **k: pytest.fail("a finished cell was run again"))
    assert family.main(["--quick", "--out", str(out)]) == 0
    # other settings are refused for the same OUT
    with pytest.raises(SystemExit):
        family.main(["--quick", "--no-indicator", "--out", str(out)])


# --------------------------------------------------------------------------- ground truth helper
def test_groundtruth_datasets_reads_the_indicator_from_the_folder(common: ModuleType, tmp_path: Path) -> None:
    for name in ("DS06-GCaMP6f-zf-aDp", "DS13-GCaMP6s-m-V1-neuropil-corrected", "DS32-GCaMP8s-m-V1",
                 "DS40-GCaMP6f-empty", "notes"):
        (tmp_path / name).mkdir()
    for name in ("DS06-GCaMP6f-zf-aDp", "DS13-GCaMP6s-m-V1-neuropil-corrected", "DS32-GCaMP8s-m-V1"):
        (tmp_path / name / "x.mat").write_bytes(b"")
    assert common.groundtruth_datasets(tmp_path) == {
        "DS06-GCaMP6f-zf-aDp": "GCaMP6f",
        "DS13-GCaMP6s-m-V1-neuropil-corrected": "GCaMP6s",
        "DS32-GCaMP8s-m-V1": "GCaMP8s",
    }  # folders without .mat files and other names are not data sets
    assert common.groundtruth_datasets(tmp_path / "absent") == {}
    (tmp_path / "DS50-XCaMP-m-V1").mkdir()
    (tmp_path / "DS50-XCaMP-m-V1" / "y.mat").write_bytes(b"")
    with pytest.raises(ValueError, match="XCaMP"):
        common.groundtruth_datasets(tmp_path)


def test_groundtruth_datasets_finds_all_seven_shared_sets(common: ModuleType) -> None:
    if not GROUNDTRUTH.is_dir():
        pytest.skip("../shared/groundtruth is not here")
    found = common.groundtruth_datasets(GROUNDTRUTH)
    assert len(found) == 7
    assert sorted(found.values()) == ["GCaMP6f"] * 4 + ["GCaMP6s"] * 2 + ["GCaMP8s"]
    assert found["DS32-GCaMP8s-m-V1"] == "GCaMP8s" and found["DS14-GCaMP6s-m-V1"] == "GCaMP6s"


def test_a_recording_the_library_refuses_is_a_failed_row(family: ModuleType, monkeypatch) -> None:
    import napari_sbtt.api as api

    def refuse(*a, **k):
        raise ValueError("the dF/F baseline F0 is <= 0 for ROI id(s) [3]")

    monkeypatch.setattr(api, "observations_for_stack", refuse)
    monkeypatch.setattr(api, "run_on_observations", lambda *a, **k: pytest.fail("no fit after a refusal"))
    cell = family.quick_cells()[1]
    row = family.run_cell(cell, {"epochs": 1})
    assert row["failed"].startswith("observations: the dF/F baseline F0 is <= 0")
    assert row["margin"] is None and row["sbtt"] is None and row["true"]["n_rois"] == cell.n_rois
    assert "| failed | failed |" in family.markdown(row)


@pytest.mark.slow
def test_groundtruth_benchmark_runs_deconvolve_traces_quickly(tmp_path: Path) -> None:
    if not GROUNDTRUTH.is_dir():
        pytest.skip("../shared/groundtruth is not here")
    gt = _load("groundtruth_spikes")
    assert gt.main(["--gt-dir", str(GROUNDTRUTH), "--quick", "--out", str(tmp_path / "b3")]) == 0
    rows = json.loads((tmp_path / "b3.json").read_text())
    assert len(rows) == 1 and rows[0]["k"] == 4
    row = rows[0]
    assert row["metrics"]["estimate"] == "deconvolution" and row["n_recordings"] > 0
    assert -1.0 <= row["sbtt_r_rec"] <= 1.0 and row["half"] in ("tune", "report")


def test_rescoring_reads_the_combined_estimates_r_where_a_row_scored_it() -> None:
    rescore = _load("rescore_auto")
    gaps = {"kind": "gaps", "n_samples": 500, "r2": {"network": 0.30, "deconvolution": 0.05},
            "se": {"network - deconvolution": 0.02}}  # the network leads by 12.5 SE: "combined"

    def row(**sbtt: float) -> dict:
        return {"cell": {"index": 3, "n_rois": 50}, "oasis": {"r": 0.4},
                "sbtt": {"heldout": {"gaps": gaps}, "estimate": "network", "r_network": 0.8,
                         "r_deconvolution": 0.5, **sbtt}}

    new = rescore.rescore(row(r_combined=0.7))
    assert new["now"] == "combined" and new["r"] == 0.7 and new["margin"] == pytest.approx(0.3)
    assert new["lead"] == pytest.approx(12.5) and not new["undecided"] and new["n_rois"] == 50
    assert rescore.rescore(row(blends={"r_w0.75": 0.65, "r_w0.5": 0.1}))["r"] == 0.65  # --extras rows
    assert rescore.rescore(row()) is None  # the estimate the rule returns now was never scored
    gaps["r2"]["network"] = 0.07  # 1 SE ahead: undecided, and 10 ROIs get the events-led mixture
    small = row(r_combined=0.7, blends={"r_w0.25": 0.6})
    small["cell"]["n_rois"] = 10
    new = rescore.rescore(small)
    assert new["now"] == "events_combined" and new["r"] == 0.6 and new["undecided"]


@pytest.mark.parametrize("script", ["family_events_sparsity", "family_events_timing", "family_decay_heldout",
                                    "family_slow_rhythm"])
def test_the_probes_refuse_report_cells(capsys, script: str) -> None:
    probe = _load(script)
    with pytest.raises(SystemExit):
        probe.main(["--seed", "0", "--cell", "15"])
    assert "report cell" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        probe.main(["--seed", "0", "--cell", "99"])
    assert "no such cell" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # checked before any fit, wherever the report cell is listed
        probe.main(["--seed", "0", "--cell", "0", "--cell", "15"])
    assert "report cell" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["groundtruth_events_timing", "groundtruth_decay_heldout"])
def test_the_ground_truth_probes_refuse_report_sets_and_skip_without_data(capsys, tmp_path, script: str) -> None:
    probe = _load(script)
    assert probe.main(["--gt-dir", str(tmp_path / "absent"), "--dataset", "DS09-GCaMP6f-m-V1"]) == 0
    assert "no ground truth" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        probe.main(["--gt-dir", str(tmp_path), "--dataset", "DS06-GCaMP6f-zf-aDp"])
    assert "tune sets only" in capsys.readouterr().err


def test_the_slow_rhythm_probe_refuses_bad_overrides(capsys) -> None:
    probe = _load("family_slow_rhythm")
    for bad in ("{", "[1]"):
        with pytest.raises(SystemExit):
            probe.main(["--seed", "0", "--cell", "0", "--run", bad])
        assert "--run" in capsys.readouterr().err


def test_the_slow_rhythm_measures() -> None:
    probe = _load("family_slow_rhythm")
    dt, n_t = 0.02, 3000
    t = np.arange(n_t) * dt
    rng = np.random.default_rng(1)
    rhythm = np.column_stack([2 + np.cos(2 * np.pi * t + k) for k in range(4)])  # 1 Hz
    drift = np.column_stack([np.cumsum(rng.standard_normal(n_t)) for _ in range(4)])  # slow
    common = _load("_common")
    assert common.peak_frequency(rhythm, dt) == pytest.approx(1.0, abs=0.02)
    assert common.peak_frequency(rhythm[:, 0], dt) == pytest.approx(1.0, abs=0.02)  # one trace
    on = probe.power_shares(rhythm, dt, 1.0)
    assert on["peak_band"] > 0.99 and on["slow"] < 0.01
    off = probe.power_shares(drift, dt, 1.0)
    assert off["slow"] > 0.9 and off["peak_band"] < 0.05
    # samples made from the rhythm through the kernel: the rhythm explains them, the drift does not
    from scipy.signal import lfilter

    values = lfilter([1.0], [1.0, -np.exp(-dt / 0.5)], rhythm, axis=0) + 0.1 * rng.standard_normal(rhythm.shape)
    values[rng.random(values.shape) < 0.75] = np.nan
    assert probe.r2_by_kernel(values, rhythm, dt, 0.5) > 0.9 > probe.r2_by_kernel(values, drift, dt, 0.5)


def test_the_decay_probe_scores_the_true_decay_above_far_ones() -> None:
    probe = _load("family_decay_heldout")
    from napari_sbtt.core.indicators import get_indicator

    rng = np.random.default_rng(0)
    dt, n_t, n = 0.02, 6000, 6
    kernel = get_indicator("GCaMP6f").kernel(dt)  # 0.58 s decay
    spikes = (rng.random((n_t, n)) < 0.02).astype(float)
    calcium = np.stack([np.convolve(spikes[:, i], kernel)[:n_t] for i in range(n)], axis=1)
    values = calcium + 0.02 * rng.standard_normal((n_t, n))
    values[1::2] = np.nan  # every second bin sampled
    times = np.arange(n_t) * dt
    sd = probe.noise_sd_of(values)
    assert np.all(sd > 0) and np.all(np.isfinite(sd))

    r2 = probe.decay_scores(values, times, dt, 0.0, candidates=(0.1, 0.58, 3.2))
    true = r2["0.580"]
    assert true > r2["0.100"] and true > r2["3.200"] and 0.5 < true <= 1.0


def test_the_table_shows_every_estimates_r_a_row_scored() -> None:
    family = _load("family")
    cell = {"index": 19, "half": "report", "latent": "sparse", "indicator": "GCaMP8f", "scan": "interleaved",
            "reduction": 16, "sweep_ms": 5.0, "nu": 8.0}
    sbtt = {"r": 0.4, "estimate": "events_combined", "r_network": 0.5, "r_deconvolution": 0.3,
            "r_combined": 0.45, "r_events_combined": 0.4, "heldout": {"verdict": "no clear difference"},
            "seconds_fit": 10.0, "epochs": 5, "load": 1.0}
    row = {"cell": cell, "true": {"reduction_per_roi": 16.0, "n_rois": 10, "duration_s": 120.0},
           "sbtt": sbtt, "oasis": {"r": 0.3}, "margin": 0.1, "seconds_total": 12.0}
    line = family.markdown(row)
    assert "| events_combined (0.500 / 0.300 / 0.450 / 0.400) |" in line
    assert line.count("|") == family.N_COLS + 1
    del sbtt["r_events_combined"]  # a row written before the events-led mixture
    assert "| events_combined (0.500 / 0.300 / 0.450) |" in family.markdown(row)


def _family_row(index: int, verdict: str, r: float, oasis_r: float, indicator: str = "GCaMP6f",
                half: str = "report", key: str = '{"seed": 7}') -> dict:
    return {"key": key, "cell": {"index": index, "indicator": indicator, "half": half},
            "oasis": {"r": oasis_r}, "sbtt": {"r": r, "heldout": {"verdict": verdict}}}


def test_verdict_calibration_counts_each_run_once(tmp_path):
    vc = _load("verdict_calibration")
    rows = [_family_row(1, "SBTT better", 0.8, 0.5), _family_row(3, "OASIS better", 0.6, 0.5, "GCaMP6s"),
            _family_row(5, "OASIS better", 0.4, 0.5), _family_row(7, "no clear difference", 0.45, 0.5),
            {"cell": {"index": 9}, "sbtt": None}]  # a failed cell: skipped
    (tmp_path / "family_a.json").write_text(json.dumps(rows))
    (tmp_path / "family_b.json").write_text(json.dumps(rows[:2]))  # the same runs stored twice
    runs = vc.family_runs([str(tmp_path / "family_a.json"), str(tmp_path / "family_b.json")])
    assert len(runs) == 4
    lines = vc.table(runs)
    assert "| SBTT better | 1 | 1 | 1 of 1 | +0.300 |" in lines
    # "OASIS better": the truth agrees once (cell 5), SBTT was ahead once (cell 3)
    assert "| OASIS better | 2 | 1 | 1 of 2 | +0.000 |" in lines
    assert "| no clear difference | 1 | - | 0 of 1 | -0.050 |" in lines


def test_tree_peak_counts_child_processes(common):
    import subprocess

    psutil = pytest.importorskip("psutil")
    own_mb = psutil.Process().memory_info().rss / 2**20
    with common.TreePeak(interval=0.02) as tree:
        child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(64 << 20); time.sleep(1.0)"])
        child.wait(timeout=60)
    assert tree.peak_children >= 1
    assert tree.peak_mb > own_mb + 60  # the child's 64 MiB buffer on top of this process


def test_the_start_decay_benchmark_prints_both_starts(capsys, tmp_path) -> None:
    sd = _load("groundtruth_start_decay")
    assert sd.main(["--gt-dir", str(tmp_path / "absent")]) == 0
    assert "no ground truth" in capsys.readouterr().out
    if not GROUNDTRUTH.is_dir():
        pytest.skip("../shared/groundtruth is not here")
    assert sd.main(["--gt-dir", str(GROUNDTRUTH), "--datasets", "DS09-GCaMP6f-m-V1", "--k", "4"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["dataset"] == "DS09-GCaMP6f-m-V1" and row["k"] == 4
    assert 0.05 <= row["plain_s"] <= row["checked_s"] <= 5.0  # the check only ever lengthens


def test_a_crowded_cell_subtracts_a_lower_background_percentile(monkeypatch: pytest.MonkeyPatch) -> None:
    import napari_sbtt.core.synth as synth

    family = _load("family")
    cell = family.sample_cells(seed=10)[21]
    asked = []

    def fake_simulate(cfg, seed):
        asked.append(cfg.subtract_background)
        if cfg.subtract_background > 30:
            raise synth.BackgroundTooHighError(cfg.subtract_background)
        return cfg

    monkeypatch.setattr(synth, "simulate", fake_simulate)
    assert cell.simulate().subtract_background == 25.0 and asked == [50.0, 25.0]
    asked.clear()
    with pytest.raises(synth.BackgroundTooHighError):  # asked for explicitly: no fallback
        cell.simulate(subtract_background=50.0)
    assert asked == [50.0]

    def refuses_otherwise(cfg, seed):
        asked.append(cfg.subtract_background)
        raise ValueError("another refusal is no reason to try a lower percentile")

    asked.clear()
    monkeypatch.setattr(synth, "simulate", refuses_otherwise)
    with pytest.raises(ValueError, match="another refusal"):
        cell.simulate()
    assert asked == [50.0]

    def other_error(cfg, seed):
        raise ValueError("something else")

    monkeypatch.setattr(synth, "simulate", other_error)
    with pytest.raises(ValueError, match="something else"):
        cell.simulate()


def test_the_lag_probe_finds_a_known_delay(capsys, tmp_path) -> None:
    """groundtruth_lag: an estimate placed 3 frames early scores best moved 3 frames later; the
    frames moved in from outside are NaN (not wrapped round), and a report set is refused."""
    lag = _load("groundtruth_lag")
    assert np.array_equal(lag.moved(np.arange(5.0), 2), [np.nan, np.nan, 0, 1, 2], equal_nan=True)
    assert np.array_equal(lag.moved(np.arange(5.0), -1), [1, 2, 3, 4, np.nan], equal_nan=True)
    rng = np.random.default_rng(0)
    spikes = [(rng.random(600) < 0.05).astype(float) for _ in range(3)]
    early = [np.concatenate([s[3:], np.zeros(3)]) for s in spikes]  # each spike 3 frames early
    scores = lag.median_r_by_lag(spikes, early, [1 / 60] * 3, lags=(-2, 0, 3, 5))
    assert max(scores, key=scores.get) == 3 and scores[3] > 0.99 > scores[0]
    with pytest.raises(SystemExit):  # checked before any fit
        lag.main(["--gt-dir", str(tmp_path), "--datasets", "DS06-GCaMP6f-zf-aDp"])
    assert "tune sets only" in capsys.readouterr().err


def test_median_over_recordings_and_over_neurons_leaves_nan_scores_out() -> None:
    gt = _load("groundtruth_spikes")
    rows = [{"neuron": "a", "r": 0.9}, {"neuron": "a", "r": 0.7}, {"neuron": "a", "r": float("nan")},
            {"neuron": "b", "r": 0.1}, {"neuron": "c", "r": float("nan")}]
    by_rec, by_neuron = gt.median_by_recording_and_neuron(rows, "r")
    assert by_rec == pytest.approx(0.7)  # median of 0.9, 0.7, 0.1
    assert by_neuron == pytest.approx(0.45)  # median of a's 0.8 and b's 0.1; c has no score


def test_the_probes_keep_the_same_frames_and_score_oasis_on_them() -> None:
    from napari_sbtt.core.baselines import oasis_available

    if not oasis_available():
        pytest.skip("oasis-deconv is not installed")
    gt = _load("groundtruth_spikes")
    rng = np.random.default_rng(0)
    recs = []
    for i, n in enumerate((400, 330)):  # lengths differ, as real recordings do
        t = np.arange(n) / 30.0
        s = (rng.random(n) < 0.05).astype(float)
        y = np.convolve(s, np.exp(-np.arange(60) / 15.0))[:n] + 0.05 * rng.standard_normal(n)
        recs.append({"neuron": f"n{i}", "index": 0, "t": t, "dff": y, "spikes": s, "dt": 1 / 30.0})
    fit = gt.fit_kept_frames(recs, 4, seed=3, run={"epochs": 1})
    again = gt.fit_kept_frames(recs, 4, seed=3, run={"epochs": 1})
    for r, o, o2, base, est in zip(recs, fit.obs, again.obs, fit.oasis, fit.result.rates, strict=True):
        kept = np.flatnonzero(np.isfinite(o))
        assert np.all(np.diff(kept) == 4) and kept[0] < 4  # every 4th frame, a seeded phase
        np.testing.assert_array_equal(o[kept], r["dff"][kept])
        np.testing.assert_array_equal(np.isfinite(o2), np.isfinite(o))  # the same frames again
        assert base.shape == est.shape == r["dff"].shape
    assert fit.seconds > 0


def test_verdict_calibration_recomputes_the_rule_from_the_stored_tests(tmp_path):
    vc = _load("verdict_calibration")

    def tests(own: float, other: float) -> dict:
        se = {"deconvolution - oasis": 0.01}
        return {"estimate": "deconvolution", "verdict": "OASIS better",
                "samples": {"kind": "samples", "n_samples": 50, "r2": {"deconvolution": own, "oasis": 0.5}, "se": se},
                "gaps": {"kind": "gaps", "n_samples": 50, "r2": {"deconvolution": other, "oasis": 0.5}, "se": se}}

    one = _family_row(1, "OASIS better", 0.7, 0.5)
    one["sbtt"]["heldout"] = tests(0.4, 0.6)  # OASIS wins the samples only: no clear difference now
    both = _family_row(3, "OASIS better", 0.4, 0.5)
    both["sbtt"]["heldout"] = tests(0.4, 0.4)  # OASIS wins both: still OASIS better
    old = _family_row(5, "OASIS better", 0.6, 0.5)  # tests not stored: nothing to recompute
    (tmp_path / "rows.json").write_text(json.dumps([one, both, old]))
    runs = {x["r"]: x["now"] for x in vc.family_runs([str(tmp_path / "rows.json")])}
    assert runs == {0.7: "no clear difference", 0.4: "OASIS better", 0.6: None}
    assert "| OASIS better | 1 | 1 | 0 of 1 | -0.100 |" in vc.table([x for x in vc.family_runs(
        [str(tmp_path / "rows.json")]) if x["now"]], "now")
