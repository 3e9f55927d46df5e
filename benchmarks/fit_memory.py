"""Peak memory of the fit alone against the recording's length (issue 13, item 3).

The recording of :mod:`scale_memory` (N ROIs x M minutes on a 30 Hz grid) is made, torch is
imported by a tiny warm-up fit, the kernel's peak-RSS mark is reset (``/proc/self/clear_refs``,
Linux), then the pipeline's own training steps run: ``pipeline.training_windows`` and
``model.fit_trials`` with ``config.resolve``'s config (1 epoch by default, size small, CPU).
Prints one JSON line: the RSS before the fit and the peak during it (MB), so the fit's own
memory is ``fit_peak_above_MB`` whatever the recording and the data generation held before.

It only calls public names that main had before the fit drew its windows from a WindowStore,
so the same script measures either code: ``PYTHONPATH=OTHER/src python3 benchmarks/fit_memory.py``.

    python3 benchmarks/fit_memory.py --rois 500 --minutes 60
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _status_mb(key: str) -> int:
    """A ``/proc/self/status`` field in kB (VmRSS, VmHWM) as MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024)
    raise RuntimeError(f"{key} not in /proc/self/status (this measurement needs Linux)")


def main() -> None:
    from scale_memory import add_recording_options

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_recording_options(ap, rois=500, minutes=30.0)
    ap.add_argument("--likelihood", default="gaussian")
    args = ap.parse_args()

    from scale_memory import synthetic_observations

    from napari_sbtt.config import RunConfig, resolve
    from napari_sbtt.model import SBTTConfig, fit_trials
    from napari_sbtt.pipeline import recording_decay, run_window, training_windows

    obs = synthetic_observations(args.rois, args.minutes, observed=args.observed)
    fit_trials(np.random.default_rng(0).normal(size=(8, 10, 3)), likelihood="gaussian",
               config=SBTTConfig(max_epochs=1, device="cpu"), seed=0)  # torch imported and warm
    cfg = RunConfig(epochs=args.epochs, size=args.size, max_seconds=None, device="cpu",
                    likelihood=args.likelihood)
    decay_s = recording_decay(obs, cfg)  # None unless calcium without an indicator
    window, overlap = run_window(obs, cfg, decay_s)
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    before = _status_mb("VmRSS")
    t0 = time.perf_counter()
    wins = training_windows(obs.values, window, overlap, cfg)
    train = wins if hasattr(wins, "take") else wins.values  # a WindowStore, or main's Windows
    model = fit_trials(train, None, likelihood=args.likelihood, seed=cfg.seed,
                       config=resolve(cfg, bin_width=obs.grid.bin_width, n_windows=len(train), decay_s=decay_s))
    peak = _status_mb("VmHWM")
    print(json.dumps({
        "rois": args.rois, "minutes": args.minutes, "observed": args.observed, "likelihood": args.likelihood,
        "obs_MB": round(obs.values.nbytes / 2**20, 1), "n_windows": len(train), "window_bins": window,
        "rss_before_fit_MB": before, "peak_during_fit_MB": peak, "fit_peak_above_MB": peak - before,
        "seconds_fit": round(time.perf_counter() - t0, 1), "last_train_loss": model.history[-1].train_loss,
    }))


if __name__ == "__main__":
    main()
