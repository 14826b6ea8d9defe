"""Applying a :class:`~lutgen.lut.LUT` to pixel arrays on the CPU with Numba.

The one entry point is :func:`apply_lut_array`. Every colour is computed in float64:

1. integer input is normalised (``code / 255`` or ``code / 65535``);
2. the shaper, if any, maps each channel through its 1D table (linear interpolation, input clamped
   to the shaper's domain);
3. the 3D table, if any, is interpolated (trilinear or tetrahedral, input clamped to the table's domain);
4. the result is blended with the input: ``out = in + strength * (LUT(in) - in)``;
5. integer output is rounded to the nearest code value (halves up) and clipped to the dtype's range;
   float output keeps the input's dtype and is not clipped.

For integer images the per-channel steps 1-2 and the table coordinates (cell index and fraction)
depend on the code value alone, so they are tabulated once (256 or 65536 entries per channel) and
each pixel costs only the 3D interpolation. For 8-bit trilinear grading the table is also interpolated
along red once for each of the 256 red codes, so that a pixel interpolates only along green and blue
(the same operations in the same order). A 1D-only LUT on integer images is a plain per-channel
code-to-code lookup.

Float inputs outside a domain are clamped to it (NaN counts as the domain's minimum).

The kernels run in parallel over pixels on a flattened view of the input, so a call needs memory
for its output only (plus a copy of the input if that is not C-contiguous). Compiled kernels are
cached on disk (``cache=True``): only the first call on a machine pays for compilation. This module
does not import torch.
"""

from __future__ import annotations

import contextlib
import math
import sys

import numpy as np
from numba import njit, prange

from lutgen.errors import OptionError
from lutgen.lut import INTERPOLATIONS, LUT, Shaper, grid


_INTEGER_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# error_model="numpy": a division never checks its divisor (none can be 0 here); Python's error model
# made the serial loops below three times slower than the same loop under prange.
# fastmath={"contract"} lets a multiply and an add be one fused operation (one rounding instead of
# two, so never less accurate) and nothing else of fast-math: a quarter of the time of the 8-bit loops.
# On a processor without FMA the last bit of a sum may differ, which moves a code only at an exact tie.
_JIT = dict(cache=True, fastmath={"contract"}, nogil=True, error_model="numpy")
# The float kernels fuse nothing: they give the same bits as lutgen.color.sampling.evaluate (NumPy),
# which the toolbox samples LUTs with.
_JIT_EXACT = dict(_JIT, fastmath=False)


# --------------------------------------------------------------------------------------------
# Scalar helpers (inlined into the kernels)
# --------------------------------------------------------------------------------------------


@njit(inline="always", **_JIT)
def _clamp(x, lo, hi):
    """``x`` clamped to ``[lo, hi]``; NaN maps to ``lo`` so that it can never index out of bounds."""
    if not x > lo:
        return lo
    if x > hi:
        return hi
    return x


@njit(inline="always", **_JIT)
def _cell(x, lo, scale, n):
    """Cell index ``i0`` in ``0..n-2`` and fraction ``f`` in ``[0, 1]`` of ``x`` on an ``n``-node axis.

    ``x`` must already be clamped to the axis domain starting at ``lo``; ``scale = (n - 1) / (hi - lo)``.
    """
    u = (x - lo) * scale
    i0 = int(math.floor(u))
    if i0 > n - 2:
        i0 = n - 2
    if i0 < 0:
        i0 = 0
    return i0, u - i0


@njit(inline="always", **_JIT)
def _shape(x, shaper, lo, hi, scale, c):
    """Channel ``c`` of the shaper ``(M, 3)`` at ``x``: linear interpolation, input clamped to ``[lo, hi]``."""
    j, w = _cell(_clamp(x, lo, hi), lo, scale, shaper.shape[0])
    return shaper[j, c] + w * (shaper[j + 1, c] - shaper[j, c])


# Offsets into a flattened table are unsigned: Numba then indexes without checking for negative
# indices, which made the pixel loops twice as slow. Every offset and stride below is a uint64.
_U1, _U2, _U3 = np.uint64(1), np.uint64(2), np.uint64(3)


@njit(inline="always", **_JIT)
def _mix(a, b, f, g):
    """``g * a + f * b`` with ``g = 1 - f``: exactly ``a`` at ``f = 0`` and exactly ``b`` at ``f = 1``."""
    return g * a + f * b


