"""End-to-end demo on built-in synthetic data: simulate, fit, infer, score, plot.

``napari-sbtt demo --out DIR`` writes

- ``DIR/recording/``: the simulated movie, ROIs, scan pattern and ground truth,
- ``DIR/result/``: the SBTT result (rates, observations, model checkpoint),
- ``DIR/metrics.json``: SBTT and the OASIS baseline against the true rates,
- ``DIR/demo.png``: true vs inferred activity for a few ROIs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .core.atomic import OutputExistsError, atomic_write, atomic_write_text

__all__ = ["run_demo", "score_against_truth"]

#: smoothing of the CASCADE protocol (seconds)
SMOOTH_S = 0.05


def score_against_truth(
    rates: np.ndarray, truth_rates: np.ndarray, dt_s: float, *, sigma_s: float = SMOOTH_S
) -> dict[str, Any]:
    """Pearson r per ROI after Gaussian smoothing of both (CASCADE protocol), and its median.

    rates, truth_rates: (T_fine, N) on the same grid; dt_s: bin width in seconds.
    """
    from .core.metrics import median_over_rois, pearson_r

    r = pearson_r(truth_rates, rates, sigma_s=sigma_s, dt_s=dt_s)
    return {"pearson_r_median": median_over_rois(r), "pearson_r_per_roi": np.asarray(r).tolist()}


def _figure(path: Path, times: np.ndarray, truth: np.ndarray, ours: np.ndarray,
            obs: np.ndarray, base: np.ndarray | None, rois: list[int], seconds: float) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    sel = times <= times[0] + seconds
    fig, axes = plt.subplots(len(rois), 1, figsize=(10, 1.8 * len(rois)), sharex=True)
    axes = np.atleast_1d(axes)

    def unit(x: np.ndarray) -> np.ndarray:
        x = x - np.nanmin(x)
        top = np.nanmax(x)
        return x / top if top > 0 else x

    for ax, i in zip(axes, rois, strict=True):
        t = times[sel]
        ax.plot(t, unit(truth[sel, i]), color="k", lw=1.2, label="true rate")
        ax.plot(t, unit(ours[sel, i]), color="tab:red", lw=1.0, label="SBTT")
        if base is not None:
            ax.plot(t, unit(base[sel, i]), color="tab:blue", lw=0.8, alpha=0.7, label="OASIS baseline")
        o = obs[sel, i]
        m = np.isfinite(o)
        ax.plot(t[m], unit(o)[m] if m.any() else o[m], ".", color="tab:green", ms=3, label="samples (dF/F)")
        ax.set_ylabel(f"ROI {i + 1}")
        ax.set_yticks([])
    axes[0].legend(loc="upper right", ncol=4, fontsize=8, frameon=False)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle("napari-sbtt demo: true vs inferred activity (each trace scaled to 0..1)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), overwrite=True)
    plt.close(fig)


def run_demo(
    out: Path,
    *,
    preset: str = "default",
    seed: int | None = None,
    config: dict[str, Any] | None = None,
    progress: Callable[[Any], Any] | None = None,
    overwrite: bool = False,
) -> str:
    """Simulate the ``preset`` recording, fit SBTT, score it and the OASIS baseline; return a summary line."""
    from .api import run_on_stack
    from .core.baselines import oasis_available, oasis_rates
    from .core.synth import simulate

    seed = 0 if seed is None else int(seed)
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; choose another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    sim = simulate(preset, seed=seed)
    sim.save(out / "recording", overwrite=overwrite)
    cfg = {"seed": seed, "indicator": sim.config.indicator}
    cfg.update(config or {})
    result = run_on_stack(sim.movie, sim.labels, sim.pattern, config=cfg, progress=progress)
    result.save(out / "result", overwrite=overwrite)

    truth = sim.truth.rates[:, np.asarray(result.roi_ids) - 1]
    dt = result.grid.bin_width
    ours = score_against_truth(result.rates, truth, dt)
    metrics: dict[str, Any] = {
        "preset": preset,
        "seed": seed,
        "sbtt": ours,
        "run": {k: v for k, v in result.metrics.items() if not k.endswith("_per_roi")},
        "seconds_total": None,
    }
    base = None
    if oasis_available():
        base = oasis_rates(result.observations, result.times)
        metrics["oasis"] = score_against_truth(base, truth, dt)
    metrics["seconds_total"] = time.perf_counter() - t0
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1), overwrite=True)
    order = np.argsort(-np.nanmean(truth, axis=0))
    rois = sorted(int(i) for i in order[: min(4, truth.shape[1])])
    _figure(out / "demo.png", result.times, truth, result.rates, result.observations, base, rois, 20.0)

    line = (
        f"demo {preset!r}: {result.n_rois} ROIs, {result.rates.shape[0]} bins of {dt * 1e3:.3g} ms, "
        f"{result.metrics['observed_share']:.0%} of ROI-bins observed; Pearson r vs true rates "
        f"(50 ms smoothing, median over ROIs): SBTT {ours['pearson_r_median']:.3f}"
    )
    if base is not None:
        line += f", OASIS {metrics['oasis']['pearson_r_median']:.3f}"
    line += f"; {metrics['seconds_total']:.0f} s -> {out}/"
    return line
