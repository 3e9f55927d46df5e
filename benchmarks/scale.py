"""Scale table (issue 13, item 3): ROIs x minutes x scan -> extraction, fit and inference time,
epochs, peak memory, and how good the result is (SBTT and OASIS r against the simulated truth).

Each row is one synthetic recording written to disk as a user would have it (a uint16 TIFF
movie, a labels TIFF and a ``scan.json``) and run through the library's public run path with its
defaults, as ``napari-sbtt run movie.tif --rois rois.tif --scan scan.json`` runs it:
:func:`napari_sbtt.load_recording` and the two halves of :func:`napari_sbtt.recording.run_recording`
(``recording_observations``: extraction; ``run_on_observations``: fit, inference and the held-out
comparison), ``RunConfig()`` plus only ``--max-seconds`` / ``--indicator`` when given.

Recording (:func:`write_recording`, streamed to disk a block of sweeps at a time, so its size is
not limited by memory): N disk ROIs (radius 3.2 px, ~32 px) on a grid of 8 x 8 px cells;
rates from a shared Lorenz latent read out per ROI (as ``core.synth``'s defaults: 2 Hz baseline,
gain 1, capped at 30 Hz), Poisson spikes, GCaMP6f calcium (``core.indicators``); each pixel
``F0 (1 + dF/F)`` at its row's acquisition time plus Gaussian noise giving the ROI mean a CASCADE
noise level nu = 2 at 30 Hz (the family's convention: the noise of one 30 Hz frame per sample).
Scans (``ScanPattern``): ``full`` - a full raster at 30 Hz; ``strips4`` - 4 sequential strips,
one per 30 Hz sweep, so each ROI is seen at 7.5 Hz (a 4-strip line scan). Unacquired rows are 0.
The truth (rates on the run's fine grid) goes to ``rates.npy``.

Score (the family's, ``_common.median_r``): Pearson r against the true rates after 50 ms
smoothing, median over ROIs, for SBTT's rates (what ``estimate="auto"`` returned) and for OASIS
(``core.baselines.oasis_rates``) on the same samples.

Each row runs in a fresh process, so "peak RSS" is that row's: the process's ``ru_maxrss`` right
after the run (before the truth is loaded for scoring; it counts the movie's memory-mapped file
pages while they are resident), and "anon" the peak of its ``RssAnon`` (sampled every 50 ms
during the run: the memory the run itself holds); the writing of the movie runs in another
process. The load average is taken before and after the row.

    python benchmarks/scale.py --out results/scale                       # the issue's rows
    python benchmarks/scale.py --out results/scale --rows 50x5:full 200x10:strips4
    python benchmarks/scale.py --out results/scale --max-seconds 300     # cap every fit at 300 s
    python benchmarks/scale.py --quick --out /tmp/scale_quick            # 2 tiny rows, seconds

A rerun with the same ``--out`` skips the rows (with the same settings) already in OUT.json,
which is rewritten after every row (a failed row runs again). Movies go to ``--work`` (default: ``scale_movies`` in the temporary folder, outside the tree) and
are deleted after their row unless ``--keep``; an existing complete movie folder is reused.
``benchmarks/scale_memory.py`` is the older, narrower measurement (synthetic observations, no
movie, 1 epoch: the data path's memory alone).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    AnonPeak,
    estimate_scores,
    load_avg,
    machine,
    median_r,
    peak_rss_mb,
    resumed_rows,
    write_rows,
)

RATE_HZ = 30.0  # sweeps per second, both scans
SCANS = {"full": 1, "strips4": 4}  # scan name -> strips (each ROI seen in one sweep of this many)
CELL_PX = 8  # ROI grid cell (px)
ROI_RADIUS = 3.2
NU = 2.0  # CASCADE noise level of an ROI mean at 30 Hz
F0 = 1000.0  # resting ROI pixel, counts (log-normal spread 0.3 across ROIs)
BACKGROUND, BACKGROUND_SD = 300.0, 30.0
INDICATOR = "GCaMP6f"
SWEEP_FRACTION = 0.8  # share of a sweep spent on lines (the rest is flyback)
BLOCK_SWEEPS = 256
DEFAULT_ROWS = ("50x5:full", "200x10:full", "200x10:strips4", "200x30:strips4", "500x30:full")
QUICK_ROWS = ("10x0.25:full", "10x0.25:strips4")
FILES = ("movie.tif", "rois.tif", "scan.json", "rates.npy", "done.json")


@dataclass(frozen=True)
class Row:
    """One recording of the table: ROIs, minutes, scan (a key of SCANS), seed."""

    rois: int
    minutes: float
    scan: str
    seed: int = 0

    @classmethod
    def parse(cls, spec: str, seed: int = 0) -> "Row":
        """``"500x30:full"`` -> Row(500, 30.0, "full")."""
        try:
            size, scan = spec.split(":")
            n, m = size.lower().split("x")
            row = cls(int(n), float(m), scan, seed)
        except ValueError:
            raise ValueError(f"row {spec!r}: write ROISxMINUTES:SCAN, e.g. 500x30:full or 200x30:strips4") from None
        if row.rois < 1 or not (math.isfinite(row.minutes) and row.minutes > 0) or scan not in SCANS:
            raise ValueError(f"row {spec!r}: ROIs >= 1, minutes > 0 and a scan of {sorted(SCANS)}")
        return row

    @property
    def name(self) -> str:
        return f"{self.rois}x{self.minutes:g}:{self.scan}"

    @property
    def n_sweeps(self) -> int:
        return int(round(self.minutes * 60 * RATE_HZ))


# ----------------------------------------------------------------------------- the recording
def layout(n_rois: int, strips: int) -> tuple[np.ndarray, tuple[int, int]]:
    """ROI labels (Y, X) int32 (0 background, 1..N) on a grid of CELL_PX cells; the cell rows are a
    multiple of ``strips`` so that every ROI lies inside one strip."""
    cols = int(math.ceil(math.sqrt(n_rois)))
    rows = int(math.ceil(n_rois / cols / strips) * strips)
    Y, X = rows * CELL_PX, cols * CELL_PX
    c = (CELL_PX - 1) / 2
    yy, xx = np.mgrid[0:CELL_PX, 0:CELL_PX]
    disk = (yy - c) ** 2 + (xx - c) ** 2 <= ROI_RADIUS**2
    labels = np.zeros((Y, X), np.int32)
    for n in range(n_rois):
        r, k = divmod(n, cols)
        labels[r * CELL_PX:(r + 1) * CELL_PX, k * CELL_PX:(k + 1) * CELL_PX][disk] = n + 1
    return labels, (Y, X)


def scan_pattern(row: Row, n_rows: int) -> Any:
    """The row's ScanPattern: a 30 Hz full raster, or 4 sequential strips, one per 30 Hz sweep."""
    from napari_sbtt.core.scan import ScanPattern

    strips = SCANS[row.scan]
    period = 1.0 / RATE_HZ
    line = SWEEP_FRACTION * period / math.ceil(n_rows / strips)
    common = dict(flyback=(1 - SWEEP_FRACTION) * period, frame_period=period)
    if strips == 1:
        return ScanPattern.full_raster(n_rows, row.n_sweeps, line, **common)
    return ScanPattern.strips(n_rows, row.n_sweeps, line, strips, order="sequential", **common)


