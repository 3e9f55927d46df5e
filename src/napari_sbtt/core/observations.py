"""The samples of every ROI on the fine grid: :class:`Observations`, and its ``.npz`` file.

:func:`napari_sbtt.core.traces.extract_observations` (a movie) and
:func:`napari_sbtt.core.traces.observations_from_traces` (per-frame traces) make them; the
models fit them. NaN marks a bin in which an ROI was not observed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .scan import FineGrid

__all__ = ["Observations", "NPZ_FORMAT", "NPZ_VERSION"]

#: the ``format`` entry of an observations ``.npz`` and its version
NPZ_FORMAT = "napari-sbtt.observations"
NPZ_VERSION = 1


@dataclass
class Observations:
    """Per-ROI samples on the fine grid.

    Attributes
    ----------
    values
        (T_fine, N) float32, NaN where the ROI was not observed in that bin;
        in ``units``.
    times
        (T_fine,) float64 bin centres in seconds.
    roi_ids
        (N,) int64 ROI ids (labels values), column order of ``values``.
    grid
        The fine grid (``t0``, ``bin_width`` seconds, ``n_bins``).
    sample_times
        (T_fine, N) float64 exact acquisition time (seconds) of each sample,
        NaN where not observed.
    coverage
        (N,) float64 share of sweeps (0..1) in which each ROI was observed.
    units
        ``"raw"``, ``"raw, neuropil-corrected"`` or ``"dF/F"``.
    neuropil
        (T_fine, N) float32 raw neuropil F_neu of the kept samples (NaN
        elsewhere), or None when no neuropil correction was made.
    params
        JSON-ready dict of the settings that produced the observations.
    """

    values: np.ndarray
    times: np.ndarray
    roi_ids: np.ndarray
    grid: FineGrid
    sample_times: np.ndarray
    coverage: np.ndarray
    units: str = "raw"
    neuropil: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        self.times = np.asarray(self.times, dtype=np.float64)
        self.roi_ids = np.asarray(self.roi_ids, dtype=np.int64)
        self.sample_times = np.asarray(self.sample_times, dtype=np.float64)
        self.coverage = np.asarray(self.coverage, dtype=np.float64)
        T, N = self.grid.n_bins, self.roi_ids.size
        if self.values.shape != (T, N):
            raise ValueError(f"values must have shape (T_fine, N) = {(T, N)}, got {self.values.shape}")
        if self.sample_times.shape != (T, N):
            raise ValueError(f"sample_times must have shape {(T, N)}, got {self.sample_times.shape}")
        if self.times.shape != (T,):
            raise ValueError(f"times must have shape ({T},), got {self.times.shape}")
        if self.coverage.shape != (N,):
            raise ValueError(f"coverage must have shape ({N},), got {self.coverage.shape}")
        if self.neuropil is not None:
            self.neuropil = np.asarray(self.neuropil, dtype=np.float32)
            if self.neuropil.shape != (T, N):
                raise ValueError(f"neuropil must have shape {(T, N)}, got {self.neuropil.shape}")

    @property
    def n_bins(self) -> int:
        """Number of fine-grid bins, T_fine."""
        return int(self.grid.n_bins)

    @property
    def n_rois(self) -> int:
        """Number of ROIs, N."""
        return int(self.roi_ids.size)

    def observed_mask(self) -> np.ndarray:
        """Bool (T_fine, N): True where the ROI was observed in that bin."""
        return ~np.isnan(self.values)

    def to_npz(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write to a compressed ``.npz`` atomically (no pickled objects); returns the path."""
        from .atomic import atomic_write

        arrays: dict[str, np.ndarray] = {
            "format": np.array(NPZ_FORMAT),
            "version": np.array(NPZ_VERSION),
            "values": self.values,
            "times": self.times,
            "roi_ids": self.roi_ids,
            "grid": np.array([self.grid.t0, self.grid.bin_width, float(self.grid.n_bins)]),
            "sample_times": self.sample_times,
            "coverage": self.coverage,
            "units": np.array(self.units),
            "params": np.array(json.dumps(self.params)),
        }
        if self.neuropil is not None:
            arrays["neuropil"] = self.neuropil

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: numpy appends no suffix
                np.savez_compressed(fh, **arrays)

        atomic_write(path, write, overwrite=overwrite)
        return Path(path)

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> "Observations":
        """Read what :meth:`to_npz` wrote (``allow_pickle=False``)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"observations file not found: {p}")
        from .readers.npy import load_npz

        z = load_npz(p)
        fmt = str(z["format"]) if "format" in z else None
        if fmt != NPZ_FORMAT:
            raise ValueError(
                f"{p} is not a napari-sbtt observations file (format {fmt!r}, expected "
                f"{NPZ_FORMAT!r}); write it with Observations.to_npz"
            )
        version = int(z["version"])
        if version > NPZ_VERSION:
            raise ValueError(
                f"{p} has observations format version {version}, newer than this napari-sbtt "
                f"understands ({NPZ_VERSION}); upgrade napari-sbtt"
            )
        try:
            g = z["grid"]
            grid = FineGrid(float(g[0]), float(g[1]), int(round(g[2])))
            return cls(
                values=z["values"],
                times=z["times"],
                roi_ids=z["roi_ids"],
                grid=grid,
                sample_times=z["sample_times"],
                coverage=z["coverage"],
                units=str(z["units"]),
                neuropil=z.get("neuropil"),
                params=json.loads(str(z["params"])),
            )
        except KeyError as e:
            raise ValueError(f"{p} lacks the array {e.args[0]!r}; the file is incomplete") from None
