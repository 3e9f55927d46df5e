"""Training and inference throughput of the SBTT network (issue 13, item 4), A/B.

Two cases, each with the data and settings the library uses by default:

- calcium: ``run_on_stack`` on the ``default`` synthetic recording (``simulate("default",
  seed=0)``): its training windows (1.16 s at 59 Hz = 68 bins, 24 ROIs), the run's model
  config (calcium likelihood, double-exponential kernel, 32-unit controller, batch 8,
  1 torch thread), one network (a second one would train in a process of its own, which
  ``--impl`` does not reach);
- poisson: the SBTT demo protocol's Lorenz data at bandwidth 5 with
  ``SBTTConfig.default_for("poisson")`` (no controller, batch 128, 1 torch thread), one network
  (``ensemble_size=1``: the default trains one per idle core at once);
- large (not in the default ``--cases``): the scale table's largest row in shape, 500 ROIs x
  30 min in 1.16 s windows with the batch the run takes for that many windows; noise values,
  timed only (``--cases large --impl fused``, for a GPU against the CPU).

Implementations of the recurrent parts (``SequentialAutoencoder.fused_unroll``):
``fused`` (one autograd node each, hand-written backward; the library default, each GRU fused
where :func:`napari_sbtt.model.unroll.fused_gru_fits` says), ``reference`` (recorded op by op by
autograd, as before issue 13) and ``fused-1024`` (fused, but an encoder or generator GRU only up
to 1024 trials x units, the range before the sixteenth session of issue 14).

Modes:

- default (throughput): per repeat and implementation (A/B order alternating between
  repeats, since the machine is shared), a fit of ``--epochs`` epochs (seconds per epoch from
  the progress callback, first epoch dropped; training windows per second = training windows
  / seconds per epoch, so validation passes count) and ``model.predict`` on all windows
  (inference windows per second). Medians over repeats, with the load average.
- ``--numerics``: the same short fit (fixed epochs, no time budget, same seed) with both
  implementations: largest difference of the losses per epoch and of the inferred rates,
  and whether two fused fits give identical numbers.
- ``--gru-grid``: one GRU alone, forward and backward, the fused node against nn.GRU over a
  grid of batch sizes, units, bins and directions (what :func:`fused_gru_fits` was chosen from).
- ``--quality``: the full default runs (``run_on_stack`` with the 150 s budget, Pearson r
  against the true rates; the protocol fit with its 90 s budget, R^2 of the validation
  rates) with both implementations.

Usage::

    python benchmarks/throughput.py --repeats 5
    python benchmarks/throughput.py --numerics
    python benchmarks/throughput.py --quality --cases calcium
    python benchmarks/throughput.py --gru-grid
    python benchmarks/throughput.py --cases poisson --impl fused fused-1024 --repeats 3 --epochs 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_sbtt.model.unroll import fused_gru_fits as FUSED_GRU_FITS  # the library's rule

IMPLS = ("fused", "reference", "fused-1024")


def load() -> float:
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return float("nan")


def machine() -> str:
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cpu, torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def set_impl(impl: str) -> None:
    from napari_sbtt.model import unroll
    from napari_sbtt.model.network import SequentialAutoencoder

    SequentialAutoencoder.fused_unroll = impl != "reference"
    unroll.fused_gru_fits = ((lambda batch, units: batch * units <= 1024) if impl == "fused-1024"
                             else FUSED_GRU_FITS)


def gru_grid(repeats: int) -> list[dict[str, Any]]:
    """Seconds per forward + backward pass of one GRU, the fused node against nn.GRU (best of
    ``repeats`` x 5 passes, one thread), over batch sizes, units, bins and directions."""
    import torch
    from torch import nn

    from napari_sbtt.model import unroll

    def once(gru: "nn.GRU", x: "torch.Tensor", fused: bool) -> float:
        """nn.GRU itself, or gru_sequence with the fused node whatever the size."""
        unroll.fused_gru_fits = lambda b, u: True
        try:
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(5):
                    out, h_n = unroll.gru_sequence(gru, x) if fused else gru(x)
                    (out.sum() + h_n.sum()).backward()
                best = min(best, (time.perf_counter() - t0) / 5)
        finally:
            unroll.fused_gru_fits = FUSED_GRU_FITS
        return best

    rows = []
    print("| directions | inputs | units | batch | bins | nn.GRU ms | fused ms | speed-up | fused by default |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for bidirectional, n_in in ((True, 32), (False, 1), (True, 64)):
        for units in (32, 64):
            for batch in (8, 32, 64, 128, 256):
                for bins in (50, 122):
                    torch.manual_seed(0)
                    gru = nn.GRU(n_in, units, batch_first=True, bidirectional=bidirectional)
                    x = torch.randn(batch, bins, n_in, requires_grad=True)
                    ref, fused = once(gru, x, False), once(gru, x, True)
                    row = {"directions": 2 if bidirectional else 1, "inputs": n_in, "units": units,
                           "batch": batch, "bins": bins, "reference_s": ref, "fused_s": fused,
                           "default_fused": FUSED_GRU_FITS(batch, units), "load": load()}
                    rows.append(row)
                    print(f"| {row['directions']} | {n_in} | {units} | {batch} | {bins} | {ref * 1e3:.1f} | "
                          f"{fused * 1e3:.1f} | {ref / fused:.2f}x | {row['default_fused']} |", flush=True)
    return rows


# ----------------------------------------------------------------------------
def calcium_case(device: str) -> dict[str, Any]:
    """The training windows and model config of run_on_stack on the default recording."""
    import napari_sbtt as ns
    from napari_sbtt.api import RunConfig, model_config, observations_for_stack, run_window_s
    from napari_sbtt.core.windows import choose_window, make_windows

    sim = ns.simulate("default", seed=0)
    cfg = RunConfig.coerce({"seed": 0, "device": device, "indicator": sim.config.indicator})
    obs = observations_for_stack(sim.movie, sim.labels, sim.pattern, config=cfg)
    bw = obs.grid.bin_width
    window, overlap = choose_window(bw, window_s=run_window_s(cfg, bw),
                                    overlap_fraction=cfg.overlap_fraction,
                                    n_time=obs.values.shape[0])
    wins = make_windows(obs.values, window, overlap)
    return {"name": "calcium", "likelihood": "calcium", "train": wins.values, "valid": None,
            "all": wins.values, "config": model_config(cfg, bw).replace(ensemble_size=1)}


def poisson_case(device: str, bandwidth: int = 5) -> dict[str, Any]:
    """The SBTT demo protocol's data at one bandwidth with the poisson defaults."""
    from napari_sbtt.core.lorenz_protocol import make_lorenz_spiking, mask_bandwidth
    from napari_sbtt.model import SBTTConfig

    data = make_lorenz_spiking(seed=0)
    train = mask_bandwidth(data.train_counts, bandwidth, 100 + bandwidth)
    valid = mask_bandwidth(data.valid_counts, bandwidth, 200 + bandwidth)
    return {"name": "poisson", "likelihood": "poisson", "train": train, "valid": valid,
            # one network: the throughput of one fit's epochs (the default trains one per idle core)
            "all": valid, "config": SBTTConfig.default_for("poisson").replace(device=device, ensemble_size=1),
            "valid_rates": data.valid_rates}


