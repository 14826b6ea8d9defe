"""Tests for lutgen.imaging: formats, bit depths, orientation, metadata, errors, atomic saving.

Reference files are made with Pillow or with the small PNG encoder below (written from the PNG
specification, so 16-bit colour and grey + alpha files do not depend on the code under test).
Expected upright pixels follow the EXIF definition of each orientation, written as index maps.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin
from PIL.TiffImagePlugin import IFDRational

from lutgen.errors import ImageError, LutgenError, LutgenWarning
from lutgen.imaging import (
    IMAGE_EXTENSIONS,
    ImageData,
    find_images,
    load_image,
    load_rgb_float,
    save_image,
)
from lutgen.imaging.writing import to_8bit

ORIENTATION = 0x0112
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
MAKE, MODEL = 0x010F, 0x0110
DATE_TIME_ORIGINAL, EXPOSURE_TIME = 0x9003, 0x829A
GPS_LATITUDE_REF = 0x0001


# --------------------------------------------------------------------------------------------
# Helpers


def png_bytes(pixels: np.ndarray, colour_type: int, bit_depth: int, chunks=()) -> bytes:
    """A PNG file from the specification: IHDR, extra chunks, one IDAT (filter 0), IEND.

    ``pixels`` is (H, W) or (H, W, C) with C matching ``colour_type`` (0 grey, 2 RGB,
    4 grey + alpha, 6 RGBA); 16-bit samples are stored big-endian.
    """
    height, width = pixels.shape[:2]
    samples = pixels.astype(">u2" if bit_depth == 16 else "u1").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in samples)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = b"".join(chunk(kind, payload) for kind, payload in chunks)
    idat = chunk(b"IDAT", zlib.compress(raw))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + body + idat + chunk(b"IEND", b"")


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The chunks of a PNG file, checking every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, position = [], 8
    while position < len(data):
        (length,) = struct.unpack_from(">I", data, position)
        kind = data[position + 4 : position + 8]
        payload = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack_from(">I", data, position + 8 + length)
        assert crc == zlib.crc32(kind + payload), kind
        chunks.append((kind, payload))
        position += 12 + length
    return chunks


@functools.cache
def srgb_profile() -> bytes:
    """Little CMS's sRGB profile, made once (its header holds the time it was made)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_block(orientation: int = 1, comment_size: int = 0) -> bytes:
    """An EXIF block with camera, date, exposure and GPS tags (``Exif\\0\\0`` + TIFF structure)."""
    exif = Image.Exif()
    exif[MAKE] = "LutgenCam"
    exif[MODEL] = "Model 7"
    exif[ORIENTATION] = orientation
    sub = {DATE_TIME_ORIGINAL: "2021:06:01 12:34:56", EXPOSURE_TIME: IFDRational(1, 250)}
    if comment_size:
        sub[0x9286] = b"ASCII\x00\x00\x00" + b"x" * comment_size  # UserComment
    exif[EXIF_IFD] = sub
    exif[GPS_IFD] = {GPS_LATITUDE_REF: "N"}
    return exif.tobytes()


def exif_summary(blob: bytes | None) -> dict:
    """The tags exif_block writes, read back with Pillow's EXIF parser."""
    assert blob is not None
    exif = Image.Exif()
    exif.load(blob)
    sub, gps = exif.get_ifd(EXIF_IFD), exif.get_ifd(GPS_IFD)
    return {
        "make": exif.get(MAKE),
        "model": exif.get(MODEL),
        "orientation": exif.get(ORIENTATION),
        "date": sub.get(DATE_TIME_ORIGINAL),
        "exposure": float(sub.get(EXPOSURE_TIME)),
        "gps": gps.get(GPS_LATITUDE_REF),
    }


EXPECTED_EXIF = {
    "make": "LutgenCam",
    "model": "Model 7",
    "orientation": 1,
    "date": "2021:06:01 12:34:56",
    "exposure": 1 / 250,
    "gps": "N",
}


def random_pixels(shape, dtype, seed=0) -> np.ndarray:
    high = np.iinfo(dtype).max
    values = np.random.default_rng(seed).integers(0, high + 1, size=shape, dtype=np.int64)
    values.flat[0], values.flat[1] = 0, high  # the extremes are always present
    return values.astype(dtype)