def true_rates(n_rois: int, n_bins: int, dt: float, rng: np.random.Generator) -> np.ndarray:
    """Rates (n_bins, N) Hz: a standardised Lorenz latent (one model-time unit per second, RK4
    sub-steps <= 0.01) read out by a random unit vector per ROI, 2 Hz x exp(projection), <= 30 Hz."""
    from napari_sbtt.core.dynamics import lorenz_trajectories, standardize

    n_sub = max(1, math.ceil(dt / 0.01 - 1e-9))
    z = standardize(lorenz_trajectories(1, n_bins * n_sub, dt=dt / n_sub, rng=rng)[0][n_sub - 1::n_sub])
    readout = rng.standard_normal((z.shape[1], n_rois))
    readout /= np.linalg.norm(readout, axis=0, keepdims=True)
    return np.minimum(2.0 * np.exp(standardize(z @ readout)), 30.0)


def write_recording(row: Row, folder: Path, factor: int) -> dict[str, Any]:
    """Write the row's recording into ``folder`` (see the module docstring); ``factor``: the run's
    fine-grid bins per sweep (the truth is stored on that grid). Returns sizes and seconds."""
    import tifffile

    from napari_sbtt.core.indicators import calcium_from_spikes
    from napari_sbtt.core.metrics import noise_std_for_level

    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([row.seed, 13, row.rois, row.n_sweeps, SCANS[row.scan]]))
    labels, (Y, X) = layout(row.rois, SCANS[row.scan])
    pattern = scan_pattern(row, Y)
    grid = pattern.fine_grid(factor)
    dt = grid.bin_width
    rates = true_rates(row.rois, grid.n_bins, dt, rng)
    calcium = calcium_from_spikes(rng.poisson(rates * dt), dt, INDICATOR).astype(np.float32)
    np.save(folder / "rates.npy", rates.astype(np.float32))
    del rates

    py, px = np.nonzero(labels)
    roi = labels[py, px] - 1
    n_pix = np.bincount(roi, minlength=row.rois)
    f0 = F0 * np.exp(0.3 * rng.standard_normal(row.rois) - 0.045)
    sd_pix = (noise_std_for_level(NU, RATE_HZ) * np.sqrt(n_pix) * f0)[roi].astype(np.float32)
    f0_pix = f0[roi].astype(np.float32)
    times = pattern.row_times()  # (T, Y) s, NaN where not acquired
    acquired = np.isfinite(times)
    bins = np.maximum(grid.index(times), 0)  # -1 (not acquired) -> any bin: those rows are 0
    path = folder / "movie.tif"
    movie = tifffile.memmap(path, shape=(row.n_sweeps, Y, X), dtype=np.uint16, photometric="minisblack",
                            bigtiff=row.n_sweeps * Y * X * 2 > 2**31)
    for s in range(0, row.n_sweeps, BLOCK_SWEEPS):
        e = min(row.n_sweeps, s + BLOCK_SWEEPS)
        block = BACKGROUND + BACKGROUND_SD * rng.standard_normal((e - s, Y, X), dtype=np.float32)
        dff = calcium[bins[s:e][:, py], roi]  # (sweeps, ROI pixels) at each row's time
        block[:, py, px] = f0_pix * (1 + dff) + sd_pix * rng.standard_normal(dff.shape, dtype=np.float32)
        block[~acquired[s:e]] = 0
        movie[s:e] = np.clip(np.rint(block), 0, 65535)
    movie.flush()
    del movie
    tifffile.imwrite(folder / "rois.tif", labels, photometric="minisblack")
    pattern.to_json(folder / "scan.json", overwrite=True)
    info = {"field": [Y, X], "sweeps": row.n_sweeps, "movie_GB": round(path.stat().st_size / 1e9, 2),
            "roi_pixels_median": int(np.median(n_pix)), "seconds_write": round(time.perf_counter() - t0, 1)}
    (folder / "done.json").write_text(json.dumps(info))
    return info


