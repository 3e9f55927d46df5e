"""Outputs never cost the user a file (issue 10, cases 3, 7 and 10): ``--overwrite`` replaces only a
result folder, nothing half-written or ``.X.old`` is left on failure, a folder is never replaced
by an export, an unwritable ``--out`` is reported before the work, and outputs get the user's
normal permissions (the umask)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sbtt.api import SBTTResult, check_result_destination, is_result_dir
from napari_sbtt.cli import main
from napari_sbtt.core.atomic import atomic_write_text
from napari_sbtt.core.scan import FineGrid
from tests.factories import make_labels, make_roi_movie


def _result() -> SBTTResult:
    return SBTTResult(rates=np.ones((4, 3), np.float32), times=np.arange(4) + 0.5,
                      observations=np.ones((4, 3), np.float32), roi_ids=np.arange(1, 4),
                      grid=FineGrid(0.0, 1.0, 4), units="a.u.", metrics={}, config={})


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _run_args(tmp_path: Path, out: Path) -> list[str]:
    labels = make_labels()
    movie, _ = make_roi_movie(labels, 60)
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    tifffile.imwrite(tmp_path / "rois.tif", labels)
    return ["run", str(tmp_path / "movie.tif"), "--rois", str(tmp_path / "rois.tif"), "--frame-period", "0.05",
            "--out", str(out), "--overwrite"]


# --------------------------------------------------------------------------- case 3
def test_overwrite_refuses_a_folder_that_is_not_a_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    args = _run_args(data, data)  # --out is the folder holding the movie itself
    before = _listing(data)
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and "not a napari-sbtt result" in err and err.count("\n") == 1
    assert _listing(data) == before and _listing(tmp_path) == ["data"]  # nothing deleted, nothing left


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_overwrite_refuses_a_file_or_a_symlink_and_leaves_nothing(tmp_path: Path, kind: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    target = tmp_path / "out"
    if kind == "file":
        target.write_text("precious")
    else:
        _result().save(tmp_path / "real_result")
        target.symlink_to(tmp_path / "real_result")
    code = main(_run_args(inputs, target))
    err = capsys.readouterr().err
    assert code == 2 and ("a file" if kind == "file" else "a symbolic link") in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no .out.old, no .part
    if kind == "file":
        assert target.read_text() == "precious"
    else:
        assert target.is_symlink() and is_result_dir(tmp_path / "real_result")


def test_save_replaces_a_result_folder_and_restores_it_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "res"
    _result().save(dest)
    r = _result()
    r.units = "new"
    r.save(dest, overwrite=True)
    assert json.loads((dest / "result.json").read_text())["units"] == "new"
    assert _listing(tmp_path) == ["res"]

    class Boom:
        def save(self, path: object, **kw: object) -> None:
            raise RuntimeError("disk full")

    r.model = Boom()  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="disk full"):
        r.save(dest, overwrite=True)
    assert _listing(tmp_path) == ["res"] and is_result_dir(dest)  # old result intact, no leftovers
    with pytest.raises(ValueError, match="not a napari-sbtt result"):
        check_result_destination(tmp_path, overwrite=True)


def test_export_onto_a_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _result().save(tmp_path / "res")
    folder = tmp_path / "out.npz"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    for extra in ([], ["--overwrite"]):
        code = main(["export", str(tmp_path / "res"), str(folder), *extra])
        err = capsys.readouterr().err
        assert code == 2 and "is a folder" in err and "Traceback" not in err
    assert (folder / "keep.txt").read_text() == "x"


# --------------------------------------------------------------------------- case 10
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_out_is_reported_before_the_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    args = _run_args(tmp_path, locked / "res")
    locked.chmod(0o500)
    try:
        code = main(args)
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    assert code == 2 and "cannot write in" in err and "extract" not in err  # before any extraction


def test_a_failed_write_probe_is_reported_before_the_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The same as the test above on machines where tests run as root (which may write anywhere)."""
    import tempfile

    real = tempfile.mkdtemp

    def mkdtemp(*args: object, **kw: object) -> str:
        if kw.get("suffix") == ".probe":
            raise PermissionError(13, "Permission denied")
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    code = main(_run_args(tmp_path, tmp_path / "res"))
    err = capsys.readouterr().err
    assert code == 2 and f"cannot write in {tmp_path} (Permission denied)" in err and "extract" not in err
    assert not (tmp_path / "res").exists()


def test_out_inside_a_file_is_reported_before_the_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    code = main(_run_args(tmp_path, tmp_path / "afile" / "res"))
    err = capsys.readouterr().err
    assert code == 2 and "afile is not a folder" in err and "extract" not in err


def test_out_in_a_missing_folder_is_reported_before_the_work(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(_run_args(tmp_path, tmp_path / "nope" / "res"))
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "extract" not in err


# --------------------------------------------------------------------------- case 7
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_get_the_users_normal_permissions(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        _result().save(tmp_path / "res")
        atomic_write_text(tmp_path / "a.txt", "x")
        _result().export(tmp_path / "r.npz")
    finally:
        os.umask(old)

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(tmp_path / "res") == 0o777 & ~umask
    for p in [*(tmp_path / "res").iterdir(), tmp_path / "a.txt", tmp_path / "r.npz"]:
        assert mode(p) == 0o666 & ~umask, p