def upright_reference(stored: np.ndarray, orientation: int) -> np.ndarray:
    """Upright pixels by the EXIF definition of where the stored row 0 / column 0 belong."""
    height, width = stored.shape[:2]
    shape = (height, width) if orientation <= 4 else (width, height)
    r, c = np.indices(shape)
    source = {
        1: (r, c),
        2: (r, width - 1 - c),
        3: (height - 1 - r, width - 1 - c),
        4: (height - 1 - r, c),
        5: (c, r),
        6: (height - 1 - c, r),
        7: (height - 1 - c, width - 1 - r),
        8: (c, width - 1 - r),
    }[orientation]
    return stored[source]


def blocky_pattern(height: int, width: int) -> np.ndarray:
    """Flat 8x8 blocks of distinct colours: survives JPEG almost exactly, and is asymmetric."""
    rows, cols = height // 8, width // 8
    colours = random_pixels((rows, cols, 3), np.uint8, seed=3) // 2 + 64
    return np.repeat(np.repeat(colours, 8, axis=0), 8, axis=1)


# --------------------------------------------------------------------------------------------
# Round trips and bit depth


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("with_alpha", [False, True])
@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
def test_lossless_round_trip_keeps_bit_depth_and_values(tmp_path, dtype, with_alpha, ext):
    rgb = random_pixels((13, 17, 3), dtype)
    alpha = random_pixels((13, 17), dtype, seed=1) if with_alpha else None
    path = tmp_path / f"out{ext}"
    save_image(ImageData(rgb, alpha), path)
    loaded = load_image(path)
    assert loaded.rgb.dtype == dtype and loaded.bit_depth == (16 if dtype == np.uint16 else 8)
    np.testing.assert_array_equal(loaded.rgb, rgb)
    if with_alpha:
        np.testing.assert_array_equal(loaded.alpha, alpha)
    else:
        assert loaded.alpha is None
    assert loaded.format == ("PNG" if ext == ".png" else "TIFF")
    if dtype == np.uint16:
        assert loaded.rgb.max() > 255 and np.mean(loaded.rgb >= 65280) < 0.01  # not saturated


@pytest.mark.parametrize("with_alpha", [False, True])
def test_16bit_png_written_is_16bit_with_valid_chunks(tmp_path, with_alpha):
    rgb = random_pixels((5, 6, 3), np.uint16)
    alpha = random_pixels((5, 6), np.uint16, seed=2) if with_alpha else None
    path = tmp_path / "deep.png"
    save_image(ImageData(rgb, alpha, icc_profile=srgb_profile(), exif=exif_block()), path)
    chunks = png_chunks(path.read_bytes())
    kinds = [kind for kind, _ in chunks]
    bit_depth, colour_type = struct.unpack(">BB", chunks[0][1][8:10])
    assert (bit_depth, colour_type) == (16, 6 if with_alpha else 2)
    assert kinds[:3] == [b"IHDR", b"iCCP", b"eXIf"] and kinds[-1] == b"IEND"
    name, _, compressed = chunks[1][1].partition(b"\x00")
    assert name and compressed[0] == 0 and zlib.decompress(compressed[1:]) == srgb_profile()
    assert exif_summary(chunks[2][1]) == EXPECTED_EXIF


@pytest.mark.parametrize("with_alpha", [False, True])
def test_16bit_tiff_is_readable_by_libtiff_with_metadata(tmp_path, with_alpha):
    rgb = random_pixels((9, 11, 3), np.uint16)
    alpha = random_pixels((9, 11), np.uint16, seed=4) if with_alpha else None
    path = tmp_path / "deep.tif"
    save_image(ImageData(rgb, alpha, icc_profile=srgb_profile(), exif=exif_block(orientation=6)), path)
    with Image.open(path) as im:
        tags = im.tag_v2
        assert tags[258] == (16,) * (4 if with_alpha else 3)
        assert tags[34675] == srgb_profile()
        assert tags[274] == 1 and tags[271] == "LutgenCam"
        assert tags.get(338) == ((2,) if with_alpha else None)  # unassociated alpha
        im.load()  # libtiff decodes the strips (Pillow keeps the high byte of each sample)
        decoded = np.asarray(im)
    np.testing.assert_array_equal(decoded[..., :3], rgb >> 8)


