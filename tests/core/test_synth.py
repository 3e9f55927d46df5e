"""Synthetic partial-field line scans: determinism, shapes, timing, footprints, noise, files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from napari_sbtt.core.atomic import OutputExistsError
from napari_sbtt.core.metrics import noise_level
from napari_sbtt.core.scan import ScanMismatchError, ScanPattern
from napari_sbtt.core.synth import (
    PRESETS,
    REGIMES,
    SCAN_ORDERS,
    BackgroundTooHighError,
    GroundTruth,
    SynthConfig,
    SyntheticScan,
    _row_bins,
    apply_pattern,
    line_fraction_for_reduction,
    load_simulation,
    preset_config,
    roi_labels,
    roi_shares_random_lines,
    scan_overrides,
    simulate,
)
from napari_sbtt.core.traces import extract_observations


@pytest.fixture(scope="module")
def tiny() -> SyntheticScan:
    return simulate("tiny", seed=0, full_movie=True)


def _truth_arrays(sim: SyntheticScan) -> dict[str, np.ndarray]:
    return sim.truth.to_arrays()


def _roi_dff(sim: SyntheticScan) -> np.ndarray:
    """Plain-numpy ROI means of the full movie -> dF/F (T, N) with the true resting F0."""
    assert sim.full_movie is not None
    means = np.stack([sim.full_movie[:, sim.labels == n].mean(axis=1) for n in range(1, sim.n_rois + 1)], axis=1)
    return means / sim.truth.roi_f0 - 1.0


# --------------------------------------------------------------------------- determinism
def test_same_seed_is_bit_identical_and_seeds_differ(tiny: SyntheticScan) -> None:
    again = simulate("tiny", seed=0)
    assert np.array_equal(again.movie, tiny.movie, equal_nan=True)
    assert np.array_equal(again.labels, tiny.labels)
    for k, v in _truth_arrays(tiny).items():
        assert np.array_equal(_truth_arrays(again)[k], v, equal_nan=True), k
    other = simulate("tiny", seed=1)
    assert not np.array_equal(other.labels, tiny.labels)
    assert not np.array_equal(other.truth.spikes, tiny.truth.spikes)
    acquired = tiny.pattern.frame_mask()
    assert not np.array_equal(other.movie[acquired], tiny.movie[acquired])


def test_full_movie_flag_does_not_change_the_movie(tiny: SyntheticScan) -> None:
    plain = simulate("tiny", seed=0)
    assert plain.full_movie is None
    assert tiny.full_movie is not None and not np.isnan(tiny.full_movie).any()
    assert np.array_equal(apply_pattern(tiny.full_movie, tiny.pattern), plain.movie, equal_nan=True)


# --------------------------------------------------------------------------- shapes and units
def test_shapes_dtypes_units(tiny: SyntheticScan) -> None:
    cfg, pat, tr = tiny.config, tiny.pattern, tiny.truth
    Y, X = cfg.field_shape
    N = cfg.n_rois
    assert tiny.movie.shape == (pat.n_sweeps, Y, X) and tiny.movie.dtype == np.float32
    assert tiny.labels.shape == (Y, X) and tiny.labels.dtype == np.int32
    grid = pat.fine_grid(cfg.fine_factor)
    T = grid.n_bins
    np.testing.assert_array_equal(tr.times, grid.centres)
    assert tr.bin_width == pytest.approx(pat.frame_period / cfg.fine_factor)
    assert tr.latents.shape == (T, 3)
    assert tr.readout.shape == (3, N)
    for name in ("rates", "spikes", "calcium"):
        assert getattr(tr, name).shape == (T, N), name
    assert tr.spikes.dtype == np.int32 and tr.spikes.min() >= 0
    assert tr.rates.dtype == np.float64 and tr.calcium.dtype == np.float64
    assert tr.neuropil.shape == (T,)
    np.testing.assert_array_equal(tr.roi_ids, np.arange(1, N + 1))
    assert tr.footprint_weights.shape == (Y, X)
    assert tr.times[0] > 0 and tr.times[-1] < pat.duration + tr.bin_width
    assert pat.duration == pytest.approx(cfg.duration, rel=0.01)
    # Poisson spikes match the rates (counts per bin of width bin_width)
    expected = (tr.rates * tr.bin_width).sum()
    assert abs(tr.spikes.sum() - expected) < 5 * np.sqrt(expected)
    # calcium is non-negative dF/F, zero only before the first spike
    assert tr.calcium.min() >= 0 and tr.calcium.max() > 0.1
    # photon counts: finite, non-negative up to read noise
    acq = tiny.movie[pat.frame_mask()]
    assert np.isfinite(acq).all() and acq.min() > -6 * tr.read_noise_sd


def test_nan_exactly_on_unacquired_rows(tiny: SyntheticScan) -> None:
    mask = tiny.pattern.frame_mask()
    nan = np.isnan(tiny.movie)
    np.testing.assert_array_equal(nan.all(axis=2), ~mask)
    np.testing.assert_array_equal(nan.any(axis=2), ~mask)


@pytest.mark.parametrize("kind", ["full", "random_lines"])
def test_other_scan_kinds(kind: str) -> None:
    sim = simulate("tiny", seed=2, scan_kind=kind, latent="limit_cycle", duration=1.0)
    mask = sim.pattern.frame_mask()
    np.testing.assert_array_equal(np.isnan(sim.movie).all(axis=2), ~mask)
    assert sim.truth.latents.shape[1] == 2
    if kind == "full":
        assert mask.all()
    else:
        assert mask.sum(axis=1).tolist() == [8] * sim.pattern.n_sweeps  # 0.25 of 32 rows
        assert len(sim.pattern.cycle) == sim.pattern.n_sweeps


def test_rows_are_rendered_at_their_acquisition_bin() -> None:
    pat = ScanPattern.strips(12, 5, 1e-3, 3, flyback=2e-3)
    grid = pat.fine_grid(4)
    bins = _row_bins(pat, grid)
    acquired = pat.frame_mask()
    np.testing.assert_array_equal(bins[acquired], grid.index(pat.row_times()[acquired]))
    # unacquired rows sit inside their own sweep
    starts = pat.sweep_starts()
    lo = grid.index(starts)[:, None]
    hi = grid.index(starts + pat.sweep_durations() - 1e-9)[:, None]
    assert np.all((bins >= lo) & (bins <= hi))


def test_fine_grid_carries_sub_sweep_timing() -> None:
    # with several bins per sweep, rows of one sweep land in different bins
    sim = simulate("tiny", seed=0, fine_factor=4, duration=1.0)
    bins = _row_bins(sim.pattern, sim.truth.grid)
    assert len(np.unique(bins[0][sim.pattern.frame_mask()[0]])) == 4


# --------------------------------------------------------------------------- footprints and rates
def test_footprints_are_disjoint_with_gaps(tiny: SyntheticScan) -> None:
    labels = tiny.labels
    N = tiny.config.n_rois
    np.testing.assert_array_equal(np.unique(labels), np.arange(N + 1))
    for n in range(1, N + 1):
        grown = binary_dilation(labels == n)  # 1-pixel ring (min_gap = 1)
        assert set(np.unique(labels[grown])) <= {0, n}
    w = tiny.truth.footprint_weights
    np.testing.assert_array_equal(w > 0, labels > 0)
    assert w.max() <= 1.0 + 1e-6 and w[labels > 0].min() >= 0.45
    # ROIs keep off the border
    assert not labels[0].any() and not labels[-1].any() and not labels[:, 0].any() and not labels[:, -1].any()


def test_too_many_rois_is_refused() -> None:
    with pytest.raises(ValueError, match="could not place"):
        simulate("tiny", n_rois=200)


def test_rates_within_bounds() -> None:
    sim = simulate("tiny", seed=4, baseline_rate_hz=3.0, max_rate_hz=6.0, modulation_depth=1.5)
    r = sim.truth.rates
    assert r.min() > 0 and r.max() <= 6.0
    assert np.isclose(r.max(), 6.0)  # the clip is reached with this depth
    assert np.median(r) == pytest.approx(3.0, rel=0.35)


# --------------------------------------------------------------------------- noise calibration
def test_roi_means_track_true_calcium_at_low_noise() -> None:
    sim = simulate("tiny", seed=1, full_movie=True, noise_level=0.5)
    dff = _roi_dff(sim)
    pat = sim.pattern
    b = sim.truth.grid.index(pat.sweep_starts() + pat.sweep_durations() / 2)
    r = [np.corrcoef(dff[:, n], sim.truth.calcium[b, n])[0, 1] for n in range(sim.n_rois)]
    assert min(r) > 0.8


@pytest.mark.parametrize("nu", [2.0, 4.0, 8.0])
def test_noise_level_of_full_roi_means_hits_target(nu: float) -> None:
    sim = simulate("tiny", seed=3, full_movie=True, noise_level=nu)
    measured = float(np.median(noise_level(_roi_dff(sim), 1.0 / sim.pattern.frame_period)))
    assert measured == pytest.approx(nu, rel=0.25)
    assert sim.truth.nu_calibrated == pytest.approx(nu, rel=0.1)
    assert sim.truth.nu_target == nu


def test_more_noise_means_fewer_photons() -> None:
    lo = simulate("tiny", seed=0, noise_level=2.0).truth
    hi = simulate("tiny", seed=0, noise_level=8.0).truth
    assert hi.photon_scale < lo.photon_scale / 8  # nu ~ 1 / sqrt(photons)
    fixed = simulate("tiny", seed=0, noise_level=None, f0_photons=50.0).truth
    assert np.isnan(fixed.nu_target) and fixed.nu_calibrated < lo.nu_calibrated


# --------------------------------------------------------------------------- config and presets
def test_config_json_round_trip_and_validation() -> None:
    cfg = preset_config("tiny", noise_level=4.0)
    again = SynthConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown SynthConfig field"):
        SynthConfig.from_dict({"n_neurons": 3})
    with pytest.raises(ValueError, match="unknown SynthConfig field"):
        simulate("tiny", n_neurons=3)
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("huge")
    with pytest.raises(ValueError, match="latent"):
        SynthConfig(latent="chaos")
    with pytest.raises(ValueError, match="indicator"):
        SynthConfig(indicator="GCaMP99")


def test_preset_sizes() -> None:
    assert set(PRESETS) == {"tiny", "default", "benchmark"}
    for name, limit_mb in [("tiny", 2), ("default", 100)]:
        cfg = preset_config(name)
        pat = cfg.build_pattern()
        mb = pat.n_sweeps * cfg.field_shape[0] * cfg.field_shape[1] * 4 / 1e6
        assert mb < limit_mb, name
    d = preset_config("default")
    assert d.n_strips == 4 and 20 <= d.n_rois <= 30 and 60 <= d.duration <= 120
    assert preset_config("benchmark").n_rois >= 100


# --------------------------------------------------------------------------- files
def test_apply_pattern() -> None:
    pat = ScanPattern.strips(6, 4, 1e-3, 2)
    movie = np.arange(4 * 6 * 3, dtype=np.uint16).reshape(4, 6, 3)
    out = apply_pattern(movie, pat)
    assert out.dtype == np.float32 and movie.dtype == np.uint16
    np.testing.assert_array_equal(np.isnan(out).all(axis=2), ~pat.frame_mask())
    np.testing.assert_array_equal(out[pat.frame_mask()], movie[pat.frame_mask()])
    with pytest.raises(ScanMismatchError):
        apply_pattern(movie[:3], pat)


def test_save_load_round_trip(tiny: SyntheticScan, tmp_path: Path) -> None:
    out = tiny.save(tmp_path / "sim")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["movie.tif", "rois.tif", "scan.json", "truth.npz", "config.json"]
    )
    for mmap in (False, True):
        back = load_simulation(out, mmap=mmap)
        assert np.array_equal(np.asarray(back.movie), tiny.movie, equal_nan=True)
        assert back.movie.dtype == np.float32
        np.testing.assert_array_equal(back.labels, tiny.labels)
        assert back.pattern == tiny.pattern
        assert back.config == tiny.config
        assert isinstance(back.truth, GroundTruth)
        for k, v in _truth_arrays(tiny).items():
            assert np.array_equal(_truth_arrays(back)[k], v, equal_nan=True), k
        del back
    with np.load(out / "truth.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def test_save_refuses_to_overwrite(tiny: SyntheticScan, tmp_path: Path) -> None:
    out = tiny.save(tmp_path / "sim")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    other = simulate("tiny", seed=5)
    with pytest.raises(OutputExistsError):
        other.save(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    other.save(out, overwrite=True)
    assert load_simulation(out).config.seed == 5
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def test_no_partial_files_after_a_failure(tiny: SyntheticScan, tmp_path: Path, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez", boom)  # fails after movie.tif, rois.tif, scan.json were written
    with pytest.raises(RuntimeError, match="disk full"):
        tiny.save(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError, match="disk full"):
        tiny.save(existing)
    assert list(existing.iterdir()) == []
    monkeypatch.undo()
    tiny.save(existing)
    assert len(list(existing.iterdir())) == 5


# --------------------------------------------------------------------------- activity regimes
def test_pulses_latent_gives_population_transients() -> None:
    sim = simulate("tiny", seed=5, latent="pulses", duration=30.0)
    again = simulate("tiny", seed=5, latent="pulses", duration=30.0)
    np.testing.assert_array_equal(sim.truth.rates, again.truth.rates)
    assert sim.truth.latents.shape[1] == 4 == sim.config.latent_dim
    # at rest the whole population fires near its baseline; after a pulse it moves together
    spread = np.log(sim.truth.rates).std(axis=1)
    assert np.mean(spread < 0.1) > 0.2  # quiet stretches
    assert np.mean(spread > 1.0) > 0.05  # transients
    slower = simulate("tiny", seed=5, latent="pulses", duration=30.0, pulse_rate=0.2)
    assert np.mean(np.log(slower.truth.rates).std(axis=1) < 0.1) > np.mean(spread < 0.1)


def test_sparse_regime_is_low_rate_with_rare_strong_modulation() -> None:
    assert set(REGIMES) == {"lorenz", "limit_cycle", "pulses", "sparse"}
    sim = simulate("default", seed=2, duration=60.0, noise_level=None, calibration_rounds=0, **REGIMES["sparse"])
    r = sim.truth.rates
    assert np.median(r) < 0.5 and r.mean() < 2.0
    assert 0.01 < np.mean(r > 5.0) < 0.15
    for overrides in REGIMES.values():
        SynthConfig(**overrides)  # every regime is a valid config


# --------------------------------------------------------------------------- background subtraction
def test_subtracted_background_is_one_offset_estimated_from_the_movie() -> None:
    raw = simulate("tiny", seed=6, noise_level=None, full_movie=True)
    sub = simulate("tiny", seed=6, noise_level=None, full_movie=True, subtract_background=50)
    s = sub.truth.background_offset
    assert raw.truth.background_offset == 0.0 and s > 0
    # same photons (fixed photon scale without a noise target), one offset less
    np.testing.assert_array_equal(sub.movie, raw.movie - np.float32(s))
    np.testing.assert_array_equal(sub.full_movie, raw.full_movie - np.float32(s))
    # the offset is the median background pixel of the time-averaged acquired image
    mean_img = np.nanmean(raw.movie, axis=0)
    assert s == pytest.approx(np.median(mean_img[raw.labels == 0]), rel=1e-6)
    np.testing.assert_allclose(sub.truth.roi_f0, raw.truth.roi_f0 - s)
    assert np.nanmin(sub.movie) < 0  # shot noise around a subtracted background goes negative


@pytest.mark.parametrize("nu", [2.0, 8.0])
def test_noise_target_holds_for_the_subtracted_movie(nu: float) -> None:
    sim = simulate("tiny", seed=3, full_movie=True, noise_level=nu, subtract_background=50)
    measured = float(np.median(noise_level(_roi_dff(sim), 1.0 / sim.pattern.frame_period)))
    assert measured == pytest.approx(nu, rel=0.25)
    # dF/F transients are larger than in raw photon counts (smaller F0)
    raw = simulate("tiny", seed=3, full_movie=True, noise_level=nu)
    assert sim.truth.roi_f0.mean() / sim.truth.photon_scale < raw.truth.roi_f0.mean() / raw.truth.photon_scale


def test_background_subtraction_validation_and_old_truth_files() -> None:
    for bad in (-1, 101, float("nan"), True):
        with pytest.raises(ValueError, match="subtract_background"):
            SynthConfig(subtract_background=bad)
    with pytest.raises(BackgroundTooHighError, match="use a lower percentile") as refused:
        simulate("tiny", seed=0, duration=0.5, background=3.0, subtract_background=100)
    assert refused.value.percentile == 100.0 and isinstance(refused.value, ValueError)
    arrays = simulate("tiny", seed=0, duration=0.5).truth.to_arrays()
    del arrays["background_offset"]  # a truth.npz written before the field existed
    assert GroundTruth.from_arrays(arrays).background_offset == 0.0


# --------------------------------------------------------------------------- scans for the family
@pytest.mark.parametrize("order", SCAN_ORDERS)
@pytest.mark.parametrize("reduction", [2, 16])
@pytest.mark.parametrize("period", [0.005, 0.035])
def test_scan_overrides_reach_the_reduction_and_sweep_period(order: str, reduction: int, period: float) -> None:
    Y = 16 * 12  # strips of at least 12 rows: every ROI fits in one strip
    cfg = preset_config("default", field_shape=(Y, 40), n_rois=12, radius_range=(3.0, 4.5), seed=1,
                        noise_level=2.0)
    labels = roi_labels(cfg)
    ov = scan_overrides(order, reduction, period, Y, labels=labels)
    cfg = cfg.replace(duration=256 * period, **ov)
    pat = cfg.build_pattern()
    assert pat.frame_period == pytest.approx(period)
    assert pat.n_sweeps == 256
    sim = simulate(cfg, seed=1)
    np.testing.assert_array_equal(sim.labels, labels)  # roi_labels draws what simulate draws
    obs = extract_observations(sim.movie, sim.labels, sim.pattern, dff=True)
    assert obs.grid.bin_width == pytest.approx(period)
    share = np.isfinite(obs.values).mean(axis=0)
    if order == "random_lines":
        assert share.mean() == pytest.approx(1.0 / reduction, rel=0.35)
    else:
        # strips: each ROI in one of every `reduction` sweeps (two when split half and half)
        assert np.all(share >= 1.0 / reduction - 1e-9) and np.median(share) == pytest.approx(1.0 / reduction)


def test_random_line_fraction_targets_roi_samples() -> None:
    labels = np.zeros((100, 20), dtype=np.int32)
    labels[10:16, 2:8] = 1  # 6 rows of 6 px
    labels[40:48, 5:9] = 2  # 8 rows of 4 px
    assert roi_shares_random_lines(labels, 1.0).tolist() == [1.0, 1.0]
    # ROI 1 needs 3 of its 6 rows: P(Binomial(6, f) >= 3)
    from scipy.stats import binom

    f = 0.3
    assert roi_shares_random_lines(labels, f)[0] == pytest.approx(binom.sf(2, 6, f))
    for k in (2, 4, 8, 16):
        frac = line_fraction_for_reduction(labels, k)
        assert roi_shares_random_lines(labels, frac).mean() == pytest.approx(1.0 / k, rel=1e-6)
        if k > 2:
            assert frac > 1.0 / k  # an ROI spans rows: more rows than 1/k are needed
    assert scan_overrides("random_lines", 4, 0.01, 100)["line_fraction"] == 0.25  # no labels: per row
    with pytest.raises(ValueError, match="order"):
        scan_overrides("spiral", 4, 0.01, 100)
    with pytest.raises(ValueError, match="reduction"):
        scan_overrides("sequential", 0, 0.01, 100)
