"""napari-sbtt: super-resolved, deconvolved ROI activity from partial-field
two-photon scans with selective backpropagation through time (SBTT).

Public names are imported lazily, so ``import napari_sbtt`` is cheap and does not
import torch or napari.
"""

from __future__ import annotations

import importlib
from typing import Any

#: the package version, written only here (pyproject.toml reads it: [tool.setuptools.dynamic])
__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    # core
    "ScanPattern": "napari_sbtt.core.scan",
    "FineGrid": "napari_sbtt.core.scan",
    "Observations": "napari_sbtt.core.traces",
    "extract_observations": "napari_sbtt.core.traces",
    "observations_from_traces": "napari_sbtt.core.traces",
    "make_windows": "napari_sbtt.core.windows",
    "merge_windows": "napari_sbtt.core.windows",
    "WindowStore": "napari_sbtt.core.windows",
    "simulate": "napari_sbtt.core.synth",
    # model (imports torch when first touched)
    "fit_trials": "napari_sbtt.model",
    "load_model": "napari_sbtt.model",
    "SBTTModel": "napari_sbtt.model",
    "SBTTConfig": "napari_sbtt.model.config",
    "EpochReport": "napari_sbtt.model.config",
    # api
    "run_on_stack": "napari_sbtt.api",
    "run_on_traces": "napari_sbtt.api",
    "run_on_observations": "napari_sbtt.api",
    "RunConfig": "napari_sbtt.config",
    "RunControl": "napari_sbtt.core.progress",
    "SBTTResult": "napari_sbtt.result",
    "load_result": "napari_sbtt.result",
    "deconvolve_traces": "napari_sbtt.deconvolve",
    "traces_decay_estimate": "napari_sbtt.deconvolve",
    # Ray (pip install "napari-sbtt[tune]")
    "batch": "napari_sbtt.batchrun",
    "tune": "napari_sbtt.search",
}

_SUBMODULES = {"synth": "napari_sbtt.core.synth", "metrics": "napari_sbtt.core.metrics"}

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(_SUBMODULES[name])
    else:
        raise AttributeError(f"module 'napari_sbtt' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
