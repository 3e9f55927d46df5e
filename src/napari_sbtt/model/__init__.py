"""Model layer: the SBTT sequential autoencoder, its likelihoods, training and checkpoints.

Importing this package imports torch; the rest of napari_sbtt reaches it lazily.
"""

from __future__ import annotations

from .checkpoint import load_model, read_checkpoint_info, save_model
from .config import EpochReport, SBTTConfig, StopTraining
from .sbtt_model import SBTTModel
from .training import fit_trials

__all__ = [
    "fit_trials",
    "load_model",
    "save_model",
    "read_checkpoint_info",
    "SBTTModel",
    "SBTTConfig",
    "EpochReport",
    "StopTraining",
]
