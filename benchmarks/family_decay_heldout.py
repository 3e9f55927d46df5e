"""Which calcium decay predicts a recording's held-out samples best, on tune cells of the
benchmark family (a probe; report cells are refused; no network is fitted).

Without a named indicator the library starts the kernel at the recording's AR(1) decay estimate
(:func:`napari_sbtt.core.kinetics.estimate_decay_time`). On pulse-driven GCaMP6s cells that
estimate came out 0.44-0.48 s against a true 1.25 s, and the cells fell below OASIS. This probe
asks whether the samples themselves can choose the decay: for each candidate decay on a
geometric grid, the sparse deconvolution (:func:`napari_sbtt.core.deconvolution.sparse_deconvolve`,
the indicator's rise, unit amplitude) is fitted with about 10 % of each ROI's samples held out,
in single samples (the sample test) and in 0.5 s runs (the gap test, as the library's held-out
step), and scored by its R^2 on them. Per cell: the true decay, the AR(1) estimate and the
decay each test picks. At most ``--max-rois`` ROIs and the first ``--max-seconds`` of each
recording are used (the estimate is a median over ROIs).

    python benchmarks/family_decay_heldout.py --seed 5 --cell 2 [--cell 8 ...]
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np

#: candidate decays, seconds (a factor sqrt(2) apart)
CANDIDATES_S = tuple(float(x) for x in 0.1 * np.sqrt(2.0) ** np.arange(11))


def noise_sd_of(values: np.ndarray) -> np.ndarray:
    """(N,) robust noise sd of each ROI from the differences of consecutive observed samples
    (1.4826 x MAD / sqrt 2), floored at 1e-6: :func:`napari_sbtt.core.kinetics.difference_noise_sd`."""
    from napari_sbtt.core.kinetics import difference_noise_sd

    return difference_noise_sd(values)


def decay_scores(values: np.ndarray, times: np.ndarray, dt: float, gap_s: float,
                 candidates: tuple[float, ...] = CANDIDATES_S, seed: int = 0) -> dict[str, float]:
    """Held-out R^2 of the sparse deconvolution under each candidate decay (s; GCaMP6f's rise,
    unit amplitude), keyed ``f"{decay:.3f}"``: ``values`` (T, N) on a grid of ``dt`` seconds, NaN
    where not sampled, with one draw of 10 % of each ROI's samples held out (runs of ``gap_s``
    seconds; single samples when 0) for every candidate; the noise sd from all the samples
    (:func:`noise_sd_of`)."""
    from napari_sbtt.config import DEFAULT_INDICATOR
    from napari_sbtt.core.deconvolution import sparse_deconvolve
    from napari_sbtt.core.indicators import get_indicator
    from napari_sbtt.heldout import heldout_blocks

    held = heldout_blocks(np.isfinite(values), times, 0.1, seed, gap_s=gap_s) > 0
    kept = np.where(held, np.nan, values)
    base = np.nanpercentile(kept, 10, axis=0)
    sd = noise_sd_of(values)
    total = (np.where(held, values - np.nanmean(kept, axis=0)[None, :], 0.0) ** 2)
    rise = get_indicator(DEFAULT_INDICATOR)
    out = {}
    for tau in candidates:
        ind = dataclasses.replace(rise, tau_decay=tau, tau_decay2=None, decay2_fraction=0.0, amplitude=1.0)
        fit = sparse_deconvolve(kept, ind.kernel(dt), baseline=base, noise_sd=sd).fitted
        ok = held & np.isfinite(fit)
        resid = np.where(ok, values - fit, 0.0)
        out[f"{tau:.3f}"] = float(1.0 - (resid ** 2).sum() / max(np.where(ok, total, 0.0).sum(), 1e-300))
    return out


def probe_cell(cell: Any, named: bool, *, max_rois: int = 32, max_seconds: float = 180.0) -> dict[str, Any]:
    """The probe row of one tune cell: true decay, AR(1) estimate, each candidate's held-out R^2
    in both tests and the decay each picks. ``named`` only labels the row (nothing is fitted)."""
    from napari_sbtt.api import RunConfig, observations_for_stack
    from napari_sbtt.core.indicators import get_indicator
    from napari_sbtt.core.kinetics import estimate_decay_time

    cfg = RunConfig()
    sim = cell.simulate(fine_factor=cfg.factor)
    obs = observations_for_stack(sim.movie, sim.labels, sim.pattern, config=cfg)
    dt = float(obs.grid.bin_width)
    n_t = min(obs.values.shape[0], int(round(max_seconds / dt)))
    cols = np.linspace(0, obs.values.shape[1] - 1, min(max_rois, obs.values.shape[1])).round().astype(int)
    values = obs.values[:n_t, cols].astype(np.float64)
    times = np.asarray(obs.times[:n_t], dtype=np.float64)
    row: dict[str, Any] = {"cell": cell.describe(), "named": named,
                           "true_decay_s": float(get_indicator(cell.indicator).decay),
                           "ar1_estimate_s": estimate_decay_time(obs.values, obs.times, bin_width=dt)}
    for kind, gap in (("samples", 0.0), ("gaps", 0.5)):
        r2 = decay_scores(values, times, dt, gap)
        row[f"r2_{kind}"] = r2
        row[f"pick_{kind}_s"] = float(max(r2, key=r2.get))
    return row


def main(argv: list[str] | None = None) -> int:
    from family import run_tune_probe

    return run_tune_probe(argv, "family_decay_heldout.py", __doc__.splitlines()[0], probe_cell)


if __name__ == "__main__":
    sys.exit(main())
