"""Adaptive-interval 3D LUTs (the AiLUT transform of AdaInt) and their export to standard LUTs.

An adaptive-interval LUT is a 3D table ``T`` plus, per input channel ``c``, a sorted list of vertices
``0 = p_0 < p_1 < ... < p_{N-1} = 1`` saying where the table's nodes sit along that channel (a plain
3D LUT has ``p_j = j / (N - 1)``). For an input colour ``x``:

- **locate**: per channel, ``k_c = clamp(#{j : p_j < x_c} - 1, 0, N - 2)``, so ``x_c`` in
  ``(p_k, p_{k+1}]`` lies in cell ``k``; inputs are *not* clamped: ``x_c <= 0`` uses cell 0 and
  ``x_c > 1`` cell ``N - 2``, i.e. out-of-range inputs are extrapolated linearly from the edge cell;
- **fraction**: ``t_c = (x_c - p_k) / (p_{k+1} - p_k + 1e-10)`` (below 0 or above 1 when extrapolating);
- **interpolate**: trilinearly between the 8 nodes of cell ``(k_r, k_g, k_b)`` with fractions ``t``.

Layouts (those of :mod:`lutgen.lut` and :mod:`lutgen.color.torch_ops`):

- image: ``(B, 3, H, W)`` or ``(3, H, W)`` float, RGB in the channel dimension;
- table: ``(B, N, N, N, 3)`` (or ``(1, ...)`` shared by the batch, or ``(N, N, N, 3)``), indexed
  ``[b, g, r, channel]``. The published AdaInt code holds the same numbers as ``(B, 3, N, N, N)``
  indexed ``[channel, b, g, r]`` (red fastest); ``table = published.permute(0, 2, 3, 4, 1)``;
- vertices: ``(B, 3, N)`` (or ``(1, 3, N)``, or ``(3, N)``), row ``c`` the vertices of input channel
  ``c`` (red, green, blue).

Export: the transform is exactly a per-channel piecewise-linear map ``phi_c`` (knots
``(p_j, j / (N - 1))``, the same cell and fraction as above) followed by the *uniform* ``N^3`` trilinear
LUT with the same table. :func:`to_lut` writes that as a :class:`~lutgen.lut.Shaper` (``phi`` sampled
on a uniform grid of :data:`SHAPER_SIZE` nodes) plus the table; :func:`resample_to_lut` samples the
transform on a uniform grid for readers without shapers. A ``.cube`` reader clamps inputs to the
domain where the transform extrapolates, so the two agree for inputs in ``[0, 1]``.

Only :func:`ailut_transform` needs torch; it imports it when called, so that the export functions
(pure NumPy) serve torch-free callers such as the CPU path of ``lutgen enhance``.
"""

from __future__ import annotations

import math

import numpy as np

from lutgen.lut import LUT, Shaper, grid

EPS = 1e-10  # added to every interval length, as in the published transform

# 65536 shaper nodes sit at i / 65535: every 8-bit code v / 255 (= 257 v / 65535) and every 16-bit
# code is a node, so a shaper of this size reproduces phi exactly on 8- and 16-bit images.
SHAPER_SIZE = 65536
VERTEX_TOLERANCE = 1e-5  # |p_0| and |p_{N-1} - 1| allowed by the export functions


# --------------------------------------------------------------------------------------------
# The differentiable transform (torch)
# --------------------------------------------------------------------------------------------


