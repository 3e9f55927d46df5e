"""Which observed entries the encoder sees and which the loss scores: the two masks of SBTT
training on sparse data.

- :class:`SampleValidation`: a fixed random share of the observed entries of the training trials
  is held out for good: never shown to the encoder, never in the training loss; their
  likelihood is the ``heldout_loss`` of the epoch reports (and, without validation trials, what
  early stopping watches).
- :class:`CoordinatedDropout`: every batch hides a fresh random share of the encoder's inputs
  and scores the training loss ONLY on the hidden ones, so the network cannot learn to copy its
  input to its output.

All masks are bool, (n_trials, T, N) (or a batch of them); True = the entry is in the set.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["SampleValidation", "CoordinatedDropout", "random_mask", "BLOCK_ENTRIES"]

#: entries per block when a (n_trials, T, N) array is prepared block by block (memory: a few
#: float64 temporaries of this many entries, not of the whole training set)
BLOCK_ENTRIES = 1 << 22


def random_mask(observed: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Each observed entry with probability ``share`` (a fresh draw from ``rng``); none for 0."""
    if share <= 0:
        return np.zeros_like(observed)
    if observed.ndim == 0 or observed.shape[0] == 0:
        return observed & (rng.random(observed.shape) < share)
    # block by block along the first axis: the same draws in the same order as one
    # rng.random(observed.shape), without an 8-byte float per entry of the whole array
    out = np.empty(observed.shape, dtype=bool)
    step = max(1, BLOCK_ENTRIES // max(1, observed[0].size))
    for s in range(0, observed.shape[0], step):
        out[s:s + step] = observed[s:s + step] & (rng.random(observed[s:s + step].shape) < share)
    return out


class SampleValidation:
    """Held-out entries: ``share`` of the observed entries, drawn once per fit from ``rng``.

    Validation trials get their own held-out entries (``share``, or 0.2 of them when sample
    validation is off, since their loss needs entries the encoder did not see; all observed
    entries when the draw leaves none).
    """

    def __init__(self, share: float, rng: np.random.Generator) -> None:
        self.share = float(share)
        self.rng = rng

    def training(self, observed: torch.Tensor) -> torch.Tensor:
        """The held-out entries of the training trials (on ``observed``'s device)."""
        held = random_mask(observed.cpu().numpy(), self.share, self.rng)
        return torch.as_tensor(held, device=observed.device)

    def validation(self, observed: torch.Tensor) -> torch.Tensor:
        """The scored entries of the validation trials (hidden from the encoder)."""
        share = self.share if self.share > 0 else 0.2
        held = torch.as_tensor(random_mask(observed.cpu().numpy(), share, self.rng), device=observed.device)
        return observed.clone() if held.sum() == 0 else held


class CoordinatedDropout:
    """Hide ``share`` of the encoder's inputs in each batch and score the loss on those only
    (0 = off: the encoder sees every input and every input is scored).

    The random draws come from ``generator``, a torch generator on the training device, so no
    mask travels between the host and the device.
    """

    def __init__(self, share: float, generator: torch.Generator) -> None:
        self.share = float(share)
        self.generator = generator

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(what the encoder sees, what the loss scores) for a batch's input mask."""
        if self.share <= 0:
            return inputs, inputs
        u = torch.rand(inputs.shape, generator=self.generator, device=inputs.device)
        drop = inputs & (u < self.share)
        return inputs & ~drop, drop
