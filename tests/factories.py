"""Builders shared by the tests: small files in the published layouts of each supported format,
and small results.

ScanImage BigTIFF, suite2p plane folders, CaImAn HDF5 results and NWB files are
written here with numpy/h5py/pynwb following the formats' own field definitions.
Import with ``from tests.factories import ...`` (tests/ is a package).
"""

from __future__ import annotations

import struct
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from napari_sbtt.core.scan import FineGrid
from napari_sbtt.result import SBTTResult

# ============================================================================ TIFF (ScanImage)
SI_TEXT = "\n".join(
    [
        "SI.VERSION_MAJOR = '2021'",
        "SI.hChannels.channelSave = 1",
        "SI.hFastZ.enable = false",
        "SI.hRoiManager.linePeriod = 6.3e-05",
        "SI.hRoiManager.linesPerFrame = 32",
        "SI.hRoiManager.mroiEnable = false",
        "SI.hRoiManager.pixelsPerLine = 20",
        "SI.hRoiManager.scanFramePeriod = 0.0025",
        "SI.hRoiManager.scanFrameRate = 400",
        "SI.hScan2D.bidirectional = true",
        "SI.hScan2D.flybackTimePerFrame = 0.000484",
        "SI.hStackManager.numSlices = 1",
    ]
)


def write_scanimage_bigtiff(
    path: Path, frames: np.ndarray, si_text: str = SI_TEXT, *, header: bool = True, even: bool = True
) -> None:
    """A BigTIFF laid out as ScanImage 2016+ writes it (ScanImage BigTiff specification).

    Bytes 0-15: BigTIFF header. With ``header``: bytes 16-31 hold the magic
    number 0x07030301, the ScanImage TIFF version (3), the length of the
    non-varying frame data and of the ROI-group JSON, followed by both strings
    (NUL-terminated). Each frame: ImageDescription = varying frame data,
    Software = non-varying frame data, Artist = ROI groups; then the int16
    pixels and the IFD. ``even=False`` makes frame descriptions of varying
    length so the frames are not evenly spaced in the file.
    """
    frames = np.asarray(frames, dtype="<i2")
    n_t, n_y, n_x = frames.shape
    roi = '{"RoiGroups": {"imagingRoiGroup": {"ver": 1}}}'
    buf = bytearray(b"II" + struct.pack("<HHHQ", 43, 8, 0, 0))
    if header:
        fb, rb = si_text.encode() + b"\0", roi.encode() + b"\0"
        buf += struct.pack("<IIII", 0x07030301, 3, len(fb), len(rb)) + fb + rb
    next_ptr = 8

    def blob(b: bytes) -> int:
        while len(buf) % 8:
            buf.append(0)
        off = len(buf)
        buf.extend(b)
        return off

    for t in range(n_t):
        desc = f"frameNumbers = {t + 1}\nframeTimestamps_sec = {t * 0.0025:.6f}\n"
        desc = desc.ljust(80) if even else desc + " " * (9 * t)
        d, s, a = desc.encode() + b"\0", si_text.encode() + b"\0", roi.encode() + b"\0"
        d_off, s_off, a_off = blob(d), blob(s), blob(a)
        data_off = blob(frames[t].tobytes())
        entries = [
            (256, 4, 1, n_x), (257, 4, 1, n_y), (258, 3, 1, 16), (259, 3, 1, 1), (262, 3, 1, 1),
            (270, 2, len(d), d_off), (273, 16, 1, data_off), (277, 3, 1, 1), (278, 4, 1, n_y),
            (279, 16, 1, n_y * n_x * 2), (305, 2, len(s), s_off), (315, 2, len(a), a_off), (339, 3, 1, 2),
        ]
        ifd = bytearray(struct.pack("<Q", len(entries)))
        for tag, typ, count, value in entries:
            fmt = {3: "<H", 4: "<I", 16: "<Q", 2: "<Q"}[typ]
            ifd += struct.pack("<HHQ", tag, typ, count) + struct.pack(fmt, value).ljust(8, b"\0")
        ifd += struct.pack("<Q", 0)
        ifd_off = blob(bytes(ifd))
        struct.pack_into("<Q", buf, next_ptr, ifd_off)
        next_ptr = ifd_off + len(ifd) - 8
    path.write_bytes(bytes(buf))


