"""The LUT toolbox: float64 sampling, convert, combine, invert and mix, against independent references.

References: the float64 interpolation of ``tests/reference.py``, the compiled CPU applier, hand-built
tables whose compositions and blends are known in closed form, and the files read back.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_runner import one_sentence_error, run_lutgen
from lutgen.color.cpu import apply_lut_array
from lutgen.color.sampling import compare, dense_sample, evaluate, fidelity, psnr, resample
from lutgen.errors import LutgenError, OptionError
from lutgen.formats import read_lut, write_lut
from lutgen.lut import LUT, UNIT_DOMAIN, Shaper, grid
from lutgen.tasks import invert as invert_task
from lutgen.tasks.combine import compose, default_size
from lutgen.tasks.convert import convert, exact_decimals
from lutgen.tasks.invert import (best_shaper, inverse, inverse_domain, invert, solve_inputs, stretched_nodes,
                                 stretching_curve, stretching_shaper, why_not_invertible)
from lutgen.tasks.mix import blend, mix
from reference import apply_reference, nonlinear_lut, random_colours, random_shaper, smooth_random_lut

ROOT = Path(__file__).resolve().parents[1]
VELVIA = ROOT / "lutgen" / "data" / "luts" / "fuji_velvia_50.cube"
HP5 = ROOT / "lutgen" / "data" / "luts" / "ilford_hp5_plus_400.cube"
PHOTOS = ("astronaut.jpg", "coffee.jpg", "flower.jpg", "china.jpg", "mate_garden.jpg")
MIX = np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.1, 0.9]])


def shaped_lut(seed: int = 0) -> LUT:
    """A nonlinear 9^3 table over a non-unit, per-channel domain after a random shaper."""
    rng = np.random.default_rng(seed)
    table = nonlinear_lut(9, rng, domain=[[-0.1, 0.0, 0.1], [1.2, 1.0, 0.9]])
    shaper = random_shaper(20, rng, domain=[[-0.2, 0.0, 0.0], [1.1, 1.0, 1.0]], out_range=(-0.1, 1.2))
    return LUT(table.table, table.domain, shaper=shaper)


def smooth_invertible_lut(size: int = 17) -> LUT:
    """Per-channel gammas (0.8, 0.9, 1.1) then a mild channel mix whose rows sum to 1."""
    return LUT((grid(size) ** np.array([0.8, 0.9, 1.1])) @ MIX.T)


def srgb_eotf_lut(size: int = 8) -> LUT:
    """The sRGB EOTF (IEC 61966-2-1, in float64, odd-symmetric below 0) per channel, over the per-channel
    domain of colour-science's ``eotf_sRGB_3D.cube``: one steep curve per channel whose outputs reach 12.8,
    far beyond the domain it reads."""
    domain = np.array([[-0.1, -0.15, -0.2], [1.5, 2.0, 3.0]])
    v = grid(size, domain)
    a = np.abs(v)
    return LUT(np.sign(v) * np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4), domain)


def photos(reduce: int = 8) -> list[np.ndarray]:
    return [np.asarray(Image.open(ROOT / "images" / name).convert("RGB").reduce(reduce)) for name in PHOTOS]


# --- sampling -------------------------------------------------------------------------------------


@pytest.mark.parametrize("interpolation", ["trilinear", "tetrahedral"])
def test_evaluate_is_the_cpu_applier_in_float64(interpolation):
    lut = shaped_lut()
    x = random_colours(50_000, np.random.default_rng(1), lut.input_domain, margin=0.3)
    x[:5] = np.nan
    assert np.array_equal(evaluate(lut, x, interpolation), apply_lut_array(x, lut, interpolation))
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(evaluate(lut, x32, interpolation), apply_lut_array(x32, lut, interpolation),
                               rtol=0, atol=2e-6)


def test_evaluate_matches_the_float64_reference_for_any_shape():
    lut = shaped_lut(2)
    x = random_colours(6 * 7 * 8, np.random.default_rng(3), lut.input_domain).reshape(6, 7, 8, 3)
    for interpolation in ("trilinear", "tetrahedral"):
        expected = apply_reference(x.reshape(-1, 3), lut, interpolation).reshape(x.shape)
        np.testing.assert_allclose(evaluate(lut, x, interpolation), expected, rtol=0, atol=1e-12)


def test_resample_refines_a_trilinear_lut_exactly():
    lut = nonlinear_lut(9, np.random.default_rng(4))
    fine = resample(lut, 17)  # every fine cell lies inside one coarse cell: the same multilinear function
    x = dense_sample(lut.domain, 20_000)
    np.testing.assert_allclose(evaluate(fine, x), evaluate(lut, x), rtol=0, atol=1e-12)
    assert fidelity(lut, fine, 20_000) > 200
    same = resample(lut, 9)
    np.testing.assert_allclose(same.table, lut.table, rtol=0, atol=1e-15)


def test_resample_bakes_shaper_and_domain_into_a_plain_lattice():
    lut = shaped_lut(5)
    plain = resample(lut, 11)
    assert plain.shaper is None and np.array_equal(plain.domain, lut.input_domain)
    nodes = grid(11, lut.input_domain).reshape(-1, 3)
    np.testing.assert_allclose(plain.table.reshape(-1, 3), apply_reference(nodes, lut), rtol=0, atol=1e-12)


def test_fidelity_is_the_psnr_of_the_difference():
    lut = nonlinear_lut(5, np.random.default_rng(6))
    shifted = lut.with_table(lut.table + 0.01)  # every output off by 0.01: MSE 1e-4, PSNR 40 dB
    assert fidelity(lut, shifted, 5000) == pytest.approx(40.0, abs=1e-9)
    assert psnr(np.zeros(3), np.zeros(3)) == float("inf")
    d = compare(np.full((4, 3), 0.5), np.full((4, 3), 0.5 + 2 / 255))
    assert d.max_code == pytest.approx(2) and d.mean_code == pytest.approx(2)


# --- convert --------------------------------------------------------------------------------------


def test_convert_cube_to_cube_same_size_is_bit_exact(tmp_path):
    source = tmp_path / "a.cube"
    write_lut(smooth_random_lut(11, np.random.default_rng(7)), source)
    result = run_lutgen("convert", source, tmp_path / "b.cube")
    assert result.returncode == 0, result.stderr
    assert "lossless" in result.stdout
    a, b = read_lut(source), read_lut(tmp_path / "b.cube")
    assert np.array_equal(a.table, b.table) and np.array_equal(a.domain, b.domain)


def test_convert_keeps_values_needing_more_decimals(tmp_path):
    converted = convert(VELVIA, tmp_path / "v.cube")
    back, source = read_lut(tmp_path / "v.cube"), read_lut(VELVIA)
    # the bundled file has 17 significant digits; 15 decimals keep it within 1e-15
    np.testing.assert_allclose(back.table, source.table, rtol=0, atol=1e-15)
    assert converted.resampled_to is None and converted.difference.max_code < 1e-12
    assert exact_decimals(LUT(np.full((2, 2, 2, 3), 0.125))) == 6
    assert exact_decimals(LUT(np.full((2, 2, 2, 3), 0.1234567))) == 7


def test_convert_with_size_resamples_and_reports_the_fidelity(tmp_path):
    result = run_lutgen("convert", VELVIA, tmp_path / "v33.cube", "--size", "33")
    assert result.returncode == 0, result.stderr
    out = read_lut(tmp_path / "v33.cube")
    source = read_lut(VELVIA)
    assert out.size == 33
    expected = apply_reference(grid(33).reshape(-1, 3), source).reshape(out.table.shape)
    np.testing.assert_allclose(out.table, expected, rtol=0, atol=5e-7)
    printed = float(re.search(r"PSNR ([0-9.]+) dB", result.stdout).group(1))
    assert printed == pytest.approx(fidelity(source, out), abs=0.01)
    assert "resampled to 33^3" in result.stdout


def test_convert_reports_what_the_target_file_reads_back_as(tmp_path):
    lut = shaped_lut(8)
    source = tmp_path / "shaped.cube"  # Resolve style: shaper and table, one range for all channels
    write_lut(LUT(lut.table, [[0, 0, 0], [1, 1, 1]], shaper=Shaper(lut.shaper.table)), source, decimals=12)
    kept = convert(source, tmp_path / "same.cube")
    assert kept.lossless and read_lut(tmp_path / "same.cube").shaper is not None
    pytest.importorskip("lutgen.formats.hald")
    with pytest.warns(Warning):  # the table leaves 0..1, which an image cannot hold
        result = convert(source, tmp_path / "hald.png")
    back, read = read_lut(tmp_path / "hald.png"), read_lut(source)
    x = dense_sample(read.input_domain)
    assert result.difference == compare(evaluate(back, x), evaluate(read, x))
    assert not result.lossless


@pytest.mark.parametrize("extension", [".png", ".tif", ".3dl", ".csp", ".spi3d", ".clf"])
def test_convert_to_every_format_and_back(tmp_path, extension):
    try:
        from lutgen.formats import format_module

        format_module(Path("x" + extension), "write")
    except ImportError:
        pytest.skip(f"no {extension} module yet")
    there = convert(VELVIA, tmp_path / ("v" + extension))
    back = convert(tmp_path / ("v" + extension), tmp_path / "back.cube")
    assert back.lossless or back.difference.max_code < 1e-6  # .cube holds what any format read back
    assert there.difference.psnr_db > 40
    if extension in (".png", ".tif"):  # a Hald image holds level^2 nodes: 13 becomes level 4, 16 nodes
        assert there.resampled_to == 16 and ".png writer" in there.reason.replace(".tif", ".png")
    else:
        assert there.resampled_to is None


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("convert", VELVIA, "out.xyz"), ("out.xyz", "'.xyz'")),
        (("convert", "missing.cube", "out.cube"), ("missing.cube",)),
        (("convert", VELVIA, "out.cube", "--size", "1"), ("--size",)),
        (("convert", VELVIA, "out.cube", "--interpolation", "cubic"), ("interpolation",)),
        (("convert", VELVIA, VELVIA), ("refusing to overwrite",)),
    ],
)
def test_convert_errors_are_one_sentence(tmp_path, args, fragments):
    one_sentence_error(run_lutgen(*args, cwd=tmp_path), *fragments)


def test_convert_names_the_line_of_a_malformed_file(tmp_path):
    bad = tmp_path / "bad.cube"
    bad.write_text("LUT_3D_SIZE 2\n0 0 0\n1 x 0\n")
    one_sentence_error(run_lutgen("convert", bad, tmp_path / "out.cube"), "bad.cube", "line")
    assert not (tmp_path / "out.cube").exists()


# --- combine --------------------------------------------------------------------------------------


def test_combining_linear_luts_is_exact():
    gains = LUT(grid(5) * np.array([0.9, 0.7, 0.5]))
    matrix = LUT(grid(3) @ MIX.T)
    combined = compose([gains, matrix], 33)
    x = dense_sample(gains.domain, 20_000)
    np.testing.assert_allclose(evaluate(combined, x), (x * [0.9, 0.7, 0.5]) @ MIX.T, rtol=0, atol=1e-12)


def test_combine_keeps_the_first_shaper_and_is_exact_at_the_nodes():
    first, second = shaped_lut(9), nonlinear_lut(7, np.random.default_rng(10))
    combined = compose([first, second], 13)
    assert combined.shaper is first.shaper and np.array_equal(combined.domain, first.domain)
    nodes = grid(13, first.domain).reshape(-1, 3)
    expected = apply_reference(apply_reference(nodes, LUT(first.table, first.domain)), second)
    np.testing.assert_allclose(combined.table.reshape(-1, 3), expected, rtol=0, atol=1e-12)
    assert default_size([first, second]) == 33 and default_size([LUT.identity(40), second]) == 40


def test_combine_after_a_1d_lut_samples_the_range_of_its_outputs():
    curves = LUT(None, shaper=Shaper(np.linspace(0, 1, 5)[:, None] ** [1.0, 2.0, 0.5]))
    square = LUT(grid(5) ** 2)
    combined = compose([curves, square], 17)
    assert combined.shaper is curves.shaper and np.array_equal(combined.domain, [[0, 0, 0], [1, 1, 1]])
    x = dense_sample(curves.input_domain, 20_000)
    np.testing.assert_allclose(evaluate(combined, x), apply_reference(apply_reference(x, curves), square),
                               rtol=0, atol=1e-12)
    flat = LUT(None, shaper=Shaper(np.full((4, 3), 0.3)))  # a constant: the lattice gets a tiny span
    # 0.3 lies between the nodes 0.25 and 0.5
    np.testing.assert_allclose(evaluate(compose([flat, square], 9), x), 0.1, rtol=0, atol=1e-12)


def test_combine_samples_the_first_shaper_into_the_table_when_the_chain_undoes_it(tmp_path):
    """A 5-node curve as a shaper, then its inverse as a 1D LUT: the chain is the identity (to the inverse's
    sampling, 1e-4), which one plain lattice holds, while a table after the kept shaper would have to follow
    the inverse's kinks between its nodes. combine keeps the closer of the two, and says so."""
    knots, values = np.linspace(0, 1, 5), np.array([0.0, 0.4, 0.7, 0.9, 1.0])
    curve = LUT(grid(2), shaper=Shaper(np.repeat(values[:, None], 3, axis=1)))
    v = np.linspace(0, 1, 4097)
    undo = LUT(None, shaper=Shaper(np.repeat(np.interp(v, values, knots)[:, None], 3, axis=1)))
    write_lut(curve, tmp_path / "curve.cube", decimals=12)
    write_lut(undo, tmp_path / "undo.cube", decimals=12)
    x = dense_sample(UNIT_DOMAIN, 20_000)
    kept = compare(evaluate(compose([curve, undo], 33), x), x)
    result = run_lutgen("combine", tmp_path / "curve.cube", tmp_path / "undo.cube", "-o", tmp_path / "c.cube")
    assert result.returncode == 0, result.stderr
    assert "the first LUT's shaper sampled into the table" in result.stdout
    combined = read_lut(tmp_path / "c.cube")
    assert combined.shaper is None and combined.size == 33
    assert compare(evaluate(combined, x), x).max_code < 0.05 < 1 < kept.max_code  # 1.6 code values kept
    threedl = run_lutgen("combine", tmp_path / "curve.cube", tmp_path / "undo.cube", "-o", tmp_path / "c.3dl")
    assert "the first LUT's shaper sampled into the table" in threedl.stdout  # .3dl holds no shaper: one table
    plain = run_lutgen("combine", VELVIA, HP5, "-o", tmp_path / "v.cube", "--size", "17")
    assert "sampled" not in plain.stdout  # Velvia has no shaper: nothing to choose


