"""Sony Pictures Imageworks ``.spi3d`` and ``.spi1d`` files, read and written as OpenColorIO reads them.

``.spi3d`` (``SPILUT 1.0``, a line ``3 3``, a line ``N N N``, then rows ``i j k r g b``): a 3D table
over 0..1 whose rows name their red, green and blue node indices ``i j k``, so rows may come in any
order; every node must be given exactly once. Written blue fastest, as OpenColorIO bakes it.

``.spi1d`` (``Version 1``, ``From a b``, ``Length n``, ``Components 1|2|3``, then ``{``, ``n`` rows,
``}``): a per-channel 1D table over ``a..b`` (inputs clamped to it), held as a 1D-only
:class:`~lutgen.lut.LUT` (a :class:`~lutgen.lut.Shaper`, ``table=None``). One component is the same
curve on all three channels; two components are red and green with blue output 0 (as OpenColorIO).

Neither format holds a shaper with a 3D table, nor a 3D domain other than 0..1: writing such a LUT
to ``.spi3d`` samples the whole LUT at the nodes of a plain ``N``^3 lattice over 0..1 (a
:class:`~lutgen.errors.LutgenWarning` says so). Values are written with ``decimals`` digits after the
point (6 by default: every value reads back within 5e-7).

The line reading and number parsing here (:func:`read_lines`, :func:`parse_rows`) are shared with
the ``.csp`` module: files are read in bounded memory (a size check from the header before the
data is read) and every error is one sentence naming the file and the line.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lutgen.errors import LutgenError, LutgenWarning
from lutgen.fileio import atomic_path
from lutgen.formats.cube_lines import megabytes, open_regular_file
from lutgen.formats.cube_numbers import fast_rows
from lutgen.formats.cube_write import format_rows
from lutgen.lut import LUT, MAX_1D_SIZE, MIN_1D_SIZE, MIN_3D_SIZE, Shaper, grid

MAX_3D_SIZE = 129
"""The largest ``.spi3d``/``.csp`` lattice read: OpenColorIO's own limit (``Max3DLUTLength``)."""
HEAD_BYTES = 8 * 2**20
"""The header of a file must lie within its first bytes (a ``.csp`` pre-LUT line of 65536 values fits)."""
CAPABILITIES = {"shaper": False}
"""A shaper and a 3D table cannot both be held: the writer samples the whole LUT on one lattice."""
ROW_BYTES = 256
"""Room per data row when judging a file's size."""
SLACK_BYTES = 16 * 2**20
"""Room beyond the data rows (header, comments, blank lines)."""
CHUNK_ROWS = 65536
"""Rows parsed at a time, so that parsing takes a few MB beyond the lines and the table."""
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_INDEX = re.compile(r"[+-]?[0-9]+\Z")


def most_bytes(rows: int) -> int:
    """The largest file allowed for ``rows`` data rows."""
    return SLACK_BYTES + ROW_BYTES * rows


def file_error(path: Path, message: str, line: int | None = None) -> LutgenError:
    """The one-sentence error for a bad file: ``"<path>, line <n>: <message>"``."""
    where = f"{path}, line {line}" if line is not None else str(path)
    return LutgenError(f"{where}: {message}")


# --- reading -------------------------------------------------------------------------------------


def read_lines(path: Path, what: str, limit: Callable[[list[str]], int]) -> list[str]:
    """The lines of a text file (LF, CRLF or CR ends; a UTF-8 byte-order mark dropped), in bounded memory.

    ``limit(head_lines)`` gets the lines of the first :data:`HEAD_BYTES` (the last may be cut) and
    returns the most bytes the file may have, judged from its header; a larger file is refused
    before the rest is read.
    """
    stream, size = open_regular_file(path, what)
    with stream:
        head = _read(path, stream, HEAD_BYTES)
        head_lines = _decode(path, head).splitlines()
        if len(head) == HEAD_BYTES:
            head_lines = head_lines[:-1]  # the last line may be cut
        most = limit(head_lines)
        if size > most:
            raise file_error(path, f"the file has {megabytes(size)}, more than the {megabytes(most)} "
                             f"its header allows for a {what}")
        rest = _read(path, stream, most + 1 - len(head)) if len(head) == HEAD_BYTES else b""
    if len(head) + len(rest) > most:
        raise file_error(path, f"the file grew beyond {megabytes(most)} while being read")
    return _decode(path, head + rest).splitlines()


