"""The trainable 3D LUT: an exact identity at the start, always inside ``[0, 1]``, no hard clamps.

Parameterisation (per node and channel, ``G`` the identity table, ``θ`` the raw parameter)::

    change = tanh(θ) * (1 - G)   where θ >= 0     (move up by a fraction tanh θ of the headroom above)
    change = tanh(θ) * G         where θ <  0     (move down by a fraction of the room below)
    table  = G + change

- ``θ = 0`` everywhere is the identity *exactly* (``tanh(0) = 0``), so training starts at identity
  and every auxiliary loss starts at exactly zero.
- The table always lies in ``[0, 1]`` and approaches the bounds smoothly (the gradient shrinks as a
  value nears 0 or 1), so values do not pile up at a clamp and no banding comes from clamping.
- A channel that sits on a bound in the identity (``G = 0`` or ``G = 1``) cannot move past it. On
  that side its parameter would be inert, so after each step :meth:`BoundedLUT.keep_in_range`
  keeps such parameters at the side where they act; this changes no table value, it only stops
  Adam's momentum from parking a parameter where its gradient is zero.

Shapes follow :mod:`lutgen.lut`: tables are ``(N, N, N, 3)`` indexed ``[b, g, r, channel]``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lutgen.color.torch_ops import identity_table
from lutgen.lut import LUT


class BoundedLUT(nn.Module):
    """A trainable ``size``^3 LUT over the unit cube (see the module docstring).

    Attributes:
        raw: ``(N, N, N, 3)`` float32 parameter ``θ``, zero at the start.
        identity: ``(N, N, N, 3)`` float32 buffer ``G``.
    """

    def __init__(self, size: int, device: torch.device | str | None = None):
        super().__init__()
        identity = identity_table(size, device=device, dtype=torch.float32)
        self.register_buffer("identity", identity)
        self.raw = nn.Parameter(torch.zeros_like(identity))
        self.register_buffer("_at_floor", identity == 0.0)
        self.register_buffer("_at_ceiling", identity == 1.0)

    @property
    def size(self) -> int:
        return self.identity.shape[0]

    def change(self) -> torch.Tensor:
        """``table - identity``, shape ``(N, N, N, 3)``; exactly zero at the start. Differentiable."""
        squashed = torch.tanh(self.raw)
        headroom = torch.where(self.raw >= 0, 1.0 - self.identity, self.identity)
        return squashed * headroom

    def table(self) -> torch.Tensor:
        """The LUT values, shape ``(N, N, N, 3)`` in ``[0, 1]``. Differentiable."""
        return self.identity + self.change()

    def forward(self) -> torch.Tensor:
        """Same as :meth:`table`."""
        return self.table()

    @torch.no_grad()
    def keep_in_range(self) -> None:
        """Keep parameters of channels on a bound on the side where they act (changes no value)."""
        self.raw.copy_(torch.where(self._at_floor, self.raw.clamp(min=0.0), self.raw))
        self.raw.copy_(torch.where(self._at_ceiling, self.raw.clamp(max=0.0), self.raw))

    @torch.no_grad()
    def to_lut(self, title: str | None = None, comments: tuple[str, ...] = ()) -> LUT:
        """The current table as a :class:`~lutgen.lut.LUT` (float32 values widened to float64 exactly)."""
        values = self.table().detach().to("cpu", torch.float32).numpy().astype(np.float64)
        return LUT(values, title=title, comments=comments)
