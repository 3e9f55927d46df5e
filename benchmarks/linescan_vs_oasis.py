"""Benchmark 2 of issue 3 (evaluation protocol 2: synthetic line scans with ground truth, Pearson r
of the inferred against the true rates on the fine grid): SBTT vs OASIS.

For each indicator (GCaMP6f, GCaMP8m), noise level nu (2, 4) and strip count (2, 4, 8: each
ROI is acquired in 1/2, 1/4, 1/8 of the sweeps = fine-grid bins), simulate the "default"
recording (24 ROIs, 64 x 64 px, 60 s) with that configuration, extract each ROI's dF/F samples
(running 8th-percentile F0, as ``RunConfig.dff``), then

- SBTT: ``run_on_observations`` with the library defaults (``RunConfig()`` with the
  recording's indicator; ``--run`` / ``--model`` JSON overrides for tuning runs),
- OASIS: ``core.baselines.oasis_rates`` (AR(1), own parameter estimation, on each ROI's
  samples, interpolated to the fine grid),

and score both against the TRUE RATES on the fine grid: Pearson r after 50 ms Gaussian
smoothing (median over ROIs), and R^2 (uniform over ROIs) after converting both to spikes/s
with the indicator's single-spike amplitude (rate [dF/F per bin] / amplitude / bin width); the
conversion ignores the F0 estimate's bias and the indicator rise, so R^2 is a rough unit check
while r is the headline number.

    python benchmarks/linescan_vs_oasis.py --out results/b2      # full grid (12 fits)
    python benchmarks/linescan_vs_oasis.py --quick               # smoke test (tiny preset)

Each row records the command, the machine and its load average (2 shared cores: timings are
noisy).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any

import numpy as np
from _common import machine, write_rows

from napari_sbtt.api import RunConfig, run_on_observations
from napari_sbtt.core.baselines import oasis_available, oasis_events, oasis_rates
from napari_sbtt.core.indicators import get_indicator
from napari_sbtt.core.metrics import median_over_rois, pearson_r, r2_score
from napari_sbtt.core.synth import simulate
from napari_sbtt.core.traces import extract_observations

SMOOTH_S = 0.05




def make_case(indicator: str, nu: float, n_strips: int, *, preset: str = "default", seed: int = 0,
              **overrides: Any) -> tuple[Any, Any]:
    """Simulate one configuration and extract its dF/F observations (as RunConfig.dff does)."""
    sim = simulate(preset, seed=seed, indicator=indicator, noise_level=nu, n_strips=n_strips,
                   **overrides)
    obs = extract_observations(sim.movie, sim.labels, sim.pattern, dff=True)
    return sim, obs


def score(rates: np.ndarray, truth_hz: np.ndarray, dt: float, amplitude: float,
          *, per_bin: bool = True) -> dict[str, float]:
    """Median Pearson r (50 ms smoothing) and R^2 in spikes/s against the true rates."""
    r = pearson_r(truth_hz, rates, sigma_s=SMOOTH_S, dt_s=dt)
    hz = rates / amplitude / (dt if per_bin else 1.0)
    return {"r": float(median_over_rois(r)), "r2": float(r2_score(truth_hz, hz)),
            "r_per_roi": np.asarray(r).tolist()}


def run_case(indicator: str, nu: float, n_strips: int, *, preset: str = "default", seed: int = 0,
             run: dict[str, Any] | None = None, with_oasis: bool = True,
             synth: dict[str, Any] | None = None, events: bool = False) -> dict[str, Any]:
    """One row. ``events``: SBTT fits the zero-inflated gamma to OASIS events at each ROI's own
    samples (RADICaL's recipe, ``core.baselines.oasis_events``) instead of the calcium model to
    dF/F; events below a quarter of the indicator's single-spike dF/F count as none."""
    sim, obs = make_case(indicator, nu, n_strips, preset=preset, seed=seed, **(synth or {}))
    truth = sim.truth.rates[:, obs.roi_ids - 1]
    dt = obs.grid.bin_width
    amp = get_indicator(indicator).amplitude
    row: dict[str, Any] = {
        "indicator": indicator, "nu": nu, "n_strips": n_strips, "preset": preset, "seed": seed,
        "n_rois": int(obs.n_rois), "bin_ms": dt * 1e3,
        "observed_share": float(np.isfinite(obs.values).mean()),
    }
    if with_oasis and oasis_available():
        base = oasis_rates(obs.values, obs.times)
        row["oasis"] = score(base, truth, dt, amp, per_bin=False)
    cfg = {"indicator": indicator, **(run or {})}
    if events:
        obs = dataclasses.replace(obs, values=oasis_events(obs.values, obs.times),
                                  units="OASIS events (dF/F)")
        cfg["likelihood"] = "zig"
        cfg["model"] = {"zig_min_event": 0.25 * amp, **cfg.get("model", {})}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = run_on_observations(obs, config=RunConfig.from_dict(cfg))
    secs = time.perf_counter() - t0
    row["sbtt"] = score(res.rates, truth, dt, amp)
    row["sbtt"].update(seconds=secs, epochs=res.metrics["epochs_run"],
                       best_epoch=res.metrics["best_epoch"], load=load0,
                       fit_r=res.metrics["fit_r_median"])
    row["run_config"] = cfg
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny preset, one configuration, 20 epochs")
    p.add_argument("--indicators", nargs="+", default=["GCaMP6f", "GCaMP8m"])
    p.add_argument("--nu", nargs="+", type=float, default=[2.0, 4.0])
    p.add_argument("--strips", nargs="+", type=int, default=[2, 4, 8])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="default")
    p.add_argument("--run", default="{}", help="JSON RunConfig overrides, e.g. '{\"likelihood\": \"gaussian\"}'")
    p.add_argument("--model", default="{}", help="JSON SBTTConfig overrides (RunConfig.model)")
    p.add_argument("--synth", default="{}", help="JSON SynthConfig overrides")
    p.add_argument("--events", action="store_true",
                   help="SBTT fits the zero-inflated gamma to OASIS events (RADICaL's recipe)")
    p.add_argument("--label", default="", help="name of this variant in the table")
    p.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    a = p.parse_args(argv)
    run = json.loads(a.run)
    model = json.loads(a.model)
    if model:
        run["model"] = {**run.get("model", {}), **model}
    synth = json.loads(a.synth)
    if a.quick:
        a.preset, a.indicators, a.nu, a.strips = "tiny", a.indicators[:1], a.nu[:1], [2]
        run.setdefault("epochs", 20)
    cmd = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    rows = []
    header = ("| variant | indicator | nu | strips | bin ms | SBTT r | OASIS r | r gain | SBTT R² | "
              "OASIS R² | fit s | epochs | load |")
    print(header)
    print("|" + "---|" * 13)
    for ind in a.indicators:
        for nu in a.nu:
            for ns in a.strips:
                row = run_case(ind, nu, ns, preset=a.preset, seed=a.seed, run=run, synth=synth,
                               events=a.events)
                row.update(command=cmd, machine=machine(), label=a.label)
                rows.append(row)
                s, o = row["sbtt"], row.get("oasis", {"r": float("nan"), "r2": float("nan")})
                line = (f"| {a.label or 'default'} | {ind} | {nu:g} | {ns} | {row['bin_ms']:.1f} | "
                        f"{s['r']:.3f} | {o['r']:.3f} | {s['r'] - o['r']:+.3f} | {s['r2']:.2f} | "
                        f"{o['r2']:.2f} | {s['seconds']:.0f} | {s['epochs']} | {s['load']:.1f} |")
                row["markdown"] = line
                print(line, flush=True)
    if a.out:
        write_rows(a.out, rows, command=cmd, header=header, n_cols=13)
    return 0


if __name__ == "__main__":
    sys.exit(main())
