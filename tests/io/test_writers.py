"""Exports of a result re-open in their own tools' readers: numpy, h5py, csv via numpy, tifffile, pynwb."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.core import writers
from napari_sbtt.core.activity import ActivityMovie
from napari_sbtt.core.atomic import OutputExistsError
from tests.factories import fake_result, make_labels, make_roi_movie, write_nwb

h5py = pytest.importorskip("h5py")


def _no_leftovers(folder: Path, keep: set[str]) -> None:
    assert {q.name for q in folder.iterdir()} == keep


def test_npz_holds_every_array_and_the_metadata(tmp_path: Path) -> None:
    r = fake_result()
    out = r.export(tmp_path / "res.npz")
    with np.load(out, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["rates"], r.rates)
        np.testing.assert_array_equal(z["observations"], r.observations)  # NaN kept
        np.testing.assert_array_equal(z["roi_ids"], [1, 2, 3])
        np.testing.assert_array_equal(z["signal"], r.signal)
        meta = json.loads(str(z["result_json"]))
    assert meta["units"] == r.units and meta["grid"]["bin_width"] == 0.025
    assert meta["config"]["likelihood"] == "gaussian" and meta["format"] == "napari-sbtt-result"
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        r.export(tmp_path / "res.npz")
    r.export(tmp_path / "res.npz", overwrite=True)
    _no_leftovers(tmp_path, {"res.npz"})


def test_hdf5_datasets_and_json_attributes(tmp_path: Path) -> None:
    r = fake_result()
    out = r.export(tmp_path / "res.h5")
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["rates"][()], r.rates)
        np.testing.assert_array_equal(f["observations"][()], r.observations)
        np.testing.assert_array_equal(f["times"][()], r.times)
        np.testing.assert_array_equal(f["roi_ids"][()], [1, 2, 3])
        assert f["times"].attrs["units"] == "s" and f["rates"].attrs["units"] == r.units
        assert f["observations"].attrs["units"] == "dF/F" and f["rates"].attrs["dims"] == "time, roi"
        assert json.loads(f.attrs["config"]) == r.config
        assert json.loads(f.attrs["metrics"]) == r.metrics
        assert f.attrs["bin_width_s"] == 0.025 and f.attrs["units"] == r.units
    assert r.export(tmp_path / "other.data", format="hdf5").is_file()


def test_csv_time_column_and_empty_cells_for_nan(tmp_path: Path) -> None:
    r = fake_result(ids=(4, 9))
    out = r.export(tmp_path / "obs.csv", what="observations")
    lines = out.read_text().splitlines()
    assert lines[0] == "time_s,roi_4,roi_9" and len(lines) == 41
    assert ",," in "\n".join(lines) or any(ln.endswith(",") for ln in lines)  # NaN -> empty cell
    a = np.genfromtxt(out, delimiter=",", names=True)
    np.testing.assert_allclose(a["time_s"], r.times, rtol=1e-6)
    np.testing.assert_allclose(a["roi_9"], r.observations[:, 1], rtol=1e-6)  # NaN where missing
    assert np.isnan(a["roi_4"]).sum() == np.isnan(r.observations[:, 0]).sum() > 0
    rates = np.genfromtxt(r.export(tmp_path / "rates.csv"), delimiter=",", skip_header=1)
    np.testing.assert_allclose(rates[:, 1:], r.rates, rtol=1e-6)
    with pytest.raises(ValueError, match="what must be"):
        r.export(tmp_path / "x.csv", what="truth")


def test_activity_tiff_is_painted_chunk_by_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    labels = make_labels()
    r = fake_result(ids=(1, 2, 3), n_t=23)
    seen: list[int] = []
    real = ActivityMovie._frames

    def spy(self, t, ysel, xsel):  # type: ignore[no-untyped-def]
        seen.append(int(np.size(t)))
        return real(self, t, ysel, xsel)

    monkeypatch.setattr(ActivityMovie, "_frames", spy)
    out = writers.write_activity_tiff(tmp_path / "act.tif", r.rates, labels, r.roi_ids, bin_width=0.025,
                                      chunk_frames=5)
    assert seen and max(seen) <= 5 and sum(seen) == 23  # never the whole T_fine x Y x X
    movie = tifffile.imread(out)
    assert movie.shape == (23, 16, 20) and movie.dtype == np.float32
    for k in range(3):
        np.testing.assert_array_equal(movie[:, labels == k + 1], np.repeat(r.rates[:, k : k + 1], (labels == k + 1).sum(), 1))
    assert (movie[:, labels == 0] == 0).all()
    from napari_sbtt.core.readers import read_movie_info

    assert read_movie_info(out).frame_rate_hz == pytest.approx(40.0)  # ImageJ finterval = bin width
    # labels from the result's own labels argument, with an error that names the fix otherwise
    r.export(tmp_path / "act2.tiff", labels=labels)
    with pytest.raises(ValueError, match=r"pass labels=<"):
        r.export(tmp_path / "act3.tif")
    with pytest.raises(ValueError, match=r"ROI id\(s\) \[3\] of the result have no pixels"):
        r.export(tmp_path / "act4.tif", labels=np.where(labels == 3, 0, labels))


def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr(tifffile.TiffWriter, "write", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        fake_result().export(tmp_path / "act.tif", labels=make_labels())
    _no_leftovers(tmp_path, set())


def test_nwb_from_labels_links_the_series_to_a_new_plane_segmentation(tmp_path: Path) -> None:
    pynwb = pytest.importorskip("pynwb")
    labels = make_labels()
    r = fake_result(ids=(1, 2, 3))
    out = r.export(tmp_path / "res.nwb", labels=labels)
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        rrs = nwb.processing["ophys"]["Fluorescence"]["Deconvolved"]  # the NWB ophys layout
        assert set(nwb.processing["ophys"].data_interfaces) == {"Fluorescence", "ImageSegmentation"}
        np.testing.assert_array_equal(rrs.data[()], r.rates)
        assert rrs.rate == pytest.approx(40.0) and rrs.starting_time == pytest.approx(r.times[0])
        assert rrs.unit == r.units and "bin width 0.025 s" in rrs.description and r.units in rrs.description
        ps = rrs.rois.table
        assert ps.name == "PlaneSegmentation" and ps is nwb.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
        np.testing.assert_array_equal(rrs.rois.data[()], [0, 1, 2])
        np.testing.assert_array_equal(ps.id.data[()], [1, 2, 3])
        for k in range(3):
            mask = ps["pixel_mask"][k]
            ys = sorted(int(p[1]) for p in mask)
            assert ys == sorted(np.nonzero(labels == k + 1)[0].tolist())
        image_mask = ps["image_mask"].data[()]  # (roi, x, y), what roiextractors reads
        assert image_mask.shape == (3, labels.shape[1], labels.shape[0])
        for k in range(3):
            np.testing.assert_array_equal(image_mask[k].T, (labels == k + 1).astype(np.float32))
    from napari_sbtt.core.readers import read_nwb

    with read_nwb(out) as d:  # our own reader agrees: same labels, the rates as traces
        np.testing.assert_array_equal(d.labels, labels)
        np.testing.assert_allclose(d.traces, r.rates)
    with pytest.raises(ValueError, match="NWB export needs the ROI masks"):
        writers.write_nwb(tmp_path / "x.nwb", r.rates, r.times, r.roi_ids, bin_width=0.025, units="a.u.")


def test_nwb_from_an_nwb_input_links_to_the_input_rois(tmp_path: Path) -> None:
    pynwb = pytest.importorskip("pynwb")
    lab = make_labels(12, 17)
    movie, truth = make_roi_movie(lab, 20)
    rois = []
    for k in (1, 2, 3):
        y, x = np.nonzero(lab == k)
        rois.append((y, x, np.ones(y.size)))
    src = tmp_path / "in.nwb"
    write_nwb(src, movie, rois, traces=truth, rate=20.0)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    r = fake_result(ids=(1, 3), recording={"format": "nwb", "path": str(src),
                                           "segmentation": {"path": str(src), "name": "PlaneSegmentation"}})
    out = r.export(tmp_path / "out.nwb")
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest  # the input is untouched
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        ophys = nwb.processing["ophys"]
        rrs = ophys["Fluorescence"]["Deconvolved"]  # beside the input's raw traces
        assert set(ophys["Fluorescence"].roi_response_series) == {"RoiResponseSeries", "Deconvolved"}
        ps = ophys["ImageSegmentation"]["PlaneSegmentation"]
        assert rrs.rois.table is ps and len(ps.id) == 3  # the input's own 3 ROIs
        np.testing.assert_array_equal(rrs.rois.data[()], [0, 2])  # labels 1 and 3 = rows 0 and 2
        np.testing.assert_array_equal(rrs.data[()], r.rates)
        assert "TwoPhotonSeries" in nwb.acquisition and "Fluorescence" in ophys.data_interfaces
    from napari_sbtt.core.readers import read_nwb

    with read_nwb(out) as d:  # our reader still takes the input's raw traces, not the rates
        assert d.traces_name == "RoiResponseSeries"
        np.testing.assert_allclose(d.traces, truth)
    # exporting twice into a copy of a file that already has Deconvolved picks a new name
    r2 = fake_result(ids=(2,), recording={"format": "nwb", "segmentation": {"path": str(out), "name": "PlaneSegmentation"}})
    out2 = r2.export(tmp_path / "out2.nwb")
    with pynwb.NWBHDF5IO(str(out2), "r") as io:
        fl = io.read().processing["ophys"]["Fluorescence"]
        assert {"Deconvolved", "SBTTDeconvolved"} <= set(fl.roi_response_series)
        np.testing.assert_array_equal(fl["SBTTDeconvolved"].rois.data[()], [1])
    r3 = fake_result(ids=(1, 9), recording={"format": "nwb", "segmentation": {"path": str(src), "name": "PlaneSegmentation"}})
    with pytest.raises(ValueError, match=r"has 3 ROIs but the result refers to rows up to 8"):
        r3.export(tmp_path / "out3.nwb")
    _no_leftovers(tmp_path, {"in.nwb", "out.nwb", "out2.nwb"})


def test_unknown_suffix_and_missing_pynwb_name_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = fake_result()
    with pytest.raises(ValueError, match=r"res.xlsx: cannot tell the export format.*\.npz"):
        r.export(tmp_path / "res.xlsx")
    with pytest.raises(ValueError, match="unknown export format 'mat'"):
        r.export(tmp_path / "res.npz", format="mat")
    monkeypatch.setitem(sys.modules, "pynwb", None)  # "not installed": import raises ImportError
    with pytest.raises(ImportError, match=r"pip install napari-sbtt\[nwb\]"):
        r.export(tmp_path / "res.nwb", labels=make_labels())
