"""Plain float64 NumPy references for applying LUTs, and sample LUTs to test appliers with.

Written for clarity, not speed, and independently of the kernels under test: the shaper uses
``np.interp``, trilinear interpolation sums the 8 corners of a cell with their weights, tetrahedral
interpolation picks the tetrahedron by explicit case analysis and finds the weights by solving for
barycentric coordinates. Colours are ``(P, 3)`` float64 arrays; tables follow :mod:`lutgen.lut`
(``table[b, g, r, c]``).
"""

from __future__ import annotations

import itertools

import warnings
from pathlib import Path

import numpy as np
import PyOpenColorIO as ocio

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # colour warns that SciPy and Matplotlib are missing
    import colour

from lutgen.lut import LUT, UNIT_DOMAIN, Shaper, grid

# ------------------------------------------------------------------------------------------------
# References
# ------------------------------------------------------------------------------------------------


def shaper_reference(x: np.ndarray, table: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Each channel of ``x`` ``(P, 3)`` through its column of ``table`` ``(M, 3)`` over ``domain`` ``(2, 3)``.

    ``np.interp`` clamps to the first/last node outside the nodes' range, which is the clamping rule.
    """
    out = np.empty_like(x, dtype=np.float64)
    for c in range(3):
        nodes = np.linspace(domain[0, c], domain[1, c], table.shape[0])
        out[:, c] = np.interp(x[:, c], nodes, table[:, c])
    return out


def _cells(x: np.ndarray, table: np.ndarray, domain: np.ndarray):
    """Per-pixel cell corner ``(P, 3)`` integer ``(r, g, b)`` and fractions ``(P, 3)`` in the table's grid."""
    n = table.shape[0]
    lo, hi = domain[0], domain[1]
    u = (np.clip(x, lo, hi) - lo) / (hi - lo) * (n - 1)
    corner = np.clip(np.floor(u), 0, n - 2).astype(int)
    return corner, u - corner


def _node(table: np.ndarray, corner: np.ndarray, step) -> np.ndarray:
    """Values ``(P, 3)`` of the nodes at ``corner + step`` (``step`` an ``(r, g, b)`` offset, scalar or per pixel)."""
    rgb = corner + np.asarray(step)
    return table[rgb[:, 2], rgb[:, 1], rgb[:, 0]]


def trilinear_reference(x: np.ndarray, table: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Trilinear interpolation: the sum over the 8 corners of each cell of corner value times weight."""
    corner, f = _cells(x, table, domain)
    out = np.zeros_like(f)
    for step in itertools.product((0, 1), repeat=3):
        weight = np.ones(len(x))
        for axis in range(3):
            weight *= f[:, axis] if step[axis] else 1.0 - f[:, axis]
        out += weight[:, None] * _node(table, corner, step)
    return out


# The 6 tetrahedra of the unit cell, each as its vertices from (0,0,0) to (1,1,1) in (r, g, b),
# and the condition on the fractions (fr, fg, fb) for a point to lie in it.
_TETRAHEDRA = (
    (lambda r, g, b: (r >= g) & (g >= b), [(0, 0, 0), (1, 0, 0), (1, 1, 0), (1, 1, 1)]),
    (lambda r, g, b: (r >= b) & (b >= g), [(0, 0, 0), (1, 0, 0), (1, 0, 1), (1, 1, 1)]),
    (lambda r, g, b: (b >= r) & (r >= g), [(0, 0, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1)]),
    (lambda r, g, b: (b >= g) & (g >= r), [(0, 0, 0), (0, 0, 1), (0, 1, 1), (1, 1, 1)]),
    (lambda r, g, b: (g >= b) & (b >= r), [(0, 0, 0), (0, 1, 0), (0, 1, 1), (1, 1, 1)]),
    (lambda r, g, b: (g >= r) & (r >= b), [(0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 1, 1)]),
)


def tetrahedral_reference(x: np.ndarray, table: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Tetrahedral interpolation: barycentric coordinates in the tetrahedron of the cell holding the point."""
    corner, f = _cells(x, table, domain)
    out = np.full_like(f, np.nan)
    done = np.zeros(len(x), dtype=bool)
    for inside, vertices in _TETRAHEDRA:
        mask = inside(f[:, 0], f[:, 1], f[:, 2]) & ~done
        if not mask.any():
            continue
        done |= mask
        # Solve [v0 v1 v2 v3; 1 1 1 1] w = [f; 1] for the weights w of the 4 vertices.
        system = np.vstack([np.array(vertices, dtype=float).T, np.ones(4)])
        rhs = np.hstack([f[mask], np.ones((mask.sum(), 1))])
        weights = np.linalg.solve(system, rhs.T).T  # (p, 4)
        sub = corner[mask]
        out[mask] = sum(weights[:, k, None] * _node(table, sub, vertices[k]) for k in range(4))
    return out


def apply_reference(x: np.ndarray, lut: LUT, interpolation: str = "trilinear", strength: float = 1.0) -> np.ndarray:
    """``lut`` applied to float colours ``x`` ``(..., 3)``: shaper, 3D table, blend with ``strength``; float64."""
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape
    flat = x.reshape(-1, 3)
    y = flat
    if lut.shaper is not None:
        y = shaper_reference(y, lut.shaper.table, lut.shaper.domain)
    if lut.table is not None:
        interpolate = trilinear_reference if interpolation == "trilinear" else tetrahedral_reference
        y = interpolate(y, lut.table, lut.domain)
    return (flat + strength * (y - flat)).reshape(shape)


def apply_reference_codes(codes: np.ndarray, lut: LUT, interpolation: str = "trilinear",
                          strength: float = 1.0) -> np.ndarray:
    """``lut`` applied to integer codes (uint8 or uint16), as float64 code values before rounding.

    The result is clipped to the code range but not rounded, so a correct applier is within 0.5 of it.
    """
    maxv = np.iinfo(codes.dtype).max
    y = apply_reference(codes.astype(np.float64) / maxv, lut, interpolation, strength)
    return np.clip(y * maxv, 0, maxv)


# ------------------------------------------------------------------------------------------------
# Sample LUTs
# ------------------------------------------------------------------------------------------------


def _domain(domain) -> np.ndarray:
    return UNIT_DOMAIN.copy() if domain is None else np.asarray(domain, dtype=np.float64).reshape(2, 3)


def smooth_random_lut(size: int, rng: np.random.Generator, domain=None) -> LUT:
    """The identity plus a smooth random warp (sums of low-frequency sines), outputs roughly in the domain."""
    g = grid(size, domain)
    d = _domain(domain)
    unit = (g - d[0]) / (d[1] - d[0])
    warp = np.zeros_like(unit)
    for _ in range(3):
        freq = rng.uniform(0.5, 2.0, size=(3, 3))
        phase = rng.uniform(0, 2 * np.pi, size=3)
        amp = rng.uniform(0.02, 0.08, size=3)
        warp += amp * np.sin(unit @ freq * np.pi + phase)
    return LUT(d[0] + (unit + warp) * (d[1] - d[0]), domain)


def nonlinear_lut(size: int, rng: np.random.Generator, domain=None) -> LUT:
    """A strongly nonlinear table: node values uniform random in ``[-0.25, 1.25]`` of the domain."""
    d = _domain(domain)
    unit = rng.uniform(-0.25, 1.25, size=(size, size, size, 3))
    return LUT(d[0] + unit * (d[1] - d[0]), domain)


def random_shaper(size: int, rng: np.random.Generator, domain=None, out_range=(0.0, 1.0)) -> Shaper:
    """A monotonic random per-channel curve over ``domain`` with outputs spanning ``out_range``."""
    steps = rng.uniform(0.2, 1.0, size=(size - 1, 3))
    curve = np.vstack([np.zeros(3), np.cumsum(steps, axis=0)])
    curve /= curve[-1]
    lo, hi = out_range
    return Shaper(lo + curve * (hi - lo), domain)


def random_colours(count: int, rng: np.random.Generator, domain=None, margin: float = 0.2) -> np.ndarray:
    """``(count, 3)`` float64 colours uniform over ``domain`` widened by ``margin`` of its width on each side."""
    d = _domain(domain)
    width = d[1] - d[0]
    return rng.uniform(d[0] - margin * width, d[1] + margin * width, size=(count, 3))


def colour_apply(path: Path, x: np.ndarray) -> np.ndarray:
    """colour-science's reading and application of the file, with 1D tables clamped."""
    clamp = {"extrapolator_kwargs": {"method": "Constant"}}
    loaded = colour.read_LUT(str(path))
    if isinstance(loaded, colour.LUTSequence):
        return loaded.apply(x, LUT3x1D=clamp)
    if isinstance(loaded, colour.LUT3x1D):
        return loaded.apply(x, **clamp)
    return loaded.apply(x)


def ocio_apply(path: Path, x: np.ndarray) -> np.ndarray:
    """OpenColorIO's reading and (float32, linear) application of the file."""
    ocio.ClearAllCaches()
    transform = ocio.FileTransform(src=str(path), interpolation=ocio.INTERP_LINEAR)
    processor = ocio.Config.CreateRaw().getProcessor(transform).getDefaultCPUProcessor()
    pixels = np.ascontiguousarray(x, dtype=np.float32).copy()
    processor.applyRGB(pixels)
    return pixels.astype(np.float64)