# ----------------------------------------------------------------------------- one measured run
def measure(folder: str, run: dict[str, Any]) -> dict[str, Any]:
    """The library's run on the recording in ``folder`` (in a fresh process), then the scores."""
    from napari_sbtt.api import RunConfig, run_on_observations
    from napari_sbtt.core.baselines import oasis_rates
    from napari_sbtt.recording import load_recording, recording_observations

    d = Path(folder)
    cfg = RunConfig.from_dict(run)
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    with AnonPeak(0.05) as anon:
        rec = load_recording(d / "movie.tif", rois=d / "rois.tif", scan=d / "scan.json")
        obs, scan, fp = recording_observations(rec, config=cfg)
        t_extract = time.perf_counter() - t0
        res = run_on_observations(obs, config=cfg, scan=scan, frame_period=fp, seconds_extract=t_extract)
        t_run = time.perf_counter() - t0
        rec.close()
    rss = peak_rss_mb()
    m = res.metrics
    truth = np.load(d / "rates.npy", mmap_mode="r")
    if truth.shape[0] != obs.n_bins:
        raise RuntimeError(f"truth has {truth.shape[0]} bins, the observations {obs.n_bins}: grids differ")
    truth = np.asarray(truth[:, obs.roi_ids - 1], dtype=np.float64)
    dt = obs.grid.bin_width
    t1 = time.perf_counter()
    base = oasis_rates(obs.values, obs.times)
    t_oasis = time.perf_counter() - t1
    cap = cfg.max_seconds
    return {
        "rois": int(obs.values.shape[1]), "bins": int(obs.n_bins), "bin_ms": dt * 1e3,
        "observed_share": float(np.isfinite(obs.values).mean()),
        "seconds_extract": t_extract, "seconds_fit": m["seconds_fit"], "seconds_infer": m["seconds_infer"],
        "seconds_run": t_run,
        "seconds_rest": t_run - t_extract - m["seconds_fit"] - m["seconds_infer"],  # windows, held-out step
        "epochs": m["epochs_run"], "best_epoch": m["best_epoch"],
        "fit_capped": bool(cap is not None and m["seconds_fit"] >= 0.98 * cap),
        "peak_rss_MB": rss, "peak_anon_MB": anon.peak_mb, "rss_MB_before_run": rss0,
        "sbtt_r": median_r(truth, res.rates, dt), "oasis_r": median_r(truth, base, dt),
        "seconds_oasis": t_oasis, "estimate": m.get("estimate"),
        "heldout_verdict": (m.get("heldout") or {}).get("verdict"),
        "heldout": m.get("heldout"), **estimate_scores(res, obs.values, truth, dt, cfg.inference_shifts),
    }


