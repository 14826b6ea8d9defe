"""Training checkpoints and trained weights files: what ``lutgen train`` writes and resumes from.

``last.pt`` (:data:`CHECKPOINT_NAME`) in the checkpoint folder holds the model, the optimiser, the
generation, the step, the seed, the epoch history and the settings that must not change on resume;
each finished generation is a ``.safetensors`` weights file (:func:`save_weights`). Everything is
written atomically. Torch is imported only inside the functions.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from lutgen.errors import LutgenError, OptionError
from lutgen.fileio import atomic_path

if TYPE_CHECKING:
    from lutgen.tasks.train import TrainOptions

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


def read_checkpoint(path: Path, options: TrainOptions) -> dict:
    """The checkpoint at ``path``, checked against ``options`` (one-sentence errors)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any failure to unpickle means the same thing to the user
        raise LutgenError(f"cannot resume from {path}: it is not a readable lutgen training checkpoint") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise LutgenError(f"cannot resume from {path}: it is not a lutgen training checkpoint")
    saved = state["settings"]
    for key, value in fixed_settings(options).items():
        if saved.get(key) != value:
            flag = key.replace("_", "-")
            raise OptionError(f"cannot resume from {path}: it was made with --{flag} {saved.get(key)}, "
                              f"not {value}; use the same settings or another --checkpoint-dir")
    if options.seed is not None and options.seed != state["seed"]:
        raise OptionError(f"cannot resume from {path}: it was made with --seed {state['seed']}, not {options.seed}")
    return state


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
