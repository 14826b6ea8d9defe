"""``optimize``: the bounded LUT, the losses (zero at identity), the views, the loop, the task and the CLI.

CLIP is the tiny open_clip model of ``conftest.py``, loaded from its ``local-dir:`` folder through
the same code as published weights.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_runner import (OPTIMIZE_IMPORTS_PROBE, STACKS_ON_ABORT, one_sentence_error, only_line,
                        output_after_signal, run_lutgen)
from PIL import Image

from lutgen.color.torch_ops import apply_lut_reproducible, identity_table
from lutgen.errors import ImageError, OptionError
from lutgen.formats import read_lut
from lutgen.lut import grid
from lutgen.optim import losses
from lutgen.optim.objective import EvidenceTensors, Objective
from lutgen.optim.parameterisation import BoundedLUT
from lutgen.optim.trainer import LutTrainer
from lutgen.optim.views import ViewSampler, centre_box, random_box
from lutgen.tasks.optimize import OptimizeOptions, optimize, prompt_slug, validate

ROOT = Path(__file__).resolve().parents[1]
VERBOSE_LINE = re.compile(
    r"^Step (\d+): Loss = \d+\.\d{4} \(CLIP: \d+\.\d{4}, Smooth: \d+\.\d{4}, Reg: \d+\.\d{4}, "
    r"Black: \d+\.\d{4}, Highlight: \d+\.\d{4}, LUT Smooth: \d+\.\d{4}\)$"
)


def image_tensors(folder: Path) -> list[torch.Tensor]:
    from lutgen.imaging import find_images, load_rgb_float

    return [torch.from_numpy(load_rgb_float(p)).permute(2, 0, 1).contiguous() for p in find_images(folder)]


def options(tiny_clip_model: str, folder: Path, tmp_path: Path, **changes) -> OptimizeOptions:
    base = OptimizeOptions(
        prompt="golden hour warm sunlight", image_folder=folder, steps=5, log_interval=0,
        output_path=tmp_path / "out.cube", clip_model=tiny_clip_model, device="cpu", seed=11,
    )
    return replace(base, **changes)


# ----------------------------------------------------------------------------------------------
# The bounded LUT


def test_bounded_lut_starts_as_the_exact_identity():
    lut = BoundedLUT(17)
    assert torch.equal(lut.change(), torch.zeros(17, 17, 17, 3))
    assert torch.equal(lut.table(), identity_table(17))
    np.testing.assert_allclose(lut.to_lut().table, grid(17), rtol=0, atol=6e-8)  # float32 nodes
    assert lut.to_lut().is_identity(atol=1e-7)


def test_bounded_lut_stays_in_range_and_keep_in_range_changes_no_value():
    lut = BoundedLUT(9)
    torch.manual_seed(0)
    with torch.no_grad():
        lut.raw.copy_(torch.randn_like(lut.raw) * 30)
    table = lut.table()
    assert table.min().item() >= 0.0 and table.max().item() <= 1.0
    before = table.detach().clone()
    lut.keep_in_range()
    assert torch.equal(lut.table().detach(), before)
    assert (lut.raw[lut.identity == 0] >= 0).all() and (lut.raw[lut.identity == 1] <= 0).all()


def test_bounded_lut_gradient_matches_finite_differences():
    lut = BoundedLUT(4).double()
    raw = torch.linspace(-2, 2, lut.raw.numel(), dtype=torch.float64).reshape(lut.raw.shape)  # no exact 0
    assert torch.autograd.gradcheck(
        lambda r: torch.func.functional_call(lut, {"raw": r}, ()), (raw.requires_grad_(True),)
    )


# ----------------------------------------------------------------------------------------------
# Losses


def test_every_auxiliary_loss_is_exactly_zero_at_identity(training_folder):
    sampler = ViewSampler(image_tensors(training_folder), (224, 224), 4, seed=0)
    views = sampler.sample()
    assert (losses.luma(views) < losses.BLACK_LUMA).any()  # the dark patch is in view: black loss is live
    lut = BoundedLUT(16)
    table_change = lut.change()
    change = apply_lut_reproducible(views, table_change)
    assert torch.equal(change, torch.zeros_like(views))
    terms = [
        losses.image_smoothness(change),
        losses.image_regularization(change),
        losses.black_preservation(views, change),
        losses.highlight_preservation(views, change),
        losses.lut_smoothness(table_change),
    ]
    assert [t.item() for t in terms] == [0.0, 0.0, 0.0, 0.0, 0.0]
    sum(terms).backward()
    assert torch.equal(lut.raw.grad, torch.zeros_like(lut.raw))


def test_highlight_preservation_matches_a_float64_reference():
    rng = np.random.default_rng(4)
    original = rng.uniform(0.9, 1.0, (2, 3, 8, 8))
    original[:, :, :2] = 1.0  # some pure whites
    change = rng.normal(0, 0.02, original.shape)
    graded = original + change
    y = lambda a: 0.2126 * a[:, 0] + 0.7152 * a[:, 1] + 0.0722 * a[:, 2]  # noqa: E731
    white = y(original) > 0.99
    kept_white = np.abs(change).mean(axis=1)[white].mean()
    clipping = (np.maximum(graded - 0.995, 0) * (original < 0.98)).mean()
    got = losses.highlight_preservation(torch.tensor(original), torch.tensor(change))
    assert white.any() and (original < 0.98).any()
    assert got.item() == pytest.approx(kept_white + clipping, rel=1e-12)
    # Mid-tones moved anywhere below the clipping level cost nothing; pushing them into it does.
    grey = torch.full((1, 3, 4, 4), 0.5, dtype=torch.float64)
    assert losses.highlight_preservation(grey, torch.full_like(grey, 0.4)).item() == 0.0
    assert losses.highlight_preservation(grey, torch.full_like(grey, 0.5)).item() == pytest.approx(0.005)


def test_black_preservation_matches_a_float64_reference():
    rng = np.random.default_rng(3)
    original = rng.uniform(0, 0.03, (2, 3, 8, 8))
    graded = np.clip(original + rng.normal(0, 0.01, original.shape), 0, 1)
    y = lambda a: 0.2126 * a[:, 0] + 0.7152 * a[:, 1] + 0.0722 * a[:, 2]  # noqa: E731
    dark = y(original) < 0.01
    expected = np.maximum(y(graded) - y(original), 0)[dark].mean()
    got = losses.black_preservation(torch.tensor(original), torch.tensor(graded - original))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    no_dark = torch.full((1, 3, 4, 4), 0.5, dtype=torch.float64)
    assert losses.black_preservation(no_dark, torch.ones_like(no_dark)).item() == 0.0


def test_lowpass_copies_equal_interpolate_down_and_up():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 37, 50, dtype=torch.float64)
    small = F.interpolate(images, size=(19, 25), mode="bilinear", align_corners=False)
    expected = F.interpolate(small, size=(37, 50), mode="bilinear", align_corners=False)
    torch.testing.assert_close(losses.image_lowpass(images), expected, rtol=0, atol=1e-12)
    table = torch.randn(9, 9, 9, 3, dtype=torch.float64)
    volume = table.permute(3, 0, 1, 2).unsqueeze(0)
    small = F.interpolate(volume, size=(5, 5, 5), mode="trilinear", align_corners=True)
    expected = F.interpolate(small, size=(9, 9, 9), mode="trilinear", align_corners=True)[0].permute(1, 2, 3, 0)
    torch.testing.assert_close(losses.lut_lowpass(table), expected, rtol=0, atol=1e-12)


def test_image_smoothness_costs_banding_not_uniform_changes():
    torch.manual_seed(0)
    views = torch.rand(2, 3, 64, 64)
    brighter = torch.full_like(views, 0.05)  # the same change everywhere: nothing to smooth
    levels = 4
    posterised = torch.round(views * levels) / levels - views
    assert losses.image_smoothness(brighter).item() < 1e-12
    assert losses.image_smoothness(posterised).item() > 1e-3


def test_lut_smoothness_is_free_for_affine_grades_and_costs_kinks():
    g = identity_table(16, dtype=torch.float64)
    matrix = torch.tensor([[1.1, 0.05, -0.02], [0.0, 0.95, 0.03], [0.02, -0.04, 1.0]], dtype=torch.float64)
    affine_change = g @ matrix.T + torch.tensor([0.01, -0.02, 0.03], dtype=torch.float64) - g
    assert losses.lut_smoothness(affine_change).item() < 1e-20
    kink = torch.zeros_like(g)
    kink[7, 7, 7] = 0.1
    assert losses.lut_smoothness(kink).item() > 1e-6


def test_lut_smoothness_does_not_lift_the_blacks():
    """Adam on the LUT smoothness alone, from identity: lutgen's keeps black at exactly 0, while a
    smoothness on the table itself (against its own half-size copy, grid_sample-style corners) lifts it."""
    lut = BoundedLUT(16)
    ours = torch.optim.Adam([lut.raw], lr=0.005)
    table = identity_table(16).requires_grad_(True)
    theirs = torch.optim.Adam([table], lr=0.005)
    for _ in range(50):
        ours.zero_grad()
        losses.lut_smoothness(lut.change()).backward()
        ours.step()
        lut.keep_in_range()
        theirs.zero_grad()
        volume = table.permute(3, 0, 1, 2).unsqueeze(0)
        small = F.interpolate(volume, scale_factor=0.5, mode="trilinear", align_corners=False)
        F.mse_loss(volume, F.interpolate(small, size=volume.shape[2:], mode="trilinear", align_corners=False)).backward()
        theirs.step()
        with torch.no_grad():
            table.clamp_(0, 1)
    assert torch.equal(lut.table()[0, 0, 0], torch.zeros(3))
    assert torch.equal(lut.table(), identity_table(16))
    assert table[0, 0, 0].min().item() > 0.01  # the table-itself smoothness lifts black, for contrast


def test_clip_loss_is_one_minus_cosine():
    image = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), dim=-1)
    text = torch.tensor([[1.0, 0.0]])
    assert losses.clip_loss(image, text).item() == pytest.approx(1 - (1 + math.sqrt(0.5)) / 2)


# ----------------------------------------------------------------------------------------------
# Grading and views


def test_centre_box_is_open_clips_centre_crop():
    assert centre_box(672, 448, (224, 224)) == (112, 0, 448, 448)
    assert centre_box(300, 451, (224, 224)) == (0, 75, 300, 300)
    assert centre_box(100, 100, (224, 224)) == (0, 0, 100, 100)
    assert centre_box(300, 451, (224, 224), "squash") == (0, 0, 300, 451)


def test_random_boxes_stay_inside_with_the_right_area_and_aspect():
    import random

    rng = random.Random(5)
    areas = []
    for _ in range(500):
        top, left, h, w = random_box(300, 451, rng)
        assert 0 <= top and top + h <= 300 and 0 <= left and left + w <= 451
        assert 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02
        areas.append(h * w / (300 * 451))
    assert 0.24 <= min(areas) and max(areas) <= 1.0
    assert np.mean(areas) < 0.7  # crops at every scale, not just whole frames


def test_sampler_draws_full_batches_visiting_every_image_equally(training_folder):
    images = image_tensors(training_folder)  # 3 images, all smaller than 224 px
    sampler = ViewSampler(images, (224, 224), 4, seed=3)
    counts = np.zeros(len(images), int)
    for _ in range(6):  # 24 views = 8 epochs of 3 images
        indices = sampler.next_indices()
        assert len(indices) == 4
        np.add.at(counts, indices, 1)
    assert counts.tolist() == [8, 8, 8]
    batch = sampler.sample()
    assert batch.shape == (4, 3, 224, 224)
    assert 0.0 <= batch.min().item() and batch.max().item() <= 1.0
    again = ViewSampler(images, (224, 224), 4, seed=3)
    for _ in range(6):
        again.next_indices()
    assert torch.equal(again.sample(), batch)


# ----------------------------------------------------------------------------------------------
# The loop


def test_total_loss_falls_over_30_steps(guide, training_folder):
    images = image_tensors(training_folder)
    sampler = ViewSampler(images, guide.image_size, 4, seed=0)
    fixed = ViewSampler(images, guide.image_size, 8, seed=99).sample()
    text = guide.embed_text("golden hour warm sunlight")
    objective = Objective(guide, EvidenceTensors(prompts=text, prompt_weights=torch.ones(1)), losses.LossWeights(), 0)
    trainer = LutTrainer(objective, sampler, BoundedLUT(16), 0.005)
    with torch.no_grad():
        before = trainer.losses(fixed).total.item()
    records = [trainer.step() for _ in range(30)]
    with torch.no_grad():
        after = trainer.losses(fixed)
    assert after.total.item() < before - 0.02  # measured: 0.785 -> 0.732
    assert np.mean([r.total for r in records[-5:]]) < np.mean([r.total for r in records[:5]])
    assert after.reg.item() > 0  # the grade is not the identity any more
    assert all(r.step == i + 1 for i, r in enumerate(records))


def test_verbose_line_format():
    from lutgen.optim.trainer import StepRecord

    line = StepRecord(100, 0.79354, 0.79051, 0.00041, 0.00172, 0.0, 0.00078, 0.00012).verbose_line()
    assert line == ("Step 100: Loss = 0.7935 (CLIP: 0.7905, Smooth: 0.0004, Reg: 0.0017, Black: 0.0000, "
                    "Highlight: 0.0001, LUT Smooth: 0.0008)")


# ----------------------------------------------------------------------------------------------
# The task, in process


@pytest.mark.parametrize(
    ("changes", "error", "fragment"),
    [
        ({"steps": 0}, OptionError, "--steps must be between 1 and 100000, not 0"),
        ({"steps": 100_001}, OptionError, "--steps must be between 1 and 100000"),
        ({"lut_size": 1}, OptionError, "--lut-size must be between 2 and 128"),
        ({"lut_size": 129}, OptionError, "--lut-size must be between 2 and 128, not 129"),
        ({"learning_rate": 0.0}, OptionError, "--learning-rate must be between 1e-06 and 1.0, not 0.0"),
        ({"learning_rate": 1e308}, OptionError, "--learning-rate must be between 1e-06 and 1.0, not 1e+308"),
        ({"learning_rate": float("nan")}, OptionError, "--learning-rate must be a finite number"),
        ({"image_smoothness": -1.0}, OptionError, "--image-smoothness must be between 0.0 and 1000.0, not -1.0"),
        ({"image_regularization": 1e308}, OptionError, "--image-regularization must be between 0.0 and 1000.0"),
        ({"black_preservation": -0.5}, OptionError, "--black-preservation"),
        ({"lut_smoothness": float("inf")}, OptionError, "--lut-smoothness must be a finite number"),
        ({"batch_size": 0}, OptionError, "--batch-size must be between 1 and 256"),
        ({"batch_size": 20_000}, OptionError, "--batch-size must be between 1 and 256, not 20000"),
        ({"log_interval": -1}, OptionError, "--log-interval must be between 0 and 100000"),
        ({"seed": -3}, OptionError, "--seed"),
        ({"prompt": "   "}, OptionError, "--prompt is empty"),
        ({"output_path": Path("look.png")}, OptionError, "must end in .cube"),
        ({"device": "tpu"}, OptionError, "--device"),
        ({"clip_precision": "fp8"}, OptionError, "--clip-precision"),
    ],
)
def test_bad_options_are_one_sentence(tiny_clip_model, training_folder, tmp_path, changes, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)) as caught:
        validate(options(tiny_clip_model, training_folder, tmp_path, **changes))
    assert "\n" not in str(caught.value)


def test_bad_inputs_are_one_sentence(tiny_clip_model, training_folder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match="has no images"):
        validate(options(tiny_clip_model, empty, tmp_path))
    with pytest.raises(ImageError, match="does not exist"):
        validate(options(tiny_clip_model, tmp_path / "nowhere", tmp_path))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageError, match="cannot read .*broken.jpg"):
        validate(options(tiny_clip_model, training_folder, tmp_path, test_image=broken))
    only_broken = tmp_path / "only_broken"
    only_broken.mkdir()
    (only_broken / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(ImageError, match=r"none of the 1 images in .*only_broken could be read \(the first: .*x\.jpg"):
        optimize(options(tiny_clip_model, only_broken, tmp_path), echo=lambda s: None, warn=lambda s: None)


def test_unwritable_output_or_log_folder_is_refused_before_any_work(tiny_clip_model, training_folder, tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OptionError, match=r"--output-path .*cannot be created: .*a_file is a file") as caught:
        validate(options(tiny_clip_model, training_folder, tmp_path, output_path=tmp_path / "a_file" / "new" / "x.cube"))
    assert "\n" not in str(caught.value)
    with pytest.raises(OptionError, match=r"--log-dir .*cannot be created: .*a_file is a file"):
        validate(options(tiny_clip_model, training_folder, tmp_path, log_interval=5, log_dir=tmp_path / "a_file" / "logs"))
    plan = validate(options(tiny_clip_model, training_folder, tmp_path, output_path=tmp_path / "new" / "deeper" / "x.cube",
                            log_interval=5, log_dir=tmp_path / "logs" / "run"))
    assert plan.log_dir == tmp_path / "logs" / "run"
    assert not (tmp_path / "new").exists() and not (tmp_path / "logs").exists()  # checking creates nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only folders")
def test_read_only_output_or_log_folder_is_refused(tiny_clip_model, training_folder, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OptionError, match=r"--output-path .*the folder .*locked is not writable"):
            validate(options(tiny_clip_model, training_folder, tmp_path, output_path=locked / "x.cube"))
        with pytest.raises(OptionError, match=r"--log-dir .*the folder .*locked is not writable"):
            validate(options(tiny_clip_model, training_folder, tmp_path, log_interval=5, log_dir=locked / "logs"))
    finally:
        locked.chmod(0o755)


def test_a_log_file_that_cannot_be_written_warns_once_and_the_lut_is_still_written(
        tiny_clip_model, training_folder, tmp_path):
    log_dir = tmp_path / "logs"
    (log_dir / "losses.csv").mkdir(parents=True)  # a folder where losses.csv goes: every write of it fails
    warnings = []
    result = optimize(options(tiny_clip_model, training_folder, tmp_path, steps=6, log_interval=2, log_dir=log_dir),
                      echo=lambda s: None, warn=warnings.append)
    assert result.steps_done == 6
    assert len(warnings) == 1 and "losses.csv" in warnings[0] and "\n" not in warnings[0], warnings
    assert read_lut(tmp_path / "out.cube").title == "golden hour warm sunlight"
    assert (log_dir / "step_00006.png").is_file() and (log_dir / "loss_plot.png").is_file()  # the rest goes on


def test_prompt_slug():
    assert prompt_slug("golden hour warm sunlight") == "golden_hour_warm_sunlight"
    assert prompt_slug("  café: 50/50 look!  ") == "café_5050_look"
    assert prompt_slug("???") == "untitled"


def test_optimize_writes_what_it_optimised_and_the_logs(tiny_clip_model, training_folder, tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    for image in training_folder.iterdir():
        (folder / image.name).write_bytes(image.read_bytes())
    (folder / "d_broken.jpg").write_bytes(b"\xff\xd8 damaged")
    lines, warnings = [], []
    log_dir = tmp_path / "logs"
    result = optimize(
        options(tiny_clip_model, folder, tmp_path, steps=12, log_interval=5, log_dir=log_dir, verbose=True,
                test_image=ROOT / "images" / "mate_dune.jpg"),
        echo=lines.append, warn=warnings.append,
    )
    assert result.steps_done == 12 and result.images_used == 3
    assert len(warnings) == 1 and warnings[0].startswith(f"skipped {folder / 'd_broken.jpg'}: it is damaged")
    assert warnings[0].count("d_broken.jpg") == 1
    verbose = [line for line in lines if line.startswith("Step ")]
    assert len(verbose) == 1 and VERBOSE_LINE.match(verbose[0]) and verbose[0].startswith("Step 10:")

    written = read_lut(tmp_path / "out.cube")
    assert written.title == "golden hour warm sunlight"
    assert written.size == 16
    assert any("seed=11" in c for c in written.comments)
    np.testing.assert_allclose(written.table, result.lut.table, rtol=0, atol=5.1e-7)  # 6 decimals
    assert not written.is_identity(atol=1e-4)
    assert written.table.min() >= 0 and written.table.max() <= 1

    names = sorted(p.name for p in log_dir.iterdir())
    assert names == [
        "contact_sheet.png", "loss_plot.png", "losses.csv",
        "step_00005.cube", "step_00005.png", "step_00010.cube", "step_00010.png",
        "step_00012.cube", "step_00012.png",
    ]
    np.testing.assert_allclose(read_lut(log_dir / "step_00012.cube").table, written.table, rtol=0, atol=1e-12)
    rows = (log_dir / "losses.csv").read_text().splitlines()
    assert rows[0] == "step,total,clip,smooth,reg,black,lut_smooth,highlight,negative,reference,colors,pairs"
    assert len(rows) == 13
    with Image.open(log_dir / "step_00005.png") as before_after, Image.open(log_dir / "loss_plot.png") as plot, \
            Image.open(log_dir / "contact_sheet.png") as sheet:
        assert before_after.width <= 768
        assert plot.size == (900, 600)
        assert sheet.width > 600


def test_same_seed_same_lut_and_another_seed_another(tiny_clip_model, training_folder, tmp_path):
    def run(seed: int, name: str) -> bytes:
        optimize(options(tiny_clip_model, training_folder, tmp_path, seed=seed, steps=4,
                         output_path=tmp_path / name), echo=lambda s: None, warn=lambda s: None)
        return (tmp_path / name).read_bytes()

    first, again, other = run(5, "a.cube"), run(5, "b.cube"), run(6, "c.cube")
    assert first == again
    assert first.split(b"LUT_3D_SIZE")[1] != other.split(b"LUT_3D_SIZE")[1]


# ----------------------------------------------------------------------------------------------
# The command line, as a user runs it


def cli_env(tmp_path: Path, **extra: str) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra}


def run_cli(*args, env=None, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return run_lutgen("optimize", *args, env=env, cwd=cwd, timeout=timeout)


def test_cli_run_writes_a_valid_cube_without_torchs_compiler(tiny_clip_model, training_folder, tmp_path):
    """A whole run, in a fresh process; it never imports torch's compiler (about 150 MB) nor timm."""
    out = tmp_path / "look.cube"
    args = ["--prompt", "cinematic teal and orange", "--image-folder", training_folder, "--steps", 10,
            "--verbose", "--log-interval", 5, "--log-dir", tmp_path / "logs", "--output-path", out,
            "--clip-model", tiny_clip_model, "--seed", 1, "--device", "cpu"]
    result = subprocess.run([sys.executable, "-c", OPTIMIZE_IMPORTS_PROBE, *map(str, args)], capture_output=True,
                            text=True, cwd=tmp_path, env=cli_env(tmp_path), timeout=300)
    assert "exit 0 heavy ['open_clip', 'torch']" in result.stdout, (result.stdout[-2000:], result.stderr[-2000:])
    assert any(VERBOSE_LINE.match(line) for line in result.stdout.splitlines()), result.stdout
    assert f"LUT saved to {out}" in result.stdout
    lut = read_lut(out)
    assert lut.title == "cinematic teal and orange" and lut.size == 16
    assert (tmp_path / "logs" / "contact_sheet.png").is_file()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_ctrl_c_or_sigterm_writes_the_lut_so_far(tiny_clip_model, training_folder, tmp_path, signum, code):
    out = tmp_path / "interrupted.cube"
    log_dir = tmp_path / "logs"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "optimize", "--prompt", "vintage film", "--image-folder",
         str(training_folder), "--steps", "1000", "--log-interval", "1", "--log-dir", str(log_dir),
         "--output-path", str(out), "--clip-model", tiny_clip_model, "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path, **STACKS_ON_ABORT), cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 240
        while not (log_dir / "losses.csv").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the optimisation never started"
            time.sleep(0.2)
        process.send_signal(signum)
        stdout, stderr = output_after_signal(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, stderr
    message = [line for line in stderr.splitlines() if "interrupted" in line]
    assert len(message) == 1 and "Traceback" not in stderr, stderr
    steps = int(re.search(r"interrupted after step (\d+) of 1000; the LUT reached so far is written to (.*)$",
                          message[0]).group(1))
    assert message[0].endswith(str(out))
    lut = read_lut(out)
    assert lut.title == "vintage film"
    assert f"interrupted after step {steps} of 1000" in lut.comments
    rows = (log_dir / "losses.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == steps + 1  # every step's losses, once
    assert [int(row.split(",")[0]) for row in rows[1:]] == list(range(1, steps + 1))


def test_cli_offline_without_cached_weights_is_one_sentence(training_folder, tmp_path):
    env = cli_env(tmp_path, HF_HUB_CACHE=str(tmp_path / "hub"), HOME=str(tmp_path))
    result = run_cli("--prompt", "warm", "--image-folder", training_folder, "--steps", 1, "--device", "cpu",
                     "--output-path", tmp_path / "x.cube", "--log-interval", 0, env=env, cwd=tmp_path)
    line = one_sentence_error(result)
    assert "ViT-B-32 'openai'" in line and "--clip-pretrained" in line
    assert not (tmp_path / "x.cube").exists()




@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--steps", "0"], "--steps must be between 1 and 100000"),
        (["--lut-size", "300"], "--lut-size must be between 2 and 128"),
        (["--batch-size", "20000"], "--batch-size must be between 1 and 256"),
        (["--learning-rate", "1e308"], "--learning-rate must be between 1e-06 and 1.0"),
        (["--lut-smoothness", "1e308"], "--lut-smoothness must be between 0.0 and 1000.0"),
        (["--image-smoothness", "-1"], "--image-smoothness"),
        (["--prompt", ""], "--prompt is empty"),
        (["--test-image", "missing.jpg"], "missing.jpg"),
        (["--output-path", "blocker/x.cube"], "--output-path blocker/x.cube cannot be created: blocker is a file"),
        (["--log-dir", "blocker/logs"], "--log-dir blocker/logs cannot be created: blocker is a file"),
    ],
)
def test_cli_bad_inputs_exit_2_before_any_model_loads(training_folder, tmp_path, args, fragment):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    base = ["--prompt", "warm", "--image-folder", str(training_folder), "--output-path", str(tmp_path / "x.cube")]
    result = subprocess.run([sys.executable, "-c", OPTIMIZE_IMPORTS_PROBE, *base, *args], capture_output=True, text=True,
                            cwd=tmp_path, env=cli_env(tmp_path), timeout=120)
    assert "exit 2 heavy []" in result.stdout, (result.stdout, result.stderr)
    assert fragment in only_line(result.stderr)


def test_cli_empty_image_folder_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("--prompt", "warm", "--image-folder", tmp_path / "empty", env=cli_env(tmp_path), cwd=tmp_path)
    assert "has no images" in one_sentence_error(result)
