"""Rising Sun Research CineSpace ``.csp`` files, read as OpenColorIO reads them, and written.

Layout: ``CSPLUTV100``, ``3D`` or ``1D``, an optional ``BEGIN METADATA`` ... ``END METADATA`` block
(its first line is the title, the others comments, as colour-science reads them),
then for each of red, green and blue a pre-LUT: a count ``m``, a line of ``m`` input positions and a
line of ``m`` output values (a count below 2 means the identity over 0..1). Then for ``3D`` a line
``N N N`` and ``N``^3 rows, red fastest; for ``1D`` a count ``n`` and ``n`` rows of three values.
The 3D table and the 1D table cover 0..1; the pre-LUT maps each input channel into it.

What the pre-LUT means, as OpenColorIO applies it:

- a channel whose outputs equal its inputs (within 1e-6, relatively) is not applied; when all
  three are such, the file has no pre-LUT and the table covers 0..1;
- otherwise each channel's points are joined by OpenColorIO's cubic Hermite spline (slopes from the
  neighbouring points) and sampled at 65536 even steps over the channel's first to last position;
  inputs outside that range are clamped to it.

lutgen holds a pre-LUT exactly where linear interpolation gives what that spline gives: two points
per channel, or evenly spaced points the spline passes through as straight lines (within 1e-7 of
the output range). It is then a :class:`~lutgen.lut.Shaper` of those points (two points mapping the
positions onto 0..1 become the table's domain instead). Any other pre-LUT becomes the 65536-point
shaper OpenColorIO samples (in float64; within 1e-6 of OpenColorIO's float32 samples).

A ``1D`` file is held as a 1D-only LUT: the 1D table over the pre-LUT's range when the pre-LUT is
a plain rescaling onto 0..1 (exact), else the pre-LUT followed by the table sampled at 65536 steps.

Writing: the pre-LUT is the LUT's shaper with its outputs rescaled from the table's domain onto
0..1 (or two points mapping the domain onto 0..1 when there is no shaper); a shaper whose
straight segments the spline would bend gets two extra points beside each interior node, so that
OpenColorIO's spline follows the straight lines except within 1e-6 of the nodes. Pre-LUT numbers
are written in their shortest exact form, table values with ``decimals`` digits after the point
(6: within 5e-7).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from lutgen.formats.cube_write import format_rows
from lutgen.formats.spi import (
    MAX_3D_SIZE,
    check_decimals,
    check_finite,
    data_lines,
    file_error,
    most_bytes,
    parse_int,
    parse_rows,
    read_lines,
    write_text,
)
from lutgen.lut import LUT, MAX_1D_SIZE, MIN_3D_SIZE, Shaper

PRELUT_SAMPLES = 65536
"""How many even steps OpenColorIO samples a curved pre-LUT at (and lutgen with it)."""
IDENTITY_TOLERANCE = 1e-6
"""A pre-LUT channel whose outputs equal its inputs within this (relative) error is not applied."""
LINEAR_TOLERANCE = 1e-7
"""An evenly spaced pre-LUT is held as it is when the spline is this close to straight lines."""
KINK_OFFSET = 1e-6
"""Where the extra points of a written pre-LUT sit, as a share of the channel's input range."""


def read(path: Path) -> LUT:
    """The LUT of a ``.csp`` file (see the module docstring for what each part becomes)."""
    path = Path(path)
    lines = read_lines(path, ".csp file", lambda head: _limit(path, head))
    kind, prelut, after = _header(path, lines)
    rows, numbers = data_lines(lines, after)
    lut = (_read_3d if kind == "3D" else _read_1d)(path, rows, numbers, prelut, after)
    metadata = _metadata(lines)
    return replace(lut, title=metadata[0] if metadata else None, comments=metadata[1:])


def _metadata(lines: list[str]) -> tuple[str, ...]:
    """The lines of the ``BEGIN METADATA`` block (the header has been checked), stripped."""
    rows, _ = data_lines(lines, 0)
    if len(rows) < 3 or not rows[2].upper().startswith("BEGIN METADATA"):
        return ()
    end = next(i for i in range(3, len(rows)) if rows[i].upper().startswith("END METADATA"))
    return tuple(rows[3:end])