def scanimage_frame_description(frame: int, timestamp: float, acquisition: int = 1, in_acquisition: int | None = None) -> str:
    """The varying frame data ScanImage 2016+ writes in each page's ImageDescription (1-based frame numbers)."""
    return "\n".join([
        f"frameNumbers = {frame}",
        f"acquisitionNumbers = {acquisition}",
        f"frameNumberAcquisition = {frame if in_acquisition is None else in_acquisition}",
        f"frameTimestamps_sec = {timestamp:.6f}",
        "acqTriggerTimestamps_sec = ",
        "nextFileMarkerTimestamps_sec = ",
        "endOfAcquisition =  0",
        "endOfAcquisitionMode = 0",
        "dcOverVoltage = 0",
        "epoch = [2024  5 17 10 31 12.456]",
        "auxTrigger0 = []",
        "auxTrigger1 = []",
        "auxTrigger2 = []",
        "auxTrigger3 = []",
        "I2CData = {}",
    ]) + "\n"


def scanimage_roi_groups(n_rois: int = 1) -> str:
    """The ROI groups JSON of the Artist tag (one scanfield per imaging ROI; a dict when there is one)."""
    import json

    rois = [{"ver": 1, "classname": "scanimage.mroi.Roi", "name": f"ROI {k + 1}", "zs": 0,
             "scanfields": {"ver": 1, "classname": "scanimage.mroi.scanfield.fields.RotatedRectangle",
                            "centerXY": [k * 2.0, 0], "sizeXY": [1.8, 4], "pixelResolutionXY": [20, 32]}}
            for k in range(n_rois)]
    group = {"ver": 1, "classname": "scanimage.mroi.RoiGroup", "name": "Default Imaging ROI Group",
             "rois": rois[0] if n_rois == 1 else rois}
    return json.dumps({"RoiGroups": {"imagingRoiGroup": group, "photostimRoiGroups": None,
                                     "integrationRoiGroup": {"ver": 1, "rois": {"_ArrayType_": "double"}}}})


def write_scanimage_tifffile(path: Path, frames: np.ndarray, si_text: str = SI_TEXT, *,
                             timestamps: np.ndarray | None = None, first_frame: int = 1, acquisition: int = 1,
                             n_rois: int = 1) -> None:
    """A ScanImage-2016-style file written with tifffile the way ScanImage writes its tags.

    BigTIFF, one page per frame: ImageDescription = the varying frame data
    (:func:`scanimage_frame_description`; ``timestamps`` default: ``k * 0.0025`` s),
    Software = the non-varying frame data ``si_text``, Artist = the ROI groups
    JSON. Frame numbers start at ``first_frame`` (a later file of a split
    recording continues the numbers). No header block at byte 16 (tifffile
    cannot write one; ``write_scanimage_bigtiff`` does).
    """
    import tifffile

    frames = np.asarray(frames)
    n_t = frames.shape[0]
    ts = np.arange(n_t) * 0.0025 if timestamps is None else np.asarray(timestamps, float)
    artist = scanimage_roi_groups(n_rois)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for t in range(n_t):
            tw.write(frames[t], description=scanimage_frame_description(first_frame + t, ts[t], acquisition),
                     software=si_text, metadata=None, contiguous=False, photometric="minisblack",
                     extratags=[(315, "s", 0, artist, True)])


def make_movie(t: int = 6, y: int = 32, x: int = 20, dtype: str = "int16") -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(1, 1000, size=(t, y, x)).astype(dtype)



# ============================================================================ suite2p
LY, LX, T = 20, 24, 50