@njit(inline="always", **_JIT)
def _trilinear_channel(t, q, sg, sb, fr, fg, fb, gr, gg, gb):
    """One channel of a cell interpolated trilinearly: along red on the cell's 4 red edges, then green, then blue.

    ``t`` is a ``(N, N, N, 3)`` table ``[b, g, r, c]`` flattened in C order; ``q`` is the offset of the
    channel at the cell's corner ``000``, ``sg``/``sb`` the offsets of one step in green and blue (red: 3);
    ``g* = 1 - f*``.
    """
    g0 = _mix(_mix(t[q], t[q + _U3], fr, gr), _mix(t[q + sg], t[q + sg + _U3], fr, gr), fg, gg)
    g1 = _mix(_mix(t[q + sb], t[q + sb + _U3], fr, gr), _mix(t[q + sg + sb], t[q + sg + sb + _U3], fr, gr), fg, gg)
    return _mix(g0, g1, fb, gb)


@njit(inline="always", **_JIT)
def _trilinear(t, k, sg, sb, fr, fg, fb):
    """The 3 channels interpolated trilinearly in the cell at offset ``k`` (see :func:`_trilinear_channel`)."""
    gr = 1.0 - fr
    gg = 1.0 - fg
    gb = 1.0 - fb
    return (
        _trilinear_channel(t, k, sg, sb, fr, fg, fb, gr, gg, gb),
        _trilinear_channel(t, k + _U1, sg, sb, fr, fg, fb, gr, gg, gb),
        _trilinear_channel(t, k + _U2, sg, sb, fr, fg, fb, gr, gg, gb),
    )


@njit(inline="always", **_JIT)
def _tetrahedron(fr, fg, fb, sg, sb):
    """The tetrahedron of a cell holding fractions ``(fr, fg, fb)``: offsets and weights of its corners.

    The 6 tetrahedra share the cell's diagonal ``000``-``111``; the one chosen runs from ``000`` along the
    axes in decreasing order of their fraction ``f1 >= f2 >= f3``, with weights ``1 - f1, f1 - f2, f2 - f3,
    f3`` (the scheme of ffmpeg and OpenColorIO). Returns the offsets of the 2nd and 3rd corners (the 1st
    is 0, the 4th ``3 + sg + sb``) and the 4 weights.
    """
    if fr > fg:
        if fg > fb:  # r > g > b: 000, 100, 110, 111
            return _U3, _U3 + sg, 1.0 - fr, fr - fg, fg - fb, fb
        if fr > fb:  # r > b >= g: 000, 100, 101, 111
            return _U3, _U3 + sb, 1.0 - fr, fr - fb, fb - fg, fg
        # b >= r > g: 000, 001, 101, 111
        return sb, _U3 + sb, 1.0 - fb, fb - fr, fr - fg, fg
    if fb > fg:  # b > g >= r: 000, 001, 011, 111
        return sb, sg + sb, 1.0 - fb, fb - fg, fg - fr, fr
    if fb > fr:  # g >= b > r: 000, 010, 011, 111
        return sg, sg + sb, 1.0 - fg, fg - fb, fb - fr, fr
    # g >= r >= b: 000, 010, 110, 111
    return sg, _U3 + sg, 1.0 - fg, fg - fr, fr - fb, fb


@njit(inline="always", **_JIT)
def _tetrahedral_channel(t, q, o1, o2, o3, w0, w1, w2, w3):
    """One channel in a tetrahedron: its 4 corners at offsets ``0, o1, o2, o3`` from ``q``, weighted."""
    return w0 * t[q] + w1 * t[q + o1] + w2 * t[q + o2] + w3 * t[q + o3]


@njit(inline="always", **_JIT)
def _tetrahedral(t, k, sg, sb, fr, fg, fb):
    """The 3 channels interpolated in one tetrahedron of a cell; arguments as for :func:`_trilinear`."""
    o1, o2, w0, w1, w2, w3 = _tetrahedron(fr, fg, fb, sg, sb)
    o3 = _U3 + sg + sb
    return (
        _tetrahedral_channel(t, k, o1, o2, o3, w0, w1, w2, w3),
        _tetrahedral_channel(t, k + _U1, o1, o2, o3, w0, w1, w2, w3),
        _tetrahedral_channel(t, k + _U2, o1, o2, o3, w0, w1, w2, w3),
    )


