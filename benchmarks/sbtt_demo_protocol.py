"""Protocol 1 of DESIGN.md: the SBTT demo's Lorenz spiking benchmark.

For each bandwidth b (neurons kept per bin out of 29), mask train AND valid inputs,
fit an SBTT model on the training trials (validation trials for early stopping),
and score R^2 (sklearn r2_score, uniform over neurons) of inferred vs true rates on
all validation neuron-bins, observed or not. Prints one markdown table row per b.

    python benchmarks/sbtt_demo_protocol.py --bandwidths 29 5 3 2 --seed 0 --out results.json

Dataset recipe: see napari_sbtt.core.lorenz_protocol. Timings are wall-clock on this
machine; other jobs on shared cores slow them down (the load average is recorded).

BENCHMARK NOTES (tuning record, 2-core shared machine, 1 torch thread)
- 1 thread beats 2 on a shared 2-core box: a 64-trial batch took 55 ms with 1 thread and
  190-770 ms with 2 threads while other jobs ran (spin-waiting threads).
- batch 64 vs 128 at lr 5e-3 (b=29): batch 64 converges faster per epoch (valid NLL 0.806 vs
  0.823 at epoch 20); lr 1e-2 / batch 128 jumped up at epoch 25 (unstable), R^2 0.73 after
  40 epochs. lr 5e-3 / batch 64, 80 epochs: R^2 0.931 (b=29); 100 epochs: R^2 0.526 (b=2).
- The fit is capped by max_seconds=105 (each fit < 2 min including data prep); under heavy
  contention (load ~5) that leaves ~40 epochs instead of ~80, which costs R^2 at b=29.
- Full run seed 0 (max_seconds 105, no warm-up): b=5 stalled after epoch 1 (R^2 0.086, early
  stopped at epoch 42). Added a 5-epoch linear learning-rate warm-up (SBTTConfig.lr_warmup_epochs);
  the same b=5 fit then trained normally: R^2 0.702 at the 105 s cap (59 epochs, still improving).
- Coordinated dropout 0.3 + a low-dimensional factor bottleneck (8) are what keep the sparse
  bandwidths (b <= 5) well above the demo, which had neither.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import r2_score

from napari_sbtt.core.lorenz_protocol import PUBLISHED_R2, make_lorenz_spiking, mask_bandwidth
from napari_sbtt.model import SBTTConfig, fit_trials

#: defaults chosen by the tuning runs recorded in the module's notes (BENCHMARK NOTES below)
DEFAULTS = dict(
    readin_size=64, encoder_size=64, generator_size=64, ic_size=64, factor_size=8,
    dropout=0.05, coordinated_dropout=0.3, sample_validation=0.1,
    learning_rate=5e-3, weight_decay=1e-4, batch_size=64,
    max_epochs=400, patience=40, lr_patience=10, max_seconds=105.0, num_threads=1,
)


def machine() -> str:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpu, load {load:.1f}"


def run(bandwidths: list[int], seed: int, overrides: dict) -> list[dict]:
    data = make_lorenz_spiking(seed=seed)
    cfg = SBTTConfig(**{**DEFAULTS, **overrides})
    rows = []
    print("| b | R² | published | Δ | seconds | epochs (best) | machine |")
    print("|---|---|---|---|---|---|---|")
    for b in bandwidths:
        train = mask_bandwidth(data.train_counts, b, seed + 100 + b)
        valid = mask_bandwidth(data.valid_counts, b, seed + 200 + b)
        t0 = time.perf_counter()
        model = fit_trials(train, valid, likelihood="poisson", config=cfg, seed=seed)
        seconds = time.perf_counter() - t0
        pred = model.predict(valid)
        n = data.valid_rates.shape[-1]
        r2 = float(r2_score(data.valid_rates.reshape(-1, n), pred.reshape(-1, n)))
        pub = PUBLISHED_R2.get(b, float("nan"))
        row = dict(bandwidth=b, r2=r2, published=pub, seconds=seconds, epochs=len(model.history),
                   best_epoch=model.best_epoch, stop_reason=model.stop_reason, machine=machine(),
                   seed=seed, config=cfg.to_dict())
        rows.append(row)
        print(f"| {b} | {r2:.3f} | {pub:.3f} | {r2 - pub:+.3f} | {seconds:.0f} | "
              f"{len(model.history)} ({model.best_epoch}) | {row['machine']} |", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bandwidths", type=int, nargs="+", default=[29, 25, 20, 15, 10, 5, 3, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write results (.json, or .md table rows)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override SBTTConfig fields, e.g. --set factor_size=3 learning_rate=0.01")
    args = ap.parse_args(argv)
    overrides = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        overrides[k] = json.loads(v) if v not in ("None",) else None
    rows = run(args.bandwidths, args.seed, overrides)
    if args.out is not None:
        if args.out.suffix == ".md":
            lines = [f"| {r['bandwidth']} | {r['r2']:.3f} | {r['published']:.3f} | {r['seconds']:.0f} | "
                     f"{r['epochs']} | {r['machine']} |" for r in rows]
            args.out.write_text("\n".join(lines) + "\n")
        else:
            args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
