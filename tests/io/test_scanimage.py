"""ScanImage TIFFs written the way ScanImage writes them (tifffile, per-page tags): header parsed by
tifffile, per-frame timestamps, recordings split across files, multi-ROI files refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.core.readers import (
    ReaderError,
    TiffPageStack,
    open_movie,
    read_movie_info,
    scan_pattern_from_tiff,
)
from napari_sbtt.recording import load_recording
from tests.factories import SI_TEXT, make_movie, write_scanimage_tifffile

FP = 0.0025  # SI_TEXT's scanFramePeriod
LINE = 6.3e-05


def _labels(y: int = 32, x: int = 20) -> np.ndarray:
    labels = np.zeros((y, x), np.int32)
    labels[3:7, 2:6] = 1
    labels[20:25, 10:15] = 2
    return labels


def test_tifffile_sees_the_synthetic_file_as_scanimage(tmp_path: Path) -> None:
    p = tmp_path / "rec_00001.tif"
    write_scanimage_tifffile(p, make_movie(t=4))
    with tifffile.TiffFile(p) as tif:
        assert tif.is_scanimage and tif.is_bigtiff and len(tif.pages) == 4
        assert tifffile.matlabstr2py(tif.pages[2].description)["frameNumbers"] == 3
        assert tif.pages[3].software.startswith("SI.")
    info = read_movie_info(p)
    assert info.source == "scanimage" and info.line_period_s == pytest.approx(LINE)
    assert info.frame_rate_hz == pytest.approx(1 / FP) and info.bidirectional and info.lines_per_frame == 32
    assert info.metadata["SI.hScan2D.flybackTimePerFrame"] == pytest.approx(0.000484)
    np.testing.assert_allclose(info.frame_timestamps_s, np.arange(4) * FP)
    assert info.files == (str(p.resolve()),)


def test_frame_timestamps_time_the_sweeps(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ts = 0.0123 + np.arange(8) * FP + rng.uniform(-40e-6, 40e-6, 8)  # a clock that jitters by tens of us
    p = tmp_path / "jitter.tif"
    frames = make_movie(t=8)
    write_scanimage_tifffile(p, frames, timestamps=ts)
    sp = scan_pattern_from_tiff(p)
    assert sp is not None and sp.has_sweep_starts
    np.testing.assert_allclose(sp.sweep_starts(), np.round(ts, 6))  # ScanImage writes microseconds
    np.testing.assert_allclose(sp.row_times(), np.round(ts, 6)[:, None] + (np.arange(32) + 0.5)[None] * LINE)
    assert sp.t0 == pytest.approx(0.0123, abs=1e-4) and sp.bidirectional
    # ... and the recording's observations follow them
    with load_recording(p, rois=_labels()) as rec:
        assert rec.scan is not None and rec.scan.has_sweep_starts
        np.testing.assert_allclose(rec.scan.sweep_starts(), sp.sweep_starts())


def test_timestamps_on_the_clock_give_the_clock(tmp_path: Path) -> None:
    p = tmp_path / "clock.tif"
    write_scanimage_tifffile(p, make_movie(t=5), timestamps=0.5 + np.arange(5) * FP)
    sp = scan_pattern_from_tiff(p)
    assert sp is not None and not sp.has_sweep_starts and sp.is_uniform
    assert sp.t0 == pytest.approx(0.5) and sp.frame_period == pytest.approx(FP)
    assert "sweep_starts_s" not in sp.to_dict()


def test_timestamps_that_cannot_time_the_movie_are_named(tmp_path: Path) -> None:
    p = tmp_path / "bad.tif"
    write_scanimage_tifffile(p, make_movie(t=4), timestamps=[0.0, FP, FP, 3 * FP])
    with pytest.raises(ReaderError, match=r"bad.tif: the ScanImage frame timestamps \(frameTimestamps_sec\).*"
                                          r"--frame-period"):
        scan_pattern_from_tiff(p)
    # the user's own timing still opens it
    with load_recording(p, rois=_labels(), frame_period=FP) as rec:
        assert rec.frame_period == pytest.approx(FP)


def _split(tmp_path: Path, sizes: tuple[int, ...] = (4, 4, 2), stem: str = "rec_00001_") -> tuple[list[Path], np.ndarray]:
    frames = make_movie(t=sum(sizes))
    ts = np.arange(sum(sizes)) * FP + 1e-5 * np.arange(sum(sizes)) ** 1.5  # drifting clock
    paths, k = [], 0
    for i, n in enumerate(sizes):
        q = tmp_path / f"{stem}{i + 1:05d}.tif"
        write_scanimage_tifffile(q, frames[k:k + n], timestamps=ts[k:k + n], first_frame=k + 1)
        paths.append(q)
        k += n
    return paths, frames


def test_a_recording_split_across_files_opens_as_one_movie(tmp_path: Path) -> None:
    paths, frames = _split(tmp_path)
    for opened in (paths[0], paths[1]):  # any chunk opens the whole acquisition
        movie, info = open_movie(opened)
        try:
            assert isinstance(movie, TiffPageStack) and movie.shape == (10, 32, 20)
            np.testing.assert_array_equal(movie[:], frames)
            np.testing.assert_array_equal(movie[[9, 3, 4]], frames[[9, 3, 4]])
            assert info.files == tuple(str(q.resolve()) for q in paths) and info.shape == (10, 32, 20)
            assert info.frame_timestamps_s.shape == (10,)
        finally:
            movie.close()
    sp = scan_pattern_from_tiff(paths[2])
    assert sp is not None and sp.n_sweeps == 10 and sp.has_sweep_starts
    with load_recording(paths[0], rois=_labels()) as rec:
        assert rec.movie.shape == (10, 32, 20) and rec.scan.n_sweeps == 10
        assert rec.provenance["tiff_files"] == [str(q.resolve()) for q in paths]


def test_only_files_that_continue_the_acquisition_are_joined(tmp_path: Path) -> None:
    paths, frames = _split(tmp_path, sizes=(3, 3))
    # a third numbered file from another acquisition (loop mode): not joined
    other = tmp_path / "rec_00001_00003.tif"
    write_scanimage_tifffile(other, make_movie(t=3), first_frame=7, acquisition=2)
    # a file with other settings but continuing numbers: not joined either
    write_scanimage_tifffile(tmp_path / "rec_00001_00000.tif", make_movie(t=2),
                             si_text=SI_TEXT.replace("6.3e-05", "6.4e-05"), first_frame=-1)
    info = read_movie_info(paths[1])
    assert info.files == tuple(str(q.resolve()) for q in paths) and info.shape[0] == 6
    assert read_movie_info(other).files == (str(other.resolve()),)
    # a gap in the frame numbers ends the recording too
    gap = tmp_path / "gap"
    gap.mkdir()
    write_scanimage_tifffile(gap / "g_00001.tif", make_movie(t=2), first_frame=1)
    write_scanimage_tifffile(gap / "g_00002.tif", make_movie(t=2), first_frame=4)
    assert read_movie_info(gap / "g_00001.tif").shape[0] == 2


def test_multi_roi_files_get_a_one_line_message(tmp_path: Path) -> None:
    p = tmp_path / "meso.tif"
    write_scanimage_tifffile(p, make_movie(t=2), SI_TEXT.replace("mroiEnable = false", "mroiEnable = true"),
                             n_rois=3)
    for call in (lambda: open_movie(p), lambda: scan_pattern_from_tiff(p), lambda: load_recording(p, rois=_labels())):
        with pytest.raises(ReaderError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and "meso.tif" in msg and "not supported yet" in msg
        assert "SI.hRoiManager.mroiEnable = true, 3 scanfield(s) in RoiGroups" in msg


def test_scanimage3_saving_two_channels_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "si3.tif"
    desc = "state.acq.frameRate=7.8125\rstate.acq.msPerLine=2\rstate.acq.linesPerFrame=8\r" \
           "state.acq.savingChannel1=1\rstate.acq.savingChannel2=1\r"
    tifffile.imwrite(p, make_movie(t=4, y=8, x=6, dtype="uint16"), description=desc, metadata=None,
                     photometric="minisblack")
    with pytest.raises(ReaderError, match=r"saved 2 channels \(state.acq.savingChannel1 / state.acq.savingChannel2"):
        open_movie(p)


def test_napari_reader_opens_the_split_recording_on_its_timestamps(tmp_path: Path) -> None:
    from napari_sbtt.core.scan import ScanPattern
    from napari_sbtt.plugin._reader import get_reader

    paths, frames = _split(tmp_path)
    reader = get_reader(str(paths[0]))
    assert reader is not None
    ((data, meta, kind),) = reader(str(paths[0]))
    try:
        assert kind == "image" and data.shape == (10, 32, 20)
        np.testing.assert_array_equal(np.asarray(data[7]), frames[7])
        md = meta["metadata"]
        assert md["source_files"] == [str(q.resolve()) for q in paths]
        sp = ScanPattern.from_dict(md["scan_pattern"])
        assert sp.has_sweep_starts and sp.n_sweeps == 10
        assert meta["scale"][0] == pytest.approx(sp.frame_period)
        assert meta["translate"][0] == pytest.approx(sp.t0 + sp.frame_period / 2)
    finally:
        data.close()
    assert get_reader(str(tmp_path / "nothing_00001.tif")) is None
