"""`lutgen fit`: the lattice-regression solver against dense least squares, the pulls towards the identity
(image regularisation, black and highlight preservation), known looks recovered from before/after
pairs, misaligned pairs refused, the recipe, and the command end to end."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp
from cli_runner import one_sentence_error, run_lutgen
from pairs_fixture import ROOT, bundled_photo, save_unit, write_pairs
from PIL import Image
from scipy.sparse.linalg import spsolve

from lutgen import __version__
from lutgen.color.cpu import apply_lut_array
from lutgen.errors import ImageError, OptionError
from lutgen.fileio import file_hash
from lutgen.formats import read_lut
from lutgen.lut import LUT, grid
from lutgen.optim import lattice_fit as lf
from lutgen.tasks.fit import FitSettings, fit, lut_smoothness_option

PHOTOS = ["mate_aqua", "astronaut", "coffee"]
UNSEEN = ["chelsea_cat", "mate_garden", "rocket"]
SIDE = 200


def matrix_gamma(rgb: np.ndarray) -> np.ndarray:
    """A smooth look: a saturating, warming 3x3 matrix, then a gamma."""
    matrix = np.array([[1.15, -0.10, -0.05], [-0.05, 1.05, 0.0], [-0.05, -0.15, 1.1]])
    return np.clip(rgb @ matrix.T + [0.02, 0.0, -0.02], 0, 1) ** 0.8


def black_and_white(rgb: np.ndarray) -> np.ndarray:
    """A B&W film look: a red-heavy channel mix, then an S curve, in all three channels."""
    grey = np.clip(rgb @ [0.5, 0.4, 0.1], 0, 1)
    grey = grey * grey * (3 - 2 * grey)
    return np.repeat(grey[..., None], 3, axis=-1)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((np.asarray(a, float) - b) ** 2)))


def look_pairs(tmp_path, look, names=PHOTOS, suffix=".png"):
    """Pairs of bundled photos before and after ``look`` (8-bit PNG)."""
    return write_pairs(tmp_path, names, SIDE, lambda photo, rng: (photo, look(photo)), target_suffix=suffix)


# --------------------------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------------------------


def test_lattice_solve_matches_dense_least_squares_on_a_tiny_problem():
    rng = np.random.default_rng(1)
    n, smoothness, ridge = 3, 1e-3, 1e-2
    x = rng.uniform(0, 1, (40, 3))
    r = rng.normal(0, 0.1, (40, 3))
    w = rng.uniform(0.5, 2, 40)
    rows = lf.interpolation_matrix(*lf.trilinear_corners(x, n), n)
    solved = lf.solve_lattice(rows, w, r, n, smoothness, ridge=ridge)

    # The same objective written out as one stacked least-squares problem, solved in float64.
    a = rows.toarray()
    d2 = np.array([[1.0, -2.0, 1.0]])
    eye = np.eye(n)
    second = [np.kron(np.kron(eye, eye), d2), np.kron(np.kron(eye, d2), eye), np.kron(np.kron(d2, eye), eye)]
    prior_scale = (n - 1) ** 4 / n**3
    stacked = np.vstack([np.sqrt(w / w.sum())[:, None] * a,
                         *[np.sqrt(smoothness * prior_scale) * s for s in second],
                         np.sqrt(ridge / n**3) * np.eye(n**3)])
    right = np.vstack([np.sqrt(w / w.sum())[:, None] * r, np.zeros((len(stacked) - len(r), 3))])
    expected = np.linalg.lstsq(stacked, right, rcond=None)[0]
    np.testing.assert_allclose(solved, expected, atol=1e-9)


def test_multigrid_conjugate_gradients_match_a_direct_sparse_solve():
    rng = np.random.default_rng(2)
    n = 13  # 13 -> 7: one coarse level
    x = rng.uniform(0, 1, (3000, 3)) ** 2  # the data leave part of the cube empty
    r = rng.normal(0, 0.05, (3000, 3))
    w = np.ones(3000)
    rows = lf.interpolation_matrix(*lf.trilinear_corners(x, n), n)
    solved = lf.solve_lattice(rows, w, r, n, 1e-5)
    system = (rows.T @ rows / 3000 + 1e-5 * lf.smoothness_prior(n) + lf.RIDGE / n**3 * sp.identity(n**3)).tocsc()
    expected = spsolve(system, rows.T @ r / 3000)
    assert np.abs(solved - expected).max() < 1e-5 * np.abs(expected).max()


def test_trilinear_rows_reproduce_the_lut_kernel():
    table = matrix_gamma(grid(5))
    x = np.random.default_rng(3).uniform(0, 1, (500, 3))
    np.testing.assert_allclose(lf.interpolate(table, x), apply_lut_array(x, LUT(table)), atol=1e-12)


def test_identity_samples_give_the_identity_lut():
    x = np.random.default_rng(4).uniform(0, 1, (20000, 3)) ** 1.5
    result = lf.fit_lattice(x, x, 9)
    assert np.abs(result.table - grid(9)).max() < 1e-3


def test_a_few_outliers_do_not_bend_the_lut():
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (40000, 3))
    y = matrix_gamma(x)
    spoiled = y.copy()
    bad = rng.choice(len(x), 400, replace=False)  # 1% of the pixels retouched to pure red
    spoiled[bad] = [1.0, 0.0, 0.0]
    clean = lf.fit_lattice(x, y, 9).table
    robust = lf.fit_lattice(x, spoiled, 9).table
    plain = lf.fit_lattice(x, spoiled, 9, iterations=1).table
    assert np.abs(robust - clean).max() < 0.5 * np.abs(plain - clean).max()
    assert np.abs(robust - clean).max() < 0.01


# --------------------------------------------------------------------------------------------
# Pulls towards the identity: image regularisation, black and highlight preservation
# --------------------------------------------------------------------------------------------


def test_the_pulled_nodes_are_the_blacks_and_whites_by_rec709_luma():
    # At 33 nodes (steps of 1/32) luma 0.2126 r + 0.7152 g + 0.0722 b is under 0.01 only with g = 0 and
    # (r, b) in {(0, 0..4), (1, 0..1)} steps; over 0.99 at the mirror images of those nodes.
    blacks = [(r, 0, b) for r, b in [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1)]]
    expected_black = np.zeros((33, 33, 33))
    for r, g, b in blacks:
        expected_black[b, g, r] = 1.0
    np.testing.assert_array_equal(lf.identity_pull(33, black_weight=7.0).reshape(33, 33, 33), expected_black)
    np.testing.assert_array_equal(lf.identity_pull(33, white_weight=7.0).reshape(33, 33, 33),
                                  expected_black[::-1, ::-1, ::-1])
    both = lf.identity_pull(2, identity_weight=8.0, black_weight=3.0, white_weight=5.0)
    np.testing.assert_array_equal(both, [4.0, 1, 1, 1, 1, 1, 1, 6.0])  # 8 / 2^3 everywhere, + 3 at black, + 5 at white
    np.testing.assert_array_equal(lf.identity_pull(9), np.zeros(9**3))


def test_lattice_solve_with_a_pull_matches_dense_least_squares():
    rng = np.random.default_rng(12)
    n, smoothness, ridge = 3, 1e-3, 1e-2
    x = rng.uniform(0, 1, (40, 3))
    r = rng.normal(0, 0.1, (40, 3))
    w = rng.uniform(0.5, 2, 40)
    pull = rng.uniform(0, 3, n**3)
    target = rng.normal(0, 0.2, (n**3, 3))
    rows = lf.interpolation_matrix(*lf.trilinear_corners(x, n), n)
    solved = lf.solve_lattice(rows, w, r, n, smoothness, ridge=ridge, pull=pull, pull_target=target)

    # One stacked least-squares problem in float64: data rows, prior rows, ridge rows, and one row
    # per node, weighted by the square root of its pull, asking for the pull's target.
    a = rows.toarray()
    d2 = np.array([[1.0, -2.0, 1.0]])
    eye = np.eye(n)
    second = [np.kron(np.kron(eye, eye), d2), np.kron(np.kron(eye, d2), eye), np.kron(np.kron(d2, eye), eye)]
    prior_scale = (n - 1) ** 4 / n**3
    stacked = np.vstack([np.sqrt(w / w.sum())[:, None] * a,
                         *[np.sqrt(smoothness * prior_scale) * s for s in second],
                         np.sqrt(ridge / n**3) * np.eye(n**3),
                         np.diag(np.sqrt(pull))])
    right = np.vstack([np.sqrt(w / w.sum())[:, None] * r, np.zeros((len(stacked) - len(r) - n**3, 3)),
                       np.sqrt(pull)[:, None] * target])
    expected = np.linalg.lstsq(stacked, right, rcond=None)[0]
    np.testing.assert_allclose(solved, expected, atol=1e-9)


def test_multigrid_with_a_strong_pull_matches_a_direct_sparse_solve():
    rng = np.random.default_rng(13)
    n = 13
    x = rng.uniform(0, 1, (3000, 3))
    r = rng.normal(0, 0.05, (3000, 3))
    rows = lf.interpolation_matrix(*lf.trilinear_corners(x, n), n)
    pull = lf.identity_pull(n, identity_weight=1.0, black_weight=1000.0, white_weight=10.0)
    target = rng.normal(0, 0.1, (n**3, 3))
    solved = lf.solve_lattice(rows, np.ones(3000), r, n, 1e-5, pull=pull, pull_target=target)
    system = (rows.T @ rows / 3000 + 1e-5 * lf.smoothness_prior(n) + lf.RIDGE / n**3 * sp.identity(n**3)
              + sp.diags(pull)).tocsc()
    expected = spsolve(system, rows.T @ r / 3000 + pull[:, None] * target)
    assert np.abs(solved - expected).max() < 1e-5 * np.abs(expected).max()


SAMPLES = np.random.default_rng(14).uniform(0, 1, (8000, 3))


def lifted_and_dimmed(rgb: np.ndarray) -> np.ndarray:
    """A faded look: blacks lifted to 0.06, whites dimmed to 0.9."""
    return 0.06 + 0.84 * rgb


def test_black_preservation_keeps_lifted_blacks_at_black():
    y = lifted_and_dimmed(SAMPLES)
    blacks = lf.identity_pull(9, black_weight=1.0).reshape(9, 9, 9) > 0
    identity = grid(9)
    plain = lf.fit_lattice(SAMPLES, y, 9).table
    weak = lf.fit_lattice(SAMPLES, y, 9, black_weight=1e-3).table
    strong = lf.fit_lattice(SAMPLES, y, 9, black_weight=1000.0).table
    assert np.abs(plain[0, 0, 0] - 0.06).max() < 2e-3  # the look, followed
    assert np.abs(strong[blacks] - identity[blacks]).max() < 1e-3  # measured: 3e-8
    assert 1e-3 < weak[0, 0, 0].max() < 0.05  # in between at a small weight (measured: 0.004)
    mid = (4, 4, 4)
    np.testing.assert_allclose(strong[mid], plain[mid], atol=1e-3)  # the rest still follows the look (2e-7)
    assert np.abs(strong[-1, -1, -1] - plain[-1, -1, -1]).max() < 1e-3  # whites untouched


def test_highlight_preservation_keeps_dimmed_whites_at_white():
    y = lifted_and_dimmed(SAMPLES)
    whites = lf.identity_pull(9, white_weight=1.0).reshape(9, 9, 9) > 0
    plain = lf.fit_lattice(SAMPLES, y, 9).table
    strong = lf.fit_lattice(SAMPLES, y, 9, white_weight=1000.0).table
    assert np.abs(plain[-1, -1, -1] - 0.9).max() < 2e-3
    assert np.abs(strong[whites] - grid(9)[whites]).max() < 1e-3
    assert np.abs(strong[0, 0, 0] - plain[0, 0, 0]).max() < 1e-3  # blacks untouched
    np.testing.assert_allclose(strong[4, 4, 4], plain[4, 4, 4], atol=1e-3)


def test_image_regularization_pulls_the_whole_table_towards_the_identity():
    y = matrix_gamma(SAMPLES)
    change = [np.abs(lf.fit_lattice(SAMPLES, y, 9, identity_weight=weight).table - grid(9))
              for weight in (0.0, 1.0, 1000.0)]
    assert change[0].mean() > 0.03  # the look changes the table (measured: 0.050)
    assert 0.2 * change[0].mean() < change[1].mean() < 0.7 * change[0].mean()  # measured: 0.023 at weight 1
    assert change[2].max() < 1e-3  # measured: 1.7e-4


def test_zero_weights_give_the_unregularised_table_bit_for_bit():
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 1, (5000, 3))
    y = np.clip(0.06 + 0.94 * x ** 1.2 + 0.03 * np.sin(6 * x[:, [1, 2, 0]]), 0, 1)
    zero = {"identity_weight": 0.0, "black_weight": 0.0, "white_weight": 0.0}
    small, large = lf.fit_lattice(x, y, 5, **zero).table, lf.fit_lattice(x, y, 13, **zero).table
    np.testing.assert_array_equal(small, lf.fit_lattice(x, y, 5).table)
    # Values of the solver before the pulls existed (the dense path at 5 nodes, multigrid at 13).
    np.testing.assert_allclose(small[0, 0, 0], [0.051491985702416754, 0.05281082989470234, 0.0506959990638708],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(small[2, 1, 3], [0.7592751564142339, 0.23810870013540572, 0.4329809079436017],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(large[0, 0, 0], [0.0555752481234487, 0.05313342739761631, 0.051717061710408775],
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(large[6, 1, 11], [0.9213759422702038, 0.11198289963709197, 0.4475886188455991],
                               rtol=0, atol=1e-10)


# --------------------------------------------------------------------------------------------
# Known looks recovered from pairs
# --------------------------------------------------------------------------------------------


def unseen_psnr(lut: LUT, look) -> float:
    """Mean PSNR of ``lut`` against ``look`` on bundled photos not used for fitting."""
    return float(np.mean([psnr(apply_lut_array(photo, lut), look(photo))
                          for photo in (bundled_photo(name, SIDE) for name in UNSEEN)]))


def test_a_smooth_look_is_recovered(tmp_path):
    inputs, targets = look_pairs(tmp_path, matrix_gamma)
    result = fit(inputs, targets, tmp_path / "look.cube", FitSettings(lut_size=17, holdout="none"))
    lut = read_lut(tmp_path / "look.cube")
    covered = np.unique(lf.trilinear_corners(np.concatenate(
        [bundled_photo(name, SIDE).reshape(-1, 3) for name in PHOTOS]), 17)[0])
    nodes = grid(17).reshape(-1, 3)
    error = np.abs(lut.table.reshape(-1, 3)[covered] - matrix_gamma(nodes[covered]))
    assert np.percentile(error, 95) < 0.01  # on the nodes the pairs reach (8-bit rounding aside)
    assert result.training_scores.psnr > 45
    assert unseen_psnr(lut, matrix_gamma) > 40


def test_a_bundled_film_lut_is_recovered(tmp_path):
    velvia = read_lut(ROOT / "lutgen" / "data" / "luts" / "fuji_velvia_50.cube")

    def look(photo):
        return apply_lut_array(photo, velvia)

    inputs, targets = look_pairs(tmp_path, look, PHOTOS + ["mate_dune"])
    result = fit(inputs, targets, tmp_path / "velvia.cube", FitSettings(lut_size=33))
    assert result.holdout == "mate_dune" and result.holdout_scores.psnr > 35
    assert unseen_psnr(read_lut(tmp_path / "velvia.cube"), look) > 35


def test_a_black_and_white_look_gives_neutral_outputs(tmp_path):
    inputs, targets = look_pairs(tmp_path, black_and_white)
    fit(inputs, targets, tmp_path / "bw.cube", FitSettings(lut_size=17, holdout="none"))
    table = read_lut(tmp_path / "bw.cube").table
    assert np.abs(table - table[..., :1]).max() < 1e-5  # R = G = B at every node, the unseen ones too
    assert unseen_psnr(LUT(table), black_and_white) > 38


def test_identity_pairs_give_the_identity_lut(tmp_path):
    inputs, targets = look_pairs(tmp_path, lambda photo: photo)
    fit(inputs, targets, tmp_path / "same.cube", FitSettings(lut_size=9, holdout="none"))
    assert np.abs(read_lut(tmp_path / "same.cube").table - grid(9)).max() < 1e-3


# --------------------------------------------------------------------------------------------
# Alignment and sizes
# --------------------------------------------------------------------------------------------


def write_one(folder, name, before, after, target_suffix=".png"):
    (folder / "input").mkdir(parents=True, exist_ok=True)
    (folder / "target").mkdir(exist_ok=True)
    save_unit(before, folder / "input" / f"{name}.png")
    save_unit(after, folder / "target" / f"{name}{target_suffix}")
    return folder / "input", folder / "target"


def resized(values: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.fromarray(np.round(np.clip(values, 0, 1) * 255).astype(np.uint8))
    return np.asarray(image.resize((width, height), Image.LANCZOS)) / 255.0


def test_a_shifted_pair_is_refused_by_name(tmp_path):
    photo = bundled_photo("astronaut", 256)
    inputs, targets = write_one(tmp_path, "moved", photo[:, :-8], matrix_gamma(photo[:, 8:]))
    with pytest.raises(ImageError, match=r"moved.png and its target .*moved.png are not aligned.* about 8 pixels"):
        fit(inputs, targets, tmp_path / "x.cube", FitSettings(holdout="none"))
    assert not (tmp_path / "x.cube").exists()


def test_a_cropped_then_resized_pair_is_refused_by_name(tmp_path):
    photo = bundled_photo("coffee", 256)
    h, w = photo.shape[:2]
    graded = matrix_gamma(photo)[12:-12, 18:-18]
    inputs, targets = write_one(tmp_path, "crop", photo, resized(graded, w, h))
    result = run_lutgen("fit", "--input-dir", inputs, "--target-dir", targets, "-o", tmp_path / "x.cube")
    one_sentence_error(result, "crop.png", "not aligned")


def test_a_target_of_another_size_and_the_same_shape_is_resized(tmp_path):
    photo = bundled_photo("mate_aqua", 400)
    h, w = photo.shape[:2]
    inputs, targets = write_one(tmp_path, "big", resized(photo, w // 2, h // 2), matrix_gamma(photo))
    result = fit(inputs, targets, tmp_path / "x.cube", FitSettings(lut_size=9, holdout="none"))
    assert result.training_scores.psnr > 35


def test_a_target_of_another_shape_is_refused_by_name(tmp_path):
    photo = bundled_photo("mate_aqua", 300)
    inputs, targets = write_one(tmp_path, "wide", photo, matrix_gamma(photo)[:-20])
    result = run_lutgen("fit", "--input-dir", inputs, "--target-dir", targets, "-o", tmp_path / "x.cube")
    one_sentence_error(result, "wide.png", "aspect ratios differ")


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def read_recipe(lut: LUT) -> tuple[str, dict[str, str], list[str]]:
    """The header, the ``settings:`` values by name and the other lines of a LUT's recipe."""
    header, settings, *evidence = lut.comments
    assert settings.startswith("settings: "), lut.comments
    return header, dict(item.split("=", 1) for item in settings[len("settings: "):].split()), evidence


