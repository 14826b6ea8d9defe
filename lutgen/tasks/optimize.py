"""Make a LUT from a text prompt with CLIP guidance: the work behind ``lutgen optimize``.

Order of work, so that mistakes cost nothing:

1. :func:`validate` checks every option (the output's folder and the log folder must be creatable
   and writable), finds the images and reads the test image, importing neither torch nor open_clip;
   a bad value is an :class:`~lutgen.errors.OptionError` (exit 2).
2. The device is chosen, and :func:`~lutgen.guidance.clip.resolve_weights` decides where the CLIP
   weights come from (failing at once when they are neither cached nor downloadable).
3. The images are decoded once, at a working resolution, onto the device. Files that cannot be
   decoded are skipped with a warning naming them.
4. CLIP is loaded, the prompt embedded once, and the LUT optimised for ``steps`` full batches.
5. The LUT is written to the output path exactly as optimised: no smoothing in between.

The log folder is a by-product: a log file that cannot be written is reported once as a warning,
and the optimisation goes on to write the LUT.

Ctrl-C during the optimisation writes the LUT reached so far to the output path; the result says
so (``interrupted``), and the command line exits with code 130.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lutgen.devices import check_device_name
from lutgen.errors import ImageError, LutgenError, OptionError
from lutgen.fileio import check_folder_writable
from lutgen.formats import write_lut
from lutgen.guidance import check_clip_precision
from lutgen.imaging import ImageData, find_images, load_rgb_float, save_image
from lutgen.lut import MAX_3D_SIZE, MIN_3D_SIZE
from lutgen.tasks.options import NoProgressBar, check_number, choose_seed

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_IMAGES = PROJECT_ROOT / "images"
DEFAULT_TEST_IMAGE = "mate_greenmeadow.jpg"
CONTACT_SHEET_IMAGES = (
    "mate_greenmeadow.jpg",
    "chelsea_cat.jpg",
    "coffee.jpg",
    "mate_dune.jpg",
    "astronaut.jpg",
    "mate_yellowflower.jpg",
)
PREVIEW_WIDTH = 768  # the whole before|after picture
CONTACT_SIDE = 440


def default_image_folder() -> Path:
    """The bundled ``images/`` folder of the project, or ``images`` in the working folder."""
    return BUNDLED_IMAGES if BUNDLED_IMAGES.is_dir() else Path("images")


@dataclass
class OptimizeOptions:
    """Every option of ``lutgen optimize``, with the command line's defaults."""

    prompt: str
    image_folder: Path | None = None
    lut_size: int = 16
    steps: int = 500
    learning_rate: float = 0.005
    image_smoothness: float = 1.0
    image_regularization: float = 1.0
    black_preservation: float = 1.0
    lut_smoothness: float = 1.0
    batch_size: int = 4
    log_interval: int = 50
    output_path: Path = Path("lut.cube")
    test_image: Path | None = None
    verbose: bool = False
    seed: int | None = None
    device: str = "auto"
    log_dir: Path | None = None
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    clip_precision: str = "auto"


@dataclass
class Plan:
    """What :func:`validate` found: the image files, the test image (decoded) and the log folder."""

    prompt: str
    images: list[Path]
    test_image: Path
    test_pixels: np.ndarray  # (H, W, 3) float32, at most PREVIEW_WIDTH on its longer side
    log_dir: Path | None
    seed: int


@dataclass
class OptimizeResult:
    """What a run did."""

    output_path: Path
    steps: int
    steps_done: int
    interrupted: bool
    seed: int
    log_dir: Path | None
    lut: object | None = None  # the LUT written (lutgen.lut.LUT)
    final: object | None = None  # the last StepRecord
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    images_used: int = 0


def prompt_slug(prompt: str) -> str:
    """A folder name for ``prompt``: spaces to underscores, only letters, digits, ``_ - .``, <= 100 chars."""
    slug = re.sub(r"[^\w\-.]", "", "_".join(prompt.split()))[:100].strip("_.")
    return slug or "untitled"


