"""Benchmark family (issue 14; evaluation protocol 2, synthetic line scans with ground truth, over
a family of recordings that spans what labs vary): SBTT vs OASIS over cells a real lab spans.

A family is a seeded list of cells, each a synthetic partial-field line scan
(``napari_sbtt.core.synth``) drawn over these axes and levels:

=============  =====================================================================
latent         lorenz, limit_cycle, pulses (input-driven transients), sparse (low-rate)
indicator      GCaMP6f, GCaMP6s, GCaMP7f, GCaMP8f, GCaMP8m, GCaMP8s
scan           sequential strips, interleaved strips, random lines
reduction      2, 4, 8, 16 times fewer samples per ROI than a full raster
sweep_ms       5, 10, 20, 35 ms per sweep (= the fine-grid bin)
nu             1, 2, 4, 8 (CASCADE noise level referred to 30 Hz: see below)
n_rois         10, 25, 50, 100, 200
duration_min   1, 2, 5, 10 minutes (capped, see below; the table has the true length)
=============  =====================================================================

Noise: every sample of an ROI carries the dF/F noise of one frame of a 30 Hz recording with
CASCADE noise level nu (``core.metrics.noise_std_for_level(nu, 30)``: 0.06, 0.12, 0.23, 0.46
for nu 1, 2, 4, 8), whatever the sweep period. The simulator's ``noise_level`` (nu of the fully
sampled ROI means at the sweep rate) is therefore ``nu * sqrt(30 Hz * sweep period)``; the
table gives both. Taken at the sweep rate instead, nu 8 at 5 ms sweeps would mean a dF/F noise
of 1.2 per sample, where the library's running-percentile F0 is <= 0 for most ROIs and
neither method gets dF/F. A cell where the library refuses the recording (e.g. that error for
a few dim ROIs at nu 8) is kept in the table as failed, with the message, and counted apart.

Sampling (:func:`sample_cells`): the cells are split into two halves, "tune" (even cell
index) and "report" (odd index), and each half is its own balanced design: every axis is a
random permutation of its levels repeated to the half's size (Latin-hypercube style), so each
level appears in each half (in both, as soon as a half has at least as many cells as the
axis has levels: 12 with the default 24 cells); of many seeded draws the one with the least
correlation between axes is kept. Settings are chosen on the tune half and reported on the
report half.

Each cell: ``core.synth`` with the regime's overrides (``synth.REGIMES``), the indicator,
``noise_level=nu``, a background subtracted (``subtract_background=50``: the median background
pixel of the acquired mean image, as users subtract an offset), ROIs of radius 3-4.5 px in a
field of about 160 px per ROI whose strips are at least 12 rows (an ROI fits in one strip),
the scan from ``synth.scan_overrides`` (random lines solved so that each ROI is observed in
1 / reduction of the sweeps). Duration is capped so that duration x ROIs <= 200 ROI-minutes
and the movie <= 2.5e8 pixels (1 GB float32), so one cell takes about 1-4 minutes on 2 CPU
cores; the table records the true duration, observed share and nu.

Per cell, through the public API with the library defaults:

- observations: ``api.observations_for_stack`` (dF/F, running 8th-percentile F0), as
  ``run_on_stack`` makes them;
- SBTT: ``api.run_on_observations`` with ``RunConfig(indicator=<the cell's indicator>)``
  (``--no-indicator``: ``RunConfig()``, nothing named), plus ``--run``/``--model`` overrides;
- OASIS: ``core.baselines.oasis_rates`` (AR(1), own parameter estimation) on the same samples;
- score: Pearson r against the true rates after 50 ms Gaussian smoothing, median over ROIs
  (``core.metrics``); margin = SBTT r - OASIS r.

    python benchmarks/family.py --out results/family                  # all 24 cells (hours)
    python benchmarks/family.py --out results/family --half tune      # the tune half only
    python benchmarks/family.py --out results/family_noind --no-indicator
    python benchmarks/family.py --list                                # the cells, no fits
    python benchmarks/family.py --out results/family --only 8 11      # some cells only
    python benchmarks/family.py --quick --out /tmp/fq                 # 2 tiny cells, 3 epochs

A rerun with the same ``--out`` skips the cells (with the same variant and overrides) that are
already in OUT.json, which is rewritten after every cell, so a long run can be resumed. The
summary gives the median and the worst margin of each half.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import SMOOTH_S, estimate_scores, machine, median_r, network_rates, write_rows

#: The axes of the family and their levels (see the module docstring).
AXES: dict[str, tuple[Any, ...]] = {
    "latent": ("lorenz", "limit_cycle", "pulses", "sparse"),
    "indicator": ("GCaMP6f", "GCaMP6s", "GCaMP7f", "GCaMP8f", "GCaMP8m", "GCaMP8s"),
    "scan": ("sequential", "interleaved", "random_lines"),
    "reduction": (2, 4, 8, 16),
    "sweep_ms": (5, 10, 20, 35),
    "nu": (1, 2, 4, 8),
    "n_rois": (10, 25, 50, 100, 200),
    "duration_min": (1, 2, 5, 10),
}
HALVES = ("tune", "report")

# geometry and caps
ROI_RADIUS = (3.0, 4.5)
PX_PER_ROI = 160  # field area per ROI (the "benchmark" preset has 128)
MIN_STRIP_ROWS = 12  # an ROI (at most ~10 rows tall) fits in one strip
MIN_WIDTH = 24
SUBTRACT_BACKGROUND = 50.0  # percentile of background pixels subtracted as one offset
#: percentiles tried in turn when a crowded field's median background would leave a dim ROI
#: (nearly) no resting fluorescence (the simulator refuses that, as a user would lower it):
#: seed 10's cell 21 (200 ROIs) was the first cell to need it
BACKGROUND_FALLBACK = (25.0, 10.0)
MAX_ROI_SECONDS = 200 * 60.0  # duration x ROIs
MAX_PIXELS = 2.5e8  # sweeps x Y x X of the movie
NU_REFERENCE_HZ = 30.0  # the family's nu is that of a recording at this frame rate
DESIGN_TRIES = 2000


@dataclass(frozen=True)
class Cell:
    """One recording of the family: its axis levels, its true size and its seed."""

    index: int
    half: str
    seed: int
    latent: str
    indicator: str
    scan: str
    reduction: int
    sweep_ms: float
    nu: float
    n_rois: int
    duration_min: float  # the level drawn
    duration_s: float  # the true length after the caps
    field_shape: tuple[int, int]

    @property
    def sweep_period(self) -> float:
        return self.sweep_ms / 1e3

    @property
    def synth_noise_level(self) -> float:
        """The simulator's ``noise_level``: nu of the full ROI means at the sweep rate (same noise per sample)."""
        return self.nu * math.sqrt(NU_REFERENCE_HZ * self.sweep_period)

    @property
    def sample_noise_sd(self) -> float:
        """Expected dF/F noise sd of one sample of a typical ROI (whole ROI acquired)."""
        from napari_sbtt.core.metrics import noise_std_for_level

        return float(noise_std_for_level(self.nu, NU_REFERENCE_HZ))

    def synth_config(self, fine_factor: int = 1) -> Any:
        """The cell's :class:`~napari_sbtt.core.synth.SynthConfig` (scan solved on its own ROIs)."""
        from napari_sbtt.core.synth import REGIMES, preset_config, roi_labels, scan_overrides

        cfg = preset_config(
            "default", field_shape=self.field_shape, n_rois=self.n_rois, radius_range=ROI_RADIUS,
            indicator=self.indicator, noise_level=self.synth_noise_level, subtract_background=SUBTRACT_BACKGROUND,
            duration=self.duration_s, fine_factor=fine_factor, seed=self.seed, **REGIMES[self.latent],
        )
        scan = scan_overrides(self.scan, self.reduction, self.sweep_period, self.field_shape[0],
                              labels=roi_labels(cfg))
        return cfg.replace(**scan)

    def simulate(self, fine_factor: int = 1, **synth: Any) -> Any:
        """The cell's recording (:func:`napari_sbtt.core.synth.simulate` of :meth:`synth_config`
        with the ``synth`` overrides), subtracting the first percentile of
        ``SUBTRACT_BACKGROUND, *BACKGROUND_FALLBACK`` that leaves every ROI its resting
        fluorescence (the one used is ``.config.subtract_background``)."""
        import dataclasses

        from napari_sbtt.core.synth import BackgroundTooHighError, simulate

        cfg = dataclasses.replace(self.synth_config(fine_factor=fine_factor), **synth)
        tries = (cfg.subtract_background,) if "subtract_background" in synth or cfg.subtract_background is None \
            else (cfg.subtract_background, *BACKGROUND_FALLBACK)
        for pct in tries[:-1]:
            try:
                return simulate(dataclasses.replace(cfg, subtract_background=pct), seed=self.seed)
            except BackgroundTooHighError:
                pass
        return simulate(dataclasses.replace(cfg, subtract_background=tries[-1]), seed=self.seed)

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["field_shape"] = list(self.field_shape)
        return d