def pair_hashes(line: str) -> tuple[str, str, str, str, str]:
    """``(role, name, input hash, target file name, target hash)`` of a recipe's pair line."""
    found = re.fullmatch(r"(pair|held-out pair) (\S+): \S+ sha256:([0-9a-f]{12}) -> (\S+) sha256:([0-9a-f]{12})", line)
    assert found, line
    return found.groups()


def test_the_command_reports_scores_and_writes_the_recipe(tmp_path):
    inputs, targets = look_pairs(tmp_path, matrix_gamma, suffix=".jpg")
    output = tmp_path / "out" / "look.cube"
    result = run_lutgen("fit", "--input-dir", inputs, "--target-dir", targets, "-o", output, "--lut-size", 17,
                        "--interpolation", "tetrahedral", "--lut-smoothness", "1e-5", "--image-regularization", 0.001,
                        "--black-preservation", 2, "--highlight-preservation", 1000, "--max-pixels", 30000)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr and "error" not in result.stderr
    assert "held-out pair mate_aqua: PSNR" in result.stdout and "fitted 2 pair(s)" in result.stdout
    held_psnr = float(result.stdout.split("held-out pair mate_aqua: PSNR ")[1].split()[0])
    assert held_psnr > 33, held_psnr
    lut = read_lut(output)
    assert lut.size == 17
    header, settings, evidence = read_recipe(lut)
    assert header == f"lutgen {__version__} fit: regularised lattice regression from before/after pairs"
    assert settings == {"lut_size": "17", "lut_smoothness": "1e-05", "image_regularization": "0.001",
                        "black_preservation": "2.0", "highlight_preservation": "1000.0", "max_pixels": "30000",
                        "holdout": "mate_aqua", "seed": "0"}
    found = sorted(pair_hashes(line) for line in evidence)
    assert [(role, name) for role, name, *_ in found] == [("held-out pair", "mate_aqua"), ("pair", "astronaut"),
                                                          ("pair", "coffee")]
    for _, name, input_hash, target_name, target_hash in found:
        assert input_hash == file_hash(inputs / f"{name}.png") and target_name == f"{name}.jpg"
        assert target_hash == file_hash(targets / target_name)
    assert lut.table[-1, -1, -1] == pytest.approx([1.0, 1.0, 1.0], abs=1e-3)  # highlights kept at 1000