def large_case(device: str, n_rois: int = 500, minutes: float = 30.0) -> dict[str, Any]:
    """The scale table's largest row in shape (500 ROIs x 30 min at the default recording's
    59 Hz bins, 1.16 s windows, each ROI seen in 1 bin of 4): the run's model config for that
    many windows. The values are noise: this case times an epoch, it is not scored."""
    from napari_sbtt.api import RunConfig, model_config, run_window_s
    from napari_sbtt.config import batch_size_for
    from napari_sbtt.core.windows import choose_window

    bw = 1.0 / 59.0
    n_time = int(minutes * 60 / bw)
    cfg = RunConfig.coerce({"seed": 0, "device": device, "indicator": "GCaMP6f"})
    window, overlap = choose_window(bw, window_s=run_window_s(cfg, bw),
                                    overlap_fraction=cfg.overlap_fraction, n_time=n_time)
    n_windows = max(1, (n_time - overlap) // (window - overlap))
    rng = np.random.default_rng(0)
    values = rng.normal(size=(n_windows, window, n_rois)).astype(np.float32)
    seen = (np.arange(window)[None, :, None] + np.arange(n_rois)[None, None, :]
            + rng.integers(0, 4, size=(n_windows, 1, 1))) % 4 == 0
    values[~np.broadcast_to(seen, values.shape)] = np.nan
    return {"name": "large", "likelihood": "calcium", "train": values, "valid": None,
            "all": values, "config": model_config(cfg, bw).replace(batch_size=batch_size_for(n_windows), ensemble_size=1)}


CASES: dict[str, Callable[[str], dict[str, Any]]] = {"calcium": calcium_case,
                                                     "poisson": poisson_case,
                                                     "large": large_case}


def short_fit(case: dict[str, Any], epochs: int) -> tuple[Any, list[float]]:
    """A fit of exactly ``epochs`` epochs (no time budget, no early stop); epoch end times."""
    from napari_sbtt.model import fit_trials

    cfg = case["config"].replace(max_epochs=epochs, max_seconds=None, patience=10 * epochs)
    stamps = [time.perf_counter()]
    model = fit_trials(case["train"], case["valid"], likelihood=case["likelihood"], config=cfg,
                       seed=0, progress=lambda r: stamps.append(time.perf_counter()))
    return model, stamps


def n_train_windows(case: dict[str, Any]) -> int:
    """Windows per training epoch (fit_trials moves valid_fraction of them to validation
    when it gets no validation set)."""
    n = case["train"].shape[0]
    if case["valid"] is None and n >= 5 and case["config"].valid_fraction > 0:
        n -= max(1, round(case["config"].valid_fraction * n))
    return n


def measure(case: dict[str, Any], impl: str, epochs: int) -> dict[str, float]:
    set_impl(impl)
    l0 = load()
    model, stamps = short_fit(case, epochs)
    per_epoch = float(np.median(np.diff(stamps)[1:]))  # the first epoch warms up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.predict(case["all"])
        times.append(time.perf_counter() - t0)
    return {"train_windows_per_s": n_train_windows(case) / per_epoch,
            "seconds_per_epoch": per_epoch,
            "infer_windows_per_s": case["all"].shape[0] / float(np.median(times)),
            "load_start": l0, "load_end": load()}


def throughput(cases: list[dict[str, Any]], impls: list[str], repeats: int, epochs: int
               ) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        runs: dict[str, list[dict[str, float]]] = {i: [] for i in impls}
        for rep in range(repeats):
            order = impls if rep % 2 == 0 else impls[::-1]
            for impl in order:
                r = measure(case, impl, epochs)
                runs[impl].append(r)
                print(f"  {case['name']} rep {rep} {impl}: train {r['train_windows_per_s']:.1f} "
                      f"win/s, infer {r['infer_windows_per_s']:.0f} win/s, load "
                      f"{r['load_start']:.1f}/{r['load_end']:.1f}", file=sys.stderr, flush=True)
        for impl in impls:
            rs = runs[impl]
            rows.append({
                "case": case["name"], "impl": impl, "repeats": len(rs),
                "train_windows_per_s": float(np.median([r["train_windows_per_s"] for r in rs])),
                "seconds_per_epoch": float(np.median([r["seconds_per_epoch"] for r in rs])),
                "infer_windows_per_s": float(np.median([r["infer_windows_per_s"] for r in rs])),
                "load_min": float(min(min(r["load_start"], r["load_end"]) for r in rs)),
                "load_max": float(max(max(r["load_start"], r["load_end"]) for r in rs)),
                "n_train_windows": n_train_windows(case),
                "bins": int(case["train"].shape[1]), "rois": int(case["train"].shape[2]),
                "batch_size": case["config"].batch_size, "runs": rs,
            })
    print("| case | implementation | train windows/s (per epoch) | s/epoch | inference windows/s "
          "| speed-up train / infer | load (1 min) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        ref = next((x for x in rows if x["case"] == r["case"] and x["impl"] == "reference"), None)
        up = (f"{r['train_windows_per_s'] / ref['train_windows_per_s']:.2f}x / "
              f"{r['infer_windows_per_s'] / ref['infer_windows_per_s']:.2f}x") if ref else "-"
        print(f"| {r['case']} ({r['n_train_windows']} x {r['bins']} bins x {r['rois']}, batch "
              f"{r['batch_size']}) | {r['impl']} | {r['train_windows_per_s']:.1f} | "
              f"{r['seconds_per_epoch']:.3f} | {r['infer_windows_per_s']:.0f} | {up} | "
              f"{r['load_min']:.1f}-{r['load_max']:.1f} |")
    return rows


# ----------------------------------------------------------------------------
def numerics(cases: list[dict[str, Any]], epochs: int) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        fits = {}
        for impl, tag in (("fused", "fused"), ("reference", "reference"), ("fused", "fused again")):
            set_impl(impl)
            model, _ = short_fit(case, epochs)
            fits[tag] = (model, model.predict(case["all"]))
        a, b, c = fits["fused"], fits["reference"], fits["fused again"]
        la = np.array([r.valid_loss for r in a[0].history])
        lb = np.array([r.valid_loss for r in b[0].history])
        scale = float(np.max(np.abs(b[1])))
        row = {"case": case["name"], "epochs": epochs,
               "max_abs_rate_diff": float(np.max(np.abs(a[1] - b[1]))),
               "rate_scale_max_abs": scale,
               "max_rel_rate_diff": float(np.max(np.abs(a[1] - b[1]))) / scale,
               "max_abs_valid_loss_diff": float(np.max(np.abs(la - lb))),
               "valid_loss_fused_last": float(la[-1]), "valid_loss_reference_last": float(lb[-1]),
               "first_epoch_loss_equal": bool(la[0] == lb[0]),
               "fused_repeatable": bool(np.array_equal(a[1], c[1]))}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def quality(cases: list[dict[str, Any]], impls: list[str], device: str) -> list[dict[str, Any]]:
    import napari_sbtt as ns
    from napari_sbtt.demo import score_against_truth

    rows = []
    for case in cases:
        for impl in impls:
            set_impl(impl)
            l0 = load()
            t0 = time.perf_counter()
            if case["name"] == "calcium":
                sim = ns.simulate("default", seed=0)
                res = ns.run_on_stack(sim.movie, sim.labels, sim.pattern,
                                      config={"seed": 0, "device": device,
                                              "indicator": sim.config.indicator})
                truth = sim.truth.rates[:, np.asarray(res.roi_ids) - 1]
                score = score_against_truth(res.rates, truth, res.grid.bin_width)["pearson_r_median"]
                model, metric = res.model, "pearson_r_median"
            else:
                from sklearn.metrics import r2_score

                from napari_sbtt.model import fit_trials

                model = fit_trials(case["train"], case["valid"], likelihood="poisson", seed=0,
                                   config=case["config"])
                pred = model.predict(case["valid"])
                n = pred.shape[-1]
                score = float(r2_score(case["valid_rates"].reshape(-1, n), pred.reshape(-1, n)))
                metric = "r2"
            row = {"case": case["name"], "impl": impl, metric: score,
                   "epochs": len(model.history), "best_epoch": model.best_epoch,
                   "stop_reason": model.stop_reason, "seconds": time.perf_counter() - t0,
                   "load_start": l0, "load_end": load()}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["calcium", "poisson"])
    ap.add_argument("--impl", nargs="+", choices=["both", *IMPLS], default=["both"],
                    help="both: fused and reference")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=4, help="epochs per throughput fit")
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--numerics", action="store_true", help="compare the numbers of a short fit")
    ap.add_argument("--numerics-epochs", type=int, default=10)
    ap.add_argument("--quality", action="store_true", help="the full default fits, scored")
    ap.add_argument("--gru-grid", action="store_true", help="one GRU alone, fused against nn.GRU")
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    impls = ["fused", "reference"] if args.impl == ["both"] else list(dict.fromkeys(args.impl))
    cases = [] if args.gru_grid else [CASES[c](args.device) for c in args.cases]
    command = "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"machine: {machine()}; load {load():.1f}; command: `{command}`", flush=True)
    if args.gru_grid:
        import torch

        torch.set_num_threads(1)
        rows = gru_grid(max(1, args.repeats))
    elif args.numerics:
        rows = numerics(cases, args.numerics_epochs)
    elif args.quality:
        rows = quality(cases, impls, args.device)
    else:
        rows = throughput(cases, impls, args.repeats, args.epochs)
    if args.out is not None:
        args.out.write_text(json.dumps({"machine": machine(), "command": command, "rows": rows},
                                       indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