def _disk(cy: int, cx: int, r: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:LY, 0:LX]
    d2 = (yy - cy) ** 2 + (xx - cx) ** 2
    m = d2 <= r * r
    lam = np.exp(-d2[m] / (2 * r * r)).astype(np.float32)
    return yy[m].astype(np.int32), xx[m].astype(np.int32), lam / lam.sum()


def make_suite2p(plane: Path, layout: str = "ops", *, nframes: int | None = None, n_t: int = T,
                 offset: float = 0.0, binary: bool = False) -> dict:
    """A suite2p plane folder (stat, F, Fneu, spks, iscell and the options) for 4 ROIs, ROI 2 not a cell.

    ``F`` is (4, n_t) standard normal plus ``offset``; ``nframes`` (default n_t)
    is what the options claim; ``binary`` also writes ``data.bin``: int16
    (n_t, LY, LX) C order, each ROI's pixels at 100 + 10 x its F.
    """
    plane.mkdir(parents=True)
    rois = [_disk(5, 5, 3), _disk(5, 9, 3), _disk(14, 6, 2), _disk(15, 18, 3)]
    owner = np.zeros((LY, LX), int)
    for y, x, _ in rois:
        owner[y, x] += 1
    stat = []
    for y, x, lam in rois:
        stat.append({"ypix": y, "xpix": x, "lam": lam, "med": [int(np.median(y)), int(np.median(x))],
                     "npix": y.size, "overlap": owner[y, x] > 1, "radius": 3.0})
    np.save(plane / "stat.npy", np.array(stat, dtype=object), allow_pickle=True)
    rng = np.random.default_rng(1)
    F = (rng.normal(size=(4, n_t)) + offset).astype(np.float32)
    np.save(plane / "F.npy", F)
    np.save(plane / "Fneu.npy", (F * 0.5).astype(np.float32))
    np.save(plane / "spks.npy", np.abs(F))
    np.save(plane / "iscell.npy", np.array([[1, 0.9], [1, 0.8], [0, 0.1], [1, 0.7]]))
    n = n_t if nframes is None else nframes
    if layout == "ops":
        np.save(plane / "ops.npy", np.array({"Ly": LY, "Lx": LX, "nframes": n, "fs": 30.0}, dtype=object),
                allow_pickle=True)
    elif layout == "db":
        np.save(plane / "db.npy", np.array({"Ly": LY, "Lx": LX, "nframes": n, "data_path": []}, dtype=object),
                allow_pickle=True)
        np.save(plane / "settings.npy", np.array({"fs": 15.0, "tau": 1.0}, dtype=object), allow_pickle=True)
        np.save(plane / "reg_outputs.npy", np.array({"meanImg": np.zeros((LY, LX), np.float32)}, dtype=object),
                allow_pickle=True)
    elif layout == "reg_only":
        np.save(plane / "settings.npy", np.array({"fs": 15.0}, dtype=object), allow_pickle=True)
        np.save(plane / "reg_outputs.npy", np.array({"meanImg": np.zeros((LY, LX), np.float32)}, dtype=object),
                allow_pickle=True)
    movie = None
    if binary:
        movie = np.full((n_t, LY, LX), 100, dtype="<i2")
        for k, (y, x, _) in enumerate(rois):
            movie[:, y, x] = np.round(100 + 10 * F[k])[:, None].astype("<i2")
        movie.tofile(plane / "data.bin")
    return {"stat": stat, "F": F, "rois": rois, "owner": owner, "movie": movie}



