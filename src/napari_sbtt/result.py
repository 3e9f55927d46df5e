"""A run's result: :class:`SBTTResult`, its folder on disk, and the metadata that describes it.

A result folder (:meth:`SBTTResult.save`, :func:`load_result`) holds ``result.json`` (the
metadata, :meth:`SBTTResult.metadata`: grid, units, metrics, config, history), ``arrays.npz``
(rates, times, observations, roi_ids, and signal / events / oasis_rates when present) and
``model.safetensors`` when the result has a model. Nothing is pickled; a folder from someone
else is checked field by field when it is read.

API layer: numpy only (torch is imported when a saved model is loaded).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .core.atomic import OutputExistsError, current_umask
from .core.scan import FineGrid

__all__ = [
    "SBTTResult",
    "load_result",
    "is_result_dir",
    "check_result_destination",
    "package_version",
    "RESULT_FORMAT",
    "RESULT_FORMAT_VERSION",
    "RATE_UNITS",
]

RESULT_FORMAT = "napari-sbtt-result"
RESULT_FORMAT_VERSION = 1

#: units of ``SBTTResult.rates`` for each likelihood
RATE_UNITS = {
    "poisson": "counts/bin",
    "gaussian": "input units (denoised)",
    "zig": "event size/bin",
    "calcium": "dF/F jump/bin (deconvolved)",
}


@dataclass
class SBTTResult:
    """Inferred activity of every ROI on the fine grid, with what produced it.

    Attributes
    ----------
    rates : float32 (T_fine, N) inferred activity in ``units``, every bin and ROI.
    times : float64 (T_fine,) bin centres in seconds.
    observations : float32 (T_fine, N) the samples the model saw (dF/F when ``dff``), NaN where
        the ROI was not observed.
    roi_ids : int (N,) the label of each column in the ROI labels image.
    grid : the fine time grid.
    units : units of ``rates``.
    metrics : summary numbers (observed share, held-out loss, fit quality per ROI, timings; for
        calcium ``spikes_estimate``, what :meth:`spikes_per_s` converts with).
    config : the RunConfig as a dict, plus the scan pattern and the model config.
    model : the fitted or applied :class:`~napari_sbtt.model.SBTTModel` (None after
        :func:`load_result` when none was saved);
        after a run with ``isolate=True`` a :class:`~napari_sbtt.isolated.ModelFile` (the
        checkpoint on disk; ``.load()`` gives the model).
    history : per-epoch training reports as dicts.
    stopped : True when training was stopped early and the best model so far was used.
    signal : float32 (T_fine, N) the model's expected observation (fluorescence for calcium).
    events : calcium likelihood: float32 (T_fine, N) each ROI's samples deconvolved under the
        learned calcium model (spike-like events, in the units of ``rates``; each spread over
        the gap before the sample that saw it: ``core.deconvolution.spread_over_gaps``); else None.
    oasis_rates : float32 (T_fine, N) OASIS's estimate in the units of ``rates``, present when
        SBTT did not predict the held-out samples better than OASIS (verdict "OASIS better" or
        "no clear difference", ``metrics["heldout"]``); else None.
    """

    rates: np.ndarray
    times: np.ndarray
    observations: np.ndarray
    roi_ids: np.ndarray
    grid: FineGrid
    units: str
    metrics: dict[str, Any]
    config: dict[str, Any]
    model: Any = None
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False
    signal: np.ndarray | None = None
    events: np.ndarray | None = None
    oasis_rates: np.ndarray | None = None

    @property
    def n_rois(self) -> int:
        return int(self.rates.shape[1])

    @property
    def has_spike_estimate(self) -> bool:
        """True when :meth:`spikes_per_s` can convert the activity (a calcium fit on dF/F)."""
        est = (self.metrics or {}).get("spikes_estimate")
        return isinstance(est, dict) and bool(est.get("available")) and \
            isinstance(est.get("dff_per_spike"), list) and len(est["dff_per_spike"]) == self.n_rois

    def spikes_per_s(self, what: str = "rates", column: int | None = None) -> np.ndarray:
        """The activity as **estimated** spikes per second, float32 (T_fine, N); NaN where the
        activity is NaN.

        ``rates`` (dF/F jump per bin) divided by the dF/F jump one spike of the indicator preset
        makes and by the bin width (:mod:`napari_sbtt.core.units`). An estimate: it takes the
        preset's amplitude (peak dF/F per spike, ``metrics["spikes_estimate"]``: the indicator
        and the dF/F jump per spike of each ROI) as every neuron's. ``what``: "rates",
        "events" or "oasis_rates" (when present); ``column``: only that column, (T_fine,).

        Raises ValueError when the result has no estimate (not the calcium likelihood, or
        observations not in dF/F: ``metrics["spikes_estimate"]["reason"]`` says which).
        """
        from .core.units import spikes_per_second

        est = (self.metrics or {}).get("spikes_estimate")
        if not self.has_spike_estimate:
            if isinstance(est, dict) and est.get("reason"):
                why = str(est["reason"])
            elif est is None:
                why = (f"it was fitted with the {(self.config or {}).get('likelihood')!s} likelihood; only "
                       "the calcium likelihood's activity is a calcium jump")
            else:
                why = "its metrics['spikes_estimate'] is incomplete"
            raise ValueError(f"this result has no spikes/s estimate: {why}")
        arrays = {"rates": self.rates, "events": self.events, "oasis_rates": self.oasis_rates}
        if what not in arrays or arrays[what] is None:
            have = ", ".join(k for k, v in arrays.items() if v is not None)
            raise ValueError(f"what must be one of {have}, got {what!r}")
        per = np.array([np.nan if v is None else float(v) for v in est["dff_per_spike"]])
        values = np.asarray(arrays[what], dtype=np.float32)
        if column is not None:
            values, per = values[:, column], per[column]
        return spikes_per_second(values, per, float(self.grid.bin_width))

    def metadata(self) -> dict[str, Any]:
        """The JSON-ready description of the result that result.json and the .npz/.h5 exports
        carry: format, versions, grid, units, metrics, config, history and whether it stopped."""
        return {
            "format": RESULT_FORMAT,
            "format_version": RESULT_FORMAT_VERSION,
            "package_version": package_version(),
            "grid": dataclasses.asdict(self.grid),
            "units": self.units,
            "metrics": self.metrics,
            "config": self.config,
            "history": self.history,
            "stopped": bool(self.stopped),
        }

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the result to a folder: result.json, arrays.npz and model.safetensors.

        The folder is assembled under a temporary name and renamed into place, so an
        interrupted save leaves nothing behind; an existing folder is only replaced
        with ``overwrite=True``, and only when it is a result folder itself
        (:func:`check_result_destination`). The folder and its files get the user's
        normal permissions (the umask), as any program's output.
        """
        dest = check_result_destination(directory, overwrite=overwrite)
        parent = dest.parent
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=parent))
        try:
            os.chmod(tmp, 0o777 & ~current_umask())
            arrays = {
                "rates": self.rates,
                "times": self.times,
                "observations": self.observations,
                "roi_ids": self.roi_ids,
            }
            if self.signal is not None:
                arrays["signal"] = self.signal
            if self.events is not None:
                arrays["events"] = self.events
            if self.oasis_rates is not None:
                arrays["oasis_rates"] = self.oasis_rates
            np.savez_compressed(tmp / "arrays.npz", **arrays)
            meta = {**self.metadata(), "has_model": self.model is not None}
            (tmp / "result.json").write_text(json.dumps(meta, indent=1, default=_json_default))
            if self.model is not None:
                self.model.save(tmp / "model.safetensors")
            if dest.exists() or dest.is_symlink():
                check_result_destination(dest, overwrite=True)  # still a result folder of ours
                backup = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=parent))
                previous = backup / "previous"
                dest.rename(previous)
                try:
                    tmp.rename(dest)
                except BaseException:
                    previous.rename(dest)  # put the old result back; only then drop the backup folder
                    shutil.rmtree(backup, ignore_errors=True)
                    raise
                shutil.rmtree(backup, ignore_errors=True)
            else:
                tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    def export(
        self,
        path: str | os.PathLike,
        format: str | None = None,
        *,
        labels: Any = None,
        overwrite: bool = False,
        what: str = "rates",
        nwb_subject: Mapping[str, Any] | None = None,
        nwb_location: str | None = None,
    ) -> Path:
        """Write the result for other tools, the format chosen by the suffix (or ``format``).

        ``.npz`` (arrays + result_json), ``.h5``/``.hdf5`` (datasets, config/metrics JSON
        attributes), ``.csv`` (``time_s`` in seconds + one column per ROI of ``what``, NaN
        empty), ``.tif``/``.tiff`` (float32 (T_fine, Y, X) activity movie painted into the ROI
        labels) or ``.nwb`` (RoiResponseSeries ``processing/ophys/Fluorescence/Deconvolved``
        linked to the ROIs). ``labels``: (Y, X) labels image (array or .tif/.npy) for .tif/.nwb
        when the result did not come from :func:`napari_sbtt.recording.run_recording` on a file
        with ROI masks. ``nwb_subject``: NWB Subject fields for .nwb (``subject_id``,
        ``species``, ``sex``, ``age``); ``nwb_location``: the imaging plane's brain area (an
        Allen CCF term for a mouse). Atomic; an existing file is replaced only with
        ``overwrite=True``. See :func:`napari_sbtt.export.export_result`.
        """
        from .export import export_result

        return export_result(self, path, format, labels=labels, overwrite=overwrite, what=what,
                             nwb_subject=nwb_subject, nwb_location=nwb_location)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot store {type(o).__name__} in result.json")


