"""Checkpoints from other people (issue 10, cases 2, 6, 9 and 11): sizes in the metadata are checked
against the tensors the file ships before anything is built, every metadata field's type is
checked, a model trained on a GPU applies on a CPU machine, and ``--model`` takes a result
folder as well as the file. No test here trains a model (the networks are freshly built)."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

torch = pytest.importorskip("torch")

from safetensors.numpy import load_file, save_file  # noqa: E402

from napari_sbtt.cli import CLI_WORDS, main  # noqa: E402
from napari_sbtt.model import SBTTConfig, SBTTModel, load_model, read_checkpoint_info  # noqa: E402
from napari_sbtt.model.header import checkpoint_header_info, tensor_shapes  # noqa: E402
from napari_sbtt.model.likelihoods import Normaliser  # noqa: E402
from tests.factories import make_labels, make_roi_movie  # noqa: E402

SMALL = {"readin_size": 4, "encoder_size": 4, "generator_size": 4, "factor_size": 2, "ic_size": 4}


def _checkpoint(path: Path, n: int = 3, **config: object) -> Path:
    model = SBTTModel.build(n, "gaussian", SBTTConfig(**{**SMALL, **config}), Normaliser.identity(n))
    model.save(path)
    return path


def _edit(path: Path, out: Path, change) -> Path:  # noqa: ANN001
    """Copy a checkpoint with its napari-sbtt metadata document passed through ``change``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        info = json.loads(f.metadata()["napari_sbtt"])
    save_file(load_file(str(path)), str(out), metadata={"napari_sbtt": json.dumps(change(info))})
    return out


def _set(field: str, value: object):  # noqa: ANN202
    def change(info: dict) -> dict:
        keys = field.split(".")
        target = info
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
        return info

    return change


# --------------------------------------------------------------------------- case 2: sizes in the header
MISMATCH = "the weights do not match the sizes in the metadata"


@pytest.mark.parametrize("field, value, message", [
    ("config.generator_size", 1_000_000, "generator_size must be an integer <= 8192"),  # 12 TB if built
    ("config.readin_size", 500_000, "readin_size must be an integer <= 8192"),
    ("config.generator_size", 4096, MISMATCH + r" \(tensor 'ic_to_gen.weight' is \(4, 4\)"),
    ("n_neurons", 7, MISMATCH),  # (with a normaliser of 7 ROIs, so that only the tensors disagree)
])
def test_sizes_in_the_metadata_are_checked_against_the_shipped_tensors(tmp_path: Path, field: str,
                                                                       value: int, message: str) -> None:
    ckpt = _checkpoint(tmp_path / "m.safetensors")

    def change(info: dict) -> dict:
        info = _set(field, value)(info)
        if field == "n_neurons":
            info["normaliser"] = {"offset": [0.0] * value, "scale": [1.0] * value}
        return info

    bad = _edit(ckpt, tmp_path / "bad.safetensors", change)
    t = time.perf_counter()
    with pytest.raises(ValueError, match="bad.safetensors: .*" + message):
        load_model(bad)
    assert time.perf_counter() - t < 10  # refused from the header, nothing built


def test_a_tensor_shape_larger_than_its_data_is_refused(tmp_path: Path) -> None:
    header = {"w": {"dtype": "F32", "shape": [1_000_000, 1_000_000], "data_offsets": [0, 16]},
              "__metadata__": {"napari_sbtt": json.dumps({"format": "napari-sbtt-model", "format_version": 1,
                                                          "likelihood": "gaussian", "n_neurons": 2})}}
    raw = json.dumps(header).encode()
    p = tmp_path / "huge.safetensors"
    p.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)
    with pytest.raises(ValueError, match=r"tensor 'w' declares shape \(1000000, 1000000\) but the file holds 16"):
        tensor_shapes(p)
    with pytest.raises(ValueError):
        load_model(p)


def test_sane_upper_bounds_on_architecture_sizes() -> None:
    with pytest.raises(ValueError, match=r"SBTTConfig.generator_size must be .* <= 8192"):
        SBTTConfig(generator_size=1_000_000)


