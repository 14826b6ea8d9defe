"""What every part of :mod:`lutgen.imaging` shares: the formats, :class:`ImageData`, error helpers."""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")

FORMAT_BY_EXTENSION = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
# Pillow's format name -> ours. MPO is the JPEG variant many cameras and phones write.
READABLE_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "TIFF": "TIFF", "WEBP": "WEBP"}

# Errors that Pillow, zlib and OpenCV raise on damaged or truncated files.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    Image.DecompressionBombError,
)


@dataclass
class ImageData:
    """Pixels and metadata of one image.

    ``rgb`` is ``(H, W, 3)`` uint8 or uint16 (full range 0..255 or 0..65535), upright;
    ``alpha`` is ``(H, W)`` of the same dtype or ``None``; ``icc_profile`` and ``exif`` are raw
    bytes or ``None`` (EXIF orientation is 1); ``format`` is ``"JPEG"``, ``"PNG"``, ``"TIFF"`` or
    ``"WEBP"`` for a loaded image; ``path`` is where it was loaded from.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    format: str | None = None
    path: Path | None = None

    @property
    def bit_depth(self) -> int:
        """8 or 16, from the dtype of ``rgb``."""
        return 16 if self.rgb.dtype == np.uint16 else 8

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]


def opencv():
    """Import OpenCV on first use (it takes a while to import and most images do not need it)."""
    import cv2

    return cv2


class SharedChange:
    """A process-wide change that threads share: made when the first enters, undone when the last leaves.

    ``make()`` changes something global (a file descriptor, a library setting) and returns the function
    that undoes it. Threads that decode or encode images at the same time each enter
    :meth:`held`; saving and restoring the setting in each thread instead would let one thread restore
    a value another had set, and leave it changed for good.
    """

    def __init__(self, make: Callable[[], Callable[[], None]]):
        self._make = make
        self._lock = threading.Lock()
        self._users = 0
        self._undo: Callable[[], None] | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._undo = self._make()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._undo is not None:
                    undo, self._undo = self._undo, None
                    undo()


def _silence_descriptor_2() -> Callable[[], None]:
    """Point file descriptor 2 at the null device; return what restores it (nothing where it cannot)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        return lambda: None
    null = _open_null_device()
    if null is None:
        os.close(saved)
        return lambda: None
    os.dup2(null, 2)
    os.close(null)

    def restore() -> None:
        os.dup2(saved, 2)
        os.close(saved)

    return restore


_STDERR_SILENCE = SharedChange(_silence_descriptor_2)


def native_stderr_silenced() -> contextlib.AbstractContextManager[None]:
    """Send what C libraries print on file descriptor 2 to the null device meanwhile.

    libpng, inside OpenCV, prints its own complaints (``libpng error: IDAT: incorrect data check``)
    before OpenCV gives up on a damaged file; lutgen's error sentence says what matters. Wrap only
    the native call: anything written to standard error meanwhile, from any thread, is lost.
    Descriptor 2 is restored when the last thread inside leaves, also on an exception or Ctrl-C.
    Where it cannot be redirected (no descriptor 2, no null device), nothing changes.
    """
    return _STDERR_SILENCE.held()


def _quiet_pillow_warnings() -> Callable[[], None]:
    """Ignore Pillow's warnings about damaged metadata it skips and about large images; return the undo."""
    saved = warnings.catch_warnings()
    saved.__enter__()
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    return lambda: saved.__exit__(None, None, None)


_PILLOW_WARNINGS_QUIET = SharedChange(_quiet_pillow_warnings)


def pillow_warnings_quiet() -> contextlib.AbstractContextManager[None]:
    """Meanwhile, Pillow's warnings (damaged metadata skipped, large images) are not shown, in any thread:
    either the image loads, or the error raised says enough."""
    return _PILLOW_WARNINGS_QUIET.held()


def _open_null_device() -> int | None:
    """A write descriptor on the null device, or None if it cannot be opened."""
    try:
        return os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return None


def is_opencv_error(error: BaseException) -> bool:
    """True when ``error`` is OpenCV's own exception class (only checked once OpenCV is imported)."""
    cv2 = sys.modules.get("cv2")
    return cv2 is not None and isinstance(error, cv2.error)


def reason(error: BaseException) -> str:
    """A short, single-line description of an exception for an error message."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip().splitlines()
    detail = text[0] if text else ""
    return detail.rstrip(".") or type(error).__name__
