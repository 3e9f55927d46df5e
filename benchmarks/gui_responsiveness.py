"""How responsive does napari stay while the Train widget fits a model on the CPU?

A QTimer ticks every 10 ms on the GUI thread and records how late each tick is (the event
loop's delay). We measure while idle, then during a CPU fit started from the Train / Load
widget exactly as a user would (Train button), until the run ends: the first fit of the
session and ``--repeats`` later fits. The goal is a worst delay under 100 ms: the widget
extracts the samples in a worker thread and fits in a child process (``napari_sbtt.isolated``),
and the GUI drains the reports every 100 ms. ``--in-process`` fits in the worker thread instead
(the design before the child process; its first fit also imports torch in the viewer).

Run (needs a display; under a headless machine use xvfb-run):

    xvfb-run -a python benchmarks/gui_responsiveness.py --epochs 20
    NAPARI_SBTT_SYNC=1 xvfb-run -a python benchmarks/gui_responsiveness.py   # the frozen baseline

Experiments: ``--no-preload`` imports torch without first loading its libraries with the GIL
released (the behaviour before the preload); ``--prewarm`` imports torch in a background
thread once the widget is shown, before the first fit, and measures the delay meanwhile;
``--switch-interval`` sets ``sys.setswitchinterval`` for the fits; ``--threads`` sets the
widget's CPU threads. The widget settings are kept in a temporary store, never the user's.

Prints a JSON summary (ms) with the load average (1, 5, 15 min) at the start and end of each
phase, and writes it to --out when given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _data(preset: str | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Any, str]:
    """(movie, labels, pattern, description): synth's preset when available, else a built-in scan."""
    if preset:
        try:
            from napari_sbtt.core.synth import simulate

            sim = simulate(preset, seed=seed)
            return np.asarray(sim.movie), np.asarray(sim.labels), sim.pattern, f"synth preset {preset!r}"
        except ImportError:
            pass
    from napari_sbtt.core.scan import ScanPattern

    rng = np.random.default_rng(seed)
    n_t, size, n_side, n_strips, fp = 600, 64, 5, 4, 0.05
    labels = np.zeros((size, size), np.int32)
    step = size // n_side
    k = 0
    for i in range(n_side):
        for j in range(n_side):
            k += 1
            labels[i * step + 2 : (i + 1) * step - 2, j * step + 2 : (j + 1) * step - 2] = k
    pattern = ScanPattern.strips(size, n_t, fp / (size // n_strips), n_strips, frame_period=fp)
    t = np.arange(n_t) * fp
    latent = np.stack([np.sin(2 * np.pi * 0.4 * t), np.cos(2 * np.pi * 0.23 * t),
                       np.sin(2 * np.pi * 0.11 * t + 1)], axis=1)
    act = np.exp(latent @ rng.normal(size=(3, k)) * 0.7).astype(np.float32)
    movie = (0.1 + rng.normal(0, 0.05, (n_t, size, size))).astype(np.float32)
    for n in range(k):
        movie[:, labels == n + 1] += act[:, n : n + 1]
    movie[~pattern.frame_mask()] = np.nan
    return movie, labels, pattern, f"built-in strips scan ({n_t} frames, {size}x{size}, {k} ROIs)"


class LatencyProbe:
    """Records how late a 10 ms QTimer fires (ms).

    With ``stall_log``, every thread's Python stack is written there whenever the GUI thread
    misses its tick by more than ``stall_s`` (``faulthandler`` writes it from a C thread, so a
    thread that holds the GIL in a long C call is caught in the act).
    """

    def __init__(self, interval_ms: int = 10, stall_log: Any = None, stall_s: float = 0.15) -> None:
        from qtpy.QtCore import QTimer

        self.stall_log, self.stall_s = stall_log, stall_s
        self.interval = interval_ms / 1e3
        self.samples: list[float] = []
        self.times: list[float] = []
        self._last = self._t0 = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def _arm(self) -> None:
        if self.stall_log is not None:
            import faulthandler

            faulthandler.dump_traceback_later(self.stall_s, repeat=False, file=self.stall_log)

    def _tick(self) -> None:
        self._arm()
        now = time.perf_counter()
        self.samples.append(max(0.0, (now - self._last - self.interval) * 1e3))
        self.times.append(now - self._t0)
        self._last = now

    def start(self) -> None:
        self.samples.clear()
        self.times.clear()
        self._last = self._t0 = time.perf_counter()
        self.timer.start()
        self._arm()

    def stop(self, split_at: float | None = None) -> dict[str, Any]:
        """Summary of the delays; with ``split_at`` (seconds since start) also the worst delay
        before and from that moment (the fit vs showing its result)."""
        self.timer.stop()
        if self.stall_log is not None:
            import faulthandler

            faulthandler.cancel_dump_traceback_later()
        s = np.asarray(self.samples) if self.samples else np.zeros(1)
        worst = np.argsort(s)[::-1][:5]
        out = {"ticks": int(s.size), "max_ms": float(s.max()), "p99_ms": float(np.percentile(s, 99)),
               "median_ms": float(np.median(s)),
               "worst_at_s": [round(self.times[i], 2) for i in worst if i < len(self.times)],
               "load_average_end": [round(v, 2) for v in os.getloadavg()]}
        if split_at is not None and self.samples:
            t = np.asarray(self.times)
            before, after = s[t < split_at], s[t >= split_at]
            out["result_at_s"] = round(split_at, 2)
            out["max_ms_during_fit"] = float(before.max()) if before.size else None
            out["max_ms_showing_result"] = float(after.max()) if after.size else None
        return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    ap.add_argument("--likelihood", default="gaussian")
    ap.add_argument("--preset", default="default", help="synth preset (falls back to a built-in scan)")
    ap.add_argument("--repeats", type=int, default=3, help="later fits (after the first one)")
    ap.add_argument("--threads", type=int, default=-1,
                    help="the widget's CPU threads (-1 = the run default, 1; 0 = all physical cores)")
    ap.add_argument("--switch-interval", type=float, default=None,
                    help="sys.setswitchinterval during the fits (Python's default: 0.005 s)")
    ap.add_argument("--prewarm", action="store_true",
                    help="import torch in a background thread before the first fit")
    ap.add_argument("--in-process", action="store_true",
                    help="fit in the viewer's process (a worker thread), not in a child process")
    ap.add_argument("--nice", type=int, default=None,
                    help="CPU priority drop of the fitting child process (default: the widget's)")
    ap.add_argument("--burn", type=int, default=0,
                    help="start this many busy-loop processes (nice 0) for the whole run: a "
                         "machine busy with other work")
    ap.add_argument("--no-preload", action="store_true",
                    help="do not preload torch's libraries with the GIL released")
    ap.add_argument("--stall-log", type=Path, default=None,
                    help="diagnostic: write every thread's stack here when the GUI thread stalls "
                         "> 150 ms (faulthandler reads the stacks without the GIL and can, rarely, "
                         "crash the process)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    import tempfile

    if args.in_process:
        os.environ["NAPARI_SBTT_INPROCESS"] = "1"
    import subprocess

    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burn)]
    store = Path(tempfile.mkdtemp(prefix="napari-sbtt-bench-")) / "settings.ini"
    os.environ["NAPARI_SBTT_SETTINGS"] = str(store)  # never read or change the user's values

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_sbtt.plugin import _torch_preload
    from napari_sbtt.plugin._layers import FRAME_PERIOD_KEY, LINE_PERIOD_KEY, SCAN_KEY
    from napari_sbtt.plugin._state import TrainState

    if args.no_preload:
        _torch_preload.preload_torch_libraries = lambda: []  # type: ignore[assignment]
    from napari_sbtt.plugin import _train_widget

    if args.nice is not None:
        _train_widget.CHILD_NICE = args.nice

    movie, labels, pattern, what = _data(args.preset)
    viewer = napari.Viewer(show=True)
    viewer.add_image(movie, name="movie", metadata={SCAN_KEY: pattern.to_dict(),
                                                    FRAME_PERIOD_KEY: pattern.frame_period,
                                                    LINE_PERIOD_KEY: pattern.line_period})
    viewer.add_labels(labels, name="ROIs")
    _, train = viewer.window.add_plugin_dock_widget("napari-sbtt", "Train / Load")
    train.size.value, train.epochs.value = args.size, args.epochs
    train.likelihood.value, train.device.value, train.factor.value = args.likelihood, "cpu", 2
    train.threads.value = args.threads
    app = QApplication.instance()
    from napari_sbtt.model.config import default_num_threads
    from napari_sbtt.plugin._run_fields import field_value

    chosen = field_value("threads", train.threads)
    train_threads = 1 if chosen is None else (chosen or default_num_threads())

    def spin(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.001)

    stall_log = open(args.stall_log, "w") if args.stall_log is not None else None  # noqa: SIM115
    probe = LatencyProbe(stall_log=stall_log)
    spin(1.0)
    load_at_start = [round(v, 2) for v in os.getloadavg()]
    probe.start()
    spin(2.0)
    idle = probe.stop()

    prewarm: dict[str, Any] | None = None
    if args.prewarm:
        import threading

        def warm_up() -> None:
            _torch_preload.preload_torch_libraries()
            import torch  # noqa: F401

        probe.start()
        t0 = time.perf_counter()
        thread = threading.Thread(target=warm_up, daemon=True)
        thread.start()
        while thread.is_alive():
            app.processEvents()
            time.sleep(0.001)
        prewarm = probe.stop()
        prewarm["seconds"] = round(time.perf_counter() - t0, 2)
        spin(0.5)

    default_interval = sys.getswitchinterval()

    def fit() -> dict[str, Any]:
        if args.switch_interval is not None:
            sys.setswitchinterval(args.switch_interval)
        probe.start()
        t0 = time.perf_counter()
        arrived: list[float] = []
        on_done = type(train)._on_done.__get__(train)

        def record_result(result: Any) -> None:  # the result reaches the GUI: layers come next
            arrived.append(time.perf_counter() - t0)
            on_done(result)

        train._on_done = record_result
        train.train_button.clicked()  # the user's click
        while train.state.state is TrainState.TRAINING or train.job is not None:
            app.processEvents()
            time.sleep(0.001)
        spin(0.5)  # a tick held up while the result layers were added fires only now
        out = probe.stop(split_at=arrived[0] if arrived else None)
        sys.setswitchinterval(default_interval)
        out["run_seconds"] = round(time.perf_counter() - t0, 2)
        out["state"] = train.state.state.value
        out["epochs_run"] = len(train.last_result.history) if train.last_result is not None else 0
        return out

    cold = fit()  # the first run of a session (in-process: its worker also imports torch)
    warm = []
    for _ in range(max(0, args.repeats)):
        spin(0.5)
        warm.append(fit())  # later runs: torch already imported
    worst = [w.get("max_ms_during_fit") or w["max_ms"] for w in warm]
    summary = {
        "data": what,
        "sync_mode": os.environ.get("NAPARI_SBTT_SYNC", "") == "1",
        "fit_in": "the viewer's process" if args.in_process else "a child process",
        "child_nice": None if args.in_process else _train_widget.CHILD_NICE,
        "busy_loops": args.burn,
        "model_size": args.size,
        "torch_threads": train_threads,
        "state": train.state.state.value,
        "message": train.message.text,
        "preload": not args.no_preload,
        "switch_interval_s": args.switch_interval or default_interval,
        "idle": idle,
        "prewarm_import_in_background": prewarm,
        "first_fit": cold,
        "later_fits": warm,
        "later_fits_median_max_ms_during_fit": float(np.median(worst)) if worst else None,
        "later_fits_median_run_s": float(np.median([w["run_seconds"] for w in warm])) if warm else None,
        "goal_max_ms": 100.0,
        "cpu_count": os.cpu_count(),
        "load_average_start": load_at_start,
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
    }
    viewer.close()
    for b in burners:
        b.kill()
    if stall_log is not None:
        stall_log.close()
    import shutil

    shutil.rmtree(store.parent, ignore_errors=True)
    text = json.dumps(summary, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return summary


if __name__ == "__main__":
    sys.exit(0 if main()["state"] in ("done", "stopped") else 1)