# --------------------------------------------------------------------------- case 9: metadata types
@pytest.mark.parametrize("change, field", [
    (lambda info: [info], "a JSON list, not an object"),
    (_set("format_version", None), "'format_version' must be a whole number >= 1, got None"),
    (_set("format_version", "1"), "'format_version' must be a whole number >= 1, got '1'"),
    (_set("n_neurons", -3), "'n_neurons' must be a whole number >= 1, got -3"),
    (_set("n_neurons", 3.0), "'n_neurons' must be a whole number >= 1, got 3.0"),
    (_set("n_neurons", True), "'n_neurons' must be a whole number >= 1, got True"),
    (_set("likelihood", ["gaussian"]), "'likelihood' must be one of"),
    (_set("config", "x"), "'config' must be a JSON dict"),
    (_set("history", {}), "'history' must be a JSON list"),
    (_set("best_epoch", "3"), "'best_epoch' must be a whole number"),
    (_set("config.variational_ic", "false"), "variational_ic must be True or False"),
    (_set("normaliser.offset", [0.0]), "'normaliser' holds 1 offsets"),
    (lambda info: {**info, "history": [{"epoch": "0"}]}, "EpochReport field 'epoch' has the wrong type"),
])
def test_edited_metadata_gets_a_message_naming_the_field(tmp_path: Path, change, field: str) -> None:  # noqa: ANN001
    ckpt = _checkpoint(tmp_path / "m.safetensors")
    bad = _edit(ckpt, tmp_path / "bad.safetensors", change)
    with pytest.raises(ValueError, match="bad.safetensors") as e:
        load_model(bad)
    assert field in str(e.value)


def test_cli_reports_edited_metadata_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    movie_args = _movie(tmp_path)
    ckpt = _checkpoint(tmp_path / "m.safetensors")
    bad = _edit(ckpt, tmp_path / "bad.safetensors", _set("n_neurons", -1))
    code = main([*movie_args, "--model", str(bad), "--out", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'n_neurons' must be a whole number" in err
    assert not (tmp_path / "res").exists()


def test_header_reader_checks_types_too(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "m.safetensors")
    assert checkpoint_header_info(ckpt)["n_neurons"] == 3
    bad = _edit(ckpt, tmp_path / "bad.safetensors", _set("n_neurons", "3"))
    with pytest.raises(ValueError, match="'n_neurons'"):
        checkpoint_header_info(bad)


# --------------------------------------------------------------------------- case 6: device
def _movie(tmp_path: Path) -> list[str]:
    labels = make_labels()
    movie, _ = make_roi_movie(labels, 60)
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    tifffile.imwrite(tmp_path / "rois.tif", labels)
    return ["run", str(tmp_path / "movie.tif"), "--rois", str(tmp_path / "rois.tif"), "--frame-period", "0.05"]


def test_a_checkpoint_trained_on_cuda_applies_on_any_machine(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _checkpoint(tmp_path / "m.safetensors", device="cuda")
    assert read_checkpoint_info(ckpt)["config"]["device"] == "cuda"
    model = load_model(ckpt)  # "auto" when the training device is missing here
    assert model.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert model.predict(np.zeros((2, 5, 3))).shape == (2, 5, 3)
    assert model.config.device in ("cuda", "auto")
    code = main([*_movie(tmp_path), "--model", str(ckpt), "--device", "auto", "--out", str(tmp_path / "res")])
    assert code == 0, capsys.readouterr().err
    code = main([*_movie(tmp_path), "--model", str(ckpt), "--out", str(tmp_path / "res2")])  # default device
    assert code == 0, capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_explicit_cuda_request_without_cuda_is_a_clear_error(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _checkpoint(tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match=r"device 'cuda' was asked for but this machine has no such device.*"
                                         r"device='auto'") as e:
        load_model(ckpt, device="cuda")
    assert "--device auto" in e.value.render(CLI_WORDS)
    code = main([*_movie(tmp_path), "--model", str(ckpt), "--device", "cuda", "--out", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert code == 2 and "--device auto" in err and "device=" not in err


# --------------------------------------------------------------------------- case 11: --model takes a folder
def test_model_may_be_a_result_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "fit"
    folder.mkdir()
    _checkpoint(folder / "model.safetensors")
    assert read_checkpoint_info(folder)["n_neurons"] == 3
    assert load_model(folder).n_neurons == 3
    code = main([*_movie(tmp_path), "--model", str(folder), "--out", str(tmp_path / "res")])
    assert code == 0, capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main([*_movie(tmp_path), "--model", str(empty), "--out", str(tmp_path / "res3")])
    err = capsys.readouterr().err
    assert code == 2 and "is a folder without model.safetensors" in err
