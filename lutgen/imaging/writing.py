"""Writing images: :func:`save_image`, atomically, in the format the extension names.

Pillow writes JPEG, WebP and 8-bit PNG; OpenCV encodes TIFF and 16-bit PNG, and the ICC profile
and EXIF are then added to those files (:mod:`lutgen.imaging.metadata`).
"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from lutgen.errors import ImageError, LutgenError, LutgenWarning
from lutgen.fileio import atomic_path
from lutgen.imaging.common import (
    DECODE_ERRORS,
    FORMAT_BY_EXTENSION,
    IMAGE_EXTENSIONS,
    ImageData,
    is_opencv_error,
    native_stderr_silenced,
    opencv,
    reason,
)
from lutgen.imaging.metadata import exif_for_output, png_with_metadata, tiff_with_metadata

_JPEG_MAX_EXIF = 65533  # the most an APP1 segment holds
# zlib level for PNG: 4 writes a 12-megapixel photo about 3 times faster than 6, 6% larger.
_PNG_COMPRESSION = 4


def check_output_path(path: str | Path) -> str:
    """The format ``save_image`` would write ``path`` in; :class:`ImageError` if it cannot be an image file.

    Checked before any work starts: ``path`` must not be a folder, must have an image extension,
    and its nearest existing parent must be a folder (not a file, which no folder can be made in).
    """
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"cannot write {path}: it is a folder; give a file name such as {path / 'graded.jpg'}")
    fmt = FORMAT_BY_EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(
            f"cannot write {path}: unknown image extension {path.suffix or '(none)'!r}; "
            f"use {', '.join(IMAGE_EXTENSIONS)}"
        )
    _check_parent_is_folder(path)
    return fmt


def _check_parent_is_folder(path: Path) -> None:
    """Raise :class:`ImageError` when the nearest existing parent of ``path`` is not a folder."""
    for parent in path.parents:
        try:
            info = os.stat(parent)
        except OSError as error:
            if error.errno == errno.ENOTDIR:
                continue  # something further up is a file: named when the loop reaches it
            if error.errno == errno.ENOENT and not parent.is_symlink():
                continue  # made when the output is written
            raise ImageError(f"cannot write {path}: {parent} {_stat_problem(error)}") from None
        if stat.S_ISDIR(info.st_mode):
            return
        kind = "a file" if stat.S_ISREG(info.st_mode) else "not a folder"
        raise ImageError(f"cannot write {path}: {parent} is {kind}, so no folder can hold the output there")


def _stat_problem(error: OSError) -> str:
    """What a failed ``os.stat`` of an output's parent means, as the end of a sentence."""
    if error.errno == errno.ELOOP:
        return "is a symbolic link loop"
    if error.errno == errno.ENOENT:
        return "is a symbolic link to a missing folder"
    return f"cannot be reached ({error.strerror or error})"


def save_image(data: ImageData, path: str | Path, quality: int = 95) -> None:
    """Write ``data`` to ``path`` atomically, in the format its extension names.

    - JPEG (.jpg, .jpeg): 8-bit, ``quality`` 1..100 (default 95; 4:4:4 chroma from 90 up),
      ICC and EXIF kept (an EXIF block over 64 KB does not fit: left out with a warning),
      alpha dropped.
    - WebP (.webp): 8-bit lossy at ``quality``, alpha, ICC and EXIF kept.
    - PNG (.png): 8 or 16 bits as given, alpha, ICC (iCCP chunk) and EXIF (eXIf chunk) kept.
    - TIFF (.tif, .tiff): 8 or 16 bits as given, LZW with horizontal predictor, unassociated alpha,
      ICC and the descriptive EXIF tags (camera, dates, exposure and GPS sub-IFDs, copyright)
      kept; thumbnails and maker-specific IFD0 tags are not.

    16-bit data written to JPEG or WebP is rounded to the nearest 8-bit level (x * 255 / 65535).
    The EXIF orientation written is always 1, since the pixels are upright. Raises
    :class:`ImageError` for an unknown extension or when the file cannot be written; the
    target file is then left as it was.
    """
    path = Path(path)
    fmt = check_output_path(path)
    if not 1 <= int(quality) <= 100:
        raise ImageError(f"cannot write {path}: quality must be between 1 and 100, not {quality}")
    rgb, alpha = _checked_pixels(data)
    exif = _exif_that_fits(exif_for_output(data.exif), fmt, path)
    icc = data.icc_profile or None
    try:
        with atomic_path(path) as tmp:
            if fmt == "TIFF" or (fmt == "PNG" and rgb.dtype == np.uint16):
                tmp.write_bytes(_encode_with_opencv(rgb, alpha, icc, exif, fmt))
            else:
                _save_8bit(to_8bit(rgb), to_8bit(alpha), icc, exif, fmt, int(quality), tmp)
    except LutgenError:
        raise
    except Exception as error:
        if isinstance(error, (*DECODE_ERRORS, MemoryError)) or is_opencv_error(error):
            raise ImageError(f"cannot write {path}: {reason(error)}") from None
        raise


