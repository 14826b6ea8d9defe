"""A text file's bytes as blocks of whole lines, in bounded memory: the first stage of the ``.cube`` reader.

:class:`LineBlocks` reads an open file :data:`CHUNK_BYTES` at a time and yields blocks of whole
lines with LF ends and the number of each block's first line. It drops a UTF-8 byte-order mark,
turns CRLF and CR into LF, and refuses UTF-16 text, NUL bytes and lines longer than
:data:`MAX_LINE_BYTES`, each by one sentence naming the file and the line.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from lutgen.errors import CubeFormatError, LutgenError
from lutgen.fileio import check_regular_file

MAX_LINE_BYTES = 65536
"""The longest line read (a data row takes ~30 bytes, a long TITLE or comment a few hundred)."""
CHUNK_BYTES = 2**20
"""How much of the file is read and parsed at a time (about 40,000 rows of 6-decimal numbers)."""

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def open_regular_file(path: Path, what: str):
    """The file opened for reading, unbuffered, and its size; only a regular file is opened."""
    check_regular_file(path, what)
    try:
        # O_NONBLOCK: a FIFO swapped in since the check cannot block the open.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise LutgenError(f"cannot read {path}: {error.strerror or error}") from None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        raise LutgenError(f"cannot read {path}: it is not a regular {what}")
    return os.fdopen(descriptor, "rb", buffering=0), info.st_size


def megabytes(count: int) -> str:
    """A file size for a message: ``"17.3 MB"``, or ``"523 bytes"`` below a megabyte."""
    return f"{count / 1e6:.1f} MB" if count >= 10**6 else f"{count} bytes"


class LineBlocks:
    """The bytes of an open file as blocks of whole lines with LF ends, each with its first line number.

    Drops a UTF-8 byte-order mark, turns CRLF and CR into LF, and refuses UTF-16 text, NUL bytes,
    lines longer than :data:`MAX_LINE_BYTES` and more than ``max_bytes`` in all. Holds at most one
    chunk and one line at a time.
    """

    def __init__(self, path: Path, stream, max_bytes: int, chunk_bytes: int | None = None):
        self.path, self.stream, self.max_bytes = path, stream, max_bytes
        self.chunk_bytes = chunk_bytes or CHUNK_BYTES
        self.next_line, self.read_bytes, self.ends_with_newline = 1, 0, True

    def line_count(self) -> int:
        """The number of lines in the file, once every block has been read."""
        return self.next_line - 1 if self.ends_with_newline else self.next_line

    def blocks(self) -> Iterator[tuple[int, bytes]]:
        """``(first line number, block)`` for each chunk; a line cut by a chunk's end moves to the next."""
        carry, first = b"", True
        while True:
            chunk = self._read(max(self.chunk_bytes, len(_BOM)) if first else self.chunk_bytes)
            self.read_bytes += len(chunk)
            if self.read_bytes > self.max_bytes:
                grew = f"the file grew beyond {megabytes(self.max_bytes)} while being read"
                raise CubeFormatError(self.path, grew)
            at_end = not chunk
            if first:
                chunk, first = self._start(chunk), False
            data = carry + chunk
            carry = b""
            if data.endswith(b"\r") and not at_end:
                data, carry = data[:-1], b"\r"  # it may be the first half of a CRLF
            if b"\r" in data:
                data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            cut = len(data) if at_end else data.rfind(b"\n") + 1
            block, carry = data[:cut], data[cut:] + carry
            self._check(block, len(carry))
            if block:
                yield self.next_line, block
                self.next_line += block.count(b"\n")
                self.ends_with_newline = block.endswith(b"\n")
            if at_end:
                return

    def _read(self, count: int) -> bytes:
        try:
            return self.stream.read(count)
        except OSError as error:
            raise LutgenError(f"cannot read {self.path}: {error.strerror or error}") from None

    def _start(self, chunk: bytes) -> bytes:
        if chunk.startswith(_UTF16_BOMS):
            raise CubeFormatError(
                self.path, "the file is UTF-16 text (it starts with a UTF-16 byte-order mark); "
                "save it as UTF-8 or ASCII text"
            )
        return chunk[len(_BOM) :] if chunk.startswith(_BOM) else chunk

    def _check(self, block: bytes, unfinished: int) -> None:
        """Refuse NUL bytes and overlong lines, in ``block`` or in the ``unfinished`` line after it."""
        nul = block.find(b"\x00")
        if nul >= 0:
            line = self.next_line + block.count(b"\n", 0, nul)
            binary = "the file holds binary data (NUL bytes), so it is not a .cube file"
            raise CubeFormatError(self.path, binary, line)
        long = first_long_line(block)
        if long is not None:
            self._too_long(self.next_line + block.count(b"\n", 0, long))
        if unfinished > MAX_LINE_BYTES:
            self._too_long(self.next_line + block.count(b"\n"))

    def _too_long(self, line: int) -> None:
        raise CubeFormatError(
            self.path, f"the line is longer than {MAX_LINE_BYTES} bytes, which no .cube line needs", line
        )


def first_long_line(block: bytes) -> int | None:
    """Where the first line of ``block`` longer than :data:`MAX_LINE_BYTES` starts, or ``None``.

    Jumps from line start to line start by the last newline within reach, so it takes about
    ``len(block) / MAX_LINE_BYTES`` steps.
    """
    start = 0
    while len(block) - start > MAX_LINE_BYTES:
        newline = block.rfind(b"\n", start, start + MAX_LINE_BYTES + 1)
        if newline < 0:
            return start
        start = newline + 1
    return None
