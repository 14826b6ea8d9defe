"""Choosing the torch device: the one place that knows about CUDA, MPS and the CPU.

:func:`available_cores` counts the cores this process may use (the default of ``--jobs`` and the
threads of the 8-bit grading kernel). :func:`check_device_name` validates a ``--device`` value without
importing torch, so that a typo is reported before any heavy import; :func:`pick_device` turns a valid
name into a device.
"""

from __future__ import annotations

import os
import re

from lutgen.errors import OptionError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def available_cores() -> int:
    """How many cores this process may run on (its CPU affinity where the system tells it), at least 1."""
    count = getattr(os, "process_cpu_count", None)  # Python 3.13 and later
    if count is not None:
        return count() or 1
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_device_name(name: str, option: str = "--device") -> str:
    """Return ``name`` lower-cased if it is ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; else raise."""
    lowered = str(name).strip().lower()
    if lowered not in DEVICE_CHOICES and not re.fullmatch(r"cuda:\d+", lowered):
        raise OptionError(f"{option} must be one of {', '.join(DEVICE_CHOICES)} or cuda:N, not {name!r}")
    return lowered


def pick_device(name: str = "auto"):
    """Return a ``torch.device`` for ``name``: ``auto`` prefers CUDA, then MPS, then the CPU.

    Asking for a device that is not available is an :class:`OptionError`, never a silent fallback.
    """
    import torch

    name = check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OptionError("--device cuda was asked for, but torch sees no CUDA GPU on this machine")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise OptionError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise OptionError("--device mps was asked for, but MPS is not available on this machine")
    return torch.device(name)


def has_accelerator() -> bool:
    """Whether torch sees a CUDA or MPS device (imports torch)."""
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available()
