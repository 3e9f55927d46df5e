"""Sample data: synthetic partial-field line scans with their ROIs and ground truth.

- "Synthetic line scan" (:func:`synthetic_line_scan`): the ``tiny`` preset, 32 x 32 px, 6 ROIs,
  4 s; loads and trains in seconds (for trying the buttons; too short to show much).
- "Super-resolution demo" (:func:`super_resolution_demo`): the ``default`` preset, 64 x 64 px,
  24 ROIs, 60 s scanned in 4 strips (each ROI sampled once per 68 ms, the activity inferred on
  the 17 ms sweep grid), with the ground truth as a layer beside the movie; trains in about
  2 minutes on 2 CPU cores (early stopping), after which the activity can be compared with the
  truth frame by frame and in the trace panel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._layer_data import LABELS_OPACITY, TRUTH_KEY, timed_movie, truth_layers

__all__ = ["synthetic_line_scan", "super_resolution_demo", "synthetic_layers", "SAMPLE_PRESET", "DEMO_PRESET",
           "DEMO_NAME"]

#: the synth preset the small sample uses (small enough to load and train in seconds)
SAMPLE_PRESET = "tiny"
#: the synth preset and the layer name of the super-resolution demo
DEMO_PRESET = "default"
DEMO_NAME = "super-resolution demo"


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def synthetic_layers(preset: str = SAMPLE_PRESET, seed: int = 0, name: str = "synthetic line scan", *,
                     truth_layer: bool = False) -> list[tuple[Any, dict[str, Any], str]]:
    """Layer data tuples (movie Image, ROI Labels, and with ``truth_layer`` the ground truth
    Image beside the movie) of ``napari_sbtt.core.synth.simulate(preset)``.

    The movie's unacquired rows are NaN; its metadata holds the scan pattern, the frame and
    line periods and the ground truth (``sbtt_truth``: times, rates in Hz, roi_ids, t0 and
    bin_width in seconds).
    """
    from ..core.synth import simulate

    sim = simulate(preset, seed=seed)
    movie = np.asarray(sim.movie, dtype=np.float32)
    labels = np.asarray(sim.labels)
    pattern = sim.pattern
    truth = sim.truth
    rates = np.asarray(_get(truth, "rates"))
    roi_ids = _get(truth, "roi_ids")
    if roi_ids is None:
        roi_ids = np.arange(1, rates.shape[1] + 1)
    truth_md = {"times": np.asarray(_get(truth, "times")), "rates": rates,
                "roi_ids": np.asarray(roi_ids), "units": "Hz"}
    for key in ("t0", "bin_width"):
        if _get(truth, key) is not None:
            truth_md[key] = float(_get(truth, key))
    config = _get(sim, "config")
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    movie_layer = timed_movie(movie, name=name, scan=pattern,
                              metadata={TRUTH_KEY: truth_md, "sbtt_synth_config": config})
    movie_layer[1]["colormap"] = "gray"
    labels_meta = {"name": f"{name} ROIs", "opacity": LABELS_OPACITY}
    layers = [movie_layer, (labels, labels_meta, "labels")]
    if truth_layer:
        layers += truth_layers(truth_md, labels, name=name)
    return layers


def synthetic_line_scan() -> list[tuple[Any, dict[str, Any], str]]:
    """napari sample data: 'Synthetic line scan' (tiny preset, seed 0)."""
    return synthetic_layers()


def super_resolution_demo() -> list[tuple[Any, dict[str, Any], str]]:
    """napari sample data: 'Super-resolution demo' (default preset, seed 0, ground truth beside)."""
    return synthetic_layers(DEMO_PRESET, name=DEMO_NAME, truth_layer=True)
