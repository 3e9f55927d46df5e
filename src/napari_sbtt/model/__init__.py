"""Model layer: the SBTT sequential autoencoder, its likelihoods, training and checkpoints.

Names are resolved lazily so that ``napari_sbtt.model.config`` (SBTTConfig,
EpochReport, StopTraining) can be imported without torch; touching
``fit_trials``, ``load_model`` or ``SBTTModel`` imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .checkpoint import read_checkpoint_info, save_model
    from .config import EpochReport, SBTTConfig, StopTraining
    from .sbtt_model import SBTTModel, fit_trials, load_model

_LAZY = {
    "fit_trials": ".sbtt_model",
    "load_model": ".sbtt_model",
    "save_model": ".checkpoint",
    "read_checkpoint_info": ".checkpoint",
    "SBTTModel": ".sbtt_model",
    "SBTTConfig": ".config",
    "EpochReport": ".config",
    "StopTraining": ".config",
}

__all__ = ["EpochReport", "SBTTConfig", "SBTTModel", "StopTraining", "fit_trials", "load_model",
           "read_checkpoint_info", "save_model"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'napari_sbtt.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
