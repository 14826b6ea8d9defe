"""The ``.cube`` format behind :func:`lutgen.formats.read_lut`/:func:`~lutgen.formats.write_lut`.

Reading is :mod:`lutgen.formats.cube` (bounded memory, errors naming the line), writing
:mod:`lutgen.formats.cube_write` (Adobe or DaVinci Resolve flavour).
"""

from __future__ import annotations

from pathlib import Path

from lutgen.formats.cube import read_cube
from lutgen.formats.cube_write import write_cube
from lutgen.lut import LUT


def read(path: Path) -> LUT:
    """The LUT of a ``.cube`` file (see :func:`lutgen.formats.cube.read_cube`)."""
    return read_cube(path)


def write(lut: LUT, path: Path, *, style: str = "auto", decimals: int = 6) -> None:
    """Write ``lut`` as a ``.cube`` file (see :func:`lutgen.formats.cube_write.write_cube`)."""
    write_cube(lut, path, style=style, decimals=decimals)
