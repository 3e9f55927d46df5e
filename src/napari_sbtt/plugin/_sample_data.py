"""Sample data: a small synthetic partial-field line scan with its ROIs and ground truth."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._layer_data import LABELS_OPACITY, TRUTH_KEY, timed_movie

__all__ = ["synthetic_line_scan", "synthetic_layers", "SAMPLE_PRESET"]

#: the synth preset the sample uses (small enough to load and train in seconds)
SAMPLE_PRESET = "tiny"


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def synthetic_layers(preset: str = SAMPLE_PRESET, seed: int = 0,
                     name: str = "synthetic line scan") -> list[tuple[Any, dict[str, Any], str]]:
    """Layer data tuples (movie Image, ROI Labels) of ``napari_sbtt.core.synth.simulate(preset)``.

    The movie's unacquired rows are NaN; its metadata holds the scan pattern, the frame and
    line periods and the ground truth (``sbtt_truth``: times, rates in Hz, roi_ids).
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
    config = _get(sim, "config")
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    movie_layer = timed_movie(movie, name=name, scan=pattern,
                              metadata={TRUTH_KEY: truth_md, "sbtt_synth_config": config})
    movie_layer[1]["colormap"] = "gray"
    labels_meta = {"name": f"{name} ROIs", "opacity": LABELS_OPACITY}
    return [movie_layer, (labels, labels_meta, "labels")]


def synthetic_line_scan() -> list[tuple[Any, dict[str, Any], str]]:
    """napari sample data: 'Synthetic line scan' (tiny preset, seed 0)."""
    return synthetic_layers()