def _check_numbers(o: OptimizeOptions) -> None:
    check_number("steps", o.steps, 1)
    check_number("lut-size", o.lut_size, MIN_3D_SIZE, MAX_3D_SIZE)
    check_number("learning-rate", o.learning_rate, 0, low_inclusive=False)
    for name in ("image-smoothness", "image-regularization", "black-preservation", "lut-smoothness"):
        check_number(name, getattr(o, name.replace("-", "_")), 0)
    check_number("batch-size", o.batch_size, 1)
    check_number("log-interval", o.log_interval, 0)


def _check_choices(o: OptimizeOptions) -> None:
    check_device_name(o.device)
    check_clip_precision(o.clip_precision)
    if not o.clip_model.strip():
        raise OptionError("--clip-model is empty; give an open_clip model name such as ViT-B-32")
    if not str(o.clip_pretrained).strip():
        raise OptionError("--clip-pretrained is empty; give a tag such as openai or a weights file")


def _check_output(path: Path) -> None:
    if path.suffix.lower() != ".cube":
        raise OptionError(f"--output-path {path} must end in .cube")
    if path.is_dir():
        raise OptionError(f"--output-path {path} is a folder; give a .cube file name")
    check_folder_writable(path.parent, f"--output-path {path}")


def _choose_log_dir(o: OptimizeOptions, prompt: str) -> Path | None:
    """The log folder (``None`` when logging is off); refused when it cannot be created or written."""
    if o.log_interval == 0:
        return None
    log_dir = Path(o.log_dir) if o.log_dir is not None else Path("tmp") / "training_logs" / prompt_slug(prompt)
    check_folder_writable(log_dir, f"--log-dir {log_dir}")
    return log_dir


def _make_log_dir(log_dir: Path) -> None:
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OptionError(f"--log-dir {log_dir} cannot be created: {error.strerror or error}") from None


def _default_test_image(images: list[Path]) -> Path:
    bundled = BUNDLED_IMAGES / DEFAULT_TEST_IMAGE
    return bundled if bundled.is_file() else images[0]


def validate(o: OptimizeOptions) -> Plan:
    """Check every option and find the inputs, without importing torch. Raises OptionError/ImageError."""
    prompt = " ".join(str(o.prompt or "").split())
    if not prompt:
        raise OptionError("--prompt is empty; describe the look you want, e.g. 'golden hour warm sunlight'")
    _check_numbers(o)
    seed = choose_seed(o.seed)
    _check_choices(o)
    _check_output(Path(o.output_path))
    log_dir = _choose_log_dir(o, prompt)
    folder = Path(o.image_folder) if o.image_folder is not None else default_image_folder()
    if not folder.exists():
        raise ImageError(f"the image folder {folder} does not exist; pass --image-folder")
    images = find_images(folder)
    test_image = Path(o.test_image) if o.test_image is not None else _default_test_image(images)
    test_pixels = load_rgb_float(test_image, max_side=PREVIEW_WIDTH)
    return Plan(prompt, images, test_image, test_pixels, log_dir, seed)


def settings_comment(o: OptimizeOptions, plan: Plan, weights_label: str) -> str:
    """One line recording the settings of a run (a comment of the .cube file)."""
    return (
        f"lutgen optimize: steps={o.steps} lut_size={o.lut_size} learning_rate={o.learning_rate:g} "
        f"image_smoothness={o.image_smoothness:g} image_regularization={o.image_regularization:g} "
        f"black_preservation={o.black_preservation:g} lut_smoothness={o.lut_smoothness:g} "
        f"batch_size={o.batch_size} seed={plan.seed} clip={weights_label}"
    )


def _decode_images(paths: list[Path], max_side: int, warn: Callable[[str], None]):
    """Decode every image once (float32, longer side <= ``max_side``); unreadable ones are skipped."""
    decoded, skipped = [], []
    for path in paths:
        try:
            decoded.append((path, load_rgb_float(path, max_side=max_side)))
        except LutgenError as error:
            skipped.append((path, str(error)))
            warn(f"skipped {path}: {error}")
    if not decoded:
        raise ImageError(f"none of the {len(paths)} images could be read")
    return decoded, skipped


