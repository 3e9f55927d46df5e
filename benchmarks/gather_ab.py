"""A/B of the Trainer's two ways of making batches (model/training.py GATHER_ONCE_BYTES): small
data made into tensors once and indexed, against a batch at a time from the WindowStore, on the
protocol-1 Lorenz spikes (seed 1), 15 epochs each, alternating; same numbers either way.

    python benchmarks/gather_ab.py
"""
import os
import time

import napari_sbtt.model.training as tr
from napari_sbtt.core.lorenz_protocol import make_lorenz_spiking
from napari_sbtt.model import fit_trials
from napari_sbtt.model.config import SBTTConfig

d = make_lorenz_spiking(seed=1)
train, valid = d.train_counts.astype(float), d.valid_counts.astype(float)
cfg = SBTTConfig.default_for("poisson").replace(max_epochs=15, max_seconds=None, patience=1000)
res = {}
for _rep in range(2):
    for name, lim in (("once", 64 * 2**20), ("per batch", 0)):
        tr.GATHER_ONCE_BYTES = lim
        t = time.perf_counter()
        m = fit_trials(train, valid, likelihood="poisson", seed=0, config=cfg)
        dt = time.perf_counter() - t
        res.setdefault(name, []).append(dt)
        print(name, round(dt, 2), "s for 15 epochs; best valid", round(m.best_valid_loss, 6), "load", os.getloadavg()[0], flush=True)
print({k: round(min(v) / 15, 3) for k, v in res.items()}, "s per epoch (min of 2)")
