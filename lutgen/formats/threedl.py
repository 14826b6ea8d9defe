"""The ``.3dl`` format (Autodesk Lustre/Flame and Nuke): integer codes, blue varying fastest.

What a file means, as OpenColorIO's 3dl reader interprets it (``FileFormat3DL.cpp``):

- Blank lines, ``#`` comments and lines that start with a word (``3DMESH``, ``Mesh 4 12``, ``LUT8``,
  ``gamma 1.0``) are skipped. A line starting with ``<`` (XML) is an error, and so is a line that
  starts with a number but holds something other than integers (OpenColorIO skips it silently).
- The one line of more than three integers is the mesh line (the input positions). Its bit depth
  is inferred from its largest value (below); when every value is within 2 codes of the evenly
  spaced ramp ``i * max / (M - 1)`` it is an identity and ignored, otherwise it is a 1D shaper
  applied before the 3D table, with outputs ``value / max``.
- Every line of exactly three integers is a data row (whatever precedes it: the ``17 17 17`` line
  some Lustre files carry counts as a row too). ``N**3`` rows make an ``N^3`` table over the unit
  input domain, in the order red slowest, then green, blue fastest (the reverse of ``.cube``).
- The output scale is inferred from the largest value in the rows, allowing a 2x overshoot:
  up to 511 is 8-bit (/255), up to 2047 10-bit (/1023), up to 8191 12-bit (/4095), anything larger
  16-bit (/65535). A largest value below 128 is refused: such a file holds no integer codes.

Writing: ``flavour="lustre"`` (the default) writes ``3DMESH``, ``Mesh <log2(N-1)> <bits>``, a 10-bit
mesh line and ``LUT8``/``gamma 1.0`` after the rows, as Lustre does; ``flavour="nuke"`` writes the mesh
line at the output bit depth and nothing else, as Nuke does. Outputs are codes of ``bit_depth``
bits (10, 12 or 16; default 12), rounded half up, clipped to 0..1 (a ``.3dl`` file holds no others),
so the precision is half a code, ``0.5 / (2**bits - 1)``. A LUT with a shaper, a domain other than
the unit cube, or no 3D table is sampled on a plain lattice first.

Limits, so that any file is read in bounded memory and time: only regular files are opened, at most
:data:`MAX_FILE_BYTES`; lines are at most :data:`MAX_LINE_BYTES`; integers have at most 9 digits;
the table at most ``256^3`` rows. The file is read and parsed :data:`CHUNK_BYTES` at a time.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lutgen.errors import CubeFormatError, LutgenError, LutgenWarning, OptionError
from lutgen.fileio import atomic_write_bytes
from lutgen.formats.cube_lines import megabytes, open_regular_file
from lutgen.lut import LUT, MAX_1D_SIZE, MAX_3D_SIZE, MIN_3D_SIZE, Shaper

FLAVOURS = ("lustre", "nuke")
BIT_DEPTHS = (10, 12, 16)
DEFAULT_FLAVOUR, DEFAULT_BIT_DEPTH = "lustre", 12
CAPABILITIES = {"shaper": False}
"""A shaper and a 3D table cannot both be held: the writer samples the whole LUT on one lattice."""
DEFAULT_1D_SIZE = 33
"""The lattice a 1D-only LUT is sampled on when written (OpenColorIO's Lustre default)."""
MESH_BITS = 10
"""The bit depth of the mesh line of a Lustre file (as Lustre and OpenColorIO write it)."""

LOWEST_PLAUSIBLE_MAX = 128
"""A file whose largest code is below this holds no integer codes (OpenColorIO's threshold)."""
IDENTITY_TOLERANCE = 2.0
"""How far (in codes) a mesh line may stray from an even ramp and still be an identity."""

CHUNK_BYTES = 1 << 20
MAX_LINE_BYTES = 1 << 20
"""The longest line: a mesh line of tens of thousands of values fits, a binary file does not."""
ROW_BYTES = 64
SLACK_BYTES = 16 * 2**20
MAX_ROWS = MAX_3D_SIZE**3
MAX_FILE_BYTES = SLACK_BYTES + ROW_BYTES * MAX_ROWS
_MAX_DIGITS = 9

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(rf"[+-]?[0-9]{{1,{_MAX_DIGITS}}}")
# --- reading --------------------------------------------------------------------------------


class _Parsed:
    """What the lines of a file hold: the rows (growing ``(R, 3)`` int64), the mesh line, comments."""

    def __init__(self) -> None:
        self.rows = np.empty((4096, 3), dtype=np.int64)
        self.count = 0
        self.mesh: np.ndarray | None = None
        self.mesh_line = 0
        self.comments: list[str] = []
        self.last_line = 0

    def add(self, path: Path, rows: np.ndarray, line: int) -> None:
        """Append ``rows`` ``(k, 3)``; ``line`` is where the block ends (for the too-many-rows error)."""
        end = self.count + len(rows)
        if end > MAX_ROWS:
            raise CubeFormatError(path, f"the file has more than {MAX_ROWS} data rows ({MAX_3D_SIZE}^3)", line)
        if end > len(self.rows):
            grown = np.empty((max(end, 2 * len(self.rows)), 3), dtype=np.int64)
            grown[: self.count] = self.rows[: self.count]
            self.rows = grown
        self.rows[self.count : end] = rows
        self.count = end


def read(path: Path) -> LUT:
    """The LUT of a ``.3dl`` file (either flavour), as OpenColorIO reads it (see the module docstring).

    Raises:
        LutgenError: the file is missing, not a regular file, or cannot be read.
        CubeFormatError: the file is not a valid ``.3dl`` file; the message names the file and line.
    """
    path = Path(path)
    stream, size = open_regular_file(path, ".3dl file")
    if size > MAX_FILE_BYTES:
        message = f"the file has {megabytes(size)}, more than the {megabytes(MAX_FILE_BYTES)} a .3dl file may take"
        stream.close()
        raise CubeFormatError(path, message)
    parsed = _Parsed()
    with stream:
        for first_line, block in _blocks(path, stream):
            _parse_block(path, parsed, first_line, block)
    return _build_lut(path, parsed)


def _blocks(path: Path, stream) -> Iterator[tuple[int, bytes]]:
    """``(first line number, block of whole lines with LF ends)`` of the file, :data:`CHUNK_BYTES` at a time."""
    carry, line, total = b"", 1, 0
    while True:
        try:
            chunk = stream.read(CHUNK_BYTES)
        except OSError as error:
            raise LutgenError(f"cannot read {path}: {error.strerror or error}") from None
        total += len(chunk)
        if total > MAX_FILE_BYTES:
            raise CubeFormatError(path, f"the file grew beyond {megabytes(MAX_FILE_BYTES)} while being read")
        data = carry + chunk
        if chunk and data.endswith(b"\r"):
            data, carry = data[:-1], b"\r"  # perhaps the first half of a CRLF
        else:
            carry = b""
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        cut = len(data) if not chunk else data.rfind(b"\n") + 1
        block, rest = data[:cut], data[cut:]
        carry = rest + carry
        if len(carry) > MAX_LINE_BYTES:
            message = f"the line is longer than {MAX_LINE_BYTES} bytes, which no .3dl line needs"
            raise CubeFormatError(path, message, line + block.count(b"\n"))
        if block:
            if b"\x00" in block:
                at = line + block.count(b"\n", 0, block.find(b"\x00"))
                raise CubeFormatError(path, "the file holds binary data (NUL bytes), so it is not a .3dl file", at)
            yield line, block
            line += block.count(b"\n")
        if not chunk:
            return


def _parse_block(path: Path, parsed: _Parsed, first_line: int, block: bytes) -> None:
    """Add the rows, mesh line and comments of ``block`` (whole lines starting at ``first_line``).

    Runs of plain data rows are parsed by one numpy call each; other lines one at a time.
    """
    parsed.last_line = first_line + block.count(b"\n") - block.endswith(b"\n")
    starts, plain = _plain_lines(block)
    count = len(plain)
    ends = np.append(starts[1:], len(block))
    long = np.flatnonzero(ends - starts > MAX_LINE_BYTES + 1)
    if len(long):
        message = f"the line is longer than {MAX_LINE_BYTES} bytes, which no .3dl line needs"
        raise CubeFormatError(path, message, first_line + int(long[0]))
    index = 0
    for odd in [*np.flatnonzero(~plain).tolist(), count]:
        if odd > index and block[starts[index] : ends[odd - 1]].strip():
            _add_plain_rows(path, parsed, block[starts[index] : ends[odd - 1]], first_line + index)
        if odd < count:
            _parse_one(path, parsed, block[starts[odd] : ends[odd]].rstrip(b"\n"), first_line + odd)
        index = odd + 1


def _plain_lines(block: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Where each line of ``block`` starts, and whether it is blank or three unsigned integers of at most
    9 digits separated by spaces or tabs (a plain data row), computed on all bytes at once."""
    codes = np.frombuffer(block, dtype=np.uint8)
    newline = codes == 10
    starts = np.append(0, np.flatnonzero(newline) + 1)
    if block.endswith(b"\n"):
        starts = starts[:-1]
    line_of = np.cumsum(newline) - newline
    digit = (codes >= 48) & (codes <= 57)
    other = ~(digit | newline | (codes == 32) | (codes == 9))
    first = np.flatnonzero(digit & ~np.append(False, digit[:-1]))
    last = np.flatnonzero(digit & ~np.append(digit[1:], False))
    lines = len(starts)
    tokens = np.bincount(line_of[first], minlength=lines)
    too_long = np.bincount(line_of[first[last - first >= _MAX_DIGITS]], minlength=lines)
    odd = np.bincount(line_of[other], minlength=lines)
    return starts, ((tokens == 0) | (tokens == 3)) & (too_long == 0) & (odd == 0)


def _add_plain_rows(path: Path, parsed: _Parsed, text: bytes, line: int) -> None:
    """Add the rows of ``text``: plain data rows and blank lines only (see :func:`_plain_lines`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        values = np.fromstring(text, dtype=np.int64, sep=" ")
    parsed.add(path, values.reshape(-1, 3), line)


def _parse_one(path: Path, parsed: _Parsed, raw: bytes, line: int) -> None:
    """Add what one line that is not a plain data row holds."""
    numbers = _parse_line(path, parsed, raw, line)
    if numbers is None:
        return
    if len(numbers) == 3:
        parsed.add(path, np.array([numbers], dtype=np.int64), line)
    elif len(numbers) > 3:
        _set_mesh(path, parsed, numbers, line)
    else:
        raise CubeFormatError(path, f"a line of {len(numbers)} number(s); a data row has three (r g b)", line)


def _parse_line(path: Path, parsed: _Parsed, raw: bytes, line: int) -> list[int] | None:
    """The integers of one line, or ``None`` for a blank, comment or keyword line."""
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = raw.decode("latin-1").strip()
        if not text.startswith("#"):
            message = "the line holds bytes that are not ASCII text, so this is not a .3dl file"
            raise CubeFormatError(path, message, line) from None
    if not text:
        return None
    if text.startswith("#"):
        if len(parsed.comments) < 10_000:
            parsed.comments.append(text[1:].strip())
        return None
    if text.startswith("<"):
        raise CubeFormatError(path, "a line starting with '<' (XML) cannot be in a .3dl file", line)
    tokens = text.split()
    if not _NUMBER.fullmatch(tokens[0]):
        return None  # a keyword line: 3DMESH, Mesh 4 12, LUT8, gamma 1.0
    for token in tokens:
        if not _INTEGER.fullmatch(token):
            shown = token if len(token) <= 20 else token[:17] + "..."
            why = "has too many digits" if token.lstrip("+-").isdigit() else "is not an integer"
            raise CubeFormatError(path, f"'{shown}' {why}; a .3dl file holds integer code values", line)
    return [int(token) for token in tokens]


def _set_mesh(path: Path, parsed: _Parsed, numbers: list[int], line: int) -> None:
    if parsed.mesh is not None:
        raise CubeFormatError(path, f"a second mesh line (the first is line {parsed.mesh_line})", line)
    if len(numbers) > MAX_1D_SIZE:
        raise CubeFormatError(path, f"the mesh line has {len(numbers)} values, more than {MAX_1D_SIZE}", line)
    parsed.mesh, parsed.mesh_line = np.array(numbers, dtype=np.int64), line


def likely_bit_depth(largest: int) -> int:
    """The bit depth of codes whose largest value is ``largest``, allowing a 2x overshoot (8, 10, 12 or 16)."""
    for bits in (8, 10, 12, 14):
        if largest <= 2 ** (bits + 1) - 1:
            return 16 if bits == 14 else bits  # 14-bit files are not used: such values are 16-bit
    return 16


def _scale(path: Path, largest: int, what: str, line: int | None) -> float:
    if largest < LOWEST_PLAUSIBLE_MAX:
        raise CubeFormatError(
            path,
            f"the largest {what} value is {largest}, below {LOWEST_PLAUSIBLE_MAX}: a .3dl file holds integer "
            "code values (10, 12 or 16 bits), so this is another format",
            line,
        )
    return float(2 ** likely_bit_depth(largest) - 1)


def _build_lut(path: Path, parsed: _Parsed) -> LUT:
    if parsed.count == 0 and parsed.mesh is None:
        raise CubeFormatError(path, "the file holds no mesh line and no data rows, so it is not a .3dl file")
    shaper = None
    if parsed.mesh is not None:
        mesh = parsed.mesh
        scale = _scale(path, int(mesh.max()), "mesh line", parsed.mesh_line)
        ramp = np.arange(len(mesh)) * np.float32(scale / (len(mesh) - 1))
        if not np.all(np.abs(ramp - mesh) < IDENTITY_TOLERANCE) or parsed.count == 0:
            shaper = Shaper(np.repeat((mesh / scale)[:, None], 3, axis=1))
    table = None
    if parsed.count:
        rows = parsed.rows[: parsed.count]
        n = round(parsed.count ** (1 / 3))
        if n**3 != parsed.count or not MIN_3D_SIZE <= n <= MAX_3D_SIZE:
            message = (
                f"the file has {parsed.count} data rows, which is not N^3 for a size N from "
                f"{MIN_3D_SIZE} to {MAX_3D_SIZE} (a cut-off or damaged file?)"
            )
            raise CubeFormatError(path, message, parsed.last_line)
        scale = _scale(path, int(rows.max()), "data", None)
        table = (rows / scale).reshape(n, n, n, 3).transpose(2, 1, 0, 3)
    return LUT(table, shaper=shaper, comments=tuple(parsed.comments))


# --- writing --------------------------------------------------------------------------------


def write(
    lut: LUT,
    path: Path,
    *,
    flavour: str = DEFAULT_FLAVOUR,
    bit_depth: int = DEFAULT_BIT_DEPTH,
    size: int | None = None,
    interpolation: str = "trilinear",
) -> None:
    """Write ``lut`` as a ``.3dl`` file, atomically.

    Args:
        flavour: ``"lustre"`` (default) or ``"nuke"`` (see the module docstring).
        bit_depth: output codes of 10, 12 (default) or 16 bits.
        size: the lattice written; default the LUT's own (:data:`DEFAULT_1D_SIZE` for a 1D-only LUT).
        interpolation: how the LUT is sampled when its own table cannot be written as it is.

    Raises:
        OptionError: an unknown flavour, bit depth or size.
    """
    from lutgen.formats.hald import sample_unit_lattice

    if flavour not in FLAVOURS:
        raise OptionError(f"a .3dl flavour is one of {', '.join(FLAVOURS)}, not {flavour!r}")
    if bit_depth not in BIT_DEPTHS:
        raise OptionError(f"a .3dl file's bit depth is one of {', '.join(map(str, BIT_DEPTHS))}, not {bit_depth}")
    size = size or lut.size or DEFAULT_1D_SIZE
    table = sample_unit_lattice(lut, size, interpolation)
    atomic_write_bytes(path, format_3dl(table, flavour, bit_depth, path).encode("ascii"))


def mesh_line(size: int, bits: int) -> str:
    """The input positions of ``size`` nodes in ``bits``-bit codes.

    ``i * 2**bits / (size - 1)`` with the last clamped to ``2**bits - 1`` when ``size - 1`` is a power of
    two (``0 64 128 ... 960 1023`` for 17 nodes at 10 bits, as Lustre writes it), else the even ramp
    ``round(i * (2**bits - 1) / (size - 1))``.
    """
    top = 2**bits - 1
    steps = size - 1
    if steps & (steps - 1) == 0 and steps <= 2**bits:
        values = np.minimum(np.arange(size) * (2**bits // steps), top)
    else:
        values = np.floor(np.arange(size) * (top / steps) + 0.5).astype(np.int64)
    return " ".join(map(str, values.tolist()))


def format_3dl(table: np.ndarray, flavour: str, bits: int, path: Path | str = "") -> str:
    """The text of a ``.3dl`` file holding ``table`` ``(N, N, N, 3)`` ``[b, g, r]`` over the unit domain."""
    n = table.shape[0]
    top = 2**bits - 1
    clipped = int(np.count_nonzero((table < 0) | (table > 1)))
    if clipped:
        warnings.warn(
            f"{clipped} output values outside 0..1 were clipped in {path}: a .3dl file holds codes 0..{top}",
            LutgenWarning,
            stacklevel=3,
        )
    codes = np.floor(np.clip(table, 0.0, 1.0) * top + 0.5).astype(np.int64)
    if codes.max() < (top + 1) // 2:
        warnings.warn(
            f"the largest output of {path} is below half of full scale, so readers of the .3dl file "
            "will take its codes for a lower bit depth",
            LutgenWarning,
            stacklevel=3,
        )
    rows = codes.transpose(2, 1, 0, 3).ravel().tolist()  # red slowest, blue fastest
    body = ("%d %d %d\n" * (n**3)) % tuple(rows)
    if flavour == "nuke":
        return f"{mesh_line(n, bits)}\n{body}"
    header = f"3DMESH\nMesh {(n - 1).bit_length() - 1} {bits}\n{mesh_line(n, MESH_BITS)}\n\n"
    return f"{header}{body}\nLUT8\ngamma 1.0\n"
