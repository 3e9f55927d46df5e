"""Tests for napari_sbtt.core.readers: files are built in tmp_path from the published layouts."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.core.readers import (
    ReaderError,
    TiffPageStack,
    detect_format,
    open_movie,
    parse_scanimage_text,
    read_caiman,
    read_movie_info,
    read_suite2p,
    read_traces,
    scan_pattern_from_tiff,
)
from napari_sbtt.core.readers._common import labels_from_weighted_pixels
from tests.factories import LX, LY, SI_TEXT, T, make_caiman, make_suite2p, write_scanimage_bigtiff
from tests.factories import make_movie as _movie
from tests.factories import write_nwb as _write_nwb

h5py = pytest.importorskip("h5py")


# ============================================================================ TIFF
def test_plain_tiff_is_memory_mapped(tmp_path: Path) -> None:
    data = _movie(dtype="uint16")
    p = tmp_path / "m.tif"
    tifffile.imwrite(p, data)
    movie, info = open_movie(p)
    assert info.memmapped and not isinstance(movie, TiffPageStack)
    assert movie.shape == data.shape == info.shape
    np.testing.assert_array_equal(movie[2:4, 5], data[2:4, 5])
    assert info.source is None and info.line_period_s is None
    assert scan_pattern_from_tiff(p) is None  # no timing in the file: the caller must ask


def test_bigtiff_and_compressed_tiff_are_read_lazily(tmp_path: Path) -> None:
    data = _movie(t=7, dtype="uint16")
    p = tmp_path / "z.tif"
    tifffile.imwrite(p, data, compression="zlib", bigtiff=True)
    movie, info = open_movie(p)
    try:
        assert isinstance(movie, TiffPageStack) and not info.memmapped
        assert movie.shape == data.shape and len(movie) == 7 and movie.dtype == data.dtype
        np.testing.assert_array_equal(movie[3], data[3])
        np.testing.assert_array_equal(movie[-1], data[-1])
        np.testing.assert_array_equal(movie[1:6:2], data[1:6:2])
        np.testing.assert_array_equal(movie[[5, 0, 5]], data[[5, 0, 5]])
        mask = np.zeros(7, bool)
        mask[[1, 4]] = True
        np.testing.assert_array_equal(movie[mask], data[mask])
        np.testing.assert_array_equal(movie[2:5, 3, 1:4], data[2:5, 3, 1:4])
        np.testing.assert_array_equal(movie[..., 2], data[..., 2])
        np.testing.assert_array_equal(np.asarray(movie), data)
        with pytest.raises(IndexError):
            movie[7]
    finally:
        movie.close()


def test_2d_image_and_extra_axes_are_refused_with_the_axis_named(tmp_path: Path) -> None:
    p = tmp_path / "one.tif"
    tifffile.imwrite(p, np.zeros((10, 12), np.uint16))
    with pytest.raises(ReaderError, match="single 2-D image"):
        open_movie(p)
    p = tmp_path / "ch.tif"
    tifffile.imwrite(p, np.zeros((3, 2, 10, 12), np.uint16), imagej=True, metadata={"axes": "TCYX"})
    with pytest.raises(ReaderError, match=r"C \(channel, length 2\)"):
        open_movie(p)
    p = tmp_path / "rgb.tif"
    tifffile.imwrite(p, np.zeros((4, 10, 12, 3), np.uint8), photometric="rgb")
    with pytest.raises(ReaderError, match="colour-sample axis S"):
        open_movie(p)
    p = tmp_path / "fake.tif"
    p.write_text("not a tiff")
    with pytest.raises(ReaderError, match="not a readable TIFF"):
        open_movie(p)


def test_imagej_hyperstack_with_singleton_axes_and_frame_interval(tmp_path: Path) -> None:
    data = np.arange(5 * 10 * 12, dtype=np.uint16).reshape(5, 1, 1, 10, 12)
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, data, imagej=True, metadata={"axes": "TZCYX", "finterval": 0.05})
    movie, info = open_movie(p)
    assert movie.shape == (5, 10, 12)
    np.testing.assert_array_equal(movie[4], data[4, 0, 0])
    assert info.source == "imagej" and info.frame_rate_hz == pytest.approx(20.0)
    assert info.line_period_s is None and scan_pattern_from_tiff(p) is None


def test_synthetic_scanimage_file_is_read_by_tifffile_and_gives_the_scan_pattern(tmp_path: Path) -> None:
    data = _movie()
    p = tmp_path / "si.tif"
    write_scanimage_bigtiff(p, data)
    with tifffile.TiffFile(p) as tif:  # the file is faithful enough for tifffile's own parser
        assert tif.is_scanimage and tif.is_bigtiff
        meta = tif.scanimage_metadata
        assert meta["version"] == 3
        assert meta["FrameData"]["SI.hRoiManager.linePeriod"] == pytest.approx(6.3e-05)
        assert "RoiGroups" in meta
    movie, info = open_movie(p)
    assert info.memmapped  # evenly spaced uncompressed frames -> strided memory map
    np.testing.assert_array_equal(movie[:], data)
    assert info.source == "scanimage"
    assert info.line_period_s == pytest.approx(6.3e-05)
    assert info.frame_rate_hz == pytest.approx(400.0)
    assert info.lines_per_frame == 32 and info.bidirectional is True
    assert info.flyback_s == pytest.approx(0.000484)
    sp = scan_pattern_from_tiff(p)
    assert sp is not None and sp.n_rows == 32 and sp.n_sweeps == 6 and sp.bidirectional
    assert sp.line_period == pytest.approx(6.3e-05) and sp.frame_period == pytest.approx(0.0025)
    rt = sp.row_times()
    expected = np.arange(6)[:, None] * 0.0025 + (np.arange(32)[None, :] + 0.5) * 6.3e-05
    np.testing.assert_allclose(rt, expected, rtol=1e-12)


def test_scanimage_uneven_frames_without_header_block_use_the_software_tag(tmp_path: Path) -> None:
    data = _movie(t=4)
    p = tmp_path / "si_noheader.tif"
    write_scanimage_bigtiff(p, data, header=False, even=False)
    movie, info = open_movie(p)
    try:
        assert isinstance(movie, TiffPageStack)  # frames not evenly spaced -> page reader
        np.testing.assert_array_equal(movie[:], data)
        assert info.source == "scanimage" and info.line_period_s == pytest.approx(6.3e-05)
    finally:
        movie.close()
    assert scan_pattern_from_tiff(p) is not None


def test_scanimage_unacquired_rows_give_a_partial_pattern(tmp_path: Path) -> None:
    data = _movie(t=4)
    strips = [np.arange(0, 16), np.arange(16, 32)]
    for k in range(4):
        off = strips[(k + 1) % 2]
        data[k, off] = 0  # rows this sweep did not acquire
    p = tmp_path / "si_strips.tif"
    write_scanimage_bigtiff(p, data)
    sp = scan_pattern_from_tiff(p)
    assert sp is not None and len(sp.cycle) == 2
    np.testing.assert_array_equal(sp.rows_in_sweep(0), strips[0])
    np.testing.assert_array_equal(sp.rows_in_sweep(1), strips[1])
    assert sp.frame_period == pytest.approx(0.0025)
    full = scan_pattern_from_tiff(p, detect_unacquired_rows=False)
    assert full is not None and full.acquired_fraction() == 1.0


def test_scanimage_two_channels_or_fast_z_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "si2.tif"
    write_scanimage_bigtiff(p, _movie(t=4), SI_TEXT.replace("channelSave = 1", "channelSave = [1;2]"))
    with pytest.raises(ReaderError, match=r"2 channels.*channelSave"):
        open_movie(p)
    p = tmp_path / "siz.tif"
    text = SI_TEXT.replace("hFastZ.enable = false", "hFastZ.enable = true").replace("numSlices = 1", "numSlices = 3")
    write_scanimage_bigtiff(p, _movie(t=6), text)
    with pytest.raises(ReaderError, match=r"fast-Z.*\(Z\)"):
        open_movie(p)


def test_scanimage_mroi_is_not_timed_as_a_raster(tmp_path: Path) -> None:
    p = tmp_path / "mroi.tif"
    write_scanimage_bigtiff(p, _movie(t=2), SI_TEXT.replace("mroiEnable = false", "mroiEnable = true"))
    with pytest.raises(ReaderError, match="mroiEnable"):
        scan_pattern_from_tiff(p)


def test_parse_scanimage_text_formats() -> None:
    # tifffile's parser (matlabstr2py): MATLAB column vectors stay nested, as tifffile returns them
    d = parse_scanimage_text(SI_TEXT + "\nSI.hChannels.channelSave = [1;2]\nSI.name = 'a b'\nSI.x = Inf\n")
    assert d["SI.hRoiManager.linePeriod"] == pytest.approx(6.3e-05)
    assert d["SI.hRoiManager.linesPerFrame"] == 32 and isinstance(d["SI.hRoiManager.linesPerFrame"], int)
    assert d["SI.hScan2D.bidirectional"] is True
    assert d["SI.hChannels.channelSave"] == [[1], [2]]
    assert d == {**tifffile.matlabstr2py(SI_TEXT), "SI.hChannels.channelSave": [[1], [2]], "SI.name": "a b",
                 "SI.x": np.inf}
    assert parse_scanimage_text("frameTimestamps_sec = 0.125") == {"frameTimestamps_sec": 0.125}
    assert parse_scanimage_text("") == {}
    assert d["SI.name"] == "a b" and d["SI.x"] == np.inf
    d3 = parse_scanimage_text("state.acq.frameRate=7.8125\r\nstate.acq.msPerLine=2\r\nstate.acq.linesPerFrame=64")
    assert d3 == {"state.acq.frameRate": 7.8125, "state.acq.msPerLine": 2, "state.acq.linesPerFrame": 64}


def test_scanimage_description_only_files(tmp_path: Path) -> None:
    # ScanImage 3: everything in the ImageDescription, ms per line
    p = tmp_path / "si3.tif"
    desc = "state.configName='x'\rstate.acq.frameRate=7.8125\rstate.acq.msPerLine=2\rstate.acq.linesPerFrame=64"
    tifffile.imwrite(p, _movie(t=3, y=64, x=20, dtype="uint16"), description=desc, metadata=None,
                     photometric="minisblack")
    info = read_movie_info(p)
    assert info.source == "scanimage"
    assert info.line_period_s == pytest.approx(0.002) and info.frame_rate_hz == pytest.approx(7.8125)
    sp = scan_pattern_from_tiff(p)
    assert sp is not None and sp.frame_period == pytest.approx(0.128) and not sp.bidirectional


# ============================================================================ labels helper
def test_overlap_goes_to_the_larger_weight_and_outside_pixels_are_named() -> None:
    ys = [np.array([0, 0, 1]), np.array([0, 1, 1])]
    xs = [np.array([0, 1, 1]), np.array([1, 1, 2])]
    ws = [np.array([1.0, 0.2, 0.9]), np.array([0.5, 0.9, 1.0])]
    lab = labels_from_weighted_pixels(ys, xs, ws, (2, 3), source="f", field="m")
    # (0,1): 0.2 vs 0.5 -> ROI 2; (1,1): tie 0.9 vs 0.9 -> first ROI
    np.testing.assert_array_equal(lab, [[1, 2, 0], [0, 1, 2]])
    with pytest.raises(ReaderError, match=r"f: ROI 7 in 'm' has pixels outside the 2 x 3 image"):
        labels_from_weighted_pixels([np.array([2])], [np.array([0])], None, (2, 3), source="f", field="m",
                                    roi_names=[7])


# ============================================================================ suite2p
def test_suite2p_old_layout_round_trip(tmp_path: Path) -> None:
    ref = make_suite2p(tmp_path / "suite2p" / "plane0", "ops")
    d = read_suite2p(tmp_path / "suite2p" / "plane0")
    assert d.layout == "ops" and d.fs == 30.0 and d.n_frames == T and d.shape == (LY, LX)
    np.testing.assert_array_equal(d.roi_index, [0, 1, 3])
    # traces come back time first, (T, N)
    assert d.F.shape == (T, 3) and d.F.flags.c_contiguous
    np.testing.assert_array_equal(d.F, ref["F"][[0, 1, 3]].T)
    np.testing.assert_allclose(d.Fneu, ref["F"][[0, 1, 3]].T * 0.5)
    assert d.spks is not None and d.spks.shape == (T, 3) and d.iscell.all()
    assert d.binary is None and d.movie() is None  # no data.bin kept
    np.testing.assert_allclose(d.cell_probability, [0.9, 0.8, 0.7])
    np.testing.assert_array_equal(d.med_rows, [5, 5, 15])
    assert set(np.unique(d.labels)) == {0, 1, 2, 3}
    # label 3 is suite2p ROI 3, painted exactly on its pixels (no overlap there)
    y3, x3, _ = ref["rois"][3]
    assert (d.labels[y3, x3] == 3).all() and (d.labels == 3).sum() == y3.size
    # the non-cell ROI 2 is not painted
    y2, x2, _ = ref["rois"][2]
    assert (d.labels[y2, x2] == 0).all()
    # the parent folders resolve to the single plane
    assert read_suite2p(tmp_path).plane_dir == d.plane_dir
    assert read_suite2p(tmp_path / "suite2p").plane_dir == d.plane_dir


def test_suite2p_overlap_rules(tmp_path: Path) -> None:
    ref = make_suite2p(tmp_path / "plane0", "ops")
    (y0, x0, l0), (y1, x1, l1) = ref["rois"][0], ref["rois"][1]
    w0 = {(a, b): w for a, b, w in zip(y0, x0, l0, strict=True)}
    w1 = {(a, b): w for a, b, w in zip(y1, x1, l1, strict=True)}
    shared = sorted(set(w0) & set(w1))
    assert shared
    d = read_suite2p(tmp_path / "plane0", overlap="weight")
    for yx in shared:
        want = 1 if w0[yx] >= w1[yx] else 2
        assert d.labels[yx] == want
    assert any(w0[yx] < w1[yx] for yx in shared) and any(w0[yx] > w1[yx] for yx in shared)
    dd = read_suite2p(tmp_path / "plane0", overlap="drop")
    for yx in shared:
        assert dd.labels[yx] == 0
    assert (dd.labels == 1).sum() == len(w0) - len(shared)
    with pytest.raises(ValueError, match="overlap must be"):
        read_suite2p(tmp_path / "plane0", overlap="union")
    allr = read_suite2p(tmp_path / "plane0", only_cells=False)
    assert allr.n_rois == 4 and not allr.iscell[2]


def test_suite2p_new_layout(tmp_path: Path) -> None:
    make_suite2p(tmp_path / "a" / "plane0", "db")
    d = read_suite2p(tmp_path / "a" / "plane0")
    assert d.layout == "db" and d.fs == 15.0 and d.shape == (LY, LX)
    make_suite2p(tmp_path / "b" / "plane0", "reg_only")  # image size from reg_outputs['meanImg']
    d2 = read_suite2p(tmp_path / "b" / "plane0")
    assert d2.shape == (LY, LX) and d2.fs == 15.0
    np.testing.assert_array_equal(d.labels, d2.labels)


def test_suite2p_registered_binary_is_a_read_only_memmap(tmp_path: Path) -> None:
    ref = make_suite2p(tmp_path / "plane0", "ops", binary=True)
    d = read_suite2p(tmp_path / "plane0")
    assert d.binary == tmp_path / "plane0" / "data.bin"
    m = d.movie()
    assert isinstance(m, np.memmap) and m.shape == (T, LY, LX) and m.dtype == np.int16
    assert not m.flags.writeable
    np.testing.assert_array_equal(m[7], ref["movie"][7])
    # a binary of the wrong size names the file and the sizes
    (tmp_path / "plane0" / "data.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ReaderError, match=r"data.bin: 10 bytes, but 50 frames of 20 x 24"):
        read_suite2p(tmp_path / "plane0").movie()


def test_suite2p_malformed_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReaderError, match="missing stat.npy"):
        read_suite2p(empty)
    with pytest.raises(FileNotFoundError):
        read_suite2p(tmp_path / "nope")
    make_suite2p(tmp_path / "bad_len" / "plane0", "ops", nframes=T + 5)
    with pytest.raises(ReaderError, match=r"has 50 frames but ops.npy field 'nframes' says 55"):
        read_suite2p(tmp_path / "bad_len" / "plane0")
    p = tmp_path / "outside" / "plane0"
    make_suite2p(p, "ops")
    stat = list(np.load(p / "stat.npy", allow_pickle=True))
    stat[3]["ypix"] = stat[3]["ypix"] + 10
    np.save(p / "stat.npy", np.array(stat, dtype=object), allow_pickle=True)
    with pytest.raises(ReaderError, match=r"stat.npy: ROI 3 in 'ypix/xpix' has pixels outside the 20 x 24"):
        read_suite2p(p)
    p = tmp_path / "rows" / "plane0"
    make_suite2p(p, "ops")
    np.save(p / "F.npy", np.zeros((3, T), np.float32))
    with pytest.raises(ReaderError, match=r"F.npy: shape \(3, 50\) does not match stat.npy's 4 ROIs"):
        read_suite2p(p)
    p = tmp_path / "two"
    make_suite2p(p / "plane0", "ops")
    make_suite2p(p / "plane1", "ops")
    with pytest.raises(ReaderError, match="several suite2p planes"):
        read_suite2p(p)


# ============================================================================ CaImAn
def test_caiman_round_trip_with_fortran_order_and_overlaps(tmp_path: Path) -> None:
    p = tmp_path / "cnm.hdf5"
    ref = make_caiman(p)
    d = read_caiman(p)
    assert d.dims == (18, 26) and d.fr == 30.0 and d.n_rois == 3
    np.testing.assert_allclose(d.C, ref["C"].T.astype(np.float32))  # (T, N)
    assert d.S is not None and d.S.shape == (40, 3)
    comps = ref["comps"]
    keep = [c >= 0.2 * c.max() for c in comps]
    for k in range(3):
        # every labelled pixel of ROI k is inside its thresholded footprint
        assert keep[k][d.labels == k + 1].all()
    both = keep[0] & keep[1]
    assert both.any()
    for y, x in zip(*np.nonzero(both), strict=True):
        assert d.labels[y, x] == (1 if comps[0][y, x] >= comps[1][y, x] else 2)
    # centre of ROI 3 (row 12, column 20) lands at (12, 20): a C-order reshape would not
    assert d.labels[12, 20] == 3
    d2 = read_caiman(p, threshold=0.9)
    assert (d2.labels > 0).sum() < (d.labels > 0).sum()


def test_caiman_accepted_components_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "acc.hdf5"
    ref = make_caiman(p, idx_components=[2, 0])
    d = read_caiman(p)
    np.testing.assert_array_equal(d.component_index, [0, 2])
    np.testing.assert_allclose(d.C, ref["C"][[0, 2]].T.astype(np.float32))
    assert read_caiman(p, only_accepted=False).n_rois == 3
    p = tmp_path / "bad.hdf5"
    make_caiman(p, bad_shape=True)
    with pytest.raises(ReaderError, match=r"'estimates/A' has 469 pixel rows but 'params/data/dims'"):
        read_caiman(p)
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.zeros(3)
        f["params/data/dims"] = np.array([4, 4])
    with pytest.raises(ReaderError, match="no 'estimates/A'"):
        read_caiman(p)


# ============================================================================ NWB
@pytest.mark.parametrize("image_mask", [False, True])
def test_nwb_round_trip(tmp_path: Path, image_mask: bool) -> None:
    pytest.importorskip("pynwb")
    from napari_sbtt.core.readers import read_nwb

    movie = _movie(t=5, y=12, x=17, dtype="uint16")
    rois = [
        (np.array([2, 2, 3]), np.array([3, 4, 4]), np.array([1.0, 0.5, 0.8])),
        (np.array([3, 9]), np.array([4, 15]), np.array([0.9, 1.0])),  # (3,4) shared: 0.9 > 0.8 -> ROI 2
    ]
    tr = np.random.default_rng(3).normal(size=(5, 2))
    p = tmp_path / "rec.nwb"
    _write_nwb(p, movie, rois, image_mask=image_mask, traces=tr)
    assert detect_format(p) == "nwb"
    with read_nwb(p) as d:
        assert d.movie is not None and d.movie.shape == (5, 12, 17) and d.rate_hz == 40.0
        np.testing.assert_array_equal(d.movie[:], movie)
        np.testing.assert_array_equal(d.movie[3, 2:5], movie[3, 2:5])
        np.testing.assert_array_equal(d.movie[[4, 1]], movie[[4, 1]])
        expected = np.zeros((12, 17), np.int32)
        expected[2, 3] = expected[2, 4] = 1
        expected[3, 4] = 2
        expected[9, 15] = 2
        np.testing.assert_array_equal(d.labels, expected)
        np.testing.assert_allclose(d.traces, tr)  # (T, N), time first
        assert d.traces_rate_hz == 40.0 and d.segmentation_name == "PlaneSegmentation"
    with pytest.raises(ValueError):
        d.movie[0]  # the file is closed


def test_nwb_without_segmentation_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("pynwb")
    from napari_sbtt.core.readers import read_nwb

    p = tmp_path / "raw.nwb"
    _write_nwb(p, _movie(t=3, y=8, x=9, dtype="uint16"), [], with_segmentation=False)
    with pytest.raises(ReaderError, match=r"raw.nwb: no ROI segmentation .*PlaneSegmentation"):
        read_nwb(p)


def test_nwb_missing_pynwb_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from napari_sbtt.core.readers import read_nwb

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "pynwb" or name.startswith("pynwb."):
            raise ImportError("no pynwb")
        return real(name, *a, **k)

    p = tmp_path / "x.nwb"
    p.write_bytes(b"\x89HDF\r\n\x1a\n")
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"pip install napari-sbtt\[nwb\]"):
        read_nwb(p)


# ============================================================================ traces
def test_read_traces_npy_orientation(tmp_path: Path) -> None:
    tn = np.random.default_rng(4).normal(size=(100, 7))
    np.save(tmp_path / "tn.npy", tn)
    np.save(tmp_path / "nt.npy", tn.T.astype(np.float32))
    np.testing.assert_allclose(read_traces(tmp_path / "tn.npy"), tn)
    np.testing.assert_allclose(read_traces(tmp_path / "nt.npy"), tn, rtol=1e-6)
    np.testing.assert_allclose(read_traces(tmp_path / "nt.npy", orientation="nt"), tn, rtol=1e-6)
    assert read_traces(tmp_path / "nt.npy", orientation="tn").shape == (7, 100)  # explicit override wins
    np.testing.assert_allclose(read_traces(tmp_path / "nt.npy", n_frames=100), tn, rtol=1e-6)
    with pytest.raises(ReaderError, match="movie has 90 frames"):
        read_traces(tmp_path / "tn.npy", n_frames=90)
    with pytest.raises(ReaderError, match="100 frames .*the movie has 7"):
        read_traces(tmp_path / "tn.npy", orientation="tn", n_frames=7)
    np.save(tmp_path / "sq.npy", np.zeros((5, 5)))
    with pytest.raises(ReaderError, match="ambiguous.*orientation='tn'"):
        read_traces(tmp_path / "sq.npy")
    np.save(tmp_path / "one.npy", np.arange(9.0))
    assert read_traces(tmp_path / "one.npy").shape == (9, 1)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ReaderError, match="holds pickled Python objects"):
        read_traces(tmp_path / "obj.npy")


def test_read_traces_csv_missing_values_and_h5(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("roi1,roi2,roi3\n1,2,3\n4,,6\nNaN,8,9\n10,11,NA\n")
    a = read_traces(p)
    assert a.shape == (4, 3)
    assert np.isnan(a[1, 1]) and np.isnan(a[2, 0]) and np.isnan(a[3, 2]) and a[3, 1] == 11
    p = tmp_path / "w.txt"
    p.write_text("1 2\n3 4\n5 6\n")
    np.testing.assert_array_equal(read_traces(p), [[1, 2], [3, 4], [5, 6]])
    p = tmp_path / "bad.csv"
    p.write_text("1,2\n3\n")
    with pytest.raises(ReaderError, match="line 2 has 1 values"):
        read_traces(p)
    p = tmp_path / "t.h5"
    with h5py.File(p, "w") as f:
        f["F"] = np.ones((3, 30))
        f["Fneu"] = np.zeros((3, 30))
    with pytest.raises(ReaderError, match="several datasets.*dataset=NAME"):
        read_traces(p)
    assert read_traces(p, dataset="F").shape == (30, 3)
    with pytest.raises(ReaderError, match="no dataset 'G'"):
        read_traces(p, dataset="G")


# ============================================================================ detect_format
def test_detect_format_recognises_each_kind_and_declines_others(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "m.tif", _movie(t=2, dtype="uint16"))
    assert detect_format(tmp_path / "m.tif") == "tiff"
    make_suite2p(tmp_path / "s2p" / "suite2p" / "plane0")
    assert detect_format(tmp_path / "s2p" / "suite2p" / "plane0") == "suite2p"
    assert detect_format(tmp_path / "s2p") == "suite2p"
    assert detect_format(tmp_path / "s2p" / "suite2p" / "plane0" / "stat.npy") == "suite2p"
    assert detect_format(tmp_path / "s2p" / "suite2p" / "plane0" / "F.npy") == "traces"
    make_caiman(tmp_path / "c.hdf5")
    assert detect_format(tmp_path / "c.hdf5") == "caiman"
    with h5py.File(tmp_path / "nwbish.h5", "w") as f:
        f.attrs["nwb_version"] = "2.7.0"
    assert detect_format(tmp_path / "nwbish.h5") == "nwb"
    np.save(tmp_path / "t.npy", np.zeros((10, 3)))
    assert detect_format(tmp_path / "t.npy") == "traces"
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,\n")
    assert detect_format(tmp_path / "t.csv") == "traces"
    # unrelated things
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hello world\nthis is text\n")
    (other / "blob.bin").write_bytes(bytes(range(256)))
    np.save(other / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with h5py.File(other / "strings.h5", "w") as f:
        f["s"] = "text"
    (other / "broken.tif").write_bytes(b"II*\x00garbage")  # magic only: still "tiff", the reader reports
    for q in [other, other / "notes.txt", other / "blob.bin", other / "obj.npy", other / "strings.h5",
              tmp_path / "missing", tmp_path / "missing.tif"]:
        assert detect_format(q) is None, q
    two = tmp_path / "two"
    make_suite2p(two / "plane0")
    make_suite2p(two / "plane1")
    assert detect_format(two) is None  # ambiguous: the reader declines, the user picks a plane
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert detect_format(other / "broken.tif") == "tiff"
