"""Evaluating and resampling LUTs in float64 NumPy: the one place the LUT toolbox samples a LUT.

:func:`evaluate` computes exactly what :func:`lutgen.color.cpu.apply_lut_array` computes (shaper with
linear interpolation, inputs clamped to each domain, NaN taken as the domain's minimum, trilinear or
tetrahedral 3D interpolation) but in float64 for inputs of any shape, so that composing, inverting
and comparing LUTs adds no rounding of its own. :func:`resample` samples any LUT on a plain lattice,
:func:`dense_sample` and :func:`compare` measure how far two transforms are apart, :func:`fidelity`
gives that as one PSNR. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lutgen.errors import OptionError
from lutgen.lut import INTERPOLATIONS, LUT, MAX_3D_SIZE, MIN_3D_SIZE, grid

CHUNK = 1 << 18
"""Colours interpolated per step: bounds the temporary memory of :func:`evaluate` to a few tens of MB."""

DENSE_SAMPLES = 1 << 18
"""Colours in the default dense sample of an input domain (:func:`dense_sample`)."""


def check_interpolation(interpolation: str) -> str:
    """``interpolation`` if it is one of :data:`lutgen.lut.INTERPOLATIONS`, else an :class:`OptionError`."""
    if interpolation not in INTERPOLATIONS:
        raise OptionError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}")
    return interpolation


def check_size(size: int, option: str = "--size") -> int:
    """``size`` if it is a valid 3D lattice size (2..256), else an :class:`OptionError` naming ``option``."""
    if not MIN_3D_SIZE <= size <= MAX_3D_SIZE:
        raise OptionError(f"{option} must be from {MIN_3D_SIZE} to {MAX_3D_SIZE}, not {size}")
    return size


def clamped(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``x`` ``(P, 3)`` clamped per channel to ``[lo, hi]``, NaN mapped to ``lo`` (as the CPU kernels do)."""
    return np.where(x > lo, np.minimum(x, hi), lo)


def shaped(x: np.ndarray, table: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Each channel of ``x`` ``(P, 3)`` through the 1D ``table`` ``(M, 3)`` over ``domain`` ``(2, 3)``."""
    return _interpolate_1d(clamped(x, domain[0], domain[1]), table, domain)


def _interpolate_1d(x: np.ndarray, table: np.ndarray, domain: np.ndarray) -> np.ndarray:
    m = table.shape[0]
    out = np.empty_like(x)
    for c in range(3):
        i0, f = cells(x[:, c], domain[0, c], domain[1, c], m)
        out[:, c] = table[i0, c] + f * (table[i0 + 1, c] - table[i0, c])
    return out


def cells(x: np.ndarray, lo: float, hi: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell index ``(P,)`` in ``0..n-2`` and fraction ``(P,)`` of clamped values ``x`` on an ``n``-node axis."""
    u = (x - lo) * ((n - 1) / (hi - lo))
    i0 = np.clip(np.floor(u), 0, n - 2).astype(np.intp)
    return i0, u - i0


def _interpolate_3d(x: np.ndarray, table: np.ndarray, domain: np.ndarray, tetrahedral: bool) -> np.ndarray:
    """The 3D ``table`` ``(N, N, N, 3)`` ``[b, g, r, c]`` over ``domain`` at clamped colours ``x`` ``(P, 3)``."""
    n = table.shape[0]
    flat = table.reshape(-1, 3)
    x = clamped(x, domain[0], domain[1])
    index = np.zeros(x.shape[0], dtype=np.intp)
    frac = np.empty_like(x)
    strides = (1, n, n * n)  # red, green, blue steps in the flattened table
    for c in range(3):
        i0, frac[:, c] = cells(x[:, c], domain[0, c], domain[1, c], n)
        index += i0 * strides[c]
    if tetrahedral:
        return _tetrahedral(flat, index, frac, strides)
    return _trilinear(flat, index, frac, strides)


def _trilinear(flat, index, frac, strides) -> np.ndarray:
    """Along red on the cell's 4 red edges, then green, then blue: each step ``(1 - f) * a + f * b``, in the
    order of :func:`lutgen.color.cpu_numba._trilinear_channel`, so that both give the same float64 bits."""
    r, g, b = strides
    keep = 1.0 - frac

    def mix(a, b_, axis):
        return keep[:, axis, None] * a + frac[:, axis, None] * b_

    def red(offset):
        return mix(flat[index + offset], flat[index + offset + r], 0)

    near = mix(red(0), red(g), 1)
    far = mix(red(b), red(g + b), 1)
    return mix(near, far, 2)


def _tetrahedral(flat, index, frac, strides) -> np.ndarray:
    """The tetrahedron from corner 000 along the axes in decreasing order of fraction, to 111.

    Ties give zero weight to the corner they would choose between, so the order among equal fractions
    does not change the result.
    """
    order = np.argsort(-frac, axis=1, kind="stable")
    f = np.take_along_axis(frac, order, axis=1)
    step = np.asarray(strides)[order]
    c1 = index + step[:, 0]
    c2 = c1 + step[:, 1]
    c3 = index + sum(strides)
    return ((1.0 - f[:, :1]) * flat[index] + (f[:, :1] - f[:, 1:2]) * flat[c1]
            + (f[:, 1:2] - f[:, 2:]) * flat[c2] + f[:, 2:] * flat[c3])


def evaluate(lut: LUT, rgb, interpolation: str = "trilinear") -> np.ndarray:
    """``lut`` applied to colours ``rgb`` of shape ``(..., 3)``; returns float64 ``(..., 3)``.

    The shaper (if any) first, linear, input clamped to its domain; then the 3D table (if any),
    input clamped to the table's domain. Works through the colours in chunks of :data:`CHUNK`.
    """
    check_interpolation(interpolation)
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim == 0 or rgb.shape[-1] != 3:
        raise ValueError(f"colours must have shape (..., 3), not {rgb.shape}")
    flat = rgb.reshape(-1, 3)
    out = np.empty_like(flat)
    tetrahedral = interpolation == "tetrahedral"
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, flat.shape[0], CHUNK):
            x = flat[start:start + CHUNK]
            if lut.shaper is not None:
                x = shaped(x, lut.shaper.table, lut.shaper.domain)
            if lut.table is not None:
                x = _interpolate_3d(x, lut.table, lut.domain, tetrahedral)
            out[start:start + CHUNK] = x
    return out.reshape(rgb.shape)


