"""Converting a LUT file to another format or size: the work behind ``lutgen convert``.

The LUT goes to the target format as it is when the target can hold it (same size, shaper, domain);
otherwise it is resampled (:func:`lutgen.color.sampling.resample`) to the plain lattice the target
holds. Either way the written file is read back and compared with the source, so what is reported
("lossless", or the PSNR kept) is what another application will read.

A format module may say what it holds with ``CAPABILITIES = {"shaper": bool, "domain": bool,
"1d": bool, "sizes": (lo, hi), "allowed_sizes": (n1, n2, ...)}`` (any key missing means "yes" or "any
size"; ``allowed_sizes`` for formats such as Hald images whose sizes are squares); a module without it
is taken to hold everything, and a write it refuses is retried once with the plain resampled lattice.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lutgen.color.sampling import Difference, check_interpolation, check_size, compare, dense_sample, evaluate, resample
from lutgen.errors import LutgenError
from lutgen.fileio import ensure_not_input
from lutgen.formats import format_module, read_lut, write_lut
from lutgen.lut import LUT, UNIT_DOMAIN

SMALLEST_RESAMPLED = 33
"""Lattice size used when a shaper or a 1D LUT has to become a plain 3D table and no --size is given."""


@dataclass(frozen=True)
class Converted:
    """What :func:`convert` did: ``resampled_to`` is the lattice size (``None`` when the LUT was kept as it
    is), ``reason`` why it was resampled, ``lossless`` whether the file reads back as the source's exact
    tables, ``difference`` the written file against the source over a dense sample of its input domain."""

    output: Path
    resampled_to: int | None
    reason: str | None
    lossless: bool
    difference: Difference


def target_module(path: Path):
    """The format module that writes ``path``; a format lutgen names but cannot load is refused in one sentence."""
    try:
        return format_module(path, "write")
    except ImportError:
        raise LutgenError(f"cannot write {path}: this lutgen cannot write '{path.suffix}' files") from None


def capabilities(module) -> dict:
    """The ``CAPABILITIES`` of a format ``module``, with every missing key meaning "holds it"."""
    caps = {"shaper": True, "domain": True, "1d": True, "sizes": (2, 256), "allowed_sizes": None}
    caps.update(getattr(module, "CAPABILITIES", {}))
    return caps


def holdable(size: int, caps: dict) -> bool:
    """Whether a format with capabilities ``caps`` holds a ``size``^3 table."""
    lo, hi = caps["sizes"]
    allowed = caps["allowed_sizes"]
    return lo <= size <= hi and (allowed is None or size in allowed)


def nearest_holdable(size: int, caps: dict) -> int:
    """The smallest size the format holds that is at least ``size`` (else the largest it holds)."""
    lo, hi = caps["sizes"]
    allowed = sorted(caps["allowed_sizes"] or range(lo, hi + 1))
    return next((n for n in allowed if n >= size), allowed[-1])


MAX_DECIMALS = 15


def exact_decimals(lut: LUT, least: int = 6) -> int:
    """The fewest decimals (at least ``least``, at most 15) that write every value of ``lut`` exactly.

    A value ``v`` reads back from ``d`` decimals as itself when ``rint(v * 10^d) / 10^d == v``: the
    decimal's parse and that division are both the float64 nearest to the same fraction.
    """
    parts = [p.ravel() for p in (lut.table, None if lut.shaper is None else lut.shaper.table) if p is not None]
    values = np.concatenate(parts)
    for d in range(least, MAX_DECIMALS + 1):
        scale = 10.0**d
        with np.errstate(all="ignore"):
            if np.all(np.abs(values) * scale < 2.0**53) and np.array_equal(np.rint(values * scale) / scale, values):
                return d
    return MAX_DECIMALS


def write_options(module, lut: LUT, interpolation: str = "trilinear") -> dict:
    """Options for ``module.write``: enough ``decimals`` to hold ``lut`` exactly where the format has them,
    and the ``interpolation`` for a writer that samples the LUT itself."""
    parameters = inspect.signature(module.write).parameters
    options = {}
    if "decimals" in parameters:
        options["decimals"] = exact_decimals(lut)
    if "interpolation" in parameters:
        options["interpolation"] = interpolation
    return options


def same_structure(a: LUT, b: LUT) -> bool:
    """Whether ``a`` and ``b`` have the same lattice size, the same shaper presence and the same input domain."""
    return (a.size == b.size and (a.shaper is None) == (b.shaper is None)
            and (a.shaper is None or a.shaper.size == b.shaper.size)
            and np.array_equal(a.input_domain, b.input_domain))


def plan(lut: LUT, caps: dict, size: int | None) -> tuple[int | None, np.ndarray | None, str | None]:
    """``(size, domain, reason)`` of the resampling the target needs, or ``(None, None, None)`` for none."""
    default = max(lut.size or 0, SMALLEST_RESAMPLED) if lut.shaper is not None else (lut.size or SMALLEST_RESAMPLED)
    target = size if size is not None else nearest_holdable(default, caps)
    domain = lut.input_domain if caps["domain"] else UNIT_DOMAIN
    if lut.table is None and not caps["1d"]:
        return target, domain, "the target format holds no 1D LUT"
    if lut.shaper is not None and lut.table is not None and not caps["shaper"]:
        return target, domain, "the target format holds no shaper"
    if not caps["domain"] and not np.array_equal(lut.input_domain, UNIT_DOMAIN):
        return target, domain, "the target format holds no domain other than 0..1"
    if lut.table is not None and not holdable(lut.size, caps):
        return target, domain, f"the target format cannot hold {lut.size}^3 nodes"
    if size is not None and (size != lut.size or lut.shaper is not None):
        return target, domain, f"--size {size} asked for"
    return None, None, None


def same_tables(a: LUT, b: LUT) -> bool:
    """Whether ``a`` and ``b`` hold bit for bit the same tables, domains and shapers."""
    if (a.table is None) != (b.table is None) or (a.shaper is None) != (b.shaper is None):
        return False
    if a.table is not None and not (np.array_equal(a.table, b.table) and np.array_equal(a.domain, b.domain)):
        return False
    return a.shaper is None or (np.array_equal(a.shaper.table, b.shaper.table)
                                and np.array_equal(a.shaper.domain, b.shaper.domain))


def convert(source: Path, output: Path, size: int | None = None, interpolation: str = "trilinear") -> Converted:
    """Write the LUT file ``source`` as ``output`` (format by extension), resampled only where needed.

    Raises:
        LutgenError: unreadable source, bad option, output that is the source, or a failed write.
    """
    check_interpolation(interpolation)
    if size is not None:
        check_size(size)
    source, output = Path(source), Path(output)
    module = target_module(output)
    caps = capabilities(module)
    lut = read_lut(source)
    ensure_not_input(output, [source])
    target, domain, reason = plan(lut, caps, size)
    written = lut if target is None else resample(lut, target, domain, interpolation)
    try:
        write_lut(written, output, **write_options(module, written, interpolation))
    except LutgenError as refusal:
        if target is not None:
            raise
        target = max(lut.size or 0, SMALLEST_RESAMPLED)
        reason = f"the target format refused it as it is: {str(refusal).rstrip('.')}"
        written = resample(lut, target, UNIT_DOMAIN if not caps["domain"] else lut.input_domain, interpolation)
        write_lut(written, output, **write_options(module, written, interpolation))
    back = read_lut(output)
    if not same_structure(written, back):  # the format's writer sampled it at a lattice it can hold
        target = back.size
        reason = f"the {output.suffix} writer sampled it at the lattice that format holds"
    x = dense_sample(lut.input_domain)
    difference = compare(evaluate(back, x, interpolation), evaluate(lut, x, interpolation))
    return Converted(output, target, reason, target is None and same_tables(lut, back), difference)
