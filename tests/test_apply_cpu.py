"""lutgen.color.cpu.apply_lut_array against float64 references, colour-science and OpenColorIO."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from reference import (
    apply_reference,
    apply_reference_codes,
    nonlinear_lut,
    random_colours,
    random_shaper,
    smooth_random_lut,
    tetrahedral_reference,
    trilinear_reference,
)

from lutgen.color.cpu import apply_lut_array
from lutgen.errors import OptionError
from lutgen.lut import LUT, Shaper, grid

INTERPOLATIONS = ("trilinear", "tetrahedral")
ODD_DOMAIN = np.array([[-0.5, -1.0, 0.2], [1.5, 0.5, 3.0]])
IDENTITY_SIZES = (2, 3, 16, 17, 33, 64, 65)


def _sample_luts() -> dict[str, LUT]:
    rng = np.random.default_rng(20240611)
    return {
        "smooth-17": smooth_random_lut(17, rng),
        "nonlinear-5": nonlinear_lut(5, rng),
        "odd-domain-9": nonlinear_lut(9, rng, ODD_DOMAIN),
        "shaper+3d": LUT(
            nonlinear_lut(6, rng, [[-0.1] * 3, [1.1] * 3]).table,
            [[-0.1] * 3, [1.1] * 3],
            shaper=random_shaper(40, rng, [[-0.25, 0.0, 0.1], [2.0, 1.0, 1.5]], out_range=(-0.2, 1.2)),
        ),
        "1d-only": LUT(None, shaper=random_shaper(300, rng, [[-0.25, 0.0, 0.1], [2.0, 1.0, 1.5]])),
    }


LUTS = _sample_luts()


def _test_colours(lut: LUT, count: int, seed: int) -> np.ndarray:
    """Random colours around the LUT's input domain, plus its corners and (for a 3D table) its nodes."""
    rng = np.random.default_rng(seed)
    parts = [random_colours(count, rng, lut.input_domain, margin=0.25)]
    d = lut.input_domain
    parts.append(np.array([[d[i, 0], d[j, 1], d[k, 2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)]))
    if lut.table is not None and lut.shaper is None:
        parts.append(grid(lut.size, lut.domain).reshape(-1, 3))
    return np.vstack(parts)


# ------------------------------------------------------------------------------------------------
# The references themselves
# ------------------------------------------------------------------------------------------------


def test_references_agree_on_an_affine_table():
    """Both interpolations reproduce an affine map exactly; a hand-checked anchor for the references."""
    rng = np.random.default_rng(1)
    matrix, offset = rng.normal(size=(3, 3)), rng.normal(size=3)
    table = grid(4, ODD_DOMAIN) @ matrix.T + offset
    x = random_colours(500, rng, ODD_DOMAIN, margin=0.0)
    expected = x @ matrix.T + offset
    np.testing.assert_allclose(trilinear_reference(x, table, ODD_DOMAIN), expected, atol=1e-12)
    np.testing.assert_allclose(tetrahedral_reference(x, table, ODD_DOMAIN), expected, atol=1e-12)


def test_hand_computed_values_on_a_2_cube():
    corners = np.arange(24, dtype=float).reshape(2, 2, 2, 3) ** 1.5  # table[b, g, r]: anything non-affine
    lut = LUT(corners)
    c = lambda r, g, b: corners[b, g, r]  # noqa: E731
    centre = np.array([[0.5, 0.5, 0.5]])
    mean_of_all = sum(c(r, g, b) for r in (0, 1) for g in (0, 1) for b in (0, 1)) / 8
    np.testing.assert_allclose(apply_lut_array(centre, lut, "trilinear")[0], mean_of_all, rtol=1e-14)
    np.testing.assert_allclose(apply_lut_array(centre, lut, "tetrahedral")[0], (c(0, 0, 0) + c(1, 1, 1)) / 2,
                               rtol=1e-14)
    # r > g > b: the path 000 -> 100 -> 110 -> 111 with weights 1-fr, fr-fg, fg-fb, fb = 1/4 each.
    point = np.array([[0.75, 0.5, 0.25]])
    expected = (c(0, 0, 0) + c(1, 0, 0) + c(1, 1, 0) + c(1, 1, 1)) / 4
    np.testing.assert_allclose(apply_lut_array(point, lut, "tetrahedral")[0], expected, rtol=1e-14)


# ------------------------------------------------------------------------------------------------
# Float images
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("name", LUTS)
def test_float64_matches_reference(name, interpolation):
    lut = LUTS[name]
    x = _test_colours(lut, 3000, seed=2)
    out = apply_lut_array(x, lut, interpolation)
    assert out.dtype == np.float64 and out.shape == x.shape
    np.testing.assert_allclose(out, apply_reference(x, lut, interpolation), rtol=0, atol=1e-9)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("name", LUTS)
def test_float32_matches_reference_to_float32_precision(name, interpolation):
    lut = LUTS[name]
    x = _test_colours(lut, 3000, seed=3).astype(np.float32)
    out = apply_lut_array(x, lut, interpolation)
    assert out.dtype == np.float32
    expected = apply_reference(x.astype(np.float64), lut, interpolation)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_any_leading_shape_and_input_left_alone():
    lut = LUTS["nonlinear-5"]
    x = np.random.default_rng(4).uniform(size=(2, 3, 5, 3))
    before = x.copy()
    out = apply_lut_array(x, lut)
    assert out.shape == x.shape
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(out.reshape(-1, 3), apply_lut_array(x.reshape(-1, 3), lut))
    np.testing.assert_array_equal(apply_lut_array(x[0, 0, 0], lut), out[0, 0, 0])  # a single colour (3,)
    assert apply_lut_array(np.empty((0, 3), np.uint8), lut).shape == (0, 3)


def test_non_contiguous_input():
    lut = LUTS["smooth-17"]
    image = np.random.default_rng(5).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    view = image[::2, ::-3]
    np.testing.assert_array_equal(apply_lut_array(view, lut), apply_lut_array(np.ascontiguousarray(view), lut))


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("channels", [3, 4])
def test_out_receives_the_graded_colours_and_a_fourth_channel_is_left_alone(dtype, channels, interpolation):
    lut = LUTS["shaper+3d"]
    rng = np.random.default_rng(6)
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1
    image = (rng.uniform(size=(7, 9, 3)) * top).astype(dtype)
    out = np.full((7, 9, channels), 3, dtype)
    graded = apply_lut_array(image, lut, interpolation, 0.7, out=out)
    np.testing.assert_array_equal(graded, apply_lut_array(image, lut, interpolation, 0.7))
    assert graded.shape == image.shape and np.shares_memory(graded, out)
    if channels == 4:
        np.testing.assert_array_equal(out[..., 3], 3)
    if np.issubdtype(dtype, np.integer):
        expected = apply_reference_codes(image.reshape(-1, 3), lut, interpolation, 0.7).reshape(image.shape)
        assert np.abs(graded - expected).max() <= 0.5 + 1e-9


def test_bad_out_is_refused():
    lut = LUTS["smooth-17"]
    image = np.zeros((4, 5, 3), np.uint8)
    for out in (np.empty((4, 5, 3), np.uint16), np.empty((4, 6, 3), np.uint8), np.empty((4, 5, 2), np.uint8),
                np.empty((4, 5, 5), np.uint8), np.empty((4, 10, 4), np.uint8)[:, ::2], image, [[0, 0, 0]]):
        with pytest.raises(ValueError, match="out must"):
            apply_lut_array(image, lut, out=out)


def test_nan_is_treated_as_the_domain_minimum():
    lut = LUTS["odd-domain-9"]
    x = np.array([[np.nan, 0.2, 1.0], [np.inf, -np.inf, 0.5]])
    out = apply_lut_array(x, lut)
    clamped = np.array([ODD_DOMAIN[0, 0], 0.2, 1.0]), np.array([ODD_DOMAIN[1, 0], ODD_DOMAIN[0, 1], 0.5])
    np.testing.assert_allclose(out, apply_reference(np.array(clamped), lut), atol=1e-12)


# ------------------------------------------------------------------------------------------------
# Integer images
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("name", LUTS)
def test_integer_output_is_the_rounded_reference(name, interpolation, dtype):
    lut = LUTS[name]
    rng = np.random.default_rng(6)
    maxv = np.iinfo(dtype).max
    codes = rng.integers(0, maxv + 1, size=(4000, 3)).astype(dtype)
    codes[:4] = [[0, 0, 0], [maxv, maxv, maxv], [0, maxv, 0], [maxv, 0, maxv]]
    out = apply_lut_array(codes, lut, interpolation)
    assert out.dtype == dtype
    expected = apply_reference_codes(codes, lut, interpolation)
    assert np.abs(out - expected).max() <= 0.5 + 1e-9
    # Away from ties the rounding is exactly the nearest code.
    away = np.abs(expected - np.floor(expected) - 0.5) > 1e-6
    np.testing.assert_array_equal(out[away], np.round(expected[away]))


@pytest.mark.parametrize("size", [2, 33, 80])  # 80 nodes: too large for the 8-bit red-interpolated table
@pytest.mark.parametrize("strength", [1.0, 0.4, 0.0, 1.3])
@pytest.mark.parametrize("parallel", [True, False])
def test_uint8_trilinear_on_every_table_size_and_strength_is_the_rounded_reference(size, strength, parallel):
    lut = smooth_random_lut(size, np.random.default_rng(size))
    codes = np.random.default_rng(8).integers(0, 256, size=(20000, 3)).astype(np.uint8)
    codes[:8] = [[0, 0, 0], [255, 255, 255], [0, 255, 0], [255, 0, 255], [1, 254, 128], [128, 1, 254], [7, 7, 7],
                 [254, 128, 1]]
    out = apply_lut_array(codes, lut, "trilinear", strength, parallel)
    expected = apply_reference_codes(codes, lut, "trilinear", strength)
    away = np.abs(expected - np.floor(expected) - 0.5) > 1e-6
    assert away.mean() > 0.99
    np.testing.assert_array_equal(out[away], np.round(expected[away]))
    if strength == 0.0:
        np.testing.assert_array_equal(out, codes)


def test_integer_output_is_clipped():
    table = grid(3) * 3.0 - 1.0  # outputs from -1 to 2
    lut = LUT(table)
    codes = np.array([[0, 0, 0], [255, 255, 255], [40, 128, 220]], dtype=np.uint8)
    out = apply_lut_array(codes, lut)
    expected = np.clip(np.round(codes / 255 * 3 * 255 - 255), 0, 255)
    np.testing.assert_array_equal(out, expected)


# ------------------------------------------------------------------------------------------------
# Identity and strength
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("size", IDENTITY_SIZES)
def test_identity_returns_the_input(size, interpolation):
    lut = LUT.identity(size)
    rng = np.random.default_rng(size)
    x = rng.uniform(size=(2000, 3))
    np.testing.assert_allclose(apply_lut_array(x, lut, interpolation), x, rtol=0, atol=1e-6)
    np.testing.assert_allclose(apply_lut_array(x.astype(np.float32), lut, interpolation), x.astype(np.float32),
                               rtol=0, atol=1e-6)
    # Every code of every channel, in shuffled combinations.
    for dtype in (np.uint8, np.uint16):
        every = np.arange(np.iinfo(dtype).max + 1, dtype=dtype)
        codes = np.stack([rng.permutation(every) for _ in range(3)], axis=-1)
        np.testing.assert_array_equal(apply_lut_array(codes, lut, interpolation), codes)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("name", LUTS)
def test_strength_zero_returns_the_input_exactly(name, dtype, interpolation):
    lut = LUTS[name]
    rng = np.random.default_rng(7)
    if np.issubdtype(dtype, np.integer):
        x = rng.integers(0, np.iinfo(dtype).max + 1, size=(500, 3)).astype(dtype)
    else:
        x = _test_colours(lut, 500, seed=7).astype(dtype)
    np.testing.assert_array_equal(apply_lut_array(x, lut, interpolation, strength=0.0), x)


@pytest.mark.parametrize("name", LUTS)
def test_strength_half_is_the_midpoint(name):
    lut = LUTS[name]
    x = _test_colours(lut, 1000, seed=8)
    full = apply_reference(x, lut)
    np.testing.assert_allclose(apply_lut_array(x, lut, strength=0.5), (x + full) / 2, rtol=0, atol=1e-9)
    codes = np.random.default_rng(8).integers(0, 256, size=(1000, 3)).astype(np.uint8)
    full_codes = apply_reference(codes / 255, lut) * 255  # not clipped before blending
    expected = np.clip((codes + full_codes) / 2, 0, 255)
    assert np.abs(apply_lut_array(codes, lut, strength=0.5) - expected).max() <= 0.5 + 1e-9


def test_strength_extrapolates_linearly():
    lut = LUTS["smooth-17"]
    x = np.random.default_rng(9).uniform(size=(300, 3))
    full = apply_lut_array(x, lut)
    np.testing.assert_allclose(apply_lut_array(x, lut, strength=1.5), x + 1.5 * (full - x), atol=1e-12)


def test_tetrahedral_differs_from_trilinear_on_a_nonlinear_table():
    lut = LUTS["nonlinear-5"]
    x = np.random.default_rng(10).uniform(size=(300, 3))
    assert np.abs(apply_lut_array(x, lut, "tetrahedral") - apply_lut_array(x, lut, "trilinear")).max() > 0.01


# ------------------------------------------------------------------------------------------------
# Bad arguments
# ------------------------------------------------------------------------------------------------


def test_bad_arguments():
    lut = LUT.identity(2)
    with pytest.raises(OptionError):
        apply_lut_array(np.zeros((1, 3)), lut, "cubic")
    with pytest.raises(OptionError):
        apply_lut_array(np.zeros((1, 3)), lut, strength=float("nan"))
    with pytest.raises(ValueError):
        apply_lut_array(np.zeros((2, 4)), lut)
    with pytest.raises(ValueError):
        apply_lut_array(np.zeros((2, 3), dtype=np.int32), lut)


# ------------------------------------------------------------------------------------------------
# Independent implementations
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def colour():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
    return colour


@pytest.mark.parametrize("name", ["smooth-17", "nonlinear-5", "odd-domain-9"])
def test_trilinear_matches_colour_science(colour, name):
    lut = LUTS[name]
    x = _test_colours(lut, 3000, seed=11)
    theirs = colour.LUT3D(lut.table.transpose(2, 1, 0, 3), domain=lut.domain).apply(x)
    np.testing.assert_allclose(apply_lut_array(x, lut, "trilinear"), theirs, rtol=0, atol=1e-9)


def test_shaper_and_table_match_colour_science(colour):
    lut = LUTS["shaper+3d"]
    shaper = colour.LUT3x1D(lut.shaper.table, domain=lut.shaper.domain)
    table = colour.LUT3D(lut.table.transpose(2, 1, 0, 3), domain=lut.domain)
    x = random_colours(3000, np.random.default_rng(12), lut.shaper.domain, margin=0.0)  # colour cannot clamp 1D
    theirs = colour.LUTSequence(shaper, table).apply(x)
    np.testing.assert_allclose(apply_lut_array(x, lut, "trilinear"), theirs, rtol=0, atol=1e-9)


def test_uint8_trilinear_is_within_one_code_of_pillow():
    from PIL import Image, ImageFilter

    lut = LUTS["smooth-17"]
    image = np.random.default_rng(14).integers(0, 256, size=(64, 80, 3), dtype=np.uint8)
    pillow_filter = ImageFilter.Color3DLUT(lut.size, lut.table.reshape(-1).tolist())
    theirs = np.asarray(Image.fromarray(image).filter(pillow_filter)).astype(int)
    ours = apply_lut_array(image, lut, "trilinear").astype(int)
    assert np.abs(ours - theirs).max() <= 1  # Pillow interpolates with 8-bit fixed-point weights


def _write_cube(path, lut: LUT) -> None:
    """A .cube file OpenColorIO reads: Adobe style with DOMAIN lines, or Resolve style with a shaper."""
    def row(values):
        return " ".join(repr(float(v)) for v in values)

    if lut.shaper is not None:
        header = [f"LUT_1D_SIZE {lut.shaper.size}", f"LUT_1D_INPUT_RANGE {row(lut.shaper.domain[:, 0])}",
                  f"LUT_3D_SIZE {lut.size}", f"LUT_3D_INPUT_RANGE {row(lut.domain[:, 0])}"]
        rows = [*lut.shaper.table, *lut.table.reshape(-1, 3)]
    else:
        header = [f"LUT_3D_SIZE {lut.size}", f"DOMAIN_MIN {row(lut.domain[0])}", f"DOMAIN_MAX {row(lut.domain[1])}"]
        rows = list(lut.table.reshape(-1, 3))
    path.write_text("\n".join(header + [row(r) for r in rows]) + "\n")


OCIO_LUTS = {
    "nonlinear-5": LUTS["nonlinear-5"],
    "odd-domain-9": LUTS["odd-domain-9"],
    "shaper+3d": LUT(  # Resolve files hold one range for all channels
        LUTS["shaper+3d"].table, [[-0.1] * 3, [1.1] * 3],
        shaper=Shaper(LUTS["shaper+3d"].shaper.table, [[-0.25] * 3, [2.0] * 3]),
    ),
}


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("name", OCIO_LUTS)
def test_matches_opencolorio(tmp_path, name, interpolation):
    ocio = pytest.importorskip("PyOpenColorIO")
    lut = OCIO_LUTS[name]
    path = tmp_path / f"{name}-{interpolation}.cube"
    _write_cube(path, lut)
    mode = ocio.INTERP_TETRAHEDRAL if interpolation == "tetrahedral" else ocio.INTERP_LINEAR
    transform = ocio.FileTransform(src=str(path), interpolation=mode, direction=ocio.TRANSFORM_DIR_FORWARD)
    processor = ocio.Config.CreateRaw().getProcessor(transform).getDefaultCPUProcessor()
    x = _test_colours(lut, 3000, seed=13).astype(np.float32)
    theirs = x.copy()
    processor.applyRGB(theirs)
    ours = apply_lut_array(x, lut, interpolation)
    scale = np.abs(lut.table).max()  # OCIO computes in float32
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=4e-6 * scale)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