def package_version() -> str:
    """The installed napari-sbtt version (one source: ``napari_sbtt.__version__``)."""
    from . import __version__

    return __version__


def check_result_destination(path: str | os.PathLike, *, overwrite: bool = False, probe: bool = False) -> Path:
    """Check that a result folder may be written at ``path``; returns it as a Path.

    An existing ``path`` is refused unless ``overwrite`` is True, and even then unless it is a
    result folder (:func:`is_result_dir`, not a symlink): a file, a symlink or any other folder
    is never replaced. The parent folder must exist; with ``probe`` it is also tried for writing
    (a temporary folder is made and removed), so a run can fail before its work, not after.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    ValueError
        ``overwrite`` is True but ``path`` is not a result folder.
    FileNotFoundError, NotADirectoryError, PermissionError
        The parent folder is missing, not a folder, or not writable.
    """
    dest = Path(os.fspath(path)).expanduser()
    if dest.exists() or dest.is_symlink():
        if not overwrite:
            raise OutputExistsError(
                f"{dest} already exists; choose another output folder, or replace it (only if it is a result "
                "folder) with overwrite=True (--overwrite on the command line)")
        kind = ("a symbolic link" if dest.is_symlink() else "a file" if not dest.is_dir()
                else None if is_result_dir(dest) else "a folder that is not a napari-sbtt result")
        if kind is not None:
            raise ValueError(
                f"{dest} is {kind}; only a result folder written by napari-sbtt is replaced, so nothing of "
                "yours is deleted - choose another output folder")
    parent = dest.parent
    if not parent.exists():
        raise FileNotFoundError(f"the folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise NotADirectoryError(f"{parent} is not a folder; choose an output folder inside a folder")
    if probe:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".probe", dir=parent))
        except OSError as e:
            raise PermissionError(f"cannot write in {parent} ({e.strerror or e}); choose an output folder you "
                                  "can write to") from None
    return dest


