"""Peak memory and time of a run against the recording's length (issue 13, item 3).

A synthetic recording of N ROIs x M minutes on a 30 Hz grid (calcium transients of 0.5 Hz
Poisson spikes, GCaMP6f-like decay, noise; ``--observed 0.25``: each ROI seen in one bin of four,
as a 4-strip line scan) goes through the normal run, :func:`napari_sbtt.pipeline.fit_and_infer`,
with few epochs: the point is the memory of the data path (windows, masks, inference, the
held-out comparison), not the fit's quality. Run it under ``/usr/bin/time -v`` for the peak RSS;
it also prints ``ru_maxrss`` and the stage times as one JSON line.

    /usr/bin/time -v python benchmarks/scale_memory.py --rois 200 --minutes 5 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _common import TreePeak, peak_rss_mb


def synthetic_observations(n_rois: int, minutes: float, *, rate_hz: float = 30.0, observed: float = 1.0,
                           seed: int = 0):
    from napari_sbtt.core.observations import Observations
    from napari_sbtt.core.scan import FineGrid

    rng = np.random.default_rng(seed)
    n_t = int(round(minutes * 60 * rate_hz))
    dt = 1.0 / rate_hz
    values = np.empty((n_t, n_rois), np.float32)
    decay = np.exp(-dt / 0.4)
    block = 4096
    for i0 in range(0, n_rois, 64):  # ROI blocks: no (T, N) float64 temporaries
        i1 = min(n_rois, i0 + 64)
        c = np.zeros(i1 - i0)
        for t0 in range(0, n_t, block):
            t1 = min(n_t, t0 + block)
            spikes = rng.poisson(0.5 * dt, size=(t1 - t0, i1 - i0))
            out = np.empty((t1 - t0, i1 - i0))
            for k in range(t1 - t0):
                c = c * decay + spikes[k]
                out[k] = c
            values[t0:t1, i0:i1] = out + rng.normal(0, 0.2, size=out.shape)
    if observed < 1.0:
        period = int(round(1.0 / observed))
        t = np.arange(n_t)[:, None]
        values[(t + np.arange(n_rois)[None, :]) % period != 0] = np.nan
    times = (np.arange(n_t) + 0.5) * dt
    sample_times = np.where(np.isfinite(values), times[:, None], np.nan)
    return Observations(values=values, times=times, roi_ids=np.arange(1, n_rois + 1),
                        grid=FineGrid(0.0, dt, n_t), sample_times=sample_times,
                        coverage=np.isfinite(values).mean(axis=0), units="dF/F")


def add_recording_options(ap: argparse.ArgumentParser, rois: int, minutes: float) -> None:
    """The options of the synthetic recording and its fit (shared with fit_memory.py)."""
    ap.add_argument("--rois", type=int, default=rois)
    ap.add_argument("--minutes", type=float, default=minutes)
    ap.add_argument("--observed", type=float, default=1.0, help="share of bins each ROI is seen in")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--size", default="small")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_recording_options(ap, rois=200, minutes=5.0)
    ap.add_argument("--no-oasis", action="store_true", help="leave out the held-out comparison with OASIS")
    ap.add_argument("--ensemble", type=int, default=None,
                    help="networks trained (SBTTConfig.ensemble_size; default: the run's own, 0 = auto)")
    ap.add_argument("--likelihood", default="calcium",
                    help="gaussian: no deconvolution and no held-out step (fit and inference alone)")
    args = ap.parse_args()

    from napari_sbtt.config import RunConfig
    from napari_sbtt.pipeline import fit_and_infer

    t0 = time.perf_counter()
    obs = synthetic_observations(args.rois, args.minutes, observed=args.observed)
    t_data = time.perf_counter() - t0
    rss_data = peak_rss_mb()
    cfg = RunConfig(epochs=args.epochs, size=args.size, max_seconds=None, device="cpu", likelihood=args.likelihood,
                    compare_oasis=not args.no_oasis,
                    model={} if args.ensemble is None else {"ensemble_size": args.ensemble})
    t0 = time.perf_counter()
    with TreePeak() as tree:
        res = fit_and_infer(obs, config=cfg)
    out = {
        "rois": args.rois, "minutes": args.minutes, "likelihood": args.likelihood, "observed": args.observed, "bins": obs.n_bins,
        "obs_MB": round(obs.values.nbytes / 2**20, 1),
        "seconds_data": round(t_data, 1), "seconds_fit": round(res.metrics["seconds_fit"], 1),
        "seconds_infer": round(res.metrics["seconds_infer"], 1),
        "seconds_total": round(time.perf_counter() - t0, 1),
        "peak_rss_MB_after_data": round(rss_data),
        "peak_rss_MB": round(peak_rss_mb()),
        # this process and its member processes together (sampled every 50 ms)
        "peak_tree_rss_MB": round(tree.peak_mb), "peak_tree_anon_MB": round(tree.peak_anon_mb),
        "member_processes": tree.peak_children,
        "networks": (getattr(res.model, "metadata", {}).get("ensemble") or {}).get("members", 1),
        "fit_r_median": res.metrics["fit_r_median"],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
