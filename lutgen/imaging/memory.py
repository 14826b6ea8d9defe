"""Memory for grading many photos in a row: buffers kept from one photo to the next.

A 12-megapixel photo passes through about 130 MB of fresh buffers (Pillow's decoded image, the
pixels read from it, the graded pixels). Memory that large comes straight from the kernel and goes
back to it when freed, so every photo faulted in every page again: 50 ms of system time a photo,
an eighth of its cost. :func:`pillow_keeps_freed_blocks` lets Pillow keep the blocks of decoded
images for the next one, and :class:`RGBXBuffers` keeps one graded-pixel buffer per thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
from PIL import Image

from lutgen.imaging.writing import rgbx_buffer

_KEPT_BYTES_PER_IMAGE = 64 << 20  # enough for the decoded blocks of a 16-megapixel RGB photo


@contextlib.contextmanager
def pillow_keeps_freed_blocks(images_at_once: int) -> Iterator[None]:
    """Meanwhile, Pillow keeps freed image blocks for reuse, as many as ``images_at_once`` photos need.

    Pillow's own setting (``PILLOW_BLOCKS_MAX``, 0 by default) is restored afterwards; a Pillow without
    it is left alone.
    """
    core = Image.core
    try:
        before = core.get_blocks_max()
        blocks = max(before, (images_at_once + 1) * _KEPT_BYTES_PER_IMAGE // core.get_block_size())
        core.set_blocks_max(blocks)
    except (AttributeError, ValueError):
        yield
        return
    try:
        yield
    finally:
        core.set_blocks_max(before)


class RGBXBuffers:
    """One :func:`~lutgen.imaging.writing.rgbx_buffer` per thread, made again only for another size.

    A thread grades one photo at a time and writes it before the next, so its buffer is free again when
    it asks for one. The buffers go with this object.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, height: int, width: int) -> np.ndarray:
        """This thread's ``(height, width, 4)`` uint8 buffer (its contents are whatever was left in it)."""
        buffer = getattr(self._local, "buffer", None)
        if buffer is None or buffer.shape[:2] != (height, width):
            buffer = self._local.buffer = rgbx_buffer(height, width)
        return buffer

    def out_for(self, rgb: np.ndarray) -> np.ndarray | None:
        """Where to grade ``rgb`` ``(H, W, 3)``: this thread's buffer for 8-bit pixels, None (a new array)
        for 16-bit ones, which Pillow does not hold in this layout."""
        return self.get(*rgb.shape[:2]) if rgb.dtype == np.uint8 else None


@contextlib.contextmanager
def batch_memory(images_at_once: int) -> Iterator[RGBXBuffers]:
    """Memory for grading many photos, ``images_at_once`` at a time: meanwhile Pillow keeps freed image
    blocks (:func:`pillow_keeps_freed_blocks`); yields the threads' graded-pixel buffers."""
    with pillow_keeps_freed_blocks(images_at_once):
        yield RGBXBuffers()