def test_smoothness_is_the_old_name_of_lut_smoothness(tmp_path):
    assert lut_smoothness_option(None, None, 3e-6) == 3e-6
    assert lut_smoothness_option(2e-5, None, 3e-6) == 2e-5
    assert lut_smoothness_option(None, 4e-5, 3e-6) == 4e-5
    with pytest.raises(OptionError, match="^give --lut-smoothness or its old name --smoothness, not both$"):
        lut_smoothness_option(1e-5, 1e-5, 3e-6)
    with pytest.raises(OptionError, match="^--smoothness must be greater than 0 and at most 1000, not 0.0$"):
        lut_smoothness_option(None, 0.0, 3e-6)
    inputs, targets = look_pairs(tmp_path, matrix_gamma, names=["coffee"])
    tables = []
    for option in ("--smoothness", "--lut-smoothness"):
        output = tmp_path / f"{option}.cube"
        result = run_lutgen("fit", "--input-dir", inputs, "--target-dir", targets, "-o", output, "--lut-size", 5,
                            option, "0.001")
        assert result.returncode == 0, result.stderr
        assert read_recipe(read_lut(output))[1]["lut_smoothness"] == "0.001"
        tables.append(read_lut(output).table)
    np.testing.assert_array_equal(*tables)
    help_text = run_lutgen("fit", "--help").stdout
    assert "--lut-smoothness" in help_text and "--smoothness" not in help_text.replace("--lut-smoothness", "")
    from lutgen.cli.fit import DEFAULT_LUT_SMOOTHNESS

    assert DEFAULT_LUT_SMOOTHNESS == lf.DEFAULT_SMOOTHNESS  # the default the help states is the one used


