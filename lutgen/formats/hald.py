"""Hald CLUT images (``.png``, ``.tif``, ``.tiff``): a 3D LUT stored as the pixels of a square image.

A Hald CLUT of level ``L`` (2..16) is a square image of side ``L**3`` pixels holding a cube of
``N = L**2`` nodes per axis, ``N**3 == (L**3)**2`` pixels in all. Pixel ``i`` in row-major order
(row ``i // side``, column ``i % side``) holds the node at red ``i % N``, green ``(i // N) % N`` and
blue ``i // N**2``: red varies fastest, then green, then blue, which is the convention of
ImageMagick (``hald:``), G'MIC, RawTherapee, darktable and ffmpeg's ``haldclut`` filter.
This is :class:`~lutgen.lut.LUT`'s own ``table[b, g, r]`` order, so the image reshaped to
``(N, N, N, 3)`` is the table. The identity Hald holds ``code(node / (N - 1))`` at every node.

Pixels are 8- or 16-bit codes of outputs in 0..1 over the unit input domain. Writing a LUT that has
another size, a shaper or a domain samples it (:func:`sample_unit_lattice`) on the Hald's lattice;
outputs outside 0..1 are clipped, as an image holds no others. The precision is half a code value:
0.5/255 at 8 bits, 0.5/65535 at 16 bits.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from lutgen.errors import ImageError, LutgenWarning, OptionError
from lutgen.lut import LUT, MAX_3D_SIZE, MIN_3D_SIZE, grid

LEVELS = range(2, 17)
"""The Hald levels read and written: side 8 (level 2) to 4096 pixels (level 16, a 256^3 cube)."""
BIT_DEPTHS = (8, 16)
DEFAULT_BIT_DEPTH = 16
CAPABILITIES = {"shaper": False}
"""A shaper and a 3D table cannot both be held: the writer samples the whole LUT on one lattice."""
DEFAULT_1D_LEVEL = 8
"""The level a 1D-only LUT is sampled at (a 64^3 cube)."""
_SIDES = {level**3: level for level in LEVELS}


def level_of_side(side: int) -> int | None:
    """The level ``L`` of a square Hald image of ``side`` pixels (``side == L**3``), or ``None``."""
    return _SIDES.get(side)


def read(path: Path) -> LUT:
    """The LUT of a Hald CLUT image: ``(N, N, N, 3)`` with ``N = level**2``, unit domain.

    The image size is checked from its header before any pixel is decoded.

    Raises:
        ImageError: the file cannot be read as an image, or it is not square with a side of
            ``level**3`` pixels for a level 2..16 (one sentence naming the file).
    """
    from lutgen.imaging.reading import image_size, load_image

    path = Path(path)
    width, height = image_size(path)
    level = _check_shape(path, width, height)
    image = load_image(path)
    _check_shape(path, image.width, image.height)
    rgb = image.rgb.astype(np.float64)
    rgb /= 65535.0 if image.rgb.dtype == np.uint16 else 255.0
    n = level * level
    return LUT(rgb.reshape(n, n, n, 3))


def _check_shape(path: Path, width: int, height: int) -> int:
    """The level of a ``width`` x ``height`` image, or an :class:`ImageError` saying why it is no Hald."""
    level = level_of_side(width)
    if width == height and level is not None:
        return level
    sides = ", ".join(str(level**3) for level in LEVELS[:4])
    shape = "not square" if width != height else f"{width} pixels wide, not the cube of a level from 2 to 16"
    raise ImageError(
        f"{path}: the image is {width}x{height} pixels, {shape}; a Hald CLUT is a square image whose side "
        f"is level^3 pixels ({sides}, ..., {LEVELS[-1] ** 3})"
    )


def identity_pixels(level: int, bit_depth: int = DEFAULT_BIT_DEPTH) -> np.ndarray:
    """The identity Hald CLUT of ``level``: ``(L**3, L**3, 3)`` uint8 or uint16 codes."""
    _check_options(level, bit_depth)
    return _to_pixels(grid(level * level), level, bit_depth)


def write(
    lut: LUT,
    path: Path,
    *,
    level: int | None = None,
    bit_depth: int = DEFAULT_BIT_DEPTH,
    interpolation: str = "trilinear",
) -> None:
    """Write ``lut`` as a Hald CLUT image (PNG or TIFF by the extension), atomically.

    Args:
        level: 2..16. Default: ``sqrt(N)`` when the LUT's size ``N`` is a square (no resampling when it
            also has no shaper and the unit domain), else the level nearest ``sqrt(N)``;
            :data:`DEFAULT_1D_LEVEL` for a 1D-only LUT.
        bit_depth: 8 or 16 bits per channel (default 16).
        interpolation: how the LUT is sampled when the Hald's lattice is not its own.

    Raises:
        OptionError: a level or bit depth outside the choices above.
        ImageError: the file cannot be written.
    """
    from lutgen.imaging.common import ImageData
    from lutgen.imaging.writing import save_image

    level = default_level(lut) if level is None else level
    _check_options(level, bit_depth)
    table = sample_unit_lattice(lut, level * level, interpolation)
    _warn_if_clipped(table, path)
    save_image(ImageData(rgb=_to_pixels(table, level, bit_depth)), path)


def default_level(lut: LUT) -> int:
    """The level whose cube (``level**2`` nodes) is nearest the LUT's size."""
    if lut.size is None:
        return DEFAULT_1D_LEVEL
    return min(max(round(math.sqrt(lut.size)), LEVELS[0]), LEVELS[-1])


