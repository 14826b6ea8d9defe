"""Hostile image files: each loads, or is refused by one sentence naming it, before any long work.

Files are built here from the PNG, JPEG and TIFF layouts (headers claiming sizes the data does not
have, damaged chunks with valid checksums), plus FIFOs, devices and link loops given as images.
The command-line tests run lutgen in a fresh process and read exactly what the user would see.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_runner import one_sentence_error, only_line, run_lutgen
from lutgen.errors import ImageError
from lutgen.imaging import (
    MAX_PIXELS,
    ImageData,
    check_output_path,
    find_images,
    image_size,
    load_image,
    load_rgb_float,
    save_image,
)
from lutgen.imaging.common import native_stderr_silenced
from lutgen.tasks.pairs import pair_images

ROOT = Path(__file__).resolve().parents[1]
LUT = ROOT / "lutgen" / "data" / "luts" / "fuji_velvia_50.cube"
READERS = {
    "load_image": load_image,
    "load_rgb_float": lambda path: load_rgb_float(path, max_side=64),
    "image_size": image_size,
}


# --------------------------------------------------------------------------------------------
# Building files


def chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png(width: int, height: int, depth: int = 8, colour_type: int = 0, idat: bytes | None = None) -> bytes:
    """A PNG whose IHDR says ``width`` x ``height`` (CRC correct); ``idat`` defaults to a little data."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    data = zlib.compress(bytes(64)) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def pillow_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(mode: str = "RGB", size=(48, 40)) -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)


