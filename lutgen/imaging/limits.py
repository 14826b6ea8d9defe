"""The largest image lutgen reads: one pixel-count limit, checked from the file header before decoding.

Every path that opens an image file (loading, shrinking, reading the size of training pairs) goes
through :mod:`lutgen.imaging.reading` and this check, so every command refuses an oversized image
with the same sentence, before any pixel is decoded. Pillow's own decompression-bomb check (a
warning from 89 megapixels, an error from 179) is switched off while lutgen has a file open, since
this one replaces it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from lutgen.errors import ImageError
from lutgen.imaging.common import SharedChange

MAX_PIXELS = 200_000_000
"""The most pixels (width x height) an image may have: 200 megapixels.

More than any camera's single frame (medium-format backs reach 151 megapixels) and panoramas up to
about 20000 x 10000. Such an image takes 1.2 GB as 16-bit RGB and 2.4 GB as float32 RGB, so a
header that claims more is refused rather than decoded.
"""


def check_pixel_count(path: Path, width: int, height: int) -> None:
    """Raise :class:`ImageError` naming ``path`` when a ``width`` x ``height`` image is empty or too large."""
    if width < 1 or height < 1:
        raise ImageError(f"cannot read {path}: its header says {width}x{height} pixels, an image without pixels")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"cannot read {path}: it is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels), "
            f"more than lutgen's limit of {MAX_PIXELS // 1_000_000} megapixels"
        )


def _size_check_off() -> Callable[[], None]:
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None

    def restore() -> None:
        Image.MAX_IMAGE_PIXELS = saved

    return restore


_SIZE_CHECK_OFF = SharedChange(_size_check_off)


def pillow_size_check_off() -> contextlib.AbstractContextManager[None]:
    """Switch Pillow's decompression-bomb check off meanwhile; :func:`check_pixel_count` replaces it.

    The setting is Pillow's, for the whole process: it is off while any thread has an image open
    through lutgen, and restored when the last one closes its image.
    """
    return _SIZE_CHECK_OFF.held()