@pytest.mark.parametrize(
    ("colour_type", "channels"),
    [(0, 1), (2, 3), (4, 2), (6, 4)],
    ids=["grey", "rgb", "grey+alpha", "rgba"],
)
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_reads_every_png_colour_type_exactly(tmp_path, colour_type, channels, bit_depth):
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    stored = random_pixels((6, 7, channels), dtype, seed=colour_type)
    path = tmp_path / "in.png"
    path.write_bytes(png_bytes(stored[..., 0] if channels == 1 else stored, colour_type, bit_depth))
    loaded = load_image(path)
    assert loaded.rgb.dtype == dtype and loaded.rgb.shape == (6, 7, 3)
    colour = stored[..., :3] if channels >= 3 else np.repeat(stored[..., :1], 3, axis=2)
    np.testing.assert_array_equal(loaded.rgb, colour)
    if channels in (2, 4):
        np.testing.assert_array_equal(loaded.alpha, stored[..., -1])
    else:
        assert loaded.alpha is None


def test_grey_16bit_tiff_and_png_from_pillow(tmp_path):
    grey = random_pixels((8, 5), np.uint16)
    for name in ("grey.png", "grey.tif"):
        Image.fromarray(grey).save(tmp_path / name)  # mode I;16
        loaded = load_image(tmp_path / name)
        assert loaded.rgb.dtype == np.uint16
        np.testing.assert_array_equal(loaded.rgb, np.repeat(grey[..., None], 3, axis=2))


def test_other_pillow_modes_become_rgb(tmp_path):
    palette = Image.new("P", (4, 3))
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    palette.putdata([0, 1, 2, 1] * 3)
    palette.save(tmp_path / "p.png", transparency=0)
    loaded = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(loaded.rgb[0], [[0, 0, 0], [255, 0, 0], [0, 255, 0], [255, 0, 0]])
    np.testing.assert_array_equal(loaded.alpha[0], [0, 255, 255, 255])

    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1").save(tmp_path / "bw.png")
    np.testing.assert_array_equal(load_image(tmp_path / "bw.png").rgb[..., 0], [[0, 255], [255, 0]])

    la = np.dstack([random_pixels((3, 4), np.uint8), random_pixels((3, 4), np.uint8, seed=5)])
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    loaded = load_image(tmp_path / "la.png")
    np.testing.assert_array_equal(loaded.rgb, np.repeat(la[..., :1], 3, axis=2))
    np.testing.assert_array_equal(loaded.alpha, la[..., 1])

    cmyk = Image.fromarray(blocky_pattern(16, 16)).convert("CMYK")
    cmyk.save(tmp_path / "cmyk.jpg", quality=100)
    loaded = load_image(tmp_path / "cmyk.jpg")
    with Image.open(tmp_path / "cmyk.jpg") as im:
        reference = np.asarray(im.convert("RGB")).astype(int)
    assert loaded.rgb.dtype == np.uint8 and np.abs(loaded.rgb.astype(int) - reference).max() == 0


def test_profile_kept_only_when_it_describes_rgb(tmp_path):
    rgb_profile = srgb_profile()
    grey_profile = rgb_profile[:16] + b"GRAY" + rgb_profile[20:]
    Image.fromarray(random_pixels((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png", icc_profile=rgb_profile)
    Image.fromarray(random_pixels((4, 4), np.uint8)).save(tmp_path / "grey.png", icc_profile=grey_profile)
    assert load_image(tmp_path / "rgb.png").icc_profile == rgb_profile
    assert load_image(tmp_path / "grey.png").icc_profile is None


# --------------------------------------------------------------------------------------------
# EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_applied_to_8bit_png_pixels(tmp_path, orientation):
    stored = random_pixels((5, 8, 3), np.uint8, seed=orientation)
    path = tmp_path / "o.png"
    Image.fromarray(stored).save(path, exif=exif_block(orientation))
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.rgb, upright_reference(stored, orientation))
    with Image.open(path) as im:
        np.testing.assert_array_equal(loaded.rgb, np.asarray(ImageOps.exif_transpose(im)))
    assert loaded.rgb.flags.c_contiguous
    assert exif_summary(loaded.exif) == EXPECTED_EXIF


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_applied_to_16bit_rgba_png(tmp_path, orientation):
    stored = random_pixels((4, 7, 4), np.uint16, seed=orientation)
    chunks = [(b"eXIf", exif_block(orientation)[6:])]
    path = tmp_path / "o16.png"
    path.write_bytes(png_bytes(stored, 6, 16, chunks))
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.rgb, upright_reference(stored[..., :3], orientation))
    np.testing.assert_array_equal(loaded.alpha, upright_reference(stored[..., 3], orientation))
    floats = load_rgb_float(path)
    np.testing.assert_array_equal(floats, upright_reference(stored[..., :3], orientation) / np.float32(65535))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_applied_to_jpeg(tmp_path, orientation):
    stored = blocky_pattern(16, 32)
    path = tmp_path / "o.jpg"
    Image.fromarray(stored).save(path, quality=100, subsampling=0, exif=exif_block(orientation))
    loaded = load_image(path)
    expected = upright_reference(stored, orientation)
    assert loaded.rgb.shape == expected.shape
    assert np.abs(loaded.rgb.astype(int) - expected).max() <= 2
    assert exif_summary(loaded.exif)["orientation"] == 1


def test_orientation_from_tiff_tag(tmp_path):
    stored = random_pixels((3, 5, 3), np.uint8)
    path = tmp_path / "o.tif"
    Image.fromarray(stored).save(path, exif=exif_block(6))
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.rgb, upright_reference(stored, 6))
    assert exif_summary(loaded.exif) == EXPECTED_EXIF


