"""Single-file model checkpoints: safetensors weights + JSON metadata in its header.

Format (``format = "napari-sbtt-model"``, ``format_version = 2``, see
:data:`~napari_sbtt.model.header.FORMAT_VERSION` for what changed since 1): one
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
from typing import Any, Callable, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..core.atomic import atomic_path
from .config import EpochReport, SBTTConfig
from .device import resolve_device
from .header import (
    FORMAT,
    FORMAT_VERSION,
    META_KEY,
    resolve_checkpoint_path,
    tensor_shapes,
    validate_checkpoint_info,
)
from .likelihoods import (
    LEGACY_CALCIUM_KEYS,
    Normaliser,
    calcium_state_from_logits,
    make_likelihood,
    rename_legacy_calcium_key,
)
from .network import SequentialAutoencoder
from .training import TrainingState

__all__ = ["save_model", "read_checkpoint", "read_checkpoint_info", "Checkpoint", "save_training_state",
           "read_training_state", "TRAINING_STATE_FORMAT"]

#: the ``format`` of a training-state file (:func:`save_training_state`)
TRAINING_STATE_FORMAT = "napari-sbtt-training-state"


def _package_version() -> str:
    from .. import __version__

    return __version__


def save_model(model: Any, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``model`` (an :class:`~napari_sbtt.model.SBTTModel`) to ``path`` (conventionally
    ``*.safetensors``). Returns the path."""
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
        save_file(tensors, str(tmp), metadata={META_KEY: text})
    return p


