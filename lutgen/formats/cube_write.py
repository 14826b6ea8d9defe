"""Writing ``.cube`` files, Adobe (Cube LUT 1.0) and DaVinci Resolve flavours, atomically.

The layout of each flavour is described at :func:`write_cube`; :func:`format_rows` turns the rows
into text with vectorised numpy. Reading is in :mod:`lutgen.formats.cube`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lutgen.errors import LutgenError
from lutgen.fileio import atomic_path
from lutgen.lut import LUT, UNIT_DOMAIN

STYLES = ("auto", "adobe", "resolve")
MAX_DECIMALS = 15
_DIGIT = 48


def write_cube(lut: LUT, path: str | Path, *, style: str = "auto", decimals: int = 6) -> None:
    """Write ``lut`` as a ``.cube`` file, atomically.

    Args:
        lut: the LUT; its values must be finite.
        path: the output file; written through a temporary file beside it.
        style: ``"adobe"``: optional ``TITLE`` and ``#`` comments, ``LUT_3D_SIZE`` (or
            ``LUT_1D_SIZE`` for a 1D-only LUT), ``DOMAIN_MIN``/``DOMAIN_MAX`` only when the domain is
            not 0..1, a blank line, the rows. It cannot hold a shaper and a table together.
            ``"resolve"``: no ``TITLE`` and no comments (OpenColorIO's Resolve reader rejects them),
            ``LUT_1D_SIZE``/``LUT_1D_INPUT_RANGE`` and/or ``LUT_3D_SIZE``/``LUT_3D_INPUT_RANGE``,
            then the shaper rows and the table rows. Its ranges are one pair for all channels.
            ``"auto"``: resolve when the LUT has both a shaper and a table, else adobe.
        decimals: digits after the point (1..15); with 6, every value reads back within 5e-7.

    Raises:
        LutgenError: the style cannot hold this LUT, a value is not finite, or the file cannot be written.
    """
    path = Path(path)
    if style not in STYLES:
        raise LutgenError(f"unknown .cube style '{style}'; use one of {', '.join(STYLES)}")
    if not isinstance(decimals, int) or not 1 <= decimals <= MAX_DECIMALS:
        raise LutgenError(f"decimals must be a whole number from 1 to {MAX_DECIMALS}, not {decimals!r}")
    if style == "auto":
        style = "resolve" if lut.shaper is not None and lut.table is not None else "adobe"
    header = _resolve_header(lut, path) if style == "resolve" else _adobe_header(lut, path)
    parts = [] if lut.shaper is None else [lut.shaper.table]
    if lut.table is not None:
        parts.append(lut.table.reshape(-1, 3))
    rows = np.concatenate(parts)
    if not np.all(np.isfinite(rows)):
        raise LutgenError(f"cannot write {path}: the LUT holds values that are not finite numbers")
    content = ("\n".join(header) + "\n").encode("utf-8") + format_rows(rows, decimals)
    try:
        with atomic_path(path) as temporary:
            temporary.write_bytes(content)
    except OSError as error:
        raise LutgenError(f"cannot write {path}: {error.strerror or error}") from None


def _adobe_header(lut: LUT, path: Path) -> list[str]:
    if lut.shaper is not None and lut.table is not None:
        raise LutgenError(
            f"cannot write {path} in the Adobe style: it has a 1D shaper and a 3D table, "
            "which only the Resolve style holds; use style 'resolve'"
        )
    lines = []
    title = _clean_title(lut.title)
    if title:
        lines.append(f'TITLE "{title}"')
    for comment in lut.comments:
        lines.extend(f"# {part}".rstrip() for part in str(comment).splitlines() or [""])
    if lut.table is not None:
        lines.append(f"LUT_3D_SIZE {lut.size}")
        domain = lut.domain
    else:
        lines.append(f"LUT_1D_SIZE {lut.shaper.size}")
        domain = lut.shaper.domain
    if not np.array_equal(domain, UNIT_DOMAIN):
        lines.append("DOMAIN_MIN " + " ".join(_short_number(v) for v in domain[0]))
        lines.append("DOMAIN_MAX " + " ".join(_short_number(v) for v in domain[1]))
    lines.append("")
    return lines


def _resolve_header(lut: LUT, path: Path) -> list[str]:
    lines = []
    if lut.shaper is not None:
        lines.append(f"LUT_1D_SIZE {lut.shaper.size}")
        lines.append("LUT_1D_INPUT_RANGE " + _one_range(lut.shaper.domain, path, "shaper"))
    if lut.table is not None:
        lines.append(f"LUT_3D_SIZE {lut.size}")
        lines.append("LUT_3D_INPUT_RANGE " + _one_range(lut.domain, path, "3D table"))
    return lines


def _one_range(domain: np.ndarray, path: Path, what: str) -> str:
    if not (np.all(domain[0] == domain[0, 0]) and np.all(domain[1] == domain[1, 0])):
        raise LutgenError(
            f"cannot write {path} in the Resolve style: the {what}'s domain differs between channels "
            f"({domain.tolist()}), and a Resolve input range is one pair for all channels"
        )
    return f"{_short_number(domain[0, 0])} {_short_number(domain[1, 0])}"


def _clean_title(title: str | None) -> str:
    if not title:
        return ""
    return " ".join(str(title).replace('"', "'").split())


def _short_number(value: float) -> str:
    """The shortest decimal that reads back as ``value``, without exponent and never ``-0``."""
    return np.format_float_positional(float(value) + 0.0, trim="-")


def format_rows(rows: np.ndarray, decimals: int = 6) -> bytes:
    """``rows`` of shape ``(R, 3)`` as ``.cube`` data lines: fixed-point, ``decimals`` digits, LF ends.

    Built as bytes with numpy (sign, integer digits, point, fraction digits, separator per value;
    unused positions are zero bytes, dropped at the end). Zero is never written as ``-0.000000``.
    """
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
    scale = 10**decimals
    scaled = np.rint(rows * scale)
    if scaled.size and np.abs(scaled).max() >= 2.0**53:
        return _format_rows_slowly(rows, decimals)
    units = scaled.astype(np.int64)
    negative = units < 0
    whole, fraction = np.divmod(np.abs(units), scale)
    int_width = len(str(int(whole.max()))) if whole.size else 1
    width = 1 + int_width + 1 + decimals + 1  # sign, integer digits, point, fraction digits, separator
    text = np.zeros(rows.shape + (width,), dtype=np.uint8)
    text[..., 0] = np.where(negative, ord("-"), 0)
    int_powers = 10 ** np.arange(int_width - 1, -1, -1, dtype=np.int64)
    int_digits = (whole[..., None] // int_powers % 10 + _DIGIT).astype(np.uint8)
    int_digits[(whole[..., None] < int_powers) & (int_powers > 1)] = 0  # no leading zeros
    text[..., 1 : 1 + int_width] = int_digits
    text[..., 1 + int_width] = ord(".")
    frac_powers = 10 ** np.arange(decimals - 1, -1, -1, dtype=np.int64)
    text[..., 2 + int_width : -1] = fraction[..., None] // frac_powers % 10 + _DIGIT
    text[..., -1] = ord(" ")
    text[:, -1, -1] = ord("\n")
    flat = text.reshape(-1)
    return flat[flat != 0].tobytes()


def _format_rows_slowly(rows: np.ndarray, decimals: int) -> bytes:
    """The same text as :func:`format_rows`, one value at a time, for values too large for int64."""

    def one(value: float) -> str:
        text = f"{value:.{decimals}f}"
        return text[1:] if text.startswith("-") and not text.strip("-0.") else text

    return "".join(" ".join(one(v) for v in row) + "\n" for row in rows.tolist()).encode("ascii")
