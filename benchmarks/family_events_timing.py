"""The events' r against the truth when each jump's timing is spread over what the samples can
tell, on tune cells of the benchmark family (a probe; report cells are refused).

Between two samples of an ROI its calcium is not seen, so the deconvolution cannot say where in
that gap a jump happened: the sparse solution puts it wherever the kernel makes it cheapest
(just before the next sample, or the kernel's rise before it). Variants, each ROI on its own:

- ``raw``: the jumps as the solver placed them (what the library returned before this probe);
- ``gap``: the jumps of each gap (after one sample, up to and including the next) summed and
  spread evenly over the gap's bins;
- ``gapk``: as ``gap``, with the even density that gives the same fluorescence at the gap's
  closing sample under the learned kernel (so an early jump is not taken as a smaller one);
- ``gapw``: as ``gap``, the mass spread in proportion to how strongly a jump in each bin shows
  at the gap's closing sample (the kernel there): even for a slow indicator, near the sample for
  a fast one (:func:`napari_sbtt.core.deconvolution.spread_over_gaps`, what the library returns
  now);
- ``tri``: the jumps smoothed by a triangle whose half-width is the ROI's median sample interval
  (what OASIS's rates get from linear interpolation between samples);
- ``box``: a centred boxcar one median sample interval wide.

Per cell: one SBTT fit with the library's defaults; each variant's events and the combined
estimate with them, scored as the family scores (:func:`_common.median_r`), beside OASIS, the
network and the estimate the library returned. Prints one JSON line per cell.

    python benchmarks/family_events_timing.py --seed 3 --cell 2 [--cell 4 ...] [--named]
"""

from __future__ import annotations

import sys

import numpy as np
from _common import median_r


def spread_gaps(jumps: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(T, N) jumps -> each ROI's jumps summed per gap between its samples and spread evenly:
    :func:`napari_sbtt.core.deconvolution.spread_over_gaps` under a flat kernel as long as the
    recording (the solver puts no jump after an ROI's last sample, which no sample would see)."""
    from napari_sbtt.core.deconvolution import spread_over_gaps

    return spread_over_gaps(jumps, observed, np.ones(jumps.shape[0]))


def spread_gaps_kernel(jumps: np.ndarray, observed: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """As :func:`spread_gaps`, but each gap's even density is the one that gives the same
    fluorescence at the gap's closing sample under ``kernel`` (N, L) (mass kept in the tail)."""
    out = spread_gaps(jumps, observed)
    n_t = jumps.shape[0]
    t = np.arange(n_t)
    for i in range(jumps.shape[1]):
        idx = np.flatnonzero(observed[:, i])
        if idx.size == 0:
            continue
        gap = np.searchsorted(idx, t, side="left")
        inside = gap < idx.size
        lag = np.zeros(n_t, dtype=int)
        lag[inside] = idx[gap[inside]] - t[inside]
        k = kernel[i]
        w = np.where(inside & (lag < k.size), k[np.minimum(lag, k.size - 1)], 0.0)
        a = np.nan_to_num(jumps[:, i])
        effect = np.bincount(gap, weights=a * w, minlength=idx.size + 1)
        denom = np.bincount(gap, weights=w, minlength=idx.size + 1)
        ok = denom[gap] > 1e-12
        out[ok & inside, i] = (effect[gap] / np.where(denom[gap] > 1e-12, denom[gap], 1.0))[ok & inside]
    return out


def smooth_interval(jumps: np.ndarray, observed: np.ndarray, shape: str) -> np.ndarray:
    """(T, N) jumps smoothed per ROI by a triangle (half-width) or box (width) of its median
    sample interval, mass kept."""
    out = np.zeros_like(jumps, dtype=np.float64)
    for i in range(jumps.shape[1]):
        idx = np.flatnonzero(observed[:, i])
        step = int(round(np.median(np.diff(idx)))) if idx.size > 1 else 1
        if step <= 1:
            out[:, i] = jumps[:, i]
            continue
        if shape == "tri":
            k = np.concatenate([np.arange(1, step + 1), np.arange(step - 1, 0, -1)]).astype(float)
        else:
            k = np.ones(step)
        k /= k.sum()
        out[:, i] = np.convolve(np.nan_to_num(jumps[:, i]), k, mode="same")
    return out


def probe_cell(cell, named: bool) -> dict:
    """The probe's row for one tune cell (module docstring)."""
    import family

    from napari_sbtt.core.deconvolution import spread_over_gaps
    from napari_sbtt.heldout import combine_estimates, deconvolve_with_model

    fit = family.probe_fit(cell, named)
    res, values, net, truth, dt, out = (fit[k] for k in ("res", "values", "net", "truth", "dt", "row"))
    observed = np.isfinite(values)
    events, _ = deconvolve_with_model(res.model, values, spread=False)
    kernel = res.model.observation_model()["kernel"]
    variants = {"raw": events, "gap": spread_gaps(events, observed),
                "gapk": spread_gaps_kernel(events, observed, kernel),
                "gapw": spread_over_gaps(events, observed, kernel),
                "tri": smooth_interval(events, observed, "tri"),
                "box": smooth_interval(events, observed, "box")}
    for name, ev in variants.items():
        out[name] = {"events": median_r(truth, ev, dt),
                     "combined": median_r(truth, combine_estimates(net, ev), dt)}
    step = [float(np.median(np.diff(np.flatnonzero(observed[:, i])))) for i in range(values.shape[1])]
    out.update(network=median_r(truth, net, dt), returned=median_r(truth, res.rates, dt),
               estimate=res.metrics["estimate"], verdict=res.metrics["heldout"]["verdict"],
               median_interval_bins=float(np.median(step)), bin_s=dt)
    return out


def main(argv: list[str] | None = None) -> int:
    import family

    return family.run_tune_probe(argv, "benchmarks/family_events_timing.py", __doc__.split("\n")[0], probe_cell)


if __name__ == "__main__":
    sys.exit(main())