def ailut_transform(image, table, vertices):
    """Apply an adaptive-interval 3D LUT to ``image``, differentiably.

    Args:
        image: ``(B, 3, H, W)`` or ``(3, H, W)`` float tensor; values are not clamped.
        table: ``(B, N, N, N, 3)``, ``(1, N, N, N, 3)`` or ``(N, N, N, 3)`` tensor ``[b, g, r, c]``.
        vertices: ``(B, 3, N)``, ``(1, 3, N)`` or ``(3, N)`` tensor, each row sorted ascending, first 0 and
            last 1 (not checked here: the transform is defined for any sorted rows).

    Returns:
        Tensor of the image's shape, dtype and device (table and vertices are moved to them).
        Differentiable w.r.t. image, table and vertices; the cell index is piecewise constant, so
        the gradients are those of the formulas in the module docstring for a fixed cell.
    """
    import torch

    _check_transform_args(image, table, vertices)
    batched = image.dim() == 4
    images = image if batched else image.unsqueeze(0)
    table = table.to(device=images.device, dtype=images.dtype)
    vertices = vertices.to(device=images.device, dtype=images.dtype)
    if table.dim() == 4:
        table = table.unsqueeze(0)
    if vertices.dim() == 2:
        vertices = vertices.unsqueeze(0)
    batch, _, height, width = images.shape
    n = table.shape[1]
    for name, size in (("table", table.shape[0]), ("vertices", vertices.shape[0])):
        if size not in (1, batch):
            raise ValueError(f"the {name} batch ({size}) must be 1 or the image batch ({batch})")

    x = images.reshape(batch, 3, height * width)
    verts = vertices.expand(batch, 3, n)
    # Cell index: #{p_j < x} - 1, clamped (searchsorted's left side counts the vertices below x).
    cell = torch.searchsorted(verts.detach().contiguous(), x.detach().contiguous()) - 1
    cell = cell.clamp_(0, n - 2)
    lower = verts.gather(2, cell)
    upper = verts.gather(2, cell + 1)
    frac = (x - lower) / (upper - lower + EPS)  # (B, 3, P)

    # Channel-first flattened table: entry o * N^3 + k_b * N^2 + k_g * N + k_r along the last dim.
    flat = table.permute(0, 4, 1, 2, 3).reshape(table.shape[0], 3, n**3).expand(batch, 3, n**3)
    base = cell[:, 0] + n * cell[:, 1] + (n * n) * cell[:, 2]  # (B, P): corner 000 of each pixel's cell
    pixels = base.shape[1]

    def node(offset: int):
        index = (base + offset).unsqueeze(1).expand(batch, 3, pixels)
        return flat.gather(2, index)  # (B, 3, P): the 3 output channels at that node

    fr, fg, fb = frac[:, 0:1], frac[:, 1:2], frac[:, 2:3]

    def along_red(offset: int):
        low = node(offset)
        return low + fr * (node(offset + 1) - low)

    c00 = along_red(0)
    c10 = along_red(n)
    c01 = along_red(n * n)
    c11 = along_red(n * n + n)
    c0 = c00 + fg * (c10 - c00)
    c1 = c01 + fg * (c11 - c01)
    out = (c0 + fb * (c1 - c0)).reshape(batch, 3, height, width)
    return out if batched else out[0]


def _check_transform_args(image, table, vertices) -> None:
    if image.dim() not in (3, 4) or image.shape[-3] != 3 or not image.is_floating_point():
        raise ValueError(f"an image is a float tensor of shape (B, 3, H, W) or (3, H, W), not {tuple(image.shape)}")
    shape = tuple(table.shape[-4:])
    n = shape[0] if shape else 0
    if table.dim() not in (4, 5) or shape != (n, n, n, 3) or n < 2:
        raise ValueError(f"a table has shape (B, N, N, N, 3) or (N, N, N, 3), not {tuple(table.shape)}")
    if vertices.dim() not in (2, 3) or tuple(vertices.shape[-2:]) != (3, n):
        raise ValueError(f"vertices for an N={n} table have shape (B, 3, {n}) or (3, {n}), not {tuple(vertices.shape)}")


# --------------------------------------------------------------------------------------------
# The same transform in float64 NumPy (for export and fidelity numbers)
# --------------------------------------------------------------------------------------------


def _numpy(values, what: str, ndim: int) -> np.ndarray:
    """``values`` (array or tensor, optionally with a leading batch of 1) as a float64 array of ``ndim`` dims."""
    if hasattr(values, "detach"):
        values = values.detach().to("cpu").double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == ndim + 1 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions (or a leading batch of 1), not shape {array.shape}")
    return array


def checked_lut_arrays(table, vertices) -> tuple[np.ndarray, np.ndarray]:
    """``table`` ``(N, N, N, 3)`` and ``vertices`` ``(3, N)`` as float64 arrays, validated for export.

    Accepts arrays or tensors, each optionally with a leading batch dimension of 1. Raises
    ``ValueError`` unless every row of vertices is strictly increasing from 0 to 1 (within
    :data:`VERTEX_TOLERANCE`) and every value is finite.
    """
    table = _numpy(table, "an adaptive-interval table", 4)
    vertices = _numpy(vertices, "vertices", 2)
    n = table.shape[0]
    if table.shape != (n, n, n, 3) or n < 2:
        raise ValueError(f"an adaptive-interval table has shape (N, N, N, 3), not {table.shape}")
    if vertices.shape != (3, n):
        raise ValueError(f"vertices for an N={n} table have shape (3, {n}), not {vertices.shape}")
    if not (np.isfinite(table).all() and np.isfinite(vertices).all()):
        raise ValueError("the table and vertices must be finite")
    if not np.all(np.diff(vertices, axis=1) > 0):
        raise ValueError("each row of vertices must be strictly increasing")
    if np.abs(vertices[:, 0]).max() > VERTEX_TOLERANCE or np.abs(vertices[:, -1] - 1).max() > VERTEX_TOLERANCE:
        raise ValueError("each row of vertices must start at 0 and end at 1")
    return table, vertices


