"""Reading and writing ``.cube`` files, Adobe (Cube LUT 1.0) and DaVinci Resolve flavours.

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

Tolerated: ``TITLE`` with or without quotes, ``#`` comment lines and blank lines anywhere, CRLF or CR
line ends, a UTF-8 byte-order mark, tabs, exponent notation, values outside 0..1. Anything else that
is wrong raises :class:`~lutgen.errors.CubeFormatError` naming the file and the line.

Reading parses the numbers with vectorised numpy (exactly, to the same float64 as ``float()``) and
falls back to a line-by-line pass for unusual files and to find the line of an error.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lutgen.errors import CubeFormatError, LutgenError
from lutgen.fileio import atomic_path
from lutgen.lut import LUT, MAX_1D_SIZE, MAX_3D_SIZE, MIN_1D_SIZE, MIN_3D_SIZE, UNIT_DOMAIN, Shaper

STYLES = ("auto", "adobe", "resolve")
MAX_DECIMALS = 15

_BOM = b"\xef\xbb\xbf"
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?")
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


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


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
        LutgenError: the file is missing or cannot be read.
        CubeFormatError: the file is not a valid ``.cube`` file; the message names the line.
    """
    path = Path(path)
    data = _normalise(path, _read_bytes(path))
    header, data_start, data_line = _parse_header(path, data)
    expected, needs = _expected_rows(path, header, data_line if data_start is not None else None)
    block = data[data_start:] if data_start is not None else b""
    if b"#" in block:
        block = _blank_comment_lines(block, header.comments)
    rows = _fast_rows(block, expected)
    if rows is None:
        last_line = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        rows = _careful_rows(path, block, data_line, expected, needs, last_line)
    return _build_lut(path, header, rows)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise LutgenError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise LutgenError(f"cannot read {path}: it is a folder, not a .cube file") from None
    except OSError as error:
        raise LutgenError(f"cannot read {path}: {error.strerror or error}") from None


