"""Reading and writing images: JPEG, PNG, TIFF and WebP, at 8 and 16 bits per channel.

Every image in lutgen goes through here. :func:`load_image` returns an :class:`ImageData`:

- ``rgb``: shape ``(H, W, 3)``, ``uint8`` (8-bit sources) or ``uint16`` (16-bit PNG and TIFF),
  already turned upright according to the EXIF orientation. Grey images are repeated into three
  channels; palette, CMYK and other modes are converted to RGB.
- ``alpha``: shape ``(H, W)``, same dtype as ``rgb``, or ``None`` for opaque images.
- ``icc_profile``: the embedded RGB ICC profile (bytes) or ``None``. A profile that does not
  describe RGB data (grey, CMYK) is dropped, since the pixels returned are RGB.
- ``exif``: the EXIF block (bytes beginning with ``Exif\\0\\0``) with its orientation reset to 1,
  or ``None``.

The arrays may be read-only views of the decoded data; copy them before changing them in place.

Pillow decodes everything except 16-bit colour PNG and TIFF, which it would cut to 8 bits; those
pixels come from OpenCV, while Pillow still reads their header and metadata.

:func:`save_image` writes atomically and picks the format from the extension. 16-bit data stays
16-bit in PNG and TIFF and is rounded to 8 bits for JPEG and WebP. ICC profile, EXIF and alpha are
kept wherever the format can hold them (JPEG has no alpha). Pillow writes JPEG, WebP and 8-bit PNG;
OpenCV encodes TIFF and 16-bit PNG, and the ICC profile and EXIF are then added to those files here.
XMP and IPTC metadata are not carried over.
"""

from __future__ import annotations

import contextlib
import struct
import sys
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, TiffImagePlugin, TiffTags, UnidentifiedImageError

from lutgen.errors import ImageError, LutgenError
from lutgen.fileio import atomic_path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")

_FORMAT_BY_EXTENSION = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
# Pillow's format name -> ours. MPO is the JPEG variant many cameras and phones write.
_READABLE_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "TIFF": "TIFF", "WEBP": "WEBP"}

_ORIENTATION_TAG = 0x0112
_EXIF_PREFIX = b"Exif\x00\x00"
_JPEG_MAX_EXIF = 65533  # the most an APP1 segment holds
# zlib level for PNG: 4 writes a 12-megapixel photo about 3 times faster than 6, 6% larger.
_PNG_COMPRESSION = 4

# EXIF IFD0 tags that describe the picture rather than the layout of a TIFF file's pixel data;
# only these move between a TIFF's own tags and an EXIF block.
_DESCRIPTIVE_TIFF_TAGS = frozenset(
    {
        270,  # ImageDescription
        271,  # Make
        272,  # Model
        274,  # Orientation
        282,  # XResolution
        283,  # YResolution
        296,  # ResolutionUnit
        305,  # Software
        306,  # DateTime
        315,  # Artist
        318,  # WhitePoint
        319,  # PrimaryChromaticities
        33432,  # Copyright
        34665,  # Exif sub-IFD
        34853,  # GPS sub-IFD
    }
)
_SUB_IFD_TAGS = frozenset({34665, 34853})
_ICC_TAG = 34675
_EXTRA_SAMPLES_TAG = 338
_UNASSOCIATED_ALPHA = 2

# Errors that Pillow, zlib and OpenCV raise on damaged or truncated files.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
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


# --------------------------------------------------------------------------------------------
# Public functions


def load_image(path: str | Path) -> ImageData:
    """Read a JPEG, PNG, TIFF or WebP file into an :class:`ImageData` (see the module docstring).

    Raises :class:`ImageError` with one sentence naming the file when it is missing, empty, a
    folder, of another format, or damaged.
    """
    path = Path(path)
    with _open(path) as im:
        tiff_orientation = _tiff_header_orientation(im)
        planes = _decode(im, path, max_side=None)
        icc = _rgb_icc_profile(im, planes)
        exif, orientation = _exif_and_orientation(im, tiff_orientation)
        fmt = _READABLE_FORMATS[im.format]
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
        tiff_orientation = _tiff_header_orientation(im)
        planes = _decode(im, path, max_side=max_side, keep_alpha=False)
        _, orientation = _exif_and_orientation(im, tiff_orientation)
    scale = 65535.0 if planes.rgb.dtype == np.uint16 else 255.0
    rgb = _orientation_view(planes.rgb, orientation).astype(np.float32, order="C")
    rgb /= np.float32(scale)
    return rgb