def _limit(path: Path, head: list[str]) -> int:
    """The most bytes the file may have, from its header (pre-LUT lines included)."""
    kind, _, after = _header(path, head)
    rows, numbers = data_lines(head, after)
    if not rows:
        return most_bytes(MAX_3D_SIZE**3)
    count = _size_line(path, kind, rows[0], numbers[0])
    return most_bytes(count**3 if kind == "3D" else count) + sum(len(line) + 2 for line in head[:after])


def _header(path: Path, lines: list[str]) -> tuple[str, list[tuple[np.ndarray, np.ndarray]], int]:
    """The kind (``"3D"`` or ``"1D"``), each channel's ``(positions, outputs)`` and the index after them."""
    rows, numbers = data_lines(lines, 0)
    if not rows or not rows[0].upper().startswith("CSPLUTV100"):
        raise file_error(path, "a .csp file starts with 'CSPLUTV100'", numbers[0] if numbers else 1)
    if len(rows) < 2 or rows[1].upper() not in ("3D", "1D"):
        raise file_error(path, "the second line of a .csp file is '3D' or '1D'", numbers[1] if len(rows) > 1 else 1)
    kind, at = rows[1].upper(), 2
    if at < len(rows) and rows[at].upper().startswith("BEGIN METADATA"):
        while at < len(rows) and not rows[at].upper().startswith("END METADATA"):
            at += 1
        if at == len(rows):
            raise file_error(path, "the 'BEGIN METADATA' block has no 'END METADATA'", numbers[-1])
        at += 1
    prelut = []
    for channel in ("red", "green", "blue"):
        if at >= len(rows):
            raise file_error(path, f"the file ends before the {channel} pre-LUT", numbers[-1])
        count = parse_int(path, rows[at], numbers[at], f"the {channel} pre-LUT's point count")
        if count > MAX_1D_SIZE:
            raise file_error(path, f"a pre-LUT has at most {MAX_1D_SIZE} points, not {count}", numbers[at])
        if count < 2:
            prelut.append((np.array([0.0, 1.0]), np.array([0.0, 1.0])))
            at += 1
            continue
        if at + 2 >= len(rows):
            raise file_error(path, f"the file ends inside the {channel} pre-LUT", numbers[-1])
        pair = parse_rows(path, rows[at + 1 : at + 3], numbers[at + 1 : at + 3], count,
                          f"a line of the {channel} pre-LUT")
        if not np.all(np.diff(pair[0]) > 0):
            raise file_error(path, f"the {channel} pre-LUT's input positions must increase", numbers[at + 1])
        prelut.append((pair[0], pair[1]))
        at += 3
    after = numbers[at - 1]  # index of the line after the pre-LUT, in ``lines``
    return kind, prelut, after


def _size_line(path: Path, kind: str, text: str, number: int) -> int:
    parts = text.split()
    if kind == "1D":
        if len(parts) != 1:
            raise file_error(path, "the 1D table's size line holds one count", number)
        count = parse_int(path, parts[0], number, "the 1D table's size")
        if not 2 <= count <= MAX_1D_SIZE:
            raise file_error(path, f"the 1D table's size must be from 2 to {MAX_1D_SIZE}, not {count}", number)
        return count
    if len(parts) != 3:
        raise file_error(path, "the 3D size line holds three sizes 'N N N'", number)
    sizes = [parse_int(path, p, number, "a 3D size") for p in parts]
    if len(set(sizes)) != 1:
        raise file_error(path, f"the 3D sizes {text} differ; lutgen reads N N N", number)
    if not MIN_3D_SIZE <= sizes[0] <= MAX_3D_SIZE:
        raise file_error(path, f"the 3D size must be from {MIN_3D_SIZE} to {MAX_3D_SIZE}, not {sizes[0]}", number)
    return sizes[0]


def _table_rows(path: Path, rows: list[str], numbers: list[int], count: int, kind: str, after: int) -> np.ndarray:
    if not rows:
        raise file_error(path, f"the file ends before the {kind} table's size line", after)
    if len(rows) - 1 != count:
        state = "more" if len(rows) - 1 > count else "only"
        line = numbers[count + 1] if len(rows) - 1 > count else numbers[-1]
        raise file_error(path, f"the {kind} table has {count} rows but the file has {state} {len(rows) - 1}", line)
    return parse_rows(path, rows[1:], numbers[1:], 3, f"a {kind} table row")


