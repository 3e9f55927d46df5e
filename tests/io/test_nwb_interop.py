"""The NWB export read back by the NWB tools: pynwb, nwbinspector, roiextractors, and our own reader.

The export follows the NWB ophys convention: ``processing/ophys/Fluorescence/Deconvolved``
(a RoiResponseSeries) linked to ``processing/ophys/ImageSegmentation/PlaneSegmentation``
(``pixel_mask`` and ``image_mask``). Our reader still reads the layout napari-sbtt wrote
before (``processing/ophys/SBTTRates`` with an ``SBTTLabels`` reference image).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from napari_sbtt.cli import main
from napari_sbtt.core import writers
from tests.factories import (
    fake_result,
    make_labels,
    make_roi_movie,
    neuroconv_suite2p_nwb,
    tiny_config,
)

pynwb = pytest.importorskip("pynwb")

SUBJECT = {"subject_id": "m1", "species": "Mus musculus", "sex": "F", "age": "P90D"}


def _inspect(path: Path) -> list:
    """nwbinspector findings at BEST_PRACTICE_VIOLATION or above (CRITICAL, violations, errors)."""
    nwbinspector = pytest.importorskip("nwbinspector")
    from nwbinspector import Importance

    found = list(nwbinspector.inspect_nwbfile(nwbfile_path=str(path)))
    return [m for m in found if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value]


def test_export_passes_nwbinspector_with_a_subject(tmp_path: Path) -> None:
    r = fake_result(ids=(1, 2, 3))
    out = r.export(tmp_path / "res.nwb", labels=make_labels(), nwb_subject=SUBJECT, nwb_location="VISp")
    assert _inspect(out) == []
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        subject = nwb.subject
        assert (subject.subject_id, subject.species, subject.sex, subject.age) == ("m1", "Mus musculus", "F", "P90D")
        assert nwb.imaging_planes["ImagingPlane"].location == "VISp"
    # a mouse needs an Allen CCF location: the placeholder is reported
    mouse = r.export(tmp_path / "mouse.nwb", labels=make_labels(), nwb_subject=SUBJECT)
    assert {m.check_function_name for m in _inspect(mouse)} == {"check_imaging_plane_location_allen_ccf"}
    # without the subject the only findings are about the animal, which napari-sbtt cannot know
    bare = r.export(tmp_path / "bare.nwb", labels=make_labels())
    assert {m.check_function_name for m in _inspect(bare)} == {"check_subject_exists"}
    with pytest.raises(ValueError, match=r"unknown NWB subject field\(s\) \['colour'\]"):
        r.export(tmp_path / "x.nwb", labels=make_labels(), nwb_subject={"colour": "brown"})
    assert not (tmp_path / "x.nwb").exists()


def test_roiextractors_reads_the_exported_rates_and_masks(tmp_path: Path) -> None:
    roiextractors = pytest.importorskip("roiextractors")
    labels = make_labels()
    r = fake_result(ids=(1, 3))
    out = r.export(tmp_path / "res.nwb", labels=labels)
    seg = roiextractors.NwbSegmentationExtractor(str(out))
    try:
        assert seg.get_roi_ids() == [1, 3]
        assert seg.get_sampling_frequency() == pytest.approx(1 / r.grid.bin_width)
        assert tuple(seg.get_frame_shape()) == labels.shape  # (Y, X)
        traces = np.asarray(seg.get_traces(name="deconvolved"))
        rates = r.rates if traces.shape == r.rates.shape else r.rates.T  # (T, N) in roiextractors >= 0.6
        np.testing.assert_allclose(traces, rates)
        masks = np.asarray(seg.get_roi_image_masks())  # (Y, X, N)
        for k, rid in enumerate((1, 3)):
            np.testing.assert_array_equal(masks[:, :, k] > 0, labels == rid)
    finally:
        del seg


@pytest.mark.slow
def test_cli_export_with_subject_passes_nwbinspector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tifffile

    labels = make_labels()
    movie, _ = make_roi_movie(labels, 40)
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    tifffile.imwrite(tmp_path / "rois.tif", labels)
    assert main(["run", str(tmp_path / "movie.tif"), "--rois", str(tmp_path / "rois.tif"), "--frame-period",
                 "0.05", "--out", str(tmp_path / "res"), "--config", json.dumps(tiny_config(window_s=0.5))]) == 0
    capsys.readouterr()
    argv = ["export", str(tmp_path / "res"), str(tmp_path / "out.nwb"), "--subject", "subject_id=m1",
            "--subject", "species=Mus musculus", "--subject", "sex=U", "--subject", "age=P60D/",
            "--location", "VISp"]
    assert main(argv) == 0, capsys.readouterr().err
    assert _inspect(tmp_path / "out.nwb") == []
    code = main(["export", str(tmp_path / "res"), str(tmp_path / "o.csv"), "--subject", "sex=F"])
    assert code == 2 and "--subject" in capsys.readouterr().err
    code = main(["export", str(tmp_path / "res"), str(tmp_path / "o.nwb"), "--subject", "sex"])
    err = capsys.readouterr().err
    assert code == 2 and "--subject 'sex': expected FIELD=VALUE" in err
    assert not (tmp_path / "o.nwb").exists() and not (tmp_path / "o.csv").exists()


def _write_old_layout(path: Path, labels: np.ndarray, rates: np.ndarray, ids: list[int]) -> None:
    """An NWB file as napari-sbtt wrote it before the ophys-convention layout.

    ``processing/ophys/SBTTRates`` straight in the module, a PlaneSegmentation with
    ``pixel_mask`` only, and the labels image as the ImageSeries ``SBTTLabels`` (1, x, y)
    that gives the image size.
    """
    from pynwb.image import ImageSeries
    from pynwb.ophys import ImageSegmentation, OpticalChannel, RoiResponseSeries

    nwb = pynwb.NWBFile(session_description="old", identifier="old",
                        session_start_time=datetime.now(timezone.utc))
    dev = nwb.create_device(name="Microscope")
    ch = OpticalChannel(name="OpticalChannel", description="x", emission_lambda=math.nan)
    plane = nwb.create_imaging_plane(name="ImagingPlane", optical_channel=ch, device=dev, description="p",
                                     excitation_lambda=math.nan, indicator="unknown", location="unknown")
    module = nwb.create_processing_module(name="ophys", description="o")
    ref = ImageSeries(name="SBTTLabels", data=np.ascontiguousarray(labels.T[None]).astype(np.int32),
                      unit="ROI id", rate=1.0)
    module.add(ref)
    seg = ImageSegmentation(name="ImageSegmentation")
    module.add(seg)
    ps = seg.create_plane_segmentation(name="PlaneSegmentation", imaging_plane=plane, reference_images=ref,
                                       description="rois")
    for rid in ids:
        ys, xs = np.nonzero(labels == rid)
        ps.add_roi(pixel_mask=[(int(x), int(y), 1.0) for y, x in zip(ys, xs, strict=True)], id=int(rid))
    region = ps.create_roi_table_region(region=list(range(len(ids))), description="r", name="rois")
    module.add(RoiResponseSeries(name="SBTTRates", data=rates, rois=region, unit="a.u.", rate=40.0))
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def test_our_reader_reads_the_new_and_the_old_export_layout(tmp_path: Path) -> None:
    from napari_sbtt.core.readers import read_nwb

    labels = make_labels(16, 20)
    labels[0, 19] = 0  # no ROI touches the last column: the size must come from the file, not the masks
    r = fake_result(ids=(1, 2, 3))
    new = r.export(tmp_path / "new.nwb", labels=labels)
    old = tmp_path / "old.nwb"
    _write_old_layout(old, labels, r.rates, [1, 2, 3])
    for path, name in ((new, "Deconvolved"), (old, "SBTTRates")):
        with read_nwb(path) as d:
            assert d.traces_name == name and d.traces_rate_hz == pytest.approx(40.0)
            np.testing.assert_array_equal(d.labels, labels)
            np.testing.assert_array_equal(d.roi_ids, [1, 2, 3])
            np.testing.assert_allclose(d.traces, r.rates)


def test_image_mask_is_written_one_roi_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The (n_rois, x, y) image_mask column never exists whole in memory: one ROI per chunk."""
    from hdmf.data_utils import DataChunkIterator

    seen: list[tuple[int, ...]] = []
    real = DataChunkIterator.__next__

    def spy(self):  # noqa: ANN001, ANN202
        chunk = real(self)
        seen.append(tuple(np.asarray(chunk.data).shape))
        return chunk

    monkeypatch.setattr(DataChunkIterator, "__next__", spy)
    labels = make_labels(16, 20)
    r = fake_result(ids=(1, 2, 3))
    writers.write_nwb(tmp_path / "m.nwb", r.rates, r.times, r.roi_ids, bin_width=0.025, units="a.u.",
                      labels=labels)
    assert seen == [(1, 20, 16)] * 3


