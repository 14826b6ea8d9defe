"""Reading images: :func:`load_image`, :func:`load_rgb_float`, and :func:`image_size` from the header.

Pillow decodes everything except 16-bit colour PNG and TIFF, which it would cut to 8 bits; those
pixels come from OpenCV, while Pillow still reads their header and metadata.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lutgen.errors import ImageError, LutgenError
from lutgen.fileio import check_regular_file
from lutgen.imaging.common import (
    DECODE_ERRORS,
    READABLE_FORMATS,
    ImageData,
    is_opencv_error,
    native_stderr_silenced,
    opencv,
    pillow_warnings_quiet,
    reason,
)
from lutgen.imaging.limits import check_pixel_count, pillow_size_check_off
from lutgen.imaging.metadata import (
    exif_and_orientation,
    find_orientation,
    rgb_icc_profile,
    tiff_header_orientation,
)

_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that turn the picture by 90 degrees
_OPENCV_MAX_SIDE = 1 << 20  # OpenCV's decoders refuse a longer width or height (OPENCV_IO_MAX_IMAGE_WIDTH)


def load_image(path: str | Path) -> ImageData:
    """Read a JPEG, PNG, TIFF or WebP file into an :class:`ImageData` (see the module docstring).

    Raises :class:`ImageError` with one sentence naming the file when it is missing, not a regular
    file (a folder, FIFO, device, link loop), empty, of another format, larger than
    :data:`~lutgen.imaging.limits.MAX_PIXELS`, or damaged.
    """
    path = Path(path)
    with _open(path) as im:
        tiff_orientation = tiff_header_orientation(im)
        planes = _decode(im, path, max_side=None)
        icc = rgb_icc_profile(im, planes.rgb_profile_applies)
        exif, orientation = exif_and_orientation(im, tiff_orientation)
        fmt = READABLE_FORMATS[im.format]
    rgb = _apply_orientation(planes.rgb, orientation)
    alpha = None if planes.alpha is None else _apply_orientation(planes.alpha, orientation)
    return ImageData(rgb=rgb, alpha=alpha, icc_profile=icc, exif=exif, format=fmt, path=path)


def load_rgb_float(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """Read an image as float32 RGB of shape ``(H, W, 3)`` in [0, 1]: upright, alpha dropped.

    8-bit data is divided by 255 and 16-bit data by 65535. With ``max_side``, the image is
    shrunk (never enlarged) so that its longer side is at most ``max_side`` pixels: Lanczos
    after JPEG's fast reduced-size decoding for 8-bit data, pixel-area averaging for 16-bit data.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, not {max_side}")
    path = Path(path)
    with _open(path) as im:
        tiff_orientation = tiff_header_orientation(im)
        planes = _decode(im, path, max_side=max_side, keep_alpha=False)
        _, orientation = exif_and_orientation(im, tiff_orientation)
    scale = 65535.0 if planes.rgb.dtype == np.uint16 else 255.0
    rgb = _orientation_view(planes.rgb, orientation).astype(np.float32, order="C")
    rgb /= np.float32(scale)
    return rgb


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image as :func:`load_image` returns it (upright), from its header.

    Decodes no pixels; refuses what :func:`load_image` refuses before decoding (not a regular
    file, empty, another format, more than :data:`~lutgen.imaging.limits.MAX_PIXELS`).
    """
    path = Path(path)
    with _open(path) as im:
        width, height = im.size
        _, orientation = exif_and_orientation(im, tiff_header_orientation(im))
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)


# --------------------------------------------------------------------------------------------
# Opening and decoding


@dataclass
class _Planes:
    rgb: np.ndarray  # (H, W, 3) uint8 | uint16
    alpha: np.ndarray | None  # (H, W) same dtype
    rgb_profile_applies: bool  # False when the source was grey or CMYK (its profile is not RGB)


@contextlib.contextmanager
def _open(path: Path) -> Iterator[Image.Image]:
    """A lazily decoded Pillow image; any decoding error in the ``with`` body becomes ImageError.

    Before anything is read, ``path`` must be a regular file (a FIFO would block forever, a device
    never end), and the size in its header within :data:`~lutgen.imaging.limits.MAX_PIXELS`.
    Pillow's warnings about damaged metadata it skips, and its own size check, are silenced
    meanwhile: either the image loads, or the error raised says enough.
    """
    check_regular_file(path, "image", ImageError)
    with pillow_warnings_quiet(), pillow_size_check_off():
        im = _open_pillow(path)
        try:
            check_pixel_count(path, *im.size)
            yield im
        except LutgenError:
            raise
        except MemoryError:
            raise ImageError(
                f"cannot read {path}: not enough memory to decode its {im.width}x{im.height} pixels"
            ) from None
        except Exception as error:
            if isinstance(error, DECODE_ERRORS) or is_opencv_error(error):
                raise ImageError(
                    f"cannot read {path}: the image data is damaged or truncated ({reason(error)})"
                ) from None
            raise
        finally:
            im.close()


def _open_pillow(path: Path) -> Image.Image:
    """Open the regular file ``path`` with Pillow (header only), or raise ImageError saying why not."""
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"cannot read {path}: the file is empty")
        im = Image.open(path)
    except UnidentifiedImageError:
        raise ImageError(
            f"cannot read {path}: it is damaged or not a JPEG, PNG, TIFF or WebP image"
        ) from None
    except PermissionError:
        raise ImageError(f"cannot read {path}: permission denied") from None
    except DECODE_ERRORS as error:
        raise ImageError(f"cannot read {path}: the file is damaged ({reason(error)})") from None
    if im.format not in READABLE_FORMATS:
        kind = im.format
        im.close()
        raise ImageError(f"cannot read {path}: {kind} images are not supported; use JPEG, PNG, TIFF or WebP")
    return im


def _decode(im: Image.Image, path: Path, *, max_side: int | None, keep_alpha: bool = True) -> _Planes:
    """Pixels of the open image ``im`` as RGB (+ alpha), shrunk to ``max_side`` when given.

    What the native decoders print on standard error (libtiff's ``TIFFFetchDirectory: ...``,
    libpng's complaints) is discarded: a damaged file ends in one ImageError instead. Pillow's own
    JPEG, PNG and WebP decoders print nothing, so only TIFFs are decoded with standard error silenced
    (which would also hide what other threads print meanwhile).
    """
    if _is_16bit_colour(im):
        planes = _decode_with_opencv(path, im)
    else:
        quiet = native_stderr_silenced() if im.format == "TIFF" else contextlib.nullcontext()
        with quiet:
            if max_side is not None:
                im = _shrink_pillow(im, max_side)
            planes = _pillow_planes(im, path)
    if not keep_alpha:
        planes.alpha = None
    if max_side is not None and max(planes.rgb.shape[:2]) > max_side:
        planes.rgb = _shrink_array(planes.rgb, max_side)
        if planes.alpha is not None:
            planes.alpha = _shrink_array(planes.alpha, max_side)
    return planes


def _is_16bit_colour(im: Image.Image) -> bool:
    """True for PNG/TIFF colour (or grey + alpha) with 16-bit samples, which Pillow cuts to 8 bits.

    Read from the undecoded tiles' raw mode (``"RGB;16B"``, ``"RGBA;16N"``, ``"LA;16B"``...).
    """
    if im.format not in ("PNG", "TIFF") or im.mode not in ("RGB", "RGBA", "LA", "RGBa", "RGBX"):
        return False
    for tile in im.tile:
        args = tile.args
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _decode_with_opencv(path: Path, im: Image.Image) -> _Planes:
    """16-bit colour pixels of the PNG or TIFF open as ``im``, decoded by OpenCV (quietly)."""
    if max(im.size) > _OPENCV_MAX_SIDE:
        raise ImageError(
            f"cannot read {path}: it is {im.width}x{im.height} pixels, and 16-bit colour images "
            f"with a side longer than {_OPENCV_MAX_SIDE} pixels are not supported"
        )
    cv2 = opencv()
    encoded = np.fromfile(path, dtype=np.uint8)
    if im.format == "PNG":
        # A damaged chunk is named more precisely here than OpenCV's failure would allow.
        problem = _png_damage(memoryview(encoded))
        if problem:
            raise ImageError(f"cannot read {path}: the file is damaged ({problem})")
    else:
        # OpenCV's TIFF decoder may turn the pixels upright itself; orientation is applied by the
        # caller, so OpenCV is given a copy of the file that says 1.
        _, offset, value_format = find_orientation(memoryview(encoded))
        if offset is not None:
            struct.pack_into(value_format, encoded, offset, 1)
    log_level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        with native_stderr_silenced():
            pixels = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    finally:
        cv2.utils.logging.setLogLevel(log_level)
    # (Pillow reports a TIFF's size already turned for orientations 5 to 8, hence the sorting.)
    if pixels is None or pixels.dtype != np.uint16 or sorted(pixels.shape[:2]) != sorted(im.size):
        raise ImageError(f"cannot read {path}: the 16-bit image data is damaged or truncated")
    grey_source = im.mode == "LA"
    if pixels.ndim == 2:
        return _Planes(_grey_to_rgb(pixels), None, False)
    if pixels.shape[2] == 4:
        alpha = np.ascontiguousarray(pixels[..., 3])
        if grey_source:
            return _Planes(_grey_to_rgb(pixels[..., 0]), alpha, False)
        return _Planes(cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB), alpha, True)
    if pixels.shape[2] == 3:
        return _Planes(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB), None, True)
    raise ImageError(f"cannot read {path}: {pixels.shape[2]}-channel images are not supported")


def _png_damage(png: bytes | memoryview) -> str | None:
    """Why a PNG stream is damaged (truncated, bad chunk CRC, no IEND), or None when it is whole."""
    position = 8
    while position + 12 <= len(png):
        (length,) = struct.unpack_from(">I", png, position)
        end = position + 12 + length
        if end > len(png):
            break
        kind = bytes(png[position + 4 : position + 8])
        (crc,) = struct.unpack_from(">I", png, end - 4)
        if zlib.crc32(png[position + 4 : end - 4]) != crc:
            return f"bad checksum in the {kind.decode('latin-1')} chunk"
        if kind == b"IEND":
            return None
        position = end
    return "the file is truncated"


def _pillow_planes(im: Image.Image, path: Path) -> _Planes:
    """Convert a Pillow image of any mode into RGB (+ alpha) arrays, copying only when needed."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return _Planes(_grey_to_rgb(np.asarray(im).astype(np.uint16, copy=False)), None, False)
    if mode == "I":
        grey = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        return _Planes(_grey_to_rgb(grey), None, False)
    if mode == "F":
        raise ImageError(f"cannot read {path}: floating-point images are not supported")
    converted = _STANDARD_MODE.get(mode)
    if converted is None and mode == "P":
        converted = "RGBA" if "transparency" in im.info else "RGB"
    if converted is not None:
        im = im.convert(converted)
        profile_applies = mode not in ("CMYK", "1")
    else:
        profile_applies = True
    arr = _pixels(im)
    if im.mode == "RGB":
        return _Planes(arr, None, profile_applies)
    if im.mode == "RGBA":
        return _Planes(np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3]), profile_applies)
    if im.mode == "L":
        return _Planes(_grey_to_rgb(arr), None, False)
    if im.mode == "LA":
        return _Planes(_grey_to_rgb(arr[..., 0]), np.ascontiguousarray(arr[..., 1]), False)
    raise ImageError(f"cannot read {path}: images in Pillow mode {mode} are not supported")


