"""Make docs/screenshot.png: the viewer with a sample, a model fitted from the Train tab, and its results.

Loads a sample through the plugin manifest (by default the "Super-resolution demo": the default
recording with its ground truth beside the movie), opens the tabbed SBTT widget, trains from the
Train / Load tab exactly as a user would (the widget's own settings unless options change them),
selects an ROI so that the trace panel shows its samples, inferred activity and ground truth, and
saves a screenshot of the whole window (canvas and docks).

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/make_screenshot.py
    xvfb-run -a python benchmarks/make_screenshot.py --epochs 2 --out /tmp/shot.png   # a quick check
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

#: the plugin's samples (napari.yaml sample_data keys)
SAMPLES = ("super_resolution_demo", "synthetic_line_scan")


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", default=SAMPLES[0], choices=SAMPLES,
                    help="the plugin sample to load (default: the super-resolution demo of the README)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="maximum epochs (default: the Train tab's, early stopping within the time cap)")
    ap.add_argument("--size", default=None, choices=["small", "medium", "large"],
                    help="model size (default: the Train tab's)")
    ap.add_argument("--factor", type=int, default=None, help="bins per frame (default: the Train tab's)")
    ap.add_argument("--indicator", default="GCaMP6f",
                    help="the Train tab's indicator (default GCaMP6f, the demo's indicator, as step 2 of "
                         "the README's walkthrough sets it; 'none' leaves it unnamed)")
    ap.add_argument("--roi", type=int, default=2, help="ROI label shown in the trace panel")
    ap.add_argument("--zoom-s", type=float, default=10.0,
                    help="seconds of the trace panel shown around the cursor (0: the whole recording)")
    ap.add_argument("--units", default="spikes", choices=["spikes", "model"],
                    help="the trace panel's units: estimated spikes/s (beside the truth in Hz) or model units")
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "screenshot.png")
    args = ap.parse_args(argv)

    import os
    import tempfile

    # a throwaway widget-settings store: the script must neither read nor change the user's
    os.environ.setdefault("NAPARI_SBTT_SETTINGS", str(Path(tempfile.mkdtemp()) / "settings.ini"))

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_sbtt.plugin._state import TrainState

    viewer = napari.Viewer(title="napari-sbtt")
    viewer.window.resize(1500, 950)
    layers = viewer.open_sample("napari-sbtt", args.sample)
    movie = next(la for la in layers if type(la).__name__ == "Image" and "sbtt_truth" in la.metadata)
    rois = next(la for la in layers if type(la).__name__ == "Labels")
    _, main_widget = viewer.window.add_plugin_dock_widget("napari-sbtt", "SBTT")
    train = main_widget.train
    train.device.value, train.likelihood.value = "cpu", "calcium"
    for name in ("epochs", "size", "factor"):
        if getattr(args, name) is not None:
            getattr(train, name).value = getattr(args, name)
    if args.indicator.lower() != "none":
        train.indicator.value = args.indicator
    app = QApplication.instance()
    train.train_button.clicked()
    while train.state.state is TrainState.TRAINING or train.job is not None:
        app.processEvents()
        time.sleep(0.01)
    if train.state.state is TrainState.FAILED:
        raise SystemExit(f"training failed: {train.message.text}")
    movie.visible = True
    rois.contour = 1
    rois.opacity = 0.6
    rois.selected_label = args.roi
    activity = viewer.layers[f"{movie.name} activity"]
    activity.opacity = 0.8
    t_now = float(activity.metadata["sbtt_result"].times[-1]) * 0.4
    viewer.dims.set_point(0, t_now)
    viewer.layers.selection.active = rois
    from napari_sbtt.plugin._trace_panel import MODEL_UNITS, SPIKE_UNITS

    traces = main_widget.traces
    if traces.units.enabled:
        traces.units.value = SPIKE_UNITS if args.units == "spikes" else MODEL_UNITS
    if args.zoom_s > 0:  # a window of the recording, so the sweeps' detail is visible
        traces.canvas.ax_obs.set_xlim(t_now - args.zoom_s / 2, t_now + args.zoom_s / 2)
        traces.canvas.draw_idle()
    viewer.reset_view()  # the whole scene: the movie with its activity and the truth beside it
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()  # e.g. the PyQt5 deprecation toast; not part of the picture
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"wrote {args.out} ({train.state.state.value}: {train.status.text}; {train.message.text})")
    viewer.close()
    return args.out


if __name__ == "__main__":
    main()
