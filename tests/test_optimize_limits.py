"""``optimize`` against hostile inputs: nothing it reads is overwritten, every option has a range, a
non-finite loss stops the run, and every interruption says what was written.

CLIP is the tiny open_clip model of ``conftest.py``. Interruptions of each phase are raised by the
callbacks the task takes (``echo``, ``progress``), at the moment the phase is announced.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import OPTIMIZE_IMPORTS_PROBE, one_sentence_error, only_line, run_lutgen

from lutgen.errors import ImageError, OptionError, Terminated, interrupt_exit_code
from lutgen.formats import read_lut
from lutgen.optim.training_log import is_log_file_name
from lutgen.tasks.optimize import (
    Diverged,
    OptimizeInterrupted,
    OptimizeOptions,
    optimize,
    prompt_slug,
    validate,
)

ROOT = Path(__file__).resolve().parents[1]


def options(tiny_clip_model: str, folder: Path, tmp_path: Path, **changes) -> OptimizeOptions:
    base = OptimizeOptions(
        prompt="warm sunset", image_folder=folder, steps=4, log_interval=0, output_path=tmp_path / "out.cube",
        clip_model=tiny_clip_model, device="cpu", seed=3,
    )
    return replace(base, **changes)


def copy_folder(source: Path, target: Path) -> Path:
    target.mkdir()
    for image in source.iterdir():
        (target / image.name).write_bytes(image.read_bytes())
    return target


def quiet(*_args) -> None:
    pass


# ----------------------------------------------------------------------------------------------
# Nothing read is overwritten


def test_a_log_folder_equal_to_or_inside_the_image_folder_is_refused(tiny_clip_model, training_folder, tmp_path):
    photos = copy_folder(training_folder, tmp_path / "photos")
    (tmp_path / "link").symlink_to(photos)
    for log_dir in (photos, photos / "logs", tmp_path / "link", tmp_path / "link" / "logs", photos / ".." / "photos"):
        with pytest.raises(OptionError, match=r"the log folder .* is inside the image folder .*photos") as caught:
            validate(options(tiny_clip_model, photos, tmp_path, log_interval=1, log_dir=log_dir))
        assert "\n" not in str(caught.value)
    validate(options(tiny_clip_model, photos, tmp_path, log_interval=1, log_dir=tmp_path / "logs"))  # beside: fine


def test_cli_log_folder_in_the_image_folder_leaves_every_photo_as_it_was(tiny_clip_model, training_folder, tmp_path):
    """The reported case: photos named like log files, and the log folder set to the image folder."""
    photos = copy_folder(training_folder, tmp_path / "photos")
    source = (training_folder / "a_colour.jpg").read_bytes()
    for name in ("step_00001.png", "loss_plot.png", "contact_sheet.png"):
        (photos / name).write_bytes((training_folder / "c_grey.png").read_bytes())
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    result = run_lutgen("optimize", "--prompt", "warm", "--image-folder", photos, "--log-dir", photos,
                        "--log-interval", 1, "--steps", 2, "--output-path", tmp_path / "x.cube", "--device", "cpu",
                        "--clip-model", tiny_clip_model, "--test-image", photos / "step_00001.png", cwd=tmp_path)
    one_sentence_error(result, "inside the image folder")
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before
    assert source == (photos / "a_colour.jpg").read_bytes()


def test_an_output_that_is_an_input_is_refused(tiny_clip_model, training_folder, tmp_path):
    photos = copy_folder(training_folder, tmp_path / "photos")
    (tmp_path / "onto_photo.cube").symlink_to(photos / "a_colour.jpg")
    (tmp_path / "onto_test.cube").symlink_to(training_folder / "c_grey.png")
    (tmp_path / "onto_weights.cube").symlink_to(Path(tiny_clip_model.split(":", 1)[1]) / "open_clip_model.safetensors")
    cases = [("onto_photo.cube", "a_colour.jpg"), ("onto_test.cube", "c_grey.png"),
             ("onto_weights.cube", "open_clip_model.safetensors")]
    (tmp_path / "loop.cube").symlink_to(tmp_path / "loop.cube")  # a link loop is no input: replaced by the LUT
    validate(options(tiny_clip_model, photos, tmp_path, output_path=tmp_path / "loop.cube", log_interval=1,
                     log_dir=tmp_path / "logs"))
    with pytest.raises(OptionError, match=r"--log-dir .*loop\.cube/logs cannot be used: .*symbolic link loop"):
        validate(options(tiny_clip_model, photos, tmp_path, output_path=tmp_path / "out.cube", log_interval=1,
                         log_dir=tmp_path / "loop.cube" / "logs"))
    for name, input_name in cases:
        with pytest.raises(OptionError, match=rf"--output-path .*{name} is the input .*{input_name}"):
            validate(options(tiny_clip_model, photos, tmp_path, output_path=tmp_path / name,
                             test_image=training_folder / "c_grey.png"))


def test_log_files_never_replace_the_test_image_or_the_output(tiny_clip_model, training_folder, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    test = logs / "step_00002.png"
    test.write_bytes((training_folder / "c_grey.png").read_bytes())
    with pytest.raises(OptionError, match=r"the input .*step_00002\.png is in the log folder .*logs"):
        validate(options(tiny_clip_model, training_folder, tmp_path, log_interval=2, log_dir=logs, test_image=test))
    with pytest.raises(OptionError, match=r"--output-path .*step_00004\.cube is in the log folder"):
        validate(options(tiny_clip_model, training_folder, tmp_path, log_interval=2, log_dir=logs,
                         output_path=logs / "step_00004.cube"))
    kept = logs / "mine.png"  # a name the log never writes: allowed, and left alone
    original = test.read_bytes()
    kept.write_bytes(original)
    optimize(options(tiny_clip_model, training_folder, tmp_path, log_interval=2, log_dir=logs, test_image=kept,
                     output_path=logs / "final.cube"), echo=quiet, warn=quiet)
    assert kept.read_bytes() == original and read_lut(logs / "final.cube").title == "warm sunset"
    assert {"step_00002.png", "step_00004.cube", "contact_sheet.png"} <= {p.name for p in logs.iterdir()}


def test_log_file_names():
    for name in ("step_00001.png", "step_100000.cube", "losses.csv", "loss_plot.png", "contact_sheet.png"):
        assert is_log_file_name(name)
    for name in ("step_1.png", "step_00001.jpg", "photo.png", "losses.csv.bak"):
        assert not is_log_file_name(name)


# ----------------------------------------------------------------------------------------------
# Options that size the work


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"steps": 5000, "log_interval": 1},
         "saves 5000 snapshots of a 16^3 LUT (0.6 GB of .cube files); at most 1000"),
        ({"steps": 5000, "log_interval": 1}, "use --log-interval 5 or more, or 0 for no log"),
        ({"steps": 100, "lut_size": 128, "log_interval": 1}, "at most 37 (and 2 GB) are allowed: use --log-interval 3"),
    ],
)
def test_a_log_that_would_flood_the_disk_is_refused(tiny_clip_model, training_folder, tmp_path, changes, fragment):
    with pytest.raises(OptionError) as caught:
        validate(options(tiny_clip_model, training_folder, tmp_path, **changes))
    assert fragment in str(caught.value)
    fitting = {**changes, "log_interval": int(str(caught.value).split("use --log-interval ")[1].split()[0])}
    validate(options(tiny_clip_model, training_folder, tmp_path, **fitting))  # the interval it names fits


def test_a_folder_of_more_images_than_memory_allows_is_refused_before_decoding(tiny_clip_model, tmp_path):
    many = tmp_path / "many"
    many.mkdir()
    for index in range(1001):
        (many / f"{index:04d}.jpg").write_bytes(b"")  # never decoded: the count is checked first
    with pytest.raises(ImageError, match=r"the image folder .*many has 1001 images; .* at most 1000$"):
        validate(options(tiny_clip_model, many, tmp_path, test_image=ROOT / "images" / "coffee.jpg"))
    (many / "1000.jpg").unlink()
    with pytest.raises(ImageError, match="cannot read"):  # 1000 is allowed: on to reading the (empty) images
        optimize(options(tiny_clip_model, many, tmp_path, test_image=ROOT / "images" / "coffee.jpg"),
                 echo=quiet, warn=quiet)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("output_path", "a" * 300 + "/x.cube", "--output-path: the name aaaa"),
        ("output_path", "a" * 250 + ".cube", "is 255 bytes long; at most 240 are allowed"),  # room for the temporary
        ("output_path", "a/" * 2100 + "x.cube", "--output-path is 4206 bytes long; a path may hold at most 4096"),
        ("log_dir", "é" * 200, "--log-dir: the name éééé"),
        ("image_folder", "b" * 256, "--image-folder: the name bbbb"),
    ],
)
def test_names_too_long_for_the_file_system_are_refused(tiny_clip_model, training_folder, tmp_path, field, value,
                                                         fragment):
    changes = {"log_interval": 1, field: Path(value)}
    with pytest.raises(OptionError, match=re.escape(fragment)):
        validate(options(tiny_clip_model, training_folder, tmp_path, **changes))
    validate(options(tiny_clip_model, training_folder, tmp_path, output_path=tmp_path / ("a" * 235 + ".cube")))


# ----------------------------------------------------------------------------------------------
# Prompts


def test_prompt_checks(tiny_clip_model, training_folder, tmp_path):
    plan = validate(options(tiny_clip_model, training_folder, tmp_path, prompt="  warm\n\tsunset \r\n light "))
    assert plan.title == "warm sunset light" and plan.evidence.prompts[0].text == "warm sunset light"
    for prompt, fragment in [("x" * 100_000, "--prompt is 100000 characters long"),
                             ("warm\x00sunset", "--prompt holds the control character U+0000"),
                             ("warm \x1b[31m red", "U+001B"), ("\n\n", "--prompt is empty")]:
        with pytest.raises(OptionError, match=re.escape(fragment)):
            validate(options(tiny_clip_model, training_folder, tmp_path, prompt=prompt))


@pytest.mark.parametrize(
    ("prompt", "slug"),
    [
        ("../../etc/passwd", "etcpasswd"),
        ("-rf --no-preserve-root", "rf_--no-preserve-root"),
        ("...", "untitled"),
        ("a\x00b", "ab"),
    ],
)
def test_prompt_slug_is_a_safe_short_name(prompt, slug):
    assert prompt_slug(prompt) == slug


def test_prompt_slug_stays_within_100_bytes():
    for prompt in ("é" * 1000, "日本語の写真 " * 100, "a" * 100_000):
        slug = prompt_slug(prompt)
        assert 0 < len(slug.encode("utf-8")) <= 100 and "/" not in slug and slug.isprintable()


def test_a_prompt_longer_than_clip_reads_is_warned_about(tiny_clip_model, training_folder, tmp_path):
    warnings = []
    optimize(options(tiny_clip_model, training_folder, tmp_path, steps=1, prompt="golden light " * 40),
             echo=quiet, warn=warnings.append)
    assert warnings == ["the prompt is 82 tokens long and CLIP reads 77; its end is ignored"]


# ----------------------------------------------------------------------------------------------
# Hostile inputs, refused in one sentence before any model loads




@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--image-folder", "a_file.jpg"], "--image-folder a_file.jpg is not a folder"),
        (["--image-folder", "fifo"], "--image-folder fifo is not a folder"),
        (["--test-image", "fifo"], "cannot read fifo: it is a FIFO (named pipe), not a regular image"),
        (["--test-image", "folder"], "cannot read folder: it is a folder, not an image"),
        (["--test-image", "zero.jpg"], "cannot read zero.jpg: it is a character device"),
        (["--prompt", "x" * 100_000], "--prompt is 100000 characters long"),
        (["--prompt", "a\nb\x07"], "--prompt holds the control character U+0007"),
        (["--output-path", "look.3dl"], "--output-path look.3dl must end in .cube"),
        (["--output-path", "a_file.jpg/x.cube"],
         "--output-path a_file.jpg/x.cube cannot be created: a_file.jpg is a file"),
        (["--batch-size", "20000"], "--batch-size must be between 1 and 256, not 20000"),
        (["--image-regularization", "1e308"], "--image-regularization must be between 0.0 and 1000.0"),
        (["--learning-rate", "inf"], "--learning-rate must be a finite number"),
        (["--steps", "100000", "--log-interval", "1"], "use --log-interval 100 or more"),
    ],
)
def test_cli_hostile_inputs_exit_2_before_any_model_loads(training_folder, tmp_path, args, fragment):
    (tmp_path / "a_file.jpg").write_bytes((training_folder / "a_colour.jpg").read_bytes())
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    base = ["--prompt", "warm", "--image-folder", str(training_folder), "--output-path", str(tmp_path / "x.cube")]
    result = subprocess.run([sys.executable, "-c", OPTIMIZE_IMPORTS_PROBE, *base, *args], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert "exit 2 heavy []" in result.stdout, (result.stdout, result.stderr)
    assert fragment in only_line(result.stderr)


def test_a_folder_of_only_broken_images_is_one_error_without_warnings(tiny_clip_model, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"\xff\xd8 damaged")
    (broken / "b.png").write_bytes(b"")
    warnings = []
    with pytest.raises(ImageError, match=r"none of the 2 images in .*broken could be read \(the first: .*a\.jpg"):
        optimize(options(tiny_clip_model, broken, tmp_path), echo=quiet, warn=warnings.append)
    assert warnings == [] and not (tmp_path / "out.cube").exists()


def test_cli_clip_config_with_image_size_0_is_one_sentence(tiny_clip_dir, training_folder, tmp_path):
    """The reported case: a traceback from the image loader; now the configuration file is named."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "open_clip_model.safetensors").symlink_to(tiny_clip_dir / "open_clip_model.safetensors")
    config = json.loads((tiny_clip_dir / "open_clip_config.json").read_text())
    config["model_cfg"]["vision_cfg"]["image_size"] = 0
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    result = run_lutgen("optimize", "--prompt", "warm", "--image-folder", training_folder, "--clip-model",
                        f"local-dir:{folder}", "--device", "cpu", "--log-interval", 0,
                        "--output-path", tmp_path / "x.cube", cwd=tmp_path)
    one_sentence_error(result, str(folder / "open_clip_config.json"),
                       "model_cfg.vision_cfg.image_size must be between 16 and 1024 pixels, not 0")


