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
generation and on Ctrl-C, and ``resume`` continues from it. A checkpoint is also a model file
(``lutgen enhance --model .../last.pt``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lutgen.devices import check_device_name
from lutgen.errors import LutgenError, OptionError
from lutgen.fileio import atomic_path, check_folder_writable
from lutgen.imaging import load_rgb_float
from lutgen.models import FIVEK_LOSS, FIVEK_TRAINING
from lutgen.tasks.checkpoints import (
    CHECKPOINT_NAME,
    metadata,
    read_checkpoint,
    save_checkpoint,
    save_weights,
)
from lutgen.tasks.options import NoProgressBar, check_number, choose_seed
from lutgen.tasks.pairs import ImagePair, pair_images

GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # saturation jitter mixes with this grey
MIN_CROP_SIDE = 16


@dataclass
class TrainOptions:
    """Every option of ``lutgen train``; the defaults are the published FiveK settings."""

    input_dir: Path
    target_dir: Path
    output_path: Path = Path("adaint.safetensors")
    checkpoint_dir: Path | None = None
    epochs: int = FIVEK_TRAINING.epochs
    batch_size: int = FIVEK_TRAINING.batch_size
    learning_rate: float = FIVEK_TRAINING.learning_rate
    max_side: int | None = 720  # the longer side photos are loaded at (FiveK 480p: 720 x 480 for 3:2)
    n_vertices: int = 33
    n_ranks: int = 3
    adaptive: bool = True
    augment: bool = True
    adaint_frozen_epochs: int = FIVEK_TRAINING.adaint_frozen_epochs
    adaint_lr_factor: float = FIVEK_TRAINING.adaint_lr_factor
    sparse_factor: float = FIVEK_LOSS.sparse_factor
    smooth_factor: float = FIVEK_LOSS.smooth_factor
    monotonicity_factor: float = FIVEK_LOSS.monotonicity_factor
    generations: int = 1
    distill_weight: float = 1.0
    checkpoint_every: int = 0  # steps; 0: once per epoch
    resume: bool = False
    seed: int | None = None
    device: str = "auto"
    precision: str = "float32"  # or "float64": slower, for checking reproducibility to rounding level
    cache_megabytes: int = 2048  # decoded photos kept in memory, per process


PRECISIONS = ("float32", "float64")


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
    leader: bool = True  # False in the other processes of a torchrun run (they print nothing)
    history: list[tuple[int, int, float, float]] = field(default_factory=list)  # (generation, step, loss, psnr)


# --------------------------------------------------------------------------------------------
# Checking the options (no torch)
# --------------------------------------------------------------------------------------------


def _check_options(o: TrainOptions) -> None:
    check_number("epochs", o.epochs, 1)
    check_number("batch-size", o.batch_size, 1)
    check_number("learning-rate", o.learning_rate, 0, low_inclusive=False)
    if o.max_side is not None:
        check_number("max-side", o.max_side, 32)
    check_number("n-vertices", o.n_vertices, 2, 64)
    check_number("n-ranks", o.n_ranks, 1, 64)
    check_number("adaint-frozen-epochs", o.adaint_frozen_epochs, 0)
    check_number("adaint-lr-factor", o.adaint_lr_factor, 0)
    for name in ("sparse-factor", "smooth-factor", "monotonicity-factor", "distill-weight"):
        check_number(name, getattr(o, name.replace("-", "_")), 0)
    check_number("generations", o.generations, 1)
    check_number("checkpoint-every", o.checkpoint_every, 0)
    check_number("cache-megabytes", o.cache_megabytes, 0)
    if o.precision not in PRECISIONS:
        raise OptionError(f"--precision must be one of {', '.join(PRECISIONS)}, not {o.precision!r}")
    check_device_name(o.device)
    output = Path(o.output_path)
    if output.suffix.lower() != ".safetensors":
        raise OptionError(f"--output-path {output} must end in .safetensors")
    if output.is_dir():
        raise OptionError(f"--output-path {output} is a folder; give a .safetensors file name")


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


def world_size() -> int:
    """Processes of this run (``torchrun`` sets ``WORLD_SIZE``); 1 without torchrun."""
    return max(1, _environment_int("WORLD_SIZE", 1))


def _environment_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, str(default)))
    except ValueError:
        return default


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
        if not resume_from.is_file():
            raise OptionError(f"--resume: there is no checkpoint {resume_from} to resume from")
    return Plan(pairs, checkpoint_dir, max(1, len(pairs) // o.batch_size), seed, resume_from)


# --------------------------------------------------------------------------------------------
# Data: deterministic batches and augmentation
# --------------------------------------------------------------------------------------------


def derived_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (``numpy.random.SeedSequence`` mixing)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint64)[0] >> 1)


