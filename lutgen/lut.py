"""The one LUT type of lutgen: a 3D table with its input domain, optionally after a 1D shaper.

This is what a ``.cube`` file holds (Adobe or Resolve flavour) and what every command works on.

Conventions (shared by the file readers, the CPU kernels and the torch functions):

- ``LUT.table`` has shape ``(N, N, N, 3)`` and is indexed ``table[b, g, r, channel]``. Flattened
  in C order this is the ``.cube`` row order: red varies fastest, blue slowest.
- Node ``i`` of an axis sits at ``domain[0] + i / (N - 1) * (domain[1] - domain[0])``.
- ``domain`` has shape ``(2, 3)``: row 0 the per-channel minimum, row 1 the maximum.
- Inputs outside a domain are clamped to it, as every ``.cube`` reader does.
- A shaper maps each channel through its own 1D table (linear interpolation) before the 3D table.
- A 1D-only LUT (``LUT_1D_SIZE`` without ``LUT_3D_SIZE``) has a shaper and ``table=None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

MIN_3D_SIZE, MAX_3D_SIZE = 2, 256
MIN_1D_SIZE, MAX_1D_SIZE = 2, 65536

INTERPOLATIONS = ("trilinear", "tetrahedral")
"""How a 3D table is interpolated between nodes (the shaper is always linear)."""

UNIT_DOMAIN = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])

SMALLEST_SPAN = float(np.finfo(np.float64).tiny)
"""The narrowest domain span (max - min): the smallest normal float64. A subnormal span, or one
that overflows to infinity, would make every node position or interpolation weight 0, inf or NaN."""


def _as_domain(domain) -> np.ndarray:
    d = np.array(UNIT_DOMAIN if domain is None else domain, dtype=np.float64)
    if d.shape == (2,):
        d = np.repeat(d[:, None], 3, axis=1)
    if d.shape != (2, 3):
        raise ValueError(f"a domain has shape (2, 3) or (2,), not {d.shape}")
    if not np.all(d[1] > d[0]):
        raise ValueError(f"a domain's maximum must exceed its minimum in every channel, got {d.tolist()}")
    with np.errstate(over="ignore"):
        span = d[1] - d[0]
    if not np.all(np.isfinite(span) & (span >= SMALLEST_SPAN)):
        raise ValueError(
            f"a domain's span (max - min) must be a finite number of at least {SMALLEST_SPAN:.1e} "
            f"in every channel, got {d.tolist()}"
        )
    return d


def grid(size: int, domain=None) -> np.ndarray:
    """The input colour of every node of a ``size``^3 lattice, shape ``(N, N, N, 3)``, float64."""
    d = _as_domain(domain)
    axes = [np.linspace(d[0, c], d[1, c], size) for c in range(3)]
    b, g, r = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return np.stack([r, g, b], axis=-1)


@dataclass(frozen=True, eq=False)
class Shaper:
    """A per-channel 1D LUT: ``table`` of shape ``(M, 3)`` over ``domain`` of shape ``(2, 3)``."""

    table: np.ndarray
    domain: np.ndarray = field(default_factory=lambda: UNIT_DOMAIN.copy())

    def __post_init__(self):
        table = np.ascontiguousarray(self.table, dtype=np.float64)
        if table.ndim != 2 or table.shape[1] != 3 or not MIN_1D_SIZE <= table.shape[0] <= MAX_1D_SIZE:
            raise ValueError(f"a shaper table has shape (M, 3) with M in 2..65536, not {table.shape}")
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "domain", _as_domain(self.domain))

    @property
    def size(self) -> int:
        return self.table.shape[0]

    @classmethod
    def identity(cls, size: int, domain=None) -> Shaper:
        d = _as_domain(domain)
        return cls(np.linspace(d[0], d[1], size), d)


@dataclass(frozen=True, eq=False)
class LUT:
    """A colour transform as a ``.cube`` file describes it (see the module docstring).

    Attributes:
        table: ``(N, N, N, 3)`` float64, indexed ``[b, g, r, channel]``; ``None`` for a 1D-only LUT.
        domain: ``(2, 3)`` input range of the 3D table (after the shaper, if any).
        shaper: optional per-channel 1D table applied first.
        title: the file's TITLE, if any.
        comments: comment lines, without the leading ``#``.
    """

    table: np.ndarray | None
    domain: np.ndarray = field(default_factory=lambda: UNIT_DOMAIN.copy())
    shaper: Shaper | None = None
    title: str | None = None
    comments: tuple[str, ...] = ()

    def __post_init__(self):
        if self.table is None:
            if self.shaper is None:
                raise ValueError("a LUT needs a 3D table, a shaper, or both")
        else:
            table = np.ascontiguousarray(self.table, dtype=np.float64)
            n = table.shape[0]
            if table.shape != (n, n, n, 3) or not MIN_3D_SIZE <= n <= MAX_3D_SIZE:
                raise ValueError(f"a 3D table has shape (N, N, N, 3) with N in 2..256, not {table.shape}")
            object.__setattr__(self, "table", table)
        object.__setattr__(self, "domain", _as_domain(self.domain))
        object.__setattr__(self, "comments", tuple(self.comments))

    @classmethod
    def identity(cls, size: int, domain=None, title: str | None = None) -> LUT:
        """The LUT that returns its input (within the domain) at ``size``^3 nodes."""
        return cls(grid(size, domain), domain, title=title)

    @property
    def size(self) -> int | None:
        """N of the 3D table, or ``None`` for a 1D-only LUT."""
        return None if self.table is None else self.table.shape[0]

    @property
    def input_domain(self) -> np.ndarray:
        """The ``(2, 3)`` range of inputs the LUT distinguishes: the shaper's if any, else the table's."""
        return self.shaper.domain if self.shaper is not None else self.domain

    def is_identity(self, atol: float = 1e-6) -> bool:
        """Whether the LUT returns its input everywhere inside its input domain (to ``atol``).

        Compares the table one blue plane at a time, so it needs no second table in memory.
        """
        shaper_ok = self.shaper is None or _close(
            self.shaper.table, Shaper.identity(self.shaper.size, self.shaper.domain).table, atol
        )
        if self.table is None or not shaper_ok:
            return shaper_ok
        if self.shaper is not None and not _close(self.shaper.domain, self.domain, atol):
            return False
        d, n = self.domain, self.size
        red, green, blue = (np.linspace(d[0, c], d[1, c], n) for c in range(3))
        for b in range(n):
            plane = self.table[b]  # [g, r, channel]
            if not (
                _close(plane[..., 0], red[None, :], atol)
                and _close(plane[..., 1], green[:, None], atol)
                and _close(plane[..., 2], blue[b], atol)
            ):
                return False
        return True

    def with_table(self, table: np.ndarray) -> LUT:
        """A copy with another 3D table of the same layout."""
        return replace(self, table=table)


def _close(a, b, atol: float) -> bool:
    """``np.allclose(a, b, rtol=0, atol=atol)`` without overflow warnings for huge values."""
    with np.errstate(all="ignore"):
        return bool(np.all(np.abs(np.subtract(a, b)) <= atol))
