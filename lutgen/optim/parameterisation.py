"""The trainable 3D LUTs: each an exact identity at the start and always inside ``[0, 1]``.

Three representations of one ``size``^3 table share one interface, used by the trainer:

- ``size`` and ``device``; ``table()`` (and ``forward()``, the same), the ``(N, N, N, 3)`` values in
  ``[0, 1]``; ``change()``, the table minus the identity, exactly zero at the start, so every
  auxiliary loss starts at exactly zero (both differentiable); ``keep_in_range()`` after each
  optimiser step; ``to_lut(title, comments)``, the table as a :class:`~lutgen.lut.LUT`; and
  ``param_groups(learning_rate)``, Adam's parameter groups, every trainable parameter in exactly
  one of them.
- ``to_lut()`` writes ``table()`` widened to float64 exactly. The trainer grades with
  ``x + trilinear(x, change())``, which is ``trilinear(x, table())`` up to float32 rounding.
  :class:`BoundedLUT` defines its table as ``identity + change()``; the other two define the table
  first (so that its bounds, and the neutrality of :class:`MonochromeLUT`, are exact) and
  ``change()`` as ``table() - identity``.

:class:`BoundedLUT`: one free parameter per node and channel. With ``G`` the identity table and ``θ``
the raw parameter (:func:`toward_bounds`)::

    change = tanh(θ) * (1 - G)   where θ >= 0     (move up by a fraction tanh θ of the headroom above)
    change = tanh(θ) * G         where θ <  0     (move down by a fraction of the room below)
    table  = G + change

- ``θ = 0`` everywhere is the identity *exactly* (``tanh(0) = 0``).
- The table always lies in ``[0, 1]`` and approaches the bounds smoothly (the gradient shrinks as a
  value nears 0 or 1), so values do not pile up at a clamp and no banding comes from clamping.
- A channel that sits on a bound in the identity (``G = 0`` or ``G = 1``) cannot move past it. On
  that side its parameter would be inert, so after each step :meth:`BoundedLUT.keep_in_range`
  keeps such parameters at the side where they act; this changes no table value, it only stops
  Adam's momentum from parking a parameter where its gradient is zero.

:class:`StructuredLUT`: a global colour stage (3x3 matrix and offset, then per-channel monotone tone
curves) in front of a :class:`BoundedLUT`-like residual relative to that stage. Large global
changes (a white balance, a desaturation, a contrast curve) take a handful of parameters that move
every node together, instead of ``N^3`` nodes each moving by itself against the smoothness losses.

:class:`MonochromeLUT`: black and white by construction: a learned channel mix, a monotone tone
curve and output levels, the same value in all three channels at every node.

Shapes follow :mod:`lutgen.lut`: tables are ``(N, N, N, 3)`` indexed ``[b, g, r, channel]``.
"""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lutgen.color.luma import LUMA_709
from lutgen.color.torch_ops import identity_table
from lutgen.lut import LUT
from lutgen.optim.curves import MonotoneCurves

"""Rec.709 luma weights of R, G, B: the starting channel mix of :class:`MonochromeLUT`."""
CURVE_KNOTS = 17
"""Default number of knots of a tone curve (16 linear segments)."""
LINEAR_SHARE = 0.5
"""The share of the room to a bound that :func:`soft_step` moves without bending."""
MAX_LEVEL_SHIFT = 0.5
"""How far :class:`MonochromeLUT`'s black level may rise and its white level fall."""


