"""The losses of text-to-LUT optimisation: the CLIP loss and five weighted auxiliary terms.

Every auxiliary loss measures only what the LUT *changes*, so each is exactly zero at the identity
LUT. (A smoothness term on the output image itself would penalise the photo's own texture; one on
the table itself would pull the black corner up.)

- image smoothness: the high frequencies of the change the LUT makes to the image,
  ``mean((d - lowpass(d))^2)`` with ``d = graded - original`` and ``lowpass`` a half-size
  down-and-up copy (bilinear). The photo's own texture costs nothing; banding the LUT adds does.
  Both copies are computed as products with fixed resampling matrices (:func:`down_up_matrix`),
  equal to ``F.interpolate``'s, so their gradients are deterministic on GPUs too.
- image regularisation: ``mean(d^2)``: keep the grade subtle.
- black preservation: Rec.709 luma ``Y``; the mean of ``relu(Y(graded) - Y(original))`` over the
  pixels whose original luma is below 0.01 (zero when there are none): do not lift the blacks.
- highlight preservation, the same at the other end: the mean absolute change ``mean_c |d|`` over
  the pixels whose original luma is above 0.99 (whites stay white: neither dimmed nor tinted), plus
  the mean of ``relu(graded - 0.995)`` over the channels whose original value is below 0.98 (the grade
  does not push highlights into clipping, where their detail would be lost).
- LUT smoothness: the same half-size down-and-up residual, trilinear with aligned corners, of the
  table's change ``D = table - identity``. Trilinear interpolation reproduces affine functions, so a
  global affine grade (brightness, contrast, a colour matrix) costs nothing; curvature and kinks
  in the change do. With ``D = 0`` the loss and its gradient are exactly zero, so, unlike a
  smoothness on the table itself, it never pulls the black corner up.
- CLIP: ``mean(1 - cos(image embedding, text embedding))``.

:mod:`lutgen.optim.objective` adds them to the terms of the evidence (:mod:`lutgen.optim.evidence`).

Images are ``(B, 3, H, W)`` float tensors; tables ``(N, N, N, 3)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lutgen.color.luma import BLACK_LUMA, LUMA_709, WHITE_LUMA

CLIPPING_LEVEL, UNCLIPPED_LEVEL = 0.995, 0.98  # a channel below 0.98 pushed above 0.995 is clipping


@dataclass(frozen=True)
class LossWeights:
    """Weights of the auxiliary losses (the CLIP loss has weight 1)."""

    image_smoothness: float = 1.0
    image_regularization: float = 1.0
    black_preservation: float = 1.0
    lut_smoothness: float = 1.0
    highlight_preservation: float = 1.0


def clip_loss(image_embeddings: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
    """``mean(1 - cos)`` between unit-norm ``(B, D)`` image and ``(1, D)`` text embeddings."""
    return (1.0 - (image_embeddings * text_embedding).sum(dim=-1)).mean()


def _half(size: int) -> int:
    return max(2, (size + 1) // 2)


@functools.lru_cache(maxsize=32)
def down_up_matrix(size: int, align_corners: bool, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The ``(size, size)`` matrix of a 1-D linear resampling to half size and back.

    Row ``i`` holds the weights output sample ``i`` takes from each input sample, as
    ``F.interpolate(mode="linear")`` computes them. Bilinear and trilinear resampling are products
    of these 1-D weights, so applying the matrix along each axis reproduces ``F.interpolate``'s
    down-and-up copy, as matrix products, whose backward pass is deterministic on every device.
    """
    impulses = torch.eye(size, dtype=torch.float64).unsqueeze(1)  # (size signals, 1 channel, size)
    small = F.interpolate(impulses, size=_half(size), mode="linear", align_corners=align_corners)
    back = F.interpolate(small, size=size, mode="linear", align_corners=align_corners)[:, 0]
    return back.t().contiguous().to(device=device, dtype=dtype)  # column j: response to impulse j


def _along(x: torch.Tensor, matrix: torch.Tensor, dim: int) -> torch.Tensor:
    """``matrix`` applied to the axis ``dim`` of ``x``."""
    return (x.movedim(dim, -1) @ matrix.t()).movedim(-1, dim)


def image_lowpass(images: torch.Tensor) -> torch.Tensor:
    """A half-size down-and-up copy of ``(B, C, H, W)`` images (bilinear both ways, half-pixel centres)."""
    height, width = images.shape[-2:]
    rows = down_up_matrix(height, False, images.device, images.dtype)
    columns = down_up_matrix(width, False, images.device, images.dtype)
    return rows @ images @ columns.t()


def image_smoothness(change: torch.Tensor) -> torch.Tensor:
    """``mean((d - lowpass(d))^2)`` of the change ``d = graded - original``, ``(B, 3, H, W)``."""
    return (change - image_lowpass(change)).square().mean()


def image_regularization(change: torch.Tensor) -> torch.Tensor:
    """``mean(d^2)`` of the change ``d = graded - original``."""
    return change.square().mean()


def luma(images: torch.Tensor) -> torch.Tensor:
    """Rec.709 luma of ``(B, 3, H, W)`` RGB: ``(B, H, W)``."""
    weights = torch.tensor(LUMA_709, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1)


def black_preservation(original: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    """Mean lift ``relu(Y(graded) - Y(original))`` over pixels with ``Y(original) < 0.01``; 0 if none.

    ``Y(graded) - Y(original)`` is computed as ``Y(change)`` (luma is linear), so it is exactly zero
    when the LUT changes nothing.
    """
    dark = (luma(original) < BLACK_LUMA).to(change.dtype)
    lift = torch.relu(luma(change)) * dark
    return lift.sum() / dark.sum().clamp(min=1.0)


def highlight_preservation(original: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    """Whites kept white and highlights kept out of clipping; exactly zero when the LUT changes nothing.

    The mean of ``mean_c |d|`` over pixels with ``Y(original) > 0.99`` (0 if none), plus the mean over
    all channel values of ``relu(original + d - 0.995)`` where ``original < 0.98``. Both parts are flat
    at ``d = 0`` (``|d|``'s subgradient there is 0, and the clipping part is 0 near the identity).
    """
    white = (luma(original) > WHITE_LUMA).to(change.dtype)
    tint = change.abs().mean(dim=1) * white
    kept_white = tint.sum() / white.sum().clamp(min=1.0)
    unclipped = (original < UNCLIPPED_LEVEL).to(change.dtype)
    clipping = (torch.relu(original + change - CLIPPING_LEVEL) * unclipped).mean()
    return kept_white + clipping


def lut_lowpass(table_change: torch.Tensor) -> torch.Tensor:
    """A half-size down-and-up copy of a ``(N, N, N, 3)`` table (trilinear, aligned corners)."""
    matrix = down_up_matrix(table_change.shape[0], True, table_change.device, table_change.dtype)
    out = table_change
    for dim in range(3):
        out = _along(out, matrix, dim)
    return out


def lut_smoothness(table_change: torch.Tensor) -> torch.Tensor:
    """``mean((D - lowpass(D))^2)`` of ``D = table - identity``, ``(N, N, N, 3)``."""
    return (table_change - lut_lowpass(table_change)).square().mean()
