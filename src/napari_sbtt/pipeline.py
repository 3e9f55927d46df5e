"""The run itself: observations on the fine grid -> windows -> fit / adapt / apply -> inference
-> (calcium) the held-out choice of estimate -> :class:`~napari_sbtt.result.SBTTResult`.

:func:`fit_and_infer` is the one function that does it, whoever calls: the library's
``run_on_*`` (in this process), the child process of :mod:`napari_sbtt.isolated` (the napari
widgets' fits) and scripts. Its steps, each a function here:

1. windows of the recording (:func:`napari_sbtt.core.windows.choose_window`, the run's
   ``window_s`` or the automatic rule), at most ``max_windows`` of them for training, drawn
   from the recording as training needs them (:func:`training_windows`, a WindowStore: no
   (n_windows, window, N) copy of the recording);
2. fit a new model (:func:`napari_sbtt.model.fit_trials`) with the model config
   :func:`napari_sbtt.config.resolve` gives, or adapt / apply a given one;
3. :func:`infer_observations`: rates and expected signal on every bin, averaged over
   ``inference_shifts`` shifted window grids;
4. :func:`choose_estimate` (calcium likelihood): score the network, the deconvolution under the
   learned calcium model and OASIS on held-out samples (:mod:`napari_sbtt.heldout`) and keep the
   estimate ``estimate`` asks for ("auto": :func:`napari_sbtt.heldout.auto_estimate`, the events
   or a mixture of the network and the events, by the gap test and the number of ROIs);
5. metrics and the result.

torch is imported only when a model is fitted or applied.
"""

from __future__ import annotations

import dataclasses
import os
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import RunConfig, decay_estimate_wanted, indicator_name, resolve, window_seconds
from .core.numbers import finite_or_none
from .core.progress import RunControl, StageReport
from .core.scan import ScanPattern
from .result import RATE_UNITS, SBTTResult

if TYPE_CHECKING:  # pragma: no cover
    from .core.traces import Observations
    from .core.windows import WindowStore
    from .heldout import HeldoutComparison
    from .model import SBTTModel

__all__ = ["fit_and_infer", "infer_observations", "choose_estimate", "check_model_rois", "per_roi_fit",
           "run_window", "model_metadata", "training_windows", "recording_decay", "checked_decay"]


