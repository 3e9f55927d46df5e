"""The trained model object that callers hold: inference, compatibility checks, saving."""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import torch

from ..core.errors import OptionError
from .config import LIKELIHOODS, EpochReport, SBTTConfig
from .likelihoods import Normaliser, make_likelihood
from .network import SequentialAutoencoder

__all__ = ["SBTTModel", "resolve_device", "thread_limit"]


def resolve_device(device: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; other names are passed to torch.device.

    Raises :class:`~napari_sbtt.core.errors.OptionError` (a ValueError) when a CUDA or MPS device
    is asked for on a machine without one.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    missing = ((device.startswith("cuda") and not torch.cuda.is_available())
               or (device == "mps" and not torch.backends.mps.is_available()))
    if missing:
        raise OptionError(
            f"device {device!r} was asked for but this machine has no such device (torch sees none); "
            "use {device_auto} (a GPU when present, else the CPU) or {device_cpu}",
            device_auto="device='auto'", device_cpu="device='cpu'")
    return torch.device(device)


class thread_limit:
    """Context manager: set torch's intra-op CPU threads for a block, restore afterwards."""

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self.old = torch.get_num_threads()

    def __enter__(self) -> "thread_limit":
        self.old = torch.get_num_threads()
        if self.n > 0 and self.n != self.old:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc: object) -> None:
        if torch.get_num_threads() != self.old:
            torch.set_num_threads(self.old)


