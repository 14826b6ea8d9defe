"""Trainable monotone tone curves: piecewise linear over ``K`` knots, exactly the identity at the start.

A curve maps ``[0, 1]`` onto ``[0, 1]``, keeps ``0 -> 0`` and ``1 -> 1`` and never decreases. Its
knot values come from ``K - 1`` logits ``z``::

    p = softmax(z)                       (K - 1 positive increments summing to 1)
    c = (0, p_1, p_1 + p_2, ..., sum p)  (their cumulative sum)
    y = c / c[-1]                        (the knot values; y_0 = 0 and y_{K-1} = 1 exactly)

The knot *positions* ``x`` are the knot values of zero logits, computed by the same operations in
the same dtype (evenly spaced up to rounding). So at ``z = 0`` the knots are ``y == x`` bit for bit,
every segment's slope is exactly ``1`` and the curve returns its input exactly.

Between knots the curve is ``y_i + slope_i * (u - x_i)``, capped at ``y_{i+1}`` against rounding,
so the output stays inside ``[y_i, y_{i+1}]`` (within ``[0, 1]``) and the curve is monotone.
Gradients flow to the logits and to the input (the input's gradient is the segment slope).
"""

from __future__ import annotations

import torch
from torch import nn


def monotone_knots(logits: torch.Tensor) -> torch.Tensor:
    """Knot values of monotone curves from their logits.

    Args:
        logits: ``(C, K - 1)`` float, one row per curve, ``K >= 2``.

    Returns:
        ``(C, K)`` non-decreasing rows from exactly ``0`` to exactly ``1``. Differentiable.
    """
    cumulative = torch.cumsum(torch.softmax(logits, dim=-1), dim=-1)
    values = cumulative / cumulative[..., -1:]
    return torch.cat([torch.zeros_like(values[..., :1]), values], dim=-1)


def knot_positions(knots: int, like: torch.Tensor) -> torch.Tensor:
    """The ``(K,)`` knot positions: :func:`monotone_knots` of zero logits in ``like``'s dtype and device."""
    return monotone_knots(like.new_zeros((1, knots - 1)))[0]


def piecewise_linear(u: torch.Tensor, positions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Curve ``c`` of ``values`` applied to channel ``c`` of ``u``.

    Args:
        u: ``(..., C)`` inputs in ``[0, 1]`` (a value past 1 is read as 1).
        positions: ``(K,)`` increasing knot positions from 0 to 1.
        values: ``(C, K)`` non-decreasing knot values, row ``c`` the curve of channel ``c``.

    Returns:
        ``(..., C)``: ``values_i + slope_i * (u - positions_i)`` on the segment ``i`` holding ``u``,
        capped at ``values_{i+1}``. Differentiable w.r.t. ``u`` and ``values``.
    """
    knots = positions.shape[0]
    segment = torch.searchsorted(positions, u.detach().contiguous(), right=True) - 1
    segment = segment.clamp(0, knots - 2)
    x_low, x_high = positions[segment], positions[segment + 1]
    channel_start = torch.arange(values.shape[0], device=u.device) * knots
    flat = values.reshape(-1)
    y_low, y_high = flat[segment + channel_start], flat[segment + 1 + channel_start]
    slope = (y_high - y_low) / (x_high - x_low)
    return torch.minimum(y_low + slope * (u - x_low), y_high)


class MonotoneCurves(nn.Module):
    """``channels`` trainable monotone curves over ``knots`` knots (see the module docstring).

    Attributes:
        logits: ``(channels, knots - 1)`` parameter, zero (the identity) at the start.
    """

    def __init__(self, channels: int, knots: int, device: torch.device | str | None = None):
        super().__init__()
        if knots < 2:
            raise ValueError(f"a curve needs at least 2 knots, not {knots}")
        self.logits = nn.Parameter(torch.zeros(channels, knots - 1, device=device))

    @property
    def knots(self) -> int:
        return self.logits.shape[1] + 1

    def values(self) -> torch.Tensor:
        """``(channels, knots)`` knot values, from exactly 0 to exactly 1."""
        return monotone_knots(self.logits)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Curve ``c`` applied to channel ``c`` of ``u``, ``(..., channels)`` in ``[0, 1]``; same shape."""
        return piecewise_linear(u, knot_positions(self.knots, self.logits), self.values())