def _contact_images(training: list[Path]) -> list[Path]:
    bundled = [BUNDLED_IMAGES / name for name in CONTACT_SHEET_IMAGES if (BUNDLED_IMAGES / name).is_file()]
    if bundled:
        return bundled
    count = min(len(CONTACT_SHEET_IMAGES), len(training))
    return [training[round(i * (len(training) - 1) / max(1, count - 1))] for i in range(count)]


class _TrainingLog:
    """Writes the files of the log folder: step pictures and .cube files, losses.csv, plot, contact sheet.

    The log is a by-product: a file that cannot be written (disk full, folder removed, a folder
    where a file should be) is reported once through ``warn`` and the run goes on.
    """

    def __init__(self, log_dir: Path, prompt: str, test_pixels: np.ndarray, device, warn: Callable[[str], None]):
        import torch

        from lutgen.optim import report

        self.dir = log_dir
        self.prompt = prompt
        self.warn = warn
        self.failed = False
        self.report = report
        half = (PREVIEW_WIDTH - report.GAP) // 2
        self.before = report.fit_width(report.to_uint8(test_pixels), half)
        self.half = half
        self.test = torch.from_numpy(test_pixels).permute(2, 0, 1).contiguous().to(device)

    def _graded(self, pixels, table) -> np.ndarray:
        import torch

        from lutgen.color.torch_ops import apply_lut

        with torch.no_grad():
            graded = apply_lut(pixels, table).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        return self.report.to_uint8(graded)

    def _write(self, write: Callable[..., None], *args) -> None:
        """``write(*args)``; a failure becomes one warning (the first only) instead of ending the run."""
        try:
            write(*args)
        except (OSError, LutgenError) as error:
            if not self.failed:
                self.failed = True
                reason = str(error)
                if isinstance(error, OSError) and error.strerror:
                    reason = f"{error.filename}: {error.strerror}" if error.filename else error.strerror
                self.warn(f"could not write to the training log in {self.dir} ({reason}); the run goes on, "
                          "further log failures are not reported, and the LUT will still be saved")

    def _save_png(self, pixels: np.ndarray, name: str) -> None:
        image = ImageData(rgb=np.ascontiguousarray(pixels), format="PNG")
        self._write(save_image, image, self.dir / name)

    def snapshot(self, step: int, lut_module, records) -> None:
        table = lut_module.table().detach()
        after = self.report.fit_width(self._graded(self.test, table), self.half)
        self._save_png(self.report.side_by_side(self.before, after), f"step_{step:05d}.png")
        lut = lut_module.to_lut(title=self.prompt, comments=(f"step {step}",))
        self._write(write_lut, lut, self.dir / f"step_{step:05d}.cube")
        self.losses(records)

    def losses(self, records) -> None:
        if records:
            self._write(self.report.write_losses_csv, records, self.dir / "losses.csv")

    def finish(self, lut_module, records, training: list[Path]) -> None:
        import torch

        if records:
            self._save_png(self.report.loss_plot(records), "loss_plot.png")
        table = lut_module.table().detach()
        pairs, labels = [], []
        for path in _contact_images(training):
            try:
                pixels = load_rgb_float(path, max_side=CONTACT_SIDE)
            except LutgenError as error:
                self.warn(f"left {path} out of the contact sheet: {error}")
                continue
            tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous().to(table.device)
            pairs.append((self.report.to_uint8(pixels), self._graded(tensor, table)))
            labels.append(path.name)
        if pairs:
            self._save_png(self.report.contact_sheet(pairs, labels), "contact_sheet.png")


