"""Writing an identity Hald CLUT: the work behind ``lutgen hald``.

The identity image is what a colourist opens in a photo editor (Photoshop, GIMP, darktable, Affinity),
grades like a photo and saves; reading the saved image back (:func:`lutgen.formats.read_lut`) gives
the LUT that the editor applied.
"""

from __future__ import annotations

from pathlib import Path

from lutgen.errors import OptionError
from lutgen.formats.hald import BIT_DEPTHS, DEFAULT_BIT_DEPTH, LEVELS, identity_pixels
from lutgen.imaging.common import ImageData
from lutgen.imaging.writing import save_image

HALD_EXTENSIONS = (".png", ".tif", ".tiff")
DEFAULT_LEVEL = 12
"""A 144^3 cube in a 1728 x 1728 image: fine enough for any look, small enough for any editor."""


def write_identity_hald(path: str | Path, level: int = DEFAULT_LEVEL, bit_depth: int = DEFAULT_BIT_DEPTH) -> Path:
    """Write the identity Hald CLUT of ``level`` (2..16) at ``bit_depth`` (8 or 16) to ``path``, atomically.

    Raises:
        OptionError: a level, bit depth or file extension that cannot be used.
        ImageError: the file cannot be written.
    """
    path = Path(path)
    if path.suffix.lower() not in HALD_EXTENSIONS:
        shown = f"'{path.suffix}'" if path.suffix else "no extension"
        raise OptionError(f"a Hald CLUT is written as {', '.join(HALD_EXTENSIONS)}, and {path} has {shown}")
    if level not in LEVELS:
        raise OptionError(f"--level must be from {LEVELS[0]} to {LEVELS[-1]}, not {level}")
    if bit_depth not in BIT_DEPTHS:
        raise OptionError(f"--bit-depth must be 8 or 16, not {bit_depth}")
    save_image(ImageData(rgb=identity_pixels(level, bit_depth)), path)
    return path
