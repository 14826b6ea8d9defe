"""Train an AdaInt model on paired photos: the work behind ``lutgen train``.

Defaults are the published FiveK settings (:data:`lutgen.models.FIVEK_TRAINING`): Adam
(0.9, 0.999), learning rate 1e-4 (the interval module 10x lower, and frozen for the first 5 epochs),
batch 1, random crops (height and width ratios each in 0.6..1), horizontal flips, brightness and
saturation jitter (0.2) on the input, loss MSE + 1e-4 mean(w^2) + 10 Mono.

**Batches.** The photos of a batch may differ in size (crops), so each is run through the model on
its own and the batch loss is the mean of the per-photo losses, plus the regularisation of the
basis LUTs once.

**Several processes.** Under ``torchrun`` (``WORLD_SIZE`` > 1) every process trains the same model
with DistributedDataParallel (NCCL on GPUs, gloo on the CPU) on its share of each batch: the
``--batch-size`` is the total over all processes and must be a multiple of their number. Which photos
form a batch, their crops, flips and jitter, and the backbone's dropout masks all follow from
``(seed, generation, step, slot in the batch)``, not from the process, so N processes train the same
model as one process with the same total batch (up to float rounding); without ``--seed`` the first
process draws the seed and the others take it. Devices: with ``--device cuda`` (or ``auto`` where
CUDA is available) process ``i`` of a machine uses GPU ``i`` (its ``LOCAL_RANK``); ``cuda:N`` is for
one process per machine; ``auto`` without CUDA runs on the CPU; ``mps`` is refused, since processes
cannot share it.

**Born-Again generations.** With ``generations = G > 1``, generation 0 is trained on the targets;
generation ``k`` is a fresh model of the same architecture trained on
``MSE(S(x), y) + distill_weight * MSE(S(x), T_{k-1}(x))`` (plus the usual regularisation), where
``T_{k-1}`` is the previous generation (in eval mode) on the same augmented input. This is the
generic scheme of Furlanello et al. (2018); the settings of the Born-Again AdaInt work are not
public. Each generation is saved as ``generation_K.safetensors`` in the checkpoint folder; the output
file is the last generation.

**Checkpoints.** ``last.pt`` in the checkpoint folder (default: ``NAME_checkpoints`` beside the
output ``NAME.safetensors``) holds the model, the optimiser, the generation and the step; it is
rewritten atomically every ``checkpoint_every`` steps (default: each epoch), at the end of each
generation and on Ctrl-C or SIGTERM, and ``resume`` continues from it, after checking it in full
(:func:`lutgen.tasks.checkpoints.read_checkpoint`). A checkpoint is also a model file
(``lutgen enhance --model .../last.pt``).

**Interruptions.** Ctrl-C and SIGTERM (a ``KeyboardInterrupt``) save the steps done since the last
checkpoint, unless they came in the middle of an optimiser update; when a generation had finished,
its weights are written to the output path (a later ``resume`` replaces them with the last
generation's); :attr:`TrainResult.summary` says what was written. A loss that stops being finite
ends the run with one sentence (:class:`DivergedError`) before the optimiser takes that step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lutgen.devices import check_device_name
from lutgen.errors import LutgenError, OptionError, interrupt_exit_code
from lutgen.fileio import atomic_path, check_folder_writable, check_regular_file
from lutgen.models import FIVEK_TRAINING
from lutgen.tasks.checkpoints import (
    CHECKPOINT_NAME,
    metadata,
    read_checkpoint,
    save_checkpoint,
    save_weights,
)
from lutgen.tasks.options import (
    NoProgressBar,
    check_number,
    check_output_file,
    choose_seed,
)
from lutgen.tasks.pairs import ImagePair, pair_images
from lutgen.tasks.train_data import PairData, batch_indices, derived_seed
from lutgen.tasks.train_options import TrainOptions
from lutgen.tasks.train_processes import Processes, start_processes, world_size

PRECISIONS = ("float32", "float64")
# Bounds far beyond any useful value, that keep absurd ones (1e308) from reaching the optimiser.
MAX_EPOCHS = 1_000_000
MAX_LEARNING_RATE = 1.0
MAX_FACTOR = 1_000_000  # loss weights and the interval module's learning-rate factor
MAX_GENERATIONS = 100


@dataclass
class Plan:
    """What :func:`validate` found."""

    pairs: list[ImagePair]
    checkpoint_dir: Path
    steps_per_epoch: int
    seed: int
    resume_from: Path | None

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint_dir / CHECKPOINT_NAME


@dataclass
class TrainResult:
    """What a run did (as seen by the process of rank 0)."""

    output_path: Path | None  # None when interrupted before the last generation finished
    checkpoint_path: Path
    generation_paths: list[Path]
    seed: int
    steps_per_generation: int
    generation: int  # the generation running when the run ended
    step: int  # steps done in that generation
    interrupted: bool = False
    exit_code: int = 0  # after an interruption: 130 for Ctrl-C, 143 for SIGTERM
    checkpointed: tuple[int, int] | None = None  # (generation, step) the checkpoint file holds, if any
    summary: str = ""  # after an interruption: what was written, as one sentence
    leader: bool = True  # False in the other processes of a torchrun run (they print nothing)
    history: list[tuple[int, int, float, float]] = field(default_factory=list)  # (generation, step, loss, psnr)


# --------------------------------------------------------------------------------------------
# Checking the options (no torch)
# --------------------------------------------------------------------------------------------


def _check_options(o: TrainOptions) -> None:
    check_number("epochs", o.epochs, 1, MAX_EPOCHS)
    check_number("batch-size", o.batch_size, 1)
    check_number("learning-rate", o.learning_rate, 0, MAX_LEARNING_RATE, low_inclusive=False)
    if o.max_side is not None:
        check_number("max-side", o.max_side, 32)
    check_number("n-vertices", o.n_vertices, 2, 64)
    check_number("n-ranks", o.n_ranks, 1, 64)
    check_number("adaint-frozen-epochs", o.adaint_frozen_epochs, 0)
    check_number("adaint-lr-factor", o.adaint_lr_factor, 0, MAX_FACTOR)
    for name in ("sparse-factor", "smooth-factor", "monotonicity-factor", "distill-weight"):
        check_number(name, getattr(o, name.replace("-", "_")), 0, MAX_FACTOR)
    check_number("generations", o.generations, 1, MAX_GENERATIONS)
    check_number("checkpoint-every", o.checkpoint_every, 0)
    check_number("cache-megabytes", o.cache_megabytes, 0)
    if o.precision not in PRECISIONS:
        raise OptionError(f"--precision must be one of {', '.join(PRECISIONS)}, not {o.precision!r}")
    check_device_name(o.device)
    check_output_file(o.output_path, "--output-path", ".safetensors")


def _check_outputs(output_path: Path, checkpoint_dir: Path) -> None:
    """Fail now, not after hours of training, when the model or the checkpoints cannot be written."""
    output_path = Path(output_path)
    check_folder_writable(output_path.parent, f"--output-path {output_path}")
    check_folder_writable(checkpoint_dir, f"--checkpoint-dir {checkpoint_dir}")
    checkpoint = checkpoint_dir / CHECKPOINT_NAME
    if checkpoint.is_dir():
        raise OptionError(f"--checkpoint-dir: {checkpoint} is a folder, so the checkpoint cannot be written there")


def default_checkpoint_dir(output_path: Path) -> Path:
    output_path = Path(output_path)
    return output_path.with_name(f"{output_path.stem}_checkpoints")


def validate(o: TrainOptions) -> Plan:
    """Check every option and pair the photos, without importing torch. Raises OptionError/ImageError."""
    _check_options(o)
    seed = choose_seed(o.seed)  # under torchrun, the first process's seed is shared by the others
    world = world_size()
    if o.batch_size % world:
        raise OptionError(f"--batch-size {o.batch_size} must be a multiple of the {world} processes of this run")
    checkpoint_dir = Path(o.checkpoint_dir) if o.checkpoint_dir is not None else default_checkpoint_dir(o.output_path)
    _check_outputs(o.output_path, checkpoint_dir)
    pairs = pair_images(o.input_dir, o.target_dir)
    if len(pairs) < o.batch_size:
        raise OptionError(f"--batch-size {o.batch_size} is larger than the {len(pairs)} photo pairs")
    resume_from = None
    if o.resume:
        resume_from = checkpoint_dir / CHECKPOINT_NAME
        if not resume_from.exists() and not resume_from.is_symlink():
            raise OptionError(f"--resume: there is no checkpoint {resume_from} to resume from")
        check_regular_file(resume_from, "checkpoint", error=OptionError)
    return Plan(pairs, checkpoint_dir, max(1, len(pairs) // o.batch_size), seed, resume_from)


# --------------------------------------------------------------------------------------------
# The loss of one step, as one module (what DistributedDataParallel wraps)
# --------------------------------------------------------------------------------------------


def _step_module(model, options: TrainOptions):
    """A module whose forward returns the loss of a process's share of a batch (and the summed MSE)."""
    import torch
    from torch import nn

    from lutgen.models import AdaIntLossWeights
    from lutgen.models.adaint import regularisation_loss, sample_loss

    factors = AdaIntLossWeights(options.sparse_factor, options.smooth_factor, options.monotonicity_factor)

    class StepLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, inputs, targets, teachers, seeds):
            total = 0.0
            mse_sum = 0.0
            for x, y, teacher, seed in zip(inputs, targets, teachers, seeds):
                devices = [x.device.index or 0] if x.device.type == "cuda" else []
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(seed)  # the dropout mask follows the sample, not the process
                    output = self.model(x[None])
                total = total + sample_loss(output, y[None], factors, teacher, options.distill_weight)
                mse_sum = mse_sum + torch.nn.functional.mse_loss(output.image.detach().clamp(0, 1), y[None])
            return total / len(inputs) + regularisation_loss(self.model, factors), mse_sum

    return StepLoss()


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def train(options: TrainOptions, echo: Callable[[str], None] = print,
          progress: Callable[[int, int], object] | None = None) -> TrainResult:
    """Run ``lutgen train`` (see the module docstring).

    Args:
        options: the command's options.
        echo: prints a line for the user (only the first process prints).
        progress: makes a progress bar for ``(total, initial)`` steps (``update``, ``set_postfix_str``,
            ``close``), such as ``tqdm``; ``None`` for none.

    Raises:
        LutgenError: bad options, pairs or checkpoint; unwritable outputs.
    """
    plan = validate(options)
    processes = start_processes(options.device)
    plan.seed = processes.shared(plan.seed)
    result = _run(options, plan, processes, echo if processes.leader else (lambda _: None),
                  progress if processes.leader else None)
    if not result.interrupted:  # after Ctrl-C the other processes may be gone: leave without waiting for them
        processes.close()
    return result


def _run(options: TrainOptions, plan: Plan, processes: Processes, echo, progress) -> TrainResult:
    total_steps = options.epochs * plan.steps_per_epoch
    resume = None
    if plan.resume_from is not None:
        resume = read_checkpoint(plan.resume_from, options, total_steps,
                                 lambda: _build(options, plan.seed, 0, _cpu_device()))
    seed = resume["seed"] if resume is not None else plan.seed
    data = PairData(plan.pairs, options.max_side, options.augment, options.cache_megabytes << 20)
    generation_paths = [plan.checkpoint_dir / f"generation_{g}.safetensors" for g in range(options.generations)]
    first_generation = resume["generation"] if resume is not None else 0
    result = TrainResult(None, plan.checkpoint_path, generation_paths[:first_generation], seed, total_steps,
                         first_generation, 0, leader=processes.leader)
    if resume is not None:
        result.history = [tuple(entry) for entry in resume["history"]]
        result.step = resume["step"]
        result.checkpointed = (first_generation, resume["step"])
    done_before = first_generation * total_steps + result.step
    echo(f"{len(plan.pairs)} photo pairs, {plan.steps_per_epoch} steps per epoch, {options.epochs} epochs, "
         f"{options.generations} generation(s); {processes.world} process(es) on {processes.device}; seed {seed}")
    if resume is not None:
        echo(f"resuming generation {first_generation} at step {resume['step']} from {plan.resume_from}")
    bar = progress(options.generations * total_steps, done_before) if progress is not None else NoProgressBar()
    try:
        for generation in range(first_generation, options.generations):
            result.generation = generation
            state = resume if resume is not None and resume["generation"] == generation else None
            _train_generation(options, plan, processes, data, seed, generation, state, total_steps,
                              generation_paths, result, bar)
            result.generation_paths.append(generation_paths[generation])
        if processes.leader:
            _write_output(generation_paths[-1], options.output_path)
        result.output_path = Path(options.output_path)
    except KeyboardInterrupt as interruption:
        result.interrupted = True
        result.exit_code = interrupt_exit_code(interruption)
        bar.close()
        _after_interruption(options, result)
    finally:
        bar.close()
    return result


def _cpu_device():
    import torch

    return torch.device("cpu")


def _write_output(generation_path: Path, output_path: Path) -> None:
    """Copy a finished generation's weights file to the output path, atomically."""
    try:
        with atomic_path(output_path) as tmp:
            tmp.write_bytes(generation_path.read_bytes())
    except OSError as error:
        raise LutgenError(f"cannot write {output_path}: {error.strerror or error}") from None


def _after_interruption(options: TrainOptions, result: TrainResult) -> None:
    """After Ctrl-C or SIGTERM: put the last finished generation at the output path (if there is one and it
    is not there yet) and say in ``result.summary``, as one sentence, what the files now hold."""
    notes = []
    if result.leader and result.generation_paths and result.output_path is None:
        try:
            _write_output(result.generation_paths[-1], options.output_path)
            result.output_path = Path(options.output_path)
        except LutgenError as error:
            notes.append(str(error))
    summary = interruption_summary(result)
    if result.output_path is not None:
        last = len(result.generation_paths) - 1
        if last + 1 < options.generations:
            summary += (f"; wrote {result.output_path} from generation {last}, the last finished one "
                        "(--resume trains the rest and replaces it)")
        else:
            summary += f"; every generation is finished and {result.output_path} holds the last"
    result.summary = "; ".join([summary, *notes])


