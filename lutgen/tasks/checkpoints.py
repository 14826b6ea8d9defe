"""Training checkpoints and trained weights files: what ``lutgen train`` writes and resumes from.

``last.pt`` (:data:`CHECKPOINT_NAME`) in the checkpoint folder holds the model, the optimiser, the
generation, the step, the seed, the epoch history and the settings that must not change on resume;
each finished generation is a ``.safetensors`` weights file (:func:`save_weights`). Everything is
written atomically. A checkpoint carries a SHA-256 digest of its contents (tensors included), so
that a damaged file which torch still reads is refused rather than resumed; checkpoints written
before the digest existed are checked in every other way (:func:`read_checkpoint`). Torch is
imported only inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from lutgen.errors import LutgenError, OptionError
from lutgen.fileio import atomic_path, check_regular_file
from lutgen.tasks.options import MAX_SEED

if TYPE_CHECKING:
    from lutgen.tasks.train_options import TrainOptions

CHECKPOINT_NAME = "last.pt"
CHECKPOINT_FORMAT = "lutgen-adaint-train-1"

# Options that must not change between a checkpoint and a resumed run.
_FIXED_ON_RESUME = (
    "epochs", "batch_size", "learning_rate", "max_side", "n_vertices", "n_ranks", "adaptive", "augment",
    "adaint_frozen_epochs", "adaint_lr_factor", "sparse_factor", "smooth_factor", "monotonicity_factor",
    "generations", "distill_weight", "precision",
)


def fixed_settings(options: TrainOptions) -> dict:
    """The settings a resumed run must share with its checkpoint."""
    values = asdict(options)
    return {key: values[key] for key in _FIXED_ON_RESUME}


class CheckpointError(LutgenError):
    """A checkpoint that cannot be resumed from; the message names the file and what is wrong."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"cannot resume from {path}: {reason}")


_KEYS = ("format", "settings", "seed", "generation", "step", "model", "optimizer", "history")
_OPTIMISER_SETTINGS = ("lr", "betas", "eps", "weight_decay")  # what Adam's load_state_dict would take over


def read_checkpoint(path: Path, options: TrainOptions, total_steps: int, build: Callable[[], tuple]) -> dict:
    """The checkpoint at ``path``, checked in full before any of it is used.

    Checked: that it is a regular file torch can read (weights only), its format, keys and checksum,
    the settings and seed against ``options``, the generation against ``options.generations`` (and
    that the previous generation's weights file exists), the step against ``total_steps`` (the steps of
    one generation), the epoch history, the model's tensor names, shapes, type and finiteness, and
    the optimiser's settings and state, by loading both into the fresh model and optimiser that
    ``build()`` returns (on the CPU).

    Raises:
        CheckpointError: the file is damaged or not a lutgen checkpoint (one sentence naming it).
        OptionError: it was made with other settings.
    """
    import torch

    check_regular_file(path, "checkpoint", error=LutgenError)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any failure to unpickle means the same thing to the user
        raise CheckpointError(path, "it is damaged or not a lutgen training checkpoint (torch cannot read it)"
                              ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(path, "it is not a lutgen training checkpoint")
    missing = [key for key in _KEYS if key not in state]
    if missing:
        raise CheckpointError(path, f"it is damaged: it lacks {missing[0]!r}")
    if "digest" in state and state["digest"] != state_digest(state):
        raise CheckpointError(path, "it is damaged: its contents do not match the checksum written with them")
    _check_settings(path, state, options)
    _check_progress(path, state, options, total_steps)
    _check_model_and_optimiser(path, state, options, build)
    return state


def _check_settings(path: Path, state: dict, options: TrainOptions) -> None:
    saved, seed = state["settings"], state["seed"]
    if not isinstance(saved, dict):
        raise CheckpointError(path, "it is damaged: its settings are not a table")
    for key, value in fixed_settings(options).items():
        if saved.get(key) != value:
            flag = key.replace("_", "-")
            raise OptionError(f"cannot resume from {path}: it was made with --{flag} {saved.get(key)}, "
                              f"not {value}; use the same settings or another --checkpoint-dir")
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise CheckpointError(path, f"it is damaged: its seed {seed!r} is not a seed lutgen makes")
    if options.seed is not None and options.seed != seed:
        raise OptionError(f"cannot resume from {path}: it was made with --seed {seed}, not {options.seed}")


def _check_progress(path: Path, state: dict, options: TrainOptions, total_steps: int) -> None:
    """The generation, the step and the history must be those of a run with ``options``."""
    generation, step, history = state["generation"], state["step"], state["history"]
    if not _is_int(generation) or not 0 <= generation < options.generations:
        raise CheckpointError(path, f"it is at generation {generation!r}, but this run trains generations 0 to "
                                    f"{options.generations - 1}")
    if not _is_int(step) or not 0 <= step <= total_steps:
        raise CheckpointError(path, f"it is at step {step!r}, but a generation of this run has {total_steps} steps "
                                    "(were photo pairs added or removed?)")
    if generation > 0:
        check_regular_file(path.parent / f"generation_{generation - 1}.safetensors",
                           f"weights file of generation {generation - 1}, which generation {generation} learns from")
    if not isinstance(history, list) or not all(_is_history_entry(entry) for entry in history):
        raise CheckpointError(path, "it is damaged: its epoch history is not a list of (generation, step, loss, "
                                    "PSNR)")


def _is_history_entry(entry) -> bool:
    if not isinstance(entry, (list, tuple)) or len(entry) != 4:
        return False
    generation, step, loss, psnr = entry
    return (_is_int(generation) and _is_int(step) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                          and math.isfinite(v) for v in (loss, psnr)))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_model_and_optimiser(path: Path, state: dict, options: TrainOptions, build) -> None:
    """Load the saved model and optimiser into fresh ones, checking every name, shape and value."""
    import torch

    from lutgen.models import ModelConfig, expected_shapes

    tensors, saved_optimiser = state["model"], state["optimizer"]
    dtype = torch.float64 if options.precision == "float64" else torch.float32
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise CheckpointError(path, "it is damaged: its model is not a table of tensors")
    expected = expected_shapes(ModelConfig(options.n_vertices, options.n_ranks, options.adaptive))
    for key, shape in expected.items():
        value = tensors.get(key)
        if value is None:
            raise CheckpointError(path, f"it is damaged: its model lacks {key!r}")
        if tuple(value.shape) != shape or value.dtype != dtype:
            raise CheckpointError(path, f"it is damaged: its model's {key!r} is {value.dtype} {tuple(value.shape)}, "
                                        f"not {dtype} {shape}")
        if not torch.isfinite(value).all():
            raise CheckpointError(path, f"it is damaged: its model's {key!r} is not finite")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise CheckpointError(path, f"it is damaged: its model has the unexpected tensor {extra[0]!r}")
    model, optimiser = build()
    model.load_state_dict(tensors)
    _check_optimiser(path, saved_optimiser, optimiser)


