"""`lutgen match`: Oklab conversions, sliced optimal transport, known looks reached from references, the
identity from a photo matched to itself, the regularisation options, the recipe in the `.cube`, and
one-sentence errors."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
from cli_runner import one_sentence_error, run_lutgen
from pairs_fixture import ROOT, bundled_photo, save_unit

from lutgen import __version__
from lutgen.color.cpu import apply_lut_array
from lutgen.color.oklab import (linear_srgb_to_oklab, linear_to_srgb, oklab_to_linear_srgb, oklab_to_srgb,
                                srgb_to_linear, srgb_to_oklab)
from lutgen.fileio import file_hash
from lutgen.formats import read_lut
from lutgen.lut import grid
from lutgen.optim.lattice_fit import identity_pull
from lutgen.optim.transport import quantile_map, sliced_transport, sliced_wasserstein
from lutgen.tasks.match import MatchSettings, keep_lightness_order, match, match_table

SIDE = 160
FAST = MatchSettings(lut_size=17, max_pixels=4000, iterations=20)
SAME_SCENE = MatchSettings(lut_size=17, max_pixels=4000, iterations=20, balance=0.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((np.asarray(a, float) - b) ** 2)))


def velvia(rgb: np.ndarray) -> np.ndarray:
    return apply_lut_array(np.asarray(rgb, np.float64), read_lut(ROOT / "lutgen" / "data" / "luts" /
                                                                  "fuji_velvia_50.cube"))


def log_to_video(rgb: np.ndarray) -> np.ndarray:
    """A strong, smooth look: a log-like decode, a filmic shoulder, a 2.2 gamma."""
    linear = 0.18 * 2.0 ** ((rgb - 0.4) * 10)
    return np.clip(linear * 1.3 / (linear + 0.3), 0, 1) ** (1 / 2.2)


def write_photos(folder, names, look=lambda rgb: rgb, flip=False):
    """The bundled photos ``names`` (shrunk) with ``look`` applied, as PNG in ``folder``; returns the float photos."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for name in names:
        picture = bundled_photo(name, SIDE)
        photos.append(picture)
        graded = look(picture)
        save_unit(graded[::-1, ::-1] if flip else graded, folder / f"{name}.png")
    return photos


# --------------------------------------------------------------------------------------------
# Oklab
# --------------------------------------------------------------------------------------------


def test_oklab_round_trip_and_transfer_curve_round_trip():
    rgb = np.random.default_rng(0).uniform(0, 1, (1000, 3))
    np.testing.assert_allclose(oklab_to_srgb(srgb_to_oklab(rgb)), rgb, atol=1e-12)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(rgb)), rgb, atol=1e-12)
    lab = np.random.default_rng(1).uniform([0, -0.3, -0.3], [1, 0.3, 0.3], (1000, 3))
    np.testing.assert_allclose(linear_srgb_to_oklab(oklab_to_linear_srgb(lab)), lab, atol=1e-12)


