"""Units users can read: a calcium result's activity as estimated spikes per second.

The calcium likelihood's activity (``SBTTResult.rates``, ``deconvolve_traces``' rates) is a jump
of the calcium trace per bin: fluorescence = baseline + kernel * rates, the kernel being the
learned transient per unit jump (``SBTTModel.observation_model()["kernel"]``, dimensionless, in
bins). One spike of an indicator adds the indicator's transient (``Indicator.kernel``, dF/F per
spike at each lag). Equating the areas of the two transients gives the jump one spike makes::

    jump per spike = sum(indicator kernel on bins of width s) / sum(model kernel)   [dF/F jump / spike]

so that ``spikes/s = rates / (jump per spike) / s``. This is an **estimate**: it assumes the
indicator's preset amplitude (peak dF/F per spike, :mod:`napari_sbtt.core.indicators`), linear
summation of spikes and observations in dF/F; a neuron whose transients are larger or smaller
than the preset's is off by that ratio. It is the same number for every spike rate, so the
shape of the activity does not depend on it.

Core layer: numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .indicators import Indicator, get_indicator

__all__ = ["dff_jump_per_spike", "spikes_per_second", "spikes_estimate", "SPIKE_RATE_UNITS",
           "SPIKES_NOTE"]

#: units of the estimated spike rate
SPIKE_RATE_UNITS = "spikes/s (estimated)"

#: what the estimate assumes, in one sentence (stored with it)
SPIKES_NOTE = ("estimated spikes/s: the activity divided by the dF/F jump one spike of the indicator "
               "preset makes (its peak dF/F per spike); off by the ratio of this neuron's true "
               "single-spike amplitude to the preset's")


def dff_jump_per_spike(indicator: Indicator | str, kernel: np.ndarray, bin_width: float) -> np.ndarray:
    """The activity jump (dF/F units) that one spike of ``indicator`` makes under a model kernel.

    Parameters
    ----------
    indicator : an :class:`~napari_sbtt.core.indicators.Indicator` or a preset name.
    kernel : (L,) or (N, L) the model's calcium transient per unit jump at lags 0..L-1 bins
        (dimensionless; one row per ROI).
    bin_width : seconds per bin of the kernel and of the activity.

    Returns
    -------
    float64 () or (N,): dF/F jump per spike (area of the indicator's bin-averaged transient over
    the area of the model's); NaN where the model kernel's area is not positive.
    """
    ind = get_indicator(indicator) if isinstance(indicator, str) else indicator
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim not in (1, 2) or k.shape[-1] < 1:
        raise ValueError(f"kernel must be (L,) or (N, L) with L >= 1, got shape {k.shape}")
    if not (np.isfinite(bin_width) and bin_width > 0):
        raise ValueError(f"bin_width must be a positive number of seconds, got {bin_width}")
    area_indicator = float(ind.kernel(float(bin_width)).sum())
    area_model = k.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(area_model > 0, area_indicator / area_model, np.nan)
    return out


def spikes_per_second(rates: np.ndarray, jump_per_spike: np.ndarray | float, bin_width: float) -> np.ndarray:
    """Activity (dF/F jump per bin, (T, N) or (T,)) -> estimated spikes/s, NaN kept.

    The dtype is the activity's (float32 stays float32; integers give float32).

    ``jump_per_spike``: scalar or (N,) from :func:`dff_jump_per_spike`; a NaN there gives a NaN
    column.
    """
    dtype = np.result_type(np.asarray(rates).dtype, np.float32)
    r = np.asarray(rates, dtype=np.float64)
    per = np.asarray(jump_per_spike, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (r / per / float(bin_width)).astype(dtype)


def spikes_estimate(kernel: np.ndarray, indicator: str, bin_width: float, units: str, *,
                    indicator_named: bool = True) -> dict[str, Any]:
    """The ``metrics["spikes_estimate"]`` entry of a calcium result: what the conversion used.

    ``kernel``: (N, L) model kernel per unit jump; ``indicator``: the preset name whose transient
    a spike is taken to make; ``units``: the observations' units (the estimate needs dF/F);
    ``indicator_named``: False when the run named no indicator and ``indicator`` is the default
    preset (said in the note: name the indicator for a better estimate). Returns a JSON-ready
    dict: ``available`` (bool), ``indicator``, ``indicator_named``, ``amplitude`` (the preset's
    peak dF/F per spike), ``dff_per_spike`` (per ROI, NaN -> None), ``units``, ``note`` (or
    ``reason`` when not available).
    """
    ind = get_indicator(indicator)
    base: dict[str, Any] = {"indicator": ind.name, "indicator_named": bool(indicator_named),
                            "amplitude": float(ind.amplitude), "units": SPIKE_RATE_UNITS}
    if units != "dF/F":
        return {**base, "available": False, "dff_per_spike": None,
                "reason": f"the observations are {units!r}, not dF/F: a spike's size in them is unknown "
                          "(run with dff on)"}
    per = np.atleast_1d(dff_jump_per_spike(ind, kernel, bin_width))
    note = SPIKES_NOTE if indicator_named else (
        f"{SPIKES_NOTE}; no indicator was named, so {ind.name}'s transient was assumed: name the indicator "
        "for a better estimate")
    return {**base, "available": True,
            "dff_per_spike": [float(v) if np.isfinite(v) else None for v in per], "note": note}