def _normalise(path: Path, data: bytes) -> bytes:
    """Drop a byte-order mark, turn CRLF and CR into LF, and refuse empty and binary files."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if not data or data.isspace():
        raise CubeFormatError(path, "the file is empty")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise CubeFormatError(path, "the file holds binary data (NUL bytes), so it is not a .cube file", line)
    return data


def _decode(line: bytes, lenient: bool = False) -> str:
    try:
        return line.decode("utf-8", errors="replace" if lenient else "strict")
    except UnicodeDecodeError as error:
        bad = line[error.start]
        raise _LineProblem(f"byte 0x{bad:02x} is not UTF-8 text, so this is not a .cube file") from None


def _is_keyword(token: str) -> bool:
    """Whether a line starting with ``token`` is a keyword line rather than a (maybe bad) data row."""
    return (token[0].isalpha() or token[0] == "_") and token.lower() not in _NON_FINITE_WORDS


def _parse_header(path: Path, data: bytes) -> tuple[_Header, int | None, int]:
    """Read keyword, comment and blank lines up to the first data row.

    Returns the header, the byte offset of the first data row (``None`` when there is none) and
    its line number (or the number of lines when there is none).
    """
    header = _Header()
    position, line_number = 0, 0
    while position < len(data):
        end = data.find(b"\n", position)
        end = len(data) if end < 0 else end
        line_number += 1
        raw = data[position:end].strip()
        try:
            if raw.startswith(b"#"):
                header.comments.append(_decode(raw[1:], lenient=True).strip())
            elif raw:
                if raw.startswith(b"TITLE"):
                    text = _decode(raw, lenient=True)
                else:
                    text = _decode(raw)
                keyword = text.split(None, 1)[0]
                if not _is_keyword(keyword):
                    return header, position, line_number
                _parse_keyword(header, text, keyword, line_number)
        except _LineProblem as problem:
            raise CubeFormatError(path, str(problem), line_number) from None
        position = end + 1
    return header, None, line_number


def _parse_keyword(header: _Header, text: str, keyword: str, line_number: int) -> None:
    if keyword in _UNSUPPORTED_KEYWORDS:
        raise _LineProblem(
            f"{keyword} (a DaVinci Resolve video-range flag) is not supported; "
            "export the LUT from Resolve with full-range input and output"
        )
    if keyword not in _KEYWORDS:
        raise _LineProblem(
            f"unknown keyword '{_shorten(keyword)}'; a .cube file knows {', '.join(_KEYWORDS)}"
        )
    if keyword in header.lines:
        raise _LineProblem(f"{keyword} appears twice (first on line {header.lines[keyword]})")
    header.lines[keyword] = line_number
    arguments = text[len(keyword) :].strip()
    if keyword == "TITLE":
        if arguments.startswith('"'):
            arguments = arguments[1:-1] if arguments.endswith('"') and len(arguments) > 1 else arguments[1:]
        header.title = arguments
    elif keyword in _SIZE_KEYWORDS:
        header.values[keyword] = _parse_size(keyword, arguments.split())
    elif keyword in ("DOMAIN_MIN", "DOMAIN_MAX"):
        header.values[keyword] = np.array(
            _parse_numbers(keyword, arguments.split(), 3, "three numbers (r g b)")
        )
    else:
        low, high = _parse_numbers(keyword, arguments.split(), 2, "two numbers (min max)")
        if not high > low:
            raise _LineProblem(f"{keyword} needs its maximum above its minimum, got {low:g} {high:g}")
        header.values[keyword] = np.array([[low] * 3, [high] * 3])


def _parse_size(keyword: str, tokens: list[str]) -> int:
    low, high = _SIZE_KEYWORDS[keyword]
    if len(tokens) != 1 or not tokens[0].isdigit():
        shown = " ".join(tokens) or "nothing"
        raise _LineProblem(f"{keyword} needs one whole number, got '{_shorten(shown)}'")
    size = int(tokens[0])
    if not low <= size <= high:
        raise _LineProblem(f"{keyword} {size} is outside the allowed {low}..{high}")
    return size


def _parse_numbers(what: str, tokens: list[str], count: int, description: str) -> list[float]:
    if len(tokens) != count or any("," in token for token in tokens):
        numbers = [_parse_number(token) for token in tokens]  # reports a decimal comma or a non-number
        raise _LineProblem(f"{what} needs {description}, found {len(numbers)}")
    return [_parse_number(token) for token in tokens]


def _parse_number(token: str) -> float:
    if _NUMBER.fullmatch(token):
        value = float(token)
        if not math.isfinite(value):
            raise _LineProblem(f"'{_shorten(token)}' is too large to be a finite number")
        return value
    if token.lower().lstrip("+-") in _NON_FINITE_WORDS:
        raise _LineProblem(f"'{token}' is not a finite number; a .cube file holds finite numbers only")
    if "," in token:
        if _DECIMAL_COMMA.fullmatch(token) or all(_NUMBER.fullmatch(part) for part in token.split(",")):
            raise _LineProblem(
                f"'{_shorten(token)}' uses a comma; write numbers with a decimal point, separated by spaces"
            )
    raise _LineProblem(f"'{_shorten(token)}' is not a number")


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def _blank_comment_lines(block: bytes, comments: list[str]) -> bytes:
    """Collect the comment lines of the data part and replace them with empty lines."""
    lines = block.split(b"\n")
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(b"#"):
            comments.append(_decode(stripped[1:], lenient=True).strip())
            lines[index] = b""
    return b"\n".join(lines)


def _careful_rows(
    path: Path, block: bytes, first_line: int, expected: int, needs: str, last_line: int
) -> np.ndarray:
    """Parse the data rows one line at a time, raising the exact error with its line number."""
    rows: list[list[float]] = []
    found, first_extra = 0, None
    for offset, raw in enumerate(block.split(b"\n")):
        line_number = first_line + offset
        try:
            text = _decode(raw).strip()
            if not text:
                continue
            tokens = text.split()
            if _is_keyword(tokens[0]):
                _reject_late_keyword(tokens[0])
            if len(tokens) != 3 or any("," in token for token in tokens):
                values = [_parse_number(token) for token in tokens]
                raise _LineProblem(f"a data row needs three numbers (r g b), found {len(values)}")
            row = [_parse_number(token) for token in tokens]
        except _LineProblem as problem:
            raise CubeFormatError(path, str(problem), line_number) from None
        found += 1
        if found <= expected:
            rows.append(row)
        elif first_extra is None:
            first_extra = line_number
    if found > expected:
        message = f"{needs} {expected} data rows but the file has {found}; this is the first extra row"
        raise CubeFormatError(path, message, first_extra)
    if found < expected:
        message = f"{needs} {expected} data rows but the file ends after {found}"
        raise CubeFormatError(path, message, last_line)
    return np.array(rows, dtype=np.float64).reshape(expected, 3)


def _reject_late_keyword(token: str) -> None:
    if token in _UNSUPPORTED_KEYWORDS:
        raise _LineProblem(
            f"{token} (a DaVinci Resolve video-range flag) is not supported; "
            "export the LUT from Resolve with full-range input and output"
        )
    if token in _KEYWORDS:
        raise _LineProblem(f"keyword {token} comes after the data rows; keywords must come first")
    raise _LineProblem(f"'{_shorten(token)}' is neither a number nor a keyword")


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
    return np.stack([low, high])


# --- the fast path ---------------------------------------------------------------------------

_ALLOWED_BYTES = np.zeros(256, dtype=bool)
_ALLOWED_BYTES[list(b"0123456789.+-eE \t\n")] = True
_MANY_SPECIAL = 4096  # more tokens than this with an exponent or 16+ digits: numpy's text parser
_MAX_EXACT_DIGITS = 15  # an integer of 15 digits is below 2**53, so it and its quotient by 10**k are exact
_DIGIT, _DOT, _PLUS, _MINUS, _LOWER_E, _UPPER_E, _NEWLINE = 48, 46, 43, 45, 101, 69, 10


def _fast_rows(block: bytes, expected: int) -> np.ndarray | None:
    """Parse ``expected`` rows of three numbers with vectorised numpy, or return ``None``.

    ``None`` means the block is not plainly valid (a stray character, a line without exactly three
    numbers, a wrong row count, a malformed or non-finite number); the careful pass then finds the
    error. Numbers of up to 15 digits without an exponent are assembled as integers and divided by
    a power of ten, which is exact (the same float64 as ``float()``); the others go through ``float()``
    one by one, or through numpy's text parser (also exact) when there are many of them.
    """
    codes = np.frombuffer(block, dtype=np.uint8)
    if codes.size == 0:
        return None
    counts = np.bincount(codes, minlength=256)
    if counts[~_ALLOWED_BYTES].any():
        return None
    solid = np.zeros(codes.size + 2, dtype=np.int8)
    solid[1:-1] = codes > 32  # only tab, newline and space lie at or below 32 here
    edges = solid[1:] - solid[:-1]
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if starts.size != 3 * expected:
        return None
    line_ends = np.append(np.flatnonzero(codes == _NEWLINE), codes.size)
    per_line = np.diff(np.searchsorted(starts, line_ends), prepend=0)
    if not np.all((per_line == 0) | (per_line == 3)):
        return None
    tokens = _TokenLayout.of(codes, counts, starts, ends)
    if tokens is None:
        return None
    special = np.flatnonzero(tokens.special)
    if special.size > _MANY_SPECIAL:
        values = _numpy_text_parse(block, starts.size)
        if values is None:
            return None
    else:
        values = np.empty(starts.size, dtype=np.float64)
        plain = ~tokens.special
        values[plain] = _assemble(codes, tokens.dot[plain], tokens.n_int[plain], tokens.n_frac[plain])
        np.negative(values, out=values, where=tokens.negative & plain)
        for index in special:
            try:
                values[index] = float(block[starts[index] : ends[index]])
            except ValueError:
                return None
    if not np.all(np.isfinite(values)):
        return None
    return values.reshape(expected, 3)


def _numpy_text_parse(block: bytes, count: int) -> np.ndarray | None:
    """All numbers of ``block`` by numpy's text parser (the same values as ``float()``), or ``None``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns, or raises, when a token is not a number
        try:
            values = np.fromstring(block, dtype=np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
    return values if values.size == count else None


@dataclass
class _TokenLayout:
    """Where the sign, dot and digits of every token lie; ``special`` tokens go through ``float()``."""

    dot: np.ndarray  # position of the dot, or of the token's end when it has none
    n_int: np.ndarray  # digits before the dot
    n_frac: np.ndarray  # digits after the dot
    negative: np.ndarray
    special: np.ndarray  # exponent or too many digits

    @classmethod
    def of(cls, codes, counts, starts, ends) -> _TokenLayout | None:
        count = starts.size
        special = np.zeros(count, dtype=bool)
        if counts[_LOWER_E] or counts[_UPPER_E]:
            exponent_at = np.flatnonzero((codes == _LOWER_E) | (codes == _UPPER_E))
            special[np.searchsorted(starts, exponent_at, "right") - 1] = True

        dot_at = np.flatnonzero(codes == _DOT)
        if dot_at.size == count and np.all((starts <= dot_at) & (dot_at < ends)):
            has_dot, dot = np.ones(count, dtype=bool), dot_at  # the usual case: one dot in every token
        else:
            dot_token = np.searchsorted(starts, dot_at, "right") - 1
            repeated = dot_token[1:][np.diff(dot_token) == 0]
            if not np.all(special[repeated]):
                return None  # "1.2.3"
            has_dot = np.zeros(count, dtype=bool)
            has_dot[dot_token] = True
            dot = ends.copy()
            dot[dot_token] = dot_at

        first = codes[starts]
        negative = first == _MINUS
        has_sign = negative | (first == _PLUS)
        if counts[_PLUS] + counts[_MINUS] != np.count_nonzero(has_sign):
            # Some sign is not a token's first character: only right after an exponent's e may it be.
            sign_at = np.flatnonzero((codes == _PLUS) | (codes == _MINUS))
            inner = sign_at[(sign_at > 0) & (codes[sign_at - 1] > 32)]
            if inner.size and not np.all((codes[inner - 1] == _LOWER_E) | (codes[inner - 1] == _UPPER_E)):
                return None  # "1-2", "--1"

        n_int = dot - starts - has_sign
        n_frac = ends - dot - has_dot
        if np.any((n_int + n_frac < 1) & ~special):
            return None  # "-", ".", "-."
        special |= n_int + n_frac > _MAX_EXACT_DIGITS
        widest_frac = n_frac[~special].max(initial=0)
        special |= n_int + widest_frac > _MAX_EXACT_DIGITS
        return cls(dot, n_int, n_frac, negative, special)


def _assemble(codes: np.ndarray, dot: np.ndarray, n_int: np.ndarray, n_frac: np.ndarray) -> np.ndarray:
    """The unsigned values of plain tokens: all digits as one integer over 10**(widest fraction).

    Every digit is gathered by its offset from the token's dot, so each offset has a fixed power of
    ten. The integers stay below 2**53, so the conversion to float64 and the division are exact.
    """
    if dot.size == 0:
        return np.empty(0)
    int_width, frac_width = int(n_int.max()), int(n_frac.max())
    pad_left, pad_right = np.full(int_width, _DIGIT, np.uint8), np.full(frac_width + 1, _DIGIT, np.uint8)
    padded = np.concatenate([pad_left, codes, pad_right])
    mantissa = np.zeros(dot.size, dtype=np.int64)
    offsets = [*range(-int_width, 0), *range(1, frac_width + 1)]
    for offset in offsets:
        digit = np.take(padded[int_width + offset :], dot)
        # Offsets beyond a shorter token reach its neighbours' characters: read them as 0.
        if offset < 0 and -offset > n_int.min():
            digit = np.where(n_int >= -offset, digit, np.uint8(_DIGIT))
        elif offset > 0 and offset > n_frac.min():
            digit = np.where(n_frac >= offset, digit, np.uint8(_DIGIT))
        mantissa *= 10
        mantissa += digit
    mantissa -= _DIGIT * int("1" * len(offsets))
    return mantissa.astype(np.float64) / 10.0**frac_width


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


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
