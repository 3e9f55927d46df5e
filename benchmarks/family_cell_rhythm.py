"""Why a benchmark-family cell scores r ~ 0: the true rates' rhythm against the network's.

Runs one cell of ``benchmarks/family.py`` (nothing named, the library's defaults, as in the
family's ``--no-indicator`` table) and prints, for the network's rates:

- the median over ROIs of Pearson r against the true rates (50 ms smoothing) at lags of
  -20..20 bins, and the best lag;
- r per ROI against the true calcium;
- the frequency where the population mean's power spectrum peaks, for the truth and the
  network, beside each ROI's own sampling rate (its Nyquist rate is half of it);
- the held-out gap test of the fit (R² of the network, the events and OASIS).

    python benchmarks/family_cell_rhythm.py --cell 15      # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from _common import median_r, network_rates, peak_frequency
from family import sample_cells


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", type=int, default=15, help="family cell index (default 15)")
    a = ap.parse_args(argv)
    from napari_sbtt.api import RunConfig, observations_for_stack, run_on_observations

    cells = [c for c in sample_cells() if c.index == a.cell]
    if not cells:
        ap.error(f"--cell {a.cell}: no such cell (see family.py --list)")
    cell, cfg = cells[0], RunConfig()
    sim = cell.simulate(fine_factor=cfg.factor)
    obs = observations_for_stack(sim.movie, sim.labels, sim.pattern, config=cfg)
    cols = obs.roi_ids - 1
    truth, calcium = sim.truth.rates[:, cols], sim.truth.calcium[:, cols]
    res = run_on_observations(obs, config=cfg, scan=sim.pattern)
    dt = obs.grid.bin_width
    net = network_rates(res, obs.values, cfg.inference_shifts)
    lags = []
    for lag in range(-20, 21, 2):
        x, y = (truth[lag:], net[:len(net) - lag]) if lag >= 0 else (truth[:lag], net[-lag:])
        lags.append((lag, median_r(x, y, dt)))
    best = max(lags, key=lambda t: t[1])
    per_roi_sampling = np.isfinite(obs.values).mean() / dt  # samples per second per ROI
    r_cal = np.nanmedian([np.corrcoef(net[:, i], calcium[:, i])[0, 1] for i in range(net.shape[1])])
    print(f"cell {cell.index}: {cell.latent}, {cell.indicator}, {cell.scan}, {cell.n_rois} ROIs, "
          f"{cell.duration_s:.0f} s, bin {dt * 1e3:.0f} ms")
    print(f"network vs true rates: r {dict(lags)[0]:.3f} at lag 0, best {best[1]:.3f} at "
          f"{best[0] * dt * 1e3:+.0f} ms; r vs true calcium (per ROI, median) {r_cal:.3f}")
    print(f"spectral peak of the population mean: truth {peak_frequency(truth.mean(1), dt):.2f} Hz, "
          f"network {peak_frequency(net.mean(1), dt):.2f} Hz; each ROI sampled at {per_roi_sampling:.2f} Hz "
          f"(Nyquist {per_roi_sampling / 2:.2f} Hz)")
    gaps = res.metrics["heldout"]["gaps"]
    print("held-out gaps R²: " + ", ".join(f"{k} {v:.3f}" for k, v in gaps["r2"].items())
          + f"; estimate returned: {res.metrics['estimate']}; verdict: {res.metrics['heldout']['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
