"""Make docs/screenshot.png: the viewer with the synthetic sample, a fitted model and its results.

Loads the "Synthetic line scan" sample through the plugin manifest, opens the tabbed SBTT
widget, trains from the Train / Load tab exactly as a user would, selects an ROI so that the
trace panel shows its samples, inferred activity and ground truth, and saves a screenshot of
the whole window (canvas and docks).

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/make_screenshot.py --epochs 60
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--size", default="small", choices=["small", "medium", "large"])
    ap.add_argument("--preset", default="tiny",
                    help="synth preset; 'tiny' is the plugin's sample, 'default' is larger (slower)")
    ap.add_argument("--roi", type=int, default=2, help="ROI label shown in the trace panel")
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
    if args.preset == "tiny":
        layers = viewer.open_sample("napari-sbtt", "synthetic_line_scan")
    else:
        from napari.layers import Layer

        from napari_sbtt.plugin._sample_data import synthetic_layers

        layers = [viewer.add_layer(Layer.create(*ld)) for ld in synthetic_layers(args.preset)]
    movie = next(la for la in layers if type(la).__name__ == "Image")
    rois = next(la for la in layers if type(la).__name__ == "Labels")
    _, main_widget = viewer.window.add_plugin_dock_widget("napari-sbtt", "SBTT")
    train = main_widget.train
    train.size.value, train.epochs.value, train.device.value = args.size, args.epochs, "cpu"
    train.likelihood.value, train.factor.value = "calcium", 2
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
    viewer.dims.set_point(0, float(activity.metadata["sbtt_result"].times[-1]) * 0.4)
    viewer.layers.selection.active = rois
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()  # e.g. the PyQt5 deprecation toast; not part of the picture
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"wrote {args.out} ({train.state.state.value}: {train.status.text})")
    viewer.close()
    return args.out


if __name__ == "__main__":
    main()