def _read(path: Path, stream, count: int) -> bytes:
    try:
        return stream.read(max(count, 0))
    except OSError as error:
        raise LutgenError(f"cannot read {path}: {error.strerror or error}") from None


def _decode(path: Path, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        raise file_error(path, "the file is binary or UTF-16 data, not a text LUT file")
    data = data.removeprefix(b"\xef\xbb\xbf")
    text = data.decode("utf-8", errors="replace")
    return text


def parse_number(path: Path, token: str, line: int, what: str = "a number") -> float:
    """``token`` as a finite float, or one sentence naming the line."""
    if not _NUMBER.match(token):
        raise file_error(path, f"'{token[:40]}' is not {what}", line)
    value = float(token)
    if not np.isfinite(value):
        raise file_error(path, f"'{token[:40]}' is not a finite number", line)
    return value


def parse_int(path: Path, token: str, line: int, what: str) -> int:
    """``token`` as a whole number, or one sentence naming the line."""
    if not _INDEX.match(token):
        raise file_error(path, f"'{token[:40]}' is not a whole number ({what})", line)
    return int(token)


def parse_rows(path: Path, lines: list[str], numbers: list[int], columns: int, what: str) -> np.ndarray:
    """The rows ``lines`` (stripped; line numbers ``numbers``) of ``columns`` numbers each, ``(R, columns)`` float64.

    Vectorised over the bytes (a few bytes of memory per byte of text); a row that is not plainly
    valid sends the whole block through a line-by-line pass that names it.
    """
    chunks = [_fast_rows(lines[i : i + CHUNK_ROWS], columns) for i in range(0, len(lines), CHUNK_ROWS)]
    values = None if any(c is None for c in chunks) else np.concatenate(chunks or [np.empty((0, columns))])
    if values is None:
        for text, number in zip(lines, numbers):
            parts = text.split()
            if len(parts) != columns:
                raise file_error(path, f"{what} has {columns} numbers, this line has {len(parts)}", number)
            for token in parts:
                parse_number(path, token, number)
        raise file_error(path, f"the {what}s cannot be read")  # not reached: some line is wrong
    return values


_PLAIN = np.zeros(256, dtype=bool)
_PLAIN[np.frombuffer(b"0123456789+-.eE \t\n", dtype=np.uint8)] = True


def _fast_rows(lines: list[str], columns: int) -> np.ndarray | None:
    """The rows as numbers when every byte is plain (digits, signs, points, exponents, blanks) and every
    line holds ``columns`` tokens that all parse as finite numbers; else ``None``."""
    text = "\n".join(lines)
    if columns == 3:
        return fast_rows(text.encode("utf-8"))  # the .cube parser: exact like float(), and fast
    data = np.frombuffer(bytearray(text.encode("utf-8")), dtype=np.uint8)
    if not _PLAIN[data].all():
        return None
    in_token = (data != 32) & (data != 9) & (data != 10)
    starts = in_token.copy()
    starts[1:] &= ~in_token[:-1]
    line_ends = np.append(np.flatnonzero(data == 10), data.size)
    per_line = np.diff(np.searchsorted(np.flatnonzero(starts), line_ends), prepend=0)
    if per_line.size != len(lines) or np.any(per_line != columns):
        return None
    if columns % 3 == 0:  # every third token starts a line of its own: the .cube parser's rows
        data[np.flatnonzero(starts)[3::3] - 1] = 10
        rows = fast_rows(data.tobytes())
        return None if rows is None else rows.reshape(len(lines), columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warns where it stops early; the count below catches it
        values = np.fromstring(text, dtype=np.float64, sep=" ")
    # Each plain token gives at least one value, so as many values as tokens means one each.
    # (numpy's parser reads decimal text to the nearest float64, as float() does.)
    if values.size != columns * len(lines) or not np.all(np.isfinite(values)):
        return None
    return values.reshape(len(lines), columns)


def data_lines(lines: list[str], start: int, comment: str | None = None) -> tuple[list[str], list[int]]:
    """The non-blank lines from index ``start`` on (without those starting with ``comment``), stripped,
    with their 1-based line numbers."""
    stripped = [line.strip() for line in lines[start:]]
    numbers = [i for i, text in enumerate(stripped, start + 1) if text and not (comment and text[0] == comment)]
    return [stripped[i - start - 1] for i in numbers], numbers


# --- .spi3d --------------------------------------------------------------------------------------


def read(path: Path) -> LUT:
    """The LUT of a ``.spi3d`` or ``.spi1d`` file (by its extension)."""
    path = Path(path)
    return read_spi1d(path) if path.suffix.lower() == ".spi1d" else read_spi3d(path)


def write(lut: LUT, path: Path, *, decimals: int = 6, size: int | None = None) -> None:
    """Write ``lut`` as ``.spi3d`` or ``.spi1d`` (by the extension); see :func:`write_spi3d`."""
    path = Path(path)
    if path.suffix.lower() == ".spi1d":
        write_spi1d(lut, path, decimals=decimals)
    else:
        write_spi3d(lut, path, decimals=decimals, size=size)


def read_spi3d(path: Path) -> LUT:
    """A ``.spi3d`` file as a LUT over 0..1; rows ``i j k r g b`` fill node ``table[k, j, i]``."""
    lines = read_lines(path, ".spi3d file", lambda head: most_bytes(_spi3d_size(path, head) ** 3))
    n = _spi3d_size(path, lines)
    rows, numbers = data_lines(lines, 3, comment="#")
    if len(rows) != n**3:
        line = numbers[n**3] if len(rows) > n**3 else (numbers[-1] if numbers else 3)
        state = "more" if len(rows) > n**3 else "only"
        raise file_error(path, f"a {n}x{n}x{n} table has {n**3} rows but the file has {state} {len(rows)}", line)
    values = parse_rows(path, rows, numbers, 6, "a row (i j k r g b)")
    index = values[:, :3]
    whole = np.rint(index)
    bad = np.flatnonzero(np.any((whole != index) | (whole < 0) | (whole >= n), axis=1))
    if bad.size:
        i = int(bad[0])
        raise file_error(path, f"the node indices must be whole numbers from 0 to {n - 1}", numbers[i])
    i, j, k = (whole[:, c].astype(np.int64) for c in range(3))
    flat = (k * n + j) * n + i  # table[b, g, r] in C order
    seen = np.zeros(n**3, dtype=np.int64)
    np.add.at(seen, flat, 1)
    if np.any(seen != 1):
        node = int(np.flatnonzero(seen > 1)[0])
        twice = np.flatnonzero(flat == node)[1]
        r, g, b = node % n, node // n % n, node // (n * n)
        raise file_error(path, f"the node {r} {g} {b} is given twice", numbers[int(twice)])
    table = np.empty((n**3, 3))
    table[flat] = values[:, 3:]
    return LUT(table.reshape(n, n, n, 3))


def _spi3d_size(path: Path, lines: list[str]) -> int:
    """The lattice size from the header lines ``SPILUT 1.0``, ``3 3``, ``N N N``."""
    if not lines or not lines[0].strip().lower().startswith("spilut"):
        raise file_error(path, "a .spi3d file starts with 'SPILUT 1.0'", 1)
    if len(lines) < 3:
        raise file_error(path, "the file ends before the lattice size line 'N N N'", len(lines))
    parts = lines[2].split()
    if len(parts) != 3:
        raise file_error(path, "the lattice size line holds three sizes 'N N N'", 3)
    sizes = [parse_int(path, p, 3, "a lattice size") for p in parts]
    if len(set(sizes)) != 1:
        raise file_error(path, f"the lattice sizes {' '.join(parts)} differ; lutgen reads N N N", 3)
    if not MIN_3D_SIZE <= sizes[0] <= MAX_3D_SIZE:
        raise file_error(path, f"the lattice size must be from {MIN_3D_SIZE} to {MAX_3D_SIZE}, not {sizes[0]}", 3)
    return sizes[0]


def plain_table(lut: LUT, path: Path, size: int | None, what: str) -> LUT:
    """``lut`` as a plain 3D table over 0..1 (no shaper), sampled when it is not one already, with a warning."""
    if lut.table is None:
        raise LutgenError(f"cannot write {path}: a {what} file holds a 3D table, and this LUT is 1D only")
    unit = np.allclose(lut.domain, [[0, 0, 0], [1, 1, 1]], rtol=0, atol=0)
    n = size or lut.size
    if lut.shaper is None and unit and n == lut.size:
        return lut
    from lutgen.color.cpu import apply_lut_array

    sampled = apply_lut_array(grid(n), lut)
    if lut.shaper is not None or not unit:
        reason = "a shaper" if lut.shaper is not None else "a domain other than 0..1"
        warnings.warn(
            f"{path}: a {what} file cannot hold {reason}; the LUT was sampled on a plain {n}x{n}x{n} lattice",
            LutgenWarning,
            stacklevel=3,
        )
    return LUT(sampled, title=lut.title, comments=lut.comments)


def write_spi3d(lut: LUT, path: Path, *, decimals: int = 6, size: int | None = None) -> None:
    """Write a 3D LUT as ``.spi3d`` (blue fastest, indices on every row), atomically.

    A shaper or a domain other than 0..1 cannot be held: the whole LUT is sampled at the nodes of a
    plain lattice of ``size`` (default: the LUT's own) and a :class:`~lutgen.errors.LutgenWarning`
    says so. ``decimals`` digits after the point (6: within 5e-7).
    """
    path = Path(path)
    plain = plain_table(lut, path, size, ".spi3d")
    n = plain.size
    values = check_finite(plain.table.transpose(2, 1, 0, 3).reshape(-1, 3), path)  # red slowest, blue fastest
    r, g, b = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    index = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)
    prefix = [f"{i} {j} {k} " for i, j, k in index.tolist()]
    rows = format_rows(values, check_decimals(decimals)).decode("ascii").split("\n")[:-1]
    body = "\n".join(p + row for p, row in zip(prefix, rows))
    write_text(path, f"SPILUT 1.0\n3 3\n{n} {n} {n}\n{body}\n")


# --- .spi1d --------------------------------------------------------------------------------------


def read_spi1d(path: Path) -> LUT:
    """A ``.spi1d`` file as a 1D-only LUT: a :class:`~lutgen.lut.Shaper` over ``From a b``."""
    lines = read_lines(path, ".spi1d file", lambda head: most_bytes(_spi1d_header(path, head)[0]["Length"]))
    header, brace = _spi1d_header(path, lines)
    length, components = header["Length"], header["Components"]
    rows, numbers = [], []
    close = None
    for index in range(brace + 1, len(lines)):
        text = lines[index].strip()
        if text == "}":
            close = index
            break
        if text:
            rows.append(text)
            numbers.append(index + 1)
    if close is None:
        raise file_error(path, "the table is not closed by '}'", len(lines))
    if len(rows) != length:
        line = numbers[length] if len(rows) > length else close + 1
        raise file_error(path, f"'Length {length}' calls for {length} rows but the table has {len(rows)}", line)
    values = parse_rows(path, rows, numbers, components, f"a row of 'Components {components}'")
    if components == 1:
        values = np.repeat(values, 3, axis=1)
    elif components == 2:
        values = np.concatenate([values, np.zeros((length, 1))], axis=1)
    low, high = header["From"]
    return LUT(None, shaper=Shaper(values, [[low] * 3, [high] * 3]))


def _spi1d_header(path: Path, lines: list[str]) -> tuple[dict, int]:
    """The ``Version``, ``From``, ``Length`` and ``Components`` fields and the index of the ``{`` line."""
    header: dict = {"From": (0.0, 1.0)}
    for index, raw in enumerate(lines):
        text, number = raw.strip(), index + 1
        if text.startswith("{"):
            for key in ("Version", "Length", "Components"):
                if key not in header:
                    raise file_error(path, f"the header has no '{key}' line before '{{'", number)
            return header, index
        parts = text.split()
        if not parts:
            continue
        key = next((k for k in ("Version", "From", "Length", "Components") if parts[0].startswith(k)), None)
        if key is None:
            raise file_error(path, f"'{text[:40]}' is not a .spi1d header line (Version, From, Length, Components)",
                             number)
        words = [parts[0][len(key):]] + parts[1:] if parts[0] != key else parts[1:]
        words = [w for w in words if w]
        header[key] = _spi1d_field(path, key, words, number)
    raise file_error(path, "the file has no '{' line starting the table", max(len(lines), 1))


def _spi1d_field(path: Path, key: str, words: list[str], number: int):
    expected = 2 if key == "From" else 1
    if len(words) != expected:
        raise file_error(path, f"'{key}' takes {expected} value{'s' if expected > 1 else ''}", number)
    if key == "From":
        low, high = (parse_number(path, w, number) for w in words)
        if not high > low:
            raise file_error(path, f"'From {low:g} {high:g}': the maximum must exceed the minimum", number)
        return low, high
    value = parse_int(path, words[0], number, key)
    allowed = {"Version": (1, 1), "Length": (MIN_1D_SIZE, MAX_1D_SIZE), "Components": (1, 3)}[key]
    if not allowed[0] <= value <= allowed[1]:
        span = "1" if allowed[0] == allowed[1] else f"from {allowed[0]} to {allowed[1]}"
        raise file_error(path, f"'{key}' must be {span}, not {value}", number)
    return value


def write_spi1d(lut: LUT, path: Path, *, decimals: int = 6) -> None:
    """Write a 1D-only LUT as ``.spi1d`` (``Components 1`` when the three curves are equal, else 3).

    The shaper's domain must be the same for all channels (``From a b`` is one pair).
    """
    path = Path(path)
    if lut.table is not None:
        raise LutgenError(f"cannot write {path}: a .spi1d file holds 1D curves only, and this LUT has a 3D table")
    shaper = lut.shaper
    if not np.all(shaper.domain == shaper.domain[:, :1]):
        raise LutgenError(f"cannot write {path}: a .spi1d file has one input range for all channels, "
                          f"and this LUT's ranges differ per channel")
    table = check_finite(shaper.table, path)
    same = np.all(table == table[:, :1])
    body = format_rows(table, check_decimals(decimals)).decode("ascii")
    if same:
        body = "\n".join(row.split(" ")[0] for row in body.split("\n")[:-1]) + "\n"
    low, high = shaper.domain[0, 0], shaper.domain[1, 0]
    header = f"Version 1\nFrom {float(low)!r} {float(high)!r}\nLength {shaper.size}\nComponents {1 if same else 3}\n{{\n"
    write_text(path, header + body + "}\n")


# --- writing helpers -----------------------------------------------------------------------------


def check_decimals(decimals) -> int:
    """``decimals`` if it is a whole number from 1 to 15."""
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 1 <= decimals <= 15:
        raise LutgenError(f"decimals must be a whole number from 1 to 15, not {decimals!r}")
    return decimals


def check_finite(values: np.ndarray, path: Path) -> np.ndarray:
    """``values`` if all are finite, else one sentence."""
    if not np.all(np.isfinite(values)):
        raise LutgenError(f"cannot write {path}: the LUT holds values that are not finite numbers")
    return values


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    try:
        with atomic_path(path) as temporary:
            temporary.write_bytes(text.encode("utf-8"))
    except OSError as error:
        raise LutgenError(f"cannot write {path}: {error.strerror or error}") from None
