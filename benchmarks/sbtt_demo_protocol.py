"""Evaluation protocol 1: the SBTT demo's Lorenz spiking benchmark (R^2 of inferred vs true rates
with b of 29 neurons observed per bin, against the demo's published numbers).

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
- (superseded claim) "coordinated dropout 0.3 + factor bottleneck 8 keep b <= 5 above the demo":
  measured below, coordinated dropout was the main brake on convergence speed.

Round 2 (the protocol-1 preset in DEFAULTS; b = 5 unless stated; 105 s cap; loads 3-7 from
other jobs, so epochs per fit varied 45-125; seed 0; R^2 on the validation rates):
- per-step cost is op-overhead bound (GRUs unrolled op by op on CPU): H=64 bs 64/128/256 =
  138/145/212 ms per step, H=32 bs 64/128/256 = 57/80/109 ms (1 thread, load ~3). Larger
  batches are nearly free per step, smaller GRUs are ~2x faster per epoch.
- cosine schedule to the time budget (new SBTTConfig.lr_schedule="cosine"), warm-up 5, lr 1e-2,
  batch 128: H=32 0.727 (84 ep) vs H=64 0.632 (51 ep); + factor_size 3: 0.746 (64 ep).
- batch 256 / lr 2e-2: 0.594 (too few updates). CD 0.5 + sample_validation 0: 0.703.
- coordinated dropout 0 (score every observed entry, ~3x more gradient signal per step):
  0.841 (65 ep) -- the lever that mattered; 240 s with CD 0.3 only reached 0.818.
  Same config: b=2 0.746, b=3 0.827, b=10 0.862, b=29 0.887 (44 ep, load 6) / 0.918 (70 ep).
- lr 2e-2 + factor 8 (H=32): b=5 0.708; at b=29 (60 fixed epochs) 0.904 vs 0.898 at lr 1e-2.
- H=16 everywhere (factor 8, lr 2e-2): b=29 0.919 in 60 epochs (86 s), but b=2 0.532 (best
  epoch 29 of 68); H=16 factor 3 lr 1e-2: b=5 0.706, b=2 0.676. Encoder 32 / generator 16:
  b=5 0.810 (123 ep); encoder 16 / generator 32: b=5 0.809, b=29 0.852. H=64 at b=29 (60
  fixed epochs): 0.855. dropout 0 + sample_validation 0 at b=29 (60 ep): 0.864 (worse).
- Not tried for lack of time: torch.compile (nn.GRU is not traced by dynamo by default and the
  compile would eat much of the 2-minute budget), 2 threads per fit (1 beat 2 in round 1).
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

from napari_sbtt.core.lorenz_protocol import (
    PUBLISHED_R2,
    LorenzSpikingDataset,
    make_lorenz_spiking,
    mask_bandwidth,
)
from napari_sbtt.model import SBTTConfig, fit_trials

#: Named preset for protocol 1 ("protocol-1 preset"); it differs from the library's SBTTConfig
#: defaults in the fields below (see the BENCHMARK NOTES for the measurements behind each):
#: smaller GRUs (32 units: ~2x more epochs per second on CPU and faster per-epoch convergence
#: than 64), a 3-d factor bottleneck (the Lorenz system has 3 latents), no coordinated dropout
#: (the IC-only generator cannot copy its input, and scoring every observed entry gives ~3x
#: more gradient signal per step), batch 128 at lr 1e-2 with a 5-epoch warm-up and a cosine
#: decay that ends at the 110 s time budget. One configuration for every bandwidth.
DEFAULTS = dict(
    readin_size=32, encoder_size=32, generator_size=32, ic_size=32, factor_size=3,
    dropout=0.05, coordinated_dropout=0.0, sample_validation=0.1,
    learning_rate=1e-2, weight_decay=1e-4, batch_size=128,
    lr_schedule="cosine", lr_warmup_epochs=5, min_learning_rate=1e-4,
    max_epochs=400, patience=40, max_seconds=110.0, num_threads=1,
)


def load1() -> float:
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return float("nan")


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpu"


def protocol_inputs(data: LorenzSpikingDataset, bandwidth: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Protocol 1's (train, valid) inputs: ``bandwidth`` of the 29 neurons kept per bin, NaN
    elsewhere, masks drawn from the data set's ``seed`` (the same masks for every model scored)."""
    return (mask_bandwidth(data.train_counts, bandwidth, seed + 100 + bandwidth),
            mask_bandwidth(data.valid_counts, bandwidth, seed + 200 + bandwidth))


