"""The 'Super-resolution demo' sample: the default recording with its ROIs and the ground truth
as a layer beside the movie (loaded in a real viewer; nothing is trained here)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_sbtt.core.scan import ScanPattern  # noqa: E402
from napari_sbtt.core.synth import preset_config  # noqa: E402
from napari_sbtt.plugin._layers import SCAN_KEY, TRUTH_KEY, TRUTH_LAYER_KEY, is_generated  # noqa: E402

pytestmark = pytest.mark.gui


def test_super_resolution_demo_loads_movie_rois_and_ground_truth(viewer):
    layers = viewer.open_sample("napari-sbtt", "super_resolution_demo")
    by_kind = {type(la).__name__: [] for la in layers}
    for la in layers:
        by_kind[type(la).__name__].append(la)
    assert sorted((k, len(v)) for k, v in by_kind.items()) == [("Image", 2), ("Labels", 1)]
    movie = next(la for la in by_kind["Image"] if not is_generated(la))
    truth_layer = next(la for la in by_kind["Image"] if la.metadata.get(TRUTH_LAYER_KEY))
    labels = by_kind["Labels"][0]
    cfg = preset_config("default")
    pattern = ScanPattern.from_dict(movie.metadata[SCAN_KEY])
    # the default recording: 64 x 64 px, 24 ROIs, 60 s in 4 strips (each ROI seen once per 4 sweeps)
    assert movie.data.shape[1:] == labels.data.shape == cfg.field_shape
    assert len(np.unique(labels.data)) - 1 == cfg.n_rois
    assert movie.data.shape[0] * pattern.frame_period == pytest.approx(cfg.duration, rel=0.01)
    assert pattern.acquired_fraction() == pytest.approx(1 / cfg.n_strips, rel=0.05)
    # the ground truth beside the movie: the true rates (Hz) painted into the ROIs, on the same time axis
    truth = movie.metadata[TRUTH_KEY]
    assert truth["rates"].shape == (truth_layer.data.shape[0], cfg.n_rois)
    assert truth_layer.data.shape[1:] == labels.data.shape
    assert truth_layer.metadata["units"] == "Hz" and "ground truth" in truth_layer.name
    k = 100
    frame = np.asarray(truth_layer.data[k])
    for col, rid in enumerate(truth["roi_ids"][:3]):
        np.testing.assert_allclose(frame[labels.data == rid], truth["rates"][k, col], rtol=1e-6)
    assert truth_layer.translate[2] > movie.data.shape[2]  # beside the movie, not over it
    assert truth_layer.translate[0] == pytest.approx(movie.translate[0])  # bin k and frame k line up
    assert truth_layer.scale[0] == pytest.approx(pattern.frame_period)
    # the Data tab takes the movie, never the truth layer, and the trace panel finds the truth
    _, main = viewer.window.add_plugin_dock_widget("napari-sbtt", "SBTT")
    assert main.data.movie.value is movie and main.data.rois.value is labels