def test_combine_cli_prints_the_error_against_the_chain(tmp_path):
    result = run_lutgen("combine", VELVIA, HP5, "-o", tmp_path / "c.cube", "--size", "17")
    assert result.returncode == 0, result.stderr
    out = read_lut(tmp_path / "c.cube")
    x = dense_sample(out.domain)
    chain = apply_reference(apply_reference(x, read_lut(VELVIA)), read_lut(HP5))
    expected = compare(evaluate(out, x), chain)
    printed = re.search(r"max ([0-9.e-]+), mean ([0-9.e-]+) 8-bit code values, PSNR ([0-9.]+)", result.stdout)
    assert float(printed.group(1)) == pytest.approx(expected.max_code, rel=1e-3)
    assert float(printed.group(2)) == pytest.approx(expected.mean_code, rel=1e-3)
    assert float(printed.group(3)) == pytest.approx(expected.psnr_db, abs=0.01)


def test_combine_errors_are_one_sentence(tmp_path):
    one_sentence_error(run_lutgen("combine", VELVIA, "-o", tmp_path / "c.cube"), "at least two")
    one_sentence_error(run_lutgen("combine", VELVIA, HP5, "-o", VELVIA), "refusing to overwrite")


# --- mix ------------------------------------------------------------------------------------------