def in_fresh_process(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a new (spawned) process, so its peak memory is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as ex:
        return ex.submit(fn, *args).result()


# ----------------------------------------------------------------------------- table
HEADER = ("| ROIs | min | scan | movie GB | extraction s | fit s | epochs (best) | inference s | other s | "
          "peak RSS / anon MB | SBTT r | OASIS r | margin | estimate | load before / after |")
N_COLS = 15


def markdown(r: dict[str, Any]) -> str:
    w = r["recording"]
    if r.get("failed"):
        return (f"| {r['row']['rois']} | {r['row']['minutes']:g} | {r['row']['scan']} | {w.get('movie_GB', '-')} | "
                f"failed: {r['failed'][:80]} |" + " - |" * 10 + f" {r['load_before']:.1f} / {r['load_after']:.1f} |")
    m = r["result"]
    cap = " (cap)" if m["fit_capped"] else ""
    return (f"| {m['rois']} | {r['row']['minutes']:g} | {r['row']['scan']} | {w['movie_GB']} | "
            f"{m['seconds_extract']:.1f} | {m['seconds_fit']:.0f}{cap} | {m['epochs']} ({m['best_epoch']}) | "
            f"{m['seconds_infer']:.1f} | {m['seconds_rest']:.0f} | {m['peak_rss_MB']:.0f} / {m['peak_anon_MB']:.0f} | {m['sbtt_r']:.3f} | "
            f"{m['oasis_r']:.3f} | {m['sbtt_r'] - m['oasis_r']:+.3f} | {m['estimate']} | "
            f"{r['load_before']:.1f} / {r['load_after']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", nargs="+", default=None, metavar="ROISxMIN:SCAN",
                   help=f"rows to run, scans {sorted(SCANS)} (default: {' '.join(DEFAULT_ROWS)})")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="cap of every fit in seconds (default: the library's, RunConfig().max_seconds)")
    p.add_argument("--indicator", default=None, help="name the indicator (default: none, as RunConfig())")
    p.add_argument("--seed", type=int, default=0, help="seed of the recordings")
    p.add_argument("--out", required=True, help="write OUT.json and OUT.md; a rerun skips rows already there")
    p.add_argument("--work", default=None,
                   help="folder for the movies (default: scale_movies in the temporary folder, e.g. /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the movies after their row")
    p.add_argument("--quick", action="store_true",
                   help=f"rows {' '.join(QUICK_ROWS)} with 3 epochs: a smoke test of seconds")
    a = p.parse_args(argv)
    run: dict[str, Any] = {}
    if a.max_seconds is not None:
        run["max_seconds"] = a.max_seconds
    if a.indicator is not None:
        run["indicator"] = a.indicator
    if a.quick:
        run.setdefault("epochs", 3)
    from napari_sbtt.api import RunConfig
    from napari_sbtt.core.baselines import oasis_available

    try:
        cfg = RunConfig.from_dict(run)
        rows = [Row.parse(s, a.seed) for s in (a.rows or (QUICK_ROWS if a.quick else DEFAULT_ROWS))]
    except ValueError as e:
        p.error(str(e))
    if not oasis_available():
        print("oasis-deconv is not installed (pip install napari-sbtt[baselines]); the table needs it")
        return 1
    out = Path(a.out)
    work = Path(a.work) if a.work else Path(tempfile.gettempdir()) / "scale_movies"
    key = json.dumps({"run": run}, sort_keys=True)
    rows_done = resumed_rows(out, key, HEADER, N_COLS)
    cmd = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    done = {r["row"]["name"] for r in rows_done if not r.get("failed")}
    for row in rows:
        if row.name in done:
            continue
        rows_done = [r for r in rows_done if r["row"]["name"] != row.name]  # a failed row runs again
        folder = work / f"{row.name.replace(':', '_')}_seed{row.seed}_factor{cfg.factor}"
        load_before = load_avg()
        if (folder / "done.json").exists():
            info = json.loads((folder / "done.json").read_text())
        else:
            info = in_fresh_process(write_recording, row, folder, cfg.factor)
        entry: dict[str, Any] = {"row": {**asdict(row), "name": row.name}, "recording": info,
                                 "load_before": load_before}
        try:
            entry["result"] = in_fresh_process(measure, str(folder), run)
        except Exception as e:  # noqa: BLE001 - a row that fails is a result too
            entry["failed"] = f"{type(e).__name__}: {e}"
        entry.update(load_after=load_avg(), key=key, run=run, config=cfg.to_dict(), command=cmd, machine=machine())
        entry["markdown"] = markdown(entry)
        print(entry["markdown"], flush=True)
        rows_done.append(entry)
        write_rows(out, rows_done, command=cmd, header=HEADER, n_cols=N_COLS,
                   footer=[f"Run settings: RunConfig({', '.join(f'{k}={v!r}' for k, v in run.items())}) "
                           "(library defaults otherwise); 'other s' = run - extraction - fit - inference "
                           "(training windows, deconvolution, held-out comparison with OASIS)."])
        if not a.keep and not entry.get("failed"):
            shutil.rmtree(folder, ignore_errors=True)
    if work.is_dir() and not any(work.iterdir()):
        work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