def test_the_recipe_records_the_default_settings_and_no_holdout(tmp_path):
    inputs, targets = look_pairs(tmp_path, matrix_gamma, names=["coffee", "rocket"])
    fit(inputs, targets, tmp_path / "x.cube", FitSettings(lut_size=5, max_pixels=1000))
    _, settings, evidence = read_recipe(read_lut(tmp_path / "x.cube"))
    assert settings == {"lut_size": "5", "lut_smoothness": repr(lf.DEFAULT_SMOOTHNESS), "image_regularization": "0.0",
                        "black_preservation": "0.0", "highlight_preservation": "0.0", "max_pixels": "1000",
                        "holdout": "none", "seed": "0"}
    assert [pair_hashes(line)[:2] for line in evidence] == [("pair", "coffee"), ("pair", "rocket")]


@pytest.mark.parametrize("option, value, fragment", [
    ("--lut-size", "1", "--lut-size must be between 2 and 129"),
    ("--lut-size", "130", "--lut-size must be between 2 and 129"),
    ("--smoothness", "-1", "--smoothness must be"),
    ("--smoothness", "nan", "--smoothness must be"),
    ("--lut-smoothness", "0", "--lut-smoothness must be greater than 0 and at most 1000"),
    ("--lut-smoothness", "1001", "--lut-smoothness must be greater than 0 and at most 1000"),
    ("--image-regularization", "-1", "--image-regularization must be between 0 and 1000.0"),
    ("--black-preservation", "inf", "--black-preservation must be a finite number"),
    ("--highlight-preservation", "1e9", "--highlight-preservation must be between 0 and 1000.0"),
    ("--max-pixels", "5", "--max-pixels must be between 100"),
    ("--interpolation", "cubic", "--interpolation must be one of trilinear, tetrahedral"),
    ("--holdout", "nobody", "--holdout nobody names no pair"),
    ("-o", "look.txt", "must end in .cube"),
])
def test_bad_options_are_one_sentence(tmp_path, option, value, fragment):
    inputs, targets = look_pairs(tmp_path, matrix_gamma, names=["coffee"])
    args = {"-o": tmp_path / "x.cube", option: value}
    result = run_lutgen("fit", "--input-dir", inputs, "--target-dir", targets, *[a for kv in args.items() for a in kv])
    one_sentence_error(result, fragment)