_CHANNELS = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}


def _pixels(im: Image.Image) -> np.ndarray:
    """The pixels of an RGB, RGBA, L or LA image as a read-only uint8 array, ``(H, W, C)`` or ``(H, W)``.

    What ``np.asarray(im)`` returns, in one copy instead of two: ``np.asarray`` goes through
    ``Image.tobytes``, which packs the pixels into 64 KB pieces and then joins them; Pillow's raw
    encoder asked for the whole image at once packs it straight into one buffer (30 ms instead of 60
    for a 12-megapixel photo). Anything unexpected falls back to ``np.asarray``.
    """
    im.load()
    channels = _CHANNELS.get(im.mode)
    width, height = im.size
    if channels is None or width == 0 or height == 0:
        return np.asarray(im)
    size = width * height * channels
    try:
        encoder = Image._getencoder(im.mode, "raw", im.mode)
        encoder.setimage(im.im, (0, 0, width, height))
        try:
            _, status, data = encoder.encode(size)
        finally:
            encoder.cleanup()
    except Exception:  # a Pillow without this private interface
        return np.asarray(im)
    if status != 1 or len(data) != size:  # 1: every line was packed
        return np.asarray(im)
    return np.frombuffer(data, np.uint8).reshape((height, width, channels) if channels > 1 else (height, width))