def test_exif_block_is_kept_byte_for_byte_apart_from_orientation(tmp_path):
    original = exif_block(8)
    path = tmp_path / "o.jpg"
    Image.fromarray(blocky_pattern(8, 8)).save(path, exif=original)
    kept = load_image(path).exif
    assert len(kept) == len(original)
    changed = [i for i, (a, b) in enumerate(zip(kept, original, strict=True)) if a != b]
    assert len(changed) == 1  # the low byte of the orientation value: 8 -> 1
    assert (original[changed[0]], kept[changed[0]]) == (8, 1)


# --------------------------------------------------------------------------------------------
# Metadata through load -> save


def _source_with_metadata(tmp_path: Path, kind: str) -> Path:
    """A file of ``kind`` holding an sRGB profile and an EXIF block with orientation 6."""
    icc, exif = srgb_profile(), exif_block(6)
    if kind == "png16":
        path = tmp_path / "src16.png"
        iccp = b"sRGB\x00\x00" + zlib.compress(icc)
        chunks = [(b"iCCP", iccp), (b"eXIf", exif[6:])]
        path.write_bytes(png_bytes(random_pixels((6, 10, 3), np.uint16), 2, 16, chunks))
        return path
    if kind == "tif16":
        path = tmp_path / "src16.tif"
        save_image(ImageData(random_pixels((10, 6, 3), np.uint16), icc_profile=icc, exif=exif), path)
        return path
    ext = {"jpg": ".jpg", "png8": ".png", "tif8": ".tif", "webp": ".webp"}[kind]
    path = tmp_path / f"src{ext}"
    Image.fromarray(blocky_pattern(8, 16)).save(path, icc_profile=icc, exif=exif)
    return path


@pytest.mark.parametrize("source", ["jpg", "png8", "png16", "tif8", "tif16", "webp"])
@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif", ".webp"])
def test_icc_and_exif_survive_load_then_save(tmp_path, source, ext):
    loaded = load_image(_source_with_metadata(tmp_path, source))
    assert loaded.icc_profile == srgb_profile()
    assert exif_summary(loaded.exif) == EXPECTED_EXIF
    out = tmp_path / f"out{ext}"
    save_image(loaded, out)
    again = load_image(out)
    assert again.icc_profile == srgb_profile()
    assert exif_summary(again.exif) == EXPECTED_EXIF
    assert again.rgb.shape == loaded.rgb.shape  # turned once, not twice
    if ext in (".png", ".tif"):
        np.testing.assert_array_equal(again.rgb, loaded.rgb)


def test_exif_too_large_for_jpeg_is_left_out_with_a_warning(tmp_path):
    data = ImageData(blocky_pattern(8, 8), exif=exif_block(comment_size=70_000))
    with pytest.warns(LutgenWarning, match=r"EXIF block \(\d+ bytes\) does not fit in a JPEG .*big\.jpg"):
        save_image(data, tmp_path / "big.jpg")
    assert load_image(tmp_path / "big.jpg").exif is None
    save_image(data, tmp_path / "big.png")
    assert exif_summary(load_image(tmp_path / "big.png").exif)["make"] == "LutgenCam"


# --------------------------------------------------------------------------------------------
# 16 -> 8 bits, JPEG quality