def protocol_r2(data: LorenzSpikingDataset, predicted: np.ndarray) -> float:
    """R^2 (sklearn, uniform over neurons) of ``predicted`` (n_valid, T, N) expected counts per
    bin against the validation trials' true rates, over every neuron-bin."""
    n = data.valid_rates.shape[-1]
    return float(r2_score(data.valid_rates.reshape(-1, n), np.asarray(predicted).reshape(-1, n)))


def run(bandwidths: list[int], seed: int, overrides: dict, *, preset: bool = False,
        fit_seed: int | None = None) -> list[dict]:
    fit_seed = seed if fit_seed is None else fit_seed
    data = make_lorenz_spiking(seed=seed)
    base = SBTTConfig(**DEFAULTS) if preset else SBTTConfig.default_for("poisson")
    cfg = base.replace(**overrides) if overrides else base
    rows = []
    print("| b | R² | published | Δ | seconds | epochs (best) per network | load (start/end) | machine |")
    print("|---|---|---|---|---|---|---|---|")
    for b in bandwidths:
        train, valid = protocol_inputs(data, b, seed)
        load_start = load1()
        t0 = time.perf_counter()
        model = fit_trials(train, valid, likelihood="poisson", seed=fit_seed,
                           config=cfg if (preset or overrides) else None)  # None: the defaults
        seconds = time.perf_counter() - t0
        r2 = protocol_r2(data, model.predict(valid))
        pub = PUBLISHED_R2.get(b, float("nan"))
        row = dict(bandwidth=b, r2=r2, published=pub, seconds=seconds, epochs=len(model.history),
                   best_epoch=model.best_epoch, stop_reason=model.stop_reason, machine=machine(),
                   load_start=load_start, load_end=load1(), seed=seed, fit_seed=fit_seed,
                   config=cfg.to_dict(), model_config=model.config.to_dict(),
                   ensemble=model.metadata.get("ensemble"))
        rows.append(row)
        epochs = (f"{len(model.history)} ({model.best_epoch})" if row["ensemble"] is None else " + ".join(
            f"{n} ({e})" for n, e in zip(row["ensemble"]["member_epochs"], row["ensemble"]["member_best_epochs"], strict=True)))
        print(f"| {b} | {r2:.3f} | {pub:.3f} | {r2 - pub:+.3f} | {seconds:.0f} | {epochs} | {load_start:.1f}/{row['load_end']:.1f} | "
              f"{row['machine']} |", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bandwidths", type=int, nargs="+", default=[29, 25, 20, 15, 10, 5, 3, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fit-seed", type=int, default=None,
                    help="the fit's own seed (weights, batches); default: --seed (the data set's)")
    ap.add_argument("--out", type=Path, default=None, help="write results (.json, or .md table rows)")
    ap.add_argument("--preset", action="store_true",
                    help="the old benchmark-only preset (110 s) instead of fit_trials' defaults")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override SBTTConfig fields, e.g. --set factor_size=3 learning_rate=0.01")
    args = ap.parse_args(argv)
    overrides = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        overrides[k] = json.loads(v) if v not in ("None",) else None
    rows = run(args.bandwidths, args.seed, overrides, preset=args.preset, fit_seed=args.fit_seed)
    if args.out is not None:
        if args.out.suffix == ".md":
            lines = [f"| {r['bandwidth']} | {r['r2']:.3f} | {r['published']:.3f} | "
                     f"{r['r2'] - r['published']:+.3f} | {r['seconds']:.0f} | {r['epochs']} ({r['best_epoch']}) | "
                     f"{r['load_start']:.1f}/{r['load_end']:.1f} | {r['machine']} |" for r in rows]
            args.out.write_text("\n".join(lines) + "\n")
        else:
            args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