def batch_indices(seed: int, generation: int, step: int, steps_per_epoch: int, pairs: int, batch: int) -> np.ndarray:
    """Indices of the pairs of the global batch at ``step``: a fresh permutation every epoch."""
    epoch, position = divmod(step, steps_per_epoch)
    order = np.random.default_rng(derived_seed(seed, generation, epoch, 0)).permutation(pairs)
    return order[position * batch:(position + 1) * batch]


def augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
            settings=FIVEK_TRAINING) -> tuple[np.ndarray, np.ndarray]:
    """Random crop (height and width ratios drawn independently), horizontal flip (both), then brightness
    and saturation jitter (input only, clipped to [0, 1]). ``x``, ``y``: ``(H, W, 3)`` float32."""
    height, width = x.shape[:2]
    low, high = settings.crop_ratio
    crop_h = min(height, max(min(height, MIN_CROP_SIDE), round(height * rng.uniform(low, high))))
    crop_w = min(width, max(min(width, MIN_CROP_SIDE), round(width * rng.uniform(low, high))))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    x, y = x[top:top + crop_h, left:left + crop_w], y[top:top + crop_h, left:left + crop_w]
    if rng.random() < settings.flip_probability:
        x, y = x[:, ::-1], y[:, ::-1]
    brightness = np.float32(rng.uniform(1 - settings.brightness_jitter, 1 + settings.brightness_jitter))
    saturation = np.float32(rng.uniform(1 - settings.saturation_jitter, 1 + settings.saturation_jitter))
    x = np.clip(x * brightness, 0, 1)
    grey = (x @ GREY_WEIGHTS)[..., None]
    x = np.clip(grey + saturation * (x - grey), 0, 1)
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.float32)


