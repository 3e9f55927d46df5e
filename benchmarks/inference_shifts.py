"""Does averaging the inference over shifted window grids help? (RunConfig.inference_shifts)

One fit with the library defaults but a single inference pass (``inference_shifts=1``) on one
synthetic line scan of benchmark 2 (``linescan_vs_oasis.make_case``), then the same model's
inference with the window grid shifted by k * window / S bins (k = 0..S-1) and averaged, for
S = 1, 2, 4, 8, and with a larger inference overlap instead. Scored like benchmark 2: median
Pearson r (50 ms smoothing) against the true rates; OASIS on the same samples for reference.

    python benchmarks/inference_shifts.py GCaMP6f 2 4      # indicator, nu, strips
"""

from __future__ import annotations

import json
import os
import sys
import time

from linescan_vs_oasis import make_case, score

from napari_sbtt.api import RunConfig, infer_observations, run_on_observations
from napari_sbtt.core.baselines import oasis_rates
from napari_sbtt.core.indicators import get_indicator


def main(argv: list[str]) -> dict:
    indicator, nu, strips = argv[0], float(argv[1]), int(argv[2])
    sim, obs = make_case(indicator, nu, strips)
    truth = sim.truth.rates[:, obs.roi_ids - 1]
    dt, amp = obs.grid.bin_width, get_indicator(indicator).amplitude
    out: dict = {"case": [indicator, nu, strips], "load_start": os.getloadavg()[0]}
    out["oasis_r"] = score(oasis_rates(obs.values, obs.times), truth, dt, amp, per_bin=False)["r"]
    t0 = time.perf_counter()
    res = run_on_observations(obs, config=RunConfig(indicator=indicator, inference_shifts=1))
    out["fit_s"], out["epochs"] = time.perf_counter() - t0, res.metrics["epochs_run"]
    model = res.model
    w, ov = model.metadata["window_bins"], model.metadata["overlap_bins"]
    for shifts in (1, 2, 4, 8):
        rates = infer_observations(model, obs.values, window=w, overlap=ov, shifts=shifts)
        out[f"r_shifts_{shifts}"] = score(rates, truth, dt, amp)["r"]
    for ov2 in (w // 2, 3 * w // 4):
        rates = infer_observations(model, obs.values, window=w, overlap=ov2)
        out[f"r_overlap_{ov2}_of_{w}"] = score(rates, truth, dt, amp)["r"]
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
