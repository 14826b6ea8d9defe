"""Differentiable LUT application with torch: pure tensor functions, on any device and float dtype.

Layouts (the conventions of :mod:`lutgen.lut`):

- image: ``(B, 3, H, W)`` or ``(3, H, W)``, RGB in the channel dimension, any float dtype;
- table: ``(N, N, N, 3)`` indexed ``[b, g, r, channel]``; node ``i`` of an axis sits at
  ``min + i / (N - 1) * (max - min)`` of that axis' domain;
- shaper table: ``(M, 3)``, one column per channel, nodes evenly spaced over its domain;
- domain: ``(2, 3)`` (row 0 the per-channel minimum, row 1 the maximum), a tensor, an array or ``None``
  for the unit cube. Inputs outside a domain are clamped to it.

Outputs have the image's shape, dtype and device. Gradients flow to the image and to the tables
(to the image only inside the domains: outside, the output does not depend on it). Tables and
domains are moved to the image's device and dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lutgen.lut import LUT

INTERPOLATIONS = ("trilinear", "tetrahedral")


def identity_table(size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The ``(N, N, N, 3)`` table ``[b, g, r, c]`` of the identity over the unit cube.

    ``table[b, g, r] == (r, g, b) / (N - 1)``.
    """
    axis = torch.linspace(0.0, 1.0, size, device=device, dtype=dtype)
    b, g, r = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([r, g, b], dim=-1)


def codes_to_image(codes, device) -> torch.Tensor:
    """Integer RGB codes ``(H, W, 3)`` uint8/uint16 (a numpy array) as a ``(3, H, W)`` float32 image in ``[0, 1]``."""
    import numpy as np

    top = float(np.iinfo(codes.dtype).max)
    writable = np.require(codes, requirements="W")  # torch refuses read-only views (Pillow's arrays)
    return torch.from_numpy(writable).to(device).permute(2, 0, 1).float() / top


def image_to_codes(image: torch.Tensor, dtype):
    """A ``(3, H, W)`` image in ``[0, 1]`` as ``(H, W, 3)`` numpy codes of ``dtype``, rounded and clipped."""
    import numpy as np

    top = float(np.iinfo(dtype).max)
    codes = (image.detach() * top).round_().clamp_(0, top).permute(1, 2, 0)
    return codes.to("cpu", torch.int32).numpy().astype(dtype)


def _tensor(values, like: torch.Tensor) -> torch.Tensor:
    """``values`` (tensor or array) on ``like``'s device and dtype; arrays are converted on the CPU first
    (float64 arrays cannot go to MPS as they are)."""
    if not isinstance(values, torch.Tensor):
        values = torch.as_tensor(values, dtype=like.dtype)
    return values.to(device=like.device, dtype=like.dtype)


def _domain(domain, like: torch.Tensor) -> torch.Tensor:
    """``domain`` as a ``(2, 3)`` tensor on ``like``'s device and dtype (``None``: the unit cube)."""
    if domain is None:
        return torch.tensor([[0.0] * 3, [1.0] * 3], device=like.device, dtype=like.dtype)
    d = _tensor(domain, like)
    if d.shape != (2, 3):
        raise ValueError(f"a domain has shape (2, 3), not {tuple(d.shape)}")
    return d


def _check_image(image: torch.Tensor) -> None:
    if image.dim() not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"an image has shape (B, 3, H, W) or (3, H, W), not {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"an image must be a float tensor, not {image.dtype}")


def _check_table(table: torch.Tensor) -> None:
    n = table.shape[0]
    if table.dim() != 4 or tuple(table.shape) != (n, n, n, 3) or n < 2:
        raise ValueError(f"a 3D table has shape (N, N, N, 3) with N >= 2, not {tuple(table.shape)}")