def is_result_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder written by :meth:`SBTTResult.save`."""
    p = Path(path)
    if not (p / "result.json").is_file() or not (p / "arrays.npz").is_file():
        return False
    try:
        meta = json.loads((p / "result.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == RESULT_FORMAT


def _check_result(p: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FineGrid:
    """The fine grid of a result folder after checking result.json's fields and the arrays' shapes
    (a folder from someone else may have been edited); raises ValueError naming the field."""
    def bad(key: str, want: str) -> ValueError:
        return ValueError(f"{p / 'result.json'}: field {key!r} must be {want}; the result folder is "
                          "damaged or was edited - run the fit again")

    grid = meta.get("grid")
    if not isinstance(grid, dict) or set(grid) != {"t0", "bin_width", "n_bins"}:
        raise bad("grid", "an object with t0, bin_width and n_bins")
    if not all(isinstance(grid[k], (int, float)) and not isinstance(grid[k], bool) and math.isfinite(grid[k])
               for k in grid) or not grid["bin_width"] > 0:
        raise bad("grid", "finite numbers with bin_width > 0")
    if not isinstance(grid["n_bins"], int) or isinstance(grid["n_bins"], bool) or grid["n_bins"] < 1:
        raise bad("grid.n_bins", "a whole number >= 1")
    for key, kind, name in (("units", str, "text"), ("metrics", dict, "an object"), ("config", dict, "an object"),
                            ("history", list, "a list"), ("stopped", bool, "true or false")):
        if (key in meta or key in ("units", "metrics", "config")) and not isinstance(meta.get(key), kind):
            raise bad(key, name)
    missing = [k for k in ("rates", "times", "observations", "roi_ids") if k not in arrays]
    if missing:
        raise ValueError(f"{p / 'arrays.npz'} lacks the array {missing[0]!r}; the result folder is incomplete")
    rates, ids = arrays["rates"], arrays["roi_ids"]
    n_t = grid["n_bins"]
    shapes_ok = (rates.ndim == 2 and rates.shape[0] == n_t and ids.shape == (rates.shape[1],)
                 and np.issubdtype(ids.dtype, np.integer) and arrays["times"].shape == (n_t,)
                 and arrays["observations"].shape == rates.shape
                 and all(k not in arrays or arrays[k].shape == rates.shape
                         for k in ("signal", "events", "oasis_rates")))
    if not shapes_ok:
        raise ValueError(f"{p / 'arrays.npz'}: the arrays' shapes do not fit together or the grid of "
                         f"{n_t} bins (rates {rates.shape}, roi_ids {ids.shape}); the result folder is "
                         "damaged or was edited - run the fit again")
    return FineGrid(float(grid["t0"]), float(grid["bin_width"]), int(n_t))


def load_result(directory: str | os.PathLike, *, load_model: bool = True) -> SBTTResult:
    """Read a result folder written by :meth:`SBTTResult.save` (no pickle involved)."""
    p = Path(directory)
    if not is_result_dir(p):
        raise ValueError(
            f"{p} is not a napari-sbtt result folder (it needs result.json and arrays.npz "
            "written by SBTTResult.save)"
        )
    meta = json.loads((p / "result.json").read_text())
    from .core.readers.npy import load_npz

    arrays = load_npz(p / "arrays.npz")
    grid = _check_result(p, meta, arrays)
    model = None
    if load_model and meta.get("has_model") and (p / "model.safetensors").is_file():
        from .model import load_model as _load_model

        model = _load_model(p / "model.safetensors")
    return SBTTResult(
        rates=arrays["rates"],
        times=arrays["times"],
        observations=arrays["observations"],
        roi_ids=arrays["roi_ids"],
        grid=grid,
        units=meta["units"],
        metrics=meta["metrics"],
        config=meta["config"],
        model=model,
        history=meta.get("history", []),
        stopped=bool(meta.get("stopped", False)),
        signal=arrays.get("signal"),
        events=arrays.get("events"),
        oasis_rates=arrays.get("oasis_rates"),
    )
