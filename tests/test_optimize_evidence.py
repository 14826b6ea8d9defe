"""``optimize``'s evidence: weighted, negative and directional prompts, reference photos, before/after pairs.

The checks of the options (one sentence each), the recipe the .cube carries, and end-to-end runs with
the tiny CLIP fixture (prompts) or without CLIP at all (pairs, reference colours).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lutgen.errors import ImageError, OptionError
from lutgen.fileio import file_hash
from lutgen.formats import read_lut
from lutgen.tasks.optimize import OptimizeOptions, optimize, validate
from lutgen.tasks.optimize_evidence import WeightedText, check_evidence
from tests.cli_runner import one_sentence_error, run_lutgen
from tests.pairs_fixture import save_unit

PHOTOS = ("mate_dune", "mate_wood", "raccoon_face")


def options(folder: Path, tmp_path: Path, **changes) -> OptimizeOptions:
    base = OptimizeOptions(image_folder=folder, steps=3, log_interval=0, output_path=tmp_path / "out.cube",
                           device="cpu", seed=5)
    return replace(base, **changes)


def quiet(*_args) -> None:
    pass


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.2126, 0.7152, 0.0722])


@pytest.fixture(scope="module")
def desaturated_pairs(tmp_path_factory) -> tuple[Path, Path]:
    """Three smooth colourful pictures and the same pictures 80 % desaturated (towards Rec.709 luma)."""
    from tests.conftest import _smooth_photo

    root = tmp_path_factory.mktemp("pairs")
    before, after = root / "before", root / "after"
    before.mkdir()
    after.mkdir()
    for index in range(3):
        photo = np.round(_smooth_photo(96, 128, 10 + index) * 255) / 255
        grey = luma(photo)[..., None]
        save_unit(photo, before / f"p{index}.png")
        save_unit(photo + 0.8 * (grey - photo), after / f"p{index}.png")
    return before, after


# ----------------------------------------------------------------------------------------------
# The options


def test_prompt_weights_pair_with_prompts_in_order_and_default_to_one(training_folder, tmp_path):
    evidence = check_evidence(options(training_folder, tmp_path, prompt=("warm: golden, hour", "film = grain"),
                                      prompt_weight=(2.0, 0.5)))
    assert evidence.prompts == [WeightedText("warm: golden, hour", 2.0), WeightedText("film = grain", 0.5)]
    plain = check_evidence(options(training_folder, tmp_path, prompt=("a", "b"), negative_prompt=("green",)))
    assert [p.weight for p in plain.prompts] == [1.0, 1.0] and plain.negatives == [WeightedText("green", 1.0)]
    assert check_evidence(options(training_folder, tmp_path, prompt="one  prompt")).prompts == [
        WeightedText("one prompt", 1.0)]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({}, "give the look to make: --prompt TEXT"),
        ({"prompt": ("a", "b"), "prompt_weight": (1.0,)},
         "--prompt-weight is given 1 time(s) for 2 --prompt; give one weight per --prompt"),
        ({"prompt": ("a",), "prompt_weight": (0.0,)}, "--prompt-weight 0.0 is not a number greater than 0"),
        ({"prompt": ("a",), "prompt_weight": (float("nan"),)}, "--prompt-weight nan is not a number"),
        ({"negative_prompt": ("a",), "negative_weight": (1e9,)}, "--negative-weight 1000000000.0 is not a number"),
        ({"prompt": ("a",), "source_prompt": "a"}, "--prompt 'a' is the --source-prompt"),
        ({"source_prompt": "a photo", "negative_prompt": ("x",)}, "--source-prompt needs at least one --prompt"),
        ({"prompt": ("a", "  ")}, "--prompt is empty"),
        ({"negative_prompt": ("bad\x07",)}, "--negative-prompt holds the control character U+0007"),
        ({"prompt": tuple("abcdefghijklmnopq")}, "--prompt is given 17 times; at most 16"),
    ],
)
def test_bad_evidence_options_are_one_sentence(training_folder, tmp_path, changes, fragment):
    with pytest.raises(OptionError) as caught:
        validate(options(training_folder, tmp_path, **changes))
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_references_are_files_or_folders_and_unreadable_ones_are_named(training_folder, tmp_path):
    photos = sorted(training_folder.iterdir())
    evidence = check_evidence(options(training_folder, tmp_path, reference_image=(photos[0], training_folder)))
    assert evidence.references == [photos[0], *photos]
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.jpg").write_text("not a picture")
    for reference, fragment in [(tmp_path / "missing.jpg", "missing.jpg"), (tmp_path / "empty", "without images"),
                                (tmp_path / "notes.jpg", "notes.jpg")]:
        with pytest.raises(ImageError) as caught:
            validate(options(training_folder, tmp_path, reference_image=(reference,)))
        assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_an_output_that_is_a_reference_or_a_pair_is_refused(training_folder, desaturated_pairs, tmp_path):
    reference = tmp_path / "ref.cube"  # a PNG under a .cube name: an image is known by its content
    reference.write_bytes(next(desaturated_pairs[0].iterdir()).read_bytes())
    with pytest.raises(OptionError, match="is the input"):
        validate(options(training_folder, tmp_path, reference_image=(reference,), output_path=reference))


def test_pairs_with_missing_partners_are_refused_by_name(training_folder, desaturated_pairs, tmp_path):
    before, _ = desaturated_pairs
    lonely = tmp_path / "after"
    lonely.mkdir()
    (lonely / "p0.png").write_bytes((before / "p0.png").read_bytes())
    with pytest.raises(ImageError, match=r"2 input image\(s\) have no target of the same name"):
        validate(options(training_folder, tmp_path, pairs=(before, lonely)))


# ----------------------------------------------------------------------------------------------
# Runs


def test_pairs_alone_need_no_clip_and_reach_a_strong_desaturation(training_folder, desaturated_pairs, tmp_path):
    from lutgen.color.cpu import apply_lut_array
    from lutgen.imaging import load_rgb_float

    before, after = desaturated_pairs
    result = optimize(options(training_folder, tmp_path, pairs=(before, after), pair_weight=10.0, steps=60,
                              learning_rate=0.05, lut_size=9, batch_size=1, image_regularization=0.0,
                              clip_model="no-such-model"), echo=quiet, warn=quiet)
    lut = read_lut(result.output_path)
    photo, graded_photo = load_rgb_float(before / "p1.png"), load_rgb_float(after / "p1.png")
    assert np.sqrt(np.mean((apply_lut_array(photo, lut, "trilinear") - graded_photo) ** 2)) < 0.008  # 0.004 measured
    colours = np.random.default_rng(0).uniform(0, 1, (1, 2000, 3))  # the whole cube: mostly colours never shown
    expected = colours + 0.8 * (luma(colours)[..., None] - colours)
    chart = apply_lut_array(colours.astype(np.float32), lut, "trilinear")
    assert np.sqrt(np.mean((chart - expected) ** 2)) < 0.05  # 0.036 measured (the lattice alone: 0.088)
    assert result.final.lut_smooth < 1e-4  # 6e-5 measured (the lattice alone: 2e-3)


def test_the_recipe_records_every_piece_of_evidence_with_hashes(training_folder, desaturated_pairs, tiny_clip_model,
                                                               tmp_path):
    before, after = desaturated_pairs
    reference = sorted(training_folder.iterdir())[0]
    result = optimize(options(training_folder, tmp_path, prompt=("warm light", "film"), prompt_weight=(1.0, 0.25),
                              negative_prompt=("green tint",), source_prompt="a photo",
                              reference_image=(reference,), pairs=(before, after), clip_model=tiny_clip_model),
                      echo=quiet, warn=quiet)
    comments = read_lut(result.output_path).comments
    assert comments[0].startswith("lutgen ") and " optimize" in comments[0]
    settings = dict(item.split("=", 1) for item in comments[1].removeprefix("settings: ").split(" ") if "=" in item)
    assert settings["seed"] == "5" and settings["steps"] == "3" and settings["representation"] == "structured"
    assert 'prompt "warm light" weight=1.0' in comments and 'prompt "film" weight=0.25' in comments
    assert 'negative prompt "green tint" weight=1.0' in comments and 'source prompt "a photo"' in comments
    assert f"reference {reference.name} sha256:{file_hash(reference)}" in comments
    assert (f"pair p1: p1.png sha256:{file_hash(before / 'p1.png')} -> p1.png sha256:{file_hash(after / 'p1.png')}"
            in comments)
    assert np.isfinite(result.final.total) and result.final.negative > 0 and result.final.pairs > 0


def test_monochrome_writes_a_neutral_lut(training_folder, tiny_clip_model, tmp_path):
    result = optimize(options(training_folder, tmp_path, prompt=("black and white film",), monochrome=True,
                              clip_model=tiny_clip_model), echo=quiet, warn=quiet)
    table = read_lut(result.output_path).table
    assert np.array_equal(table[..., 0], table[..., 1]) and np.array_equal(table[..., 1], table[..., 2])


def test_reference_colours_alone_move_the_photos_towards_the_reference(training_folder, tmp_path):
    from lutgen.color.cpu import apply_lut_array
    from lutgen.imaging import load_rgb_float

    reference = tmp_path / "blue.png"
    rng = np.random.default_rng(1)
    save_unit(np.clip(rng.normal([0.2, 0.3, 0.7], 0.08, (64, 64, 3)), 0, 1), reference)
    result = optimize(options(training_folder, tmp_path, reference_image=(reference,), reference_similarity=0.0,
                              reference_colors=10.0, steps=60, learning_rate=0.05), echo=quiet, warn=quiet)
    photo = load_rgb_float(sorted(training_folder.iterdir())[0])
    graded = apply_lut_array(photo, read_lut(result.output_path), "trilinear")
    assert graded[..., 2].mean() - graded[..., 0].mean() > photo[..., 2].mean() - photo[..., 0].mean() + 0.1


# ----------------------------------------------------------------------------------------------
# The command line


def test_cli_weight_without_prompts_and_bad_representation_are_one_sentence(training_folder, tmp_path):
    result = run_lutgen("optimize", "--prompt", "a", "--prompt-weight", "1", "--prompt-weight", "2",
                        "--image-folder", str(training_folder), "--output-path", str(tmp_path / "o.cube"))
    one_sentence_error(result, "--prompt-weight is given 2 time(s) for 1 --prompt")
    result = run_lutgen("optimize", "--prompt", "a", "--representation", "mesh", "--image-folder",
                        str(training_folder), "--output-path", str(tmp_path / "o.cube"))
    one_sentence_error(result, "--representation 'mesh' is not one of structured, lattice")
    result = run_lutgen("optimize", "--prompt", "a", "--prompt-weight", "heavy", "--image-folder",
                        str(training_folder))
    one_sentence_error(result, "--prompt-weight", "'heavy'")


def test_cli_pairs_run_without_clip(training_folder, desaturated_pairs, tmp_path):
    before, after = desaturated_pairs
    output = tmp_path / "grey.cube"
    result = run_lutgen("optimize", "--pairs", str(before), str(after), "--steps", "2", "--image-folder",
                        str(training_folder), "--output-path", str(output), "--log-interval", "0", "--seed", "1",
                        "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "no CLIP needed" in result.stdout and output.is_file()


def test_pairs_of_one_folder_are_refused_naming_the_option(training_folder, desaturated_pairs, tmp_path):
    before, _ = desaturated_pairs
    with pytest.raises(OptionError, match=r"^--pairs AFTER_DIR .* is the --pairs BEFORE_DIR folder; the targets"):
        validate(options(training_folder, tmp_path, pairs=(before, before)))