def test_mix_with_the_identity_is_exact_node_by_node():
    lut = nonlinear_lut(6, np.random.default_rng(11), domain=[[0, -0.5, 0], [2, 1, 1]])
    mixed, exact = blend(lut, None, 0.25)
    assert exact
    np.testing.assert_array_equal(mixed.table, 0.75 * grid(6, lut.domain) + 0.25 * lut.table)
    assert blend(lut, None, 0.0)[0].is_identity(1e-15)
    np.testing.assert_array_equal(blend(lut, None, 1.0)[0].table, lut.table)


def test_mix_of_two_luts_and_of_1d_luts():
    rng = np.random.default_rng(12)
    a, b = nonlinear_lut(5, rng), nonlinear_lut(5, rng)
    mixed, exact = blend(a, b, 0.6)
    assert exact and np.array_equal(mixed.table, 0.4 * a.table + 0.6 * b.table)
    shaper = random_shaper(10, rng)
    one_d, exact = blend(LUT(None, shaper=shaper), None, 0.5)
    assert exact and np.array_equal(one_d.shaper.table, 0.5 * Shaper.identity(10).table + 0.5 * shaper.table)


def test_mix_resamples_different_lattices_to_a_common_one(tmp_path):
    a, b = smooth_random_lut(9, np.random.default_rng(13)), smooth_random_lut(17, np.random.default_rng(14))
    mixed, exact = blend(a, b, 0.3)
    assert not exact and mixed.size == 33
    nodes = grid(33).reshape(-1, 3)
    expected = 0.7 * apply_reference(nodes, a) + 0.3 * apply_reference(nodes, b)
    np.testing.assert_allclose(mixed.table.reshape(-1, 3), expected, rtol=0, atol=1e-12)
    write_lut(a, tmp_path / "a.cube")
    write_lut(b, tmp_path / "b.cube")
    result = mix(tmp_path / "a.cube", tmp_path / "b.cube", 0.3, tmp_path / "m.cube")
    assert result.difference.max_code < 2 and not result.exact