def table_only(lut: LUT) -> LUT:
    """``lut`` without its shaper (the 3D table alone over its domain); ``lut`` itself if it has none."""
    if lut.shaper is None or lut.table is None:
        return lut
    return LUT(lut.table, lut.domain, title=lut.title, comments=lut.comments)


def resample(lut: LUT, size: int, domain=None, interpolation: str = "trilinear") -> LUT:
    """The plain ``size``^3 lattice (no shaper) sampled from ``lut`` over ``domain``.

    ``domain`` ``(2, 3)`` defaults to the LUT's input domain (the shaper's, if it has one). Title and
    comments are kept.
    """
    check_size(size)
    domain = lut.input_domain if domain is None else domain
    table = evaluate(lut, grid(size, domain), interpolation)
    return LUT(table, domain, title=lut.title, comments=lut.comments)


def dense_sample(domain, count: int = DENSE_SAMPLES, seed: int = 0) -> np.ndarray:
    """``(count, 3)`` colours spread over ``domain`` ``(2, 3)``: the corners, the grey axis and uniform random colours.

    Fixed by ``seed``, so the same call always measures on the same colours.
    """
    d = np.asarray(domain, dtype=np.float64)
    rng = np.random.default_rng(seed)
    corners = np.array([[(k >> c) & 1 for c in range(3)] for k in range(8)], dtype=np.float64)
    grey = np.repeat(np.linspace(0.0, 1.0, 256)[:, None], 3, axis=1)
    unit = np.concatenate([corners, grey, rng.random((max(count - 264, 0), 3))])[:count]
    return d[0] + unit * (d[1] - d[0])


@dataclass(frozen=True)
class Difference:
    """How far two sets of colours are apart, in 8-bit code values (1 = 1/255) and as a PSNR.

    The PSNR takes 1.0 as the peak (the 0..1 signal range): ``10 log10(1 / mean squared error)``,
    infinite when the colours are equal.
    """

    max_code: float
    mean_code: float
    psnr_db: float

    def describe(self) -> str:
        """One line: ``max X, mean Y 8-bit code values, PSNR Z dB``."""
        psnr = "inf" if np.isinf(self.psnr_db) else f"{self.psnr_db:.2f}"
        return f"max {self.max_code:.4g}, mean {self.mean_code:.4g} 8-bit code values, PSNR {psnr} dB"

    def as_dict(self) -> dict:
        return {"max_code": self.max_code, "mean_code": self.mean_code,
                "psnr_db": None if np.isinf(self.psnr_db) else self.psnr_db}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of ``a`` against ``b`` (same shape), peak 1.0; ``inf`` when they are equal."""
    with np.errstate(over="ignore", invalid="ignore"):
        mse = float(np.mean(np.square(np.subtract(a, b, dtype=np.float64))))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(1.0 / mse))


def compare(a: np.ndarray, b: np.ndarray) -> Difference:
    """The :class:`Difference` between colours ``a`` and ``b`` (same shape ``(..., 3)``), per channel value."""
    with np.errstate(over="ignore", invalid="ignore"):
        error = np.abs(np.subtract(a, b, dtype=np.float64)) * 255.0
    return Difference(float(error.max(initial=0.0)), float(error.mean()) if error.size else 0.0, psnr(a, b))


def fidelity(source: LUT, target: LUT, samples: int = DENSE_SAMPLES, interpolation: str = "trilinear") -> float:
    """PSNR (dB, peak 1.0) of ``target`` against ``source`` over a dense sample of the source's input domain."""
    x = dense_sample(source.input_domain, samples)
    return psnr(evaluate(target, x, interpolation), evaluate(source, x, interpolation))