def _design(size: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """A balanced design of ``size`` cells: each axis a permutation of its levels, least correlated of many draws."""
    if size == 0:
        return []
    best, best_score = None, math.inf
    for _ in range(DESIGN_TRIES):
        idx = {}
        for axis, levels in AXES.items():
            # which levels get the extra cells when size is not a multiple of the levels: random too
            idx[axis] = rng.permutation(np.resize(rng.permutation(len(levels)), size))
        if size < 3:
            score = 0.0
        else:
            m = np.array([idx[a] for a in AXES], dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                c = np.corrcoef(m)
            c = np.nan_to_num(c - np.eye(len(AXES)))
            score = float(np.abs(c).max())
        if score < best_score:
            best, best_score = [{a: AXES[a][int(idx[a][i])] for a in AXES} for i in range(size)], score
    assert best is not None
    return best


def field_for(n_rois: int, reduction: int) -> tuple[int, int]:
    """(Y, X): about PX_PER_ROI px per ROI, Y a multiple of ``reduction`` with strips >= MIN_STRIP_ROWS rows."""
    y = max(MIN_STRIP_ROWS * reduction, int(math.ceil(math.sqrt(PX_PER_ROI * n_rois))))
    y = int(math.ceil(y / reduction) * reduction)
    x = max(MIN_WIDTH, int(math.ceil(PX_PER_ROI * n_rois / y)))
    return y, x


def capped_duration(duration_min: float, n_rois: int, sweep_ms: float, field: tuple[int, int]) -> float:
    """Seconds: the drawn duration, cut to MAX_ROI_SECONDS / n_rois and to a movie of MAX_PIXELS."""
    by_rois = MAX_ROI_SECONDS / n_rois
    by_pixels = MAX_PIXELS / (field[0] * field[1]) * sweep_ms / 1e3
    return float(math.floor(min(duration_min * 60.0, by_rois, by_pixels)))


def sample_cells(n_cells: int = 24, seed: int = 0) -> list[Cell]:
    """The family: ``n_cells`` cells, even index = tune half, odd = report half (see the module docstring)."""
    if n_cells < 1:
        raise ValueError(f"--cells must be >= 1, got {n_cells}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 14]))
    tune = _design((n_cells + 1) // 2, rng)
    report = _design(n_cells // 2, rng)
    cells = []
    for i in range(n_cells):
        lv = tune[i // 2] if i % 2 == 0 else report[i // 2]
        field = field_for(lv["n_rois"], lv["reduction"])
        cells.append(Cell(
            index=i, half=HALVES[i % 2],
            seed=int(np.random.SeedSequence([seed, 14, i]).generate_state(1)[0]),
            latent=lv["latent"], indicator=lv["indicator"], scan=lv["scan"], reduction=int(lv["reduction"]),
            sweep_ms=float(lv["sweep_ms"]), nu=float(lv["nu"]), n_rois=int(lv["n_rois"]),
            duration_min=float(lv["duration_min"]),
            duration_s=capped_duration(lv["duration_min"], lv["n_rois"], lv["sweep_ms"], field),
            field_shape=field,
        ))
    return cells


def quick_cells(seed: int = 0) -> list[Cell]:
    """Two tiny cells (one per half) for a smoke test: 10 ROIs, 12 s."""
    out = []
    for c in sample_cells(2, seed):
        field = field_for(10, c.reduction)
        out.append(Cell(**{**c.describe(), "n_rois": 10, "duration_s": 12.0, "field_shape": field}))
    return out


# ----------------------------------------------------------------------------- one cell
def _z(x: np.ndarray) -> np.ndarray:
    """Each column less its mean, over its standard deviation."""
    return (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)


def blend_scores(res: Any, values: np.ndarray, times: np.ndarray, truth: np.ndarray, dt: float,
                 cfg: Any) -> dict[str, Any]:
    """Diagnostics for mixing the two SBTT estimates: the weight w of the network in
    ``w * network + (1 - w) * events`` that best predicts each held-out test's samples
    (least squares over the held-out fluorescence, clipped to [0, 1]; per test and per ROI), and the
    family score of fixed and fitted mixtures. The held-out samples are drawn over the whole
    recording (the library's tests use the middle 5 minutes of a longer one, so for cells over
    5 minutes the weights are not exactly those a library test would fit)."""
    from _common import network_rates

    from napari_sbtt.core.metrics import gaussian_smooth
    from napari_sbtt.heldout import deconvolve_with_model, heldout_blocks
    from napari_sbtt.pipeline import infer_observations

    meta = res.model.metadata
    net = network_rates(res, values, cfg.inference_shifts).astype(np.float64)
    ev = np.asarray(res.events, dtype=np.float64)
    out: dict[str, Any] = {"std_events_over_network": float(np.nanmedian(ev.std(axis=0) / np.maximum(net.std(axis=0), 1e-12)))}
    for w in (0.25, 0.5, 0.75, 0.9):
        out[f"r_w{w:g}"] = median_r(truth, w * net + (1 - w) * ev, dt)
    out["r_zmean"] = median_r(truth, _z(net) + _z(ev), dt)
    sn, se_ = gaussian_smooth(net, SMOOTH_S, dt), gaussian_smooth(ev, SMOOTH_S, dt)
    for w in (0.5, 0.75):
        out[f"r_zsmooth_w{w:g}"] = median_r(truth, w * _z(sn) + (1 - w) * _z(se_), dt)
    observed = np.isfinite(values)
    for kind, gap in (("samples", 0.0), ("gaps", 0.5)):
        held = heldout_blocks(observed, times, 0.1, cfg.seed, gap_s=gap) > 0
        kept = np.where(held, np.nan, values)
        c_net = infer_observations(res.model, kept, window=meta["window_bins"], overlap=meta["overlap_bins"],
                                   output="signal").astype(np.float64)
        c_ev = deconvolve_with_model(res.model, kept)[1]
        ok = held & np.isfinite(c_net) & np.isfinite(c_ev)
        d = np.where(ok, c_net - c_ev, 0.0)
        e = np.where(ok, values - c_ev, 0.0)
        w = float(np.clip((d * e).sum() / max((d * d).sum(), 1e-300), 0, 1))
        dd = (d * d).sum(axis=0)
        # an ROI with nothing held out (or no difference there) takes the overall weight
        w_roi = np.where(dd > 0, np.clip((d * e).sum(axis=0) / np.where(dd > 0, dd, 1.0), 0, 1), w)
        out[f"w_{kind}"] = w
        out[f"r_stack_{kind}"] = median_r(truth, w * net + (1 - w) * ev, dt)
        out[f"r_stack_roi_{kind}"] = median_r(truth, w_roi[None, :] * net + (1 - w_roi[None, :]) * ev, dt)
        out[f"w_roi_median_{kind}"] = float(np.median(w_roi))
    return out


def run_cell(cell: Cell, run: dict[str, Any], *, named: bool = True, extras: bool = False) -> dict[str, Any]:
    """Simulate, extract, fit SBTT and OASIS, score; one table row (a dict)."""
    from napari_sbtt.api import RunConfig, observations_for_stack, run_on_observations
    from napari_sbtt.core.baselines import oasis_rates

    cfg = RunConfig.from_dict({**({"indicator": cell.indicator} if named else {}), **run})
    t_all = time.perf_counter()
    sim = cell.simulate(fine_factor=cfg.factor)
    t_sim = time.perf_counter() - t_all
    scan = sim.pattern
    row: dict[str, Any] = {
        "cell": cell.describe(),
        "true": {
            "duration_s": float(scan.duration), "n_rois": int(sim.n_rois),
            "synth_noise_level": cell.synth_noise_level, "sample_noise_sd": cell.sample_noise_sd,
            "nu_calibrated_at_sweep_rate": float(sim.truth.nu_calibrated),
            "line_fraction": float(sim.config.line_fraction) if cell.scan == "random_lines" else None,
            "mean_rate_hz": float(sim.truth.rates.mean()),
            "background_offset": float(sim.truth.background_offset),
            "subtract_background_percentile": sim.config.subtract_background,
        },
        "seconds_simulate": t_sim,
    }
    try:
        obs = observations_for_stack(sim.movie, sim.labels, sim.pattern, config=cfg)
    except ValueError as e:  # the library refuses this recording (e.g. dF/F undefined): a result too
        row.update(failed=f"observations: {e}", sbtt=None, oasis=None, margin=None,
                   seconds_total=time.perf_counter() - t_all)
        return row
    truth = sim.truth.rates[:, obs.roi_ids - 1]
    del sim  # the movie is not needed any more
    dt = obs.grid.bin_width
    share = np.isfinite(obs.values).mean(axis=0)
    row["true"].update(bin_ms=dt * 1e3, observed_share_median=float(np.median(share)),
                       reduction_per_roi=float(1.0 / np.median(share)))
    t0 = time.perf_counter()
    base = oasis_rates(obs.values, obs.times)
    row["oasis"] = {"r": median_r(truth, base, dt),
                    "seconds": time.perf_counter() - t0}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = run_on_observations(obs, config=cfg, scan=scan)
    secs = time.perf_counter() - t0
    row["sbtt"] = {
        "r": median_r(truth, res.rates, dt), "seconds": secs,
        "seconds_fit": res.metrics["seconds_fit"], "seconds_infer": res.metrics["seconds_infer"],
        "epochs": res.metrics["epochs_run"], "best_epoch": res.metrics["best_epoch"], "load": load0,
        "stopped": bool(res.stopped),
        # the networks trained and merged (ensemble_size), each one's epochs and seconds; None: one
        "ensemble": getattr(res.model, "metadata", {}).get("ensemble"),
    }
    ho = res.metrics.get("heldout")
    if ho:  # both SBTT estimates scored against the truth, beside the held-out tests
        row["sbtt"].update(estimate=res.metrics["estimate"], heldout=ho,
                           **estimate_scores(res, obs.values, truth, dt, cfg.inference_shifts))
        said = {"SBTT better": True, "OASIS better": False}.get(ho["verdict"])
        row["sbtt"]["heldout_verdict_right"] = (None if said is None
                                                else said == (row["sbtt"]["r"] >= row["oasis"]["r"]))
    if extras and ho:
        row["sbtt"]["blends"] = blend_scores(res, obs.values, obs.times, truth, dt, cfg)
    row["sbtt"].update({k: res.metrics.get(k) for k in ("decay_estimate_s", "tau_decay_s", "tau_rise_s")})
    row["margin"] = row["sbtt"]["r"] - row["oasis"]["r"]
    row["seconds_total"] = time.perf_counter() - t_all
    return row


# ----------------------------------------------------------------------------- table
HEADER = ("| cell | half | latent | indicator | scan | k per ROI | sweep ms | nu | ROIs | s | "
          "SBTT r | OASIS r | margin | estimate (network / deconvolution / combined / events_combined r) | "
          "held-out verdict | fit s | epochs | cell s | load |")
N_COLS = 19


def markdown(row: dict[str, Any]) -> str:
    c, t, s, o = row["cell"], row["true"], row["sbtt"], row["oasis"]
    if row.get("failed"):
        return (f"| {c['index']} | {c['half']} | {c['latent']} | {c['indicator']} | {c['scan']} | "
                f"({c['reduction']}) | {c['sweep_ms']:g} | {c['nu']:g} | {t['n_rois']} | {t['duration_s']:.0f} | "
                f"failed | failed | - | - | - | - | - | {row['seconds_total']:.0f} | - |")
    return (f"| {c['index']} | {c['half']} | {c['latent']} | {c['indicator']} | {c['scan']} | "
            f"{t['reduction_per_roi']:.1f} ({c['reduction']}) | {c['sweep_ms']:g} | {c['nu']:g} | "
            f"{t['n_rois']} | {t['duration_s']:.0f} | {s['r']:.3f} | {o['r']:.3f} | {row['margin']:+.3f} | "
            f"{_estimate_cell(s)} | {_verdict_cell(s)} | "
            f"{s['seconds_fit']:.0f} | {s['epochs']} | {row['seconds_total']:.0f} | {s['load']:.1f} |")


def _estimate_cell(s: dict[str, Any]) -> str:
    if "estimate" not in s:
        return "-"
    mixtures = [s[k] for k in ("r_combined", "r_events_combined") if s.get(k) is not None]
    return (f"{s['estimate']} ({s['r_network']:.3f} / {s['r_deconvolution']:.3f}"
            + "".join(f" / {r:.3f}" for r in mixtures) + ")")


def _verdict_cell(s: dict[str, Any]) -> str:
    ho = s.get("heldout") or {}
    verdict = ho.get("verdict", "-")
    right = s.get("heldout_verdict_right")
    return verdict if right is None else f"{verdict} ({'right' if right else 'wrong'})"


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """One line per half: cells, median margin, worst margin, cells below -0.02, failed cells."""
    out = []
    for half in HALVES:
        mine = [r for r in rows if r["cell"]["half"] == half]
        if not mine:
            continue
        m = np.array([r["margin"] for r in mine if not r.get("failed")], dtype=float)
        failed = len(mine) - m.size
        line = f"{half} half: {m.size} cells"
        if m.size:
            line += (f", median margin {np.median(m):+.3f}, worst {m.min():+.3f}, "
                     f"{int((m < -0.02).sum())} below -0.02")
        if failed:
            line += f"; {failed} failed (the library refused the recording; see 'failed' in OUT.json)"
        out.append(line)
    return out


def probe_fit(cell: Cell, named: bool, run: dict[str, Any] | None = None,
              synth: dict[str, Any] | None = None) -> dict[str, Any]:
    """One fit of a probe's cell with the library's defaults (the indicator named or not), with
    ``run`` (RunConfig settings) and ``synth`` (``core.synth.SynthConfig`` fields) changed where
    given: a dict of ``cfg`` (RunConfig), ``obs`` (Observations), ``truth`` (T_fine, N rates),
    ``dt`` (bin width, s), ``res`` (the SBTTResult), ``values`` (float64 samples, NaN unobserved),
    ``net`` (the network's float64 rates), ``sim`` (the simulation, movie dropped) and ``row``
    (the probe row so far: cell, named and OASIS's r)."""
    from napari_sbtt.api import RunConfig, observations_for_stack, run_on_observations
    from napari_sbtt.core.baselines import oasis_rates

    cfg = RunConfig.from_dict({**({"indicator": cell.indicator} if named else {}), **(run or {})})
    sim = cell.simulate(fine_factor=cfg.factor, **(synth or {}))
    obs = observations_for_stack(sim.movie, sim.labels, sim.pattern, config=cfg)
    sim.movie = None  # not needed any more (the largest array)
    truth = sim.truth.rates[:, obs.roi_ids - 1]
    dt = obs.grid.bin_width
    row = {"cell": cell.describe(), "named": named,
           "oasis": median_r(truth, oasis_rates(obs.values, obs.times), dt)}
    res = run_on_observations(obs, config=cfg, scan=sim.pattern)
    values = obs.values.astype(np.float64)
    net = network_rates(res, values, cfg.inference_shifts).astype(np.float64)
    return {"cfg": cfg, "obs": obs, "truth": truth, "dt": dt, "res": res, "values": values,
            "net": net, "sim": sim, "row": row}


def run_tune_probe(argv: list[str] | None, script: str, description: str,
                   probe_cell: "Any", overrides: bool = False) -> int:
    """The command line of a probe on tune cells (``benchmarks/family_events_*.py``): ``--seed``,
    ``--cell`` repeated (every one checked to be a tune cell before any fit), ``--named``, and with
    ``overrides`` ``--run`` / ``--synth`` (JSON objects passed on as ``run=`` / ``synth=``); prints
    ``probe_cell(cell, named[, run=, synth=])`` as one JSON line per cell, with the command."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seed", type=int, default=0, help="seed of the family")
    p.add_argument("--cell", type=int, action="append", required=True,
                   help="index of a tune (even) cell; repeat for more")
    p.add_argument("--named", action="store_true", help="name the cell's indicator")
    if overrides:
        p.add_argument("--run", default="{}", help="JSON RunConfig settings changed (e.g. '{\"window_s\": 0.5}')")
        p.add_argument("--synth", default="{}", help="JSON SynthConfig fields changed for the simulation")
    a = p.parse_args(argv)
    extra: dict[str, Any] = {}
    if overrides:
        for name in ("run", "synth"):
            try:
                extra[name] = json.loads(getattr(a, name))
            except json.JSONDecodeError as e:
                p.error(f"--{name}: not JSON ({e})")
            if not isinstance(extra[name], dict):
                p.error(f"--{name}: must be a JSON object, e.g. '{{}}'")
    by_index = {c.index: c for c in sample_cells(24, a.seed)}
    for i in a.cell:
        if i not in by_index:
            p.error(f"--cell {i}: no such cell in family seed {a.seed} (see family.py --list)")
        if by_index[i].half != "tune":
            p.error(f"--cell {i} is a report cell; probe tune cells only (even indices)")
    command = "python " + " ".join([script, *(argv if argv is not None else sys.argv[1:])])
    for i in a.cell:
        print(json.dumps({**probe_cell(by_index[i], a.named, **extra), "command": command}), flush=True)
    return 0


def settings_key(named: bool, run: dict[str, Any], seed: int, n_cells: int, quick: bool) -> str:
    """What must match for the rows of OUT.json to belong to this run (one OUT holds one setting)."""
    return json.dumps({"named": named, "run": run, "seed": seed, "cells": n_cells, "quick": quick},
                      sort_keys=True)


def load_rows(out: Path) -> list[dict[str, Any]]:
    path = out.with_suffix(".json")
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: cannot resume from it ({e}); choose another --out or move it away") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "key" in r and "cell" in r for r in rows):
        raise SystemExit(f"{path} is not a family table (rows with 'key' and 'cell'); choose another --out")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", type=int, default=24, help="cells in the family (default 24)")
    p.add_argument("--seed", type=int, default=0, help="seed of the family (cells and their recordings)")
    p.add_argument("--half", choices=["tune", "report", "all"], default="all",
                   help="run the tune half (even cells), the report half (odd cells) or all")
    p.add_argument("--no-indicator", action="store_true",
                   help="SBTT without the cell's indicator named (RunConfig().indicator stays None)")
    p.add_argument("--run", default="{}", help="JSON RunConfig overrides (for tuning on the tune half)")
    p.add_argument("--model", default="{}", help="JSON SBTTConfig overrides (RunConfig.model)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="SBTT training budget per fit in seconds (default: the library's)")
    p.add_argument("--out", default=None, help="write OUT.json and OUT.md; a rerun skips cells already there")
    p.add_argument("--only", type=int, nargs="+", default=None, metavar="INDEX",
                   help="run only these cell indices (e.g. to validate the runner on a few cells)")
    p.add_argument("--extras", action="store_true",
                   help="also score mixtures of the two SBTT estimates (diagnostics; costs a network pass "
                        "and two deconvolutions per cell)")
    p.add_argument("--list", action="store_true", help="print the cells and exit (no fits)")
    p.add_argument("--quick", action="store_true", help="2 tiny cells (10 ROIs, 12 s), 3 epochs: a smoke test")
    a = p.parse_args(argv)
    try:
        run = json.loads(a.run)
        model = json.loads(a.model)
    except ValueError as e:
        p.error(f"--run and --model take JSON objects: {e}")
    if not isinstance(run, dict) or not isinstance(model, dict):
        p.error("--run and --model take JSON objects, e.g. --run '{\"epochs\": 50}'")
    if model:
        run["model"] = {**run.get("model", {}), **model}
    if a.max_seconds is not None:
        run["max_seconds"] = a.max_seconds
    if a.quick:
        run.setdefault("epochs", 3)
        cells = quick_cells(a.seed)
    else:
        cells = sample_cells(a.cells, a.seed)
    if a.half != "all":
        cells = [c for c in cells if c.half == a.half]
    if a.only is not None:
        bad = sorted(set(a.only) - {c.index for c in cells})
        if bad:
            p.error(f"--only {' '.join(map(str, bad))}: no such cell in this family/half "
                    f"(cells {cells[0].index}..{cells[-1].index}; see --list)" if cells else "no cells")
        cells = [c for c in cells if c.index in a.only]
    if a.list:
        print("| cell | half | latent | indicator | scan | reduction | sweep ms | nu | ROIs | min | s | field |")
        print("|" + "---|" * 12)
        for c in cells:
            print(f"| {c.index} | {c.half} | {c.latent} | {c.indicator} | {c.scan} | {c.reduction} | "
                  f"{c.sweep_ms:g} | {c.nu:g} | {c.n_rois} | {c.duration_min:g} | {c.duration_s:.0f} | "
                  f"{c.field_shape[0]}x{c.field_shape[1]} |")
        return 0
    from napari_sbtt.core.baselines import oasis_available

    if not oasis_available():
        print("oasis-deconv is not installed (pip install napari-sbtt[baselines]); the family needs it")
        return 1
    named = not a.no_indicator
    key = settings_key(named, run, a.seed, a.cells, a.quick)
    out = Path(a.out) if a.out else None
    rows = load_rows(out) if out else []
    other = [r for r in rows if r["key"] != key]
    if other:
        p.error(f"{out.with_suffix('.json')} holds cells run with other settings ({other[0]['key']}); "
                "use another --out for these settings")
    done = {r["cell"]["index"] for r in rows}
    cmd = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print(HEADER)
    print("|" + "---|" * N_COLS)
    for r in rows:
        print(r["markdown"] + " (earlier run)")
    for c in cells:
        if c.index in done:
            continue
        row = run_cell(c, run, named=named, extras=a.extras)
        row.update(key=key, variant="indicator named" if named else "no indicator", run=run,
                   command=cmd, machine=machine())
        row["markdown"] = markdown(row)
        print(row["markdown"], flush=True)
        rows.append(row)
        rows.sort(key=lambda r: r["cell"]["index"])
        if out:
            write_rows(out, rows, command=cmd, header=HEADER, n_cols=N_COLS, footer=summary(rows))
    print()
    for line in summary(rows):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