def read_checkpoint_info(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a checkpoint without building the model (cheap compatibility checks).

    ``path`` is the checkpoint file or a result folder holding ``model.safetensors``. Every
    field's type is checked (:func:`~napari_sbtt.model.header.validate_checkpoint_info`).
    """
    p = resolve_checkpoint_path(path)
    try:
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{p} is not a napari-sbtt model file (not a readable safetensors file: {e})"
                         ) from None
    if META_KEY not in meta:
        raise ValueError(f"{p} is a safetensors file but not a napari-sbtt model (no '{META_KEY}' "
                         "metadata); it may come from another program")
    try:
        info = json.loads(meta[META_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: corrupt napari-sbtt metadata ({e})") from None
    return validate_checkpoint_info(info, p)


def _available(device: str) -> bool:
    try:
        resolve_device(device)
    except ValueError:
        return False
    return True


def _expected_shapes(n: int, likelihood: str, config: SBTTConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of the network's tensors for these sizes, built on torch's meta device (no memory)."""
    with torch.device("meta"):
        net = SequentialAutoencoder(n, config, make_likelihood(likelihood, n, config))
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _check_shapes(path: Path, n: int, likelihood: str, config: SBTTConfig) -> None:
    """Compare the sizes the metadata declares with the tensors the file ships, before building."""
    try:
        shipped = {rename_legacy_calcium_key(k): v for k, v in tensor_shapes(path).items()}
    except OSError as e:
        raise ValueError(f"{path}: cannot read the weights ({e})") from None
    expected = _expected_shapes(n, likelihood, config)
    missing = sorted(set(expected) - set(shipped))
    extra = sorted(set(shipped) - set(expected))
    bad = [k for k in expected if k in shipped and shipped[k] != expected[k]]
    if missing or extra or bad:
        sizes = ", ".join(f"{k}={getattr(config, k)}" for k in
                          ("readin_size", "encoder_size", "generator_size", "factor_size", "ic_size",
                           "controller_size"))
        detail = (f"tensor {bad[0]!r} is {shipped[bad[0]]} but the metadata (n_neurons={n}, {sizes}) "
                  f"needs {expected[bad[0]]}") if bad else f"missing {missing[:5]}, unexpected {extra[:5]}"
        raise ValueError(f"{path}: the weights do not match the sizes in the metadata ({detail}); the file "
                         "is damaged or was edited - save the model again")


class Checkpoint(NamedTuple):
    """The contents of a checkpoint: a network with its weights, and what describes it."""

    network: SequentialAutoencoder
    likelihood: str
    config: SBTTConfig
    normaliser: Normaliser
    history: list[EpochReport]
    best_epoch: int
    metadata: dict[str, Any]
    stop_reason: str
    device: torch.device


def read_checkpoint(path: str | os.PathLike, *, device: str | None = None,
                    check: Callable[[int, str], None] | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`save_model` (:func:`napari_sbtt.model.load_model` wraps
    it into an SBTTModel).

    ``path``: the ``.safetensors`` file, or a result folder holding ``model.safetensors``.
    ``device``: where to put the network; default: the device it was trained on when this
    machine has it, else "auto"; the config's ``device`` is set to the one used. ``check(n_neurons,
    likelihood)`` is called with the checkpoint's before its weights are read.

    Every size the metadata declares is checked against the tensors the file ships before the
    network is built, so an edited file cannot make this allocate more than the file holds.
    A format 1 checkpoint is upgraded on the way (:data:`~napari_sbtt.model.header.FORMAT_VERSION`).
    """
    path = resolve_checkpoint_path(path)
    info = read_checkpoint_info(path)
    lik = info["likelihood"]
    n = info["n_neurons"]
    try:
        config = SBTTConfig.from_dict(info["config"])
        normaliser = Normaliser.from_dict(info["normaliser"])
        history = [EpochReport.from_dict(r) for r in info.get("history", [])]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: incomplete or invalid napari-sbtt metadata ({e})") from None
    if normaliser.offset.shape != (n,) or normaliser.scale.shape != (n,):
        raise ValueError(f"{path}: metadata field 'normaliser' holds {normaliser.offset.size} offsets and "
                         f"{normaliser.scale.size} scales for n_neurons={n}; the file is damaged or was edited")
    _check_shapes(path, n, lik, config)
    if device is None:  # where it was trained if this machine has that device, else "auto"
        device = config.device if _available(config.device) else "auto"
    dev = resolve_device(device)
    if device != config.device:
        config = config.replace(device=device)
    network = SequentialAutoencoder(n, config, make_likelihood(lik, n, config))
    if check is not None:
        check(n, lik)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: cannot read the weights ({e})") from None
    if info["format_version"] < 2 and any(k.endswith(LEGACY_CALCIUM_KEYS) for k in tensors):
        tensors = calcium_state_from_logits(tensors)  # format 1: calcium poles as logits
    network.load_state_dict(tensors)
    return Checkpoint(network, lik, config, normaliser, history, info.get("best_epoch", -1),
                      info.get("metadata", {}), info.get("stop_reason", ""), dev)


# --------------------------------------------------------------------------- training state
def save_training_state(state: TrainingState, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a :class:`~napari_sbtt.model.training.TrainingState` (a resumable fit: weights,
    best weights, AdamW moments, schedule, generator states) as one safetensors file: the
    tensors under ``network/``, ``best/``, ``optimizer/<param>/<key>`` and ``rng/``, the rest
    as JSON in the header. No pickle, as for model files."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, sd in (("network", state.network), ("best", state.best_network)):
        for k, v in sd.items():
            tensors[f"{prefix}/{k}"] = v.detach().to("cpu").clone().contiguous()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state.optimizer.get("state", {}).items():
        for key, v in entry.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optimizer/{pid}/{key}"] = v.detach().to("cpu").clone().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = v
    for k, v in state.rng.items():
        tensors[f"rng/{k}"] = v.detach().to("cpu").clone().contiguous()
    info = {
        "format": TRAINING_STATE_FORMAT, "format_version": 1, "package_version": _package_version(),
        "epoch": state.epoch, "best_epoch": state.best_epoch, "best_loss": state.best_loss,
        "retries": state.retries, "history": [r.to_dict() for r in state.history],
        "schedule": state.schedule, "seconds": state.seconds,
        "param_groups": state.optimizer.get("param_groups", []), "optimizer_scalars": scalars,
    }
    p = Path(path)
    with atomic_path(p, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(info, allow_nan=True)})
    return p


def read_training_state(path: str | os.PathLike) -> TrainingState:
    """Read a file written by :func:`save_training_state`; ValueError naming the file when it is
    not one."""
    p = Path(path)
    try:
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(p), device="cpu")
        info = json.loads(meta[META_KEY])
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as e:
        raise ValueError(f"{p} is not a napari-sbtt training state ({e})") from None
    if not isinstance(info, dict) or info.get("format") != TRAINING_STATE_FORMAT:
        raise ValueError(f"{p} is not a napari-sbtt training state (format {info.get('format')!r})")
    try:
        opt_state: dict[int, dict[str, Any]] = {}
        for pid, entry in info["optimizer_scalars"].items():
            opt_state.setdefault(int(pid), {}).update(entry)
        parts: dict[str, dict[str, torch.Tensor]] = {"network": {}, "best": {}, "rng": {}}
        for name, v in tensors.items():
            head, _, rest = name.partition("/")
            if head == "optimizer":
                pid, _, key = rest.partition("/")
                opt_state.setdefault(int(pid), {})[key] = v
            else:
                parts[head][rest] = v
        return TrainingState(
            network=parts["network"], best_network=parts["best"],
            optimizer={"state": opt_state, "param_groups": info["param_groups"]},
            epoch=int(info["epoch"]), best_epoch=int(info["best_epoch"]), best_loss=float(info["best_loss"]),
            retries=int(info["retries"]), history=[EpochReport.from_dict(r) for r in info["history"]],
            schedule={k: float(v) for k, v in info["schedule"].items()}, rng=parts["rng"],
            seconds=float(info.get("seconds", 0.0)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{p}: incomplete training state ({e!r})") from None
