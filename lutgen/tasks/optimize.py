"""Make a LUT from a text prompt with CLIP guidance: the work behind ``lutgen optimize``.

Order of work, so that mistakes cost nothing:

1. :func:`~lutgen.tasks.optimize_plan.validate` checks every option against its range, the output's
   folder and the log folder (creatable, writable, and never where an input would be overwritten),
   finds the images and reads the test image, importing neither torch nor open_clip; a bad value
   is an :class:`~lutgen.errors.OptionError` or :class:`~lutgen.errors.ImageError` (exit 2).
2. The device is chosen, and :func:`~lutgen.guidance.clip.resolve_weights` decides where the CLIP
   weights come from (checking a local configuration and weights file, and failing at once when
   the weights are neither cached nor downloadable).
3. The images are decoded once, at a working resolution, onto the device. Files that cannot be
   decoded are skipped with a warning naming them.
4. CLIP is loaded (only when some evidence needs it), the evidence embedded and sampled once
   (:mod:`lutgen.tasks.optimize_evidence`), and the LUT optimised for ``steps`` full batches
   against one objective (:mod:`lutgen.optim.objective`).
5. The LUT is written to the output path exactly as optimised: no smoothing in between.
6. The log folder gets the loss plot and the contact sheet.

The log folder is a by-product: a log file that cannot be written is reported once as a warning,
and the optimisation goes on to write the LUT.

A step whose loss (or gradient) is not finite stops the run before the LUT takes it: the last
finite LUT is written and :class:`Diverged` names the options that likely caused it.

Ctrl-C or SIGTERM (a ``KeyboardInterrupt``) raises :class:`OptimizeInterrupted`, whose message
says what was written: nothing (before the first step), the LUT reached so far (during the
optimisation), or the LUT but incomplete logs (while writing the logs).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lutgen.errors import ImageError, LutgenError
from lutgen.fileio import check_regular_file
from lutgen.formats import write_lut
from lutgen.imaging import load_rgb_float
from lutgen.optim.training_log import TrainingLog
from lutgen.tasks.optimize_plan import (  # noqa: F401  (the options and their checks, re-exported)
    EVIDENCE_WEIGHT_OPTIONS,
    LOSS_WEIGHT_OPTIONS,
    OptimizeOptions,
    Plan,
    default_image_folder,
    prompt_slug,
    validate,
)
from lutgen.tasks.options import NoProgressBar
from lutgen.tasks.recipe import recipe


@dataclass
class OptimizeResult:
    """What a finished run did."""

    output_path: Path
    steps: int
    steps_done: int
    seed: int
    log_dir: Path | None
    lut: object | None = None  # the LUT written (lutgen.lut.LUT)
    final: object | None = None  # the last StepRecord
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    images_used: int = 0
    scores: tuple[float, float] | None = None  # the prompt score ungraded and graded (lutgen.guidance.scoring)


class OptimizeInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped ``optimize``; :attr:`message` says what was written.

    Attributes:
        phase: ``"setup"`` (nothing written), ``"optimising"`` (the LUT reached is written, or
            nothing before the first step), ``"writing the LUT"`` (the output left as it was),
            ``"writing the logs"`` (the LUT written, the logs incomplete) or ``"scoring"`` (the LUT
            and the logs written).
        message: one sentence for the user.
        cause: the original ``KeyboardInterrupt`` (a :class:`~lutgen.errors.Terminated` for SIGTERM).
        steps_done: the optimisation steps the written LUT took (0 when none was written).
    """

    def __init__(self, phase: str, message: str, cause: KeyboardInterrupt, steps_done: int = 0):
        super().__init__(message)
        self.phase = phase
        self.message = message
        self.cause = cause
        self.steps_done = steps_done


class Diverged(LutgenError):
    """The loss stopped being finite; the last finite LUT was written (exit code 2)."""