def check_output_path(path: str | Path) -> str:
    """The format ``save_image`` would write ``path`` in; :class:`ImageError` if it cannot be an image file."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"cannot write {path}: it is a folder; give a file name such as {path / 'graded.jpg'}")
    fmt = _FORMAT_BY_EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(
            f"cannot write {path}: unknown image extension {path.suffix or '(none)'!r}; "
            f"use {', '.join(IMAGE_EXTENSIONS)}"
        )
    return fmt


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
    exif = _exif_for_output(data.exif)
    icc = data.icc_profile or None
    try:
        with atomic_path(path) as tmp:
            if fmt == "TIFF" or (fmt == "PNG" and rgb.dtype == np.uint16):
                tmp.write_bytes(_encode_with_opencv(rgb, alpha, icc, exif, fmt))
            else:
                _save_8bit(_to_8bit(rgb), _to_8bit(alpha), icc, exif, fmt, int(quality), tmp)
    except LutgenError:
        raise
    except (*_DECODE_ERRORS, MemoryError) as error:
        raise ImageError(f"cannot write {path}: {_reason(error)}") from None


def find_images(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand files and folders into the list of images to work on.

    A folder contributes its image files (not its sub-folders, not hidden files), sorted by
    name; a file must have one of :data:`IMAGE_EXTENSIONS` (any case). The order of ``paths`` is
    kept and duplicates are dropped. Raises :class:`ImageError` for a path that does not exist,
    a file that is not an image, a folder without images, or when nothing is given.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    seen: set[Path] = set()
    for given in paths:
        for image in _images_at(Path(given)):
            key = image.resolve()
            if key not in seen:
                seen.add(key)
                found.append(image)
    if not found:
        raise ImageError("no images were given")
    return found


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

    Pillow's warnings about damaged metadata it skips are silenced meanwhile: either the image
    loads, or the error raised says enough.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        im = _open_pillow(path)
        try:
            yield im
        except LutgenError:
            raise
        except Exception as error:
            if isinstance(error, _DECODE_ERRORS) or _is_opencv_error(error):
                raise ImageError(
                    f"cannot read {path}: the image data is damaged or truncated ({_reason(error)})"
                ) from None
            raise
        finally:
            im.close()


def _open_pillow(path: Path) -> Image.Image:
    """Open ``path`` with Pillow (header only), or raise ImageError saying why it cannot be read."""
    if not path.exists():
        raise ImageError(f"cannot read {path}: the file does not exist")
    if path.is_dir():
        raise ImageError(f"cannot read {path}: it is a folder, not an image")
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
    except _DECODE_ERRORS as error:
        raise ImageError(f"cannot read {path}: the file is damaged ({_reason(error)})") from None
    if im.format not in _READABLE_FORMATS:
        kind = im.format
        im.close()
        raise ImageError(f"cannot read {path}: {kind} images are not supported; use JPEG, PNG, TIFF or WebP")
    return im


def _decode(im: Image.Image, path: Path, *, max_side: int | None, keep_alpha: bool = True) -> _Planes:
    """Pixels of the open image ``im`` as RGB (+ alpha), shrunk to ``max_side`` when given."""
    if _is_16bit_colour(im):
        planes = _decode_with_opencv(path, im)
    else:
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
    cv2 = _opencv()
    encoded = np.fromfile(path, dtype=np.uint8)
    if im.format == "PNG":
        # libpng reports damage on stderr before OpenCV gives up; check the chunks first.
        problem = _png_damage(memoryview(encoded))
        if problem:
            raise ImageError(f"cannot read {path}: the file is damaged ({problem})")
    else:
        # OpenCV's TIFF decoder may turn the pixels upright itself; orientation is applied by the
        # caller, so OpenCV is given a copy of the file that says 1.
        _, offset, value_format = _find_orientation(memoryview(encoded))
        if offset is not None:
            struct.pack_into(value_format, encoded, offset, 1)
    log_level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
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
    arr = np.asarray(im)
    if im.mode == "RGB":
        return _Planes(arr, None, profile_applies)
    if im.mode == "RGBA":
        return _Planes(np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3]), profile_applies)
    if im.mode == "L":
        return _Planes(_grey_to_rgb(arr), None, False)
    if im.mode == "LA":
        return _Planes(_grey_to_rgb(arr[..., 0]), np.ascontiguousarray(arr[..., 1]), False)
    raise ImageError(f"cannot read {path}: images in Pillow mode {mode} are not supported")


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
    cv2 = _opencv()
    height, width = pixels.shape[:2]
    return cv2.resize(pixels, _target_size(width, height, max_side), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------------------------
# Metadata


def _rgb_icc_profile(im: Image.Image, planes: _Planes) -> bytes | None:
    """The embedded ICC profile when it describes RGB data like the pixels returned, else None."""
    icc = im.info.get("icc_profile")
    if not icc or not planes.rgb_profile_applies or _icc_colour_space(icc) != b"RGB ":
        return None
    return bytes(icc)


def _icc_colour_space(icc: bytes) -> bytes:
    """The data colour space signature of an ICC profile header (``b"RGB "``, ``b"GRAY"``...)."""
    return bytes(icc[16:20])


def _tiff_header_orientation(im: Image.Image) -> int | None:
    """A TIFF's Orientation tag as read from its header, before any decoding; None if absent."""
    if im.format != "TIFF":
        return None
    return im.tag_v2.get(_ORIENTATION_TAG)