def test_bad_folders_and_images_are_one_sentence(tmp_path):
    inputs, targets = look_pairs(tmp_path, matrix_gamma, names=["coffee", "rocket"])
    empty = tmp_path / "empty"
    empty.mkdir()

    def run(input_dir=inputs, target_dir=targets):
        return run_lutgen("fit", "--input-dir", input_dir, "--target-dir", target_dir, "-o", tmp_path / "x.cube")

    one_sentence_error(run(empty), "the input folder", "has no images")
    one_sentence_error(run(tmp_path / "missing"), "does not exist")
    one_sentence_error(run(inputs, inputs), "--target-dir", "is the --input-dir folder")
    (targets / "rocket.png").rename(targets / "rockets.png")
    one_sentence_error(run(), "rocket.png", "no target of the same name")
    (targets / "rockets.png").rename(targets / "rocket.png")
    (targets / "rocket.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    one_sentence_error(run(), "rocket.png")
    assert not (tmp_path / "x.cube").exists()


def test_an_input_is_never_overwritten(tmp_path):
    inputs, targets = look_pairs(tmp_path, matrix_gamma, names=["coffee"])
    before = (inputs / "coffee.png").read_bytes()
    result = run_lutgen("fit", "--input-dir", inputs, "--target-dir", targets, "-o", inputs / "coffee.png")
    one_sentence_error(result, "must end in .cube")
    assert (inputs / "coffee.png").read_bytes() == before


def test_a_pair_with_another_grade_is_warned_about_by_name(tmp_path):
    def make_pair(photo, rng):
        return photo, matrix_gamma(photo)

    inputs, targets = write_pairs(tmp_path, PHOTOS + ["rocket"], SIDE, make_pair)
    rocket = bundled_photo("rocket", SIDE)
    save_unit(black_and_white(rocket), targets / "rocket.png")  # graded differently
    result = run_lutgen("fit", "--input-dir", inputs, "--target-dir", targets, "-o", tmp_path / "x.cube",
                        "--holdout", "none", "--lut-size", 17)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: the LUT explains")]
    assert any("rocket.png" in line for line in warnings), result.stderr
    assert not any(name in line for line in warnings for name in ("coffee", "astronaut")), result.stderr


def test_tiny_pictures_are_fitted(tmp_path):
    rng = np.random.default_rng(6)
    before = rng.uniform(0, 1, (3, 2, 3))
    inputs, targets = write_one(tmp_path, "tiny", before, matrix_gamma(before))
    result = fit(inputs, targets, tmp_path / "tiny.cube", FitSettings(lut_size=5))
    assert result.samples == 6 and result.holdout is None
    assert read_lut(tmp_path / "tiny.cube").size == 5
