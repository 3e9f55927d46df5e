"""The library's entry points, shared by scripts, the command line and the napari widgets.

``run_on_stack(movie, rois, scan)`` runs the whole data flow:

    movie + rois + scan pattern -> observations on the fine grid (core.traces)
      -> overlapping windows (core.windows) -> fit, adapt or apply a model (model)
      -> rates per window -> merged rates on the fine grid -> SBTTResult

This module is the facade: the observations come from :mod:`napari_sbtt.core.traces`, the fit
and inference from :func:`napari_sbtt.pipeline.fit_and_infer` (here or, with ``isolate=True``,
in a child process: :mod:`napari_sbtt.isolated`), the settings from :mod:`napari_sbtt.config`,
the result type from :mod:`napari_sbtt.result`, the reports and the stop control from
:mod:`napari_sbtt.core.progress`. torch is imported only when a model is fitted or applied.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import RunConfig, resolve, window_seconds
from .core.progress import ProgressCallback, RunControl, RunStopped, StageReport
from .core.scan import ScanPattern
from .pipeline import check_model_rois, fit_and_infer, infer_observations
from .result import SBTTResult, check_result_destination, is_result_dir, load_result

if TYPE_CHECKING:  # pragma: no cover
    from .model import SBTTModel

__all__ = [
    "RunConfig",
    "RunControl",
    "StageReport",
    "RunStopped",
    "SBTTResult",
    "run_on_stack",
    "run_on_traces",
    "run_on_observations",
    "observations_for_stack",
    "observations_for_traces",
    "load_result",
    "is_result_dir",
    "check_result_destination",
    "check_model_rois",
    "infer_observations",
    "model_config",
    "run_window_s",
]


def model_config(cfg: RunConfig, bin_width: float, base: Any = None) -> Any:
    """The model config of a run: :func:`napari_sbtt.config.resolve` (kept under this name)."""
    return resolve(cfg, bin_width=bin_width, base=base)


def run_window_s(cfg: RunConfig, bin_width: float) -> float:
    """The window length in seconds of a run: :func:`napari_sbtt.config.window_seconds`."""
    return window_seconds(cfg, bin_width)


def observations_for_stack(
    movie: Any,
    rois: np.ndarray,
    scan: ScanPattern | None = None,
    *,
    config: RunConfig | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    frame_period: float | None = None,
    control: RunControl | None = None,
) -> Any:
    """The first half of :func:`run_on_stack`: the movie's ROI samples on the fine grid.

    Same arguments as :func:`run_on_stack` (``config`` gives factor, min_coverage, neuropil and
    dff). Returns :class:`~napari_sbtt.core.traces.Observations`; raises RunStopped when
    ``progress`` or ``control`` asks to stop.
    """
    from .core.traces import extract_observations

    cfg = RunConfig.coerce(config)
    control = RunControl.of(progress, control)
    return extract_observations(
        movie, rois, scan, factor=cfg.factor, min_coverage=cfg.min_coverage,
        neuropil=cfg.neuropil, dff=cfg.dff, frame_period=frame_period,
        progress=control.extraction_progress("extract"),
    )


def observations_for_traces(
    traces: np.ndarray,
    roi_rows: Any,
    scan: ScanPattern | None = None,
    *,
    config: RunConfig | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    frame_period: float | None = None,
    n_rows: int | None = None,
    neuropil_traces: np.ndarray | None = None,
    roi_ids: Any = None,
    control: RunControl | None = None,
) -> Any:
    """The first half of :func:`run_on_traces`: per-frame traces placed on the fine grid."""
    from .core.traces import observations_from_traces

    cfg = RunConfig.coerce(config)
    control = RunControl.of(progress, control)
    return observations_from_traces(
        traces, roi_rows, scan, factor=cfg.factor, frame_period=frame_period, n_rows=n_rows,
        roi_ids=roi_ids, min_coverage=cfg.min_coverage, neuropil=cfg.neuropil,
        neuropil_traces=neuropil_traces, dff=cfg.dff,
        progress=control.extraction_progress("traces"),
    )


def run_on_stack(
    movie: Any,
    rois: np.ndarray,
    scan: ScanPattern | None = None,
    *,
    model: "SBTTModel | str | os.PathLike | None" = None,
    config: RunConfig | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    frame_period: float | None = None,
    isolate: bool = False,
    control: RunControl | None = None,
) -> SBTTResult:
    """Infer every ROI's activity on the fine grid from a (partial-field) movie.

    Parameters
    ----------
    movie : (T, Y, X) array-like (numpy, memmap, zarr, dask), read in chunks; unacquired rows
        may be NaN.
    rois : (Y, X) int labels image, 0 = background, 1..N = ROI ids.
    scan : the scan pattern; None means a full raster (give ``frame_period`` in seconds), whose
        fine grid still uses each ROI's sub-frame row timing.
    model : an SBTTModel or the path of a saved checkpoint to apply (or adapt, with
        ``config.adapt``) instead of training a new one.
    config : RunConfig or dict of its fields.
    progress : callable receiving a StageReport during extraction and inference and an
        EpochReport after every training epoch; returning True (or "stop") stops. Stopping
        during training keeps the best model so far and still returns a result (``stopped``);
        stopping during extraction raises RunStopped.
    frame_period : seconds per frame, needed when ``scan`` is None.
    isolate : fit and infer in a child Python process (:mod:`napari_sbtt.isolated`): this
        process never imports torch, the numbers are the same, and ``result.model`` is a
        :class:`~napari_sbtt.isolated.ModelFile`. The napari widgets run this way.
    control : a :class:`~napari_sbtt.core.progress.RunControl` to stop (``control.stop()``) or
        abort the run from another thread; it also receives the reports.

    Returns
    -------
    SBTTResult
    """
    cfg = RunConfig.coerce(config)
    control = RunControl.of(progress, control)
    t0 = time.perf_counter()
    obs = observations_for_stack(movie, rois, scan, config=cfg, frame_period=frame_period, control=control)
    return run_on_observations(obs, model=model, config=cfg, scan=scan, frame_period=frame_period,
                               isolate=isolate, seconds_extract=time.perf_counter() - t0, control=control)


def run_on_traces(
    traces: np.ndarray,
    roi_rows: Any,
    scan: ScanPattern | None = None,
    *,
    model: "SBTTModel | str | os.PathLike | None" = None,
    config: RunConfig | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    frame_period: float | None = None,
    n_rows: int | None = None,
    neuropil_traces: np.ndarray | None = None,
    roi_ids: Any = None,
    isolate: bool = False,
    control: RunControl | None = None,
) -> SBTTResult:
    """As :func:`run_on_stack`, for per-frame ROI traces without a movie (e.g. suite2p F.npy).

    traces: (T, N) per-frame values, NaN where an ROI was not acquired; roi_rows: each ROI's
    row (or list of rows), which gives its sub-frame acquisition time from ``scan`` (or from a
    full raster of ``n_rows`` rows with ``frame_period`` seconds per frame).
    """
    cfg = RunConfig.coerce(config)
    control = RunControl.of(progress, control)
    t0 = time.perf_counter()
    obs = observations_for_traces(
        traces, roi_rows, scan, config=cfg, frame_period=frame_period, n_rows=n_rows,
        neuropil_traces=neuropil_traces, roi_ids=roi_ids, control=control)
    return run_on_observations(obs, model=model, config=cfg, scan=scan, frame_period=frame_period,
                               isolate=isolate, seconds_extract=time.perf_counter() - t0, control=control)


def run_on_observations(
    observations: Any,
    *,
    model: "SBTTModel | str | os.PathLike | None" = None,
    config: RunConfig | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    scan: ScanPattern | None = None,
    frame_period: float | None = None,
    isolate: bool = False,
    seconds_extract: float = 0.0,
    control: RunControl | None = None,
    nice: int = 0,
) -> SBTTResult:
    """Fit (or apply) a model to :class:`~napari_sbtt.core.traces.Observations` already on the fine grid.

    ``scan`` and ``frame_period`` are only recorded in the result's config; ``isolate``,
    ``progress`` and ``control`` as in :func:`run_on_stack`; ``seconds_extract`` is stored in
    ``metrics``; ``nice`` lowers the CPU priority of the child process of ``isolate`` (the napari
    widgets use 5). In this process it is :func:`napari_sbtt.pipeline.fit_and_infer`.
    """
    cfg = RunConfig.coerce(config)
    control = RunControl.of(progress, control)
    if isolate:
        from .isolated import run_isolated

        return run_isolated(observations, scan=scan, frame_period=frame_period, model=model,
                            config=cfg, seconds_extract=seconds_extract, control=control, nice=nice)
    return fit_and_infer(observations, model=model, config=cfg, control=control, scan=scan,
                         frame_period=frame_period, seconds_extract=seconds_extract)