# ----------------------------------------------------------------------------------------------
# A loss that is not finite


@pytest.fixture(scope="module")
def nan_clip_model(tiny_clip_dir, tmp_path_factory) -> str:
    """The tiny CLIP with NaN in its image projection: every image embedding is NaN."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("nan_clip")
    state = load_file(str(tiny_clip_dir / "open_clip_model.safetensors"))
    state["visual.proj"] = torch.full_like(state["visual.proj"], float("nan"))
    save_file(state, str(folder / "open_clip_model.safetensors"))
    (folder / "open_clip_config.json").write_bytes((tiny_clip_dir / "open_clip_config.json").read_bytes())
    return f"local-dir:{folder}"


def test_a_non_finite_first_loss_names_the_weights_and_writes_nothing(nan_clip_model, training_folder, tmp_path):
    (tmp_path / "out.cube").write_text("an earlier LUT")
    with pytest.raises(Diverged) as caught:
        optimize(options(nan_clip_model, training_folder, tmp_path, steps=50, log_interval=5,
                         log_dir=tmp_path / "logs"), echo=quiet, warn=quiet)
    message = str(caught.value)
    assert message.startswith("the loss was NaN at step 1 of 50, likely because of the CLIP weights local-dir:")
    assert message.endswith("; nothing was written") and "\n" not in message
    assert (tmp_path / "out.cube").read_text() == "an earlier LUT"
    assert not (tmp_path / "logs").exists()


def test_the_trainer_stops_before_a_non_finite_step_keeping_the_last_finite_lut(tiny_clip_model):
    """A real model that starts giving NaN (its projection poisoned mid-run): no update is taken."""
    from lutgen.guidance.clip import load_clip
    from lutgen.optim.losses import LossWeights
    from lutgen.optim.objective import EvidenceTensors, Objective
    from lutgen.optim.parameterisation import BoundedLUT
    from lutgen.optim.trainer import LutTrainer, NonFiniteLoss
    from lutgen.optim.views import ViewSampler

    guide = load_clip(tiny_clip_model, None, "cpu", "fp32")
    images = [torch.rand(3, 80, 96) for _ in range(2)]
    sampler = ViewSampler(images, guide.image_size, 2, seed=0)
    evidence = EvidenceTensors(prompts=guide.embed_text("warm"), prompt_weights=torch.ones(1))
    trainer = LutTrainer(Objective(guide, evidence, LossWeights(), 0), sampler, BoundedLUT(8), 0.01)
    for _ in range(3):
        trainer.step()
    before = trainer.lut.table().detach().clone()
    assert not torch.equal(before, trainer.lut.identity)
    with torch.no_grad():
        guide.model.visual.proj.fill_(float("inf"))
    with pytest.raises(NonFiniteLoss) as caught:
        trainer.step()
    assert caught.value.record.step == 4 and not np.isfinite(caught.value.record.total)
    assert trainer.steps_done == 3 and torch.equal(trainer.lut.table().detach(), before)


# ----------------------------------------------------------------------------------------------
# Interruptions: each phase says what was written


class InterruptingBar:
    """A progress bar that raises ``error`` when step ``at`` is counted."""

    def __init__(self, at: int, error: KeyboardInterrupt):
        self.at, self.error, self.count = at, error, 0

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.count == self.at:
            raise self.error

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def interrupt_on(prefix: str, error: KeyboardInterrupt):
    """An ``echo`` that raises ``error`` when a line starting with ``prefix`` is printed."""

    def echo(line: str) -> None:
        if line.startswith(prefix):
            raise error

    return echo


def run_interrupted(opts: OptimizeOptions, echo=quiet, progress=None) -> OptimizeInterrupted:
    with pytest.raises(OptimizeInterrupted) as caught:
        optimize(opts, echo=echo, warn=quiet, progress=progress)
    assert "\n" not in caught.value.message
    return caught.value


def test_interrupted_while_setting_up_writes_nothing(tiny_clip_model, training_folder, tmp_path):
    opts = options(tiny_clip_model, training_folder, tmp_path, log_interval=2, log_dir=tmp_path / "logs")
    stopped = run_interrupted(opts, echo=interrupt_on("Using device", KeyboardInterrupt()))
    assert stopped.phase == "setup" and interrupt_exit_code(stopped.cause) == 130
    assert stopped.message == "interrupted before the optimisation started; nothing was written"
    assert not (tmp_path / "out.cube").exists() and not (tmp_path / "logs").exists()


def test_interrupted_before_the_first_step_writes_nothing(tiny_clip_model, training_folder, tmp_path):
    (tmp_path / "out.cube").write_text("an earlier LUT")

    def progress(total: int):
        raise Terminated()

    stopped = run_interrupted(options(tiny_clip_model, training_folder, tmp_path), progress=progress)
    assert stopped.phase == "optimising" and interrupt_exit_code(stopped.cause) == 143
    assert stopped.message == "interrupted before the first step finished; nothing was written"
    assert (tmp_path / "out.cube").read_text() == "an earlier LUT"


@pytest.mark.parametrize(("error", "code"), [(KeyboardInterrupt(), 130), (Terminated(), 143)])
def test_interrupted_while_optimising_writes_the_lut_reached(tiny_clip_model, training_folder, tmp_path, error, code):
    logs = tmp_path / "logs"
    opts = options(tiny_clip_model, training_folder, tmp_path, steps=50, log_interval=2, log_dir=logs)
    stopped = run_interrupted(opts, progress=lambda total: InterruptingBar(3, error))
    out = tmp_path / "out.cube"
    assert stopped.phase == "optimising" and stopped.steps_done == 3 and interrupt_exit_code(stopped.cause) == code
    assert stopped.message == f"interrupted after step 3 of 50; the LUT reached so far is written to {out}"
    lut = read_lut(out)
    assert "interrupted after step 3 of 50" in lut.comments and not lut.is_identity(atol=1e-6)
    assert len((logs / "losses.csv").read_text().splitlines()) == 4  # header + 3 steps
    assert not (logs / "contact_sheet.png").exists()


def test_interrupted_while_writing_the_lut_leaves_the_output_as_it_was(tiny_clip_model, training_folder, tmp_path):
    (tmp_path / "out.cube").write_text("an earlier LUT")
    stopped = run_interrupted(options(tiny_clip_model, training_folder, tmp_path),
                              echo=interrupt_on("Writing the LUT", KeyboardInterrupt()))
    assert stopped.phase == "writing the LUT"
    assert stopped.message == (f"interrupted while writing the LUT; {tmp_path / 'out.cube'} was not written "
                               "(a file already there is left as it was)")
    assert (tmp_path / "out.cube").read_text() == "an earlier LUT"
    assert [p.name for p in tmp_path.iterdir()] == ["out.cube"]  # no temporary file left


def test_interrupted_while_writing_the_logs_says_the_lut_is_written(tiny_clip_model, training_folder, tmp_path):
    logs = tmp_path / "logs"
    opts = options(tiny_clip_model, training_folder, tmp_path, steps=4, log_interval=2, log_dir=logs)
    stopped = run_interrupted(opts, echo=interrupt_on("Writing the loss plot", Terminated()))
    out = tmp_path / "out.cube"
    assert stopped.phase == "writing the logs" and stopped.steps_done == 4 and interrupt_exit_code(stopped.cause) == 143
    assert stopped.message == (f"interrupted while writing the training logs; the LUT is written to {out}, "
                               f"the logs in {logs} are incomplete")
    assert read_lut(out).title == "warm sunset"
    assert (logs / "step_00004.cube").is_file() and not (logs / "contact_sheet.png").exists()
