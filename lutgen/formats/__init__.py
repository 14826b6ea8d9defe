"""Reading and writing LUT files, by file extension: one module per format behind one entry point.

:func:`read_lut` and :func:`write_lut` are what every command uses. Each format lives in a module of
its own (:data:`FORMATS` maps an extension to it) that provides::

    read(path: Path) -> LUT                       # one-sentence errors naming the file and line/element
    write(lut: LUT, path: Path, **options) -> None  # atomic; options are the format's own

Modules are imported only when their format is used, so reading a ``.cube`` loads nothing else.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from lutgen.errors import LutgenError
from lutgen.formats.cube import read_cube, write_cube
from lutgen.lut import LUT

__all__ = ["FORMATS", "LUT_EXTENSIONS", "format_module", "read_lut", "write_lut", "read_cube", "write_cube"]

FORMATS = {
    ".cube": "lutgen.formats.cube_format",
    ".png": "lutgen.formats.hald",
    ".tif": "lutgen.formats.hald",
    ".tiff": "lutgen.formats.hald",
    ".3dl": "lutgen.formats.threedl",
    ".csp": "lutgen.formats.csp",
    ".spi3d": "lutgen.formats.spi",
    ".spi1d": "lutgen.formats.spi",
    ".clf": "lutgen.formats.clf",
}
"""The module of each LUT file extension (lower case)."""

LUT_EXTENSIONS = tuple(FORMATS)


def _extension(path: Path, action: str) -> str:
    if path.is_dir():
        raise LutgenError(f"cannot {action} {path}: it is a folder, not a LUT file")
    extension = path.suffix.lower()
    if extension not in FORMATS:
        shown = f"'{path.suffix}'" if path.suffix else "no extension"
        raise LutgenError(
            f"cannot {action} {path}: {shown} is not a LUT format lutgen knows; use one of {', '.join(FORMATS)}"
        )
    return extension


def format_module(path: str | Path, action: str = "read"):
    """The module that reads and writes the format of ``path`` (by its extension)."""
    return importlib.import_module(FORMATS[_extension(Path(path), action)])


def read_lut(path: str | Path) -> LUT:
    """Read the LUT file at ``path``, choosing the format by its extension.

    Only a regular file is opened: a FIFO, a device, a folder or a dangling link is refused by
    name before anything is read. Reading takes the table plus a few tens of MB of memory, and
    refuses a file far larger than its sizes can need.

    Raises:
        LutgenError: the extension is unknown, or the file is missing, not a regular file, cannot be
            read, or is not a valid file of its format (naming the file and the line or element).
    """
    path = Path(path)
    return format_module(path, "read").read(path)


def write_lut(lut: LUT, path: str | Path, **options) -> None:
    """Write ``lut`` to ``path`` atomically, choosing the format by its extension.

    ``options`` are the format's own (for ``.cube``: ``style`` and ``decimals``, see
    :func:`lutgen.formats.cube_write.write_cube`).
    """
    path = Path(path)
    format_module(path, "write").write(lut, path, **options)
