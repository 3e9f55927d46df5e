"""Single-file model checkpoints: safetensors weights + JSON metadata in its header.

Format (``format = "napari-sbtt-model"``, ``format_version = 1``): one
``.safetensors`` file. Tensors are the network's ``state_dict`` (float32). The
safetensors header's string metadata holds one key, ``napari_sbtt``, whose value
is a JSON document with: package version, torch version, likelihood, n_neurons,
the full SBTTConfig, the data normaliser (per-neuron offset/scale), training
history, best epoch, stop reason and the caller's data metadata (units, bin
width, grid...). Nothing is pickled; loading parses JSON and raw tensors only, so
it can never execute code from the file.

Files are written to a temporary name beside the destination and renamed into
place; an existing path is only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..core.atomic import atomic_path
from .config import LIKELIHOODS, EpochReport, SBTTConfig
from .likelihoods import Normaliser
from .sbtt_model import SBTTModel, resolve_device

__all__ = ["save_model", "load_model", "read_checkpoint_info", "FORMAT", "FORMAT_VERSION"]

FORMAT = "napari-sbtt-model"
FORMAT_VERSION = 1
_META_KEY = "napari_sbtt"


def _package_version() -> str:
    from .. import __version__

    return __version__


def save_model(model: SBTTModel, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``model`` to ``path`` (conventionally ``*.safetensors``). Returns the path."""
    info: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": _package_version(),
        "torch_version": torch.__version__,
        "likelihood": model.likelihood,
        "n_neurons": model.n_neurons,
        "config": model.config.to_dict(),
        "normaliser": model.normaliser.to_dict(),
        "history": [r.to_dict() for r in model.history],
        "best_epoch": model.best_epoch,
        "stop_reason": model.stop_reason,
        "metadata": model.metadata,
    }
    try:
        text = json.dumps(info, allow_nan=True)
    except TypeError as e:
        raise ValueError(f"model.metadata must be JSON-serialisable: {e}") from None
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous()
               for k, v in model.network.state_dict().items()}
    p = Path(path)
    with atomic_path(p, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: text})
    return p


def read_checkpoint_info(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a checkpoint without building the model (cheap compatibility checks)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no model file at {p}")
    if p.is_dir():
        raise ValueError(f"{p} is a folder; give the path of a napari-sbtt model file (*.safetensors)")
    try:
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{p} is not a napari-sbtt model file (not a readable safetensors file: {e})"
                         ) from None
    if _META_KEY not in meta:
        raise ValueError(f"{p} is a safetensors file but not a napari-sbtt model (no '{_META_KEY}' "
                         "metadata); it may come from another program")
    try:
        info = json.loads(meta[_META_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: corrupt napari-sbtt metadata ({e})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{p} is not a napari-sbtt model file (format {info.get('format')!r})")
    if int(info.get("format_version", -1)) > FORMAT_VERSION:
        raise ValueError(f"{p} was written by a newer napari-sbtt (format version "
                         f"{info.get('format_version')}); upgrade napari-sbtt to read it")
    return info


def load_model(path: str | os.PathLike, *, device: str | None = None,
               n_neurons: int | None = None, likelihood: str | None = None) -> SBTTModel:
    """Load a checkpoint written by :meth:`SBTTModel.save`.

    device: where to put the model ("auto", "cpu", "cuda"...); default: the saved config's device
    resolved on this machine. ``n_neurons`` / ``likelihood``: if given, check the model fits
    that data first and raise a clear ValueError if not.
    """
    path = Path(os.fspath(path))
    info = read_checkpoint_info(path)
    try:
        lik = info["likelihood"]
        if lik not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {lik!r}")
        config = SBTTConfig.from_dict(info["config"])
        normaliser = Normaliser.from_dict(info["normaliser"])
        n = int(info["n_neurons"])
        history = [EpochReport.from_dict(r) for r in info.get("history", [])]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: incomplete or invalid napari-sbtt metadata ({e})") from None
    model = SBTTModel.build(n, lik, config, normaliser, device="cpu")
    if n_neurons is not None or likelihood is not None:
        model.check_compatible(n if n_neurons is None else n_neurons, likelihood)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: cannot read the weights ({e})") from None
    if any(k.endswith(("decay_logit", "rise_logit")) for k in tensors):
        from .likelihoods import calcium_state_from_logits

        tensors = calcium_state_from_logits(tensors)  # format 1: calcium poles as logits
    target = model.network.state_dict()
    missing = sorted(set(target) - set(tensors))
    extra = sorted(set(tensors) - set(target))
    bad = [k for k in target if k in tensors and tuple(tensors[k].shape) != tuple(target[k].shape)]
    if missing or extra or bad:
        raise ValueError(f"{path}: weights do not match the saved configuration (missing {missing[:5]}, "
                         f"unexpected {extra[:5]}, wrong shape {bad[:5]}); the file is damaged")
    model.network.load_state_dict(tensors)
    dev = resolve_device(device if device is not None else config.device)
    return SBTTModel(model.network, lik, config, normaliser, history=history,
                     best_epoch=int(info.get("best_epoch", -1)), metadata=info.get("metadata", {}),
                     stop_reason=str(info.get("stop_reason", "")), device=dev)