def _check_options(level: int, bit_depth: int) -> None:
    if level not in LEVELS:
        raise OptionError(f"a Hald CLUT level must be from {LEVELS[0]} to {LEVELS[-1]}, not {level}")
    if bit_depth not in BIT_DEPTHS:
        raise OptionError(f"a Hald CLUT's bit depth must be 8 or 16, not {bit_depth}")


def _warn_if_clipped(table: np.ndarray, path: Path) -> None:
    clipped = int(np.count_nonzero((table < 0) | (table > 1)))
    if clipped:
        warnings.warn(
            f"{clipped} output values outside 0..1 were clipped in {path}: an image holds no others",
            LutgenWarning,
            stacklevel=3,
        )


def _to_pixels(table: np.ndarray, level: int, bit_depth: int) -> np.ndarray:
    """``table`` ``(N, N, N, 3)`` ``[b, g, r]`` as ``(L**3, L**3, 3)`` codes, rounded half up, clipped to 0..1."""
    top = 2**bit_depth - 1
    codes = np.floor(np.clip(table, 0.0, 1.0) * top + 0.5)
    side = level**3
    return codes.astype(np.uint16 if bit_depth == 16 else np.uint8).reshape(side, side, 3)


def sample_unit_lattice(lut: LUT, size: int, interpolation: str = "trilinear") -> np.ndarray:
    """``lut`` on a plain ``size``^3 lattice over the unit cube: ``(N, N, N, 3)`` float64 ``[b, g, r]``.

    The LUT's own table when it already is that (same size, unit domain, no shaper); otherwise every
    node's colour is sent through the whole LUT (shaper, domain clamping, 3D interpolation) by
    :func:`lutgen.color.cpu.apply_lut_array`, exactly as lutgen applies it to an image.
    """
    if not MIN_3D_SIZE <= size <= MAX_3D_SIZE:
        raise OptionError(f"a LUT size must be from {MIN_3D_SIZE} to {MAX_3D_SIZE}, not {size}")
    unit = np.array_equal(lut.domain, np.array([[0.0] * 3, [1.0] * 3]))
    if lut.table is not None and lut.shaper is None and unit and lut.size == size:
        return lut.table
    from lutgen.color.cpu import apply_lut_array

    return apply_lut_array(grid(size), lut, interpolation)