def fit_and_infer(
    observations: "Observations",
    *,
    model: "SBTTModel | str | os.PathLike | None" = None,
    config: RunConfig | dict[str, Any] | None = None,
    control: RunControl | None = None,
    scan: ScanPattern | None = None,
    frame_period: float | None = None,
    seconds_extract: float = 0.0,
) -> SBTTResult:
    """Fit (or apply, or adapt) a model to observations on the fine grid and infer every ROI's
    activity.

    Parameters
    ----------
    observations : :class:`~napari_sbtt.core.traces.Observations` (values (T_fine, N), NaN where
        an ROI was not observed).
    model : an SBTTModel or a checkpoint path (or :class:`~napari_sbtt.isolated.ModelFile`) to
        apply, or with ``config.adapt`` to fine-tune; None trains a new one.
    config : RunConfig or a dict of its fields.
    control : receives the reports and may stop the fit (:class:`~napari_sbtt.core.progress.RunControl`).
    scan, frame_period : the recording's timing, recorded in the result's config.
    seconds_extract : time spent getting the observations, stored in ``metrics``.
    """
    from .model import SBTTModel, fit_trials, load_model

    cfg = RunConfig.coerce(config)
    control = control if control is not None else RunControl()
    obs = observations
    values = obs.values
    decay_s = recording_decay(obs, cfg) if model is None else None
    window, overlap = run_window(obs, cfg, decay_s)
    if model is not None and not isinstance(model, SBTTModel):
        model = load_model(model, device=cfg.device)
    if model is not None:
        # a given model brings its likelihood, window and units: the recording is prepared the
        # way the model was trained
        cfg = dataclasses.replace(cfg, likelihood=model.likelihood)
        trained = model.metadata or {}
        if "window_bins" in trained:
            window = min(int(trained["window_bins"]), values.shape[0])
            overlap = min(int(trained.get("overlap_bins", 0)), window - 1)
        if trained.get("units") not in (None, obs.units):
            from .core.errors import OptionError

            raise OptionError(
                f"the model was trained on observations in {trained['units']!r} but these are in "
                f"{obs.units!r}; set {{dff_neuropil}} as they were for training",
                dff_neuropil="dff and neuropil in the run config")
        check_model_rois(model.n_neurons, values.shape[1], adapt=cfg.adapt)

    metadata = model_metadata(obs, window, overlap)

    t_fit = time.perf_counter()
    if model is None or cfg.adapt:
        wins = training_windows(values, window, overlap, cfg)
        if model is None:
            model = fit_trials(
                wins, None, likelihood=cfg.likelihood,
                config=resolve(cfg, bin_width=obs.grid.bin_width, n_windows=len(wins), decay_s=decay_s),
                progress=control,
                seed=cfg.seed, metadata=metadata,
            )
        else:
            model = model.adapt(
                wins, None, config=resolve(cfg, bin_width=obs.grid.bin_width, base=model.config),
                progress=control, seed=cfg.seed, metadata=metadata,
            )
    t_fit = time.perf_counter() - t_fit
    stopped = control.stop_requested  # the fit ended early because it was asked to

    control.report(StageReport("infer", 0, 1, "inferring activity"))
    t_inf = time.perf_counter()
    shifts = cfg.inference_shifts
    rates = infer_observations(model, values, window=window, overlap=overlap, output="rates",
                               shifts=shifts)
    signal = infer_observations(model, values, window=window, overlap=overlap, output="signal",
                                shifts=shifts)
    t_inf = time.perf_counter() - t_inf
    control.report(StageReport("infer", 1, 1, "done"))
    heldout, events, oasis_est = None, None, None
    if model.likelihood == "calcium":
        control.report(StageReport("validate", 0, 1, "deconvolving events; scoring on held-out samples"))
        heldout, rates, signal, events, oasis_est = choose_estimate(model, obs, values, window,
                                                                    overlap, cfg, rates, signal)
        control.report(StageReport("validate", 1, 1,
                                   heldout.summary() if heldout is not None else "done"))

    observed = np.isfinite(values)
    fit_r = per_roi_fit(signal, values)
    history = [h.to_dict() if hasattr(h, "to_dict") else dict(h) for h in getattr(model, "history", [])]
    metrics: dict[str, Any] = {
        "n_rois": int(values.shape[1]),
        "n_bins": int(values.shape[0]),
        "bin_width_s": float(obs.grid.bin_width),
        "observed_share": float(observed.mean()),
        "observed_share_per_roi": observed.mean(axis=0).tolist(),
        "fit_r_per_roi": fit_r.tolist(),
        "fit_r_median": float(np.nanmedian(fit_r)) if np.isfinite(fit_r).any() else None,
        "best_valid_loss": finite_or_none(getattr(model, "best_valid_loss", None)),
        "best_epoch": getattr(model, "best_epoch", None),
        "epochs_run": len(history),
        "seconds_extract": seconds_extract,
        "seconds_fit": t_fit,
        "seconds_infer": t_inf,
        "device": str(getattr(model, "device", "cpu")),
        "estimate": ((heldout.estimate if heldout is not None else cfg.estimate)
                     if model.likelihood == "calcium" else "network"),
        "heldout": heldout.to_dict() if heldout is not None else None,
    }
    if model.likelihood == "calcium":
        kinetics = model.observation_model()
        metrics["tau_decay_s"] = float(np.median(kinetics["tau_decay_bins"]) * obs.grid.bin_width)
        metrics["tau_rise_s"] = float(np.median(kinetics["tau_rise_bins"]) * obs.grid.bin_width)
        metrics["decay_estimate_s"] = decay_s  # the recording's own estimate (core.kinetics)
        from .core.units import spikes_estimate

        # what converts the activity to estimated spikes/s (the indicator preset's dF/F per spike)
        metrics["spikes_estimate"] = spikes_estimate(kinetics["kernel"], indicator_name(cfg), obs.grid.bin_width,
                                                     obs.units, indicator_named=cfg.indicator is not None)
    run_cfg = cfg.to_dict()
    run_cfg["scan"] = scan.to_dict() if scan is not None else None
    run_cfg["frame_period_s"] = frame_period
    run_cfg["model_config"] = model.config.to_dict()
    run_cfg["observations"] = dict(getattr(obs, "params", {}) or {})
    return SBTTResult(
        rates=rates,
        times=obs.times,
        observations=values.astype(np.float32),
        roi_ids=np.asarray(obs.roi_ids),
        grid=obs.grid,
        units=RATE_UNITS.get(model.likelihood, "a.u."),
        metrics=metrics,
        config=run_cfg,
        model=model,
        history=history,
        stopped=stopped,
        signal=signal,
        events=events,
        oasis_rates=oasis_est,
    )


def recording_decay(obs: "Observations", cfg: RunConfig) -> float | None:
    """The calcium decay time (s) a new fit with ``cfg`` starts from when it is estimated from the
    recording itself (:func:`napari_sbtt.config.decay_estimate_wanted`), else None: the AR(1)
    estimate (:func:`~napari_sbtt.core.kinetics.estimate_decay_time`), checked against held-out
    samples when asked (:func:`checked_decay`)."""
    if not decay_estimate_wanted(cfg):
        return None
    from .core.kinetics import estimate_decay_time

    estimate = estimate_decay_time(obs.values, obs.times, bin_width=obs.grid.bin_width)
    return checked_decay(obs.values, obs.times, estimate, cfg)


