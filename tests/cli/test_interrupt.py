"""Ctrl-C during ``napari-sbtt run`` (issue 10, case 12): like the GUI's Stop, the first Ctrl-C keeps
the best model so far and writes the result; a second one aborts and writes nothing.

The test sends a real SIGINT to this process (``signal.raise_signal``) from the progress callback
once the first epoch report (or extraction report) arrives, so the CLI's own handler runs.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import tifffile

from napari_sbtt import cli
from tests.factories import make_labels, make_roi_movie, tiny_config


def _press_ctrl_c(monkeypatch: pytest.MonkeyPatch, presses: int, when: str) -> None:
    real = cli._tqdm_callback

    def fake(desc: str) -> Any:
        callback, close = real(desc)
        sent = []

        def progress(report: Any = None, total: Any = None) -> Any:
            callback(report, total)
            hit = hasattr(report, "epoch") if when == "fit" else getattr(report, "stage", None) == "extract"
            if hit and not sent:
                sent.append(True)
                for _ in range(presses):
                    signal.raise_signal(signal.SIGINT)
            return None

        return progress, close

    monkeypatch.setattr(cli, "_tqdm_callback", fake)


def _args(tmp_path: Path) -> list[str]:
    labels = make_labels()
    movie, _ = make_roi_movie(labels, 60)
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    tifffile.imwrite(tmp_path / "rois.tif", labels)
    cfg = json.dumps(tiny_config(window_s=0.5, epochs=30, inference_shifts=1))
    return ["run", str(tmp_path / "movie.tif"), "--rois", str(tmp_path / "rois.tif"), "--frame-period", "0.05",
            "--config", cfg, "--out", str(tmp_path / "res")]


@pytest.mark.slow
def test_first_ctrl_c_keeps_the_best_model_and_writes_the_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _press_ctrl_c(monkeypatch, 1, "fit")
    before = signal.getsignal(signal.SIGINT)
    code = cli.main(_args(tmp_path))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "stopping after this epoch" in err and "(stopped early, best model kept)" in out
    meta = json.loads((tmp_path / "res" / "result.json").read_text())
    assert meta["stopped"] is True and len(meta["history"]) == 1 and meta["has_model"]
    assert (tmp_path / "res" / "model.safetensors").is_file()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


@pytest.mark.slow
def test_second_ctrl_c_aborts_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _press_ctrl_c(monkeypatch, 2, "fit")
    code = cli.main(_args(tmp_path))
    err = capsys.readouterr().err
    assert code == 130 and "interrupted; nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.tif", "rois.tif"]


def test_ctrl_c_during_extraction_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _press_ctrl_c(monkeypatch, 1, "extract")
    code = cli.main(_args(tmp_path))
    err = capsys.readouterr().err
    assert code == 130 and "interrupted; nothing was written" in err
    assert not (tmp_path / "res").exists()
