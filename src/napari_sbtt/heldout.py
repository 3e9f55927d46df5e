"""Which estimate to trust, decided on samples the estimates never saw.

After a calcium model is fitted there are two ways to turn a recording into activity:

- ``"network"``: the sequential autoencoder's rates (:meth:`SBTTModel.predict`), which share
  what the population does and fill a sparse scan's gaps from the other ROIs;
- ``"deconvolution"``: the sparse non-negative deconvolution of each ROI's own samples under the
  calcium model the fit learned (kernel, gain, baseline, noise:
  :func:`napari_sbtt.core.deconvolution.sparse_deconvolve`), which places events as precisely as
  an ROI's own samples allow.

Neither wins everywhere (benchmarks/RESULTS.md, "Network or deconvolution"): on a population
scanned in strips the network is far better, on single neurons sampled every frame the
deconvolution is. :func:`compare_heldout` holds out a random share of the observed samples,
computes both estimates from the rest, and scores how well each predicts the held-out samples; it
scores OASIS, the baseline users have today, the same way when ``oasis-deconv`` is installed.

The score is the held-out R^2 of the *change* of each held-out sample since the previous kept
sample of the same ROI: 1 - sum (predicted change - change)^2 / sum change^2. Changes, not
levels: slow offsets (neuropil, baseline drift) that no activity model explains would otherwise
decide the comparison. The deconvolution is chosen only when it predicts the changes better by
more than two standard errors (paired over the held-out samples); otherwise the network, SBTT's
own estimate, stays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .core.deconvolution import sparse_deconvolve

if TYPE_CHECKING:  # pragma: no cover
    from .model import SBTTModel

__all__ = ["HeldoutComparison", "compare_heldout", "deconvolve_with_model", "heldout_mask",
           "ESTIMATES"]

#: the SBTT estimates :func:`compare_heldout` chooses between
ESTIMATES = ("network", "deconvolution")


@dataclass
class HeldoutComparison:
    """Held-out scores of each estimate (module docstring) and the SBTT estimate chosen.

    Attributes
    ----------
    share : share of the observed samples held out.
    n_samples : number of held-out samples scored.
    r2 : estimate -> held-out R^2 of the changes ("network", "deconvolution", and "oasis" when
        OASIS ran).
    chosen : the SBTT estimate used for the result.
    margin_se : (deconvolution R^2 - network R^2) in standard errors of that difference.
    sbtt_beats_oasis : whether the chosen estimate scored at least as well as OASIS (None when
        OASIS did not run).
    """

    share: float
    n_samples: int
    r2: dict[str, float]
    chosen: str
    margin_se: float
    sbtt_beats_oasis: bool | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for a CLI or a status bar."""
        text = f"held-out R² of sample changes: SBTT {self.r2.get(self.chosen, float('nan')):.3f} ({self.chosen})"
        if "oasis" in self.r2:
            verdict = ("SBTT predicts them better" if self.sbtt_beats_oasis
                       else "OASIS predicts them better; its estimate is in the result too")
            text += f", OASIS {self.r2['oasis']:.3f}: {verdict}"
        return text


def heldout_mask(observed: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A random ``share`` of the True entries of ``observed`` (T, N); an ROI keeps >= 4 samples."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5A17]))
    held = observed & (rng.random(observed.shape) < share)
    for i in np.flatnonzero((observed & ~held).sum(axis=0) < 4):
        held[:, i] = False
    return held


def _previous_kept(kept: np.ndarray) -> np.ndarray:
    """(T, N) index of each bin's last earlier kept sample of the same ROI (-1 when none)."""
    T = kept.shape[0]
    last = np.maximum.accumulate(np.where(kept, np.arange(T)[:, None], -1), axis=0)
    prev = np.full(kept.shape, -1)
    prev[1:] = last[:-1]
    return prev


def _change_errors(pred: np.ndarray, values: np.ndarray, held: np.ndarray, prev: np.ndarray,
                   at: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Squared errors of the predicted changes at the entries ``at`` (NaN where pred is missing)."""
    t, n = at
    p0 = prev[t, n]
    change = values[t, n] - values[p0, n]
    guess = pred[t, n] - pred[p0, n]
    return (guess - change) ** 2


def deconvolve_with_model(model: "SBTTModel", values: np.ndarray, *, sparsity: float = 0.5
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The ``"deconvolution"`` estimate: (jumps (T, N), fitted fluorescence (T, N)), data units."""
    om = model.observation_model()
    res = sparse_deconvolve(values, om["kernel"], baseline=om["baseline"], noise_sd=om["noise_sd"],
                            sparsity=sparsity)
    return res.jumps, res.fitted


def compare_heldout(
    model: "SBTTModel",
    values: np.ndarray,
    times: np.ndarray,
    *,
    network_signal: Callable[[np.ndarray], np.ndarray],
    share: float = 0.1,
    seed: int = 0,
    sparsity: float = 0.5,
    oasis: bool = True,
) -> HeldoutComparison:
    """Score the SBTT estimates (and OASIS) on held-out samples and choose the SBTT estimate.

    Parameters
    ----------
    model : a fitted calcium model.
    values : (T, N) samples in the model's data units (dF/F), NaN where not observed.
    times : (T,) bin centres in seconds.
    network_signal : values with the held-out samples NaN -> (T, N) the network's expected
        fluorescence (the caller's window-by-window inference).
    share : share of the observed samples held out, in (0, 1).
    seed : draws the held-out samples.
    sparsity : weight of the deconvolution's sparsity prior.
    oasis : also score OASIS when ``oasis-deconv`` is installed.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"the held-out share must be in (0, 1), got {share}")
    values = np.asarray(values, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    observed = np.isfinite(values)
    held = heldout_mask(observed, share, seed)
    kept = np.where(held, np.nan, values)
    prev = _previous_kept(observed & ~held)
    at = np.nonzero(held & (prev >= 0))
    if at[0].size == 0:
        return HeldoutComparison(float(share), 0, {}, "network", 0.0, None)
    denom = float(((values[at] - values[prev[at], at[1]]) ** 2).sum())
    errors = {
        "network": _change_errors(np.asarray(network_signal(kept), dtype=np.float64), values, held,
                                  prev, at),
        "deconvolution": _change_errors(deconvolve_with_model(model, kept, sparsity=sparsity)[1],
                                        values, held, prev, at),
    }
    if oasis:
        from .core.baselines import oasis_available, oasis_forecast

        if oasis_available():
            errors["oasis"] = _change_errors(oasis_forecast(values, times, held), values, held,
                                             prev, at)
    r2 = {k: (1.0 - float(np.nansum(e)) / denom if denom > 0 else float("nan"))
          for k, e in errors.items()}
    diff = errors["network"] - errors["deconvolution"]  # > 0 where the deconvolution is better
    diff = diff[np.isfinite(diff)]
    se = float(np.std(diff) * np.sqrt(diff.size)) / denom if denom > 0 and diff.size > 1 else np.inf
    gain = r2["deconvolution"] - r2["network"]
    margin = gain / se if se > 0 and np.isfinite(se) else 0.0
    chosen = "deconvolution" if margin > 2.0 else "network"
    beats = None
    if "oasis" in r2:
        beats = bool(not np.isfinite(r2["oasis"]) or r2[chosen] >= r2["oasis"])
    return HeldoutComparison(share=float(share), n_samples=int(at[0].size), r2=r2, chosen=chosen,
                             margin_se=float(margin), sbtt_beats_oasis=beats)