def checked_decay(values: np.ndarray, times: np.ndarray, estimate: float | None, cfg: RunConfig
                  ) -> float | None:
    """``estimate`` (s), the recording's AR(1) decay estimate, lengthened toward the decay whose
    kernel best predicts held-out samples (:func:`~napari_sbtt.core.kinetics.lengthened_decay`)
    when ``cfg.decay_heldout_check`` is on and no indicator is named (a named preset is refined by
    the plain estimate); else ``estimate`` itself. ``values`` (T, N) samples on the regular grid
    ``times`` (T,) s, NaN where not observed. The candidate kernels take the run's rise
    (``cfg.model["calcium_rise_seconds"]``, else the default indicator's)."""
    from .core.kinetics import LENGTHEN_FROM_S, heldout_decay_scores, lengthened_decay

    if (estimate is None or cfg.indicator is not None or not cfg.decay_heldout_check
            or estimate < LENGTHEN_FROM_S):  # the check would keep it: skip its deconvolutions
        return estimate
    from .core.indicators import get_indicator

    rise = float(cfg.model.get("calcium_rise_seconds") or get_indicator(indicator_name(cfg)).tau_rise)
    return lengthened_decay(estimate, heldout_decay_scores(values, times, estimate, rise_s=rise, seed=cfg.seed))


def run_window(obs: "Observations", cfg: RunConfig, decay_s: float | None = None) -> tuple[int, int]:
    """(window, overlap) in bins of a new fit on ``obs`` with ``cfg`` (``window_s`` or the
    automatic rule with the start decay ``decay_s`` in s, ``overlap_fraction``)."""
    from .core.windows import choose_window

    return choose_window(obs.grid.bin_width, window_s=window_seconds(cfg, obs.grid.bin_width, decay_s),
                         overlap_fraction=cfg.overlap_fraction, n_time=obs.values.shape[0])


def model_metadata(obs: "Observations", window: int, overlap: int) -> dict[str, Any]:
    """What a model trained on ``obs`` keeps about its data (units, bin width in s, ROIs, window
    and overlap in bins): a model applied later prepares a recording the same way."""
    return {
        "units": obs.units,
        "bin_width_s": obs.grid.bin_width,
        "n_rois": int(obs.values.shape[1]),
        "roi_ids": [int(i) for i in obs.roi_ids],
        "window_bins": window,
        "overlap_bins": overlap,
    }


def training_windows(values: np.ndarray, window: int, overlap: int, cfg: RunConfig) -> "WindowStore":
    """The training windows of a recording, drawn from it as they are needed: a
    :class:`~napari_sbtt.core.windows.WindowStore` over ``values`` (T_fine, N) itself (no copy)
    with the starts of :func:`~napari_sbtt.core.windows.window_starts` (windows of ``window``
    bins overlapping by ``overlap``), at most ``cfg.max_windows`` of them (a subset seeded by
    ``cfg.seed``, in time order). Its windows are those of ``make_windows(values, window,
    overlap)`` (and that subset of them)."""
    from .core.windows import WindowStore, window_starts

    starts = window_starts(values.shape[0], window, overlap)
    if cfg.max_windows is not None and starts.size > cfg.max_windows:
        pick = np.random.default_rng(cfg.seed).choice(starts.size, cfg.max_windows, replace=False)
        starts = starts[np.sort(pick)]
    return WindowStore(values, starts, window)


def check_model_rois(n_model: int, n_rois: int, *, adapt: bool, source: str = "the model") -> None:
    """Raise an OptionError unless a model of ``n_model`` ROIs can be applied to ``n_rois`` ROIs.

    With ``adapt`` (fine-tune on this recording) any number fits: the read-in and readout are
    re-learned.
    """
    from .core.errors import OptionError

    if not adapt and int(n_model) != int(n_rois):
        raise OptionError(
            f"{source} was trained on {int(n_model)} ROIs but this recording has {int(n_rois)}; fine-tune it "
            "on these ROIs with {adapt} (the learned dynamics are kept), or train a new model",
            adapt="adapt=True in the run config")