def recipe_lines(o: OptimizeOptions, plan: Plan, weights_label: str | None) -> tuple[str, ...]:
    """The recipe of a run (comments of the .cube file): version, every setting, every piece of evidence."""
    settings = {
        "steps": o.steps, "lut_size": o.lut_size, "representation": "monochrome" if o.monochrome else o.representation,
        "learning_rate": float(o.learning_rate), "batch_size": o.batch_size,
        **{name.replace("-", "_"): float(getattr(o, name.replace("-", "_")))
           for name in (*LOSS_WEIGHT_OPTIONS, *EVIDENCE_WEIGHT_OPTIONS)},
        "seed": plan.seed, "clip": weights_label or "none", "clip_precision": o.clip_precision,
        "images": f"{plan.folder} ({len(plan.images)})",
    }
    return recipe("optimize", "CLIP-guided LUT optimisation", settings, plan.evidence.recipe_lines())


def decode_images(paths: list[Path], folder: Path, max_side: int, warn: Callable[[str], None],
                   keep: Callable = lambda pixels: pixels):
    """Decode every image once (float32, longer side <= ``max_side``) and keep ``keep(pixels)`` of it (the
    stored copy, so that only one float32 image is alive at a time); unreadable ones are skipped, with a
    warning each when some image could be read, else one error naming the folder and the first reason."""
    decoded, skipped = [], []
    for path in paths:
        try:
            check_regular_file(path, "image", ImageError)
            decoded.append((path, keep(load_rgb_float(path, max_side=max_side))))
        except LutgenError as error:
            skipped.append((path, str(error)))
    if not decoded:
        raise ImageError(f"none of the {len(paths)} images in {folder} could be read (the first: {skipped[0][1]})")
    for path, reason in skipped:
        warn(f"skipped {path}: {reason.removeprefix(f'cannot read {path}: ')}")  # the file named once
    return decoded, skipped


