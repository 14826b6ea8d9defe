"""EXIF and ICC metadata: reading it from an open image, and adding it to encoded PNG and TIFF files.

The EXIF orientation is read here and reset to 1 in the blocks passed on, since the pixels are
turned upright when loaded.
"""

from __future__ import annotations

import struct
import zlib

from PIL import Image

from lutgen.imaging.common import DECODE_ERRORS, pillow_warnings_quiet

_ORIENTATION_TAG = 0x0112
_EXIF_PREFIX = b"Exif\x00\x00"

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


def rgb_icc_profile(im: Image.Image, profile_applies: bool) -> bytes | None:
    """The embedded ICC profile when it describes RGB data and ``profile_applies``, else None.

    ``profile_applies`` is False when the pixels returned came from grey or CMYK data.
    """
    icc = im.info.get("icc_profile")
    if not icc or not profile_applies or _icc_colour_space(icc) != b"RGB ":
        return None
    return bytes(icc)


def _icc_colour_space(icc: bytes) -> bytes:
    """The data colour space signature of an ICC profile header (``b"RGB "``, ``b"GRAY"``...)."""
    return bytes(icc[16:20])


def tiff_header_orientation(im: Image.Image) -> int | None:
    """A TIFF's Orientation tag as read from its header, before any decoding; None if absent."""
    if im.format != "TIFF":
        return None
    return im.tag_v2.get(_ORIENTATION_TAG)


def exif_and_orientation(im: Image.Image, tiff_orientation: int | None) -> tuple[bytes | None, int]:
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
    except DECODE_ERRORS:
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


def find_orientation(exif: bytes | memoryview) -> tuple[int, int | None, str]:
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
    orientation, offset, value_format = find_orientation(exif)
    if offset is None or orientation == 1:
        return orientation, exif
    patched = bytearray(exif)
    struct.pack_into(value_format, patched, offset, 1)
    return orientation, bytes(patched)


def exif_for_output(exif: bytes | None) -> bytes | None:
    if not exif:
        return None
    return _reset_orientation(_with_exif_prefix(bytes(exif)))[1]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type + data."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_with_metadata(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
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
        with pillow_warnings_quiet():
            source.load(exif)
            return _descriptive_tags(source)
    except DECODE_ERRORS:
        return {}  # an EXIF block too damaged to parse is left out rather than failing the save


def _descriptive_tags(tags: Image.Exif) -> dict[int, object]:
    return {
        tag: tags.get_ifd(tag) if tag in _SUB_IFD_TAGS else tags[tag]
        for tag in tags
        if tag in _DESCRIPTIVE_TIFF_TAGS
    }


def tiff_with_metadata(tiff: bytes, icc: bytes | None, exif: bytes | None, *, has_alpha: bool) -> bytes:
    """Give a classic TIFF's first IFD extra tags: ICC profile, EXIF tags, ExtraSamples for alpha.

    A new first IFD is appended: the original entries unchanged (their offsets stay valid, as no
    byte before the end moves) merged in tag order with the new entries, whose out-of-line values
    Pillow lays out after the table. The header is then pointed at the new IFD.
    """
    from PIL import TiffImagePlugin, TiffTags  # here: JPEG, PNG and WebP never need them

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