def _check_optimiser(path: Path, saved, optimiser) -> None:
    """The saved Adam state: same groups and settings, and moments of the parameters' shapes, finite."""
    import torch

    def fail(reason: str):
        raise CheckpointError(path, f"it is damaged: its optimiser {reason}")

    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) \
            or not isinstance(saved.get("state"), dict):
        fail("state is not Adam's")
    groups = optimiser.param_groups
    if len(saved["param_groups"]) != len(groups):
        fail(f"has {len(saved['param_groups'])} parameter groups, not {len(groups)}")
    for saved_group, group in zip(saved["param_groups"], groups):
        if not isinstance(saved_group, dict) or not isinstance(saved_group.get("params"), list) \
                or len(saved_group["params"]) != len(group["params"]):
            fail("groups do not match the model's parameters")
        for key in _OPTIMISER_SETTINGS:
            if _as_tuple(saved_group.get(key)) != _as_tuple(group[key]):
                fail(f"setting {key} is {saved_group.get(key)!r}, not {group[key]!r}")
    try:
        optimiser.load_state_dict(saved)
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError):
        fail("state does not fit the model")
    for group in optimiser.param_groups:
        for parameter in group["params"]:
            moments = optimiser.state.get(parameter, {})
            for key in ("exp_avg", "exp_avg_sq"):
                value = moments.get(key)
                if value is not None and (not isinstance(value, torch.Tensor) or value.shape != parameter.shape
                                          or not torch.isfinite(value).all()):
                    fail(f"moment {key} does not fit its parameter or is not finite")
            step = moments.get("step")
            if step is not None and not _is_count(step):
                fail(f"step count {step!r} is not a count")


def _is_count(step) -> bool:
    """Adam's step: a number or a one-element tensor, whole and not negative."""
    import torch

    if isinstance(step, torch.Tensor):
        if step.numel() != 1:
            return False
        step = step.item()
    return isinstance(step, (int, float)) and not isinstance(step, bool) and 0 <= step < 2**53 and step == int(step)


def _as_tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def state_digest(state: dict) -> str:
    """SHA-256 of everything in a checkpoint but its digest: tensors by type, shape and bytes."""
    import hashlib

    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in state.items() if key != "digest"})
    return digest.hexdigest()


def _feed(digest, value) -> None:
    import torch

    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"V{value!r}".encode())


def save_checkpoint(path: Path, options: TrainOptions, seed: int, generation: int, step: int, model, optimizer,
                    history) -> None:
    """Write the training state to ``path`` atomically (one-sentence errors for a failed write)."""
    import torch

    state = {
        "format": CHECKPOINT_FORMAT,
        "settings": fixed_settings(options),
        "seed": seed,
        "generation": generation,
        "step": step,
        "model": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "history": [list(entry) for entry in history],
    }
    state["digest"] = state_digest(state)
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except OSError as error:
        raise LutgenError(f"cannot write the checkpoint {path}: {error.strerror or error}") from None
    except RuntimeError:  # torch.save reports a failed write (a full disk) as a RuntimeError
        raise LutgenError(f"cannot write the checkpoint {path}: writing failed (is the disk full?)") from None


def save_weights(model, path: Path, metadata: dict[str, str]) -> None:
    """The model's tensors as a ``.safetensors`` file (published names), atomically."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    tensors = {key: value.detach().to("cpu").float().contiguous() for key, value in model.state_dict().items()}
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except OSError as error:
        raise LutgenError(f"cannot write {path}: {error.strerror or error}") from None
    except SafetensorError:  # how safetensors reports a failed write (a full disk)
        raise LutgenError(f"cannot write {path}: writing failed (is the disk full?)") from None


def metadata(options: TrainOptions, seed: int, generation: int, steps: int) -> dict[str, str]:
    """The safetensors metadata of a trained generation: its architecture, provenance and settings."""
    return {
        "format": "lutgen-adaint-1",
        "architecture": f"AiLUT tpami backbone, n_vertices={options.n_vertices}, n_ranks={options.n_ranks}, "
        f"adaint={options.adaptive}",
        "trained_by": "lutgen train",
        "generation": str(generation),
        "steps": str(steps),
        "seed": str(seed),
        "settings": repr(fixed_settings(options)),
    }