# Pillow modes that are converted before use; RGB, RGBA, L and LA are used as they are.
_STANDARD_MODE = {
    "1": "L",
    "PA": "RGBA",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "RGBX": "RGB",
    "RGBa": "RGBA",
    "La": "LA",
}


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W, 3) with the value repeated in every channel."""
    return np.repeat(grey[:, :, None], 3, axis=2)


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Stored pixels turned upright for EXIF orientation 1..8, as a C-contiguous array."""
    if orientation not in range(2, 9):
        return pixels
    return np.ascontiguousarray(_orientation_view(pixels, orientation))


def _orientation_view(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """A view of stored pixels, ``(H, W)`` or ``(H, W, C)``, upright for EXIF orientation 1..8.

    The orientation says where the stored first row and column belong: 2 mirrored left-right,
    3 rotated 180 degrees, 4 mirrored top-bottom, 5 transposed, 6 to be turned 90 degrees
    clockwise, 7 transposed across the other diagonal, 8 to be turned 90 degrees anticlockwise.
    """
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(pixels, -1)
    if orientation == 7:
        return np.rot90(pixels, 2).swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(pixels, 1)
    return pixels


# --------------------------------------------------------------------------------------------
# Shrinking (load_rgb_float)


def _target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrink_pillow(im: Image.Image, max_side: int) -> Image.Image:
    """Shrink an 8-bit Pillow image so its longer side is ``max_side``; 16-bit ones are left alone."""
    if max(im.size) <= max_side:
        return im
    if im.format in ("JPEG", "MPO"):
        # libjpeg decodes at 1/2, 1/4 or 1/8 size, never below the size asked for
        im.draft(None, _target_size(*im.size, max_side))
    im.load()  # Pillow turns some TIFFs upright while loading, so the size is read afterwards
    size = _target_size(*im.size, max_side)
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return im
    if im.mode not in ("RGB", "RGBA", "L", "LA"):
        mode = "RGBA" if im.mode in ("PA", "RGBa", "La") or "transparency" in im.info else "RGB"
        im = im.convert("L" if im.mode == "1" else mode)
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _shrink_array(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink (H, W) or (H, W, C) pixels by pixel-area averaging, longer side -> ``max_side``."""
    cv2 = opencv()
    height, width = pixels.shape[:2]
    return cv2.resize(pixels, _target_size(width, height, max_side), interpolation=cv2.INTER_AREA)