def likely_causes(record, o: OptimizeOptions, weights_label: str | None) -> str:
    """What most likely made the loss of ``record`` (or its gradient) not finite, as words for a sentence:
    the weights of the terms that are not finite, else CLIP's weights when the very first step fails,
    else the large loss weights and the learning rate."""
    named = {"smooth": "image-smoothness", "reg": "image-regularization", "black": "black-preservation",
             "lut_smooth": "lut-smoothness", "highlight": "highlight-preservation", "negative": "negative-weight",
             "reference": "reference-similarity", "colors": "reference-colors", "pairs": "pair-weight"}

    def option(name: str) -> str:
        value = getattr(o, name.replace("-", "_"))
        if isinstance(value, (int, float)):
            return f"--{name} {value:g}"
        return f"--{name} " + (" ".join(f"{v:g}" for v in value) if value else "1")

    bad = [option(name) for term, name in named.items() if not math.isfinite(getattr(record, term))]
    if bad:
        return " or ".join(bad)
    if not math.isfinite(record.clip) and record.step == 1 and weights_label is not None:
        return f"the CLIP weights {weights_label}, which give non-finite embeddings of the unchanged images"
    large = [option(name) for name in (*LOSS_WEIGHT_OPTIONS, *EVIDENCE_WEIGHT_OPTIONS)
             if getattr(o, name.replace("-", "_")) > 10]
    precision = [] if o.clip_precision == "fp32" or weights_label is None else ["--clip-precision (try fp32)"]
    return " or ".join([*large, f"--learning-rate {o.learning_rate:g} (try a smaller one)", *precision])


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
        Diverged: the loss stopped being finite (the last finite LUT is written).
        OptimizeInterrupted: Ctrl-C or SIGTERM, saying what was written.
    """
    plan = validate(options)
    try:
        run = _prepare(options, plan, echo, warn)
    except KeyboardInterrupt as stop:
        raise OptimizeInterrupted("setup", "interrupted before the optimisation started; nothing was written",
                                  stop) from None
    records = []
    try:
        stop = _train(run.trainer, options, run.log, records, echo, progress)
    except KeyboardInterrupt as late:  # while the progress bar closed
        stop = late
    steps_done = run.trainer.steps_done
    output = Path(options.output_path)
    if stop is not None and steps_done == 0:
        _stopped_before_the_first_step(stop, options, run.weights_label)
    result_lut = _write_result(run, options, plan, steps_done, stop, echo)
    if stop is not None:
        _stopped(run, options, records, stop, steps_done)
    if run.log is not None:
        try:
            echo(f"Writing the loss plot and contact sheet to {plan.log_dir}/")
            run.log.finish(run.lut, records, plan.images)
        except KeyboardInterrupt as late:
            raise OptimizeInterrupted(
                "writing the logs", f"interrupted while writing the training logs; the LUT is written to {output}, "
                f"the logs in {plan.log_dir} are incomplete", late, steps_done) from None
    try:
        scores = _prompt_scores(run, result_lut)
    except KeyboardInterrupt as late:
        raise OptimizeInterrupted("scoring", f"interrupted while scoring the result; the LUT is written to {output}",
                                  late, steps_done) from None
    return OptimizeResult(
        output_path=output, steps=options.steps, steps_done=steps_done, seed=plan.seed, log_dir=plan.log_dir,
        lut=result_lut, final=records[-1] if records else None, skipped=run.skipped, images_used=run.images_used,
        scores=scores,
    )


def _prompt_scores(run: _Run, lut) -> tuple[float, float] | None:
    """The score of the prompts (:mod:`lutgen.guidance.scoring`, as ``lutgen score`` measures it) of the
    training photos ungraded and graded by ``lut``, on at most eight of them spread over the folder;
    ``None`` when no prompt guided the run."""
    objective = run.trainer.objective
    evidence = objective.evidence
    if objective.guide is None or evidence.prompts is None:
        return None
    from lutgen.guidance.scoring import photo_views, score_luts, target_from_embeddings
    from lutgen.tasks.rank import SCORE_PHOTOS, spread

    target = target_from_embeddings(evidence.prompts, evidence.prompt_weights, evidence.negatives,
                                    evidence.negative_weights)
    views = photo_views(spread(run.trainer.sampler.images, SCORE_PHOTOS), objective.guide)
    before, after = score_luts(objective.guide, views, [None, lut], target)
    return before, after


@dataclass
class _Run:
    """What :func:`_prepare` set up: the trainer, its LUT, the log and where the weights came from."""

    trainer: object
    lut: object
    log: TrainingLog | None
    weights_label: str | None  # None when no term needed CLIP
    skipped: list
    images_used: int


def _prepare(options: OptimizeOptions, plan: Plan, echo, warn) -> _Run:
    """Resolve the weights, decode the images, load CLIP, embed the evidence: everything before the first step."""
    from lutgen.devices import pick_device
    from lutgen.guidance.clip import expected_image_size, resolve_weights
    from lutgen.optim.losses import LossWeights
    from lutgen.optim.objective import Objective
    from lutgen.optim.trainer import LutTrainer
    from lutgen.optim.views import DEFAULT_VIEW_SIZE, ViewSampler, stored_image, working_side

    device = pick_device(options.device)
    uses_clip = plan.evidence.needs_clip(options.reference_similarity)
    source = resolve_weights(options.clip_model, options.clip_pretrained) if uses_clip else None
    view_side = expected_image_size(source) if source is not None else DEFAULT_VIEW_SIZE
    side = working_side((view_side, view_side))
    decoded, skipped = decode_images(plan.images, plan.folder, side, warn, lambda pixels: stored_image(pixels, device))
    echo(f"Loaded {len(decoded)} images from {plan.folder} (kept at most {side} px on the longer side)")

    make_reproducible(device, plan.seed)
    guide = _load_guide(options, source, device, echo, warn, plan) if source is not None else None
    if guide is None:
        echo(f"Using device: {device} (no CLIP needed); seed {plan.seed}")
    tensors = [image for _, image in decoded]
    evidence = evidence_tensors(options, plan, guide, device, side, echo)
    view_size = guide.image_size if guide is not None else (DEFAULT_VIEW_SIZE, DEFAULT_VIEW_SIZE)
    interpolation = guide.interpolation if guide is not None else "bicubic"
    sampler = ViewSampler(tensors, view_size, options.batch_size, plan.seed, interpolation)
    weights = LossWeights(options.image_smoothness, options.image_regularization,
                          options.black_preservation, options.lut_smoothness, options.highlight_preservation)
    lut = trainable_lut(options, device)
    objective = Objective(guide, evidence, weights, plan.seed)
    trainer = LutTrainer(objective, sampler, lut, options.learning_rate)
    log = None
    if plan.log_dir is not None:
        log = TrainingLog(plan.log_dir, plan.title, plan.test_pixels, device, warn)
        echo(f"Training logs will be saved to: {plan.log_dir}/")
    return _Run(trainer, lut, log, source.label if source is not None else None, skipped, len(tensors))


def _load_guide(options: OptimizeOptions, source, device, echo, warn, plan: Plan):
    """Load CLIP, say which, and warn about texts longer than its text tower reads."""
    import torch

    from lutgen.guidance.clip import load_clip

    guide = load_clip(device=device, precision=options.clip_precision, source=source)
    precision = "bfloat16" if guide.amp_dtype == torch.bfloat16 else "float32"
    echo(f"Using device: {device} (CLIP {source.label} in {precision}); seed {plan.seed}")
    texts = plan.evidence.texts()
    for text in texts:
        overflow = guide.text_limit(text)
        if overflow is not None:
            named = "the prompt" if len(texts) == 1 else f"the prompt {text[:40]!r}"
            warn(f"{named} is {overflow[0]} tokens long and CLIP reads {overflow[1]}; its end is ignored")
    return guide


def evidence_tensors(options: OptimizeOptions, plan: Plan, guide, device, side: int, echo):
    """The evidence embedded, sampled and moved onto the device (:mod:`lutgen.tasks.optimize_evidence`)."""
    from lutgen.optim.objective import EvidenceTensors, EvidenceWeights
    from lutgen.tasks.optimize_evidence import pair_tensors, reference_tensors, text_tensors

    evidence = plan.evidence
    prompts = prompt_weights = directions = negatives = negative_weights = None
    if guide is not None:
        prompts, prompt_weights, directions, negatives, negative_weights = text_tensors(guide, evidence, device)
        guide.release_text_tower()  # every text is embedded: free it before the image tower is read
    references = reference_oklab = None
    if evidence.references:
        echo(f"Reading {len(evidence.references)} reference photo(s)")
        references, reference_oklab = reference_tensors(
            evidence.references, guide, device, side, plan.seed, need_embeddings=options.reference_similarity > 0)
    pair_before = pair_after = None
    if evidence.pairs:
        echo(f"Reading {len(evidence.pairs)} before/after pair(s)")
        pair_before, pair_after = pair_tensors(evidence.pairs, device, plan.seed)
    weights = EvidenceWeights(options.reference_similarity, options.reference_colors, options.pair_weight)
    return EvidenceTensors(prompts, prompt_weights, directions, negatives, negative_weights, references,
                           reference_oklab, pair_before, pair_after, weights)


def trainable_lut(options: OptimizeOptions, device):
    """The trainable LUT of the chosen representation (:mod:`lutgen.optim.parameterisation`)."""
    from lutgen.optim.parameterisation import BoundedLUT, MonochromeLUT, StructuredLUT

    if options.monochrome:
        return MonochromeLUT(options.lut_size, device=device)
    if options.representation == "lattice":
        return BoundedLUT(options.lut_size, device=device)
    return StructuredLUT(options.lut_size, device=device)


def _write_result(run: _Run, options: OptimizeOptions, plan: Plan, steps_done: int, stop, echo):
    """Write the LUT reached (atomically); an interruption while writing leaves the output as it was."""
    from lutgen.optim.trainer import NonFiniteLoss

    comments = list(recipe_lines(options, plan, run.weights_label))
    if isinstance(stop, KeyboardInterrupt):
        comments.append(f"interrupted after step {steps_done} of {options.steps}")
    elif isinstance(stop, NonFiniteLoss):
        comments.append(f"stopped after step {steps_done} of {options.steps}: the next loss was not finite")
    lut = run.lut.to_lut(title=plan.title, comments=tuple(comments))
    output = Path(options.output_path)
    try:
        echo(f"Writing the LUT to {output}")
        write_lut(lut, output)
    except KeyboardInterrupt as again:
        raise OptimizeInterrupted("writing the LUT", f"interrupted while writing the LUT; {output} was not written "
                                  "(a file already there is left as it was)", again) from None
    return lut


def _stopped(run: _Run, options: OptimizeOptions, records: list, stop, steps_done: int) -> None:
    """After an interruption or a non-finite loss (the LUT written): save the losses, then raise."""
    output = Path(options.output_path)
    if run.log is not None:
        try:
            run.log.losses(records)
        except KeyboardInterrupt:
            pass  # a second interruption: the losses are a by-product, the LUT is written
    if isinstance(stop, KeyboardInterrupt):
        raise OptimizeInterrupted(
            "optimising", f"interrupted after step {steps_done} of {options.steps}; "
            f"the LUT reached so far is written to {output}", stop, steps_done) from None
    raise Diverged(f"{_divergence(stop, options, run.weights_label)}; the last finite LUT (after step {steps_done}) "
                   f"is written to {output}")


def _stopped_before_the_first_step(stop, options: OptimizeOptions, weights_label: str | None) -> None:
    """An interruption or a non-finite loss before any step was taken: nothing is written."""
    if isinstance(stop, KeyboardInterrupt):
        raise OptimizeInterrupted("optimising", "interrupted before the first step finished; nothing was written",
                                  stop) from None
    raise Diverged(f"{_divergence(stop, options, weights_label)}; nothing was written")


def _divergence(stop, options: OptimizeOptions, weights_label: str | None) -> str:
    """What went wrong in a :class:`~lutgen.optim.trainer.NonFiniteLoss`, and the likely options."""
    total = stop.record.total
    word = "NaN" if math.isnan(total) else "infinite" if math.isinf(total) else "not finite"
    if stop.what != "loss":
        word = "not finite"
    return (f"the {stop.what} was {word} at step {stop.record.step} of {options.steps}, "
            f"likely because of {likely_causes(stop.record, options, weights_label)}")


def make_reproducible(device, seed: int) -> None:
    """Same seed, same device, same LUT: seed torch and choose deterministic kernels."""
    import torch

    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def _train(trainer, options: OptimizeOptions, log: TrainingLog | None, records: list, echo, progress):
    """Run the steps, appending their records to ``records``. Returns what stopped the run early: a
    ``KeyboardInterrupt`` (Ctrl-C, SIGTERM), a :class:`~lutgen.optim.trainer.NonFiniteLoss`, or ``None``."""
    import torch

    from lutgen.optim.trainer import NonFiniteLoss

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
        if log is not None and trainer.steps_done % options.log_interval:
            log.snapshot(trainer.steps_done, trainer.lut, records)
    except (KeyboardInterrupt, NonFiniteLoss) as stop:
        return stop
    except torch.OutOfMemoryError:
        raise LutgenError(
            f"the {trainer.lut.device.type} device ran out of memory at step {trainer.steps_done + 1}; nothing "
            f"was written: use a smaller --batch-size (now {options.batch_size}) or --lut-size (now {options.lut_size})"
        ) from None
    finally:
        bar.close()
    return None