def _exif_and_orientation(im: Image.Image, tiff_orientation: int | None) -> tuple[bytes | None, int]:
    """The image's EXIF block (orientation reset to 1) and the orientation still to apply (1..8).

    ``tiff_orientation`` is the TIFF tag read before decoding: when Pillow decodes a TIFF it may
    turn the pixels upright itself and drop the tag, and then nothing is left to apply.
    """
    if im.format == "TIFF":
        exif = _exif_from_tiff_tags(im, has_orientation=tiff_orientation is not None)
        still_to_apply = _ORIENTATION_TAG in im.tag_v2
        orientation = tiff_orientation if still_to_apply and tiff_orientation else 1
        return exif, orientation if 1 <= orientation <= 8 else 1
    exif = im.info.get("exif") or None
    if exif is None:
        return None, 1
    orientation, exif = _reset_orientation(_with_exif_prefix(bytes(exif)))
    return exif, orientation if 1 <= orientation <= 8 else 1


def _exif_from_tiff_tags(im: Image.Image, *, has_orientation: bool) -> bytes | None:
    """An EXIF block from a TIFF's descriptive tags (``_DESCRIPTIVE_TIFF_TAGS``), orientation 1."""
    try:
        tags = _descriptive_tags(im.getexif())
    except _DECODE_ERRORS:
        return None  # damaged tags: the pixels may still be fine
    if has_orientation:
        tags[_ORIENTATION_TAG] = 1
    if not tags:
        return None
    kept = Image.Exif()
    for tag, value in tags.items():
        kept[tag] = value
    return _with_exif_prefix(kept.tobytes())


def _with_exif_prefix(exif: bytes) -> bytes:
    return exif if exif.startswith(_EXIF_PREFIX) else _EXIF_PREFIX + exif


def _find_orientation(exif: bytes | memoryview) -> tuple[int, int | None, str]:
    """Orientation value in an EXIF block or TIFF file, the byte offset of that value, and its
    struct format.

    Reads the first IFD of the TIFF structure directly, so nothing else in the block moves.
    Returns ``(1, None, "")`` when there is no orientation entry or the block is malformed.
    """
    base = len(_EXIF_PREFIX) if bytes(exif[: len(_EXIF_PREFIX)]) == _EXIF_PREFIX else 0
    byte_order = {b"II": "<", b"MM": ">"}.get(bytes(exif[base : base + 2]))
    if byte_order is None or len(exif) < base + 8:
        return 1, None, ""
    (ifd,) = struct.unpack_from(byte_order + "I", exif, base + 4)
    start = base + ifd
    if start + 2 > len(exif):
        return 1, None, ""
    (count,) = struct.unpack_from(byte_order + "H", exif, start)
    for index in range(count):
        entry = start + 2 + 12 * index
        if entry + 12 > len(exif):
            break
        tag, kind, number = struct.unpack_from(byte_order + "HHI", exif, entry)
        if tag == _ORIENTATION_TAG and number >= 1 and kind in (3, 4):  # SHORT or LONG
            value_format = byte_order + ("H" if kind == 3 else "I")
            (value,) = struct.unpack_from(value_format, exif, entry + 8)
            return value, entry + 8, value_format
    return 1, None, ""


