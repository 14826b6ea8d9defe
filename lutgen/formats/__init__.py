"""Reading and writing LUT files, by file extension.

The formats are ``.cube`` (Adobe and DaVinci Resolve flavours); :func:`read_lut` and
:func:`write_lut` are the entry points every command uses.
"""

from __future__ import annotations

from pathlib import Path

from lutgen.errors import LutgenError
from lutgen.formats.cube import read_cube, write_cube
from lutgen.lut import LUT

__all__ = ["LUT_EXTENSIONS", "read_lut", "write_lut", "read_cube", "write_cube"]

LUT_EXTENSIONS = (".cube",)


def _extension(path: Path, action: str) -> str:
    if path.is_dir():
        raise LutgenError(f"cannot {action} {path}: it is a folder, not a .cube file")
    extension = path.suffix.lower()
    if extension not in LUT_EXTENSIONS:
        shown = f"'{path.suffix}'" if path.suffix else "no extension"
        raise LutgenError(
            f"cannot {action} {path}: {shown} is not a LUT format lutgen knows; use a .cube file"
        )
    return extension


def read_lut(path: str | Path) -> LUT:
    """Read the LUT file at ``path``, choosing the format by its extension.

    Only a regular file is opened: a FIFO, a device, a folder or a dangling link is refused by
    name before anything is read. Reading takes the table plus a few tens of MB of memory, and
    refuses a file far larger than its sizes can need (see :mod:`lutgen.formats.cube`).

    Raises:
        LutgenError: the extension is unknown, or the file is missing, not a regular file or
            cannot be read.
        CubeFormatError: the file is not a valid ``.cube`` file (names the file and the line).
    """
    path = Path(path)
    _extension(path, "read")
    return read_cube(path)


def write_lut(lut: LUT, path: str | Path, *, style: str = "auto", decimals: int = 6) -> None:
    """Write ``lut`` to ``path`` atomically, choosing the format by its extension.

    ``style`` and ``decimals`` are those of :func:`lutgen.formats.cube.write_cube`.
    """
    path = Path(path)
    _extension(path, "write")
    write_cube(lut, path, style=style, decimals=decimals)