@njit(inline="always", **_JIT)
def _interpolate(t, k, sg, sb, fr, fg, fb, tetrahedral):
    """The 3 channels of the flattened table ``t`` at a point of the cell at offset ``k`` (see :func:`_trilinear`)."""
    if tetrahedral:
        return _tetrahedral(t, k, sg, sb, fr, fg, fb)
    return _trilinear(t, k, sg, sb, fr, fg, fb)


@njit(inline="always", **_JIT)
def _blend(x, y, strength):
    """``x + strength * (y - x)``, exactly ``y`` at strength 1."""
    if strength == 1.0:
        return y
    return x + strength * (y - x)


@njit(inline="always", **_JIT)
def _to_code(v, maxv):
    """A normalised value as the nearest code value in ``0..maxv`` (halves round up; NaN gives 0).

    ``maxv`` is a float (255.0 or 65535.0); the clamps are selects, not branches, so the pixel loops
    stay branch-free.
    """
    v = v * maxv
    v = v if v > 0.0 else 0.0
    v = v if v < maxv else maxv
    return int(v + 0.5)


# --------------------------------------------------------------------------------------------
# Per-code tables for integer images
# --------------------------------------------------------------------------------------------


@njit(**_JIT)
def _shaped_codes(maxv, shaper, shaper_lo, shaper_hi, has_shaper):
    """``(maxv + 1, 3)`` float64: every code value normalised and passed through the shaper, if any."""
    out = np.empty((maxv + 1, 3))
    for c in range(3):
        scale = (shaper.shape[0] - 1) / (shaper_hi[c] - shaper_lo[c])
        for v in range(maxv + 1):
            x = v / maxv
            out[v, c] = _shape(x, shaper, shaper_lo[c], shaper_hi[c], scale, c) if has_shaper else x
    return out


@njit(**_JIT)
def _code_cells(shaped, lo, hi, n):
    """Cells of shaped values ``(K, 3)`` on an ``n``-node table: offsets ``(3, K)`` uint64, fractions ``(3, K)``.

    The offset is the cell index times the channel's stride in the flattened table (3, 3n, 3n^2 for
    red, green, blue), so that a pixel's cell starts at the sum of its three offsets. Channel-major,
    so that each channel's lookups are one contiguous row.
    """
    k = shaped.shape[0]
    offset = np.empty((3, k), dtype=np.uint64)
    frac = np.empty((3, k))
    for c in range(3):
        scale = (n - 1) / (hi[c] - lo[c])
        stride = 3 * n**c
        for v in range(k):
            i0, f = _cell(_clamp(shaped[v, c], lo[c], hi[c]), lo[c], scale, n)
            offset[c, v] = i0 * stride
            frac[c, v] = f
    return offset, frac


@njit(**_JIT)
def _fill_code_lookup_1d(lookup, shaped, maxv, strength):
    """Fill ``lookup`` ``(maxv + 1, 3)``, the code-to-code table of a 1D-only LUT blended with ``strength``."""
    top = np.float64(maxv)
    for c in range(3):
        for v in range(maxv + 1):
            lookup[v, c] = _to_code(_blend(v / top, shaped[v, c], strength), top)


# --------------------------------------------------------------------------------------------
# Kernels over flattened pixels (P, 3): one pixel's work, then a parallel and a serial loop over it
# --------------------------------------------------------------------------------------------


@njit(inline="always", **_JIT)
def _grade_3d(pixels, out, p, offset, frac, t, sg, sb, maxv, strength, tetrahedral):
    """Pixel ``p`` of integer ``pixels`` graded through the 3D table into ``out``.

    ``offset``/``frac`` ``(3, maxv + 1)`` are the per-code cells of :func:`_code_cells`, ``t`` the flattened
    table, ``sg``/``sb`` its green and blue strides (uint64), ``maxv`` the largest code as a float. The
    blend with the input is ``(1 - strength) * in + strength * LUT(in)``, skipped at strength 1 (a
    loop-invariant test, which the compiler takes out of the loop); it gives the input's own codes at
    strength 0. The input is normalised by a multiplication, not a division; it is then off by at most
    an ulp. The channels are computed one at a time (a quarter faster than all three at once).
    """
    vr, vg, vb = pixels[p, 0], pixels[p, 1], pixels[p, 2]
    k = offset[0, vr] + offset[1, vg] + offset[2, vb]
    fr, fg, fb = frac[0, vr], frac[1, vg], frac[2, vb]
    if tetrahedral:
        o1, o2, w0, w1, w2, w3 = _tetrahedron(fr, fg, fb, sg, sb)
        o3 = _U3 + sg + sb
    else:
        gr, gg, gb = 1.0 - fr, 1.0 - fg, 1.0 - fb
    for c in range(3):
        q = k + np.uint64(c)
        if tetrahedral:
            y = _tetrahedral_channel(t, q, o1, o2, o3, w0, w1, w2, w3)
        else:
            y = _trilinear_channel(t, q, sg, sb, fr, fg, fb, gr, gg, gb)
        if strength != 1.0:
            y = _mix(pixels[p, c] * (1.0 / maxv), y, strength, 1.0 - strength)
        out[p, c] = _to_code(y, maxv)


