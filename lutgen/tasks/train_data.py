"""Training data for ``lutgen train``: deterministic batches, augmentation and decoded photo pairs.

Which photos form a batch and how each is augmented follow from ``(seed, generation, step, slot)``
alone (:func:`derived_seed`), never from the process that handles it, so that several processes
train the same model as one. No torch.
"""

from __future__ import annotations

import numpy as np

from lutgen.errors import LutgenError
from lutgen.imaging import load_rgb_float
from lutgen.models import FIVEK_TRAINING
from lutgen.tasks.pairs import ImagePair

GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # saturation jitter mixes with this grey
MIN_CROP_SIDE = 16


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
