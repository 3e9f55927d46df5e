"""The trace panel's units switch: model units or estimated spikes/s (calcium fits on dF/F)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_sbtt.plugin._layers import TRUTH_KEY, show_result  # noqa: E402
from napari_sbtt.plugin._trace_panel import MODEL_UNITS, SPIKE_UNITS  # noqa: E402
from tests.factories import fake_calcium_result, fake_result, make_labels  # noqa: E402

pytestmark = pytest.mark.gui


def test_trace_panel_switches_to_estimated_spikes_per_second(viewer):
    _, traces = viewer.window.add_plugin_dock_widget("napari-sbtt", "Traces")
    labels = viewer.add_labels(make_labels(), name="rois")
    result = fake_calcium_result()
    truth = {"times": result.times, "rates": np.full(result.rates.shape, 3.0), "roi_ids": result.roi_ids,
             "units": "Hz"}
    movie = viewer.add_image(np.zeros((result.rates.shape[0], 16, 20), np.float32), name="rec",
                             metadata={TRUTH_KEY: truth})
    show_result(viewer, result, movie, labels)
    traces.refresh()
    traces.roi.value = 2
    assert traces.units.enabled and traces.units.value == MODEL_UNITS
    _, y = traces.canvas.rate_line.get_data()
    np.testing.assert_allclose(y, result.rates[:, 1])
    assert "dF/F jump" in traces.canvas.ax_rate.get_ylabel()
    traces.units.value = SPIKE_UNITS
    _, y = traces.canvas.rate_line.get_data()
    np.testing.assert_allclose(y, result.spikes_per_s()[:, 1])
    assert np.isnan(y).any()  # the rates' NaN stay NaN
    assert "spikes/s (estimated)" in traces.canvas.ax_rate.get_ylabel()
    # the truth (Hz) and the estimated spikes/s share one scale
    assert traces.canvas.ax_truth.get_visible()
    assert traces.canvas.ax_truth.get_ylim() == traces.canvas.ax_rate.get_ylim()
    assert traces.canvas.ax_rate.get_ylim()[1] >= np.nanmax(y)
    # a result without the estimate: back to model units, the switch disabled
    show_result(viewer, fake_result(), None, labels, name="rec")
    traces.refresh()
    assert traces.units.value == MODEL_UNITS and not traces.units.enabled
    _, y = traces.canvas.rate_line.get_data()
    np.testing.assert_allclose(y, fake_result().rates[:, int(traces.roi.value) - 1])