@njit(parallel=True, **_JIT)
def _apply_codes_3d(pixels, out, offset, frac, t, n, maxv, strength, tetrahedral):
    """3D table on integer pixels ``(P, 3)`` on every kernel thread (see :func:`_grade_3d`)."""
    sg = np.uint64(3 * n)
    sb = np.uint64(3 * n * n)
    for p in prange(pixels.shape[0]):
        _grade_3d(pixels, out, p, offset, frac, t, sg, sb, maxv, strength, tetrahedral)


@njit(**_JIT)
def _apply_codes_3d_serial(pixels, out, offset, frac, t, n, maxv, strength, tetrahedral):
    """3D table on integer pixels ``(P, 3)`` in the calling thread alone."""
    sg = np.uint64(3 * n)
    sb = np.uint64(3 * n * n)
    for p in range(pixels.shape[0]):
        _grade_3d(pixels, out, p, offset, frac, t, sg, sb, maxv, strength, tetrahedral)


# 8-bit trilinear grading reads a copy of the table already interpolated along red at each of the 256
# red codes (6.7 MB for 33 nodes): half the loads and a third of the arithmetic per pixel, the same
# operations in the same order. Larger tables than this take the general kernel.
_RED_LERPED_MAX_BYTES = 32 << 20


@njit(**_JIT)
def _red_lerped(t, n, offset, frac):
    """The ``n``-node flattened table ``t`` interpolated along red at every code: ``(n, n, K, 3)`` ``[b, g, code, c]``,
    flattened, K = 256 codes.

    Each entry mixes the two red nodes around the code as :func:`_trilinear_channel` does first;
    ``offset``/``frac`` are the per-code cells of :func:`_code_cells`.
    """
    k = offset.shape[1]
    out = np.empty(n * n * k * 3)
    for row in range(n * n):  # row = b * n + g
        for v in range(k):
            q = row * n * 3 + np.int64(offset[0, v])
            f = frac[0, v]
            for c in range(3):
                out[(row * k + v) * 3 + c] = _mix(t[q + c], t[q + 3 + c], f, 1.0 - f)
    return out


@njit(inline="always", **_JIT)
def _grade_red_lerped(pixels, out, p, rt, rows, frac, sg, sb, maxv, strength):
    """Pixel ``p`` of 8-bit ``pixels`` graded trilinearly into ``out``, from the table ``rt`` of :func:`_red_lerped`.

    ``rows`` ``(2, 256)`` uint64 holds each code's offset of its green and blue cell in ``rt``; ``sg``/``sb``
    are one green and one blue step there. Codes and blending as :func:`_grade_3d`; at strength 1 the
    blend is skipped (a loop-invariant test, which the compiler takes out of the loop).
    """
    vr = pixels[p, 0]
    k = np.uint64(vr) * _U3 + rows[0, pixels[p, 1]] + rows[1, pixels[p, 2]]
    fg = frac[1, pixels[p, 1]]
    fb = frac[2, pixels[p, 2]]
    gg = 1.0 - fg
    gb = 1.0 - fb
    for c in range(3):
        q = k + np.uint64(c)
        y = _mix(_mix(rt[q], rt[q + sg], fg, gg), _mix(rt[q + sb], rt[q + sg + sb], fg, gg), fb, gb)
        if strength != 1.0:
            y = _mix(pixels[p, c] * (1.0 / maxv), y, strength, 1.0 - strength)
        out[p, c] = _to_code(y, maxv)


@njit(parallel=True, **_JIT)
def _apply_codes_red_lerped(pixels, out, rt, rows, frac, n, maxv, strength):
    """8-bit trilinear grading of pixels ``(P, 3)`` on every kernel thread (see :func:`_grade_red_lerped`)."""
    sg = np.uint64(3 * (maxv + 1))
    sb = np.uint64(3 * (maxv + 1) * n)
    for p in prange(pixels.shape[0]):
        _grade_red_lerped(pixels, out, p, rt, rows, frac, sg, sb, maxv, strength)


@njit(**_JIT)
def _apply_codes_red_lerped_serial(pixels, out, rt, rows, frac, n, maxv, strength):
    """8-bit trilinear grading of pixels ``(P, 3)`` in the calling thread alone."""
    sg = np.uint64(3 * (maxv + 1))
    sb = np.uint64(3 * (maxv + 1) * n)
    for p in range(pixels.shape[0]):
        _grade_red_lerped(pixels, out, p, rt, rows, frac, sg, sb, maxv, strength)


@njit(parallel=True, **_JIT)
def _apply_codes_1d(pixels, out, lookup):
    """Per-channel code lookup ``(maxv + 1, 3)`` on integer pixels ``(P, 3)`` on every kernel thread."""
    for p in prange(pixels.shape[0]):
        for c in range(3):
            out[p, c] = lookup[pixels[p, c], c]


@njit(**_JIT)
def _apply_codes_1d_serial(pixels, out, lookup):
    """Per-channel code lookup ``(maxv + 1, 3)`` on integer pixels ``(P, 3)`` in the calling thread alone."""
    for p in range(pixels.shape[0]):
        for c in range(3):
            out[p, c] = lookup[pixels[p, c], c]


@njit(inline="always", **_JIT)
def _float_colour(x0, x1, x2, shaper, shaper_lo, shaper_hi, s_scale, has_shaper, t, n, lo, hi, t_scale, has_table,
                  strength, tetrahedral):
    """Shaper and/or 3D table on the float colour ``(x0, x1, x2)`` (float64), as a tuple of 3 float64.

    ``t`` is the flattened ``n``-node table; ``s_scale``/``t_scale`` the nodes per unit of each channel.
    """
    s0, s1, s2 = x0, x1, x2
    if has_shaper:
        s0 = _shape(x0, shaper, shaper_lo[0], shaper_hi[0], s_scale[0], 0)
        s1 = _shape(x1, shaper, shaper_lo[1], shaper_hi[1], s_scale[1], 1)
        s2 = _shape(x2, shaper, shaper_lo[2], shaper_hi[2], s_scale[2], 2)
    if has_table:
        ir, fr = _cell(_clamp(s0, lo[0], hi[0]), lo[0], t_scale[0], n)
        ig, fg = _cell(_clamp(s1, lo[1], hi[1]), lo[1], t_scale[1], n)
        ib, fb = _cell(_clamp(s2, lo[2], hi[2]), lo[2], t_scale[2], n)
        base = np.uint64(3 * (ir + n * (ig + n * ib)))
        s0, s1, s2 = _interpolate(t, base, np.uint64(3 * n), np.uint64(3 * n * n), fr, fg, fb, tetrahedral)
    return _blend(x0, s0, strength), _blend(x1, s1, strength), _blend(x2, s2, strength)


@njit(**_JIT)
def _axis_scales(nodes, lo, hi):
    """``(3,)`` float64: nodes per unit of each channel, ``(nodes - 1) / (hi - lo)``."""
    scale = np.empty(3)
    for c in range(3):
        scale[c] = (nodes - 1) / (hi[c] - lo[c])
    return scale


@njit(parallel=True, **_JIT_EXACT)
def _apply_float(pixels, out, shaper, shaper_lo, shaper_hi, has_shaper, table, lo, hi, has_table, strength,
                 tetrahedral):
    """Shaper and/or 3D table on float pixels ``(P, 3)`` on every kernel thread; ``out`` float32 or float64."""
    n = table.shape[0]
    t = table.ravel()
    s_scale = _axis_scales(shaper.shape[0], shaper_lo, shaper_hi)
    t_scale = _axis_scales(n, lo, hi)
    for p in prange(pixels.shape[0]):
        out[p, 0], out[p, 1], out[p, 2] = _float_colour(
            np.float64(pixels[p, 0]), np.float64(pixels[p, 1]), np.float64(pixels[p, 2]), shaper, shaper_lo,
            shaper_hi, s_scale, has_shaper, t, n, lo, hi, t_scale, has_table, strength, tetrahedral
        )


