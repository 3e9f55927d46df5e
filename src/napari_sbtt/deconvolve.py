"""Deconvolve a set of dF/F traces with one SBTT calcium model learned across all of them.

:func:`deconvolve_traces` takes traces of neurons that need not have been recorded together
(one per cell of a ground-truth collection, or suite2p's traces of one plane), each on its own
frame grid, with NaN where a frame was not acquired. Each trace is standardised by its own
baseline and noise; all traces are cut into windows that train ONE calcium model (N = 1: a
learned prior of activity and one calcium kernel shared by the neurons); every trace is then
deconvolved on its own grid under the learned calcium model, and the held-out samples of all
traces score it against the network's rates and OASIS (:mod:`napari_sbtt.heldout`).

API layer: numpy in and out; torch is imported when the model is fitted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .config import TRACES_MODEL_DEFAULTS, RunConfig, decay_estimate_wanted, resolve, window_seconds
from .core.progress import ProgressCallback, RunControl, StageReport
from .core.units import dff_jump_per_spike, spikes_per_second
from .core.windows import choose_window, make_windows
from .pipeline import checked_decay, infer_observations

if TYPE_CHECKING:  # pragma: no cover
    from .model import SBTTModel

__all__ = ["TraceDeconvolution", "deconvolve_traces", "traces_decay_estimate", "standardise_trace", "stack_traces",
           "DEFAULT_MAX_WINDOWS"]

#: training windows drawn from all traces when the config does not say (a seeded random subset)
DEFAULT_MAX_WINDOWS = 2048


@dataclass
class TraceDeconvolution:
    """What :func:`deconvolve_traces` returns; list entries follow the input traces.

    Attributes
    ----------
    rates : per trace (T_i,) float64 inferred activity per frame, in dF/F jump per frame
        (deconvolved: the fluorescence a frame's activity adds before it decays).
    spikes_per_s : per trace (T_i,) estimated spikes per second (the rates divided by the
        indicator's dF/F per spike, an estimate from its preset), or None without an indicator.
    signal : per trace (T_i,) the model's expected dF/F per frame.
    times : per trace (T_i,) frame times in seconds.
    model : the fitted N = 1 calcium model (its inputs are the standardised traces).
    metrics : estimate chosen, held-out comparison, windows, timings, learned kinetics, each
        trace's decay in s (``trace_decay_s``, see ``trace_decays``).
    oasis_rates : per trace (T_i,) OASIS's estimate on the trace's own frames, in the units of
        ``rates`` (OASIS's jumps per frame, :func:`napari_sbtt.core.baselines.oasis_rates`), when
        SBTT did not predict the held-out samples better than OASIS (``metrics["heldout"]
        ["verdict"]`` "OASIS better" or "no clear difference"); else None.
    """

    rates: list[np.ndarray]
    spikes_per_s: list[np.ndarray] | None
    signal: list[np.ndarray]
    times: list[np.ndarray]
    model: "SBTTModel"
    metrics: dict[str, Any] = field(default_factory=dict)
    units: str = "dF/F jump/frame (deconvolved)"
    oasis_rates: list[np.ndarray] | None = None


def _as_list(traces: Any) -> list[np.ndarray]:
    if isinstance(traces, np.ndarray):
        if traces.ndim == 1:
            return [traces.astype(np.float64)]
        if traces.ndim != 2:
            raise ValueError(f"traces must be (T, N) or a list of 1-D arrays, got shape {traces.shape}")
        return [traces[:, i].astype(np.float64) for i in range(traces.shape[1])]
    out = [np.asarray(t, dtype=np.float64) for t in traces]
    for i, t in enumerate(out):
        if t.ndim != 1:
            raise ValueError(f"trace {i} must be 1-D (one value per frame), got shape {t.shape}")
    if not out:
        raise ValueError("no traces given")
    return out


def _grids(traces: list[np.ndarray], frame_period: float | None,
           times: Any) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """(values on a regular grid per trace, frame times per trace, bin width in seconds)."""
    if (frame_period is None) == (times is None):
        raise ValueError("give exactly one of frame_period= (seconds per frame) and times= "
                         "(each trace's frame times in seconds)")
    if frame_period is not None:
        fp = float(frame_period)
        if not (np.isfinite(fp) and fp > 0):
            raise ValueError(f"frame_period must be a positive number of seconds, got {frame_period}")
        return traces, [np.arange(t.size) * fp for t in traces], fp
    if isinstance(times, np.ndarray) and times.ndim == 1:
        tlist = [times.astype(np.float64)] * len(traces)  # one time base for every trace
    else:
        tlist = [np.asarray(t, dtype=np.float64) for t in times]
    if len(tlist) != len(traces):
        raise ValueError(f"times has {len(tlist)} entries but there are {len(traces)} traces")
    steps = []
    for i, (y, t) in enumerate(zip(traces, tlist, strict=True)):
        if t.shape != y.shape:
            raise ValueError(f"trace {i} has {y.size} frames but {t.size} times")
        ok = np.isfinite(t)
        d = np.diff(t[ok])
        if d.size == 0 or not (d > 0).all():
            raise ValueError(f"times of trace {i} must increase (NaN marks a frame without a time)")
        steps.append(np.median(d))
    bin_s = float(np.median(steps))
    values = []
    for y, t in zip(traces, tlist, strict=True):
        ok = np.isfinite(t)
        idx = np.round((t[ok] - t[ok][0]) / bin_s).astype(np.int64)
        grid = np.full(int(idx.max()) + 1, np.nan)
        grid[idx] = y[ok]
        values.append(grid)
    return values, tlist, bin_s


def standardise_trace(y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(standardised trace (T,), offset, scale) of the trace ``y`` (T,), NaN where no frame was
    kept, as :func:`deconvolve_traces` fits it: minus its median, over the robust noise sd of the
    differences between its kept samples (at least a tenth of its sd), in ``y``'s units."""
    v = y[np.isfinite(y)]
    if v.size < 4:
        raise ValueError("a trace has fewer than 4 samples; it cannot be deconvolved")
    med = float(np.median(v))
    sd = 1.4826 * float(np.median(np.abs(np.diff(v)))) / np.sqrt(2.0)
    sd = max(sd, 0.1 * float(np.std(v)), 1e-9)
    return (y - med) / sd, med, sd


def _traces_config(config: RunConfig | dict[str, Any] | None, indicator: str | None) -> RunConfig:
    """The RunConfig traces are fitted with: ``config`` over the traces' model defaults
    (:data:`~napari_sbtt.config.TRACES_MODEL_DEFAULTS`), ``indicator`` (checked) when given."""
    from .core.indicators import get_indicator

    cfg = RunConfig.coerce(config)
    cfg = cfg.replace(model={**TRACES_MODEL_DEFAULTS, **cfg.model})
    if indicator is not None:
        get_indicator(indicator)  # a clear error for an unknown name
        cfg = RunConfig.from_dict({**cfg.to_dict(), "indicator": indicator})
    return cfg


def stack_traces(z: list[np.ndarray], bin_s: float) -> tuple[np.ndarray, np.ndarray]:
    """The traces ``z`` (each (T_i,) on a grid of ``bin_s`` s) side by side from t = 0, (T_max, N),
    NaN past a trace's end, and their (T_max,) grid times in s: the decay check, the held-out tests
    and the inference all read them so."""
    longest = max(v.size for v in z)
    stacked = np.full((longest, len(z)), np.nan)
    for i, v in enumerate(z):
        stacked[: v.size, i] = v
    return stacked, np.arange(longest) * bin_s


def _decay_estimate(z: list[np.ndarray], stacked: np.ndarray, grid_times: np.ndarray, bin_s: float,
                    cfg: RunConfig) -> float | None:
    """The traces' decay estimate in s (each trace on its own regular grid; then the held-out
    check, :func:`~napari_sbtt.pipeline.checked_decay`), or None when ``cfg`` wants none."""
    if not decay_estimate_wanted(cfg):
        return None
    from .core.kinetics import decay_time_of_series

    decay_s = decay_time_of_series(z, [np.arange(v.size) * bin_s for v in z], bin_width=bin_s)
    return checked_decay(stacked, grid_times, decay_s, cfg)


def traces_decay_estimate(traces: Sequence[np.ndarray] | np.ndarray, *, frame_period: float | None = None,
                          times: Any = None, indicator: str | None = None,
                          config: RunConfig | dict[str, Any] | None = None) -> float | None:
    """The calcium decay estimate (s) :func:`deconvolve_traces` computes from these traces before it
    fits (its ``metrics["decay_estimate_s"]``), without fitting: the traces' AR(1) estimate, and
    with no indicator named, lengthened by the held-out check where that applies
    (``RunConfig.decay_heldout_check``). None when the config asks for no estimate
    (``decay_from_data=False``) or the traces hold too few samples. Arguments as for
    :func:`deconvolve_traces`."""
    cfg = _traces_config(config, indicator)
    values, _, bin_s = _grids(_as_list(traces), frame_period, times)
    z = [standardise_trace(v)[0] for v in values]
    stacked, grid_times = stack_traces(z, bin_s)
    return _decay_estimate(z, stacked, grid_times, bin_s, cfg)


class _Stacked:
    """An N = 1 model seen as one model per trace (columns), for :func:`compare_heldout`; each
    trace's kernel with its decay scaled by ``decay_scale`` (n,) (None: the model's kernel)."""

    def __init__(self, model: "SBTTModel", n: int, decay_scale: np.ndarray | None = None) -> None:
        self.model, self.n, self.decay_scale = model, n, decay_scale

    def observation_model(self) -> dict[str, np.ndarray]:
        if self.decay_scale is not None:
            return self.model.observation_model(decay_scale=self.decay_scale)
        om = self.model.observation_model()
        return {k: np.repeat(v, self.n, axis=0) for k, v in om.items()}


def deconvolve_traces(
    traces: Sequence[np.ndarray] | np.ndarray,
    *,
    frame_period: float | None = None,
    times: Any = None,
    indicator: str | None = None,
    config: RunConfig | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    control: RunControl | None = None,
    estimate: str = "deconvolution",
    trace_decays: bool = False,
) -> TraceDeconvolution:
    """Infer activity from dF/F traces with one calcium model shared by all of them.

    Parameters
    ----------
    traces : a (T, N) array (one column per neuron) or a list of 1-D arrays (lengths may differ),
        dF/F per frame, NaN where a frame was not acquired (a sparse scan, every k-th frame).
    frame_period : seconds per frame (all traces on regular grids), or
    times : frame times in seconds: one array for all traces or one per trace (regular up to
        jitter; a NaN time drops that frame).
    indicator : calcium indicator preset (sets the kernel's rise and decay, the decay checked
        against the traces' own estimate; and gives the dF/F per spike for the spikes/s
        estimate); None takes the decay from the traces' estimate and GCaMP6f's rise, and gives
        no spikes/s.
    config : RunConfig or dict: seed, epochs, max_seconds, model overrides, window_s (None picks
        max(1 s, 16 frames), and two decays when the kinetics learn: config.window_seconds), max_windows (default 2048 random
        windows), estimate, compare_oasis... Its
        likelihood must be "calcium" and its indicator is replaced by ``indicator`` when given.
        One network is trained (``config.TRACES_MODEL_DEFAULTS``) unless ``model`` sets
        ``ensemble_size``.
    progress : as for :func:`napari_sbtt.run_on_stack` (StageReport / EpochReport; returning
        True stops training and keeps the best model so far).
    control : a :class:`~napari_sbtt.core.progress.RunControl` to stop the fit from another
        thread (it also receives the reports).
    estimate : "deconvolution" (default: each trace deconvolved under the calcium model learned
        across all traces, the jumps where the solver placed them; separately recorded neurons
        share no population activity for the network to draw on), "network" (the shared
        model's rates), "combined" (3/4 of the network's rates and 1/4 of the events),
        "events_combined" (1/4 and 3/4) or "auto" (see :func:`napari_sbtt.heldout.compare_heldout`).
    trace_decays : deconvolve each trace under the shared kernel with its decay scaled by the
        trace's own (:func:`napari_sbtt.core.kinetics.series_decay_scales`: its AR(1) decay over
        the traces' median, 0.5-2x), as OASIS fits a decay per trace; the held-out tests use the
        same kernels. Off by default: on the real ground truth it gained +0.004 to +0.006 r on
        jGCaMP8s (DS32), nothing on GCaMP6f (DS09) and lost 0.018 on GCaMP6s (DS13), each from
        one fit scored both ways (benchmarks/RESULTS.md, "Issue 14, eighteenth session").

    Returns
    -------
    TraceDeconvolution
    """
    from .core.indicators import get_indicator
    from .heldout import OASIS_OFFERED, compare_heldout, deconvolve_with_model, select_estimate
    from .model import fit_trials

    cfg = _traces_config(config, indicator)
    if cfg.likelihood != "calcium":
        raise ValueError("deconvolve_traces fits the calcium likelihood; leave likelihood at 'calcium'")
    raw = _as_list(traces)
    values, frame_times, bin_s = _grids(raw, frame_period, times)
    std = [standardise_trace(v) for v in values]
    z = [s[0] for s in std]
    ind = get_indicator(cfg.indicator) if cfg.indicator is not None else None
    stacked, grid_times = stack_traces(z, bin_s)
    longest = stacked.shape[0]
    decay_s = _decay_estimate(z, stacked, grid_times, bin_s, cfg)
    window, overlap = choose_window(bin_s, window_s=window_seconds(cfg, bin_s, decay_s),
                                    overlap_fraction=cfg.overlap_fraction, n_time=longest)
    rng = np.random.default_rng(cfg.seed)
    wins = np.concatenate([make_windows(v[:, None], window, overlap).values for v in z
                           if v.size >= window] or
                          [make_windows(v[:, None], min(window, v.size), 0).values for v in z])
    cap = DEFAULT_MAX_WINDOWS if cfg.max_windows is None else cfg.max_windows
    if wins.shape[0] > cap:
        wins = wins[np.sort(rng.choice(wins.shape[0], cap, replace=False))]

    control = RunControl.of(progress, control)
    t0 = time.perf_counter()
    model = fit_trials(wins, None, likelihood="calcium",
                       config=resolve(cfg, bin_width=bin_s, n_windows=wins.shape[0], decay_s=decay_s),
                       progress=control, seed=cfg.seed,
                       metadata={"units": "standardised dF/F", "bin_width_s": bin_s,
                                 "window_bins": window, "overlap_bins": overlap, "n_traces": len(z)})
    t_fit = time.perf_counter() - t0
    stopped = control.stop_requested
    control.report(StageReport("infer", 0, 1, "inferring activity"))
    t0 = time.perf_counter()

    def infer(vals: np.ndarray, output: str = "signal", shifts: int = 1) -> np.ndarray:
        out = np.full(vals.shape, np.nan)
        for i, v in enumerate(z):
            out[: v.size, i] = infer_observations(model, vals[: v.size, i:i + 1], window=window,
                                                  overlap=overlap, output=output, shifts=shifts)[:, 0]
        return out

    scales = None
    if trace_decays and len(z) > 1:
        from .core.kinetics import series_decay_scales

        scales = series_decay_scales(z, [np.arange(v.size) * bin_s for v in z], bin_width=bin_s)
    per_trace = _Stacked(model, len(z), scales)
    comparison = compare_heldout(per_trace, stacked, grid_times, network_signal=infer,
                                 estimate=estimate, seed=cfg.seed, oasis=cfg.compare_oasis,
                                 max_seconds=None,  # separate traces stacked from t = 0: test all
                                 population=1)  # the network sees one trace at a time
    chosen = comparison.estimate
    # only what the chosen estimate uses is computed
    net_rates = net_signal = events_z = fitted_z = None
    if chosen != "deconvolution":
        net_rates = infer(stacked, "rates", cfg.inference_shifts)
        net_signal = infer(stacked, "signal", cfg.inference_shifts)
    if chosen != "network":
        # the jumps as the solver placed them: spread over the gaps between kept frames they
        # lost 0.015 r on the jGCaMP8s ground truth at every 4th frame (122 Hz, a gap of 33 ms,
        # about two of the kernel's rise times, so the samples do place them) while the
        # benchmark family's sparse scans gained (benchmarks/RESULTS.md, "The events' timing")
        events_z, fitted_z = deconvolve_with_model(per_trace, stacked, spread=False)
    rates_z = select_estimate(chosen, net_rates, events_z)
    signal_z = select_estimate(chosen, net_signal, fitted_z)
    t_inf = time.perf_counter() - t0
    control.report(StageReport("infer", 1, 1, comparison.summary()))

    learned = model.observation_model()
    per_spike = trace_per_spike = None
    if ind is not None:
        # the dF/F jump one spike makes: the indicator's transient area over the learned kernel's
        per_spike = float(dff_jump_per_spike(ind, learned["kernel"][0], bin_s))
        # the events of each trace are jumps under its own kernel (trace_decays)
        trace_per_spike = (dff_jump_per_spike(ind, per_trace.observation_model()["kernel"], bin_s)
                           if chosen == "deconvolution" and scales is not None else np.full(len(z), per_spike))
    rates, signal, spikes = [], [], [] if per_spike is not None else None
    for i, (y, (_, off, sc)) in enumerate(zip(raw, std, strict=True)):
        n = values[i].size
        r = rates_z[:n, i] * sc
        s = signal_z[:n, i] * sc + off
        if times is not None:  # back from the regular grid to the trace's own frames
            t = frame_times[i]
            ok = np.isfinite(t)
            idx = np.round((t[ok] - t[ok][0]) / bin_s).astype(np.int64)
            r_f, s_f = np.full(y.size, np.nan), np.full(y.size, np.nan)
            r_f[ok], s_f[ok] = r[idx], s[idx]
            r, s = r_f, s_f
        rates.append(r)
        signal.append(s)
        if spikes is not None:
            spikes.append(spikes_per_second(r, float(trace_per_spike[i]), bin_s))
    metrics = {
        "estimate": chosen, "heldout": comparison.to_dict(), "bin_width_s": bin_s,
        "window_bins": window, "overlap_bins": overlap, "n_train_windows": int(wins.shape[0]),
        "epochs_run": len(model.history), "best_epoch": model.best_epoch, "stopped": stopped,
        "seconds_fit": t_fit, "seconds_infer": t_inf,
        "tau_decay_s": float(learned["tau_decay_bins"][0] * bin_s),
        "tau_rise_s": float(learned["tau_rise_bins"][0] * bin_s),
        "spikes_per_jump": None if per_spike is None else 1.0 / per_spike,
        "decay_estimate_s": decay_s,
        # each trace's decay in the deconvolution (the kernel's; scaled per trace with trace_decays)
        "trace_decay_s": [float(learned["tau_decay_bins"][0] * bin_s * f)
                          for f in (np.ones(len(z)) if scales is None else scales)],
    }
    oasis = None
    if comparison.verdict in OASIS_OFFERED:
        from .core.baselines import oasis_rates

        oasis = []
        for y, t in zip(raw, frame_times, strict=True):
            est = np.full(y.size, np.nan)
            ok = np.isfinite(t)
            # OASIS's jumps per second x the frame period: per frame, the units of ``rates``
            est[ok] = oasis_rates(y[ok][:, None], t[ok])[:, 0] * bin_s
            oasis.append(est)
    return TraceDeconvolution(rates=rates, spikes_per_s=spikes, signal=signal, times=frame_times,
                              model=model, metrics=metrics, oasis_rates=oasis)
