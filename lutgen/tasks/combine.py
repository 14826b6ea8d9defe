"""Combining LUTs into one: the work behind ``lutgen combine``.

The combined LUT applies the first LUT, then the second, and so on. It keeps the first LUT's shaper
exactly (when it has one) and samples the rest of the chain at the nodes of one output lattice over
the first LUT's domain, so it is exact at every node; between nodes it interpolates, and the error
that costs is measured against applying the LUTs one after another on a dense sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lutgen.color.sampling import (Difference, check_interpolation, check_size, compare, dense_sample, evaluate,
                                   table_only)
from lutgen.errors import OptionError
from lutgen.fileio import ensure_not_input
from lutgen.formats import format_module, read_lut, write_lut
from lutgen.tasks.convert import write_options
from lutgen.lut import LUT, SMALLEST_SPAN, grid

LEAST_DEFAULT_SIZE = 33
"""The default output size is the largest 3D size among the inputs, but at least this."""


@dataclass(frozen=True)
class Combined:
    """The combined LUT, its lattice size, and its :class:`Difference` from the chain applied step by step."""

    lut: LUT
    size: int
    difference: Difference


def default_size(luts: list[LUT]) -> int:
    """The largest 3D size among ``luts``, at least :data:`LEAST_DEFAULT_SIZE`."""
    return max([LEAST_DEFAULT_SIZE] + [lut.size for lut in luts if lut.size is not None])


def apply_chain(luts: list[LUT], rgb: np.ndarray, interpolation: str = "trilinear") -> np.ndarray:
    """Colours ``rgb`` ``(..., 3)`` through every LUT of ``luts`` in turn, float64."""
    for lut in luts:
        rgb = evaluate(lut, rgb, interpolation)
    return rgb


def _shaper_range(lut: LUT) -> np.ndarray:
    """The ``(2, 3)`` range of a 1D-only LUT's outputs (a span of at least 1e-6 per channel)."""
    lo, hi = lut.shaper.table.min(axis=0), lut.shaper.table.max(axis=0)
    return np.stack([lo, np.maximum(hi, lo + max(1e-6, SMALLEST_SPAN))])


def compose(luts: list[LUT], size: int, interpolation: str = "trilinear") -> LUT:
    """The LUT applying ``luts`` in order: the first's shaper (if any), then a ``size``^3 table.

    The table's nodes cover the first LUT's 3D domain (or, for a 1D-only first LUT, the range of its
    outputs); each node holds the rest of the chain applied to the first LUT's 3D part at that node.
    """
    check_size(size)
    first, rest = luts[0], luts[1:]
    if first.shaper is None:
        nodes = grid(size, first.domain)
        return LUT(apply_chain(luts, nodes, interpolation), first.domain, title=first.title)
    domain = first.domain if first.table is not None else _shaper_range(first)
    nodes = grid(size, domain)
    head = [table_only(first)] if first.table is not None else []
    return LUT(apply_chain(head + rest, nodes, interpolation), domain, shaper=first.shaper, title=first.title)


def combine(sources: list[Path], output: Path, size: int | None = None,
            interpolation: str = "trilinear") -> Combined:
    """Read ``sources``, write their combination to ``output`` and measure its error.

    Raises:
        LutgenError: fewer than two sources, an unreadable source, a bad option, an output that is an
            input, or a failed write.
    """
    check_interpolation(interpolation)
    if len(sources) < 2:
        raise OptionError("combine needs at least two LUT files, applied in the order given")
    if size is not None:
        check_size(size)
    luts = [read_lut(path) for path in sources]
    ensure_not_input(output, sources)
    size = default_size(luts) if size is None else size
    combined = compose(luts, size, interpolation)
    x = dense_sample(luts[0].input_domain)
    difference = compare(evaluate(combined, x, interpolation), apply_chain(luts, x, interpolation))
    write_lut(combined, output, **write_options(format_module(output, 'write'), combined))
    return Combined(combined, size, difference)
