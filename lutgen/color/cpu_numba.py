"""The Numba kernels of :mod:`lutgen.color.cpu`: every case but 8-bit trilinear grading.

Integer pixels through a 3D table (16-bit, tetrahedral, or a table too large for the 8-bit
red-interpolated table), integer pixels through a 1D-only LUT, and float pixels. :mod:`lutgen.color.cpu`
makes the per-code tables of integer images and imports this module only when a kernel is needed:
importing Numba and loading a cached kernel take about half a second.

Each kernel comes as a parallel loop (``prange``, on every Numba thread) and a serial one (the calling
thread alone), over flattened pixels ``(P, 3)``. Compiled kernels are cached on disk (``cache=True``):
only the first call on a machine pays for compilation.
"""

from __future__ import annotations

import contextlib
import math
import sys

import numpy as np
from numba import njit, prange

# error_model="numpy": a division never checks its divisor (none can be 0 here); Python's error model
# made the serial loops below three times slower than the same loop under prange.
# fastmath={"contract"} lets a multiply and an add be one fused operation (one rounding instead of
# two, so never less accurate) and nothing else of fast-math: a quarter of the time of the integer loops.
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
# Kernels over flattened pixels (P, 3): one pixel's work, then a parallel and a serial loop over it
# --------------------------------------------------------------------------------------------

@njit(inline="always", **_JIT)
def _grade_3d(pixels, out, p, offset, frac, t, sg, sb, maxv, strength, tetrahedral):
    """Pixel ``p`` of integer ``pixels`` graded through the 3D table into ``out``.

    ``offset``/``frac`` ``(3, maxv + 1)`` are the per-code cells made by :mod:`lutgen.color.cpu` (offsets
    uint64), ``t`` the flattened table, ``sg``/``sb`` its green and blue strides (uint64), ``maxv`` the
    largest code as a float. The blend with the input is ``(1 - strength) * in + strength * LUT(in)``,
    skipped at strength 1 (a loop-invariant test, which the compiler takes out of the loop); it gives the
    input's own codes at strength 0. The input is normalised by a multiplication, not a division; it is
    then off by at most an ulp. The channels are computed one at a time (a quarter faster than all three
    at once).
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
def apply_codes_3d(pixels, out, offset, frac, t, n, maxv, strength, tetrahedral):
    """3D table on integer pixels ``(P, 3)`` on every kernel thread (see :func:`_grade_3d`)."""
    sg = np.uint64(3 * n)
    sb = np.uint64(3 * n * n)
    for p in prange(pixels.shape[0]):
        _grade_3d(pixels, out, p, offset, frac, t, sg, sb, maxv, strength, tetrahedral)


@njit(**_JIT)
def apply_codes_3d_serial(pixels, out, offset, frac, t, n, maxv, strength, tetrahedral):
    """3D table on integer pixels ``(P, 3)`` in the calling thread alone."""
    sg = np.uint64(3 * n)
    sb = np.uint64(3 * n * n)
    for p in range(pixels.shape[0]):
        _grade_3d(pixels, out, p, offset, frac, t, sg, sb, maxv, strength, tetrahedral)


@njit(parallel=True, **_JIT)
def apply_codes_1d(pixels, out, lookup):
    """Per-channel code lookup ``(maxv + 1, 3)`` on integer pixels ``(P, 3)`` on every kernel thread."""
    for p in prange(pixels.shape[0]):
        for c in range(3):
            out[p, c] = lookup[pixels[p, c], c]


@njit(**_JIT)
def apply_codes_1d_serial(pixels, out, lookup):
    """Per-channel code lookup ``(maxv + 1, 3)`` on integer pixels ``(P, 3)`` in the calling thread alone."""
    for p in range(pixels.shape[0]):
        for c in range(3):
            out[p, c] = lookup[pixels[p, c], c]


@njit(inline="always", **_JIT)
def _float_pixel(pixels, out, p, shaping, lattice, strength, tetrahedral):
    """Pixel ``p`` of float ``pixels`` through the shaper and/or 3D table into ``out``, computed in float64.

    ``shaping`` is ``(has_shaper, shaper (M, 3), lo (3,), hi (3,), nodes per unit (3,))`` and ``lattice``
    ``(has_table, flattened n-node table, n, lo, hi, nodes per unit)``, as :mod:`lutgen.color.cpu` makes them.
    """
    has_shaper, shaper, shaper_lo, shaper_hi, s_scale = shaping
    has_table, t, n, lo, hi, t_scale = lattice
    x0, x1, x2 = np.float64(pixels[p, 0]), np.float64(pixels[p, 1]), np.float64(pixels[p, 2])
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
    out[p, 0], out[p, 1], out[p, 2] = _blend(x0, s0, strength), _blend(x1, s1, strength), _blend(x2, s2, strength)


@njit(parallel=True, **_JIT_EXACT)
def apply_float(pixels, out, shaping, lattice, strength, tetrahedral):
    """Shaper and/or 3D table on float pixels ``(P, 3)`` on every kernel thread; ``out`` float32 or float64."""
    for p in prange(pixels.shape[0]):
        _float_pixel(pixels, out, p, shaping, lattice, strength, tetrahedral)


@njit(**_JIT_EXACT)
def apply_float_serial(pixels, out, shaping, lattice, strength, tetrahedral):
    """Shaper and/or 3D table on float pixels ``(P, 3)`` in the calling thread alone."""
    for p in range(pixels.shape[0]):
        _float_pixel(pixels, out, p, shaping, lattice, strength, tetrahedral)


_kernels_loaded = False


@contextlib.contextmanager
def kernels_loading():
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
