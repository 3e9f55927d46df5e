"""Pickled files from other people (suite2p's stat.npy, ops.npy, ...) never run code (issue 10, case 1).

The restricted unpickler rebuilds numpy arrays, dicts, lists and plain values only; a
``__reduce__`` payload is refused before it is called, on every path that opens a suite2p
folder: ``read_suite2p``, ``napari-sbtt run FOLDER``, the napari reader, and ``napari-sbtt
export`` (which re-reads the folder named in result.json). Header sizes of .npy/.npz files are
checked before anything is allocated.
"""

from __future__ import annotations

import collections
import datetime
import io
import json
import pathlib
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from napari_sbtt.core.readers import ReaderError, read_suite2p
from napari_sbtt.core.readers.npy import load_npy, load_npz
from napari_sbtt.core.readers.safe_pickle import UnsafePickleError, restricted_load
from tests.factories import make_suite2p

REAL_PLANE = Path(__file__).parents[2] / ".." / "shared" / "realdata" / "suite2p-fissa-example" / "suite2p" / "plane0"


class _Payload:
    """Creates ``path`` when unpickled (what an attacker's stat.npy would do, harmlessly)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):  # type: ignore[override]
        return (open, (self.path, "w"))


def _loads(data: bytes, source: str = "test.pkl"):
    return restricted_load(io.BytesIO(data), source)


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype == object:
            return all(_same(x, y) for x, y in zip(a.ravel(), b.ravel(), strict=True))
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b or (a != a and b != b)


# --------------------------------------------------------------------------- the unpickler
def test_plain_data_round_trips_exactly() -> None:
    value = np.array([{
        "ypix": np.arange(5, dtype=np.int32), "lam": np.linspace(0, 1, 5, dtype=np.float32),
        "med": [2, 3], "npix": np.int64(5), "soma": np.bool_(True), "radius": np.float64(2.5),
        "overlap": np.zeros(5, dtype=bool), "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "text": np.array(["ab", "c"]), "raw": b"\x00\x01", "none": None, "cplx": 1 + 2j,
        "nested": np.array([np.arange(2), None, "x"], dtype=object), "empty": np.empty((0, 3)),
        "struct": np.zeros(2, dtype=[("a", "<f4"), ("b", "<i2")]), "date": np.datetime64("2020-01-02"),
        "tuple": (1, "a", np.arange(2)), "set": {1, 2}, "ordered": collections.OrderedDict(a=1),
        "when": datetime.datetime(2024, 5, 6, 7, 8, tzinfo=datetime.timezone.utc),
        "span": datetime.timedelta(seconds=3), "nan": float("nan"),
    }], dtype=object)
    for protocol in (2, 3, 4, 5):
        got = _loads(pickle.dumps(value, protocol=protocol))
        assert _same(got, value), protocol
        assert type(got[0]["ypix"]) is np.ndarray and type(got[0]["nested"][0]) is np.ndarray
    ops = np.array({"Ly": 20, "fs": 30.0, "data_path": [pathlib.PurePosixPath("/data/x")]}, dtype=object)
    assert _loads(pickle.dumps(ops, protocol=3)).item()["data_path"] == [pathlib.PurePosixPath("/data/x")]


def test_a_path_comes_back_as_a_pure_path() -> None:
    got = _loads(pickle.dumps({"p": pathlib.Path("/some/where")}, protocol=3))
    assert got["p"] == pathlib.PurePosixPath("/some/where") and not isinstance(got["p"], pathlib.Path)


def test_a_reduce_payload_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps({"ypix": np.arange(3), "evil": _Payload(marker)}, protocol=3)
    with pytest.raises(UnsafePickleError, match=r"evil\.npy: refused to load '[a-z.]*open'"):
        _loads(data, "evil.npy")
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    b"cos\nsystem\n(S'true'\ntR.",  # os.system
    b"cbuiltins\neval\n(S'1'\ntR.",
    b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'x'\ntR.",
    b"cnumpy\nndarray\n(I100000000000\ntR.",  # the real ndarray is never handed out
    b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I100000000000\ntS'b'\ntR.",
    b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nmemmap\n(I0\ntS'b'\ntR.",
    b"\x80\x02cnumpy\ndtype\nq\x00X\x02\x00\x00\x00f8q\x01\x89\x88\x87q\x02Rq\x03.",  # dtype alone is fine
])
def test_names_outside_plain_data_are_refused(payload: bytes) -> None:
    if b"dtype" in payload:
        assert _loads(payload) == np.dtype("f8")
        return
    with pytest.raises(ReaderError, match="test.pkl"):
        _loads(payload)


def test_array_state_is_checked_before_numpy_allocates() -> None:
    """An array whose pickled shape disagrees with the data it carries is refused (no 745 GB object array)."""
    good = pickle.dumps(np.array([1, "a"], dtype=object), protocol=3)
    for old, new in ((b"K\x02\x85", b"J\x00\xe8vH\x85"),):  # shape (2,) -> (10**11 // 83...)
        assert old in good
        bad = good.replace(old, new)
        with pytest.raises(ReaderError, match="carries 2 elements|damaged"):
            _loads(bad)
    nums = pickle.dumps(np.arange(4.0), protocol=3)
    with pytest.raises(ReaderError, match="needs .* bytes"):
        _loads(nums.replace(b"K\x04\x85", b"J\x00\xe8vH\x85"))


# --------------------------------------------------------------------------- .npy / .npz headers
def _npy_with_header(path: Path, shape: tuple[int, ...], payload: bytes = b"\0" * 64) -> Path:
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": shape})
        fh.write(payload)
    return path


def test_npy_header_larger_than_the_file_is_refused(tmp_path: Path) -> None:
    p = _npy_with_header(tmp_path / "big.npy", (10**10,))
    with pytest.raises(ReaderError, match=r"big\.npy: the header declares .* \(80000000000 bytes\).*64 bytes"):
        load_npy(p)
    ok = _npy_with_header(tmp_path / "ok.npy", (8,))
    assert load_npy(ok).shape == (8,)


def test_object_npy_needs_the_objects_flag(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ReaderError, match="pickled Python objects"):
        load_npy(tmp_path / "o.npy")
    assert load_npy(tmp_path / "o.npy", objects=True)[0] == {"a": 1}


def test_npz_member_header_larger_than_the_member_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**10,)})
    with zipfile.ZipFile(tmp_path / "a.npz", "w") as zf:
        zf.writestr("rates.npy", buf.getvalue() + b"\0" * 16)
    with pytest.raises(ReaderError, match="rates.*declares"):
        load_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x=np.arange(3))
    assert load_npz(tmp_path / "b.npz")["x"].tolist() == [0, 1, 2]


# --------------------------------------------------------------------------- every path that opens suite2p
def _evil_plane(tmp_path: Path, marker: Path) -> Path:
    plane = tmp_path / "suite2p" / "plane0"
    make_suite2p(plane, "ops", n_t=120, offset=50.0)
    stat = list(np.load(plane / "stat.npy", allow_pickle=True))
    stat[1] = {**stat[1], "evil": _Payload(marker)}  # inside an otherwise valid ROI dict
    np.save(plane / "stat.npy", np.array(stat, dtype=object), allow_pickle=True)
    return plane


def test_read_suite2p_refuses_a_payload_in_stat(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    plane = _evil_plane(tmp_path, marker)
    with pytest.raises(UnsafePickleError, match=r"stat\.npy: refused to load '[a-z.]*open'"):
        read_suite2p(plane)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["ops.npy", "db.npy", "settings.npy", "reg_outputs.npy"])
def test_every_pickled_suite2p_file_is_read_restricted(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    plane = tmp_path / "plane0"
    make_suite2p(plane, "ops" if name == "ops.npy" else "reg_only" if name == "reg_outputs.npy" else "db")
    np.save(plane / name, np.array({"Ly": 20, "evil": _Payload(marker)}, dtype=object), allow_pickle=True)
    with pytest.raises(UnsafePickleError, match=name.replace(".", r"\.")):
        read_suite2p(plane)
    assert not marker.exists()


def test_cli_run_refuses_a_payload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from napari_sbtt.cli import main

    marker = tmp_path / "pwned"
    plane = _evil_plane(tmp_path, marker)
    code = main(["run", str(plane.parent), "--out", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert code == 2 and "stat.npy: refused to load 'io.open'" in err and err.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "res").exists()


def test_napari_reader_refuses_a_payload(tmp_path: Path) -> None:
    from napari_sbtt.plugin._reader import get_reader

    marker = tmp_path / "pwned"
    plane = _evil_plane(tmp_path, marker)
    reader = get_reader(str(plane))  # detection looks at file names only
    assert reader is not None
    with pytest.raises(UnsafePickleError):
        reader(str(plane))
    assert not marker.exists()


def test_cli_export_refuses_a_payload_in_the_folder_result_json_names(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from napari_sbtt.api import SBTTResult
    from napari_sbtt.cli import main
    from napari_sbtt.core.scan import FineGrid

    marker = tmp_path / "pwned"
    plane = _evil_plane(tmp_path, marker)
    res = SBTTResult(rates=np.ones((4, 3), np.float32), times=np.arange(4) + 0.5,
                     observations=np.ones((4, 3), np.float32), roi_ids=np.arange(1, 4),
                     grid=FineGrid(0.0, 1.0, 4), units="a.u.", metrics={},
                     config={"recording": {"format": "suite2p", "path": str(plane), "plane_dir": str(plane)}})
    res.save(tmp_path / "res")
    code = main(["export", str(tmp_path / "res"), str(tmp_path / "act.tif")])
    err = capsys.readouterr().err
    assert code == 2 and "stat.npy: refused to load" in err
    assert not marker.exists() and not (tmp_path / "act.tif").exists()


@pytest.mark.skipif(not REAL_PLANE.is_dir(), reason="the shared real suite2p folder is not on this machine")
def test_the_real_suite2p_folder_still_opens_and_matches_numpy() -> None:
    for name in ("stat.npy", "ops.npy"):
        assert _same(load_npy(REAL_PLANE / name, objects=True), np.load(REAL_PLANE / name, allow_pickle=True))
    d = read_suite2p(REAL_PLANE)
    assert d.n_rois > 0 and d.labels.shape == (d.shape[0], d.shape[1]) and d.fs
    assert json.dumps(d.med.tolist())  # plain numbers