def test_mix_cli_and_its_errors(tmp_path):
    result = run_lutgen("mix", VELVIA, "--strength", "0.6", "-o", tmp_path / "m.cube")
    assert result.returncode == 0, result.stderr
    assert "node by node (exact)" in result.stdout
    expected = 0.4 * grid(13) + 0.6 * read_lut(VELVIA).table
    np.testing.assert_allclose(read_lut(tmp_path / "m.cube").table, expected, rtol=0, atol=1e-15)
    one_sentence_error(run_lutgen("mix", VELVIA, "--strength", "1.5", "-o", tmp_path / "x.cube"), "--strength")
    one_sentence_error(run_lutgen("mix", VELVIA, "--strength", "0.5", "-o", VELVIA), "refusing to overwrite")
    with pytest.raises(OptionError):
        blend(LUT.identity(2), None, float("nan"))


# --- invert ---------------------------------------------------------------------------------------


def test_inverse_of_a_smooth_lut_combined_with_it_is_the_identity_on_photos():
    lut = smooth_invertible_lut()
    inv, unreachable = inverse(lut, 33)
    identity = compose([lut, inv], 33)
    for image in photos():
        assert np.abs(apply_lut_array(image, identity).astype(int) - image).max() <= 1
    reachable = np.abs(evaluate(lut, np.clip(inv.table, 0, 1)) - grid(33)).max(axis=-1) < 1e-9
    assert 0.5 < reachable.mean() == pytest.approx(1 - unreachable, abs=0.01)