# ---------------------------------------------------------------------------- NWB written by other tools
REAL_SUITE2P = Path(__file__).parents[2] / ".." / "shared" / "realdata" / "suite2p-fissa-example" / "suite2p"


@pytest.mark.skipif(not (REAL_SUITE2P / "plane0" / "stat.npy").is_file(), reason="../shared/realdata is absent")
def test_neuroconv_nwb_of_the_real_suite2p_folder_reads_back(tmp_path: Path) -> None:
    from napari_sbtt.core.readers import read_nwb, read_suite2p
    from napari_sbtt.recording import load_recording

    out = neuroconv_suite2p_nwb(REAL_SUITE2P, tmp_path / "s2p.nwb")
    s2p = read_suite2p(REAL_SUITE2P / "plane0", only_cells=False)
    with read_nwb(out) as d:
        # neuroconv stores (row, column) in pixel_mask x/y and its images (x, y): read the right way round
        assert d.labels.shape == (176, 156) and d.n_rois == 23
        np.testing.assert_array_equal(d.labels, s2p.labels)
        # the raw fluorescence, not neuroconv's Deconvolved or Neuropil series beside it
        assert d.traces_name == "RoiResponseSeries" and d.traces_rate_hz == pytest.approx(1.0)
        np.testing.assert_allclose(d.traces, np.load(REAL_SUITE2P / "plane0" / "F.npy").T, rtol=1e-6)
    with load_recording(out) as rec:
        assert rec.mode == "traces" and rec.traces.shape == (864, 23) and rec.frame_period == pytest.approx(1.0)
        assert (rec.n_rows, rec.n_cols) == (176, 156)