class PairData:
    """Decoded photo pairs (float32 ``(H, W, 3)`` in [0, 1], at most ``max_side``), kept while they fit."""

    def __init__(self, pairs: list[ImagePair], max_side: int | None, augmented: bool, cache_bytes: int):
        self.pairs = pairs
        self.max_side = max_side
        self.augmented = augmented
        self.cache_bytes = cache_bytes
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.cached_bytes = 0

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index in self.cache:
            return self.cache[index]
        pair = self.pairs[index]
        x = load_rgb_float(pair.input, self.max_side)
        y = load_rgb_float(pair.target, self.max_side)
        if x.shape != y.shape:
            raise LutgenError(f"{pair.input} and its target {pair.target} load at different sizes "
                              f"({x.shape[1]}x{x.shape[0]} and {y.shape[1]}x{y.shape[0]})")
        if self.cached_bytes + x.nbytes + y.nbytes <= self.cache_bytes:
            self.cache[index] = (x, y)
            self.cached_bytes += x.nbytes + y.nbytes
        return x, y

    def sample(self, index: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.arrays(index)
        if not self.augmented:
            return x, y
        return augment(x, y, np.random.default_rng(seed))


# --------------------------------------------------------------------------------------------
# Processes and devices
# --------------------------------------------------------------------------------------------


@dataclass
class Processes:
    """This process's place in the run: rank, number of processes, device."""

    rank: int
    world: int
    device: object  # torch.device
    distributed: bool

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def shared(self, value: int) -> int:
        """``value`` as the first process has it (``value`` itself without torchrun)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def start_processes(device_name: str) -> Processes:
    """Pick the device and, under ``torchrun``, join the process group (NCCL on CUDA, gloo on the CPU).

    Raises:
        OptionError: the device is not available, or cannot serve this run's processes (one sentence).
    """
    from lutgen.devices import pick_device

    name = check_device_name(device_name)
    world = world_size()
    if world == 1:
        return Processes(0, 1, pick_device(name), False)
    import torch
    import torch.distributed as dist

    local_world = _environment_int("LOCAL_WORLD_SIZE", world)
    device = _process_device(name, _environment_int("LOCAL_RANK", 0), local_world)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), device, True)


def _process_device(name: str, local_rank: int, local_world: int):
    """The device of the process ``local_rank`` of ``local_world`` on this machine, for ``--device name``.

    ``cuda``: GPU ``local_rank``; ``cuda:N``: GPU N, for one process per machine; ``auto``: ``cuda``
    where CUDA is available, else the CPU; ``mps`` is refused (its processes cannot share it).
    """
    import torch

    from lutgen.devices import pick_device

    if name == "mps":
        raise OptionError("--device mps cannot be used under torchrun, since several processes cannot share "
                          "the MPS device; use --device cpu or run without torchrun")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return pick_device("cpu")
    if name == "cuda":
        pick_device("cuda")  # one sentence when there is no CUDA GPU
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise OptionError(f"torchrun started {local_world} processes on this machine, but it has {count} "
                              f"CUDA GPU(s); use --nproc-per-node {count} or fewer")
        return pick_device(f"cuda:{local_rank}")
    if local_world > 1:
        raise OptionError(f"--device {name} names one GPU, but torchrun started {local_world} processes on this "
                          "machine; use --device cuda (process i takes GPU i)")
    return pick_device(name)


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
    resume = read_checkpoint(plan.resume_from, options) if plan.resume_from is not None else None
    seed = resume["seed"] if resume is not None else plan.seed
    total_steps = options.epochs * plan.steps_per_epoch
    data = PairData(plan.pairs, options.max_side, options.augment, options.cache_megabytes << 20)
    generation_paths = [plan.checkpoint_dir / f"generation_{g}.safetensors" for g in range(options.generations)]
    first_generation = resume["generation"] if resume is not None else 0
    result = TrainResult(None, plan.checkpoint_path, generation_paths[:first_generation], seed, total_steps,
                         first_generation, 0, leader=processes.leader)
    if resume is not None:
        result.history = [tuple(entry) for entry in resume["history"]]
    done_before = first_generation * total_steps + (resume["step"] if resume is not None else 0)
    echo(f"{len(plan.pairs)} photo pairs, {plan.steps_per_epoch} steps per epoch, {options.epochs} epochs, "
         f"{options.generations} generation(s); {processes.world} process(es) on {processes.device}; seed {seed}")
    if resume is not None:
        echo(f"resuming generation {first_generation} at step {resume['step']} from {plan.resume_from}")
    bar = progress(options.generations * total_steps, done_before) if progress is not None else NoProgressBar()
    try:
        for generation in range(first_generation, options.generations):
            result.generation = generation
            state = resume if resume is not None and resume["generation"] == generation else None
            finished = _train_generation(options, plan, processes, data, seed, generation, state, total_steps,
                                         generation_paths, result, bar, echo)
            if not finished:
                result.interrupted = True
                return result
            result.generation_paths.append(generation_paths[generation])
    finally:
        bar.close()
    if processes.leader:
        try:
            with atomic_path(options.output_path) as tmp:
                tmp.write_bytes(generation_paths[-1].read_bytes())
        except OSError as error:
            raise LutgenError(f"cannot write {options.output_path}: {error.strerror or error}") from None
    result.output_path = Path(options.output_path)
    return result


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
                      result, bar, echo) -> bool:
    """Train one generation from ``state`` (or from scratch); returns False when Ctrl-C stopped it."""
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

    try:
        while step < total_steps:
            loss, psnr = _one_step(options, plan, processes, data, seed, generation, step, wrapped, model,
                                   optimizer, teacher, device)
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
        if step > saved_step:
            checkpoint(step)
        echo(f"interrupted in generation {generation} after step {step}; the checkpoint {plan.checkpoint_path} "
             "holds it (continue with --resume)")
        return False
    if processes.leader:
        save_weights(model, generation_paths[generation], metadata(options, seed, generation, step))
    processes.barrier()  # the next generation's teacher is read from that file
    return True


def _one_step(options, plan, processes, data, seed, generation, step, wrapped, model, optimizer, teacher,
              device) -> tuple[float, float]:
    """One optimiser step on this process's share of the global batch; returns (loss, batch PSNR)."""
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
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    epoch = step // plan.steps_per_epoch
    if epoch < options.adaint_frozen_epochs:
        for parameter in model.adaint_parameters():
            parameter.grad = None  # frozen: no update and no optimiser state, as with requires_grad=False
    optimizer.step()
    statistics = torch.stack([loss.detach(), mse_sum.detach()])
    if processes.distributed:
        import torch.distributed as dist

        dist.all_reduce(statistics)
        statistics[0] /= processes.world
    mse = max(statistics[1].item() / options.batch_size, 1e-12)
    return statistics[0].item(), 10 * math.log10(1 / mse)