# ============================================================================ CaImAn
def make_caiman(path: Path, *, dims: tuple[int, int] = (18, 26), idx_components: list[int] | None = None,
                bad_shape: bool = False, n_t: int = 40, offset: float = 0.0, fr: float = 30.0) -> dict:
    """A CaImAn results file (cnm.save layout) with 3 Gaussian components, A sparse in Fortran order."""
    h5py = pytest.importorskip("h5py")
    ny, nx = dims
    yy, xx = np.mgrid[0:ny, 0:nx]
    centres = [(4, 5), (4, 8), (12, 20)]
    comps = []
    for cy, cx in centres:
        img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 1.5**2))
        img[img < 0.05] = 0
        comps.append(img / np.linalg.norm(img))
    dense = np.stack([c.ravel(order="F") for c in comps], axis=1)  # (pixels, components), Fortran order
    from scipy.sparse import csc_matrix

    A = csc_matrix(dense)
    C = np.random.default_rng(2).normal(size=(3, n_t)) + offset
    with h5py.File(path, "w") as f:
        g = f.create_group("estimates/A")
        g["data"], g["indices"], g["indptr"] = A.data, A.indices, A.indptr
        g["shape"] = np.array([A.shape[0] + (1 if bad_shape else 0), A.shape[1]])
        f["estimates/C"] = C
        f["estimates/S"] = np.abs(C)
        f["estimates/idx_components"] = "NoneType" if idx_components is None else np.asarray(idx_components)
        f["params/data/dims"] = np.array(dims)
        f["params/data/fr"] = fr
    return {"comps": comps, "C": C}



# ============================================================================ NWB
def write_nwb(path: Path, movie: np.ndarray | None, rois: list, *, image_mask: bool = False,
               with_segmentation: bool = True, traces: np.ndarray | None = None, rate: float = 40.0) -> None:
    """An NWB file: TwoPhotonSeries (stored (T, x, y)), PlaneSegmentation of ``rois`` = [(y, x, w)],
    and a Fluorescence RoiResponseSeries ``traces`` (T, N) when given."""
    pynwb = pytest.importorskip("pynwb")
    from datetime import datetime, timezone

    from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel, TwoPhotonSeries

    nwb = pynwb.NWBFile(session_description="test", identifier="id", session_start_time=datetime.now(timezone.utc))
    dev = nwb.create_device(name="scope")
    oc = OpticalChannel(name="green", description="g", emission_lambda=510.0)
    plane = nwb.create_imaging_plane(name="plane", optical_channel=oc, description="p", device=dev,
                                     excitation_lambda=920.0, indicator="GCaMP", location="V1",
                                     imaging_rate=40.0)
    if movie is not None:
        tps = TwoPhotonSeries(name="TwoPhotonSeries", data=movie.transpose(0, 2, 1), imaging_plane=plane,
                              rate=rate, unit="a.u.")
        nwb.add_acquisition(tps)
    if with_segmentation:
        ophys = nwb.create_processing_module(name="ophys", description="o")
        seg = ImageSegmentation()
        ophys.add(seg)
        ps = seg.create_plane_segmentation(name="PlaneSegmentation", description="s", imaging_plane=plane)
        ny, nx = movie.shape[1:]
        for y, x, w in rois:
            if image_mask:
                m = np.zeros((nx, ny))
                m[x, y] = w
                ps.add_roi(image_mask=m)
            else:
                ps.add_roi(pixel_mask=[(int(a), int(b), float(c)) for a, b, c in zip(x, y, w, strict=True)])
        if traces is not None:
            region = ps.create_roi_table_region(region=list(range(len(rois))), description="all")
            fl = Fluorescence()
            ophys.add(fl)
            fl.create_roi_response_series(name="RoiResponseSeries", data=traces, rois=region, unit="a.u.",
                                          rate=rate)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)




# ============================================================================ small recordings
def tiny_config(window_s: float = 0.3, **extra: object) -> dict:
    """A run config that fits in about a second on 2 CPU cores (Gaussian likelihood, 8-unit model)."""
    cfg = {
        "epochs": 2,
        "likelihood": "gaussian",
        "window_s": window_s,
        "model": {"encoder_size": 8, "generator_size": 8, "factor_size": 3, "ic_size": 8,
                  "readin_size": 8, "batch_size": 16},
    }
    cfg.update(extra)
    return cfg


def make_labels(ny: int = 16, nx: int = 20) -> np.ndarray:
    """An int32 (ny, nx) labels image with 3 square ROIs (ids 1, 2, 3) at rows 2-4, 6-9 and 11-13."""
    labels = np.zeros((ny, nx), np.int32)
    labels[2:5, 3:7] = 1
    labels[6:10, 10:14] = 2
    labels[11:14, 4:8] = 3
    return labels