def choose_estimate(model: "SBTTModel", obs: "Observations", values: np.ndarray, window: int, overlap: int,
                    cfg: RunConfig, rates: np.ndarray, signal: np.ndarray
                    ) -> "tuple[HeldoutComparison | None, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]":
    """The held-out step (calcium likelihood): the events (each ROI's samples deconvolved under
    the learned calcium model), the sample and gap tests of the network, the events and OASIS
    (:mod:`napari_sbtt.heldout`), and the rates ``cfg.estimate`` asks for.

    Returns (comparison or None when neither ``compare_oasis`` nor "auto" asks for it, rates,
    signal, events, OASIS's rates in the result's units when SBTT did not predict the held-out
    samples better than OASIS (verdict "OASIS better" or "no clear difference"), else None).
    """
    from .heldout import OASIS_OFFERED, compare_heldout, deconvolve_with_model, select_estimate

    events, fitted = deconvolve_with_model(model, values)
    comparison = None
    if cfg.compare_oasis or cfg.estimate == "auto":
        net_signal = partial(infer_observations, model, window=window, overlap=overlap, output="signal")
        comparison = compare_heldout(model, values, obs.times, network_signal=net_signal,
                                     estimate=cfg.estimate, seed=cfg.seed, oasis=cfg.compare_oasis)
    chosen = comparison.estimate if comparison is not None else cfg.estimate
    rates = np.asarray(select_estimate(chosen, rates, events), dtype=np.float32)
    signal = np.asarray(select_estimate(chosen, signal, fitted), dtype=np.float32)
    oasis_est = None
    if comparison is not None and comparison.verdict in OASIS_OFFERED:
        from .core.baselines import oasis_rates

        # OASIS's events per second -> per bin, the units of ``rates``
        oasis_est = (oasis_rates(values, obs.times) * obs.grid.bin_width).astype(np.float32)
    return comparison, rates, signal, events.astype(np.float32), oasis_est


def infer_observations(
    model: "SBTTModel",
    observations: np.ndarray,
    *,
    window: int,
    overlap: int,
    output: str = "rates",
    shifts: int = 1,
    block_windows: int | None = None,
) -> np.ndarray:
    """Apply a model window by window to a continuous recording and merge the windows back.

    observations: (T_fine, N) NaN-missing in the model's units -> (T_fine, N) float32.
    ``shifts`` > 1 repeats the inference with the window grid moved by ``k * window / shifts``
    bins (k = 0..shifts-1; the recording is padded in front with unobserved bins) and averages
    the runs, so that no bin is always near a window edge (measured: +0.006 to +0.017 median
    r on the synthetic line scans with 4-8 shifts, at 4-8x the inference time).

    Blockwise: ``block_windows`` windows at a time (default: about 2 million values, rounded to
    a whole number of the model's inference batches) are cut from ``observations`` (which may be a memory map), run
    and merged (:func:`~napari_sbtt.core.windows.merge_range`), so besides the (T_fine, N) input
    and output only one block's windows are in memory; the numbers are those of cutting, running
    and merging all windows at once.
    """
    from .core.windows import merge_range, window_starts, window_weights, windows_at

    shifts = max(1, int(shifts))
    n_t, n = observations.shape
    # SBTTModel.predict's batches (batch_size * 4 windows): blocks of whole batches keep them
    batch = max(1, int(getattr(getattr(model, "config", None), "batch_size", 16)) * 4)
    if block_windows is None:  # about 2 M values per block (a few 16 MB float64 temporaries)
        block_windows = (1 << 21) // max(1, window * n)
    block = max(1, int(block_windows))
    if block % batch:
        block = batch * max(1, block // batch)
    acc = np.zeros((n_t, n), dtype=np.float64)
    done: set[int] = set()
    for k in range(shifts):
        off = int(round(k * window / shifts)) % max(window, 1)
        if off in done:
            continue
        done.add(off)
        n_pad = n_t + off
        starts = window_starts(n_pad, window, overlap)
        weights = window_weights(starts, window)
        carry: np.ndarray | None = None
        first = lo = 0
        for i0 in range(0, starts.size, block):
            i1 = min(starts.size, i0 + block)
            est = model.predict(windows_at(observations, starts[i0:i1], window, offset=off), output=output)
            if carry is not None and carry.shape[0]:
                est = np.concatenate([carry, est])
            else:
                first = i0
            hi = int(starts[i1]) if i1 < starts.size else n_pad
            merged = merge_range(est, first, starts, weights, lo, hi)
            a = max(lo, off)
            if hi > a:
                acc[a - off:hi - off] += merged[a - lo:]
            keep = first + int(np.searchsorted(starts[first:i1] + window, hi, side="right"))
            carry, first, lo = est[keep - first:], keep, hi
    acc /= len(done)  # in place: no second full-size float64 copy beside the caller's other arrays
    return acc.astype(np.float32)


def per_roi_fit(signal: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Pearson r between the model's expected observation and the samples, per ROI (N,)."""
    out = np.full(obs.shape[1], np.nan)
    for i in range(obs.shape[1]):
        m = np.isfinite(obs[:, i])
        if m.sum() > 2 and np.std(obs[m, i]) > 0 and np.std(signal[m, i]) > 0:
            out[i] = float(np.corrcoef(obs[m, i], signal[m, i])[0, 1])
    return out
