"""Errors that a user can act on.

Every error lutgen raises on purpose derives from :class:`LutgenError`. Its message is one
sentence meant for the user; the command line prints it and exits with code 2, without a
traceback.
"""

from __future__ import annotations

from pathlib import Path


class LutgenError(Exception):
    """An error caused by the user's input, with a one-sentence message."""

    exit_code = 2


class CubeFormatError(LutgenError):
    """A ``.cube`` file that cannot be read, with the file and (where known) the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path = Path(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


class ImageError(LutgenError):
    """An image that cannot be read or written."""


class OptionError(LutgenError):
    """A command-line option with a value that cannot be used."""
