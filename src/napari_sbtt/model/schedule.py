"""The learning-rate schedule of a fit: warm-up, then a plateau or a cosine schedule, and the
halving after a diverged epoch.

- warm-up (``lr_warmup_epochs`` > 0): epoch e < warm-up runs at ``lr * (e + 1) / (warm-up + 1)``;
- "plateau": the learning rate is halved (down to ``min_learning_rate``) after ``lr_patience``
  epochs without a better validation loss, at most once per ``lr_patience`` epochs;
- "cosine": after the warm-up, every batch anneals from the peak to ``min_learning_rate`` along a
  half cosine whose end is ``max_epochs`` or, when set, ``max_seconds`` (whichever comes first);
- a diverged epoch (non-finite loss) halves the peak (:meth:`LearningRateSchedule.after_divergence`).

torch-free: the schedule answers learning rates; the trainer puts them into the optimiser.
"""

from __future__ import annotations

import math

from .config import SBTTConfig

__all__ = ["LearningRateSchedule"]


class LearningRateSchedule:
    """Learning rates of one fit with ``config`` (see the module notes).

    Attributes
    ----------
    peak : the current peak learning rate (``learning_rate``, lowered by plateaus and divergence).
    """

    def __init__(self, config: SBTTConfig) -> None:
        self.config = config
        self.peak = float(config.learning_rate)
        self.cosine = config.lr_schedule == "cosine"
        self.warmup = config.lr_warmup_epochs
        self.min_lr = min(float(config.min_learning_rate), self.peak)
        self.last_decay = 0

    def at(self, epoch: float, elapsed: float) -> float:
        """The learning rate at (fractional) ``epoch`` after ``elapsed`` seconds of training."""
        peak = self.peak
        if epoch < self.warmup:
            peak = self.peak * (math.floor(epoch) + 1) / (self.warmup + 1)
        if not self.cosine:
            return peak
        frac = epoch / self.config.max_epochs
        if self.config.max_seconds is not None:
            frac = max(frac, elapsed / self.config.max_seconds)
        frac = min(max(frac, 0.0), 1.0)
        lo = min(self.min_lr, peak)
        return lo + (peak - lo) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def epoch_start(self, epoch: int) -> float | None:
        """The learning rate to set when ``epoch`` starts (plateau schedule during and right after
        the warm-up), or None to leave it."""
        if self.cosine:
            return None
        if epoch < self.warmup:
            return self.at(epoch, 0.0)
        if epoch == self.warmup:
            return self.peak
        return None

    def batch(self, epoch: int, batch: int, n_batches: int, elapsed: float) -> float | None:
        """The learning rate of a batch (cosine schedule), or None to leave it."""
        return self.at(epoch + batch / n_batches, elapsed) if self.cosine else None

    def epoch_end(self, epoch: int, best_epoch: int, improved: bool) -> float | None:
        """After an epoch: the halved learning rate when the plateau schedule decays, else None."""
        c = self.config
        if (improved or self.cosine or c.lr_patience <= 0 or epoch - best_epoch < c.lr_patience
                or epoch - self.last_decay < c.lr_patience or self.peak <= c.min_learning_rate):
            return None
        self.peak = max(self.peak * 0.5, c.min_learning_rate)
        self.last_decay = epoch
        return self.peak

    def after_divergence(self) -> float:
        """Halve the peak after a diverged epoch; returns it (the optimiser restarts with it)."""
        self.peak = max(self.peak * 0.5, 1e-8)
        return self.peak