def _exif_that_fits(exif: bytes | None, fmt: str, path: Path) -> bytes | None:
    """``exif``, or None with a warning naming ``path`` when it is too large for a JPEG's APP1 segment."""
    if fmt == "JPEG" and exif and len(exif) > _JPEG_MAX_EXIF:
        warnings.warn(
            f"the EXIF block ({len(exif)} bytes) does not fit in a JPEG and was left out of {path}",
            LutgenWarning,
            stacklevel=3,
        )
        return None
    return exif


def _checked_pixels(data: ImageData) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate ``data.rgb``/``data.alpha``; alpha is brought to rgb's bit depth."""
    rgb = np.asarray(data.rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"ImageData.rgb must be (H, W, 3) uint8 or uint16, not {rgb.shape} {rgb.dtype}")
    if data.alpha is None:
        return rgb, None
    alpha = np.asarray(data.alpha)
    if alpha.shape != rgb.shape[:2] or alpha.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"ImageData.alpha must be {rgb.shape[:2]} uint8 or uint16, not {alpha.shape} {alpha.dtype}"
        )
    if alpha.dtype != rgb.dtype:
        alpha = to_8bit(alpha) if rgb.dtype == np.uint8 else alpha.astype(np.uint16) * np.uint16(257)
    return rgb, alpha


def to_8bit(pixels: np.ndarray | None) -> np.ndarray | None:
    """uint16 -> uint8 rounded to nearest (``round(x * 255 / 65535)``); uint8 passes through.

    ``x * 255 / 65535 == x / 257`` and never falls exactly halfway, so ``(x + 128) // 257`` is
    the nearest level.
    """
    if pixels is None or pixels.dtype == np.uint8:
        return pixels
    wide = pixels.astype(np.uint32)
    wide += 128
    wide //= 257
    return wide.astype(np.uint8)


def rgbx_buffer(height: int, width: int) -> np.ndarray:
    """A new ``(H, W, 4)`` uint8 array to grade 8-bit pixels into (the 4th channel is not used).

    Pillow keeps RGB images four bytes a pixel; when :attr:`ImageData.rgb` is ``buffer[..., :3]``,
    :func:`save_image` hands the buffer to Pillow as it is instead of copying it (30-40 ms for a
    12-megapixel JPEG).
    """
    return np.empty((height, width, 4), np.uint8)


def _rgbx_base(rgb: np.ndarray) -> np.ndarray | None:
    """The C-contiguous ``(H, W, 4)`` uint8 array whose first 3 channels ``rgb`` is, or None."""
    base = rgb.base
    if (isinstance(base, np.ndarray) and rgb.dtype == np.uint8 and base.dtype == np.uint8
            and base.shape == (*rgb.shape[:2], 4) and base.flags.c_contiguous and rgb.strides == base.strides
            and rgb.__array_interface__["data"][0] == base.__array_interface__["data"][0]):
        return base
    return None


def _pillow_rgb(rgb: np.ndarray, fmt: str) -> Image.Image:
    """``(H, W, 3)`` uint8 pixels as a Pillow image; a view of a :func:`rgbx_buffer` is not copied for JPEG."""
    base = _rgbx_base(rgb)
    if base is None:
        return Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    im = Image.frombuffer("RGBX", (base.shape[1], base.shape[0]), base, "raw", "RGBX", 0, 1)
    return im if fmt == "JPEG" else im.convert("RGB")  # JPEG writes RGBX as RGB; the others want RGB


def _save_8bit(rgb, alpha, icc, exif, fmt: str, quality: int, tmp: Path) -> None:
    """Write 8-bit pixels as JPEG, WebP or PNG with Pillow."""
    if alpha is not None and fmt != "JPEG":
        im = Image.fromarray(np.dstack((rgb, alpha)), "RGBA")
    else:
        im = _pillow_rgb(rgb, fmt)
    options: dict = {}
    if icc:
        options["icc_profile"] = icc
    if fmt == "JPEG":
        options.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        options.update(quality=quality, method=4)
    elif fmt == "PNG":
        options.update(compress_level=_PNG_COMPRESSION)
    if exif:
        options["exif"] = exif
    im.save(tmp, format=fmt, **options)


def _encode_with_opencv(rgb, alpha, icc, exif, fmt: str) -> bytes:
    """Encode RGB(A) as PNG or TIFF with OpenCV (8 or 16 bits), then add ICC and EXIF to the file."""
    cv2 = opencv()
    if alpha is None:
        bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    else:
        bgr = np.dstack((rgb[..., ::-1], alpha))
    if fmt == "PNG":
        extension, options = ".png", [cv2.IMWRITE_PNG_COMPRESSION, _PNG_COMPRESSION]
    else:
        extension, options = ".tif", [
            cv2.IMWRITE_TIFF_COMPRESSION,
            cv2.IMWRITE_TIFF_COMPRESSION_LZW,
            cv2.IMWRITE_TIFF_PREDICTOR,
            cv2.IMWRITE_TIFF_PREDICTOR_HORIZONTAL,
        ]
    with native_stderr_silenced():
        ok, encoded = cv2.imencode(extension, bgr, options)
    if not ok:
        raise OSError("the encoder failed")
    encoded = encoded.tobytes()
    if fmt == "PNG":
        return png_with_metadata(encoded, icc, exif)
    return tiff_with_metadata(encoded, icc, exif, has_alpha=alpha is not None)