def _suite2p_style_nwb(path: Path, plane: Path, *, suite2p: bool = True) -> None:
    """NWB laid out as suite2p's own save_nwb writes it (suite2p/io/nwb.py, suite2p 1.1).

    pixel_mask rows are (ypix, xpix, lam); three Fluorescence containers named
    Fluorescence, Neuropil and Deconvolved each hold a series ``plane0``; the mean image
    is stored (Ly, Lx) in the Images container ``Backgrounds_0``; no movie data. With
    ``suite2p=False`` nothing says suite2p wrote it and the mean image is stored (x, y)
    as the schema has it (the (row, column) pixel masks stay).
    """
    from pynwb.base import Images
    from pynwb.image import GrayscaleImage
    from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel, RoiResponseSeries

    stat = np.load(plane / "stat.npy", allow_pickle=True)
    traces = {name: np.load(plane / f) for name, f in
              (("Fluorescence", "F.npy"), ("Neuropil", "Fneu.npy"), ("Deconvolved", "spks.npy"))}
    ly, lx = 20, 24
    nwb = pynwb.NWBFile(session_description="suite2p_proc" if suite2p else "session", identifier="x",
                        session_start_time=datetime.now(timezone.utc))
    dev = nwb.create_device(name="Microscope")
    ch = OpticalChannel(name="OpticalChannel", description="c", emission_lambda=500.0)
    plane_obj = nwb.create_imaging_plane(name="ImagingPlane", optical_channel=ch, imaging_rate=30.0,
                                         description="standard", device=dev, excitation_lambda=600.0,
                                         indicator="GCaMP", location="V1")
    module = nwb.create_processing_module(name="ophys", description="optical physiology processed data")
    seg = ImageSegmentation()
    module.add(seg)
    ps = seg.create_plane_segmentation(name="PlaneSegmentation", imaging_plane=plane_obj,
                                       description="suite2p output" if suite2p else "ROIs")
    for st in stat:
        ps.add_roi(pixel_mask=np.array([st["ypix"], st["xpix"], st["lam"]]).T)
    region = ps.create_roi_table_region(region=list(range(len(stat))), description="ROIs for plane0")
    for name, tr in traces.items():
        rrs = RoiResponseSeries(name="plane0", data=tr.T, rois=region, unit="lumens", rate=30.0)
        module.add(Fluorescence(roi_response_series=rrs, name=name))
    images = Images(name="Backgrounds_0")
    images.add_image(GrayscaleImage(name="meanImg", data=np.ones((ly, lx) if suite2p else (lx, ly), np.float32)))
    module.add(images)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def test_suite2p_style_nwb_reads_back(tmp_path: Path) -> None:
    from napari_sbtt.core.readers import read_nwb, read_suite2p
    from tests.factories import make_suite2p

    plane = tmp_path / "suite2p" / "plane0"
    make_suite2p(plane)
    s2p = read_suite2p(plane, only_cells=False)
    # suite2p's file says who wrote it; without that, the non-square image size decides
    for suite2p in (True, False):
        out = tmp_path / f"{suite2p}.nwb"
        _suite2p_style_nwb(out, plane, suite2p=suite2p)
        with read_nwb(out) as d:
            assert d.labels.shape == (20, 24)
            np.testing.assert_array_equal(d.labels, s2p.labels)
            assert d.traces_name == "plane0" and d.traces_rate_hz == pytest.approx(30.0)
            np.testing.assert_allclose(d.traces, np.load(plane / "F.npy").T)  # Fluorescence, not Neuropil
