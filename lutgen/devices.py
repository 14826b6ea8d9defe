"""Choosing the torch device: the one place that knows about CUDA, MPS and the CPU."""

from __future__ import annotations

from lutgen.errors import OptionError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto"):
    """Return a ``torch.device`` for ``name``: ``auto`` prefers CUDA, then MPS, then the CPU.

    Asking for a device that is not available is an :class:`OptionError`, never a silent fallback.
    """
    import torch

    name = name.lower()
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise OptionError(f"--device must be one of {', '.join(DEVICE_CHOICES)}, not {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError("--device cuda was asked for, but torch sees no CUDA GPU on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise OptionError("--device mps was asked for, but MPS is not available on this machine")
    return torch.device(name)
