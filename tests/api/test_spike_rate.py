"""Activity in estimated spikes/s beside the model units: the result, its folder and every export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sbtt.result import load_result
from tests.factories import fake_calcium_result, fake_result, make_labels


def test_spikes_per_s_is_the_rates_over_the_jump_per_spike_and_the_bin(tmp_path) -> None:
    r = fake_calcium_result(kernel_scale=2.0)  # one spike = a jump of 2 (dF/F)
    sp = r.spikes_per_s()
    assert sp.shape == r.rates.shape and sp.dtype == np.float32
    np.testing.assert_allclose(sp, r.rates / 2.0 / r.grid.bin_width, rtol=1e-5)
    assert np.array_equal(np.isnan(sp), np.isnan(r.rates))  # NaN where the rates are NaN, nowhere else
    assert r.metrics["spikes_estimate"]["indicator"] == "GCaMP6f"
    back = load_result(r.save(tmp_path / "res"))  # the estimate travels in result.json
    np.testing.assert_allclose(back.spikes_per_s(), sp)


def test_results_without_an_estimate_say_why() -> None:
    with pytest.raises(ValueError, match="gaussian likelihood"):
        fake_result().spikes_per_s()
    r = fake_calcium_result()
    r.metrics["spikes_estimate"] = {"available": False, "reason": "the observations are 'raw', not dF/F"}
    assert not r.has_spike_estimate
    with pytest.raises(ValueError, match="not dF/F"):
        r.spikes_per_s()
    with pytest.raises(ValueError, match="what must be"):
        fake_calcium_result().spikes_per_s("oasis_rates")  # absent on this result


def test_npz_h5_and_csv_exports_carry_the_spike_rate(tmp_path) -> None:
    h5py = pytest.importorskip("h5py")
    r = fake_calcium_result()
    sp = r.spikes_per_s()
    with np.load(r.export(tmp_path / "r.npz")) as z:
        np.testing.assert_allclose(z["spikes_per_s"], sp)
        assert json.loads(str(z["result_json"]))["metrics"]["spikes_estimate"]["available"]
    with h5py.File(r.export(tmp_path / "r.h5"), "r") as f:
        np.testing.assert_allclose(f["spikes_per_s"][()], sp)
        assert "spikes/s" in f["spikes_per_s"].attrs["units"]
    csv = r.export(tmp_path / "r.csv", what="spikes_per_s")
    table = np.genfromtxt(csv, delimiter=",", skip_header=1)
    np.testing.assert_allclose(table[:, 1:], sp, rtol=1e-5)
    # results without the estimate export as before, and refuse a spikes CSV
    with np.load(fake_result().export(tmp_path / "g.npz")) as z:
        assert "spikes_per_s" not in z.files
    with pytest.raises(ValueError, match="spikes_per_s"):
        fake_result().export(tmp_path / "g.csv", what="spikes_per_s")


def test_nwb_holds_an_estimated_spike_rate_series_beside_the_rates(tmp_path) -> None:
    pynwb = pytest.importorskip("pynwb")
    r = fake_calcium_result()
    out = r.export(tmp_path / "r.nwb", labels=make_labels())
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        fl = nwb.processing["ophys"]["Fluorescence"]
        assert set(fl.roi_response_series) == {"Deconvolved", "EstimatedSpikeRate"}
        spikes = fl["EstimatedSpikeRate"]
        assert spikes.unit == "spikes/s" and "estimate" in spikes.description.lower()
        np.testing.assert_allclose(spikes.data[()], r.spikes_per_s())
        assert spikes.rate == pytest.approx(fl["Deconvolved"].rate)
        assert list(spikes.rois.data[()]) == list(fl["Deconvolved"].rois.data[()])
    nwbinspector = pytest.importorskip("nwbinspector")
    from nwbinspector import Importance

    found = [m for m in nwbinspector.inspect_nwbfile(nwbfile_path=str(out))
             if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value]
    assert {m.check_function_name for m in found} <= {"check_subject_exists"}


def test_one_column_of_the_spike_rate() -> None:
    r = fake_calcium_result()
    np.testing.assert_array_equal(r.spikes_per_s(column=1), r.spikes_per_s()[:, 1])


def test_roiextractors_still_reads_the_rates_beside_the_spike_rate(tmp_path) -> None:
    pytest.importorskip("pynwb")
    roiextractors = pytest.importorskip("roiextractors")
    r = fake_calcium_result()
    seg = roiextractors.NwbSegmentationExtractor(str(r.export(tmp_path / "r.nwb", labels=make_labels())))
    try:
        assert seg.get_roi_ids() == [1, 2, 3]
        traces = np.asarray(seg.get_traces(name="deconvolved"))
        np.testing.assert_allclose(traces if traces.shape == r.rates.shape else traces.T, r.rates)
    finally:
        del seg