def _cells(x: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell index ``k`` and fraction ``t`` of the values ``x`` (any shape) on the sorted vertices ``p`` ``(N,)``."""
    n = p.shape[0]
    k = np.clip(np.searchsorted(p, x, side="left") - 1, 0, n - 2)
    return k, (x - p[k]) / (p[k + 1] - p[k] + EPS)


def interval_coordinates(x: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """``phi``: each channel of ``x`` ``(..., 3)`` as a coordinate of the uniform table, ``(k + t) / (N - 1)``.

    Piecewise linear with knots ``(p_j, j / (N - 1))``, extrapolated linearly outside ``[0, 1]``
    exactly as the transform extrapolates. ``vertices`` is ``(3, N)``; returns float64 ``(..., 3)``.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    n = vertices.shape[1]
    for c in range(3):
        k, t = _cells(x[..., c], vertices[c])
        out[..., c] = (k + t) / (n - 1)
    return out


def ailut_array(pixels: np.ndarray, table, vertices) -> np.ndarray:
    """The transform on colours ``pixels`` ``(..., 3)`` (floats, not clamped), in float64.

    ``table`` ``(N, N, N, 3)`` ``[b, g, r, c]`` and ``vertices`` ``(3, N)``, arrays or tensors.
    Returns float64 ``(..., 3)``.
    """
    table, vertices = _numpy(table, "a table", 4), _numpy(vertices, "vertices", 2)
    x = np.asarray(pixels, dtype=np.float64)
    flat = x.reshape(-1, 3)
    cells = [_cells(flat[:, c], vertices[c]) for c in range(3)]
    (kr, tr), (kg, tg), (kb, tb) = cells
    out = np.zeros_like(flat)
    for db in (0, 1):
        wb = tb if db else 1.0 - tb
        for dg in (0, 1):
            wg = tg if dg else 1.0 - tg
            for dr in (0, 1):
                wr = tr if dr else 1.0 - tr
                out += (wb * wg * wr)[:, None] * table[kb + db, kg + dg, kr + dr]
    return out.reshape(x.shape)


# --------------------------------------------------------------------------------------------
# Export to lutgen LUTs
# --------------------------------------------------------------------------------------------


def to_lut(table, vertices, shaper_size: int = SHAPER_SIZE, decimals: int | None = 6,
           title: str | None = None, comments: tuple[str, ...] = ()) -> LUT:
    """The adaptive-interval LUT as a 1D shaper followed by the uniform ``N^3`` table (a Resolve ``.cube``).

    Args:
        table: ``(N, N, N, 3)`` ``[b, g, r, c]`` (array or tensor; a leading batch of 1 is allowed).
        vertices: ``(3, N)``, rows strictly increasing from 0 to 1.
        shaper_size: nodes of the shaper over ``[0, 1]``. The shaper holds ``phi`` at its nodes and
            interpolates linearly between them, which is exact wherever no vertex falls strictly
            between two nodes. With the default 65536 every 8- and 16-bit code value is a node, so on
            such images the LUT gives exactly the transform's output; between nodes (float inputs) the
            error in ``phi`` is at most a quarter of a node spacing times the jump in slope.
        decimals: round every value to this many decimals (``None``: keep float64), so that a
            ``.cube`` written with :func:`lutgen.formats.write_lut` at the same ``decimals`` reads back
            to exactly this LUT.
        title, comments: carried into the LUT (a Resolve-style file writes neither).

    Returns:
        A :class:`~lutgen.lut.LUT` with unit domains: shaper ``(shaper_size, 3)`` then the table.
    """
    table, vertices = checked_lut_arrays(table, vertices)
    nodes = np.linspace(0.0, 1.0, shaper_size)
    shaper = interval_coordinates(np.repeat(nodes[:, None], 3, axis=1), vertices)
    if decimals is not None:
        shaper, table = np.round(shaper, decimals), np.round(table, decimals)
    return LUT(table, shaper=Shaper(shaper), title=title, comments=comments)


def resample_to_lut(table, vertices, size: int = 33, decimals: int | None = 6,
                    title: str | None = None, comments: tuple[str, ...] = ()) -> LUT:
    """A plain ``size``^3 LUT (no shaper) holding the transform at the nodes of a uniform grid.

    Readers without shaper support can load it; it is an approximation (trilinear between uniform
    nodes instead of the adaptive ones), whose fidelity :func:`psnr` measures. ``size`` is any of 2..256
    (17, 33 or 65 are the usual). ``decimals`` as for :func:`to_lut`.
    """
    table, vertices = checked_lut_arrays(table, vertices)
    values = ailut_array(grid(size), table, vertices)
    if decimals is not None:
        values = np.round(values, decimals)
    return LUT(values, title=title, comments=comments)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB between two float arrays of the same shape (``inf`` when equal).

    Computed in float64; with the default ``peak`` the values are taken to lie in ``[0, 1]``.
    """
    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def sample_colours(rgb: np.ndarray, limit: int = 1 << 18) -> np.ndarray:
    """At most ``limit`` colours of an ``(H, W, 3)`` image (a regular subsample), as float64 in ``[0, 1]``.

    Integer images are normalised by 255 or 65535.
    """
    flat = np.asarray(rgb).reshape(-1, 3)
    step = max(1, math.ceil(flat.shape[0] / limit))
    colours = flat[::step].astype(np.float64)
    if np.issubdtype(rgb.dtype, np.integer):
        colours /= float(np.iinfo(rgb.dtype).max)
    return colours