def optimize(
    options: OptimizeOptions,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
    progress: Callable[[int], object] | None = None,
) -> OptimizeResult:
    """Run ``lutgen optimize`` (see the module docstring).

    Args:
        options: the command's options.
        echo: prints a line for the user (must not break a progress bar, e.g. ``tqdm.write``).
        warn: prints a warning line.
        progress: makes a progress bar for ``total`` steps (an object with ``update``,
            ``set_postfix_str`` and ``close``, such as ``tqdm``); ``None`` for none.

    Raises:
        LutgenError: bad options or inputs, unusable CLIP weights, unwritable output.
    """
    plan = validate(options)

    import torch

    from lutgen.devices import pick_device
    from lutgen.guidance.clip import expected_image_size, load_clip, resolve_weights
    from lutgen.optim.losses import LossWeights
    from lutgen.optim.parameterisation import BoundedLUT
    from lutgen.optim.trainer import LutTrainer
    from lutgen.optim.views import ViewSampler, stored_image, working_side

    device = pick_device(options.device)
    source = resolve_weights(options.clip_model, options.clip_pretrained)
    side = working_side((expected_image_size(source),) * 2)
    decoded, skipped = _decode_images(plan.images, side, warn)
    echo(f"Loaded {len(decoded)} images from {Path(options.image_folder or default_image_folder())} "
         f"(kept at most {side} px on the longer side)")

    _make_reproducible(device, plan.seed)
    guide = load_clip(device=device, precision=options.clip_precision, source=source)
    precision = "bfloat16" if guide.amp_dtype == torch.bfloat16 else "float32"
    echo(f"Using device: {device} (CLIP {source.label} in {precision}); seed {plan.seed}")
    text_embedding = guide.embed_text(plan.prompt)
    tensors = [stored_image(pixels, device) for _, pixels in decoded]
    del decoded
    sampler = ViewSampler(tensors, guide.image_size, options.batch_size, plan.seed, guide.interpolation)
    weights = LossWeights(options.image_smoothness, options.image_regularization,
                          options.black_preservation, options.lut_smoothness)
    lut = BoundedLUT(options.lut_size, device=device)
    trainer = LutTrainer(guide, sampler, lut, text_embedding, weights, options.learning_rate)

    log = None
    if plan.log_dir is not None:
        _make_log_dir(plan.log_dir)
        log = _TrainingLog(plan.log_dir, plan.prompt, plan.test_pixels, device, warn)
        echo(f"Training logs will be saved to: {plan.log_dir}/")

    records, interrupted = _train(trainer, options, log, echo, progress)

    comments = [settings_comment(options, plan, source.label)]
    if interrupted:
        comments.append(f"interrupted after step {trainer.steps_done} of {options.steps}")
    result_lut = lut.to_lut(title=plan.prompt, comments=tuple(comments))
    write_lut(result_lut, options.output_path)

    if log is not None:
        if interrupted:
            log.losses(records)
        else:
            if trainer.steps_done % options.log_interval:
                log.snapshot(trainer.steps_done, lut, records)
            log.finish(lut, records, plan.images)
    return OptimizeResult(
        output_path=Path(options.output_path), steps=options.steps, steps_done=trainer.steps_done,
        interrupted=interrupted, seed=plan.seed, log_dir=plan.log_dir, lut=result_lut,
        final=records[-1] if records else None, skipped=skipped, images_used=len(tensors),
    )


def _make_reproducible(device, seed: int) -> None:
    """Same seed, same device, same LUT: seed torch and choose deterministic kernels."""
    import torch

    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def _train(trainer, options: OptimizeOptions, log: _TrainingLog | None, echo, progress) -> tuple[list, bool]:
    """Run the steps; returns the step records and whether Ctrl-C stopped the run."""
    records = []
    bar = progress(options.steps) if progress is not None else NoProgressBar()
    try:
        for _ in range(options.steps):
            record = trainer.step()
            records.append(record)
            bar.set_postfix_str(f"loss={record.total:.4f}", refresh=False)
            bar.update(1)
            if options.verbose and record.step % 10 == 0:
                echo(record.verbose_line())
            if log is not None and record.step % options.log_interval == 0:
                log.snapshot(record.step, trainer.lut, records)
    except KeyboardInterrupt:
        return records, True
    finally:
        bar.close()
    return records, False