def toward_bounds(values: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
    """The change that moves ``values`` a ``fraction`` of the way to 1 (``fraction >= 0``) or to 0 (``< 0``).

    Args:
        values: ``(...)`` in ``[0, 1]``.
        fraction: ``(...)`` in ``[-1, 1]`` (typically ``tanh`` of a parameter).

    Returns:
        ``fraction * (1 - values)`` where ``fraction >= 0``, else ``fraction * values``: a change
        that keeps ``values + change`` inside ``[0, 1]``. Differentiable w.r.t. both.
    """
    return fraction * torch.where(fraction >= 0, 1.0 - values, values)


def soft_share(x: torch.Tensor) -> torch.Tensor:
    """An odd soft limiter of ``x`` to ``(-1, 1)``: exactly ``x`` for ``|x| <= LINEAR_SHARE``, then a ``tanh`` knee.

    Args:
        x: ``(...)`` any finite values.

    Returns:
        ``x`` where ``|x| <= a`` (``a = LINEAR_SHARE``), else ``sign(x) * (a + (1 - a) tanh((|x| - a) / (1 - a)))``:
        strictly inside ``(-1, 1)``, increasing, with a continuous first and second derivative
        (1 and 0 on both sides of the knee).
    """
    a = LINEAR_SHARE
    magnitude = x.abs()
    knee = a + (1.0 - a) * torch.tanh((magnitude - a) / (1.0 - a))
    return torch.where(magnitude <= a, x, torch.copysign(knee, x))


def soft_step(values: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """``values + step``, smoothly limited to ``[0, 1]``: a soft clamp relative to the room on the step's side.

    Args:
        values: ``(...)`` in ``[0, 1]``.
        step: ``(...)`` any finite change.

    Returns:
        ``values + room * soft_share(step / room)``, ``room`` being ``1 - values`` for a step up and
        ``values`` for a step down (no move where the room is 0). ``values + step`` (to rounding) while
        the step takes at most ``LINEAR_SHARE`` of the room, then bending smoothly towards the bound,
        which it never reaches: inside ``[0, 1]`` for every step, without a hard edge. Exactly
        ``values`` for a zero step. The gradient w.r.t. ``step`` is 1 in the linear part and falls
        continuously to 0 towards the bound.
    """
    room = torch.where(step >= 0, 1.0 - values, values)
    open_room = torch.where(room > 0, room, torch.ones_like(room))
    return values + room * soft_share(step / open_room)


class TrainableLUT(nn.Module):
    """What every trainable LUT shares: the identity table ``G`` it starts from, and the table as a LUT.

    Subclasses define :meth:`table` (``(N, N, N, 3)`` in ``[0, 1]``, differentiable), :meth:`param_groups`
    (Adam's groups) and, where some parameter can sit where it does nothing, :meth:`keep_in_range`.

    Attributes:
        identity: ``(N, N, N, 3)`` float32 buffer ``G``.
    """

    def __init__(self, size: int, device: torch.device | str | None = None):
        super().__init__()
        self.register_buffer("identity", identity_table(size, device=device, dtype=torch.float32))

    @property
    def size(self) -> int:
        return self.identity.shape[0]

    @property
    def device(self) -> torch.device:
        """The device the table lives on."""
        return self.identity.device

    def table(self) -> torch.Tensor:
        raise NotImplementedError

    def change(self) -> torch.Tensor:
        """``table() - identity``, ``(N, N, N, 3)``; exactly zero at the start. Differentiable."""
        return self.table() - self.identity

    def forward(self) -> torch.Tensor:
        """Same as :meth:`table`."""
        return self.table()

    @torch.no_grad()
    def keep_in_range(self) -> None:
        """Nothing to keep by default."""

    @torch.no_grad()
    def to_lut(self, title: str | None = None, comments: tuple[str, ...] = ()) -> LUT:
        """The current table as a :class:`~lutgen.lut.LUT` (float32 values widened to float64 exactly)."""
        values = self.table().detach().to("cpu", torch.float32).numpy().astype(np.float64)
        return LUT(values, title=title, comments=comments)


class BoundedLUT(TrainableLUT):
    """A trainable ``size``^3 LUT over the unit cube, one parameter per node and channel (see the module docstring).

    Attributes:
        raw: ``(N, N, N, 3)`` float32 parameter ``θ``, zero at the start.
        identity: ``(N, N, N, 3)`` float32 buffer ``G``.
    """

    def __init__(self, size: int, device: torch.device | str | None = None):
        super().__init__(size, device)
        identity = self.identity
        self.raw = nn.Parameter(torch.zeros_like(identity))
        self.register_buffer("_at_floor", identity == 0.0)
        self.register_buffer("_at_ceiling", identity == 1.0)

    def change(self) -> torch.Tensor:
        """``table - identity``, shape ``(N, N, N, 3)``; exactly zero at the start. Differentiable."""
        return toward_bounds(self.identity, torch.tanh(self.raw))

    def table(self) -> torch.Tensor:
        """The LUT values, shape ``(N, N, N, 3)`` in ``[0, 1]``. Differentiable."""
        return self.identity + self.change()

    @torch.no_grad()
    def keep_in_range(self) -> None:
        """Keep parameters of channels on a bound on the side where they act (changes no value)."""
        self.raw.copy_(torch.where(self._at_floor, self.raw.clamp(min=0.0), self.raw))
        self.raw.copy_(torch.where(self._at_ceiling, self.raw.clamp(max=0.0), self.raw))

    def param_groups(self, learning_rate: float) -> list[dict]:
        """Adam's parameter groups: the one raw parameter at ``learning_rate``."""
        return [{"params": [self.raw], "lr": learning_rate}]


RESIDUAL_MAX_SIZE = 17
"""Nodes per axis of :class:`StructuredLUT`'s residual lattice at most; larger tables upsample it."""


def upsampling_matrix(size: int, coarse: int, device=None) -> torch.Tensor:
    """The ``(size, coarse)`` float32 matrix of 1-D linear interpolation (aligned corners) from ``coarse``
    samples to ``size``: row ``i`` holds the weights node ``i`` takes from each coarse node."""
    impulses = torch.eye(coarse, dtype=torch.float64).unsqueeze(1)  # (coarse signals, 1 channel, coarse)
    fine = F.interpolate(impulses, size=size, mode="linear", align_corners=True)[:, 0]  # (coarse, size)
    return fine.t().contiguous().to(device=device, dtype=torch.float32)


class StructuredLUT(TrainableLUT):
    """A global colour stage in front of a residual lattice, all baked into one trainable table.

    Per node ``G`` (the identity table, channels R, G, B)::

        step     = (A - I) G + o                      3x3 matrix A and offset o, from I and 0
        graded   = soft_step(G, step)                 A G + o, smoothly kept inside [0, 1]
        base     = curve_c(graded_c)                  per-channel monotone tone curves
        table    = base + toward_bounds(base, tanh U θ)  residual: a fraction of the room above/below

    - At the start (``A = I``, ``o = 0``, zero curve logits, ``θ = 0``) every stage is the identity
      *exactly*, so ``table() == identity`` bit for bit and ``change()`` is exactly zero.
    - :func:`soft_step` keeps the matrix output inside ``[0, 1]`` without a hard clamp, so the
      curves always see their domain; the curves map ``[0, 1]`` onto itself; the residual moves a
      fraction of the room between the base and a bound. The table is therefore inside ``[0, 1]``
      for every parameter value.
    - The residual ``θ`` has at most :data:`RESIDUAL_MAX_SIZE` nodes a side; ``U`` interpolates it
      trilinearly to the table's ``N`` (the identity when ``N`` is no larger). A large table then
      gets its precision from the smooth global stage, and its residual cannot turn rough node by
      node, which is what makes learned 64^3 tables band (``bench/bench_banding.py``).

    Attributes:
        matrix: ``(3, 3)`` parameter ``A - I`` (rows: output channel), zero at the start.
        offset: ``(3,)`` parameter ``o``, zero at the start.
        curves: three :class:`~lutgen.optim.curves.MonotoneCurves`, one per channel.
        residual: ``(M, M, M, 3)`` parameter ``θ``, ``M = min(N, RESIDUAL_MAX_SIZE)``, zero at the start.
        identity: ``(N, N, N, 3)`` float32 buffer ``G``.
        RATES: learning-rate multipliers of the parameter groups (:meth:`param_groups`).
    """

    RATES = MappingProxyType({"matrix": 2.0, "curves": 1.0, "residual": 1.0})

    def __init__(self, size: int, device: torch.device | str | None = None, curve_knots: int = CURVE_KNOTS):
        super().__init__(size, device)
        self.matrix = nn.Parameter(torch.zeros(3, 3, device=device))
        self.offset = nn.Parameter(torch.zeros(3, device=device))
        self.curves = MonotoneCurves(3, curve_knots, device=device)
        coarse = min(size, RESIDUAL_MAX_SIZE)
        self.residual = nn.Parameter(torch.zeros(coarse, coarse, coarse, 3, device=device))
        self._upsampling = upsampling_matrix(size, coarse, device) if coarse < size else None

    def residual_logits(self) -> torch.Tensor:
        """``U θ``: the residual parameter interpolated to every node, ``(N, N, N, 3)``. Differentiable."""
        theta = self.residual
        if self._upsampling is not None:
            matrix = self._upsampling.to(theta.device)
            for dim in range(3):
                theta = (theta.movedim(dim, -1) @ matrix.t()).movedim(-1, dim)
        return theta

    def base(self) -> torch.Tensor:
        """The global stage at every node, ``(N, N, N, 3)`` in ``[0, 1]``. Differentiable."""
        step = self.identity @ self.matrix.t() + self.offset
        return self.curves(soft_step(self.identity, step))

    def table(self) -> torch.Tensor:
        """The LUT values, ``(N, N, N, 3)`` in ``[0, 1]``. Differentiable."""
        base = self.base()
        return base + toward_bounds(base, torch.tanh(self.residual_logits()))

    @torch.no_grad()
    def keep_in_range(self) -> None:
        """Keep residual parameters of channels whose base sits on a bound on the side where they act.

        Where the base is 0 a negative ``θ`` moves nothing (and where it is 1 a positive one), so
        such parameters are clamped to the acting side. This changes no table value. (An upsampled
        residual's parameters each act on many nodes, so they are left as they are.)
        """
        if self._upsampling is not None:
            return
        base = self.base()
        self.residual.copy_(torch.where(base <= 0.0, self.residual.clamp(min=0.0), self.residual))
        self.residual.copy_(torch.where(base >= 1.0, self.residual.clamp(max=0.0), self.residual))

    def param_groups(self, learning_rate: float) -> list[dict]:
        """Adam's parameter groups: matrix and offset, curves, residual, at ``RATES`` times ``learning_rate``.

        Adam moves each parameter by about its learning rate per step whatever the scale of its
        gradient, so each group's rate is set by how far one unit of it moves the table:

        - matrix and offset, twice the rate: an entry ``(c, j)`` of ``A`` moves channel ``c`` by
          ``G_j`` times its change, and ``G_j`` averages 1/2 over the cube, so at twice the rate the
          matrix moves the table about as fast as the residual moves a node;
        - curves, the rate itself: a curve overlaps the matrix's diagonal and offset, and a faster
          curve takes over changes the matrix makes smoothly (measured: an 80% desaturation fitted
          with rate 1 ends 1.3x closer and half as rough in ``lut_smoothness`` as with rate 3);
        - residual, the rate itself, as for :class:`BoundedLUT`, so the auxiliary loss weights tuned
          for it hold for the residual too.
        """
        return [
            {"params": [self.matrix, self.offset], "lr": learning_rate * self.RATES["matrix"]},
            {"params": [self.curves.logits], "lr": learning_rate * self.RATES["curves"]},
            {"params": [self.residual], "lr": learning_rate * self.RATES["residual"]},
        ]


class MonochromeLUT(TrainableLUT):
    """A trainable black-and-white LUT: the same value in all three channels at every node, exactly.

    Per node ``G`` (channels R, G, B)::

        w     = softmax(m)                            channel mix, from the Rec.709 luma weights
        u     = (w . G) / sum(w)                      in [0, 1]; exactly 1 at white
        grey  = black + (white - black) * curve(u)    a monotone tone curve between output levels
        table[..., c] = grey                          for c = R, G, B

    with ``black = 0.5 * s_0`` and ``white = 1 - 0.5 * s_1``, ``s = toward_bounds(0, tanh(levels))``
    (so ``0 <= black < 0.5 < white <= 1``). At the start (``m = log(luma weights)``, zero curve logits
    and levels) ``grey`` is the Rec.709 luma of the node: black stays black and white stays white.

    Attributes:
        mix: ``(3,)`` parameter ``m``, the logits of the channel mix.
        curve: one :class:`~lutgen.optim.curves.MonotoneCurves`.
        levels: ``(2,)`` parameter, zero at the start: how far the black level rises and the white
            level falls.
        identity: ``(N, N, N, 3)`` float32 buffer ``G``.
        RATES: learning-rate multipliers of the parameter groups (:meth:`param_groups`).
    """

    RATES = MappingProxyType({"mix": 3.0, "curve": 5.0, "levels": 1.0})

    def __init__(self, size: int, device: torch.device | str | None = None, curve_knots: int = CURVE_KNOTS):
        super().__init__(size, device)
        self.mix = nn.Parameter(torch.tensor([math.log(w) for w in LUMA_709], device=device))
        self.curve = MonotoneCurves(1, curve_knots, device=device)
        self.levels = nn.Parameter(torch.zeros(2, device=device))

    def weights(self) -> torch.Tensor:
        """The ``(3,)`` channel mix: non-negative, summing to 1 (up to rounding)."""
        return torch.softmax(self.mix, dim=0)

    def output_levels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The black level in ``[0, 0.5)`` and the white level in ``(0.5, 1]`` (0-d tensors)."""
        shifts = MAX_LEVEL_SHIFT * toward_bounds(torch.zeros_like(self.levels), torch.tanh(self.levels))
        return shifts[0], 1.0 - shifts[1]

    def grey(self) -> torch.Tensor:
        """The output value of every node, ``(N, N, N)`` in ``[0, 1]``. Differentiable."""
        w = self.weights()
        g = self.identity
        mixed = (g[..., 0] * w[0] + g[..., 1] * w[1] + g[..., 2] * w[2]) / (w[0] + w[1] + w[2])
        black, white = self.output_levels()
        return black + (white - black) * self.curve(mixed.unsqueeze(-1)).squeeze(-1)

    def table(self) -> torch.Tensor:
        """The LUT values, ``(N, N, N, 3)`` in ``[0, 1]``, equal in the three channels. Differentiable."""
        return self.grey().unsqueeze(-1).expand(*self.identity.shape)

    @torch.no_grad()
    def keep_in_range(self) -> None:
        """Keep the level parameters non-negative, where they act (a negative one moves no level)."""
        self.levels.clamp_(min=0.0)

    def param_groups(self, learning_rate: float) -> list[dict]:
        """Adam's parameter groups: channel mix, curve, levels, at ``RATES`` times ``learning_rate``.

        - channel mix, 3 times the rate: a unit of a logit scales its weight by ``e``, but the
          weights move only in proportion to themselves (``dw_c = w_c (dm_c - w . dm)``), and moving
          from the luma weights to another mix takes logit changes near 1;
        - curve, 5 times the rate: it is the only tonal stage here (nothing else competes for its
          changes), and one logit moves the curve by only about ``1 / (K - 1)``;
        - levels, the rate itself: a unit moves a level by up to one half.

        (Measured on black-and-white targets, a mix then a gamma of 0.7 or 1.4, 100 Adam steps at
        0.01: the mean CIE76 error falls from about 2.5 with every rate 1 to 0.15-0.2.)
        """
        return [
            {"params": [self.mix], "lr": learning_rate * self.RATES["mix"]},
            {"params": [self.curve.logits], "lr": learning_rate * self.RATES["curve"]},
            {"params": [self.levels], "lr": learning_rate * self.RATES["levels"]},
        ]
