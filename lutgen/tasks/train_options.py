"""The options of ``lutgen train`` (shared by the training loop and its checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lutgen.models import FIVEK_LOSS, FIVEK_TRAINING


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
