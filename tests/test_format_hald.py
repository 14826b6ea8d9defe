"""Hald CLUT images: layout (ImageMagick/G'MIC/ffmpeg convention), precision, sampling, errors, ``lutgen hald``.

The layout is checked against pixels computed here by hand and against images built with Pillow
alone; application against ffmpeg's ``haldclut`` filter when ``ffmpeg`` is on the PATH.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from cli_runner import one_sentence_error, run_lutgen
from PIL import Image

from lutgen.color.cpu import apply_lut_array
from lutgen.errors import ImageError, LutgenError, LutgenWarning, OptionError
from lutgen.formats import hald, read_lut, write_lut
from lutgen.lut import LUT, Shaper, grid


def smooth_lut(size: int) -> LUT:
    """A hand-built smooth look in 0..1 with the channels mixed (so that any axis mix-up shows)."""
    g = grid(size)
    return LUT(np.clip(g**0.8 + 0.08 * np.sin(5 * g[..., [1, 2, 0]]) - 0.03, 0, 1))


@pytest.mark.parametrize("bits", hald.BIT_DEPTHS)
@pytest.mark.parametrize("level", [2, 3, 8])
def test_identity_written_then_read_is_the_identity(tmp_path, level, bits):
    path = tmp_path / "identity.png"
    write_lut(LUT.identity(level * level), path, bit_depth=bits)
    lut = read_lut(path)
    assert lut.size == level * level and lut.shaper is None
    assert np.abs(lut.table - grid(level * level)).max() <= 0.5 / (2**bits - 1)
    assert lut.is_identity(atol=0.5 / (2**bits - 1))


@pytest.mark.parametrize(("bits", "suffix"), [(8, ".png"), (16, ".png"), (8, ".tif"), (16, ".tiff")])
def test_hand_built_lut_round_trip_within_half_a_code(tmp_path, bits, suffix):
    lut = smooth_lut(16)
    path = tmp_path / f"look{suffix}"
    write_lut(lut, path, bit_depth=bits)
    back = read_lut(path)
    assert np.abs(back.table - lut.table).max() <= 0.5 / (2**bits - 1) + 1e-12


def test_layout_is_red_fastest_then_green_then_blue():
    level, n = 3, 9
    pixels = hald.identity_pixels(level, 16)
    assert pixels.shape == (27, 27, 3) and pixels.dtype == np.uint16
    for i in (0, 1, 8, 9, 10, 80, 81, 100, 403, 728):
        expected = [round((i % n) / (n - 1) * 65535), round((i // n % n) / (n - 1) * 65535),
                    round((i // n**2) / (n - 1) * 65535)]
        assert pixels[i // 27, i % 27].tolist() == expected, i


def test_reading_an_image_built_by_hand(tmp_path):
    """A Hald made with Pillow from the formula of ImageMagick's ``hald:`` image, then graded by hand."""
    level, n = 4, 16
    i = np.arange(64 * 64)
    rgb = np.stack([i % n, i // n % n, i // n**2], axis=-1) * 255 // (n - 1)
    rgb[:, 0] = 255 - rgb[:, 0]  # invert red
    Image.fromarray(rgb.reshape(64, 64, 3).astype(np.uint8)).save(tmp_path / "graded.png")
    lut = read_lut(tmp_path / "graded.png")
    b, g, r = 5, 7, 11
    assert np.array_equal(lut.table[b, g, r] * 255, [255 - r * 17, g * 17, b * 17])
    assert lut.size == level * level


def test_written_image_read_by_pillow_alone(tmp_path):
    lut = smooth_lut(9)
    write_lut(lut, tmp_path / "look.png", bit_depth=8)
    pixels = np.asarray(Image.open(tmp_path / "look.png").convert("RGB")).reshape(-1, 3)
    assert np.array_equal(pixels, np.floor(lut.table.reshape(-1, 3) * 255 + 0.5))


def test_other_sizes_shapers_and_domains_are_sampled(tmp_path):
    rng = np.random.default_rng(2)
    shaper = Shaper(np.sort(rng.uniform(0, 1, (10, 3)), axis=0), [[-0.1] * 3, [1.1] * 3])
    lut = LUT(rng.uniform(0, 1, (7, 7, 7, 3)), [[0.1, 0, 0], [0.9, 1, 1]], shaper)
    path = tmp_path / "sampled.png"
    write_lut(lut, path, level=4)
    back = read_lut(path)
    assert np.abs(back.table - apply_lut_array(grid(16), lut)).max() <= 0.5 / 65535 + 1e-12


def test_out_of_range_outputs_are_clipped_with_a_warning(tmp_path):
    lut = LUT(np.random.default_rng(3).uniform(-0.2, 1.2, (4, 4, 4, 3)))
    with pytest.warns(LutgenWarning, match="outside 0..1 were clipped"):
        write_lut(lut, tmp_path / "clip.png", bit_depth=8)
    assert np.array_equal(read_lut(tmp_path / "clip.png").table, np.floor(np.clip(lut.table, 0, 1) * 255 + 0.5) / 255)


@pytest.mark.parametrize(("size", "level"), [(16, 4), (17, 4), (33, 6), (64, 8), (65, 8), (2, 2), (3, 2), (5, 2)])
def test_default_level_is_the_nearest(tmp_path, size, level):
    assert hald.default_level(LUT.identity(size)) == level


def test_1d_lut_default_level(tmp_path):
    lut = LUT(None, shaper=Shaper(np.linspace(0, 1, 5)[:, None].repeat(3, axis=1) ** 2))
    write_lut(lut, tmp_path / "curve.png", bit_depth=8)
    assert Image.open(tmp_path / "curve.png").size == (512, 512)  # level 8


@pytest.mark.parametrize(("options", "fragment"), [({"level": 17}, "level must be from 2 to 16"),
                                                   ({"level": 1}, "level must be"), ({"bit_depth": 12}, "8 or 16")])
def test_bad_options(tmp_path, options, fragment):
    with pytest.raises(OptionError, match=fragment):
        write_lut(LUT.identity(4), tmp_path / "x.png", **options)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not on the PATH")
@pytest.mark.parametrize("interpolation", ["trilinear", "tetrahedral"])
def test_ffmpeg_haldclut_applies_like_lutgen(tmp_path, interpolation):
    write_lut(smooth_lut(64), tmp_path / "look.png", bit_depth=8)
    photo = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "in.png")
    graph = f"[0:v]format=rgb24[a];[1:v]format=rgb24[b];[a][b]haldclut=interp={interpolation},format=rgb24"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", "in.png", "-i", "look.png", "-filter_complex", graph,
         "-frames:v", "1", "out.png"],
        cwd=tmp_path, check=True, capture_output=True, timeout=60,
    )
    theirs = np.asarray(Image.open(tmp_path / "out.png").convert("RGB")).astype(int)
    ours = apply_lut_array(photo, read_lut(tmp_path / "look.png"), interpolation).astype(int)
    assert np.abs(theirs - ours).max() <= 1


