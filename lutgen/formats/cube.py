"""Reading ``.cube`` files, Adobe (Cube LUT 1.0) and DaVinci Resolve flavours (writing: ``cube_write``).

What a file means (the same as colour-science's ``colour.read_LUT``, checked by the tests):

- ``LUT_3D_SIZE N`` alone: a 3D table over ``DOMAIN_MIN``/``DOMAIN_MAX`` (per channel) or
  ``LUT_3D_INPUT_RANGE min max`` (one pair for all channels); giving both is an error.
  ``LUT_1D_INPUT_RANGE`` is ignored, as Resolve ignores it.
- ``LUT_1D_SIZE M`` alone: a 1D-only LUT, held as a :class:`~lutgen.lut.Shaper` with ``table=None``,
  over ``DOMAIN_MIN``/``DOMAIN_MAX`` or ``LUT_1D_INPUT_RANGE`` (both is an error).
  ``LUT_3D_INPUT_RANGE`` is ignored.
- Both sizes (Resolve): the M shaper rows come first, then the N^3 table rows. The shaper's domain is
  ``LUT_1D_INPUT_RANGE`` and the table's domain ``LUT_3D_INPUT_RANGE``; the shaper's output is the
  table's input. ``DOMAIN_MIN``/``DOMAIN_MAX`` in such a file (which no Resolve file has and
  colour-science refuses) is taken as the shaper's domain.
- 3D rows are in ``.cube`` order, red fastest and blue slowest, which is ``LUT.table`` flattened in
  C order (``table[b, g, r]``).

Tolerated: ``TITLE`` with or without quotes (in any encoding), ``#`` comment lines and blank lines
anywhere, CRLF or CR line ends, a UTF-8 byte-order mark, tabs, exponent notation, values outside 0..1.
Numbers are ASCII (``[+-]digits[.digits][e[+-]digits]``) separated by ASCII spaces or tabs. Anything
else that is wrong raises :class:`~lutgen.errors.CubeFormatError` naming the file and the line.

Limits, so that any file is read in bounded memory and time: only regular files are opened (never a
FIFO or a device); a line holds at most ``cube_lines.MAX_LINE_BYTES``; a file holds at most
:data:`MAX_COMMENT_LINES` comment lines; and a file may be at most :data:`SLACK_BYTES` plus
:data:`ROW_BYTES` per data row its sizes call for. The file is read in chunks of
``cube_lines.CHUNK_BYTES`` (:mod:`lutgen.formats.cube_lines`) into one preallocated float64 array,
so reading takes the table plus a few tens of MB.

Each chunk is parsed with vectorised numpy (exactly, to the same float64 as ``float()``, in
:mod:`lutgen.formats.cube_numbers`); a chunk that is not plainly valid goes through a line-by-line
pass that finds the error and its line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lutgen.errors import CubeFormatError
from lutgen.formats.cube_lines import LineBlocks, megabytes, open_regular_file
from lutgen.formats.cube_numbers import fast_rows
from lutgen.formats.cube_write import MAX_DECIMALS, STYLES, format_rows, write_cube
from lutgen.lut import (
    LUT,
    MAX_1D_SIZE,
    MAX_3D_SIZE,
    MIN_1D_SIZE,
    MIN_3D_SIZE,
    SMALLEST_SPAN,
    UNIT_DOMAIN,
    Shaper,
)

__all__ = ["read_cube", "write_cube", "format_rows", "STYLES", "MAX_DECIMALS"]

MAX_COMMENT_LINES = 10_000
"""The most ``#`` comment lines a file may hold (they are kept in ``LUT.comments``)."""
ROW_BYTES = 256
"""Room per data row when judging a file's size: three 17-digit numbers with exponents need ~75."""
SLACK_BYTES = 16 * 2**20
"""Room beyond the data rows, for the header, comments and blank lines."""
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]*,[0-9]+(?:[eE][+-]?[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+")
_SEPARATOR = re.compile(r"[ \t]+")
_SEPARATOR_BYTES = b" \t"
_BLANKS = re.compile(rb"[ \t\n]*")
_BLANK_BYTES = b" \t\n"
_COMMENT_LINE = re.compile(rb"^[ \t]*#([^\n]*)", re.MULTILINE)
_NON_FINITE_WORDS = ("nan", "inf", "infinity")
_SIZE_KEYWORDS = {"LUT_1D_SIZE": (MIN_1D_SIZE, MAX_1D_SIZE), "LUT_3D_SIZE": (MIN_3D_SIZE, MAX_3D_SIZE)}
_KEYWORDS = (
    "TITLE",
    "LUT_1D_SIZE",
    "LUT_3D_SIZE",
    "DOMAIN_MIN",
    "DOMAIN_MAX",
    "LUT_1D_INPUT_RANGE",
    "LUT_3D_INPUT_RANGE",
)
_UNSUPPORTED_KEYWORDS = ("LUT_IN_VIDEO_RANGE", "LUT_OUT_VIDEO_RANGE")
_CHANNELS = ("red", "green", "blue")


def _most_bytes(rows: int) -> int:
    """The largest file allowed for ``rows`` data rows."""
    return SLACK_BYTES + ROW_BYTES * rows


class _LineProblem(Exception):
    """A problem with one line; the caller adds the file and the line number."""


@dataclass
class _Header:
    """The keyword lines of a file, with the line number of each keyword."""

    title: str | None = None
    comments: list[str] = field(default_factory=list)
    values: dict[str, object] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def get(self, keyword: str):
        return self.values.get(keyword)


def read_cube(path: str | Path) -> LUT:
    """Read a ``.cube`` file (either flavour) into a :class:`~lutgen.lut.LUT`.

    Raises:
        LutgenError: the file is missing, not a regular file, or cannot be read.
        CubeFormatError: the file is not a valid ``.cube`` file; the message names the line.
    """
    path = Path(path)
    stream, size = open_regular_file(path, ".cube file")
    with stream:
        source = LineBlocks(path, stream, _largest_file(path, size))
        blocks = source.blocks()
        header, data = _parse_header(path, blocks)
        expected, needs = _expected_rows(path, header, data[0] if data else None)
        _check_file_size(path, header, size, expected, needs)
        source.max_bytes = _most_bytes(expected)
        parts = [] if data is None else _chain(data, blocks)
        rows = _read_rows(path, parts, expected, needs, header.comments)
        if len(rows) < expected:
            message = f"{needs} {expected} data rows but the file ends after {len(rows)}"
            raise CubeFormatError(path, message, source.line_count())
    return _build_lut(path, header, rows)


def _largest_file(path: Path, size: int) -> int:
    """The most bytes any ``.cube`` file may take; a larger file is refused before it is read."""
    most = _most_bytes(MAX_1D_SIZE + MAX_3D_SIZE**3)
    if size > most:
        largest = f"LUT_1D_SIZE {MAX_1D_SIZE} and LUT_3D_SIZE {MAX_3D_SIZE}"
        message = f"the file has {megabytes(size)}, more than the {megabytes(most)} that the largest "
        raise CubeFormatError(path, message + f".cube file ({largest}) may take")
    return most


def _check_file_size(path: Path, header: _Header, size: int, expected: int, needs: str) -> None:
    """Refuse a file far larger than its sizes can need, before its data is read."""
    most = _most_bytes(expected)
    if size > most:
        line = max(header.lines[k] for k in _SIZE_KEYWORDS if k in header.lines)
        message = (
            f"the file has {megabytes(size)} but {needs} {expected} data rows, which fit in "
            f"{megabytes(most)}; a file this large is not a .cube file of that size"
        )
        raise CubeFormatError(path, message, line)


# --- text -----------------------------------------------------------------------------------


def _chain(first: tuple[int, bytes], rest: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    yield first
    yield from rest


def _decode(line: bytes, lenient: bool = False) -> str:
    """``line`` as UTF-8 text; ``lenient`` (titles, comments) reads other bytes as Latin-1."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as error:
        if lenient:
            return line.decode("latin-1")
        bad = line[error.start]
        raise _LineProblem(f"byte 0x{bad:02x} is not UTF-8 text, so this is not a .cube file") from None


def _split(text: str) -> list[str]:
    """The tokens of a stripped line: only ASCII spaces and tabs separate them."""
    return _SEPARATOR.split(text) if text else []


def _is_keyword(token: str) -> bool:
    """Whether a line starting with ``token`` is a keyword line rather than a (maybe bad) data row."""
    return (token[0].isalpha() or token[0] == "_") and token.lower() not in _NON_FINITE_WORDS


def _add_comment(path: Path, comments: list[str], text: bytes, line: int) -> None:
    if len(comments) >= MAX_COMMENT_LINES:
        raise CubeFormatError(
            path, f"the file has more than {MAX_COMMENT_LINES} comment lines, more than lutgen reads", line
        )
    comments.append(_decode(text, lenient=True).strip())


# --- the header -----------------------------------------------------------------------------


def _parse_header(
    path: Path, blocks: Iterator[tuple[int, bytes]]
) -> tuple[_Header, tuple[int, bytes] | None]:
    """Read keyword, comment and blank lines up to the first data row.

    Returns the header and the first data row's line number with the rest of its block (from that
    row on), or ``None`` when the file has no data row.
    """
    header, seen = _Header(), False
    for first_line, block in blocks:
        if not block.translate(None, _BLANK_BYTES):
            continue  # only blank lines: the quick way past a flood of them
        position, line_number = 0, first_line
        while True:
            found = _BLANKS.match(block, position).end()
            if found == len(block):
                break
            line_number += block.count(b"\n", position, found)
            start = block.rfind(b"\n", 0, found) + 1
            end = block.find(b"\n", found)
            end = len(block) if end < 0 else end
            raw = block[found:end].rstrip(_SEPARATOR_BYTES)
            seen = True
            try:
                if raw.startswith(b"#"):
                    _add_comment(path, header.comments, raw[1:], line_number)
                else:
                    text = _decode(raw, lenient=raw.startswith(b"TITLE"))
                    keyword = _SEPARATOR.split(text, 1)[0]
                    if not _is_keyword(keyword):
                        return header, (line_number, block[start:])
                    _parse_keyword(header, text, keyword, line_number)
            except _LineProblem as problem:
                raise CubeFormatError(path, str(problem), line_number) from None
            position = end
    if not seen:
        raise CubeFormatError(path, "the file is empty")
    return header, None


def _parse_keyword(header: _Header, text: str, keyword: str, line_number: int) -> None:
    if keyword in _UNSUPPORTED_KEYWORDS:
        raise _LineProblem(
            f"{keyword} (a DaVinci Resolve video-range flag) is not supported; "
            "export the LUT from Resolve with full-range input and output"
        )
    if keyword not in _KEYWORDS:
        raise _LineProblem(f"unknown keyword '{_show(keyword)}'; a .cube file knows {', '.join(_KEYWORDS)}")
    if keyword in header.lines:
        raise _LineProblem(f"{keyword} appears twice (first on line {header.lines[keyword]})")
    header.lines[keyword] = line_number
    arguments = text[len(keyword) :].strip(" \t")
    if keyword == "TITLE":
        if arguments.startswith('"'):
            arguments = arguments[1:-1] if arguments.endswith('"') and len(arguments) > 1 else arguments[1:]
        header.title = arguments
    elif keyword in _SIZE_KEYWORDS:
        header.values[keyword] = _parse_size(keyword, _split(arguments))
    elif keyword in ("DOMAIN_MIN", "DOMAIN_MAX"):
        numbers = _parse_numbers(keyword, _split(arguments), 3, "three numbers (r g b)")
        header.values[keyword] = np.array(numbers)
    else:
        header.values[keyword] = _parse_range(keyword, _split(arguments))


def _parse_size(keyword: str, tokens: list[str]) -> int:
    """A size: ASCII digits only, within the keyword's limits (checked before any conversion)."""
    low, high = _SIZE_KEYWORDS[keyword]
    if len(tokens) != 1 or not _DIGITS.fullmatch(tokens[0]):
        shown = " ".join(tokens) or "nothing"
        raise _LineProblem(f"{keyword} needs one whole number written in ASCII digits, got '{_show(shown)}'")
    digits = tokens[0].lstrip("0") or "0"
    if len(digits) > len(str(high)) or not low <= int(digits) <= high:
        raise _LineProblem(f"{keyword} {_show(tokens[0])} is outside the allowed {low}..{high}")
    return int(digits)


def _parse_range(keyword: str, tokens: list[str]) -> np.ndarray:
    """``LUT_1D_INPUT_RANGE``/``LUT_3D_INPUT_RANGE``: min and max, as a ``(2, 3)`` domain."""
    low, high = _parse_numbers(keyword, tokens, 2, "two numbers (min max)")
    if not high > low:
        raise _LineProblem(f"{keyword} needs its maximum above its minimum, got {low:g} {high:g}")
    span = high - low
    if not (math.isfinite(span) and span >= SMALLEST_SPAN):
        raise _LineProblem(f"{keyword} {low:g} {high:g} {_span_problem(span)}")
    return np.array([[low] * 3, [high] * 3])


def _span_problem(span: float) -> str:
    """The end of a sentence saying why a domain's span (max - min) cannot be graded with."""
    if not math.isfinite(span):
        return "spans more than the largest float64, too wide to grade with"
    return f"spans only {span:.3g}, too narrow to grade with (the least is {SMALLEST_SPAN:.1e})"


def _parse_numbers(what: str, tokens: list[str], count: int, description: str) -> list[float]:
    if len(tokens) != count or any("," in token for token in tokens):
        numbers = [_parse_number(token) for token in tokens]  # reports a decimal comma or a non-number
        raise _LineProblem(f"{what} needs {description}, found {len(numbers)}")
    return [_parse_number(token) for token in tokens]


def _parse_number(token: str) -> float:
    if _NUMBER.fullmatch(token):
        value = float(token)
        if not math.isfinite(value):
            raise _LineProblem(f"'{_show(token)}' is too large to be a finite number")
        return value
    if token.lower().lstrip("+-") in _NON_FINITE_WORDS:
        raise _LineProblem(f"'{token}' is not a finite number; a .cube file holds finite numbers only")
    if "," in token:
        if _DECIMAL_COMMA.fullmatch(token) or all(_NUMBER.fullmatch(part) for part in token.split(",")):
            raise _LineProblem(
                f"'{_show(token)}' uses a comma; write numbers with a decimal point, separated by spaces"
            )
    if not token.isascii() or not token.isprintable():
        raise _LineProblem(
            f"'{_show(token)}' is not a number; write numbers in ASCII digits, separated by spaces or tabs"
        )
    raise _LineProblem(f"'{_show(token)}' is not a number")


def _show(text: str, limit: int = 40) -> str:
    """``text`` shortened to ``limit`` characters, with invisible and odd spaces escaped (``\\xa0``)."""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return "".join(
        c if c.isprintable() and (c == " " or not c.isspace()) else ascii(c)[1:-1] for c in text
    )


def _expected_rows(path: Path, header: _Header, data_line: int | None) -> tuple[int, str]:
    """The number of data rows the size lines call for, and a phrase saying so."""
    size_1d, size_3d = header.get("LUT_1D_SIZE"), header.get("LUT_3D_SIZE")
    if size_1d is None and size_3d is None:
        if data_line is None:
            raise CubeFormatError(path, "the file has no LUT_3D_SIZE or LUT_1D_SIZE line and no data")
        raise CubeFormatError(path, "the data starts before any LUT_3D_SIZE or LUT_1D_SIZE line", data_line)
    if size_1d is not None and size_3d is not None:
        return size_1d + size_3d**3, f"LUT_1D_SIZE {size_1d} and LUT_3D_SIZE {size_3d} need"
    if size_3d is not None:
        return size_3d**3, f"LUT_3D_SIZE {size_3d} needs"
    return size_1d, f"LUT_1D_SIZE {size_1d} needs"


# --- the data rows --------------------------------------------------------------------------


def _read_rows(
    path: Path, parts: Iterator[tuple[int, bytes]], expected: int, needs: str, comments: list[str]
) -> np.ndarray:
    """The data rows of every block into one ``(expected, 3)`` array, or fewer rows when the file ends early.

    Each block goes through the vectorised parser; one that is not plainly valid, or that holds
    the first row beyond ``expected``, goes through the line-by-line parser for the exact error.
    """
    rows = np.empty((expected, 3), dtype=np.float64)
    found = 0
    for first_line, block in parts:
        if b"#" in block:
            block = _blank_comment_lines(path, block, first_line, comments)
        if not block.translate(None, _BLANK_BYTES):
            continue
        values = fast_rows(block)
        if values is not None and found + len(values) <= expected:
            rows[found : found + len(values)] = values
            found += len(values)
            continue
        before, found = found, _careful_rows(path, block, first_line, rows, found)
        if found > expected:
            first_extra = _line_of_row(block, first_line, expected - before)
            found += _count_rows(path, parts)
            message = f"{needs} {expected} data rows but the file has {found}; this is the first extra row"
            raise CubeFormatError(path, message, first_extra)
    return rows[:found]


def _count_rows(path: Path, parts: Iterator[tuple[int, bytes]]) -> int:
    """The number of rows in the remaining blocks, each checked like the others."""
    count, nowhere = 0, np.empty((0, 3))
    for first_line, block in parts:
        if b"#" in block:
            block = _blank_comment_lines(path, block, first_line, [])
        values = fast_rows(block)
        count += len(values) if values is not None else _careful_rows(path, block, first_line, nowhere, 0)
    return count


def _line_of_row(block: bytes, first_line: int, index: int) -> int:
    """The line number of row ``index`` (0-based) of ``block``, whose rows are all valid."""
    for offset, raw in enumerate(block.split(b"\n")):
        if raw.strip(_SEPARATOR_BYTES):
            if index == 0:
                return first_line + offset
            index -= 1
    raise AssertionError("the block has fewer rows than counted")


def _blank_comment_lines(path: Path, block: bytes, first_line: int, comments: list[str]) -> bytes:
    """Collect the comment lines of a data block and replace them with empty lines."""

    def collect(match: re.Match) -> bytes:
        line = first_line + block.count(b"\n", 0, match.start())
        _add_comment(path, comments, match.group(1).rstrip(_SEPARATOR_BYTES), line)
        return b""

    return _COMMENT_LINE.sub(collect, block)


def _careful_rows(path: Path, block: bytes, first_line: int, rows: np.ndarray, found: int) -> int:
    """Parse the rows of ``block`` one line at a time into ``rows[found:]``, raising the exact error.

    Rows beyond ``len(rows)`` are checked and counted but not kept. Returns the new count.
    """
    for offset, raw in enumerate(block.split(b"\n")):
        stripped = raw.strip(_SEPARATOR_BYTES)
        if not stripped:
            continue
        try:
            row = _parse_row(_decode(stripped))
        except _LineProblem as problem:
            raise CubeFormatError(path, str(problem), first_line + offset) from None
        if found < len(rows):
            rows[found] = row
        found += 1
    return found


def _parse_row(text: str) -> list[float]:
    tokens = _split(text)
    if _is_keyword(tokens[0]):
        _reject_late_keyword(tokens[0])
    if len(tokens) != 3 or any("," in token for token in tokens):
        values = [_parse_number(token) for token in tokens]
        raise _LineProblem(f"a data row needs three numbers (r g b), found {len(values)}")
    return [_parse_number(token) for token in tokens]


def _reject_late_keyword(token: str) -> None:
    if token in _UNSUPPORTED_KEYWORDS:
        raise _LineProblem(
            f"{token} (a DaVinci Resolve video-range flag) is not supported; "
            "export the LUT from Resolve with full-range input and output"
        )
    if token in _KEYWORDS:
        raise _LineProblem(f"keyword {token} comes after the data rows; keywords must come first")
    raise _LineProblem(f"'{_show(token)}' is neither a number nor a keyword")


# --- the LUT --------------------------------------------------------------------------------


def _build_lut(path: Path, header: _Header, rows: np.ndarray) -> LUT:
    size_1d, size_3d = header.get("LUT_1D_SIZE"), header.get("LUT_3D_SIZE")
    shaper, table, table_domain = None, None, UNIT_DOMAIN
    if size_1d is not None:
        domain = _domain(path, header, "LUT_1D_INPUT_RANGE")
        shaper = Shaper(rows[:size_1d], domain)
    if size_3d is not None:
        cube_rows = rows[size_1d or 0 :]
        table = cube_rows.reshape(size_3d, size_3d, size_3d, 3)
        if size_1d is None:
            table_domain = _domain(path, header, "LUT_3D_INPUT_RANGE")
        else:
            table_domain = _range(header, "LUT_3D_INPUT_RANGE")
    return LUT(table, table_domain, shaper, title=header.title, comments=tuple(header.comments))


def _range(header: _Header, keyword: str) -> np.ndarray:
    value = header.get(keyword)
    return UNIT_DOMAIN.copy() if value is None else value


def _domain(path: Path, header: _Header, range_keyword: str) -> np.ndarray:
    """The domain given by DOMAIN_MIN/DOMAIN_MAX or by ``range_keyword`` (not both)."""
    domain_lines = [header.lines[k] for k in ("DOMAIN_MIN", "DOMAIN_MAX") if k in header.lines]
    if not domain_lines:
        return _range(header, range_keyword)
    if range_keyword in header.lines:
        line = max(header.lines[range_keyword], *domain_lines)
        raise CubeFormatError(
            path, f"the file gives the domain twice, by DOMAIN_MIN/DOMAIN_MAX and {range_keyword}", line
        )
    low = header.get("DOMAIN_MIN")
    high = header.get("DOMAIN_MAX")
    low = UNIT_DOMAIN[0] if low is None else low
    high = UNIT_DOMAIN[1] if high is None else high
    if not np.all(high > low):
        message = (
            f"DOMAIN_MAX ({' '.join(f'{v:g}' for v in high)}) must exceed "
            f"DOMAIN_MIN ({' '.join(f'{v:g}' for v in low)}) in every channel"
        )
        raise CubeFormatError(path, message, max(domain_lines))
    for channel, (a, b) in enumerate(zip(low.tolist(), high.tolist(), strict=True)):
        span = b - a
        if not (math.isfinite(span) and span >= SMALLEST_SPAN):
            message = (
                f"the domain from DOMAIN_MIN {a:g} to DOMAIN_MAX {b:g} in the {_CHANNELS[channel]} "
                f"channel {_span_problem(span)}"
            )
            raise CubeFormatError(path, message, max(domain_lines))
    return np.stack([low, high])
