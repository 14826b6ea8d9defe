"""Option checks shared by the commands' tasks (no torch)."""

from __future__ import annotations

import math
import random
from pathlib import Path

from lutgen.errors import OptionError
from lutgen.fileio import check_folder_writable

MAX_SEED = 2**31 - 1
MAX_LOSS_WEIGHT = 1000.0
"""Largest weight of a loss or evidence term, in every command: 1000 already lets one term drown the others."""


def check_number(name: str, value, low=None, high=None, low_inclusive: bool = True) -> None:
    """Raise an :class:`OptionError` naming ``--name`` unless ``value`` is finite and within the bounds."""
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionError(f"--{name} must be a finite number, not {value}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    if too_low or (high is not None and value > high):
        if low is not None and high is not None:
            if not low_inclusive:
                raise OptionError(f"--{name} must be greater than {low:g} and at most {high:g}, not {value}")
            raise OptionError(f"--{name} must be between {low} and {high}, not {value}")
        if high is not None:
            raise OptionError(f"--{name} must be at most {high}, not {value}")
        relation = "at least" if low_inclusive else "greater than"
        raise OptionError(f"--{name} must be {relation} {low}, not {value}")


def check_output_file(path: str | Path, option: str, suffix: str) -> Path:
    """Refuse an output file (``--option PATH``) that does not end in ``suffix``, is a folder, or lies
    where no file can be written; one sentence each, before any work."""
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise OptionError(f"{option} {path} must end in {suffix}")
    if path.is_dir():
        raise OptionError(f"{option} {path} is a folder; give a {suffix} file name")
    check_folder_writable(path.parent, f"{option} {path}")
    return path


def check_quality(quality: int) -> None:
    check_number("quality", quality, 1, 100)


def choose_seed(seed: int | None) -> int:
    """``seed`` after checking it, or a fresh random one when it is ``None``."""
    if seed is None:
        return random.SystemRandom().randrange(MAX_SEED)
    check_number("seed", seed, 0, MAX_SEED)
    return seed


class NoProgressBar:
    """Stands in for a tqdm bar where none is shown (other processes of a distributed run, tests)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass
