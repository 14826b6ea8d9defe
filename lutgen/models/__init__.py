"""Learned image-adaptive LUT models (AdaInt) and the weights lutgen ships.

A model is named on the command line either by a shipped name (:data:`SHIPPED_MODELS`) or by a
weights file:

- ``.safetensors`` holding the model's tensors under the published AdaInt names (what lutgen ships
  and what ``lutgen train`` writes), read without torch, in float32, float16, bfloat16 or float64
  (:mod:`lutgen.models.safetensors_file`; every type is converted to float32);
- ``.pth`` / ``.pt``: a PyTorch checkpoint, either the published one (``{"state_dict": ...}``), a
  lutgen training checkpoint (``{"model": ...}``) or a bare state dict; read with
  ``torch.load(weights_only=True)``.

Tensor names and shapes (``F`` = 512 feature size, ``M`` ranks, ``N`` vertices per axis):

- ``backbone.{i}.0.weight/bias``: convolution ``i`` (0..4) of the 5-layer backbone;
- ``backbone.{i}.2.weight/bias``: instance norm after convolution ``i`` (0..3);
- ``lut_generator.weights_generator.weight (M, F)``, ``.bias (M,)``: mapping h0;
- ``lut_generator.basis_luts_bank.weight (3 N^3, M)``: the ``M`` basis LUTs (h1), row
  ``o * N^3 + k_b * N^2 + k_g * N + k_r``;
- ``adaint.intervals_generator.weight (3 (N - 1), F)``, ``.bias``: the interval module g (absent in the
  uniform-grid variant, whose backbone has no pooling and ``F = 8192``).

The published FiveK training settings (:data:`FIVEK_LOSS`, :data:`FIVEK_TRAINING`) live here too, so
that ``lutgen train`` can check its options without importing torch. This module imports neither
torch nor numba.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lutgen.errors import LutgenError
from lutgen.fileio import check_regular_file
from lutgen.models.safetensors_file import read_safetensors

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = "fivek-srgb"
SHIPPED_MODELS = {
    "fivek-srgb": "fivek_srgb.safetensors",
    "fivek-xyz": "fivek_xyz.safetensors",
}
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")

BACKBONE_CHANNELS = (16, 32, 64, 128, 128)
NORMED_BLOCKS = 4  # blocks 0..3 end with an instance norm


@dataclass(frozen=True)
class AdaIntLossWeights:
    """Factors of the AdaInt regularisation terms added to the MSE."""

    sparse_factor: float = 1e-4  # mean(w^2) of the generator's weights
    smooth_factor: float = 0.0  # TV of the basis LUTs (off in the published configs)
    monotonicity_factor: float = 10.0  # penalty on decreasing basis LUTs


@dataclass(frozen=True)
class TrainingSettings:
    """The published FiveK training settings (Adam, constant learning rate, augmentation)."""

    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    adaint_lr_factor: float = 0.1  # the interval module learns 10x slower
    adaint_frozen_epochs: int = 5  # and is frozen for the first epochs
    epochs: int = 400
    batch_size: int = 1
    crop_ratio: tuple[float, float] = (0.6, 1.0)  # random crop, height and width ratios drawn independently
    flip_probability: float = 0.5  # horizontal flip
    brightness_jitter: float = 0.2  # on the input only
    saturation_jitter: float = 0.2


FIVEK_LOSS = AdaIntLossWeights()
FIVEK_TRAINING = TrainingSettings()


@dataclass(frozen=True)
class ModelConfig:
    """The architecture a set of weights describes."""

    n_vertices: int  # N, nodes per axis of the LUT
    n_ranks: int  # M, basis LUTs
    adaptive: bool  # True: AdaInt vertices (pooled 512-d feature); False: uniform grid (8192-d)

    @property
    def n_features(self) -> int:
        return BACKBONE_CHANNELS[-1] * (4 if self.adaptive else 64)


@dataclass
class Weights:
    """A model's tensors as float32 NumPy arrays, with where they came from and their architecture."""

    tensors: dict[str, np.ndarray]
    config: ModelConfig
    source: str
    metadata: dict[str, str]


def model_path(model: str | Path) -> Path:
    """The weights file for ``model``: a shipped name or a path to a weights file.

    Raises:
        LutgenError: an unknown name, a missing file or an unsupported extension (one sentence).
    """
    text = str(model)
    if text in SHIPPED_MODELS:
        path = WEIGHTS_DIR / SHIPPED_MODELS[text]
        if not path.is_file():
            raise LutgenError(f"the shipped model {text} is missing from this installation ({path} does not exist)")
        return path
    path = Path(model)
    names = ", ".join(SHIPPED_MODELS)
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        if not path.exists() and not path.is_symlink():
            raise LutgenError(f"unknown model {text!r}: use {names} or a weights file (.safetensors, .pth or .pt)")
        raise LutgenError(f"cannot load the model {path}: use a .safetensors, .pth or .pt weights file")
    return check_regular_file(path, "weights file")


def load_weights(model: str | Path = DEFAULT_MODEL) -> Weights:
    """Read and check the weights of ``model`` (a shipped name or a file); see the module docstring.

    Raises:
        LutgenError: the file is missing, unreadable, or does not hold AdaInt weights (one sentence).
    """
    path = model_path(model)
    if path.suffix.lower() == ".safetensors":
        tensors, metadata = read_safetensors(path)
    else:
        tensors, metadata = _read_torch_checkpoint(path), {}
    config = check_tensors(tensors, path)
    return Weights(tensors, config, str(model), metadata)


def _read_torch_checkpoint(path: Path) -> dict[str, np.ndarray]:
    import pickle

    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, ValueError, KeyError):
        raise LutgenError(f"cannot load the model {path}: it is not a readable PyTorch checkpoint") from None
    if isinstance(checkpoint, dict):
        for key in ("model", "state_dict"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise LutgenError(f"cannot load the model {path}: the checkpoint holds no state dict of tensors")
    for key, value in checkpoint.items():
        if not value.is_floating_point():
            raise LutgenError(f"cannot load the model {path}: {key!r} holds {value.dtype} values; AdaInt weights "
                              "must be floating point")
    return {key: value.detach().to(torch.float32).numpy() for key, value in checkpoint.items()}


def check_tensors(tensors: dict[str, np.ndarray], path: Path | str = "the weights") -> ModelConfig:
    """Check names and shapes of AdaInt tensors; return the architecture they describe.

    Every tensor of ``tensors`` is replaced (in the dict) by a C-contiguous float32 copy or view.

    Raises:
        LutgenError: a tensor is missing, has the wrong shape or is not finite (one sentence).
    """
    def fail(reason: str):
        raise LutgenError(f"cannot load the model {path}: it does not hold AdaInt weights ({reason})")

    bank = tensors.get("lut_generator.basis_luts_bank.weight")
    if bank is None:
        fail("no 'lut_generator.basis_luts_bank.weight'")
    if bank.ndim != 2:
        fail(f"the basis LUTs have shape {bank.shape}")
    n_ranks = bank.shape[1]
    n_vertices = round((bank.shape[0] / 3) ** (1 / 3))
    if 3 * n_vertices**3 != bank.shape[0] or n_vertices < 2:
        fail(f"the basis LUTs have {bank.shape[0]} rows, not 3 N^3")
    adaptive = "adaint.intervals_generator.weight" in tensors
    config = ModelConfig(n_vertices, n_ranks, adaptive)
    expected = expected_shapes(config)
    for key, shape in expected.items():
        if key not in tensors:
            fail(f"no {key!r}")
        if tuple(tensors[key].shape) != shape:
            fail(f"{key!r} has shape {tuple(tensors[key].shape)}, not {shape}")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        fail(f"unexpected tensor {extra[0]!r}")
    for key, value in tensors.items():
        tensors[key] = np.ascontiguousarray(value, dtype=np.float32)
        if not np.isfinite(tensors[key]).all():
            fail(f"{key!r} is not finite")
    return config


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of a model with ``config``."""
    shapes: dict[str, tuple[int, ...]] = {}
    previous = 3
    for i, channels in enumerate(BACKBONE_CHANNELS):
        shapes[f"backbone.{i}.0.weight"] = (channels, previous, 3, 3)
        shapes[f"backbone.{i}.0.bias"] = (channels,)
        if i < NORMED_BLOCKS:
            shapes[f"backbone.{i}.2.weight"] = (channels,)
            shapes[f"backbone.{i}.2.bias"] = (channels,)
        previous = channels
    n, m, f = config.n_vertices, config.n_ranks, config.n_features
    shapes["lut_generator.weights_generator.weight"] = (m, f)
    shapes["lut_generator.weights_generator.bias"] = (m,)
    shapes["lut_generator.basis_luts_bank.weight"] = (3 * n**3, m)
    if config.adaptive:
        shapes["adaint.intervals_generator.weight"] = (3 * (n - 1), f)
        shapes["adaint.intervals_generator.bias"] = (3 * (n - 1),)
    return shapes

