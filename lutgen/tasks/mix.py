"""Baking a strength into a LUT: the work behind ``lutgen mix``.

``mix(A, S)`` is ``(1 - S) * identity + S * A`` and ``mix(A, B, S)`` is ``(1 - S) * A + S * B``, for
a strength ``S`` from 0 to 1. Tables on the same lattice (same size, domain and shaper) are blended
node by node, which is exact; otherwise both sides are sampled on a common lattice over A's input
domain, and the error that costs is measured against the exact blend on a dense sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lutgen.color.sampling import Difference, check_interpolation, check_size, compare, dense_sample, evaluate
from lutgen.errors import OptionError
from lutgen.fileio import ensure_not_input
from lutgen.formats import format_module, read_lut, write_lut
from lutgen.tasks.convert import write_options
from lutgen.lut import LUT, Shaper, grid

LEAST_RESAMPLED_SIZE = 33
"""A blend that has to be resampled uses the largest input size, but at least this."""


@dataclass(frozen=True)
class Mixed:
    """The blended LUT, whether it was blended node by node (``exact``), and its :class:`Difference`
    from the exact blend over a dense sample of A's input domain."""

    lut: LUT
    exact: bool
    difference: Difference


def check_strength(strength: float) -> float:
    """``strength`` if it is a number from 0 to 1, else an :class:`OptionError`."""
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise OptionError(f"--strength must be from 0 to 1, not {strength}")
    return float(strength)


def _same_lattice(a: LUT, b: LUT) -> bool:
    """Whether ``a`` and ``b`` have tables and shapers at the same nodes, so they blend node by node."""
    if (a.table is None) != (b.table is None) or (a.shaper is None) != (b.shaper is None):
        return False
    if a.table is not None and (a.size != b.size or not np.array_equal(a.domain, b.domain)):
        return False
    if a.shaper is None:
        return True
    if a.table is None:  # 1D-only: blend the shapers
        return a.shaper.size == b.shaper.size and np.array_equal(a.shaper.domain, b.shaper.domain)
    return np.array_equal(a.shaper.table, b.shaper.table) and np.array_equal(a.shaper.domain, b.shaper.domain)


def _identity_like(lut: LUT) -> LUT:
    """The identity at the nodes of ``lut`` when it has no 3D table or no shaper (a 1D-only or plain LUT)."""
    if lut.table is None:
        return LUT(None, shaper=Shaper.identity(lut.shaper.size, lut.shaper.domain))
    return LUT.identity(lut.size, lut.domain)


def blend(a: LUT, b: LUT | None, strength: float, size: int | None = None,
          interpolation: str = "trilinear") -> tuple[LUT, bool]:
    """``(LUT, exact)``: the blend of A with B (or with the identity when ``b`` is ``None``).

    Node by node (``exact``) when both are on the same lattice and ``size`` does not ask for another;
    otherwise sampled at ``size`` (default: the largest input size, at least 33) over A's input domain.
    """
    s = check_strength(strength)
    if b is None and (a.shaper is None or a.table is None):
        a, b = _identity_like(a), a
    if b is not None and _same_lattice(a, b) and (size is None or size == a.size):
        if a.table is None:
            shaper = Shaper((1 - s) * a.shaper.table + s * b.shaper.table, a.shaper.domain)
            return LUT(None, shaper=shaper, title=b.title), True
        return LUT((1 - s) * a.table + s * b.table, a.domain, shaper=a.shaper, title=b.title), True
    sizes = [lut.size for lut in (a, b) if lut is not None and lut.size is not None]
    size = check_size(size) if size is not None else max(sizes + [LEAST_RESAMPLED_SIZE])
    nodes = grid(size, a.input_domain)
    table = _exact_blend(a, b, s, nodes, interpolation)
    return LUT(table, a.input_domain, title=(b or a).title), False


def _exact_blend(a: LUT, b: LUT | None, s: float, x: np.ndarray, interpolation: str) -> np.ndarray:
    """``(1 - s) * A(x) + s * B(x)`` at colours ``x`` ``(..., 3)``; without B, ``(1 - s) * x + s * A(x)``."""
    if b is None:
        return (1 - s) * x + s * evaluate(a, x, interpolation)
    return (1 - s) * evaluate(a, x, interpolation) + s * evaluate(b, x, interpolation)


def mix(first: Path, second: Path | None, strength: float, output: Path, size: int | None = None,
        interpolation: str = "trilinear") -> Mixed:
    """Read A (and B), write their blend at ``strength`` to ``output``, and measure it.

    Raises:
        LutgenError: an unreadable input, a bad option, an output that is an input, or a failed write.
    """
    check_interpolation(interpolation)
    check_strength(strength)
    if size is not None:
        check_size(size)
    a = read_lut(first)
    b = None if second is None else read_lut(second)
    ensure_not_input(output, [first] + ([second] if second is not None else []))
    lut, exact = blend(a, b, strength, size, interpolation)
    x = dense_sample(a.input_domain)
    difference = compare(evaluate(lut, x, interpolation), _exact_blend(a, b, strength, x, interpolation))
    write_lut(lut, output, **write_options(format_module(output, 'write'), lut))
    return Mixed(lut, exact, difference)
