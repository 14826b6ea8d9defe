"""Applying a :class:`~lutgen.lut.LUT` to pixel arrays on the CPU, with compiled kernels.

The one entry point is :func:`apply_lut_array`. Every colour is computed in float64:

1. integer input is normalised (``code / 255`` or ``code / 65535``);
2. the shaper, if any, maps each channel through its 1D table (linear interpolation, input clamped
   to the shaper's domain);
3. the 3D table, if any, is interpolated (trilinear or tetrahedral, input clamped to the table's domain);
4. the result is blended with the input: ``out = in + strength * (LUT(in) - in)``;
5. integer output is rounded to the nearest code value (halves up) and clipped to the dtype's range;
   float output keeps the input's dtype and is not clipped.

For integer images the per-channel steps 1-2 and the table coordinates (cell index and fraction)
depend on the code value alone, so they are tabulated once with NumPy (256 or 65536 entries per
channel) and each pixel costs only the 3D interpolation. For 8-bit trilinear grading the table is also
interpolated along red once for each of the 256 red codes (by the LLVM kernel's module: up to 32 MB,
five times faster than NumPy's gathers), so that a pixel interpolates only along green and blue (the
same operations in the same order). A 1D-only LUT on integer images is a plain per-channel
code-to-code lookup.

Float inputs outside a domain are clamped to it (NaN counts as the domain's minimum).

8-bit trilinear grading, the common case, runs a loop compiled with LLVM (:mod:`lutgen.color.cpu_llvm`),
ready in a few hundredths of a second; every other case runs a Numba kernel
(:mod:`lutgen.color.cpu_numba`), imported only then (about half a second). The kernels run in parallel
over pixels on a flattened view of the input, so a call needs memory for its output only (plus a copy
of the input if that is not C-contiguous). Compiled kernels are cached on disk: only the first call on
a machine pays for compilation. This module imports neither torch nor Numba.
"""

from __future__ import annotations

import math

import numpy as np

from lutgen.color.sampling import cells, clamped, shaped
from lutgen.errors import OptionError
from lutgen.lut import INTERPOLATIONS, LUT, Shaper, grid


_INTEGER_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# 8-bit trilinear grading reads a copy of the table already interpolated along red at each of the 256
# red codes (6.7 MB for 33 nodes): half the loads and a third of the arithmetic per pixel, the same
# operations in the same order. Larger tables than this take the general kernel.
_RED_LERPED_MAX_BYTES = 32 << 20


# --------------------------------------------------------------------------------------------
# Per-code tables for integer images (float64, by lutgen.color.sampling: the float kernels' formulas)
# --------------------------------------------------------------------------------------------


def _shaped_codes(maxv: int, shaper: Shaper | None) -> np.ndarray:
    """``(maxv + 1, 3)`` float64: every code value normalised and passed through the shaper, if any."""
    x = np.repeat((np.arange(maxv + 1) / maxv)[:, None], 3, axis=1)
    return x if shaper is None else shaped(x, shaper.table, shaper.domain)


def _code_cells(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells of shaped values ``(K, 3)`` on an ``n``-node table: indices ``(3, K)`` int64, fractions ``(3, K)``.

    Channel-major, so that each channel's lookups are one contiguous row.
    """
    inside = clamped(values, lo, hi)
    index, frac = zip(*(cells(inside[:, c], lo[c], hi[c], n) for c in range(3)))
    return np.stack(index).astype(np.int64), np.stack(frac)


def _code_lookup_1d(values: np.ndarray, maxv: int, strength: float, dtype) -> np.ndarray:
    """``(maxv + 1, 3)`` of ``dtype``: the code-to-code table of a 1D-only LUT blended with ``strength``."""
    x = np.arange(maxv + 1)[:, None] / maxv
    y = values if strength == 1.0 else x + strength * (values - x)
    v = y * maxv
    v = np.where(v > 0.0, v, 0.0)
    v = np.where(v < maxv, v, float(maxv))
    return (v + 0.5).astype(np.int64).astype(dtype)


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

    Every array handed to a Numba kernel is a read-only C-contiguous view, so that each kernel has one
    compiled signature per pixel dtype whatever the caller's arrays were (one cache entry to load, not
    several).
    """
    has_table = lut.table is not None
    if flat.dtype in _INTEGER_MAX:
        maxv = _INTEGER_MAX[flat.dtype]
        per_code = _shaped_codes(maxv, lut.shaper)
        if not has_table:
            from lutgen.color import cpu_numba

            lookup = _frozen(_code_lookup_1d(per_code, maxv, strength, flat.dtype))
            with cpu_numba.kernels_loading():
                (cpu_numba.apply_codes_1d if parallel else cpu_numba.apply_codes_1d_serial)(flat, out, lookup)
            return
        n = lut.table.shape[0]
        index, frac = _code_cells(per_code, *lut.domain, n)
        if maxv == 255 and not tetrahedral and n * n * 256 * 3 * 8 <= _RED_LERPED_MAX_BYTES:
            from lutgen.color import cpu_llvm

            rows = np.stack([index[1] * (3 * 256), index[2] * (3 * 256 * n)])  # cells' offsets in the red table
            rt = cpu_llvm.red_lerped(lut.table, index[0], frac[0])
            cpu_llvm.grade_red_lerped(flat, out, rt, rows, np.ascontiguousarray(frac[1:]), n, strength, parallel)
            return
        from lutgen.color import cpu_numba

        offset = _frozen(index.astype(np.uint64) * np.array([[3], [3 * n], [3 * n * n]], np.uint64))
        kernel = cpu_numba.apply_codes_3d if parallel else cpu_numba.apply_codes_3d_serial
        with cpu_numba.kernels_loading():
            kernel(flat, out, offset, _frozen(frac), _frozen(lut.table.reshape(-1)), n, float(maxv), strength,
                   tetrahedral)
        return

    from lutgen.color import cpu_numba

    has_shaper = lut.shaper is not None
    shaper = lut.shaper if has_shaper else Shaper(np.zeros((2, 3)), lut.domain)
    table = lut.table if has_table else np.zeros((2, 2, 2, 3))
    n = table.shape[0]
    shaping = (has_shaper, _frozen(shaper.table), *_axis_bounds(shaper.domain, shaper.table.shape[0]))
    lattice = (has_table, _frozen(table.reshape(-1)), n, *_axis_bounds(lut.domain, n))
    kernel = cpu_numba.apply_float if parallel else cpu_numba.apply_float_serial
    with cpu_numba.kernels_loading():
        kernel(flat, out, shaping, lattice, strength, tetrahedral)


def _axis_bounds(domain: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lo, hi, nodes per unit)`` of an axis of ``nodes`` nodes over ``domain`` ``(2, 3)``, each ``(3,)``,
    as the float kernels take them: ``(nodes - 1) / (hi - lo)`` per channel."""
    lo, hi = (_frozen(np.asarray(bound, np.float64)) for bound in domain)
    return lo, hi, _frozen((nodes - 1) / (hi - lo))


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

