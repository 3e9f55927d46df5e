"""How long does napari itself take to add an Image layer on this machine (GUI thread)?

The reference for the "showing the result" column of RESULTS.md's GUI section: the Train
widget's one unavoidable GUI-thread step after a fit is adding (or updating) the activity layer.
Adds a plain float32 (200, 128, 128) array three times to a viewer that already shows a movie
and a Labels layer, and prints the time of ``add_image`` and of the next ``processEvents``.

    xvfb-run -a python benchmarks/napari_add_image_cost.py
"""

from __future__ import annotations

import json
import os
import time

import numpy as np


def main() -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.add_image(np.random.rand(100, 128, 128).astype("f4"), name="movie")
    viewer.add_labels(np.zeros((128, 128), int), name="ROIs")
    app = QApplication.instance()

    def spin(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.001)

    spin(2.0)
    rows = []
    for k in range(3):
        data = np.random.rand(200, 128, 128).astype("f4")
        t0 = time.perf_counter()
        viewer.add_image(data, name=f"a{k}", colormap="inferno", blending="additive",
                         contrast_limits=(0, 1))
        t1 = time.perf_counter()
        app.processEvents()
        t2 = time.perf_counter()
        rows.append({"add_image_ms": round((t1 - t0) * 1e3, 1),
                     "next_process_events_ms": round((t2 - t1) * 1e3, 1)})
        spin(0.5)
    viewer.close()
    out = {"adds": rows, "load_average": [round(v, 2) for v in os.getloadavg()]}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