def test_solved_inputs_reach_the_colours_the_lut_produces():
    lut = read_lut(VELVIA)
    x = dense_sample(lut.domain, 3000, seed=5)
    y = evaluate(lut, x)
    solved = solve_inputs(lut, y)
    np.testing.assert_allclose(evaluate(lut, np.clip(solved, 0, 1)), y, rtol=0, atol=1e-6)


def test_nodes_beyond_the_gamut_are_refitted_to_send_the_colours_at_its_edge_back(monkeypatch):
    """Velvia squeezes colours against the edge of its gamut, where the linear continuation follows it badly;
    the refit leaves every reached node as it is and about halves the summed squared round-trip error of the
    colours it produces in the cells at that edge (random inputs, not the grid it was fitted to). Only
    trilinear, extended inverses are refitted."""
    lut = read_lut(VELVIA)
    fitted, unreachable = inverse(lut, 17)
    fitted_tetrahedral, _ = inverse(lut, 17, "tetrahedral")
    clamped, _ = inverse(lut, 17, extend=False)
    monkeypatch.setattr(invert_task, "fit_gamut_edge", lambda lut, inv, unreachable: inv)
    continued, _ = inverse(lut, 17)
    np.testing.assert_array_equal(inverse(lut, 17, "tetrahedral")[0].table, fitted_tetrahedral.table)
    np.testing.assert_array_equal(inverse(lut, 17, extend=False)[0].table, clamped.table)

    reached = np.abs(evaluate(lut, np.clip(continued.table, 0, 1)) - grid(17)).max(axis=-1) <= 0.5 / 255
    assert 0.3 < unreachable < 0.9 and reached.mean() == pytest.approx(1 - unreachable, abs=1e-9)
    np.testing.assert_array_equal(fitted.table[reached], continued.table[reached])
    assert np.any(fitted.table[~reached] != continued.table[~reached])
    x = random_colours(200_000, np.random.default_rng(3), lut.input_domain, margin=0)
    y = evaluate(lut, x)
    cell = np.clip((y * 16).astype(int), 0, 15)  # the cell of the inverse each colour falls in
    at_edge = np.zeros(len(x), bool)
    for corner in np.ndindex(2, 2, 2):
        r, g, b = (cell + corner).T
        at_edge |= ~reached[b, g, r]
    assert 0.05 < at_edge.mean() < 0.95
    errors = [np.sum((evaluate(inv, y[at_edge]) - x[at_edge]) ** 2) for inv in (fitted, continued)]
    assert errors[0] < 0.6 * errors[1], errors  # 0.48 here
    np.testing.assert_array_equal(evaluate(fitted, y[~at_edge]), evaluate(continued, y[~at_edge]))


def test_clamped_inverse_stays_in_the_domain_and_is_worse_at_the_gamut_edge():
    lut = smooth_invertible_lut()
    clamped, _ = inverse(lut, 17, extend=False)
    assert clamped.table.min() >= 0 and clamped.table.max() <= 1
    extended, _ = inverse(lut, 17)
    image = photos()[4]
    errors = [np.abs(apply_lut_array(image, compose([lut, inv], 33)).astype(int) - image).max()
              for inv in (clamped, extended)]
    assert errors[1] < errors[0]


def test_velvia_inverse_measured_on_photos():
    """The bundled Velvia squeezes some saturated colours (smallest singular value of its Jacobian
    0.04), so a 33^3 inverse cannot follow them everywhere: most pixels come back within 1 code value."""
    lut = read_lut(VELVIA)
    assert why_not_invertible(lut) is None
    identity = compose([lut, inverse(lut, 33)[0]], 33)
    within = [(np.abs(apply_lut_array(im, identity).astype(int) - im).max(-1) <= 1).mean() for im in photos()]
    assert min(within) > 0.75 and np.mean(within) > 0.85


