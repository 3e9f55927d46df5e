"""Held-out samples: how well each estimate predicts samples it never saw.

After a calcium model is fitted there are two SBTT estimates of each ROI's activity:

- ``"network"``: the sequential autoencoder's rates (:meth:`SBTTModel.predict`): a smooth
  firing-rate estimate that shares what the population does and fills a sparse scan's gaps from
  the other ROIs (the result's ``rates`` by default);
- ``"deconvolution"``: the events of each ROI's own samples deconvolved under the calcium model
  the fit learned (kernel, gain, baseline, noise:
  :func:`napari_sbtt.core.deconvolution.sparse_deconvolve`): spike-like, as precise in time as
  an ROI's own samples allow (the result's ``events``).

:func:`compare_heldout` holds out a random share of the observed samples, computes both estimates
from the rest and scores how well each predicts the held-out samples through the fitted calcium
model; it scores OASIS, the baseline users have today, the same way on the same kept samples
(``core.baselines.oasis_forecast``: its AR(1) model's value at a held-out time). The score is the
held-out R^2 (1 - sum (prediction - sample)^2 / sum (sample - ROI mean)^2), and every difference
is judged against its standard error (paired over the held-out samples): a verdict needs more
than two.

What held-out samples can and cannot tell (benchmarks/RESULTS.md, "Held-out samples"): they
measure how well fluorescence is *predicted*, which rewards following each ROI's own samples
(neuropil, slow drift, single spikes); on real single neurons the deconvolution predicts them
best and recovers spikes best, but on simulated populations the network's rates are far closer
to the true rates while predicting held-out fluorescence no better. So the verdict is reported,
not used to replace the result's rates unless the caller asks (``estimate="auto"``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .core.deconvolution import sparse_deconvolve

if TYPE_CHECKING:  # pragma: no cover
    from .model import SBTTModel

__all__ = ["HeldoutComparison", "compare_heldout", "deconvolve_with_model", "heldout_mask",
           "ESTIMATES", "VERDICTS"]

#: the SBTT estimates
ESTIMATES = ("network", "deconvolution")
#: what :attr:`HeldoutComparison.verdict` may say
VERDICTS = ("SBTT better", "OASIS better", "no clear difference", "not compared")


@dataclass
class HeldoutComparison:
    """Held-out scores (module docstring) and the verdict against OASIS.

    Attributes
    ----------
    share : share of the observed samples held out.
    n_samples : number of held-out samples scored.
    r2 : estimate -> held-out R^2 ("network", "deconvolution", and "oasis" when OASIS ran).
    se : estimate -> standard error of its R^2 difference to OASIS (and "deconvolution -
        network" for the difference between the SBTT estimates).
    estimate : the SBTT estimate the result reports as its rates.
    verdict : one of :data:`VERDICTS`, for ``estimate`` against OASIS.
    """

    share: float
    n_samples: int
    r2: dict[str, float]
    se: dict[str, float]
    estimate: str
    verdict: str

    @property
    def sbtt_beats_oasis(self) -> bool | None:
        """True / False when a verdict was reached, None for no clear difference or no OASIS."""
        return {"SBTT better": True, "OASIS better": False}.get(self.verdict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sbtt_beats_oasis": self.sbtt_beats_oasis}

    def summary(self) -> str:
        """One line for a CLI or a status bar."""
        text = (f"held-out samples: R² SBTT {self.r2.get(self.estimate, float('nan')):.3f} "
                f"({self.estimate})")
        if "oasis" in self.r2:
            text += f", OASIS {self.r2['oasis']:.3f}: {self.verdict}"
            if self.verdict == "OASIS better":
                text += " (OASIS's estimate is in the result too)"
        return text


def heldout_mask(observed: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A random ``share`` of the True entries of ``observed`` (T, N); an ROI keeps >= 4 samples."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5A17]))
    held = observed & (rng.random(observed.shape) < share)
    for i in np.flatnonzero((observed & ~held).sum(axis=0) < 4):
        held[:, i] = False
    return held


def deconvolve_with_model(model: Any, values: np.ndarray, *, sparsity: float = 0.5
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The ``"deconvolution"`` estimate: (events (T, N), fitted fluorescence (T, N)), data units.

    ``model``: anything with the :meth:`~napari_sbtt.model.SBTTModel.observation_model` of a
    calcium model for N ROIs.
    """
    om = model.observation_model()
    res = sparse_deconvolve(values, om["kernel"], baseline=om["baseline"], noise_sd=om["noise_sd"],
                            sparsity=sparsity)
    return res.jumps, res.fitted


def _paired_se(err_a: np.ndarray, err_b: np.ndarray, denom: float) -> float:
    """Standard error of (sum err_a - sum err_b) / denom over the paired held-out samples."""
    d = (err_a - err_b)[np.isfinite(err_a) & np.isfinite(err_b)]
    if d.size < 2 or denom <= 0:
        return float("inf")
    return float(np.std(d) * np.sqrt(d.size) / denom)


def compare_heldout(
    model: Any,
    values: np.ndarray,
    times: np.ndarray,
    *,
    network_signal: Callable[[np.ndarray], np.ndarray],
    estimate: str = "network",
    share: float = 0.1,
    seed: int = 0,
    sparsity: float = 0.5,
    oasis: bool = True,
) -> HeldoutComparison:
    """Score the SBTT estimates and OASIS on held-out samples.

    Parameters
    ----------
    model : a fitted calcium model (its ``observation_model()`` is used).
    values : (T, N) samples in the model's data units (dF/F), NaN where not observed.
    times : (T,) bin centres in seconds.
    network_signal : values with the held-out samples NaN -> (T, N) the network's expected
        fluorescence (the caller's window-by-window inference).
    estimate : the SBTT estimate the verdict is about: "network", "deconvolution", or "auto"
        (the one with the higher held-out R^2 when it leads by more than two standard errors,
        else the network).
    share : share of the observed samples held out, in (0, 1).
    seed : draws the held-out samples.
    sparsity : weight of the deconvolution's sparsity prior.
    oasis : also score OASIS when ``oasis-deconv`` is installed.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"the held-out share must be in (0, 1), got {share}")
    if estimate not in (*ESTIMATES, "auto"):
        raise ValueError(f"estimate must be 'network', 'deconvolution' or 'auto', got {estimate!r}")
    values = np.asarray(values, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    held = heldout_mask(np.isfinite(values), share, seed)
    kept = np.where(held, np.nan, values)
    preds = {
        "network": np.asarray(network_signal(kept), dtype=np.float64),
        "deconvolution": deconvolve_with_model(model, kept, sparsity=sparsity)[1],
    }
    if oasis:
        from .core.baselines import oasis_available, oasis_forecast

        if oasis_available():
            preds["oasis"] = oasis_forecast(values, times, held)
    scored = held.copy()
    for p in preds.values():
        scored &= np.isfinite(p)
    mean = np.nanmean(kept, axis=0)
    denom = float((np.where(scored, values - mean[None, :], 0.0) ** 2).sum())
    errors = {k: (p - values)[scored] ** 2 for k, p in preds.items()}
    r2 = {k: (1.0 - float(e.sum()) / denom if denom > 0 else float("nan")) for k, e in errors.items()}
    se = {"deconvolution - network": _paired_se(errors["network"], errors["deconvolution"], denom)}
    chosen = estimate
    if estimate == "auto":
        lead = r2["deconvolution"] - r2["network"]
        chosen = "deconvolution" if lead > 2.0 * se["deconvolution - network"] else "network"
    verdict = "not compared"
    if "oasis" in r2:
        for k in ESTIMATES:
            se[k] = _paired_se(errors["oasis"], errors[k], denom)
        diff = r2[chosen] - r2["oasis"]
        verdict = ("SBTT better" if diff > 2.0 * se[chosen] else
                   "OASIS better" if diff < -2.0 * se[chosen] else "no clear difference")
    return HeldoutComparison(share=float(share), n_samples=int(scored.sum()), r2=r2, se=se,
                             estimate=chosen, verdict=verdict)