def make_roi_movie(labels: np.ndarray, n_t: int, *, seed: int = 0, dtype: str = "uint16") -> tuple[np.ndarray, np.ndarray]:
    """A (n_t, Y, X) movie: background 100, each ROI's pixels at its positive trace + noise.

    Returns (movie, traces) with traces float (n_t, N), N = labels.max().
    """
    rng = np.random.default_rng(seed)
    n = int(labels.max())
    t = np.arange(n_t)
    traces = 200 + 50 * np.sin(2 * np.pi * t[:, None] / (15 + 5 * np.arange(n))[None, :]) \
        + rng.normal(0, 5, size=(n_t, n))
    movie = np.full((n_t, *labels.shape), 100.0)
    for k in range(n):
        movie[:, labels == k + 1] = traces[:, k : k + 1]
    movie += rng.normal(0, 2, size=movie.shape)
    return np.clip(np.round(movie), 0, None).astype(dtype), traces


# ============================================================================ results
def fake_result(ids: tuple[int, ...] = (1, 2, 3), n_t: int = 40, recording: dict | None = None) -> SBTTResult:
    """A result as run_on_stack returns it (no model), with NaN in the observations."""
    rng = np.random.default_rng(0)
    grid = FineGrid(0.0, 0.025, n_t)
    n = len(ids)
    rates = rng.random((n_t, n)).astype(np.float32) + np.arange(1, n + 1, dtype=np.float32)
    obs = (rates + rng.normal(0, 0.1, rates.shape)).astype(np.float32)
    obs[rng.random(obs.shape) < 0.6] = np.nan
    config = {"likelihood": "gaussian", "dff": True, "frame_period_s": 0.05, "scan": None,
              "observations": {"dff": True, "neuropil": None}}
    if recording is not None:
        config["recording"] = recording
    return SBTTResult(
        rates=rates, times=grid.centres, observations=obs, roi_ids=np.array(ids), grid=grid,
        units="input units (denoised)", metrics={"n_rois": n, "fit_r_per_roi": [0.5] * n}, config=config,
        signal=rates * 2,
    )


def neuroconv_suite2p_nwb(suite2p_dir: Path, out: Path) -> Path:
    """NWB written by neuroconv's Suite2pSegmentationInterface from a suite2p output folder."""
    datainterfaces = pytest.importorskip("neuroconv.datainterfaces")
    iface = datainterfaces.Suite2pSegmentationInterface(folder_path=str(suite2p_dir))
    metadata = iface.get_metadata()
    metadata["NWBFile"]["session_start_time"] = datetime(2024, 1, 1, tzinfo=timezone.utc)
    iface.run_conversion(nwbfile_path=str(out), metadata=metadata, overwrite=True)
    return out


def fake_calcium_result(ids: tuple[int, ...] = (1, 2, 3), n_t: int = 40, indicator: str = "GCaMP6f",
                        kernel_scale: float = 2.0) -> SBTTResult:
    """A calcium result on dF/F (no model) whose kernel per unit jump is the indicator's transient
    over ``kernel_scale``, so one spike is a jump of ``kernel_scale`` dF/F; ROI 2's rates have NaN."""
    from napari_sbtt.core.indicators import get_indicator
    from napari_sbtt.core.units import spikes_estimate
    from napari_sbtt.result import RATE_UNITS

    r = fake_result(ids=ids, n_t=n_t)
    r.rates[5:9, min(1, len(ids) - 1)] = np.nan
    kernel = np.tile(get_indicator(indicator).kernel(r.grid.bin_width) / kernel_scale, (len(ids), 1))
    r.units = RATE_UNITS["calcium"]
    r.config = {**r.config, "likelihood": "calcium", "indicator": indicator}
    r.metrics = {**r.metrics, "spikes_estimate": spikes_estimate(kernel, indicator, r.grid.bin_width, "dF/F")}
    return r