def _read_3d(path: Path, rows, numbers, prelut, after) -> LUT:
    n = _size_line(path, "3D", rows[0], numbers[0]) if rows else None
    if n is None:
        raise file_error(path, "the file ends before the 3D size line", after)
    table = _table_rows(path, rows, numbers, n**3, "3D", after).reshape(n, n, n, 3)
    shaper = prelut_shaper(prelut)
    if shaper is None:
        return LUT(table)
    if shaper.size == 2 and np.array_equal(shaper.table, [[0, 0, 0], [1, 1, 1]]):
        return LUT(table, shaper.domain)
    return LUT(table, shaper=shaper)


def _read_1d(path: Path, rows, numbers, prelut, after) -> LUT:
    n = _size_line(path, "1D", rows[0], numbers[0]) if rows else None
    if n is None:
        raise file_error(path, "the file ends before the 1D table's size line", after)
    curve = _table_rows(path, rows, numbers, n, "1D", after)
    shaper = prelut_shaper(prelut)
    if shaper is None:
        return LUT(None, shaper=Shaper(curve))
    if shaper.size == 2 and np.array_equal(shaper.table, [[0, 0, 0], [1, 1, 1]]):
        return LUT(None, shaper=Shaper(curve, shaper.domain))
    steps, nodes = np.linspace(0.0, 1.0, PRELUT_SAMPLES), np.linspace(0.0, 1.0, shaper.size)
    shaped = [np.interp(steps, nodes, shaper.table[:, c]) for c in range(3)]  # np.interp clamps to 0..1
    composed = np.stack([np.interp(shaped[c], np.linspace(0.0, 1.0, n), curve[:, c]) for c in range(3)], axis=1)
    return LUT(None, shaper=Shaper(composed, shaper.domain))


# --- the pre-LUT ---------------------------------------------------------------------------------


def prelut_shaper(prelut: list[tuple[np.ndarray, np.ndarray]]) -> Shaper | None:
    """The shaper OpenColorIO makes of a pre-LUT, or ``None`` when it applies none."""
    used = [not _equal_relative(x, y) for x, y in prelut]
    if not any(used):
        return None
    domain = np.array([[x[0] for x, _ in prelut], [x[-1] for x, _ in prelut]])
    sizes = {len(x) for x, _ in prelut}
    if len(sizes) == 1 and all(_straight(x, y) for x, y in prelut):
        return Shaper(np.stack([y for _, y in prelut], axis=1), domain)
    table = np.stack([spline(x, y, np.linspace(x[0], x[-1], PRELUT_SAMPLES)) for x, y in prelut], axis=1)
    return Shaper(table, domain)


def _equal_relative(x: np.ndarray, y: np.ndarray) -> bool:
    """OpenColorIO's test of an unused pre-LUT channel: ``|x - y| <= 1e-6 * max(|x|, |y|)`` everywhere."""
    return bool(np.all(np.abs(x - y) <= IDENTITY_TOLERANCE * np.maximum(np.abs(x), np.abs(y))))


