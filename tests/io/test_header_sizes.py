"""Sizes declared in file headers are checked before anything is allocated (issue 10, case 2).

A few bytes of crafted header used to ask for terabytes: CaImAn ``dims`` (10^6, 10^6), suite2p
``Ly``/``Lx``, an HDF5 dataset declared huge without data, TIFF pages claiming 60000 x 60000
pixels. (Checkpoints: test_checkpoint_safety.py; .npy/.npz headers: test_safe_pickle.py.)
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.core.readers import ReaderError, open_movie, read_caiman, read_suite2p, read_traces
from napari_sbtt.core.readers._common import check_image_shape, labels_from_weighted_pixels
from tests.factories import make_caiman, make_suite2p

h5py = pytest.importorskip("h5py")


def test_image_shapes_are_bounded() -> None:
    assert check_image_shape((512, 512), "f", "dims") == (512, 512)
    for bad in ((10**6, 10**6), (0, 5), (60000, 60000), ("a", 3)):
        with pytest.raises(ReaderError, match="f: 'dims'"):
            check_image_shape(bad, "f", "dims")
    with pytest.raises(ReaderError, match="says the image is 1000000 x 1000000 pixels"):
        labels_from_weighted_pixels([np.array([1])], [np.array([1])], None, (10**6, 10**6), source="f",
                                    field="ypix/xpix")


def test_caiman_dims_are_checked_before_the_labels_image(tmp_path: Path) -> None:
    p = tmp_path / "cnm.hdf5"
    make_caiman(p)
    with h5py.File(p, "a") as f:
        del f["params/data/dims"]
        f["params/data/dims"] = np.array([10**6, 10**6])
        del f["estimates/A/shape"]
        f["estimates/A/shape"] = np.array([10**12, 3])  # consistent with dims: 3.6 TiB of labels before
    with pytest.raises(ReaderError, match=r"cnm.hdf5: 'params/data/dims' says the image is 1000000 x 1000000"):
        read_caiman(p)


def test_an_hdf5_dataset_declared_far_larger_than_its_data_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "t.h5"
    with h5py.File(p, "w") as f:  # 800 GB declared, nothing written (chunks read as the fill value)
        f.create_dataset("traces", shape=(10**6, 10**5), dtype="f8", chunks=(100, 100))
    with pytest.raises(ReaderError, match=r"t.h5: dataset '/traces' declares shape \(1000000, 100000\)"):
        read_traces(p)
    q = tmp_path / "cnm.hdf5"
    make_caiman(q)
    with h5py.File(q, "a") as f:
        del f["estimates/C"]
        f.create_dataset("estimates/C", shape=(3, 10**11), dtype="f8", chunks=(3, 1000))
    with pytest.raises(ReaderError, match="estimates/C' declares shape"):
        read_caiman(q)
    ok = tmp_path / "ok.h5"
    with h5py.File(ok, "w") as f:  # real data compresses well and still reads
        f.create_dataset("traces", data=np.zeros((2000, 4)), compression="gzip", chunks=(500, 4))
    assert read_traces(ok).shape == (2000, 4)


def test_suite2p_image_size_is_checked(tmp_path: Path) -> None:
    plane = tmp_path / "plane0"
    make_suite2p(plane, "ops")
    np.save(plane / "ops.npy", np.array({"Ly": 10**6, "Lx": 10**6, "fs": 30.0}, dtype=object), allow_pickle=True)
    with pytest.raises(ReaderError, match=r"ops.npy: 'Ly/Lx' says the image is 1000000 x 1000000"):
        read_suite2p(plane)


def test_tiff_pages_claiming_a_huge_frame_are_refused_before_decoding(tmp_path: Path) -> None:
    p = tmp_path / "m.tif"
    tifffile.imwrite(p, np.ones((3, 16, 20), np.uint8), compression="zlib", photometric="minisblack",
                     metadata=None)
    data = bytearray(p.read_bytes())
    with tifffile.TiffFile(p) as tif:
        for page in tif.pages:
            for name in ("ImageWidth", "ImageLength"):
                tag = page.tags[name]
                fmt = {3: "<H", 4: "<I"}[int(tag.dtype)]
                struct.pack_into(fmt, data, tag.valueoffset, 60000)
    p.write_bytes(bytes(data))
    with pytest.raises(ReaderError, match=r"m.tif: 'ImageLength/ImageWidth' says the image is 60000 x 60000"):
        open_movie(p)


def test_a_truncated_tiff_is_named_as_truncated(tmp_path: Path) -> None:
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, np.zeros((50, 64, 64), np.uint16))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[:5000])  # an interrupted copy
    with pytest.raises(ReaderError, match=r"cut.tif: the file is truncated: .* 50 frames of 64x64 .* holds 5000 bytes"):
        open_movie(cut)
    assert open_movie(full) is not None  # the whole file reads