def interruption_summary(result: TrainResult) -> str:
    """One sentence: where the run stopped, what the checkpoint holds, which generations are finished."""
    total = result.steps_per_generation
    text = f"interrupted in generation {result.generation} after step {result.step} of {total}"
    if result.checkpointed is None:
        text += "; nothing was trained far enough to save, no checkpoint was written"
    else:
        generation, step = result.checkpointed
        text += (f"; the checkpoint {result.checkpoint_path} holds generation {generation} at step {step} "
                 "(continue with --resume)")
    if result.generation_paths:
        names = ", ".join(path.name for path in result.generation_paths)
        text += f"; finished generation(s): {names} in {result.generation_paths[0].parent}"
    return text


def _build(options: TrainOptions, seed: int, generation: int, device):
    import torch

    from lutgen.models.adaint import AiLUT

    torch.manual_seed(derived_seed(seed, generation, 1))
    model = AiLUT(options.n_vertices, options.n_ranks, options.adaptive).to(device, _dtype(options))
    groups = [{"params": model.other_parameters(), "lr": options.learning_rate}]
    if model.adaint_parameters():
        groups.append({"params": model.adaint_parameters(), "lr": options.learning_rate * options.adaint_lr_factor})
    optimizer = torch.optim.Adam(groups, betas=FIVEK_TRAINING.betas, eps=FIVEK_TRAINING.eps,
                                 weight_decay=FIVEK_TRAINING.weight_decay)
    return model, optimizer


def _dtype(options: TrainOptions):
    import torch

    return torch.float64 if options.precision == "float64" else torch.float32


