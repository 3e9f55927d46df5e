"""Read and check a napari-sbtt checkpoint's metadata without torch or safetensors.

A ``.safetensors`` file starts with an 8-byte little-endian header length and a JSON header;
napari-sbtt keeps its own JSON document (see :mod:`.checkpoint`) under the header's
``__metadata__`` key ``napari_sbtt``. Reading only that is enough to recognise a checkpoint and
to check it against a recording (ROI count, likelihood) before anything heavy is imported.

Checkpoints come from other people too: :func:`validate_checkpoint_info` checks the type of
every field (a list instead of the document, a null version, a negative ``n_neurons`` are
refused with a message naming the field), and :func:`tensor_shapes` lists the shapes of the
tensors the file ships, so :func:`napari_sbtt.model.load_model` can compare the sizes the
metadata declares with them before it builds anything.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from .config import LIKELIHOODS

__all__ = [
    "checkpoint_header_info",
    "validate_checkpoint_info",
    "resolve_checkpoint_path",
    "tensor_shapes",
    "MAX_HEADER_BYTES",
    "FORMAT",
    "FORMAT_VERSION",
    "META_KEY",
    "CHECKPOINT_NAME",
    "upgrade_checkpoint_info",
]

FORMAT = "napari-sbtt-model"
#: 2: the config always names its calcium_kernel (format 1 files without it mean "ar", the
#: default of their time), and the calcium kernel's time constants are stored as log bins
#: (format 1 files may hold them as pole logits, converted on load by
#: :func:`napari_sbtt.model.checkpoint.load_model`)
FORMAT_VERSION = 2
META_KEY = "napari_sbtt"
#: the checkpoint's name inside a result folder written by ``SBTTResult.save``
CHECKPOINT_NAME = "model.safetensors"

#: headers larger than this are not napari-sbtt checkpoints (ours are a few kB)
MAX_HEADER_BYTES = 64 * 1024 * 1024


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """The checkpoint file: ``path`` itself, or ``model.safetensors`` inside a result folder.

    Raises FileNotFoundError when nothing is there and ValueError for a folder without a model.
    """
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"no model file at {p}")
    if p.is_dir():
        inner = p / CHECKPOINT_NAME
        if not inner.is_file():
            raise ValueError(
                f"{p} is a folder without {CHECKPOINT_NAME}; give a napari-sbtt model file "
                "(*.safetensors) or a result folder that holds one (written by a fit)")
        return inner
    return p


_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
                "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def _read_header(path: str | os.PathLike, *, with_size: bool = False) -> Any:
    with open(os.fspath(path), "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: too short for a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if not 2 <= n <= MAX_HEADER_BYTES:
            raise ValueError(f"{path}: not a safetensors header (length {n})")
        raw = fh.read(n)
        data_bytes = os.fstat(fh.fileno()).st_size - 8 - n
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: not a safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors header (a JSON {type(header).__name__})")
    return (header, data_bytes) if with_size else header


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_checkpoint_info(info: Any, path: str | os.PathLike) -> dict[str, Any]:
    """Check the type of every field of a checkpoint's metadata; returns it.

    Raises ValueError naming the file and the field (and saying to save the model again).
    """
    fix = "the file is damaged or was edited; save the model again"
    if not isinstance(info, dict):
        raise ValueError(f"{path}: the napari-sbtt metadata is a JSON {type(info).__name__}, not an object; {fix}")
    if info.get("format") != FORMAT:
        raise ValueError(f"{path} is not a napari-sbtt model file (format {info.get('format')!r})")
    version = info.get("format_version")
    if not _is_int(version) or version < 1:
        raise ValueError(f"{path}: metadata field 'format_version' must be a whole number >= 1, got {version!r}; {fix}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer napari-sbtt (format version {version}); "
                         "upgrade napari-sbtt to read it")
    if info.get("likelihood") not in LIKELIHOODS:
        raise ValueError(f"{path}: metadata field 'likelihood' must be one of {LIKELIHOODS}, got "
                         f"{info.get('likelihood')!r}; {fix}")
    n = info.get("n_neurons")
    if not _is_int(n) or n < 1:
        raise ValueError(f"{path}: metadata field 'n_neurons' must be a whole number >= 1, got {n!r}; {fix}")
    for name, kind in (("config", dict), ("normaliser", dict), ("history", list), ("metadata", dict),
                       ("stop_reason", str)):
        if name in info and not isinstance(info[name], kind):
            raise ValueError(f"{path}: metadata field '{name}' must be a JSON {kind.__name__}, got "
                             f"{type(info.get(name)).__name__}; {fix}")
    if "best_epoch" in info and not _is_int(info["best_epoch"]):
        raise ValueError(f"{path}: metadata field 'best_epoch' must be a whole number, got {info['best_epoch']!r}; {fix}")
    if not all(isinstance(h, dict) for h in info.get("history", [])):
        raise ValueError(f"{path}: metadata field 'history' must list one JSON object per epoch; {fix}")
    return upgrade_checkpoint_info(info)


def upgrade_checkpoint_info(info: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's metadata in the current format (a copy when it changes; ``format_version``
    stays what the file says, so the weights can be upgraded too).

    Format 1 -> 2: a config without ``calcium_kernel`` was written when the only kernel was the
    AR kernel, so it says ``"ar"`` (SBTTConfig's default is now ``"double_exponential"``); the
    epoch reports' empty ``extra`` field (never used) is dropped.
    """
    if info.get("format_version", FORMAT_VERSION) >= 2:
        return info
    info = dict(info)
    if isinstance(info.get("config"), dict) and "calcium_kernel" not in info["config"]:
        info["config"] = {**info["config"], "calcium_kernel": "ar"}
    if isinstance(info.get("history"), list):
        info["history"] = [{k: v for k, v in h.items() if k != "extra"} if isinstance(h, dict) else h
                           for h in info["history"]]
    return info


