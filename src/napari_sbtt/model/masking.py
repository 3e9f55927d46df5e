"""Which observed entries the encoder sees and which the loss scores: the two masks of SBTT
training on sparse data.

- :class:`SampleValidation`: a fixed random share of the observed entries of the training trials
  is held out for good: never shown to the encoder, never in the training loss; their
  likelihood is the ``heldout_loss`` of the epoch reports (and, without validation trials, what
  early stopping watches).
- :class:`CoordinatedDropout`: every batch hides a fresh random share of the encoder's inputs
  and scores the training loss ONLY on the hidden ones, so the network cannot learn to copy its
  input to its output.

All masks are bool, (n_trials, T, N) (or a batch of them); True = the entry is in the set. The
held-out entries of a whole fit are kept as bits (:class:`PackedMask`, one bit per entry of each
window) and unpacked a batch of windows at a time.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch

__all__ = ["SampleValidation", "CoordinatedDropout", "PackedMask", "random_mask", "BLOCK_ENTRIES"]

#: entries per block when a (n_trials, T, N) array is prepared block by block (memory: a few
#: float64 temporaries of this many entries, not of the whole training set)
BLOCK_ENTRIES = 1 << 22

#: how many bits of each byte value are set
_ONES = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint8)


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


class PackedMask:
    """A bool mask of shape (n_windows, T, N), one per window, kept as bits: 1 bit per entry
    (``bits``: uint8 (n_windows, ceil(T * N / 8)), zero padding). ``rows(idx)`` unpacks the
    windows asked for; the whole mask is never unpacked at once."""

    def __init__(self, bits: np.ndarray, shape: tuple[int, int, int]) -> None:
        self.shape = tuple(int(v) for v in shape)
        n, t, m = self.shape
        if bits.dtype != np.uint8 or bits.shape != (n, (t * m + 7) // 8):
            raise ValueError(f"bits must be uint8 ({n}, {(t * m + 7) // 8}) for a mask of shape {self.shape}, "
                             f"got {bits.dtype} {bits.shape}")
        self.bits = bits

    @classmethod
    def from_blocks(cls, blocks: Iterable[np.ndarray], shape: tuple[int, int, int]) -> "PackedMask":
        """The mask whose consecutive blocks of windows are ``blocks`` (bool (k, T, N) each, in
        window order, together ``shape``)."""
        n, t, m = (int(v) for v in shape)
        bits = np.empty((n, (t * m + 7) // 8), dtype=np.uint8)
        i = 0
        for block in blocks:
            k = block.shape[0]
            bits[i:i + k] = np.packbits(block.reshape(k, t * m), axis=1)
            i += k
        if i != n:
            raise ValueError(f"the blocks hold {i} windows, not {n}")
        return cls(bits, (n, t, m))

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Windows ``idx`` of the mask, bool (len(idx), T, N)."""
        n, t, m = self.shape
        idx = np.asarray(idx, dtype=np.int64)
        flat = np.unpackbits(self.bits[idx], axis=1, count=t * m)
        return flat.view(bool).reshape(idx.size, t, m)

    def count(self) -> int:
        """How many entries are True (counted a block of windows at a time)."""
        step = max(1, BLOCK_ENTRIES // max(1, self.bits.shape[1]))
        return int(sum(int(_ONES[self.bits[s:s + step]].sum(dtype=np.int64))
                       for s in range(0, self.shape[0], step)))


def _random_blocks(observed: Iterable[np.ndarray], share: float,
                   rng: np.random.Generator) -> Iterable[np.ndarray]:
    for block in observed:  # the same draws in the same order as one rng.random of all windows
        yield block & (rng.random(block.shape) < share) if share > 0 else np.zeros_like(block)


class SampleValidation:
    """Held-out entries: ``share`` of the observed entries, drawn once per fit from ``rng``.

    Validation trials get their own held-out entries (``share``, or 0.2 of them when sample
    validation is off, since their loss needs entries the encoder did not see; all observed
    entries when the draw leaves none).

    :meth:`training_mask` / :meth:`validation_mask` take the observed entries a block of windows
    at a time and keep the draw as bits.
    """

    def __init__(self, share: float, rng: np.random.Generator) -> None:
        self.share = float(share)
        self.rng = rng

    def training_mask(self, observed: Iterable[np.ndarray], shape: tuple[int, int, int]) -> PackedMask:
        """The held-out entries of the training windows, from their observed entries (bool (k, T,
        N) blocks of consecutive windows, in order, together ``shape``)."""
        return PackedMask.from_blocks(_random_blocks(observed, self.share, self.rng), shape)

    def validation_mask(self, observed: Callable[[], Iterable[np.ndarray]],
                        shape: tuple[int, int, int]) -> PackedMask:
        """The scored entries of the validation windows (hidden from the encoder); ``observed()``
        gives their observed entries block by block, as for :meth:`training_mask` (called a second
        time when the draw leaves none: then every observed entry is scored)."""
        share = self.share if self.share > 0 else 0.2
        held = PackedMask.from_blocks(_random_blocks(observed(), share, self.rng), shape)
        return PackedMask.from_blocks(observed(), shape) if held.count() == 0 else held



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