def test_16_to_8_bit_rounds_to_nearest_for_every_value():
    every = np.arange(65536, dtype=np.uint16)
    nearest = np.floor(every.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(to_8bit(every), nearest)


def test_16bit_saved_as_jpeg_rounds_not_truncates(tmp_path):
    levels = np.array([257 * k + d for k in (1, 50, 128, 200, 254) for d in (-128, -1, 0, 1, 100, 128)])
    levels = np.clip(levels, 0, 65535).astype(np.uint16)
    grey = np.repeat(np.repeat(levels[None, :], 8, axis=0), 8, axis=1)  # one flat 8x8 block per level
    save_image(ImageData(np.repeat(grey[..., None], 3, axis=2)), tmp_path / "r.jpg")
    decoded = load_image(tmp_path / "r.jpg").rgb[0, ::8, 0]
    nearest = np.floor(levels.astype(np.float64) * 255 / 65535 + 0.5)
    np.testing.assert_array_equal(decoded, nearest)
    assert np.any(decoded != levels >> 8)  # truncation would have failed


def _quantization(path: Path) -> dict:
    with Image.open(path) as im:
        return {k: list(v) for k, v in im.quantization.items()}, JpegImagePlugin.get_sampling(im)


def test_jpeg_default_quality_is_95_with_full_chroma(tmp_path):
    pixels = blocky_pattern(16, 16)
    save_image(ImageData(pixels), tmp_path / "ours.jpg")
    save_image(ImageData(pixels), tmp_path / "ours80.jpg", quality=80)
    for quality in (95, 80, 75):
        Image.fromarray(pixels).save(tmp_path / f"pillow{quality}.jpg", quality=quality)
    tables, sampling = _quantization(tmp_path / "ours.jpg")
    assert tables == _quantization(tmp_path / "pillow95.jpg")[0]
    assert tables != _quantization(tmp_path / "pillow75.jpg")[0]
    assert sampling == 0  # 4:4:4
    tables80, sampling80 = _quantization(tmp_path / "ours80.jpg")
    assert tables80 == _quantization(tmp_path / "pillow80.jpg")[0] and sampling80 == 2  # 4:2:0


def test_jpeg_drops_alpha_webp_keeps_it(tmp_path):
    rgb, alpha = blocky_pattern(16, 16), random_pixels((16, 16), np.uint8)
    save_image(ImageData(rgb, alpha), tmp_path / "a.jpg")
    save_image(ImageData(rgb, alpha), tmp_path / "a.webp", quality=100)
    assert load_image(tmp_path / "a.jpg").alpha is None
    assert np.abs(load_image(tmp_path / "a.webp").alpha.astype(int) - alpha).max() <= 2


def test_alpha_of_other_depth_is_converted(tmp_path):
    rgb16 = random_pixels((3, 4, 3), np.uint16)
    alpha8 = random_pixels((3, 4), np.uint8)
    save_image(ImageData(rgb16, alpha8), tmp_path / "mixed.png")
    np.testing.assert_array_equal(load_image(tmp_path / "mixed.png").alpha, alpha8.astype(np.uint16) * 257)


# --------------------------------------------------------------------------------------------
# Atomic saving and errors


def test_save_replaces_target_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    save_image(ImageData(random_pixels((4, 4, 3), np.uint8)), target)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert load_image(target).rgb.shape == (4, 4, 3)


def test_failed_save_keeps_old_file_intact(tmp_path):
    target = tmp_path / "out.webp"
    save_image(ImageData(random_pixels((4, 4, 3), np.uint8)), target)
    before = target.read_bytes()
    too_wide = ImageData(np.zeros((1, 20000, 3), np.uint8))  # WebP is limited to 16383 pixels
    with pytest.raises(ImageError, match=r"cannot write .*out\.webp"):
        save_image(too_wide, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.webp"]


def test_save_rejects_unknown_extension_and_bad_quality(tmp_path):
    data = ImageData(random_pixels((2, 2, 3), np.uint8))
    with pytest.raises(ImageError, match=r"out\.bmp.*\.jpg"):
        save_image(data, tmp_path / "out.bmp")
    with pytest.raises(ImageError, match="quality"):
        save_image(data, tmp_path / "out.jpg", quality=101)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(LutgenError, match="folder"):
        save_image(data, tmp_path / "folder.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.png"]


def _assert_image_error(path: Path, reader=load_image) -> str:
    with pytest.raises(ImageError) as caught:
        reader(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_empty_folder_and_foreign_files_give_image_error(tmp_path):
    assert "no such file" in _assert_image_error(tmp_path / "missing.jpg")
    assert "folder" in _assert_image_error(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    assert "empty" in _assert_image_error(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("not an image at all")
    _assert_image_error(tmp_path / "text.jpg")
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(0).bytes(2000))
    _assert_image_error(tmp_path / "noise.png", load_rgb_float)
    Image.new("RGB", (4, 4)).save(tmp_path / "pic.gif")
    assert "GIF" in _assert_image_error(tmp_path / "pic.gif")
    Image.new("RGB", (4, 4)).save(tmp_path / "pic.bmp")
    assert "BMP" in _assert_image_error(tmp_path / "pic.bmp")


def _encoded_samples(tmp_path: Path) -> dict[str, bytes]:
    pattern = random_pixels((40, 48, 3), np.uint8)
    samples = {}
    formats = {"a.jpg": ("JPEG", {}), "a.png": ("PNG", {}), "a.webp": ("WEBP", {})}
    formats["a.tif"] = ("TIFF", {"compression": "tiff_lzw"})
    for name, (kind, options) in formats.items():
        buffer = io.BytesIO()
        Image.fromarray(pattern).save(buffer, format=kind, **options)
        samples[name] = buffer.getvalue()
    for name in ("a16.png", "a16.tif"):
        save_image(ImageData(random_pixels((40, 48, 3), np.uint16)), tmp_path / name)
        samples[name] = (tmp_path / name).read_bytes()
    return samples


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.9])
def test_truncated_files_give_image_error_quietly(tmp_path, capfd, fraction):
    for name, data in _encoded_samples(tmp_path).items():
        path = tmp_path / f"cut_{name}"
        path.write_bytes(data[: max(1, int(len(data) * fraction))])
        _assert_image_error(path)
        _assert_image_error(path, load_rgb_float)
    assert capfd.readouterr().err == ""  # no decoder chatter on stderr, only the error


def test_damaged_files_load_or_give_image_error(tmp_path, capfd):
    rng = np.random.default_rng(7)
    for name, data in _encoded_samples(tmp_path).items():
        for trial in range(12):
            damaged = bytearray(data)
            for position in rng.integers(0, len(data), size=4):
                damaged[position] ^= 1 << int(rng.integers(0, 8))
            path = tmp_path / f"bad{trial}_{name}"
            path.write_bytes(bytes(damaged))
            try:
                loaded = load_image(path)
            except ImageError as error:
                assert str(path) in str(error)
            else:
                assert loaded.rgb.ndim == 3 and loaded.rgb.shape[2] == 3
    assert capfd.readouterr().err == ""


def test_damaged_16bit_tiff_strips_give_image_error_quietly(tmp_path, capfd):
    path = tmp_path / "strips.tif"
    save_image(ImageData(random_pixels((64, 80, 3), np.uint16)), path)
    data = bytearray(path.read_bytes())
    data[200:2000] = bytes((value * 7 + 3) & 255 for value in data[200:2000])  # garble the LZW data
    path.write_bytes(bytes(data))
    assert "damaged" in _assert_image_error(path)
    assert capfd.readouterr().err == ""


# --------------------------------------------------------------------------------------------
# load_rgb_float


def test_rgb_float_is_exact_scaling_of_the_integer_pixels(tmp_path):
    rgb8, rgb16 = random_pixels((5, 6, 3), np.uint8), random_pixels((5, 6, 3), np.uint16)
    save_image(ImageData(rgb8, random_pixels((5, 6), np.uint8)), tmp_path / "a8.png")
    save_image(ImageData(rgb16), tmp_path / "a16.tif")
    floats8, floats16 = load_rgb_float(tmp_path / "a8.png"), load_rgb_float(tmp_path / "a16.tif")
    assert floats8.dtype == np.float32 and floats8.shape == (5, 6, 3)
    np.testing.assert_array_equal(floats8, (rgb8.astype(np.float64) / 255).astype(np.float32))
    np.testing.assert_array_equal(floats16, (rgb16.astype(np.float64) / 65535).astype(np.float32))
    assert floats16.min() == 0.0 and floats16.max() == 1.0


def test_rgb_float_of_grey_jpeg_has_three_equal_channels(tmp_path):
    Image.fromarray(random_pixels((8, 8), np.uint8)).save(tmp_path / "g.jpg")
    floats = load_rgb_float(tmp_path / "g.jpg")
    assert floats.shape == (8, 8, 3)
    np.testing.assert_array_equal(floats[..., 0], floats[..., 2])


def test_max_side_shrinks_8bit_with_lanczos_and_never_enlarges(tmp_path):
    pixels = random_pixels((200, 300, 3), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "p.png", exif=exif_block(6))
    small = load_rgb_float(tmp_path / "p.png", max_side=100)
    assert small.shape == (100, 67, 3)  # 300x200 -> 100x67, then turned upright
    reference = np.asarray(Image.fromarray(pixels).resize((100, 67), Image.Resampling.LANCZOS)) / 255
    np.testing.assert_allclose(small, upright_reference(reference, 6), atol=1.5 / 255)
    assert load_rgb_float(tmp_path / "p.png", max_side=1000).shape == (300, 200, 3)
    with pytest.raises(ValueError):
        load_rgb_float(tmp_path / "p.png", max_side=0)


def test_max_side_on_large_jpeg_matches_full_decode(tmp_path):
    y, x = np.mgrid[0:1200, 0:1600]
    smooth = np.stack([x / 1600 * 255, y / 1200 * 255, (x + y) / 2800 * 255], axis=-1).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "big.jpg", quality=95)
    small = load_rgb_float(tmp_path / "big.jpg", max_side=200)
    assert small.shape == (150, 200, 3)
    with Image.open(tmp_path / "big.jpg") as im:
        reference = np.asarray(im.resize((200, 150), Image.Resampling.LANCZOS)) / 255
    assert np.abs(small - reference).mean() < 2 / 255


def test_max_side_on_16bit_averages_pixel_areas(tmp_path):
    stored = random_pixels((80, 120, 3), np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(png_bytes(stored, 2, 16))
    small = load_rgb_float(path, max_side=30)  # an exact 4x reduction
    boxes = stored.astype(np.float64).reshape(20, 4, 30, 4, 3).mean(axis=(1, 3)) / 65535
    assert small.shape == (20, 30, 3)
    np.testing.assert_allclose(small, boxes, atol=0.51 / 65535)


# --------------------------------------------------------------------------------------------
# find_images


def test_find_images_expands_folders_sorted_and_filtered(tmp_path):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for name in ("b.JPG", "a.png", "c.tiff", "d.webp", "notes.txt", ".hidden.jpg", "nested/e.jpg"):
        (folder / name).write_bytes(b"x")
    single = tmp_path / "single.jpeg"
    single.write_bytes(b"x")
    found = find_images([folder, str(single), folder / "a.png"])
    assert [p.name for p in found] == ["a.png", "b.JPG", "c.tiff", "d.webp", "single.jpeg"]
    assert find_images(str(folder)) == found[:4]
    assert set(IMAGE_EXTENSIONS) >= {p.suffix.lower() for p in found}


def test_find_images_errors(tmp_path):
    with pytest.raises(ImageError, match="missing"):
        find_images([tmp_path / "missing"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    with pytest.raises(ImageError, match="empty"):
        find_images([empty])
    with pytest.raises(ImageError, match=r"readme\.txt"):
        find_images([empty / "readme.txt"])
    with pytest.raises(ImageError):
        find_images([])


# --------------------------------------------------------------------------------------------
# TIFF orientation (Pillow may turn 8-bit TIFFs upright itself; OpenCV never does)


def set_tiff_orientation(data: bytes, orientation: int) -> bytes:
    """Patch the Orientation entry of a little-endian TIFF's first IFD."""
    assert data[:4] == b"II*\x00"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    patched = bytearray(data)
    for index in range(count):
        entry = ifd + 2 + 12 * index
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag == ORIENTATION:
            assert kind == 3
            struct.pack_into("<H", patched, entry + 8, orientation)
            return bytes(patched)
    raise AssertionError("no orientation entry")


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_orientation_of_8bit_tiff(tmp_path, orientation, compression):
    stored = random_pixels((30, 40, 3), np.uint8, seed=orientation)
    path = tmp_path / "o.tif"
    if compression is None:
        Image.fromarray(stored).save(path, exif=exif_block(orientation))
    else:  # Pillow's libtiff writer cannot write EXIF sub-IFDs: the orientation tag only
        Image.fromarray(stored).save(path, tiffinfo={ORIENTATION: orientation}, compression=compression)
    expected = upright_reference(stored, orientation)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.rgb, expected)
    if compression is None:
        assert exif_summary(loaded.exif) == EXPECTED_EXIF
    else:
        exif = Image.Exif()
        exif.load(loaded.exif)
        assert exif.get(ORIENTATION) == 1
    assert load_rgb_float(path, max_side=20).shape == (expected.shape[0] // 2, expected.shape[1] // 2, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_of_16bit_tiff(tmp_path, orientation):
    stored = random_pixels((30, 40, 3), np.uint16, seed=orientation)
    alpha = random_pixels((30, 40), np.uint16, seed=9)
    path = tmp_path / "o16.tif"
    save_image(ImageData(stored, alpha, exif=exif_block()), path)
    path.write_bytes(set_tiff_orientation(path.read_bytes(), orientation))
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.rgb, upright_reference(stored, orientation))
    np.testing.assert_array_equal(loaded.alpha, upright_reference(alpha, orientation))
    assert exif_summary(loaded.exif) == EXPECTED_EXIF
    expected = upright_reference(stored, orientation)
    assert load_rgb_float(path, max_side=20).shape == (expected.shape[0] // 2, expected.shape[1] // 2, 3)


def test_outputs_get_the_usual_file_permissions(tmp_path):
    """Atomic writes go through a private temporary file; the result must not stay private."""
    import os

    target = tmp_path / "out.png"
    umask = os.umask(0o022)
    try:
        save_image(ImageData(rgb=np.zeros((4, 4, 3), np.uint8)), target)
    finally:
        os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o644
    target.chmod(0o600)
    save_image(ImageData(rgb=np.zeros((4, 4, 3), np.uint8)), target)
    assert target.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
@pytest.mark.parametrize("size", [(1, 1), (3, 2), (17, 5), (640, 3)])
def test_pixels_are_what_numpy_reads_from_pillow(mode, size):
    """The one-copy reading of a decoded image gives exactly ``np.asarray``'s array."""
    from lutgen.imaging.reading import _pixels

    rng = np.random.default_rng(sum(size))
    channels = len(mode)
    values = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    im = Image.fromarray(values[..., 0] if channels == 1 else values, mode)
    pixels = _pixels(im)
    np.testing.assert_array_equal(pixels, np.asarray(im))
    assert pixels.shape == np.asarray(im).shape and pixels.dtype == np.uint8


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
def test_pixels_in_an_rgbx_buffer_are_written_as_from_a_plain_array(tmp_path, ext):
    """The encoder given a graded RGBX buffer without a copy writes the same file as from (H, W, 3)."""
    from lutgen.imaging import rgbx_buffer

    rgb = np.random.default_rng(7).integers(0, 256, (31, 45, 3), dtype=np.uint8)
    buffer = rgbx_buffer(31, 45)
    buffer[..., :3] = rgb
    buffer[..., 3] = 17  # never written
    save_image(ImageData(rgb=buffer[..., :3]), tmp_path / f"buffer{ext}", quality=90)
    save_image(ImageData(rgb=rgb.copy()), tmp_path / f"plain{ext}", quality=90)
    assert (tmp_path / f"buffer{ext}").read_bytes() == (tmp_path / f"plain{ext}").read_bytes()
    if ext == ".png":
        np.testing.assert_array_equal(load_image(tmp_path / f"buffer{ext}").rgb, rgb)


def test_pillow_keeps_freed_blocks_meanwhile_and_restores_its_setting():
    from lutgen.imaging.memory import pillow_keeps_freed_blocks

    before = Image.core.get_blocks_max()
    with pillow_keeps_freed_blocks(2):
        assert Image.core.get_blocks_max() >= 3 * (64 << 20) // Image.core.get_block_size()
        decoded = Image.new("RGB", (3000, 2000), (1, 2, 3))
        del decoded
        again = Image.new("RGB", (3000, 2000), (4, 5, 6))  # may reuse the freed blocks
        assert again.getpixel((2999, 1999)) == (4, 5, 6)
    assert Image.core.get_blocks_max() == before
    with pytest.raises(KeyError), pillow_keeps_freed_blocks(1):
        raise KeyError("stop")
    assert Image.core.get_blocks_max() == before


def test_rgbx_buffers_are_one_per_thread_and_size():
    import threading

    from lutgen.imaging.memory import RGBXBuffers

    buffers = RGBXBuffers()
    first = buffers.get(4, 5)
    assert first.shape == (4, 5, 4) and first.dtype == np.uint8 and first.flags.c_contiguous
    assert buffers.get(4, 5) is first
    other = []
    thread = threading.Thread(target=lambda: other.append(buffers.get(4, 5)))
    thread.start()
    thread.join()
    assert other[0] is not first and other[0].shape == (4, 5, 4)
    assert buffers.get(5, 4).shape == (5, 4, 4)
    assert buffers.out_for(np.zeros((5, 4, 3), np.uint8)) is buffers.get(5, 4)
    assert buffers.out_for(np.zeros((5, 4, 3), np.uint16)) is None  # 16-bit photos get a new array


def test_batch_memory_lends_buffers_and_keeps_pillow_blocks_meanwhile():
    from lutgen.imaging.memory import RGBXBuffers, batch_memory

    before = Image.core.get_blocks_max()
    with batch_memory(3) as buffers:
        assert isinstance(buffers, RGBXBuffers) and Image.core.get_blocks_max() > before
    assert Image.core.get_blocks_max() == before