def png16_with_bad_idat(tmp_path: Path) -> bytes:
    """A 16-bit RGB PNG whose compressed pixel data is damaged while every chunk CRC is right.

    libpng notices only while decoding (``incorrect data check``) and says so on stderr.
    """
    save_image(ImageData(np.random.default_rng(0).integers(0, 65535, (40, 48, 3)).astype(np.uint16)),
               tmp_path / "source16.png")
    data = bytearray((tmp_path / "source16.png").read_bytes())
    position = 8
    while data[position + 4 : position + 8] != b"IDAT":
        position += 12 + struct.unpack_from(">I", data, position)[0]
    (length,) = struct.unpack_from(">I", data, position)
    data[position + 8 + length // 2] ^= 0xFF
    struct.pack_into(">I", data, position + 8 + length, zlib.crc32(bytes(data[position + 4 : position + 8 + length])))
    return bytes(data)


def tiff_with_huge_ifd_count() -> bytes:
    """An 8-bit LZW TIFF whose first IFD claims 65535 entries (libtiff complains on stderr)."""
    data = bytearray(pillow_bytes(photo(), "TIFF", compression="tiff_lzw"))
    (first_ifd,) = struct.unpack_from("<I", data, 4)
    struct.pack_into("<H", data, first_ifd, 0xFFFF)
    return bytes(data)


def assert_refused(path: Path, reader, *fragments: str) -> str:
    """``reader(path)`` raises one ImageError sentence naming ``path`` and holding ``fragments``."""
    with pytest.raises(ImageError) as caught:
        reader(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --------------------------------------------------------------------------------------------
# One pixel limit for every reader


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS)
def test_header_over_the_limit_is_refused_before_decoding(tmp_path, reader):
    path = tmp_path / "huge.png"
    path.write_bytes(png(50000, 50000, 16, 2))
    assert_refused(path, reader, "50000x50000 pixels", "2500.0 megapixels", f"{MAX_PIXELS // 1_000_000} megapixels")


def test_limit_is_exact_and_replaces_pillows_own_check(tmp_path):
    at_limit = tmp_path / "at_limit.png"
    at_limit.write_bytes(png(20000, MAX_PIXELS // 20000))
    over = tmp_path / "over.png"
    over.write_bytes(png(MAX_PIXELS + 1, 1))
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # 200 megapixels: above Pillow's warning (89 MP) and error (179 MP) thresholds, within lutgen's
        assert image_size(at_limit) == (20000, MAX_PIXELS // 20000)
        assert_refused(over, image_size, f"{MAX_PIXELS + 1}x1 pixels")
    assert caught == []
    assert Image.MAX_IMAGE_PIXELS == pillow_limit


def test_jpeg_header_over_the_limit(tmp_path):
    data = bytearray(pillow_bytes(photo(), "JPEG"))
    start_of_frame = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, start_of_frame + 5, 65000, 65000)
    path = tmp_path / "huge.jpg"
    path.write_bytes(bytes(data))
    assert_refused(path, load_image, "65000x65000 pixels")


def test_pairs_check_the_limit_from_headers(tmp_path):
    inputs, targets = tmp_path / "A", tmp_path / "B"
    inputs.mkdir()
    targets.mkdir()
    (inputs / "x.png").write_bytes(png(50000, 50000))
    (targets / "x.png").write_bytes(png(50000, 50000))
    assert_refused(inputs / "x.png", lambda _: pair_images(inputs, targets), "50000x50000", "megapixels")
    (inputs / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    assert_refused(inputs / "x.png", lambda _: pair_images(inputs, targets), "damaged")


def test_evaluate_refuses_an_oversized_pair_in_one_sentence(tmp_path):
    inputs, targets = tmp_path / "A", tmp_path / "B"
    inputs.mkdir()
    targets.mkdir()
    (inputs / "x.png").write_bytes(png(50000, 50000))
    (targets / "x.png").write_bytes(png(50000, 50000))
    result = run_lutgen("evaluate", "--input-dir", inputs, "--target-dir", targets, "--csv", tmp_path / "s.csv",
                        timeout=120)
    one_sentence_error(result, str(inputs / "x.png"), "50000x50000 pixels", "more than lutgen's limit")
    assert not (tmp_path / "s.csv").exists()


def test_long_thin_images_load_or_are_refused_cleanly(tmp_path):
    tall = tmp_path / "tall.png"
    tall.write_bytes(png(1, 10_000_000, idat=zlib.compress(bytes(2 * 10_000_000))))
    assert load_image(tall).rgb.shape == (10_000_000, 1, 3)
    assert load_rgb_float(tall, max_side=100).shape == (100, 1, 3)
    wide16 = tmp_path / "wide16.png"
    wide16.write_bytes(png(2_000_000, 1, 16, 2, idat=zlib.compress(bytes(1 + 12_000_000))))
    assert_refused(wide16, load_image, "2000000x1 pixels", "16-bit colour images with a side longer than")


# --------------------------------------------------------------------------------------------
# Not regular files


def special_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Paths that are not regular files, with the reason each must be refused for."""
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    (tmp_path / "loop.png").symlink_to("loop.png")
    (tmp_path / "dangling.png").symlink_to("absent.png")
    (tmp_path / "folder.png").mkdir()
    return {
        "fifo": (tmp_path / "fifo.png", "FIFO"),
        "device": (tmp_path / "zero.png", "character device"),
        "loop": (tmp_path / "loop.png", "symbolic link loop"),
        "dangling": (tmp_path / "dangling.png", "symbolic link to a missing file"),
        "folder": (tmp_path / "folder.png", "folder"),
        "missing": (tmp_path / "absent.jpg", "no such file"),
    }


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS)
def test_readers_refuse_what_is_not_a_regular_file(tmp_path, reader):
    for path, why in special_files(tmp_path).values():
        assert_refused(path, reader, why)


def test_find_images_names_special_files_and_passes_over_them_in_folders(tmp_path):
    special = special_files(tmp_path)
    for name in ("fifo", "device", "loop", "dangling", "missing"):
        path, why = special[name]
        assert_refused(path, find_images, why)
    photo().save(tmp_path / "real.png")
    assert find_images(tmp_path) == [tmp_path / "real.png"]


def test_infer_refuses_a_fifo_at_once(tmp_path):
    os.mkfifo(tmp_path / "fifo.png")
    result = run_lutgen("infer", LUT, tmp_path / "fifo.png", "-o", tmp_path / "out.png", timeout=60)
    one_sentence_error(result, str(tmp_path / "fifo.png"), "FIFO (named pipe)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.png"]


# --------------------------------------------------------------------------------------------
# Outputs


def test_output_under_a_file_is_refused_before_writing(tmp_path):
    (tmp_path / "somefile.txt").write_text("notes")
    for output in (tmp_path / "somefile.txt" / "out.png", tmp_path / "somefile.txt" / "a" / "b" / "out.png"):
        with pytest.raises(ImageError, match=f"{tmp_path / 'somefile.txt'} is a file"):
            check_output_path(output)
    (tmp_path / "dangling").symlink_to(tmp_path / "absent")
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(ImageError, match="dangling is a symbolic link to a missing folder"):
        check_output_path(tmp_path / "dangling" / "a" / "out.png")
    with pytest.raises(ImageError, match="loop is a symbolic link loop"):
        check_output_path(tmp_path / "loop" / "out.png")
    assert check_output_path(tmp_path / "new" / "folders" / "out.tif") == "TIFF"


def test_infer_names_the_file_in_the_way_of_the_output(tmp_path):
    (tmp_path / "somefile.txt").write_text("notes")
    photo().save(tmp_path / "in.jpg")
    result = run_lutgen("infer", LUT, tmp_path / "in.jpg", "-o", tmp_path / "somefile.txt" / "out.png")
    one_sentence_error(result, str(tmp_path / "somefile.txt" / "out.png"), f"{tmp_path / 'somefile.txt'} is a file")
    assert (tmp_path / "somefile.txt").read_text() == "notes"


def test_oversized_exif_is_one_warning_line(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "LutgenCam"
    exif[0x010E] = "x" * 70_000  # ImageDescription: the block no longer fits a JPEG segment
    photo().save(tmp_path / "in.png", exif=exif.tobytes())
    result = run_lutgen("infer", LUT, tmp_path / "in.png", "-o", tmp_path / "out.jpg")
    assert result.returncode == 0, result.stderr
    line = only_line(result.stderr)
    assert line.startswith("warning: the EXIF block") and str(tmp_path / "out.jpg") in line, line
    assert load_image(tmp_path / "out.jpg").exif is None


# --------------------------------------------------------------------------------------------
# Damaged and odd files: load, or one ImageError naming the file, and nothing else on stderr


def hostile_files(tmp_path: Path) -> dict[str, bytes]:
    """Damaged, truncated and mislabelled files, by file name."""
    files = {
        "ihdr_depth3.png": png(4, 4, depth=3),
        "ihdr_colour_type5.png": png(4, 4, colour_type=5),
        "ihdr_zero_width.png": png(0, 4),
        "ihdr_zero_width16.png": png(0, 4, 16, 2),
        "ihdr_0x0.png": png(0, 0),
        "ihdr_too_little_data16.png": png(80, 64, 16, 2, idat=zlib.compress(bytes(600))),
        "bad_idat16.png": png16_with_bad_idat(tmp_path),
        "huge_ifd_count.tif": tiff_with_huge_ifd_count(),
        "gif_named.png": pillow_bytes(photo(), "GIF"),
        "bmp_named.png": pillow_bytes(photo(), "BMP"),
        "text.jpg": b"just some text, not a JPEG\n",
        "empty.png": b"",
        "float.tif": pillow_bytes(Image.fromarray(np.ones((4, 4), np.float32)), "TIFF"),
    }
    whole = {
        "jpg": pillow_bytes(photo(), "JPEG"),
        "png": pillow_bytes(photo(), "PNG"),
        "tif": pillow_bytes(photo(), "TIFF", compression="tiff_lzw"),
        "webp": pillow_bytes(photo(), "WEBP"),
    }
    save_image(ImageData(np.random.default_rng(1).integers(0, 65535, (40, 48, 3)).astype(np.uint16)),
               tmp_path / "whole16.tif")
    whole["16.tif"] = (tmp_path / "whole16.tif").read_bytes()
    for ext, data in whole.items():
        for length in (1, 8, 30, 100, len(data) // 2, len(data) - 1):
            files[f"cut{length}.{ext}"] = data[:length]
    return files


def test_hostile_files_load_or_give_one_sentence_quietly(tmp_path, capfd):
    for name, data in hostile_files(tmp_path).items():
        path = tmp_path / name
        path.write_bytes(data)
        for reader in READERS.values():
            try:
                reader(path)
            except ImageError as error:
                assert str(path) in str(error) and "\n" not in str(error), str(error)
    assert capfd.readouterr().err == ""  # nothing from libpng, libtiff or Pillow


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ihdr_depth3.png", "damaged or not a JPEG, PNG, TIFF or WebP image"),
        ("ihdr_zero_width.png", "damaged or not a JPEG, PNG, TIFF or WebP image"),
        ("ihdr_too_little_data16.png", "16-bit image data is damaged or truncated"),
        ("bad_idat16.png", "16-bit image data is damaged or truncated"),
        ("huge_ifd_count.tif", "damaged or truncated"),
        ("gif_named.png", "GIF images are not supported"),
        ("bmp_named.png", "BMP images are not supported"),
        ("text.jpg", "damaged or not a JPEG, PNG, TIFF or WebP image"),
        ("empty.png", "the file is empty"),
        ("float.tif", "floating-point images are not supported"),
        ("cut100.jpg", "damaged"),
        ("cut30.png", "damaged"),
    ],
)
def test_hostile_files_are_refused_for_the_right_reason(tmp_path, name, reason):
    path = tmp_path / name
    path.write_bytes(hostile_files(tmp_path)[name])
    assert_refused(path, load_image, reason)


def test_damaged_16bit_png_is_one_line_on_the_command_line(tmp_path):
    path = tmp_path / "bad16.png"
    path.write_bytes(png16_with_bad_idat(tmp_path))
    result = run_lutgen("infer", LUT, path, "-o", tmp_path / "out.png")
    line = one_sentence_error(result, str(path), "damaged")
    assert "libpng" not in line
    assert not (tmp_path / "out.png").exists()


def test_odd_but_valid_images_load(tmp_path):
    cases = {
        "one.png": (pillow_bytes(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"), (1, 1, 3), np.uint8),
        "palette.png": (pillow_bytes(photo("P"), "PNG"), (40, 48, 3), np.uint8),
        "grey_alpha.png": (pillow_bytes(photo("LA"), "PNG"), (40, 48, 3), np.uint8),
        "cmyk.jpg": (pillow_bytes(photo("CMYK"), "JPEG"), (40, 48, 3), np.uint8),
        "cmyk.tif": (pillow_bytes(photo("CMYK"), "TIFF"), (40, 48, 3), np.uint8),
        "grey16.png": (pillow_bytes(Image.fromarray(np.full((5, 7), 40000, np.uint16)), "PNG"), (5, 7, 3), np.uint16),
    }
    frames = [Image.new("RGB", (16, 12), (60 * i, 0, 0)) for i in range(3)]
    animation = io.BytesIO()
    frames[0].save(animation, "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    cases["animation.webp"] = (animation.getvalue(), (12, 16, 3), np.uint8)
    for name, (data, shape, dtype) in cases.items():
        (tmp_path / name).write_bytes(data)
        loaded = load_image(tmp_path / name)
        assert loaded.rgb.shape == shape and loaded.rgb.dtype == dtype, name
    assert load_image(tmp_path / "animation.webp").rgb[0, 0].tolist() == [0, 0, 0]  # the first frame
    assert load_image(tmp_path / "grey16.png").rgb[0, 0].tolist() == [40000] * 3


def test_native_stderr_is_silenced_only_inside_and_restored(capfd):
    os.write(2, b"before\n")
    with native_stderr_silenced():
        os.write(2, b"native noise\n")
    with pytest.raises(KeyboardInterrupt), native_stderr_silenced():
        raise KeyboardInterrupt
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before\nafter\n"
