"""lutgen rank and lutgen score: the CLIP score of a grade, the ranking, the contact sheet, the CLI.

The ordering is checked under a stand-in CLIP whose answer is known in closed form: a small torch
module whose image embedding is ``(redness, 1/2)`` of the mean colour (``redness = r - (g + b) / 2``)
and whose text embedding of a prompt holding "red" is ``(1, 0)`` (else ``(0, 1)``), inside the real
:class:`~lutgen.guidance.clip.ClipGuide`. On photos of one flat colour graded by LUTs that scale each
channel (which trilinear interpolation reproduces exactly), a photo's score is
``redness / sqrt(redness^2 + 1/4)``, computed here in float64.

The commands that load CLIP run through the real command-line app in this process (a fresh process
spends most of its time importing open_clip); the bad inputs run as real processes, which must fail
before torch is even imported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import lutgen.cli.commands  # noqa: F401  (registers the commands on the app)
from cli_runner import ROOT, one_sentence_error
from lutgen.cli import app
from lutgen.formats import read_lut, write_lut
from lutgen.lut import LUT, grid

FLAT_CODES = [(153, 77, 51), (102, 102, 128), (51, 128, 77)]  # 8-bit colours of the flat photos
GAINS = {"warm.cube": (1.4, 1.0, 0.8), "cool.cube": (0.8, 1.0, 1.5), "faded.cube": (0.3, 1.0, 1.0),
         "redder.cube": (1.6, 0.5, 0.5)}


class RednessClip(nn.Module):
    """A CLIP-shaped module whose embeddings are known: see the module docstring."""

    def __init__(self):
        super().__init__()
        self.visual = nn.Module()
        self.visual.image_size = 8
        self.visual.preprocess_cfg = {"size": 8, "interpolation": "bilinear", "resize_mode": "shortest",
                                      "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3)}
        self.register_buffer("mean", torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1))

    def encode_image(self, normalised: torch.Tensor) -> torch.Tensor:
        rgb = (normalised * self.std + self.mean).mean(dim=(2, 3))
        redness = rgb[:, 0] - (rgb[:, 1] + rgb[:, 2]) / 2
        return torch.stack([redness, torch.full_like(redness, 0.5)], dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        red = tokens[:, 0].float()
        return torch.stack([red, 1 - red], dim=-1)


def redness_guide():
    from lutgen.guidance.clip import ClipGuide

    def tokenizer(texts):
        return torch.tensor([[1 if "red" in text else 0] for text in texts])

    return ClipGuide(RednessClip(), tokenizer, torch.device("cpu"))


def expected_score(gains, negative: bool = False) -> float:
    """The float64 score of the flat photos graded by per-channel ``gains`` (the photos are kept in float16)."""
    scores = []
    for codes in FLAT_CODES:
        colour = np.float16(np.array(codes) / 255).astype(np.float64)
        out = np.clip(colour * np.array(gains), 0, 1)
        redness = out[0] - (out[1] + out[2]) / 2
        scores.append((redness - (0.5 if negative else 0.0)) / np.hypot(redness, 0.5))
    return float(np.mean(scores))


def gain_lut(gains, size: int = 5) -> LUT:
    return LUT(grid(size) * np.array(gains))


@pytest.fixture(scope="module")
def flat_photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flat")
    for index, codes in enumerate(FLAT_CODES):
        Image.fromarray(np.full((12, 18, 3), codes, np.uint8)).save(folder / f"{index}.png")
    return folder


@pytest.fixture(scope="module")
def gain_luts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("looks")
    for name, gains in GAINS.items():
        write_lut(gain_lut(gains), folder / name)
    (folder / "sub").mkdir()
    (folder / "sub" / "broken.cube").write_text("LUT_3D_SIZE 2\n0 0 0\n", encoding="utf-8")
    return folder


def test_rank_orders_luts_by_the_known_score_and_skips_the_unreadable(flat_photos, gain_luts, tmp_path):
    from lutgen.tasks.contact_sheet import GAP, LABEL_HEIGHT, THUMB, sheet_size
    from lutgen.tasks.rank import RankOptions, rank

    warnings = []
    sheet = tmp_path / "sheet.png"
    options = RankOptions(prompt="a red photo", luts=[gain_luts], image_folder=flat_photos, top=2,
                          contact_sheet=sheet, batch_size=3)
    result = rank(options, warn=warnings.append, guide=redness_guide())

    expected = {name: expected_score(gains) for name, gains in GAINS.items()}
    assert [entry.path.name for entry in result.ranked] == sorted(expected, key=expected.get, reverse=True)
    for entry in result.ranked:
        assert entry.score == pytest.approx(expected[entry.path.name], abs=1e-6)
    assert result.identity == pytest.approx(expected_score((1, 1, 1)), abs=1e-6)
    assert [path.name for path, _ in result.skipped] == ["broken.cube"]
    assert len(warnings) == 1 and "broken.cube" in warnings[0] and warnings[0].count("broken.cube") == 1

    pixels = np.asarray(Image.open(sheet).convert("RGB")).astype(int)
    assert (pixels.shape[1], pixels.shape[0]) == sheet_size(3, 3)
    best = np.array(GAINS[result.ranked[0].path.name])
    for row, gains in ((0, np.ones(3)), (1, best)):  # the ungraded photos, then the best LUT's
        for column, codes in enumerate(FLAT_CODES):
            top, left = GAP + row * (LABEL_HEIGHT + THUMB + GAP) + LABEL_HEIGHT, GAP + column * (THUMB + GAP)
            centre = pixels[top + THUMB // 2, left + THUMB // 2]
            want = np.clip(np.float16(np.array(codes) / 255) * gains, 0, 1) * 255
            assert np.abs(centre - want).max() <= 1, (row, column, centre, want)


def test_negative_prompt_subtracts_its_similarity(flat_photos, gain_luts):
    from lutgen.tasks.score import ScoreOptions, score

    result = score(ScoreOptions(prompt="red", negative_prompt="blue", lut=gain_luts / "cool.cube",
                                image_folder=flat_photos), warn=print, guide=redness_guide())
    assert result.score == pytest.approx(expected_score(GAINS["cool.cube"], negative=True), abs=1e-6)
    assert result.identity == pytest.approx(expected_score((1, 1, 1), negative=True), abs=1e-6)


def test_an_interrupted_rank_writes_nothing(flat_photos, gain_luts, tmp_path):
    from lutgen.tasks.rank import RankOptions, rank

    class StopAtFirstUpdate:
        def update(self, n):
            raise KeyboardInterrupt

        def close(self):
            pass

    sheet = tmp_path / "sheet.png"
    options = RankOptions(prompt="red", luts=[gain_luts], image_folder=flat_photos, contact_sheet=sheet, batch_size=1)
    with pytest.raises(KeyboardInterrupt):
        rank(options, warn=lambda text: None, progress=lambda total: StopAtFirstUpdate(), guide=redness_guide())
    assert list(tmp_path.iterdir()) == []


def test_score_luts_in_batches_equals_each_lut_scored_alone(guide, training_folder):
    from lutgen.guidance.scoring import embed_prompts, grade, photo_views, score_images, score_luts
    from lutgen.imaging import find_images, load_rgb_float
    from lutgen.optim.views import stored_image

    photos = [stored_image(load_rgb_float(path, max_side=192), "cpu") for path in find_images(training_folder)]
    views = photo_views(photos, guide)
    assert views.shape == (3, 3, 64, 64) and views.dtype == torch.float32
    target = embed_prompts(guide, "golden hour", "green tint")
    luts = [None, *(gain_lut(gains) for gains in GAINS.values())]
    batched = score_luts(guide, views, luts, target, batch_size=3)
    alone = [score_images(guide, grade(views, lut), target) for lut in luts]
    assert batched == pytest.approx(alone, abs=1e-5)
    assert len(set(np.round(batched, 4))) == len(luts)  # the tiny CLIP tells the grades apart


def test_cli_rank_json_table_and_contact_sheet(tiny_clip_model, training_folder, gain_luts, tmp_path, capsys):
    from lutgen.cli.rank import print_table
    from lutgen.guidance.clip import load_clip
    from lutgen.tasks.contact_sheet import sheet_size
    from lutgen.tasks.rank import RankOptions, rank

    sheet = tmp_path / "best.png"
    app([str(arg) for arg in ("rank", gain_luts, "--prompt", "teal night", "--image-folder", training_folder,
                              "--clip-model", tiny_clip_model, "--device", "cpu", "--clip-precision", "fp32",
                              "--top", 2, "--json", "--contact-sheet", sheet)], standalone_mode=False)
    printed = capsys.readouterr()
    report = json.loads(printed.out)
    assert report["luts_scored"] == 4 and [entry["rank"] for entry in report["ranking"]] == [1, 2]
    assert [item["path"] for item in report["skipped"]] == [str(gain_luts / "sub" / "broken.cube")]
    assert [line for line in printed.err.splitlines() if "warning:" in line][0].count("broken.cube") == 1
    with Image.open(sheet) as image:
        assert image.size == sheet_size(3, 3)

    options = RankOptions(prompt="teal night", luts=[gain_luts], image_folder=training_folder, write_sheet=False)
    here = rank(options, warn=lambda text: None, guide=load_clip(tiny_clip_model, None, "cpu", "fp32"))
    assert report["identity_score"] == pytest.approx(here.identity, abs=1e-6)
    assert [(item["path"], item["score"]) for item in report["ranking"]] == [
        (str(entry.path), pytest.approx(entry.score, abs=1e-6)) for entry in here.ranked[:2]]

    print_table(here, 1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("4 LUTs ranked by CLIP similarity to 'teal night' on 3 photos") and len(lines) == 3
    assert lines[1].split() == ["rank", "score", "change", "LUT"]
    best = here.ranked[0]
    assert lines[2].split() == ["1", f"{best.score:.4f}", f"{best.change:+.4f}", str(best.path)]


def run_in_process(capsys, *args) -> list[str]:
    """The lines ``lutgen ARGS`` prints on stdout, run by the real command line app in this process."""
    app([str(arg) for arg in args], standalone_mode=False)
    return capsys.readouterr().out.splitlines()


def test_optimize_prints_the_score_that_the_score_command_measures(tiny_clip_model, training_folder, tmp_path,
                                                                    capsys):
    lut = tmp_path / "look.cube"
    common = ["--prompt", "warm sunset", "--image-folder", training_folder, "--clip-model", tiny_clip_model,
              "--device", "cpu", "--clip-precision", "fp32"]
    made = run_in_process(capsys, "optimize", *common, "--steps", 3, "--log-interval", 0, "--output-path", lut,
                          "--seed", 3)
    line = next(line for line in made if line.startswith("CLIP score (as lutgen score measures it): "))
    ungraded, graded, change = re.fullmatch(r".*: (\d\.\d{4}) ungraded, (\d\.\d{4}) graded \(([-+]\d\.\d{4})\)",
                                            line).groups()
    assert float(graded) != float(ungraded) and read_lut(lut).size == 16

    header, row = run_in_process(capsys, "score", lut, *common)
    assert header.split()[:3] == ["score", "ungraded", "change"]
    value, identity, change_now, path = row.split()
    assert path == str(lut) and identity == ungraded
    assert float(value) == pytest.approx(float(graded), abs=2e-4)  # the .cube keeps 6 decimals of the table
    assert float(change_now) == pytest.approx(float(change), abs=2e-4)


IMPORTS_PROBE = (
    "import sys; sys.argv = ['lutgen', *sys.argv[1:]]\n"
    "from lutgen.cli import main\n"
    "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
    "print('heavy:', *sorted(m for m in ('torch', 'open_clip') if m in sys.modules))\n"
    "sys.exit(code)\n"
)
"""``python -c IMPORTS_PROBE ARGS``: runs ``lutgen ARGS``, prints the heavy modules it loaded, keeps its exit code."""


@pytest.mark.parametrize("args, fragments", [
    (["rank", "{missing}", "--prompt", "x"], ["does not exist"]),
    (["rank", "{empty}", "--prompt", "x"], ["no LUT files", "were found in"]),
    (["rank", "{luts}", "--prompt", "x", "--top", "0"], ["--top must be at least 1"]),
    (["rank", "{luts}", "--prompt", " "], ["--prompt is empty"]),
    (["rank", "{luts}", "--prompt", "x", "--contact-sheet", "{luts}/warm.cube"], ["unknown image extension"]),
    (["score", "{luts}/sub/broken.cube", "--prompt", "x"], ["broken.cube, line 2"]),
])
def test_cli_bad_inputs_are_one_sentence_exit_2_before_torch_loads(args, fragments, gain_luts, tmp_path):
    (tmp_path / "empty").mkdir()
    names = {"missing": tmp_path / "nothing", "empty": tmp_path / "empty", "luts": gain_luts}
    done = subprocess.run([sys.executable, "-c", IMPORTS_PROBE, *(arg.format(**names) for arg in args)],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    one_sentence_error(done, *fragments)
    assert done.stdout.split() == ["heavy:"], done.stdout