def _reset_orientation(exif: bytes) -> tuple[int, bytes]:
    """Return the EXIF orientation and the block with it set to 1 (all other bytes unchanged)."""
    orientation, offset, value_format = _find_orientation(exif)
    if offset is None or orientation == 1:
        return orientation, exif
    patched = bytearray(exif)
    struct.pack_into(value_format, patched, offset, 1)
    return orientation, bytes(patched)


def _exif_for_output(exif: bytes | None) -> bytes | None:
    if not exif:
        return None
    return _reset_orientation(_with_exif_prefix(bytes(exif)))[1]


# --------------------------------------------------------------------------------------------
# Saving


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
        alpha = _to_8bit(alpha) if rgb.dtype == np.uint8 else alpha.astype(np.uint16) * np.uint16(257)
    return rgb, alpha


def _to_8bit(pixels: np.ndarray | None) -> np.ndarray | None:
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


def _save_8bit(rgb, alpha, icc, exif, fmt: str, quality: int, tmp: Path) -> None:
    """Write 8-bit pixels as JPEG, WebP or PNG with Pillow."""
    if alpha is not None and fmt != "JPEG":
        im = Image.fromarray(np.dstack((rgb, alpha)), "RGBA")
    else:
        im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    options: dict = {}
    if icc:
        options["icc_profile"] = icc
    if fmt == "JPEG":
        options.update(quality=quality, subsampling=0 if quality >= 90 else 2)
        if exif and len(exif) > _JPEG_MAX_EXIF:
            warnings.warn(
                f"the EXIF block ({len(exif)} bytes) does not fit in a JPEG and was left out", stacklevel=3
            )
            exif = None
    elif fmt == "WEBP":
        options.update(quality=quality, method=4)
    elif fmt == "PNG":
        options.update(compress_level=_PNG_COMPRESSION)
    if exif:
        options["exif"] = exif
    im.save(tmp, format=fmt, **options)


def _encode_with_opencv(rgb, alpha, icc, exif, fmt: str) -> bytes:
    """Encode RGB(A) as PNG or TIFF with OpenCV (8 or 16 bits), then add ICC and EXIF to the file."""
    cv2 = _opencv()
    if alpha is None:
        bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    else:
        bgr = np.dstack((rgb[..., ::-1], alpha))
    if fmt == "PNG":
        ok, encoded = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, _PNG_COMPRESSION])
    else:
        ok, encoded = cv2.imencode(
            ".tif",
            bgr,
            [
                cv2.IMWRITE_TIFF_COMPRESSION,
                cv2.IMWRITE_TIFF_COMPRESSION_LZW,
                cv2.IMWRITE_TIFF_PREDICTOR,
                cv2.IMWRITE_TIFF_PREDICTOR_HORIZONTAL,
            ],
        )
    if not ok:
        raise OSError("the encoder failed")
    encoded = encoded.tobytes()
    if fmt == "PNG":
        return _png_with_metadata(encoded, icc, exif)
    return _tiff_with_metadata(encoded, icc, exif, has_alpha=alpha is not None)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type + data."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with_metadata(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP and eXIf chunks right after the IHDR chunk of an encoded PNG."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise OSError("the PNG encoder produced an unexpected stream")
    (ihdr_length,) = struct.unpack_from(">I", png, 8)
    end_of_ihdr = 8 + 12 + ihdr_length
    chunks = b""
    if icc:
        chunks += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        chunks += _png_chunk(b"eXIf", exif[len(_EXIF_PREFIX) :] if exif.startswith(_EXIF_PREFIX) else exif)
    return png[:end_of_ihdr] + chunks + png[end_of_ihdr:]


def _descriptive_exif_tags(exif: bytes | None) -> dict[int, object]:
    """IFD0 tags of an EXIF block that a TIFF can carry as its own: ``_DESCRIPTIVE_TIFF_TAGS``.

    The Exif and GPS sub-IFD pointers come back as dicts of their tags.
    """
    if not exif:
        return {}
    source = Image.Exif()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            source.load(exif)
            return _descriptive_tags(source)
    except _DECODE_ERRORS:
        return {}  # an EXIF block too damaged to parse is left out rather than failing the save