def test_oklab_matches_colour_science_and_the_published_white_and_primaries():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
    rgb = np.random.default_rng(2).uniform(0, 1, (500, 3))
    expected = colour.XYZ_to_Oklab(colour.sRGB_to_XYZ(rgb))
    np.testing.assert_allclose(srgb_to_oklab(rgb), expected, atol=2e-3)
    # Ottosson's reference: white is L = 1, a = b = 0; sRGB red is about (0.628, 0.225, 0.126).
    np.testing.assert_allclose(srgb_to_oklab([1.0, 1.0, 1.0]), [1.0, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(srgb_to_oklab([1.0, 0.0, 0.0]), [0.6279554, 0.2248631, 0.1258463], atol=1e-4)
    np.testing.assert_allclose(srgb_to_oklab([0.0, 0.0, 0.0]), [0.0, 0.0, 0.0], atol=1e-12)
    assert srgb_to_oklab(np.zeros((4, 5, 3))).shape == (4, 5, 3)


# --------------------------------------------------------------------------------------------
# Sliced transport
# --------------------------------------------------------------------------------------------


def test_quantile_map_gives_the_reference_distribution_and_keeps_order():
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1, 1000)
    reference = np.sort(rng.uniform(5, 6, 1000))
    mapped = quantile_map(values, reference)
    np.testing.assert_allclose(np.sort(mapped), reference)
    assert np.all(np.diff(mapped[np.argsort(values)]) >= 0)


def test_sliced_transport_moves_a_gaussian_cloud_onto_another():
    rng = np.random.default_rng(4)
    source = rng.multivariate_normal([0, 0, 0], [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 0.2]], 20000)
    target_cov = np.array([[0.3, 0, 0.1], [0, 2.0, -0.4], [0.1, -0.4, 0.5]])
    target = rng.multivariate_normal([1, -2, 0.5], target_cov, 20000)
    moved = sliced_transport(source, target, iterations=30, rng=np.random.default_rng(0))
    np.testing.assert_allclose(moved.mean(axis=0), [1, -2, 0.5], atol=0.03)
    np.testing.assert_allclose(np.cov(moved.T), target_cov, atol=0.05)
    assert sliced_wasserstein(moved, target) < 0.1 * sliced_wasserstein(source, target)
    again = sliced_transport(source, target, iterations=30, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(moved, again)
    other = sliced_transport(source, target, iterations=30, rng=np.random.default_rng(1))
    assert not np.array_equal(moved, other)


def test_weighted_samples_count_as_repeated_samples():
    rng = np.random.default_rng(7)
    a = rng.normal(0, 1, (2000, 3))
    counts = np.where(a[:, 0] > 0, 5, 1)  # the positive half weighs five times as much
    repeated = np.repeat(a, counts, axis=0)
    assert sliced_wasserstein(a, repeated, weights=counts) < 0.02
    assert sliced_wasserstein(a, repeated) > 0.05
    target = rng.normal(0, 1, (3000, 3)) * [1, 2, 0.5] + [2, 0, -1]
    moved = sliced_transport(a, target, 30, np.random.default_rng(0), source_weights=counts)
    np.testing.assert_allclose(np.average(moved, axis=0, weights=counts), [2, 0, -1], atol=0.05)
    np.testing.assert_allclose(np.sqrt(np.cov(moved.T, aweights=counts).diagonal()), [1, 2, 0.5], rtol=0.05)


def test_lightness_order_is_kept_after_the_transport():
    rng = np.random.default_rng(5)
    source = srgb_to_oklab(rng.uniform(0, 1, (3000, 3)))
    moved = sliced_transport(source, srgb_to_oklab(rng.uniform(0, 1, (3000, 3)) ** 2), 10, rng)
    kept = keep_lightness_order(source, moved)
    assert np.all(np.diff(kept[np.argsort(source[:, 0], kind="stable"), 0]) >= 0)
    np.testing.assert_allclose(np.sort(kept[:, 0]), np.sort(moved[:, 0]))
    np.testing.assert_array_equal(kept[:, 1:], moved[:, 1:])


def test_match_table_is_deterministic_for_a_seed():
    rng = np.random.default_rng(6)
    source, target = rng.uniform(0, 1, (3000, 3)), rng.uniform(0, 1, (3000, 3)) ** 1.5
    first = match_table(source, target, FAST)
    np.testing.assert_array_equal(first, match_table(source, target, FAST))
    assert not np.array_equal(first, match_table(source, target, MatchSettings(17, seed=1, iterations=20)))


def test_regularisation_pulls_the_matched_look_towards_the_identity():
    rng = np.random.default_rng(21)
    source = rng.uniform(0, 1, (3000, 3))
    target = 0.08 + 0.8 * rng.uniform(0, 1, (3000, 3)) ** 1.4  # a faded look: blacks lifted, whites dimmed
    base = MatchSettings(lut_size=9, max_pixels=4000, iterations=10)
    plain = match_table(source, target, base)
    # Weights of 0 (the defaults): the table match gave before the pulls existed (same seed, same samples).
    np.testing.assert_allclose(plain[0, 0, 0], [0.07765705024784703, 0.0789497068917352, 0.06915294718295042],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(plain[2, 5, 7], [0.756208556277125, 0.5349126358853161, 0.21963369011335293],
                               rtol=0, atol=1e-12)
    assert plain[0, 0, 0].min() > 0.05 and plain[-1, -1, -1].max() < 0.9  # the faded look, followed

    identity = grid(9)
    blacks = identity_pull(9, black_weight=1.0).reshape(9, 9, 9) > 0
    whites = identity_pull(9, white_weight=1.0).reshape(9, 9, 9) > 0
    kept_blacks = match_table(source, target, replace(base, black_preservation=1000.0))
    assert np.abs(kept_blacks[blacks] - identity[blacks]).max() < 1e-3  # measured: 3e-6
    assert kept_blacks[-1, -1, -1].max() < 0.9  # the whites still fade
    kept_whites = match_table(source, target, replace(base, highlight_preservation=1000.0))
    assert np.abs(kept_whites[whites] - identity[whites]).max() < 1e-3  # measured: 0
    assert kept_whites[0, 0, 0].min() > 0.05  # the blacks still lift
    subtle = match_table(source, target, replace(base, image_regularization=1.0))
    assert 0.2 < np.abs(subtle - identity).mean() / np.abs(plain - identity).mean() < 0.8
    assert np.abs(match_table(source, target, replace(base, image_regularization=1000.0)) - identity).max() < 1e-3


# --------------------------------------------------------------------------------------------
# Looks reached
# --------------------------------------------------------------------------------------------


def test_match_reaches_a_strong_look_shown_on_other_photos(tmp_path):
    """References: a strong log-to-video look on three photos; graded: three OTHER photos."""
    write_photos(tmp_path / "refs", ["mate_aqua", "coffee", "astronaut"], log_to_video)
    photos = write_photos(tmp_path / "photos", ["chelsea_cat", "rocket", "mate_garden"])
    result = match([tmp_path / "refs"], tmp_path / "look.cube", tmp_path / "photos", FAST)
    truth = [log_to_video(p) for p in photos]
    matched = np.mean([psnr(apply_lut_array(p, result.lut), t) for p, t in zip(photos, truth)])
    identity = np.mean([psnr(p, t) for p, t in zip(photos, truth)])
    assert identity < 13 and matched > identity + 5, (identity, matched)  # measured: 10.9 dB -> 18.5 dB
    assert result.distance_after < 0.5 * result.distance_before
    unbalanced = match([tmp_path / "refs"], tmp_path / "flat.cube", tmp_path / "photos", SAME_SCENE)
    plain = np.mean([psnr(apply_lut_array(p, unbalanced.lut), t) for p, t in zip(photos, truth)])
    assert matched > plain  # measured: 16.2 dB with every pixel counted the same


def test_match_reaches_velvia_from_the_graded_photos_unaligned(tmp_path):
    """References: the same photos graded by Velvia, flipped (no pixel correspondence, only the colours)."""
    names = ["chelsea_cat", "rocket", "mate_garden"]
    write_photos(tmp_path / "refs", names, velvia, flip=True)
    photos = write_photos(tmp_path / "photos", names)
    result = match([tmp_path / "refs"], tmp_path / "look.cube", tmp_path / "photos", SAME_SCENE)
    truth = [velvia(p) for p in photos]
    matched = np.mean([psnr(apply_lut_array(p, result.lut), t) for p, t in zip(photos, truth)])
    identity = np.mean([psnr(p, t) for p, t in zip(photos, truth)])
    assert matched > identity + 5, (identity, matched)  # measured: 25.4 dB -> 41.4 dB


def test_a_photo_matched_to_itself_gives_nearly_the_identity(tmp_path):
    photos = write_photos(tmp_path / "photos", ["coffee", "mate_aqua"])
    result = match([tmp_path / "photos"], tmp_path / "self.cube", tmp_path / "photos", FAST)
    for picture in photos:
        assert psnr(apply_lut_array(picture, result.lut), picture) > 40  # measured: 46.8 and 48.4 dB
    assert np.abs(result.lut.table - grid(17)).mean() < 0.02  # measured: 0.012
    assert result.distance_after <= result.distance_before + 0.005


def test_many_images_give_fewer_samples_each(tmp_path, monkeypatch):
    import lutgen.tasks.match as task

    write_photos(tmp_path / "photos", ["coffee", "rocket", "china"])
    write_photos(tmp_path / "refs", ["mate_aqua"])
    photos, refs = sorted((tmp_path / "photos").iterdir()), sorted((tmp_path / "refs").iterdir())
    monkeypatch.setattr(task, "MAX_SAMPLES", 3000)
    source, target = task.gather(photos, refs, 4000, np.random.default_rng(0), lambda items: items)
    assert len(source) == 3000 and len(target) == 3000


def test_strength_zero_is_the_identity(tmp_path):
    write_photos(tmp_path / "refs", ["coffee"], log_to_video)
    write_photos(tmp_path / "photos", ["rocket"])
    settings = MatchSettings(lut_size=9, max_pixels=2000, iterations=5, strength=0.0)
    result = match([tmp_path / "refs"], tmp_path / "zero.cube", tmp_path / "photos", settings)
    np.testing.assert_allclose(result.lut.table, grid(9), atol=0.01)


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def test_cli_writes_a_cube_with_the_recipe(tmp_path):
    write_photos(tmp_path / "refs", ["coffee"], log_to_video)
    write_photos(tmp_path / "photos", ["rocket", "chelsea_cat"])
    out = tmp_path / "look.cube"
    result = run_lutgen("match", tmp_path / "refs" / "coffee.png", "--image-folder", tmp_path / "photos", "-o", out,
                        "--lut-size", 9, "--max-pixels", 2000, "--iterations", 10, "--seed", 7, "--strength", 0.8,
                        "--balance", 0.5, "--lut-smoothness", 0.02, "--image-regularization", 0.25,
                        "--black-preservation", 3, "--highlight-preservation", 1000)
    assert result.returncode == 0, result.stderr
    assert "sliced Wasserstein distance in Oklab" in result.stdout and f"wrote {out}" in result.stdout
    lut = read_lut(out)
    assert lut.table.shape == (9, 9, 9, 3)
    header, settings, *evidence = lut.comments
    assert header == (f"lutgen {__version__} match: sliced optimal transport in Oklab of balanced colours, fitted by "
                      "regularised lattice regression")
    assert settings == ("settings: lut_size=9 lut_smoothness=0.02 image_regularization=0.25 black_preservation=3.0 "
                        "highlight_preservation=1000.0 strength=0.8 balance=0.5 iterations=10 max_pixels=2000 seed=7")
    photos = sorted((tmp_path / "photos").iterdir())
    expected = [f"reference coffee.png sha256:{file_hash(tmp_path / 'refs' / 'coffee.png')}"]
    expected += [f"photo {path.name} sha256:{file_hash(path)}" for path in photos]
    assert sorted(evidence) == sorted(expected) and evidence[0] == expected[0]
    np.testing.assert_allclose(lut.table[-1, -1, -1], [1, 1, 1], atol=1e-3)  # whites kept at weight 1000


def test_cli_smoothness_is_the_old_name_of_lut_smoothness(tmp_path):
    write_photos(tmp_path / "photos", ["rocket"])
    tables = []
    for option in ("--smoothness", "--lut-smoothness"):
        out = tmp_path / f"{option}.cube"
        result = run_lutgen("match", tmp_path / "photos", "--image-folder", tmp_path / "photos", "-o", out,
                            "--lut-size", 5, "--max-pixels", 500, "--iterations", 2, option, "0.05")
        assert result.returncode == 0, result.stderr
        assert "lut_smoothness=0.05 " in read_lut(out).comments[1]
        tables.append(read_lut(out).table)
    np.testing.assert_array_equal(*tables)
    from lutgen.cli.match import DEFAULT_LUT_SMOOTHNESS
    from lutgen.tasks.match import DEFAULT_SMOOTHNESS

    assert DEFAULT_LUT_SMOOTHNESS == DEFAULT_SMOOTHNESS  # the default the help states is the one used


def test_cli_refuses_bad_input_in_one_sentence(tmp_path):
    write_photos(tmp_path / "refs", ["coffee"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    ref = tmp_path / "refs" / "coffee.png"
    out = tmp_path / "o.cube"
    cases = [
        ((), ["no reference image was given"]),
        ((tmp_path / "missing.png",), ["missing.png", "no such file"]),
        ((tmp_path / "broken.jpg",), ["broken.jpg"]),
        ((ref, "--image-folder", tmp_path / "empty"), ["empty", "has no images"]),
        ((ref, "--image-folder", tmp_path / "nowhere"), ["nowhere", "does not exist"]),
        ((ref, "--strength", "1.5"), ["--strength"]),
        ((ref, "--balance", "-0.1"), ["--balance"]),
        ((ref, "--lut-size", "1"), ["--lut-size"]),
        ((ref, "--smoothness", "0"), ["--smoothness must be greater than 0"]),
        ((ref, "--lut-smoothness", "0"), ["--lut-smoothness must be greater than 0"]),
        ((ref, "--lut-smoothness", "1", "--smoothness", "1"), ["give --lut-smoothness or its old name --smoothness"]),
        ((ref, "--image-regularization", "-1"), ["--image-regularization must be between 0 and 1000"]),
        ((ref, "--black-preservation", "nan"), ["--black-preservation must be a finite number"]),
        ((ref, "--highlight-preservation", "1001"), ["--highlight-preservation must be between 0 and 1000"]),
        ((ref, "--iterations", "0"), ["--iterations"]),
        ((ref, "--max-pixels", "10"), ["--max-pixels"]),
    ]
    for args, fragments in cases:
        folder = [] if "--image-folder" in args else ["--image-folder", tmp_path / "refs"]
        result = run_lutgen("match", *args, *folder, "-o", out)
        one_sentence_error(result, *fragments)
        assert not out.exists()
    one_sentence_error(run_lutgen("match", ref, "--image-folder", tmp_path / "refs", "-o", tmp_path / "o.png"),
                       ".cube")