def test_velvia_folds_some_colours_onto_others():
    """Why no inverse of Velvia brings every pixel back: it sends the green (20, 105, 4) of mate_raindrops.jpg
    and another colour nearly 20 code values away to the same output (to 4e-15 of a code value here)."""
    lut = read_lut(VELVIA)
    x = np.array([[20.0, 105.0, 4.0]]) / 255
    other = solve_inputs(lut, evaluate(lut, x))
    assert np.abs(other - x).max() * 255 > 15
    assert np.abs(evaluate(lut, other) - evaluate(lut, x)).max() * 255 < 1e-9


def test_invert_reports_the_share_of_cells_that_squeeze_colours(tmp_path):
    """Velvia squeezes colours 20 times or more in some cells (Jacobian determinant below 0.05, here from
    central differences of the interpolated LUT at each cell's centre): invert says how many, in a warning;
    a smooth invertible LUT has none and gets no warning."""
    lut = read_lut(VELVIA)
    n, h = lut.size, 1e-7
    centres = (grid(n - 1).reshape(-1, 3) * (n - 2) + 0.5) / (n - 1)  # the centre of every cell
    jacobian = np.stack([(evaluate(lut, centres + h * e) - evaluate(lut, centres - h * e)) / (2 * h)
                         for e in np.eye(3)], axis=-1)
    expected = np.mean(np.abs(np.linalg.det(jacobian)) < 0.05)
    assert 0.1 < expected < 0.25
    assert invert(VELVIA, tmp_path / "v.cube").squeezed_share == pytest.approx(expected, abs=2 / (n - 1) ** 3)
    result = run_lutgen("invert", VELVIA, "-o", tmp_path / "v2.cube")
    assert result.returncode == 0, result.stderr
    assert f"warning: {100 * expected:.0f}% of the LUT's cells squeeze colours 20 times or more" in result.stderr
    source = tmp_path / "smooth.cube"
    write_lut(smooth_invertible_lut(9), source, decimals=12)
    assert invert(source, tmp_path / "s.cube", 17).squeezed_share == 0
    assert "warning" not in run_lutgen("invert", source, "-o", tmp_path / "s2.cube", "--size", "17").stderr


def test_the_stretching_shaper_sends_each_stretched_node_to_its_place_on_the_table(monkeypatch):
    """The shaper is the stretching curve at even steps; lutgen applying it sends node k of 65 to k / 64 exactly;
    the curve is smoothstep's inverse crowded further by a logarithm at both ends, as its definition says."""
    domain = np.array([[0.0, -0.5, 0.0], [1.0, 1.5, 4.0]])
    shaper = stretching_shaper(domain, samples=1001)
    np.testing.assert_array_equal(shaper.table, stretching_curve(np.linspace(0, 1, 1001))[:, None].repeat(3, 1))
    np.testing.assert_array_equal(shaper.domain, domain)
    nodes = stretched_nodes(65)
    shaper_only = LUT(None, shaper=stretching_shaper(UNIT_DOMAIN))
    np.testing.assert_allclose(evaluate(shaper_only, nodes[:, None].repeat(3, 1)),
                               np.linspace(0, 1, 65)[:, None].repeat(3, 1), rtol=0, atol=1e-12)
    assert nodes[0] == 0 and nodes[-1] == 1 and np.all(np.diff(nodes) > 0)
    np.testing.assert_allclose(nodes + nodes[::-1], 1, rtol=0, atol=1e-12)  # as crowded at 1 as at 0
    assert nodes[1] * 255 < 0.05 and nodes[4] * 255 < 0.7  # five nodes within the first code value
    assert np.diff(nodes).max() < 1.9 / 64  # and the middle ones are under twice the even spacing apart

    t = np.linspace(0, 1, 2001)
    monkeypatch.setattr(invert_task, "CRUSH_SHARE", 0.0)
    u = stretching_curve(t)
    np.testing.assert_allclose(u * u * (3 - 2 * u), t, rtol=0, atol=1e-13)  # smoothstep's inverse
    monkeypatch.setattr(invert_task, "CRUSH_SHARE", 1.0)
    low = t <= 0.5
    np.testing.assert_allclose(stretching_curve(t)[low], np.log(1 + t[low] / 1e-4) / np.log(1 + 0.5 / 1e-4) / 2,
                               rtol=1e-12, atol=0)


def test_a_shaped_inverse_of_velvia_undoes_it_on_photos():
    """With the shaper, the 65^3 inverse follows Velvia where it crushes saturated colours: combined with
    it, all but a few pixels of the photos come back within 1 code value (the plain 33^3 one: above 75%)."""
    lut = read_lut(VELVIA)
    assert best_shaper(lut) == "stretched"
    inv, _ = inverse(lut, 65, shaper="stretched")
    assert inv.shaper is not None and inv.size == 65
    identity = compose([lut, inv], 33)
    within = [(np.abs(apply_lut_array(im, identity).astype(int) - im).max(-1) <= 1).mean() for im in photos()]
    assert min(within) > 0.995, within