@njit(**_JIT_EXACT)
def _apply_float_serial(pixels, out, shaper, shaper_lo, shaper_hi, has_shaper, table, lo, hi, has_table, strength,
                        tetrahedral):
    """Shaper and/or 3D table on float pixels ``(P, 3)`` in the calling thread alone."""
    n = table.shape[0]
    t = table.ravel()
    s_scale = _axis_scales(shaper.shape[0], shaper_lo, shaper_hi)
    t_scale = _axis_scales(n, lo, hi)
    for p in range(pixels.shape[0]):
        out[p, 0], out[p, 1], out[p, 2] = _float_colour(
            np.float64(pixels[p, 0]), np.float64(pixels[p, 1]), np.float64(pixels[p, 2]), shaper, shaper_lo,
            shaper_hi, s_scale, has_shaper, t, n, lo, hi, t_scale, has_table, strength, tetrahedral
        )


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def apply_lut_array(
    pixels: np.ndarray,
    lut: LUT,
    interpolation: str = "trilinear",
    strength: float = 1.0,
    parallel: bool = True,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Apply ``lut`` to every colour of ``pixels`` and return the graded array, of the same shape and dtype.

    Args:
        pixels: ``(..., 3)`` RGB array, uint8, uint16, float32 or float64. Integer codes are normalised by
            255 or 65535; float values are taken as they are (the LUT clamps them to its domains).
        lut: the LUT (shaper then 3D table; either may be absent, not both).
        interpolation: ``"trilinear"`` or ``"tetrahedral"`` for the 3D table (the shaper is always linear).
        strength: blend factor, ``out = in + strength * (LUT(in) - in)``; 0 returns the input, 1 the LUT.
        parallel: spread the pixels over the kernel's threads (one per core); False keeps the work in the
            calling thread, for callers that already grade several images at once in their own threads.
        out: where to write, instead of a new array: C-contiguous, of the input's dtype and leading shape,
            with 3 channels, or 4 of which the graded colours fill the first three (the 4th is left as it
            is; Pillow keeps RGB images in that layout). It must not overlap ``pixels``.

    Returns:
        ``(..., 3)`` array of the input's dtype (a view of ``out`` when given): integers rounded to nearest
        (halves up) and clipped to the dtype's range; floats unclipped.

    Raises:
        OptionError: unknown ``interpolation`` or non-finite ``strength``.
        ValueError: ``pixels`` not of shape ``(..., 3)`` or of an unsupported dtype; ``out`` not as above.
    """
    if interpolation not in INTERPOLATIONS:
        raise OptionError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}")
    strength = float(strength)
    if not math.isfinite(strength):
        raise OptionError(f"strength must be a finite number, not {strength}")
    pixels = np.asarray(pixels)
    if pixels.ndim == 0 or pixels.shape[-1] != 3:
        raise ValueError(f"pixels must have shape (..., 3), not {pixels.shape}")
    dtype = pixels.dtype
    if dtype not in _INTEGER_MAX and dtype not in _FLOAT_DTYPES:
        raise ValueError(f"pixels must be uint8, uint16, float32 or float64, not {dtype}")

    flat = _frozen(pixels.reshape(-1, 3))
    if out is None:
        out = np.empty(pixels.shape, dtype)
    else:
        _check_out(out, pixels)
    if flat.shape[0]:
        with _kernels_loading():
            _run_kernel(flat, out.reshape(flat.shape[0], out.shape[-1]), lut, interpolation == "tetrahedral",
                        strength, parallel)
    return out if out.shape[-1] == 3 else out[..., :3]


def _check_out(out: np.ndarray, pixels: np.ndarray) -> None:
    """Raise ValueError unless ``out`` can receive ``pixels`` graded (see :func:`apply_lut_array`)."""
    if not isinstance(out, np.ndarray) or out.dtype != pixels.dtype or out.shape[:-1] != pixels.shape[:-1] \
            or out.shape[-1] not in (3, 4) or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(
            f"out must be a writable C-contiguous {pixels.dtype} array of shape {(*pixels.shape[:-1], 3)} or "
            f"{(*pixels.shape[:-1], 4)}, not {getattr(out, 'shape', type(out).__name__)}"
        )
    if np.may_share_memory(out, pixels):
        raise ValueError("out must not overlap the pixels being graded")


def _run_kernel(flat: np.ndarray, out: np.ndarray, lut: LUT, tetrahedral: bool, strength: float,
                parallel: bool) -> None:
    """Fill ``out`` ``(P, 3)`` (or the first 3 channels of ``(P, 4)``) with ``lut`` applied to ``flat`` ``(P, 3)``.

    Every array handed to a kernel is a read-only C-contiguous view, so that each kernel has one compiled
    signature per pixel dtype whatever the caller's arrays were (one cache entry to load, not several).
    """
    has_shaper = lut.shaper is not None
    shaper = _frozen(lut.shaper.table if has_shaper else np.zeros((2, 3)))
    shaper_lo, shaper_hi = (_frozen(bound) for bound in (lut.shaper.domain if has_shaper else lut.domain))
    lo, hi = (_frozen(bound) for bound in lut.domain)
    has_table = lut.table is not None
    table = _frozen(lut.table if has_table else np.zeros((2, 2, 2, 3)))

    if flat.dtype in _INTEGER_MAX:
        maxv = _INTEGER_MAX[flat.dtype]
        shaped = _frozen(_shaped_codes(maxv, shaper, shaper_lo, shaper_hi, has_shaper))
        if has_table:
            n = table.shape[0]
            offset, frac = (_frozen(a) for a in _code_cells(shaped, lo, hi, n))
            if maxv == 255 and not tetrahedral and n * n * 256 * 3 * 8 <= _RED_LERPED_MAX_BYTES:
                rt = _frozen(_red_lerped(table.reshape(-1), n, offset, frac))
                rows = _frozen(np.stack([offset[1] // np.uint64(3 * n), offset[2] // np.uint64(3 * n * n)])
                               * np.uint64(3 * 256) * np.array([[1], [n]], np.uint64))
                kernel = _apply_codes_red_lerped if parallel else _apply_codes_red_lerped_serial
                kernel(flat, out, rt, rows, frac, n, float(maxv), strength)
            else:
                kernel = _apply_codes_3d if parallel else _apply_codes_3d_serial
                kernel(flat, out, offset, frac, table.reshape(-1), n, float(maxv), strength, tetrahedral)
        else:
            lookup = np.empty((maxv + 1, 3), dtype=flat.dtype)
            _fill_code_lookup_1d(lookup, shaped, maxv, strength)
            (_apply_codes_1d if parallel else _apply_codes_1d_serial)(flat, out, _frozen(lookup))
    else:
        kernel = _apply_float if parallel else _apply_float_serial
        kernel(flat, out, shaper, shaper_lo, shaper_hi, has_shaper, table, lo, hi, has_table, strength, tetrahedral)


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only C-contiguous view of ``array`` (a copy only when it is not C-contiguous)."""
    view = np.ascontiguousarray(array).view()
    view.flags.writeable = False
    return view


def warm_up(dtype, interpolation: str = "trilinear", parallel: bool = True, has_shaper: bool = False) -> None:
    """Load (or, the first time on a machine, compile) the kernels that images of ``dtype`` will need.

    Grading one pixel with a tiny LUT of the same kind (3D table, with or without a shaper) does it;
    a caller can so prepare the kernels in a thread while it decodes the image.
    """
    identity = LUT(grid(2), shaper=Shaper.identity(2) if has_shaper else None)
    apply_lut_array(np.zeros((1, 3), dtype), identity, interpolation, 1.0, parallel)


_kernels_loaded = False


@contextlib.contextmanager
def _kernels_loading():
    """Meanwhile, the first time in a process, keep Numba from importing SciPy's linear algebra.

    Numba's CPU target, set up when the first kernel is loaded, imports ``scipy.linalg`` only to see
    whether its BLAS is there for ``np.dot``; lutgen's kernels use no BLAS, and that import costs a
    tenth of a second of every ``lutgen infer``. When ``scipy.linalg`` is not imported yet, it is marked
    missing until the first kernel is loaded; a later ``import scipy.linalg`` works as usual.
    """
    global _kernels_loaded
    if _kernels_loaded or _LINALG in sys.modules:
        _kernels_loaded = True
        yield
        return
    sys.modules[_LINALG] = None
    try:
        yield
    finally:
        if _LINALG in sys.modules and sys.modules[_LINALG] is None:
            del sys.modules[_LINALG]
        _kernels_loaded = True


_LINALG = "scipy.linalg"
