"""Random views of the training images, drawn on the device every step.

The images are decoded once and kept on the device at a working resolution (see
:func:`working_side`). Each step draws, per image of the batch, a random resized crop (a box of
25-100 % of the image's area with an aspect ratio between 3:4 and 4:3, as torchvision's
``RandomResizedCrop``) and a random horizontal flip, then resizes the box to CLIP's input size with
antialiased resampling of CLIP's own kind (bicubic for the OpenAI models). So CLIP sees whole frames
and large parts of them at every scale of the photo, instead of a 224-pixel window of the full-size
photo. Views of images smaller than CLIP's input are enlarged.

Batches are always full: the images are visited in a shuffled order, epoch after epoch, and a batch
that would run past the end of an epoch continues into the next one.

:func:`centre_box` gives the box that open_clip's own inference preprocessing keeps (shortest side
resized to the input size, centre crop); :func:`resample_box` is the one resampling function of both
paths. Tensors are ``(3, H, W)`` per image and ``(B, 3, h, w)`` per batch, float in ``[0, 1]``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F

DEFAULT_VIEW_SIZE = 224
"""The side of a view when no CLIP model sets it (evidence without CLIP: reference colours, pairs)."""
SCALE_RANGE = (0.25, 1.0)
RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)


STORAGE_DTYPE = torch.float16


def stored_image(pixels, device) -> torch.Tensor:
    """An ``(H, W, 3)`` float array in ``[0, 1]`` as the ``(3, H, W)`` tensor kept on ``device``.

    Kept in float16 (half the memory; steps of at most 1/2048, finer than 8-bit levels); views are
    resampled in float32.
    """
    return torch.from_numpy(pixels).permute(2, 0, 1).to(device=device, dtype=STORAGE_DTYPE).contiguous()


def working_side(view_size: tuple[int, int]) -> int:
    """The longest side images are kept at: three times CLIP's input (672 px for 224)."""
    return 3 * max(view_size)


Box = tuple[int, int, int, int]  # top, left, height, width in pixels


def resample_box(image: torch.Tensor, box: Box, size: tuple[int, int], interpolation: str = "bicubic") -> torch.Tensor:
    """The ``box`` of a ``(3, H, W)`` image resized to ``size`` (h, w): ``(3, h, w)`` float32 in ``[0, 1]``.

    Antialiased ``bicubic`` or ``bilinear`` (torch's antialiasing follows Pillow's), clamped to
    ``[0, 1]`` because bicubic overshoots at edges.
    """
    top, left, height, width = box
    crop = image[None, :, top : top + height, left : left + width].float()
    if (height, width) == tuple(size):
        return crop[0]
    try:
        out = F.interpolate(crop, size=tuple(size), mode=interpolation, antialias=True, align_corners=False)
    except NotImplementedError:  # a device without antialiased resampling: resample this view on the CPU
        out = F.interpolate(crop.cpu(), size=tuple(size), mode=interpolation, antialias=True, align_corners=False)
        out = out.to(image.device)
    return out[0].clamp_(0.0, 1.0)


def centre_box(height: int, width: int, size: tuple[int, int], resize_mode: str = "shortest") -> Box:
    """The box open_clip's inference transform keeps of a ``height`` x ``width`` image.

    ``shortest``: the largest centred box with the aspect of ``size`` (resize shortest side, centre
    crop); ``squash`` and ``longest``: the whole image (``longest`` pads instead, which a box cannot
    express; the whole frame is the nearest thing).
    """
    if resize_mode != "shortest":
        return 0, 0, height, width
    target_h, target_w = size
    scale = min(height / target_h, width / target_w)
    box_h = min(height, max(1, round(target_h * scale)))
    box_w = min(width, max(1, round(target_w * scale)))
    return (height - box_h) // 2, (width - box_w) // 2, box_h, box_w


def random_box(height: int, width: int, rng: random.Random, scale=SCALE_RANGE, ratio=RATIO_RANGE) -> Box:
    """A random box of ``scale`` of the area and aspect (w/h) within ``ratio`` (log-uniform).

    After ten misses the largest centred box of the nearest allowed aspect is used, as torchvision does.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        box_w = round(math.sqrt(target * aspect))
        box_h = round(math.sqrt(target / aspect))
        if 0 < box_w <= width and 0 < box_h <= height:
            return rng.randint(0, height - box_h), rng.randint(0, width - box_w), box_h, box_w
    aspect = width / height
    if aspect < ratio[0]:
        box_w, box_h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        box_h, box_w = height, round(height * ratio[1])
    else:
        box_h, box_w = height, width
    return (height - box_h) // 2, (width - box_w) // 2, box_h, box_w


class ViewSampler:
    """Draws full batches of random views of device-resident images.

    Args:
        images: ``(3, H, W)`` float tensors in ``[0, 1]`` (see :func:`stored_image`), all on the same
            device (sizes may differ).
        view_size: ``(h, w)`` of a view (CLIP's input size).
        batch_size: views per batch.
        seed: seeds the choice of images, boxes and flips (a ``random.Random``).
        interpolation: ``bicubic`` or ``bilinear``.
    """

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        view_size: tuple[int, int],
        batch_size: int,
        seed: int,
        interpolation: str = "bicubic",
    ):
        if not images:
            raise ValueError("a ViewSampler needs at least one image")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.images = list(images)
        self.view_size = tuple(view_size)
        self.batch_size = batch_size
        self.interpolation = interpolation
        self.rng = random.Random(seed)
        self._queue: list[int] = []

    def state(self) -> dict:
        """Where the sampler is: its random generator's state and the photos left in this round."""
        return {"rng": self.rng.getstate(), "queue": list(self._queue)}

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state` (its generator state may have been through JSON or pickling)."""
        rng = state["rng"]
        self.rng.setstate((rng[0], tuple(rng[1]), rng[2]))
        self._queue = list(state["queue"])

    def _next_index(self) -> int:
        if not self._queue:
            self._queue = list(range(len(self.images)))
            self.rng.shuffle(self._queue)
        return self._queue.pop()

    def next_indices(self) -> list[int]:
        """The images of the next batch: always ``batch_size`` of them."""
        return [self._next_index() for _ in range(self.batch_size)]

    def view(self, image: torch.Tensor) -> torch.Tensor:
        """One random view ``(3, h, w)`` of ``image``: resized crop, flipped with probability 1/2."""
        box = random_box(image.shape[-2], image.shape[-1], self.rng)
        out = resample_box(image, box, self.view_size, self.interpolation)
        return out.flip(-1) if self.rng.random() < 0.5 else out

    def sample(self) -> torch.Tensor:
        """A batch of views ``(batch_size, 3, h, w)`` on the images' device."""
        return torch.stack([self.view(self.images[i]) for i in self.next_indices()])