def test_a_plain_inverse_takes_every_colour_the_lut_produces():
    """A LUT may produce colours beyond the domain it reads: its plain inverse is over the domain widened to
    them (here a doubling, green lowered by 0.5, undone exactly by a 9^3 inverse over [0, 2] and [-0.5, 1.5]
    for green), not clamped at the domain's edge."""
    lut = LUT(2.0 * grid(5) - np.array([0.0, 0.5, 0.0]))
    np.testing.assert_array_equal(inverse_domain(lut), [[0.0, -0.5, 0.0], [2.0, 1.5, 2.0]])
    inv, unreachable = inverse(lut, 9)
    np.testing.assert_array_equal(inv.domain, inverse_domain(lut))
    x = random_colours(2000, np.random.default_rng(4), lut.input_domain, margin=0)
    np.testing.assert_allclose(evaluate(inv, evaluate(lut, x)), x, rtol=0, atol=1e-9)
    assert unreachable == 0


def test_a_transfer_function_is_undone_exactly_by_the_inverse_that_follows_its_tone_curve():
    """An sRGB EOTF as a coarse 8^3 table (outputs up to 12.8 over a domain up to 3): a regular lattice in its
    output cannot follow its inverse (below half of the photos' pixels come back within 1 code value);
    the shaper that follows its tone curve puts the table's nodes at its outputs of an even lattice in
    its input, so the table holds that lattice exactly and the photos come back to 0 code values. The
    trial picks that shaper; the written Resolve-style .cube holds it (one input range for all channels)."""
    lut = srgb_eotf_lut()
    assert best_shaper(lut) == "tone"
    inv, unreachable = inverse(lut, 33, shaper="tone")
    assert unreachable == 0
    np.testing.assert_array_equal(inv.shaper.domain, [[lut.table.min()] * 3, [lut.table.max() + 1e-12] * 3])
    lo, hi = lut.input_domain
    t = stretched_nodes(33)
    b, g, r = np.meshgrid(t, t, t, indexing="ij")
    np.testing.assert_allclose(inv.table, lo + (hi - lo) * np.stack([r, g, b], axis=-1), rtol=0, atol=1e-9)
    plain, _ = inverse(lut, 33)
    errors = [[np.abs(apply_lut_array(im, compose([lut, table], 33)).astype(int) - im).max(-1) for im in photos()]
              for table in (plain, inv)]
    assert max(np.mean(e <= 1) for e in errors[0]) < 0.5 and max(e.max() for e in errors[0]) > 20  # 28-30 here
    assert max(e.max() for e in errors[1]) == 0


@pytest.mark.parametrize("name", ["colour-science__iridas_cube__eotf_sRGB_3D.cube",
                                  "colour-science__resolve_cube__eotf_sRGB_3D.cube"])
def test_the_real_srgb_eotf_files_are_undone_on_photos(tmp_path, name):
    """colour-science's sRGB EOTF tables (one with per-channel domains up to 3, one after a shaper over
    [-1, 3]; outputs up to 12.8): the written inverse with --shaper follows the tone curve, and combined with
    the file it brings every pixel of the photos back within 1 code value (without a shaper, the worst
    photo keeps under 10% of them)."""
    source = ROOT / "tests" / "data" / "cube" / name
    result = invert(source, tmp_path / "inv.cube", shaper=True)
    assert result.shaper == "tone"
    identity = compose([read_lut(source), read_lut(tmp_path / "inv.cube")], 33)
    for image in photos():
        assert np.abs(apply_lut_array(image, identity).astype(int) - image).max() <= 1
    plain = compose([read_lut(source), invert(source, tmp_path / "plain.cube").lut], 33)
    assert min(np.mean(np.abs(apply_lut_array(im, plain).astype(int) - im).max(-1) <= 1) for im in photos()) < 0.1


def test_invert_cli_writes_the_tone_curve_shaper(tmp_path):
    source, output = tmp_path / "eotf.cube", tmp_path / "oetf.cube"
    write_lut(srgb_eotf_lut(), source, decimals=12)
    result = run_lutgen("invert", source, "-o", output, "--shaper")
    assert result.returncode == 0, result.stderr
    assert "33^3 nodes after a shaper following the LUT's tone curve" in result.stdout
    identity = compose([read_lut(source), read_lut(output)], 33)
    for image in photos():
        assert np.abs(apply_lut_array(image, identity).astype(int) - image).max() <= 1


