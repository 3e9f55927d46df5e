"""Where a model runs: the torch device of a setting ("auto", "cpu", "cuda:1"...) and the CPU
threads of a block of work."""

from __future__ import annotations

import torch

from ..core.errors import OptionError

__all__ = ["resolve_device", "thread_limit"]


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