def _straight(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether evenly spaced points ``x`` are joined by the spline as by straight lines."""
    if len(x) == 2:
        return True
    even = np.linspace(x[0], x[-1], len(x))
    if not np.allclose(x, even, rtol=0, atol=1e-9 * (x[-1] - x[0])):
        return False
    probe = np.linspace(x[0], x[-1], 8 * (len(x) - 1) + 1)
    span = max(np.ptp(y), 1e-300)
    return bool(np.max(np.abs(spline(x, y, probe) - np.interp(probe, x, y))) <= LINEAR_TOLERANCE * span)


def spline(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """OpenColorIO's CineSpace pre-LUT curve through ``(x, y)`` at ``at`` (float64), clamped outside ``x``.

    A cubic Hermite spline per segment ``i``: slopes at the inner points are ``(y[i+1] - y[i-1])``
    over ``1 + (x[i+1] - x[i]) / (x[i] - x[i-1])`` in the segment's unit coordinate; the first and
    last segments are quadratics with the one inner slope. Two points: a straight line.
    """
    x, y, at = (np.asarray(v, dtype=np.float64) for v in (x, y, at))
    clamped = np.clip(at, x[0], x[-1])
    segment = np.clip(np.searchsorted(x, clamped, side="right") - 1, 0, len(x) - 2)
    z = (clamped - x[segment]) / (x[segment + 1] - x[segment])
    f0, f1 = y[segment], y[segment + 1]
    if len(x) == 2:
        return f0 + z * (f1 - f0)
    delta = x[1:] - x[:-1]
    slope0 = np.zeros(len(x) - 1)  # slope at the segment's start, in its unit coordinate
    slope1 = np.zeros(len(x) - 1)  # slope at its end
    inner = np.arange(1, len(x) - 1)
    slope0[inner] = (y[inner + 1] - y[inner - 1]) / (1 + delta[inner - 1] / delta[inner])
    slope1[inner - 1] = (y[inner + 1] - y[inner - 1]) / (1 + delta[inner] / delta[inner - 1])
    d0, d1 = slope0[segment], slope1[segment]
    last = len(x) - 2
    first_seg, last_seg = segment == 0, segment == last
    # Inner segments: cubic Hermite; first: quadratic with the end slope; last: quadratic with the start slope.
    a, b = f0, d0
    c = -3 * f0 - 2 * d0 + 3 * f1 - d1
    d = 2 * f0 + d0 - 2 * f1 + d1
    b = np.where(first_seg, -2 * f0 + 2 * f1 - d1, b)
    c = np.where(first_seg, f0 - f1 + d1, c)
    c = np.where(last_seg & ~first_seg, -f0 + f1 - d0, c)
    d = np.where(first_seg | last_seg, 0.0, d)
    return a + z * (b + z * (c + d * z))


# --- writing -------------------------------------------------------------------------------------


def write(lut: LUT, path: Path, *, decimals: int = 6) -> None:
    """Write ``lut`` as ``.csp``, atomically: ``3D`` with a pre-LUT, or ``1D`` for a 1D-only LUT."""
    path = Path(path)
    decimals = check_decimals(decimals)
    if lut.table is None:
        prelut = _written_prelut(Shaper.identity(2, lut.shaper.domain), lut.shaper.domain)
        body = f"{lut.shaper.size}\n" + format_rows(check_finite(lut.shaper.table, path), decimals).decode()
        kind = "1D"
    else:
        shaper = lut.shaper or Shaper.identity(2, lut.domain)
        prelut = _written_prelut(shaper, lut.domain)
        n = lut.size
        body = f"{n} {n} {n}\n" + format_rows(check_finite(lut.table.reshape(-1, 3), path), decimals).decode()
        kind = "3D"
    # The metadata block is always written: colour-science's reader needs one.
    lines = ["CSPLUTV100", kind, "", "BEGIN METADATA", *([lut.title] if lut.title else []), *lut.comments,
             "END METADATA", ""]
    for positions, outputs in prelut:
        check_finite(outputs, path)
        lines += [str(len(positions)), _numbers(positions), _numbers(outputs)]
    write_text(path, "\n".join(lines) + "\n\n" + body)


def _written_prelut(shaper: Shaper, domain: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each channel's ``(positions, outputs)``: the shaper rescaled onto 0..1 of the table, kinks guarded."""
    channels = []
    for c in range(3):
        x = np.linspace(shaper.domain[0, c], shaper.domain[1, c], shaper.size)
        y = (shaper.table[:, c] - domain[0, c]) / (domain[1, c] - domain[0, c])
        if not _straight(x, y):
            x, y = _guard_kinks(x, y)
        channels.append((x, y))
    return channels


def _guard_kinks(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` with two points beside each inner node (at :data:`KINK_OFFSET` of the range), on the straight lines."""
    step = KINK_OFFSET * (x[-1] - x[0])
    inner = x[1:-1]
    dense = np.sort(np.concatenate([x, inner - step, inner + step]))
    return dense, np.interp(dense, x, y)


def _numbers(values: np.ndarray) -> str:
    """One line of numbers, each in the shortest form that reads back exactly."""
    return " ".join(repr(float(v)) for v in values)
