"""`lutgen infer` end to end: files in, files out, against independent float references.

Trilinear output is compared with colour-science's float64 application of the same .cube file,
tetrahedral output with OpenColorIO's; on 8- and 16-bit images every output code value must lie
within 0.5 of the reference (i.e. be the correctly rounded reference).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PyOpenColorIO as ocio
import pytest
from PIL import Image

from lutgen.errors import LutgenError, OptionError
from lutgen.formats import read_lut, write_lut
from lutgen.imaging import ImageData, load_image, save_image
from lutgen.lut import LUT, Shaper, grid
from lutgen.tasks.infer import infer
from reference import colour_apply

DATA = Path(__file__).parent / "data" / "cube"
CORPUS = sorted(DATA.glob("*.cube"))


def make_image(depth: int, size: int = 48) -> np.ndarray:
    """Random colours plus every grey level and the corners of the cube, as uint8 or uint16."""
    rng = np.random.default_rng(depth)
    top = 255 if depth == 8 else 65535
    dtype = np.uint8 if depth == 8 else np.uint16
    pixels = rng.integers(0, top + 1, size=(size * size, 3))
    ramp = np.linspace(0, top, 256).round().astype(int)
    pixels[:256] = ramp[:, None]
    corners = np.array([[r, g, b] for r in (0, top) for g in (0, top) for b in (0, top)])
    pixels[256:264] = corners
    return pixels.reshape(size, size, 3).astype(dtype)


def synthetic_luts() -> dict[str, LUT]:
    rng = np.random.default_rng(7)
    g17 = grid(17)
    smooth = np.clip(g17 + 0.08 * np.sin(3 * g17[..., [1, 2, 0]] + rng.uniform(0, 6, 3)), 0, 1)
    g9 = grid(9)
    nonlinear = np.stack([g9[..., 0] ** 3, np.sqrt(g9[..., 1] * g9[..., 2]), 1 - g9[..., 0] * g9[..., 1]], axis=-1)
    domain = np.array([[-0.1, 0.05, 0.0], [1.2, 0.9, 2.0]])
    gd = grid(12, domain)
    shaper = Shaper(np.linspace(0, 1, 16)[:, None] ** np.array([0.5, 0.45, 0.6]))
    return {
        "identity": LUT.identity(17),
        "smooth_random": LUT(smooth),
        "strongly_nonlinear": LUT(nonlinear),
        "non_unit_domain": LUT(np.clip(gd[..., [2, 0, 1]] * 0.7, 0, 1.5), domain),
        "shaper": LUT(np.clip(grid(9) ** 1.8, 0, 1), shaper=shaper),
    }


def cube_files(tmp_path: Path) -> list[Path]:
    paths = list(CORPUS)
    for name, lut in synthetic_luts().items():
        path = tmp_path / f"{name}.cube"
        write_lut(lut, path)
        paths.append(path)
    return paths


def run_infer(tmp_path: Path, cube: Path, depth: int, interpolation: str) -> tuple[np.ndarray, np.ndarray]:
    source = tmp_path / f"in{depth}.png"
    pixels = make_image(depth)
    save_image(ImageData(rgb=pixels, alpha=None, icc_profile=None, exif=None, format="PNG", path=source), source)
    out = tmp_path / f"out_{cube.stem}_{depth}_{interpolation}.png"
    infer(cube, [source], output_path=out, interpolation=interpolation)
    graded = load_image(out).rgb
    assert graded.dtype == pixels.dtype
    return pixels, graded


def assert_within_half_code(graded: np.ndarray, reference: np.ndarray, top: int, slack: float = 1e-6) -> None:
    """Every code value is the reference's rounding: within 0.5 (plus ``slack`` for the reference's own error)."""
    expected = np.clip(reference, 0, 1) * top
    error = np.abs(graded.astype(np.float64) - expected)
    assert error.max() <= 0.5 + slack, f"max error {error.max():.6f} code values"


@pytest.mark.parametrize("depth", [8, 16])
def test_trilinear_matches_colour_science(tmp_path, depth):
    top = 2**depth - 1
    for cube in cube_files(tmp_path):
        pixels, graded = run_infer(tmp_path, cube, depth, "trilinear")
        reference = colour_apply(cube, pixels / top)
        assert_within_half_code(graded, reference, top)


def ocio_tetrahedral(cube: Path, rgb: np.ndarray) -> np.ndarray:
    transform = ocio.FileTransform(str(cube), interpolation=ocio.INTERP_TETRAHEDRAL)
    processor = ocio.GetCurrentConfig().getProcessor(transform).getDefaultCPUProcessor()
    flat = np.ascontiguousarray(rgb.reshape(-1, 3), dtype=np.float32)
    processor.applyRGB(flat)
    return flat.reshape(rgb.shape).astype(np.float64)


@pytest.mark.parametrize("depth", [8, 16])
def test_tetrahedral_matches_opencolorio(tmp_path, depth):
    top = 2**depth - 1
    luts = synthetic_luts()
    luts.pop("shaper")  # OCIO's reader takes a shaper file only in Resolve form; covered by the trilinear test
    for name, lut in luts.items():
        cube = tmp_path / f"{name}.cube"
        write_lut(lut, cube)
        pixels, graded = run_infer(tmp_path, cube, depth, "tetrahedral")
        # OpenColorIO computes in float32: allow its rounding (a few 1e-7 of full scale) on top of half a code.
        assert_within_half_code(graded, ocio_tetrahedral(cube, pixels / top), top, slack=top * 3e-7)


def test_strength_blends_with_the_original(tmp_path):
    cube = DATA / "YahiaAngelo__colorslide__fuji_velvia_50.cube"
    pixels, full = run_infer(tmp_path, cube, 16, "trilinear")
    source = tmp_path / "in16.png"
    out = tmp_path / "half.png"
    infer(cube, [source], output_path=out, strength=0.5)
    half = load_image(out).rgb.astype(np.float64)
    expected = (pixels.astype(np.float64) + colour_apply(cube, pixels / 65535) * 65535) / 2
    assert np.abs(half - expected).max() <= 0.5 + 1e-6
    assert not np.array_equal(full, half)


def test_folder_in_folder_out_keeps_names_and_never_touches_inputs(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(make_image(8, 20 + i)).save(folder / f"p{i}.png")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = infer(DATA / "YahiaAngelo__bw__ilford_hp_5_plus_400.cube", [folder], output_dir=tmp_path / "out")
    assert sorted(p.name for p in result.written) == ["p0.png", "p1.png", "p2.png"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with pytest.raises(LutgenError, match="overwrite the input"):
        infer(DATA / "YahiaAngelo__bw__ilford_hp_5_plus_400.cube", [folder], output_dir=folder)


def test_several_images_need_an_output_dir(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for p in (a, b):
        Image.fromarray(make_image(8, 20)).save(p)
    with pytest.raises(OptionError, match="--output-dir"):
        infer(DATA / "colour-science__iridas_cube__Colour_Correct.cube", [a, b])


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("strength", 1.5, "--strength"),
        ("strength", float("nan"), "--strength"),
        ("interpolation", "cubic", "--interpolation"),
        ("quality", 0, "--quality"),
        ("device", "gpu", "--device"),
        ("device", "cuda:x", "--device"),
    ],
)
def test_bad_option_values(tmp_path, option, value, message):
    with pytest.raises(OptionError, match=message):
        infer(DATA / "colour-science__iridas_cube__Colour_Correct.cube", [tmp_path], **{option: value})


def test_unreadable_image_is_reported_and_the_rest_written(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(make_image(8, 20)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = infer(DATA / "colour-science__iridas_cube__Colour_Correct.cube", [good, bad], output_dir=tmp_path / "o")
    assert [p.name for p in result.written] == ["good.png"]
    assert [p.name for p, _ in result.failed] == ["bad.png"]


def test_reads_back_what_it_applies(tmp_path):
    """The LUT applied is the file's LUT: the corpus shaper file round-trips through our writer."""
    cube = DATA / "colour-science__resolve_cube__Three_Dimensional_Table_With_Shaper.cube"
    lut = read_lut(cube)
    copy = tmp_path / "copy.cube"
    write_lut(lut, copy)
    _, original = run_infer(tmp_path, cube, 16, "trilinear")
    _, rewritten = run_infer(tmp_path, copy, 16, "trilinear")
    assert np.abs(original.astype(int) - rewritten.astype(int)).max() <= 1


def test_output_path_problems_are_found_before_any_work(tmp_path):
    image = tmp_path / "a.png"
    Image.fromarray(make_image(8, 20)).save(image)
    cube = DATA / "colour-science__iridas_cube__Colour_Correct.cube"
    with pytest.raises(LutgenError, match="unknown image extension"):
        infer(cube, [image], output_path=tmp_path / "out.xyz")
    with pytest.raises(LutgenError, match="is a folder"):
        infer(cube, [image], output_path=tmp_path)
    with pytest.raises(LutgenError, match="is a folder, not a LUT file"):
        infer(tmp_path, [image], output_path=tmp_path / "out.png")