def _descriptive_tags(tags: Image.Exif) -> dict[int, object]:
    return {
        tag: tags.get_ifd(tag) if tag in _SUB_IFD_TAGS else tags[tag]
        for tag in tags
        if tag in _DESCRIPTIVE_TIFF_TAGS
    }


def _tiff_with_metadata(tiff: bytes, icc: bytes | None, exif: bytes | None, *, has_alpha: bool) -> bytes:
    """Give a classic TIFF's first IFD extra tags: ICC profile, EXIF tags, ExtraSamples for alpha.

    A new first IFD is appended: the original entries unchanged (their offsets stay valid, as no
    byte before the end moves) merged in tag order with the new entries, whose out-of-line values
    Pillow lays out after the table. The header is then pointed at the new IFD.
    """
    extra = TiffImagePlugin.ImageFileDirectory_v2(ifh=tiff[:8])
    for tag, value in _descriptive_exif_tags(exif).items():
        extra[tag] = value
    if icc:
        extra[_ICC_TAG] = icc
        extra.tagtype[_ICC_TAG] = TiffTags.UNDEFINED
    if has_alpha:
        extra[_EXTRA_SAMPLES_TAG] = _UNASSOCIATED_ALPHA
        extra.tagtype[_EXTRA_SAMPLES_TAG] = TiffTags.SHORT

    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or struct.unpack_from(order + "H", tiff, 2)[0] != 42:
        raise OSError("the TIFF encoder produced an unexpected stream")
    (first_ifd,) = struct.unpack_from(order + "I", tiff, 4)
    (count,) = struct.unpack_from(order + "H", tiff, first_ifd)
    entries = [tiff[first_ifd + 2 + 12 * i : first_ifd + 14 + 12 * i] for i in range(count)]
    (next_ifd,) = struct.unpack_from(order + "I", tiff, first_ifd + 2 + 12 * count)
    existing = {struct.unpack_from(order + "H", entry)[0] for entry in entries}
    for tag in list(extra):
        if tag in existing:
            del extra[tag]
    if not len(extra):
        return tiff

    start = len(tiff) + (len(tiff) & 1)
    added = len(extra)
    # Pillow places out-of-line values after a table of `added` entries; the merged table has
    # `count` more entries, so shift its origin by that much.
    encoded = extra.tobytes(start + 12 * count)
    new_entries = [encoded[2 + 12 * i : 14 + 12 * i] for i in range(added)]
    values = encoded[2 + 12 * added + 4 :]
    merged = sorted(entries + new_entries, key=lambda entry: struct.unpack_from(order + "H", entry)[0])
    table = struct.pack(order + "H", count + added) + b"".join(merged) + struct.pack(order + "I", next_ifd)
    header = tiff[:4] + struct.pack(order + "I", start)
    return header + tiff[8:] + b"\x00" * (start - len(tiff)) + table + values


# --------------------------------------------------------------------------------------------
# Finding images


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _images_at(path: Path) -> list[Path]:
    if path.is_dir():
        try:
            images = sorted(
                child
                for child in path.iterdir()
                if child.is_file() and not child.name.startswith(".") and _is_image_name(child)
            )
        except OSError as error:
            raise ImageError(f"cannot read the folder {path}: {error.strerror or error}") from None
        if not images:
            raise ImageError(f"the folder {path} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        return images
    if path.is_file():
        if not _is_image_name(path):
            raise ImageError(f"{path} is not an image lutgen reads; use {', '.join(IMAGE_EXTENSIONS)}")
        return [path]
    raise ImageError(f"{path} does not exist")


# --------------------------------------------------------------------------------------------
# Helpers


def _opencv():
    """Import OpenCV on first use (it takes a while to import and most images do not need it)."""
    import cv2

    return cv2


def _is_opencv_error(error: BaseException) -> bool:
    cv2 = sys.modules.get("cv2")
    return cv2 is not None and isinstance(error, cv2.error)


def _reason(error: BaseException) -> str:
    """A short, single-line description of an exception for an error message."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip().splitlines()
    detail = text[0] if text else ""
    return detail.rstrip(".") or type(error).__name__