def checkpoint_header_info(path: str | os.PathLike) -> dict[str, Any]:
    """The napari-sbtt metadata (a dict, every field's type checked) of the checkpoint at ``path``.

    Raises OSError when the file cannot be read and ValueError when it is not a valid napari-sbtt
    checkpoint (or KeyError / TypeError from a damaged header).
    """
    header = _read_header(path)
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or META_KEY not in meta:
        raise ValueError(f"{path} is a safetensors file but not a napari-sbtt model (no '{META_KEY}' "
                         "metadata); it may come from another program")
    try:
        info = json.loads(meta[META_KEY])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: corrupt napari-sbtt metadata ({e})") from None
    return validate_checkpoint_info(info, path)


def tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor the checkpoint ships, from its header (nothing is loaded).

    Each shape is checked against the bytes the file holds for that tensor, so the shapes are
    bounded by the file's size. Raises ValueError naming the tensor otherwise.
    """
    header, data_bytes = _read_header(path, with_size=True)
    out: dict[str, tuple[int, ...]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        entry = entry if isinstance(entry, dict) else {}
        shape, offsets, dtype = entry.get("shape"), entry.get("data_offsets"), entry.get("dtype")
        if (not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape)
                or not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
                or dtype not in _DTYPE_BYTES):
            raise ValueError(f"{path}: tensor {name!r} has no valid shape, dtype and data offsets in the "
                             "header; the file is damaged")
        count = 1
        for s in shape:
            count *= s
        if not 0 <= offsets[0] <= offsets[1] <= data_bytes or offsets[1] - offsets[0] != count * _DTYPE_BYTES[dtype]:
            raise ValueError(f"{path}: tensor {name!r} declares shape {tuple(shape)} but the file holds "
                             f"{max(0, min(offsets[1], data_bytes) - offsets[0])} bytes for it; the file is "
                             "damaged or was edited")
        out[name] = tuple(shape)
    return out