def test_invert_cli_with_a_shaper(tmp_path):
    source = tmp_path / "smooth.cube"
    write_lut(smooth_invertible_lut(9), source, decimals=12)
    result = run_lutgen("invert", source, "-o", tmp_path / "inv.cube", "--shaper")
    assert result.returncode == 0, result.stderr
    inv = read_lut(tmp_path / "inv.cube")
    assert inv.shaper is not None and inv.shaper.size == 4096 and inv.size == 33
    x = dense_sample(inv.input_domain, 20_000)
    assert compare(evaluate(inv, evaluate(read_lut(source), x)), x).max_code < 1
    one_sentence_error(run_lutgen("invert", source, "-o", tmp_path / "inv.3dl", "--shaper"),
                       "--shaper needs an output format that holds a 1D shaper", "'.3dl'")
    assert not (tmp_path / "inv.3dl").exists()
    warned = run_lutgen("invert", VELVIA, "-o", tmp_path / "v.cube").stderr
    assert "(--shaper puts more of its nodes where looks squeeze)" in warned


def test_refuses_luts_that_cannot_be_inverted(tmp_path):
    line = one_sentence_error(run_lutgen("invert", HP5, "-o", tmp_path / "i.cube"), "ilford_hp5", "collapses colours")
    assert "black-and-white" in line
    g = grid(9)
    negative = tmp_path / "negative.cube"
    write_lut(LUT(1 - g), negative)
    one_sentence_error(run_lutgen("invert", negative, "-o", tmp_path / "i.cube"), "not monotonic along the grey axis")
    assert not (tmp_path / "i.cube").exists()
    red_falls = LUT(np.stack([g[..., 1] + g[..., 2] - 0.5 * g[..., 0], g[..., 1], g[..., 2]], axis=-1))
    assert why_not_invertible(red_falls).startswith("it is not monotonic per channel: its red output falls")
    write_lut(LUT(None, shaper=Shaper.identity(4)), tmp_path / "one.cube")
    with pytest.raises(LutgenError, match="1D LUT"):
        invert(tmp_path / "one.cube", tmp_path / "i.cube")
    huge = LUT.identity(3).with_table(grid(3) * 1e300)
    assert why_not_invertible(huge) == "its values are not all finite numbers below 1e+06 in size"
    one_sentence_error(run_lutgen("invert", negative, "-o", tmp_path / "i.cube", "--size", "200"), "--size", "129")


def test_invert_cli_writes_the_inverse_and_the_round_trip(tmp_path):
    source = tmp_path / "smooth.cube"
    write_lut(smooth_invertible_lut(9), source, decimals=12)
    result = run_lutgen("invert", source, "-o", tmp_path / "inv.cube", "--size", "17")
    assert result.returncode == 0, result.stderr
    assert "round trip inverse(LUT(x)) against x: max" in result.stdout
    inv = read_lut(tmp_path / "inv.cube")
    lut = read_lut(source)
    x = dense_sample(lut.domain, 20_000)
    printed = float(re.search(r"against x: max ([0-9.e-]+)", result.stdout).group(1))
    assert printed == pytest.approx(compare(evaluate(inv, evaluate(lut, x)), x).max_code, rel=0.05)
    one_sentence_error(run_lutgen("invert", source, "-o", source), "refusing to overwrite")


# --- against OpenColorIO and with hostile files ---------------------------------------------------


def test_combined_file_applied_by_opencolorio_matches_its_chain(tmp_path):
    from reference import ocio_apply

    a, b = smooth_random_lut(9, np.random.default_rng(15)), nonlinear_lut(5, np.random.default_rng(16))
    write_lut(a, tmp_path / "a.cube", decimals=12)
    write_lut(b, tmp_path / "b.cube", decimals=12)
    from lutgen.tasks.combine import combine

    result = combine([tmp_path / "a.cube", tmp_path / "b.cube"], tmp_path / "ab.cube", size=33)
    x = dense_sample(a.domain, 20_000, seed=3)
    chain = ocio_apply(tmp_path / "b.cube", ocio_apply(tmp_path / "a.cube", x))
    combined = ocio_apply(tmp_path / "ab.cube", x)
    float32_slack = 2e-6 * 255
    assert compare(combined, chain).max_code <= result.difference.max_code + float32_slack
    assert compare(combined, evaluate(result.lut, x)).max_code <= float32_slack


@pytest.mark.parametrize("command", ["convert", "combine", "mix", "invert", "info"])
def test_a_fifo_given_as_a_lut_is_one_sentence(tmp_path, command):
    import os

    fifo = tmp_path / "pipe.cube"
    os.mkfifo(fifo)
    out = tmp_path / "out.cube"
    args = {"convert": (fifo, out), "combine": (VELVIA, fifo, "-o", out), "mix": (fifo, "-s", "0.5", "-o", out),
            "invert": (fifo, "-o", out), "info": (fifo,)}[command]
    one_sentence_error(run_lutgen(command, *args, timeout=60), "pipe.cube")
    assert not out.exists()