# --- malformed images -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [((32, 64), "64x32 pixels, not square"), ((30, 30), "30 pixels wide, not the cube of a level"),
     ((4, 4), "4x4 pixels"), ((1, 1), "1x1 pixels"), ((125, 125), None)],
)
def test_images_that_are_no_hald_are_refused(tmp_path, shape, fragment):
    path = tmp_path / "photo.png"
    Image.fromarray(np.zeros((*shape, 3), dtype=np.uint8)).save(path)
    if fragment is None:  # level 5: a valid Hald
        assert read_lut(path).size == 25
        return
    with pytest.raises(ImageError, match=fragment) as raised:
        read_lut(path)
    assert str(raised.value).startswith(str(path)) and "level^3" in str(raised.value)


def test_not_an_image_is_refused(tmp_path):
    path = tmp_path / "text.png"
    path.write_text("not an image")
    with pytest.raises(LutgenError, match="text.png"):
        read_lut(path)


def test_cli_reports_a_bad_hald_in_one_sentence(tmp_path):
    Image.fromarray(np.zeros((10, 20, 3), dtype=np.uint8)).save(tmp_path / "wide.png")
    one_sentence_error(run_lutgen("info", tmp_path / "wide.png"), "wide.png", "20x10 pixels, not square")


# --- lutgen hald ------------------------------------------------------------------------------------


def test_cli_writes_an_identity_hald(tmp_path):
    result = run_lutgen("hald", "--level", "3", "--bit-depth", "8", tmp_path / "id.png")
    assert result.returncode == 0, result.stderr
    assert "level 3: 27x27 pixels, a 9^3 cube, 8-bit" in result.stdout
    pixels = np.asarray(Image.open(tmp_path / "id.png").convert("RGB"))
    assert np.array_equal(pixels, hald.identity_pixels(3, 8))
    assert read_lut(tmp_path / "id.png").is_identity(atol=0.5 / 255)


def test_cli_default_is_level_12_at_16_bits(tmp_path):
    from lutgen.imaging.reading import load_image
    from lutgen.tasks.hald import write_identity_hald

    path = write_identity_hald(tmp_path / "id.tif")
    image = load_image(path)
    assert image.rgb.shape == (1728, 1728, 3) and image.rgb.dtype == np.uint16
    lut = read_lut(path)
    assert lut.size == 144 and lut.is_identity(atol=0.5 / 65535)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [(["--level", "17", "x.png"], "--level must be from 2 to 16, not 17"),
     (["--bit-depth", "12", "x.png"], "--bit-depth must be 8 or 16, not 12"),
     (["x.jpg"], "has '.jpg'")],
)
def test_cli_refuses_bad_options(tmp_path, arguments, fragment):
    one_sentence_error(run_lutgen("hald", *arguments, cwd=tmp_path), fragment)
    assert not list(tmp_path.iterdir())
