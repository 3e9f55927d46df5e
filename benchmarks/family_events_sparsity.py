"""The events' r against the truth under several sparsity weights, on tune cells of the benchmark
family, beside what held-out samples say of each weight (a probe for choosing the deconvolution's
sparsity from the recording; report cells are refused).

Per cell: one SBTT fit with the library's defaults; then, for each sparsity weight, the events
deconvolved under the learned calcium model (``heldout.deconvolve_with_model``) scored as the
family scores (:func:`_common.median_r`), the combined estimate with those events, and the
held-out R^2 of the deconvolution on the library's two held-out tests (a tenth of the samples,
single samples and 0.5 s gaps, drawn as ``heldout.compare_heldout`` draws them, over the whole
recording): could the recording itself say which weight is best? Also the r of the events when
each ROI takes the weight its own held-out samples prefer. OASIS and the estimate the library
returned beside them. Prints one JSON line per cell.

    python benchmarks/family_events_sparsity.py --seed 0 --cell 16 [--cell 18 ...] [--named]
"""

from __future__ import annotations

import sys

import numpy as np
from _common import median_r

SPARSITIES = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)


def probe_cell(cell, named: bool) -> dict:
    """The probe's row for one tune cell (module docstring)."""
    import family

    from napari_sbtt.heldout import combine_estimates, deconvolve_with_model, heldout_blocks

    fit = family.probe_fit(cell, named)
    cfg, obs, res, values, net, truth, dt, out = (
        fit[k] for k in ("cfg", "obs", "res", "values", "net", "truth", "dt", "row"))
    observed = np.isfinite(values)
    helds = {kind: heldout_blocks(observed, obs.times, 0.1, cfg.seed, gap_s=g) > 0
             for kind, g in (("samples", 0.0), ("gaps", 0.5))}
    # each test's R^2 denominator: the held-out samples' spread about each ROI's kept mean
    denoms = {}
    for kind, held in helds.items():
        mean = np.nanmean(np.where(held, np.nan, values), axis=0)
        denoms[kind] = float(np.where(held, (values - mean) ** 2, 0.0).sum())
    err_roi = {kind: [] for kind in helds}
    events_by_s = []
    for s in SPARSITIES:
        events, _ = deconvolve_with_model(res.model, values, sparsity=s)
        events_by_s.append(events)
        row = {"events": median_r(truth, events, dt),
               "combined": median_r(truth, combine_estimates(net, events), dt)}
        for kind, held in helds.items():
            fit = deconvolve_with_model(res.model, np.where(held, np.nan, values), sparsity=s)[1]
            e = np.where(held, (fit - values) ** 2, 0.0)
            err_roi[kind].append(e.sum(axis=0))
            row[f"r2_{kind}"] = 1.0 - float(e.sum()) / denoms[kind]
        out[f"sparsity_{s:g}"] = row
    for kind in helds:
        pick = np.argmin(np.stack(err_roi[kind]), axis=0)  # (N,) per ROI
        ev = np.stack(events_by_s)[pick, :, np.arange(pick.size)].T
        out[f"per_roi_{kind}"] = {"events": median_r(truth, ev, dt),
                                  "combined": median_r(truth, combine_estimates(net, ev), dt),
                                  "picks": np.bincount(pick, minlength=len(SPARSITIES)).tolist()}
    out.update(network=median_r(truth, net, dt), returned=median_r(truth, res.rates, dt),
               estimate=res.metrics["estimate"])
    return out


def main(argv: list[str] | None = None) -> int:
    import family

    return family.run_tune_probe(argv, "benchmarks/family_events_sparsity.py", __doc__.split("\n")[0], probe_cell)


if __name__ == "__main__":
    sys.exit(main())
