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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's ``KeyboardInterrupt`` would be.

    Deriving from ``KeyboardInterrupt`` means every ``except KeyboardInterrupt`` that saves work
    or removes temporary files on Ctrl-C does the same on SIGTERM. The command line installs the
    handler that raises it (:func:`lutgen.cli.main`).
    """


INTERRUPT_EXIT_CODE = 130
"""Exit code after Ctrl-C (SIGINT): 128 + 2, as shells report it."""
TERMINATE_EXIT_CODE = 143
"""Exit code after SIGTERM: 128 + 15."""


def interrupt_exit_code(error: BaseException) -> int:
    """The exit code for an interruption: 143 for :class:`Terminated`, else 130."""
    return TERMINATE_EXIT_CODE if isinstance(error, Terminated) else INTERRUPT_EXIT_CODE


class LutgenWarning(UserWarning):
    """A warning meant for the user. The command line prints it as one ``warning:`` line and
    silences every other warning (third-party libraries' own, NumPy's), so that only lutgen's
    sentences reach the user."""