def _normalised(image: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """``image`` clamped to ``domain`` and mapped to ``[0, 1]`` per channel (channel dimension ``-3``)."""
    lo = domain[0].view(3, 1, 1)
    hi = domain[1].view(3, 1, 1)
    return (torch.minimum(torch.maximum(image, lo), hi) - lo) / (hi - lo)


def apply_lut(image: torch.Tensor, table: torch.Tensor, domain=None) -> torch.Tensor:
    """Trilinear interpolation of the 3D ``table`` at every pixel of ``image``.

    Args:
        image: ``(B, 3, H, W)`` or ``(3, H, W)`` float.
        table: ``(N, N, N, 3)`` ``[b, g, r, c]``, moved to the image's device and dtype.
        domain: ``(2, 3)`` input domain of the table, ``None`` for the unit cube.

    Returns:
        Tensor of the image's shape. Differentiable w.r.t. image and table.

    The batch of images becomes the depth of one 5-D sampling grid, so the table is sampled once
    without being copied per image: ``grid_sample(input=(1, 3, N_b, N_g, N_r), grid=(1, B, H, W, 3))``
    with grid coordinates ``(x, y, z) = (r, g, b)`` in ``[-1, 1]`` and ``align_corners=True``.
    """
    _check_image(image)
    _check_table(table)
    table = table.to(device=image.device, dtype=image.dtype)
    batched = image.dim() == 4
    images = image if batched else image.unsqueeze(0)
    unit = _normalised(images, _domain(domain, image))
    grid = (unit * 2.0 - 1.0).permute(0, 2, 3, 1).unsqueeze(0)  # (1, B, H, W, 3)
    volume = table.permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, N_b, N_g, N_r)
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
    out = out[0].transpose(0, 1)  # (1, 3, B, H, W) -> (B, 3, H, W)
    return out if batched else out[0]