def _teacher(path: Path, device, options: TrainOptions):
    from lutgen.models import load_weights
    from lutgen.models.adaint import build_model

    teacher = build_model(load_weights(path)).to(device, _dtype(options))
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def _train_generation(options, plan, processes, data, seed, generation, state, total_steps, generation_paths,
                      result, bar) -> None:
    """Train one generation from ``state`` (or from scratch) and save its weights file.

    On Ctrl-C or SIGTERM (``KeyboardInterrupt``) the steps done since the last checkpoint are saved
    in a new one, unless the interruption came in the middle of an optimiser update (the model is then
    half-updated, and the previous checkpoint is kept); then the interruption goes on.
    """
    device = processes.device
    model, optimizer = _build(options, seed, generation, device)
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
    teacher = _teacher(generation_paths[generation - 1], device, options) if generation > 0 else None
    module = _step_module(model, options)
    if processes.distributed:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        wrapped = module
    model.train()
    every = options.checkpoint_every or plan.steps_per_epoch
    saved_step = step
    epoch_losses: list[tuple[float, float]] = []

    def checkpoint(at_step: int) -> None:
        if processes.leader:
            save_checkpoint(plan.checkpoint_path, options, seed, generation, at_step, model, optimizer,
                            result.history)
            result.checkpointed = (generation, at_step)

    updating = False
    try:
        while step < total_steps:
            loss, psnr = _one_step(options, plan, processes, data, seed, generation, step, wrapped, model,
                                   teacher, device)
            if not math.isfinite(loss):
                raise DivergedError(plan.checkpoint_path, generation, step, result.checkpointed)
            updating = True
            optimizer.step()
            updating = False
            step += 1
            result.step = step
            epoch_losses.append((loss, psnr))
            bar.update(1)
            bar.set_postfix_str(f"gen {generation} loss {loss:.5f} PSNR {psnr:.2f}")
            if step % plan.steps_per_epoch == 0:
                mean_loss, mean_psnr = (float(np.mean(v)) for v in zip(*epoch_losses))
                result.history.append((generation, step, mean_loss, mean_psnr))
                epoch_losses.clear()
            if step % every == 0 or step == total_steps:
                checkpoint(step)
                saved_step = step
    except KeyboardInterrupt:
        if step > saved_step and not updating:
            checkpoint(step)
        raise
    if processes.leader:
        save_weights(model, generation_paths[generation], metadata(options, seed, generation, step))
    processes.barrier()  # the next generation's teacher is read from that file


class DivergedError(LutgenError):
    """The loss stopped being finite; the model is left as it was before that step."""

    def __init__(self, checkpoint: Path, generation: int, step: int, checkpointed: tuple[int, int] | None):
        kept = (f"the checkpoint {checkpoint} keeps generation {checkpointed[0]} at step {checkpointed[1]}"
                if checkpointed is not None else "no checkpoint was written")
        super().__init__(f"training diverged in generation {generation} at step {step + 1}: the loss is not finite; "
                         f"{kept}; try a lower --learning-rate or smaller loss factors")


def _one_step(options, plan, processes, data, seed, generation, step, wrapped, model, teacher,
              device) -> tuple[float, float]:
    """The gradients of this process's share of the global batch (the caller then steps the optimiser);
    returns (loss, batch PSNR)."""
    import torch

    batch = batch_indices(seed, generation, step, plan.steps_per_epoch, len(plan.pairs), options.batch_size)
    slots = range(processes.rank, options.batch_size, processes.world)
    inputs, targets, teachers, seeds = [], [], [], []
    for slot in slots:
        sample_seed = derived_seed(seed, generation, step, slot, 2)
        x, y = data.sample(int(batch[slot]), sample_seed)
        inputs.append(torch.from_numpy(x).permute(2, 0, 1).to(device, _dtype(options)))
        targets.append(torch.from_numpy(y).permute(2, 0, 1).to(device, _dtype(options)))
        seeds.append(derived_seed(seed, generation, step, slot, 3))
    if teacher is not None:
        with torch.no_grad():
            teachers = [teacher(x[None]).image for x in inputs]
    else:
        teachers = [None] * len(inputs)
    loss, mse_sum = wrapped(inputs, targets, teachers, seeds)
    model.zero_grad(set_to_none=True)
    loss.backward()
    epoch = step // plan.steps_per_epoch
    if epoch < options.adaint_frozen_epochs:
        for parameter in model.adaint_parameters():
            parameter.grad = None  # frozen: no update and no optimiser state, as with requires_grad=False
    statistics = torch.stack([loss.detach(), mse_sum.detach()])
    if processes.distributed:
        import torch.distributed as dist

        dist.all_reduce(statistics)
        statistics[0] /= processes.world
    mse = max(statistics[1].item() / options.batch_size, 1e-12)
    return statistics[0].item(), 10 * math.log10(1 / mse)