class SBTTModel:
    """A fitted SBTT sequential autoencoder.

    Attributes
    ----------
    n_neurons : int
        N, the number of neurons (ROIs) the read-in and readout expect.
    likelihood : str
        "poisson", "gaussian", "zig" or "calcium".
    config : SBTTConfig
    history : list[EpochReport]
        one report per trained epoch.
    best_epoch : int
        epoch whose weights the model holds (the best validation loss); -1 if untrained.
    device : torch.device
    normaliser : Normaliser
        per-neuron map from data units to model units.
    metadata : dict
        free-form JSON-able description of the data (units, bin width, grid, ...) saved with the model.
    stop_reason : str
        why training ended ("max_epochs", "early_stopping", "callback", "time_budget", "diverged").
    """

    def __init__(self, network: SequentialAutoencoder, likelihood: str, config: SBTTConfig,
                 normaliser: Normaliser, *, history: list[EpochReport] | None = None,
                 best_epoch: int = -1, metadata: dict[str, Any] | None = None,
                 stop_reason: str = "", device: torch.device | str = "cpu") -> None:
        self.network = network
        self.likelihood = likelihood
        self.config = config
        self.normaliser = normaliser
        self.history = list(history or [])
        self.best_epoch = int(best_epoch)
        self.metadata = dict(metadata or {})
        self.stop_reason = stop_reason
        self.device = torch.device(device)
        self.network.to(self.device)
        self.network.eval()

    # ------------------------------------------------------------------
    @classmethod
    def build(cls, n_neurons: int, likelihood: str, config: SBTTConfig, normaliser: Normaliser,
              device: torch.device | str = "cpu") -> "SBTTModel":
        """An untrained model with freshly initialised weights."""
        if likelihood not in LIKELIHOODS:
            make_likelihood(likelihood, n_neurons, config)  # raises the clear error
        lik = make_likelihood(likelihood, n_neurons, config)
        net = SequentialAutoencoder(n_neurons, config, lik)
        return cls(net, likelihood, config, normaliser, device=device)

    @property
    def n_neurons(self) -> int:
        return self.network.n_neurons

    @property
    def best_valid_loss(self) -> float:
        for r in self.history:
            if r.epoch == self.best_epoch:
                return r.best_valid_loss
        return float("nan")

    def __repr__(self) -> str:
        return (f"SBTTModel(n_neurons={self.n_neurons}, likelihood={self.likelihood!r}, "
                f"epochs={len(self.history)}, best_epoch={self.best_epoch}, device={str(self.device)!r})")

    # ------------------------------------------------------------------
    def check_compatible(self, n_neurons: int, likelihood: str | None = None) -> None:
        """Raise ValueError if data with ``n_neurons`` neurons (and ``likelihood``) cannot use this model."""
        if likelihood is not None and likelihood != self.likelihood:
            raise ValueError(
                f"this model was trained with likelihood {self.likelihood!r}, not {likelihood!r}; "
                "train a new model for this kind of data")
        if int(n_neurons) != self.n_neurons:
            raise ValueError(
                f"this model expects {self.n_neurons} neurons but the data has {n_neurons}; "
                "use model.adapt(train) (or fit_trials(..., init=model)) to re-learn the read-in "
                "and readout for the new ROIs while keeping the learned dynamics")

    def is_compatible(self, n_neurons: int, likelihood: str | None = None) -> bool:
        """True if :meth:`check_compatible` would not raise."""
        try:
            self.check_compatible(n_neurons, likelihood)
        except ValueError:
            return False
        return True

    # ------------------------------------------------------------------
    def _prepare(self, data: np.ndarray) -> tuple[np.ndarray, bool]:
        arr = np.asarray(data, dtype=np.float64)
        squeeze = False
        if arr.ndim == 2:
            arr, squeeze = arr[None], True
        if arr.ndim != 3:
            raise ValueError(
                f"data must be (n_trials, T, N) or (T, N) with NaN where not observed; got shape {arr.shape}")
        if np.isinf(arr).any():
            raise ValueError("data contains inf; mark unobserved entries with NaN instead")
        self.check_compatible(arr.shape[-1])
        if arr.shape[1] < 1:
            raise ValueError("data has no time bins (T = 0)")
        return arr, squeeze

    @torch.no_grad()
    def _run(self, data: np.ndarray, what: str, batch_size: int | None) -> np.ndarray:
        arr, squeeze = self._prepare(data)
        net = self.network
        net.eval()
        mask = np.isfinite(arr)
        vals = np.where(mask, self.normaliser.to_model(np.nan_to_num(arr)), 0.0)
        bs = batch_size or max(1, self.config.batch_size * 4)
        out = np.empty(arr.shape, dtype=np.float64)
        with thread_limit(self.config.resolved_num_threads()):
            for s in range(0, arr.shape[0], bs):
                v = torch.as_tensor(vals[s:s + bs], dtype=torch.float32, device=self.device)
                m = torch.as_tensor(mask[s:s + bs], device=self.device)
                o = net(v, m)
                lik = net.likelihood
                res = lik.rates(o.raw) if what == "rates" else lik.signal(o.raw)
                out[s:s + bs] = res.double().cpu().numpy()
        if what == "rates":
            out = net.likelihood.rate_to_data(out, self.normaliser)
        else:
            out = self.normaliser.to_data(out) if self.likelihood in ("gaussian", "calcium") else out
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(
                "the model produced non-finite outputs for this data; check the input for extreme "
                "values or retrain with a lower learning_rate")
        return out[0] if squeeze else out

    def predict(self, data: np.ndarray, output: Literal["rates", "signal"] = "rates",
                *, batch_size: int | None = None) -> np.ndarray:
        """Infer activity for every bin and neuron, observed or not.

        data: (n_trials, T, N) or (T, N) in the units the model was trained on, NaN where not
        observed. Returns float64 of the same shape.

        output="rates": Poisson -> expected count per bin; Gaussian -> denoised signal (data
        units); ZIG -> expected event size per bin; calcium -> deconvolved rate as the
        fluorescence jump per bin (data units) before the calcium decay.
        output="signal": the expected observation (for calcium: reconstructed fluorescence in data
        units; for the others the same as "rates").
        """
        if output not in ("rates", "signal"):
            raise ValueError(f"output must be 'rates' or 'signal', got {output!r}")
        return self._run(data, output, batch_size)

    @torch.no_grad()
    def factors(self, data: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Low-dimensional latent factors, (n_trials, T, factor_size) (or (T, factor_size) for 2-D data)."""
        arr, squeeze = self._prepare(data)
        mask = np.isfinite(arr)
        vals = np.where(mask, self.normaliser.to_model(np.nan_to_num(arr)), 0.0)
        bs = batch_size or max(1, self.config.batch_size * 4)
        outs = []
        self.network.eval()
        with thread_limit(self.config.resolved_num_threads()):
            for s in range(0, arr.shape[0], bs):
                v = torch.as_tensor(vals[s:s + bs], dtype=torch.float32, device=self.device)
                m = torch.as_tensor(mask[s:s + bs], device=self.device)
                outs.append(self.network(v, m).factors.double().cpu().numpy())
        f = np.concatenate(outs, axis=0)
        return f[0] if squeeze else f

    def observation_model(self, *, max_lags: int = 4096) -> dict[str, np.ndarray]:
        """The learned calcium observation model of every ROI, in data units (calcium only).

        Returns a dict of numpy arrays: ``kernel`` (N, L) the fluorescence per unit jump at lags
        0..L-1 (L covers six decay time constants, at most ``max_lags``; lag 0 is 1 for the AR
        kernel), ``baseline`` (N,), ``noise_sd`` (N,) and ``tau_decay_bins`` / ``tau_rise_bins``
        (N,). A rate from :meth:`predict` is a jump in these units, so
        ``baseline + kernel * rates`` is the model's fluorescence (without the calcium present
        before a window), and :func:`napari_sbtt.core.deconvolution.sparse_deconvolve` can
        deconvolve the samples under exactly this model.
        """
        if self.likelihood != "calcium":
            raise ValueError(f"observation_model() needs the calcium likelihood, not {self.likelihood!r}")
        lik = self.network.likelihood
        with torch.no_grad():
            tau_d = lik.tau_decay().double().cpu().numpy()
            tau_r = (lik.tau_rise().double().cpu().numpy() if lik.ar_order == 2
                     else np.zeros_like(tau_d))
            length = int(min(max_lags, max(8, np.ceil(6.0 * tau_d.max() + lik.delay_bins + 2))))
            kernel = lik.kernel(length).double().cpu().numpy()  # per unit jump; the jump holds the gain
            base = lik.baseline.double().cpu().numpy()
            sd = lik.std().double().cpu().numpy()
        sc, off = self.normaliser.scale, self.normaliser.offset
        return {"kernel": kernel, "baseline": base * sc + off, "noise_sd": sd * sc,
                "tau_decay_bins": tau_d, "tau_rise_bins": tau_r}

    # ------------------------------------------------------------------
    def adapt(self, train: np.ndarray, valid: np.ndarray | None = None, **kwargs: Any) -> "SBTTModel":
        """Fine-tune on new data, keeping the learned dynamics (pretrain-then-adapt).

        When ``train`` has another number of neurons, the read-in, readout and per-neuron
        likelihood parameters are re-learned. Keyword arguments go to :func:`fit_trials`
        (``config`` defaults to this model's config). Returns a new model; this one is unchanged.
        """
        from .training import fit_trials

        kwargs.setdefault("likelihood", self.likelihood)
        return fit_trials(train, valid, init=self, **kwargs)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write a single-file checkpoint (safetensors weights + JSON metadata); see :mod:`.checkpoint`."""
        from .checkpoint import save_model

        save_model(self, path, overwrite=overwrite)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Copy of the network weights as numpy arrays (for comparisons and tests)."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.network.state_dict().items()}