def _cells(unit: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell index (int64, ``0..n-2``, no gradient) and fraction (differentiable) of ``unit`` in ``[0, 1]``."""
    u = unit * (n - 1)
    index = torch.clamp(torch.floor(u.detach()), 0, n - 2)
    return index.long(), u - index


def apply_lut_gather(image: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Trilinear interpolation of the 3D ``table`` at every pixel of ``image``, by gathering the 8
    corners of each pixel's cell: the same function as :func:`apply_lut` on the unit cube.

    Args:
        image: ``(B, 3, H, W)`` or ``(3, H, W)`` float, clamped to ``[0, 1]``.
        table: ``(N, N, N, 3)`` ``[b, g, r, c]``, moved to the image's device and dtype.

    Returns:
        Tensor of the image's shape. Differentiable w.r.t. the table only (the image is treated
        as a constant).

    The backward pass is an indexed accumulation into the table, which CUDA runs
    deterministically; ``grid_sample``'s backward accumulates with atomics, so two identical runs
    on a GPU could differ in the last bits. Use this where runs must be reproducible on CUDA.
    """
    _check_image(image)
    _check_table(table)
    n = table.shape[0]
    table = table.to(device=image.device, dtype=image.dtype)
    unit = image.detach().clamp(0.0, 1.0).movedim(-3, -1)  # (..., H, W, 3): r, g, b
    index, frac = _cells(unit, n)
    base = index[..., 0] + index[..., 1] * n + index[..., 2] * (n * n)
    flat = table.reshape(-1, 3)
    fr, fg, fb = frac.unbind(-1)
    out = None
    for db, wb in ((0, 1 - fb), (1, fb)):
        for dg, wg in ((0, 1 - fg), (1, fg)):
            for dr, wr in ((0, 1 - fr), (1, fr)):
                term = (wr * wg * wb).unsqueeze(-1) * flat[base + (dr + dg * n + db * n * n)]
                out = term if out is None else out + term
    return out.movedim(-1, -3)


def apply_lut_reproducible(image: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Trilinear interpolation of ``table`` at ``image`` on the unit cube, by the kernel whose backward
    pass is reproducible on the image's device.

    :func:`apply_lut` (``grid_sample``) on the CPU and MPS, where its backward pass is deterministic and
    fastest; :func:`apply_lut_gather` on CUDA, where ``grid_sample``'s backward accumulates with atomics.
    Shapes as :func:`apply_lut_gather`; on CUDA the result is differentiable w.r.t. the table only.
    """
    if image.device.type == "cuda":
        return apply_lut_gather(image, table)
    return apply_lut(image, table)


def apply_lut_tetrahedral(image: torch.Tensor, table: torch.Tensor, domain=None) -> torch.Tensor:
    """Tetrahedral interpolation of the 3D ``table`` at every pixel of ``image``.

    Shapes as for :func:`apply_lut`. Each cell is split into the 6 tetrahedra that share its diagonal
    ``000``-``111``; a pixel's tetrahedron runs from ``000`` along the axes in decreasing order of the
    pixel's fractions ``f1 >= f2 >= f3``, with weights ``1 - f1, f1 - f2, f2 - f3, f3`` (the scheme of
    ffmpeg and OpenColorIO). Differentiable w.r.t. image and table.
    """
    _check_image(image)
    _check_table(table)
    n = table.shape[0]
    table = table.to(device=image.device, dtype=image.dtype)
    unit = _normalised(image, _domain(domain, image)).movedim(-3, -1)  # (..., H, W, 3)
    index, frac = _cells(unit, n)
    strides = torch.tensor([1, n, n * n], device=image.device)  # r, g, b in the flattened (N^3, 3) table
    base = (index * strides).sum(-1)
    frac_sorted, order = torch.sort(frac, dim=-1, descending=True)
    steps = strides[order]  # (..., H, W, 3): the axis strides in decreasing order of fraction
    corner1 = base + steps[..., 0]
    corner2 = corner1 + steps[..., 1]
    corner3 = base + (1 + n + n * n)
    flat = table.reshape(-1, 3)
    f1, f2, f3 = frac_sorted.unbind(-1)
    out = (
        (1 - f1).unsqueeze(-1) * flat[base]
        + (f1 - f2).unsqueeze(-1) * flat[corner1]
        + (f2 - f3).unsqueeze(-1) * flat[corner2]
        + f3.unsqueeze(-1) * flat[corner3]
    )
    return out.movedim(-1, -3)


def apply_shaper(image: torch.Tensor, shaper_table: torch.Tensor, domain=None) -> torch.Tensor:
    """Per-channel linear interpolation of the 1D ``shaper_table`` at every pixel of ``image``.

    Args:
        image: ``(B, 3, H, W)`` or ``(3, H, W)`` float.
        shaper_table: ``(M, 3)``, column ``c`` the table of channel ``c``; moved to the image's device and dtype.
        domain: ``(2, 3)`` input domain of the shaper, ``None`` for the unit cube.

    Returns:
        Tensor of the image's shape. Differentiable w.r.t. image and shaper table.
    """
    _check_image(image)
    m = shaper_table.shape[0]
    if shaper_table.dim() != 2 or shaper_table.shape[1] != 3 or m < 2:
        raise ValueError(f"a shaper table has shape (M, 3) with M >= 2, not {tuple(shaper_table.shape)}")
    shaper_table = shaper_table.to(device=image.device, dtype=image.dtype)
    unit = _normalised(image, _domain(domain, image))
    index, frac = _cells(unit, m)
    channel_start = (torch.arange(3, device=image.device) * m).view(3, 1, 1)
    flat = shaper_table.t().reshape(-1)  # channel-major: channel c's nodes at c*M .. c*M + M - 1
    lower = flat[index + channel_start]
    upper = flat[index + channel_start + 1]
    return lower + frac * (upper - lower)


def apply(image: torch.Tensor, lut: LUT, interpolation: str = "trilinear", strength: float = 1.0) -> torch.Tensor:
    """Apply a whole :class:`~lutgen.lut.LUT` (shaper, then 3D table) to ``image``, blended with ``strength``.

    ``image`` is ``(B, 3, H, W)`` or ``(3, H, W)`` float; the LUT's arrays become tensors on its device and
    dtype. Returns ``image + strength * (LUT(image) - image)``, of the image's shape (exactly ``LUT(image)``
    at strength 1).
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}")
    _check_image(image)
    out = image
    if lut.shaper is not None:
        shaper = _tensor(lut.shaper.table, image)
        out = apply_shaper(out, shaper, lut.shaper.domain)
    if lut.table is not None:
        table = _tensor(lut.table, image)
        interpolate = apply_lut if interpolation == "trilinear" else apply_lut_tetrahedral
        out = interpolate(out, table, lut.domain)
    if strength == 1:
        return out
    return image + strength * (out - image)
