"""sRGB -> Oklab as differentiable torch functions (the torch side of :mod:`lutgen.color.oklab`).

The same transfer curve and the same matrices (Ottosson's, taken from :mod:`lutgen.color.oklab`,
the one place they are written) as the float64 NumPy functions, for tensors of any float dtype on
any device, so that losses can be measured in Oklab and differentiated.

The one difference is the cube root of the cone responses. Its slope is infinite at 0, so a black
pixel (all cones 0) would get an infinite (then NaN) gradient. :func:`safe_cbrt` replaces the cube
root below ``|x| < CBRT_KNEE = 1e-19`` by the line through the origin that meets it at the knee,
``x * CBRT_KNEE ** (-2/3)``: continuous, odd, finite slope everywhere. On ``[0, t]`` the line stays
below the root by at most ``0.385 * t ** (1/3)`` (at ``x = t / 3 ** 1.5``), ``1.8e-7`` for this knee;
through the second matrix (largest absolute row sum 4.86) the Oklab values are within ``9e-7`` of
the exact ones, and exact above the knee. The price of that accuracy is a steep slope at black,
``CBRT_KNEE ** (-2/3) = 4.6e12`` per cone (up to about ``2.5e11`` per sRGB channel): large but
finite. Any form within ``1e-6`` of the cube root is steep near 0: it must climb by at least
``1e-6`` between 0 and ``2.7e-17`` (where the root reaches ``3e-6``), a mean slope of at least
``3.7e10``. In float32 no pixel colour other than exact black has cone responses that small (the
darkest 8-bit code gives about ``1e-5``); losses that must not be dominated by black pixels take
their gradients elsewhere (:func:`lutgen.optim.evidence.oklab_for_loss`).

Shapes: ``(..., 3)`` in, ``(..., 3)`` out (last axis: R, G, B in; L, a, b out), in the input's
dtype and on its device. Half-precision inputs are computed in float32 (the knee is below their
range) and returned in their own dtype. sRGB values are meant to lie in ``[0, 1]``; values outside
pass through the odd extension of the transfer curve, as in :mod:`lutgen.color.oklab`.
"""

from __future__ import annotations

import functools

import torch

from lutgen.color.oklab import LINEAR_SRGB_TO_LMS, LMS_TO_OKLAB, SRGB_THRESHOLD

CBRT_KNEE = 1e-19
"""Below this magnitude :func:`safe_cbrt` is linear (see the module docstring)."""
_LOW_PRECISION = (torch.float16, torch.bfloat16)


@functools.lru_cache(maxsize=16)
def _matrices(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Ottosson's ``M1`` and ``M2``, transposed for ``(..., 3) @ M.T``, on ``device`` in ``dtype``."""
    m1 = torch.as_tensor(LINEAR_SRGB_TO_LMS.T.copy()).to(device=device, dtype=dtype)
    m2 = torch.as_tensor(LMS_TO_OKLAB.T.copy()).to(device=device, dtype=dtype)
    return m1, m2


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """Decode sRGB ``(..., 3)`` to linear light (IEC 61966-2-1, odd-extended below 0).

    ``x / 12.92`` up to ``0.04045``, ``((x + 0.055) / 1.055) ** 2.4`` above. The power branch is
    evaluated on ``|x|``, whose base stays positive, so neither branch has an infinite gradient.
    """
    size = rgb.abs()
    curve = torch.sign(rgb) * ((size + 0.055) / 1.055) ** 2.4
    return torch.where(size <= SRGB_THRESHOLD, rgb / 12.92, curve)


def safe_cbrt(x: torch.Tensor) -> torch.Tensor:
    """The real cube root of ``x``, linear below ``|x| < CBRT_KNEE``: finite slope everywhere.

    Within ``0.385 * CBRT_KNEE ** (1/3)`` (``1.8e-7``) of the exact root, and equal to it above
    the knee. The root is taken of ``max(|x|, CBRT_KNEE)``, so the branch ``torch.where`` does not
    choose has a finite gradient too (an infinite one would turn into NaN).
    """
    size = x.abs()
    root = torch.sign(x) * size.clamp(min=CBRT_KNEE) ** (1.0 / 3.0)
    line = x * CBRT_KNEE ** (-2.0 / 3.0)
    return torch.where(size < CBRT_KNEE, line, root)


def linear_srgb_to_oklab(linear: torch.Tensor) -> torch.Tensor:
    """Linear sRGB ``(..., 3)`` to Oklab ``(..., 3)``: ``M2 @ safe_cbrt(M1 @ linear)``."""
    m1, m2 = _matrices(linear.device, linear.dtype)
    return safe_cbrt(linear @ m1) @ m2


def srgb_to_oklab(rgb: torch.Tensor) -> torch.Tensor:
    """Encoded sRGB ``(..., 3)`` in ``[0, 1]`` to Oklab ``(..., 3)`` (``L`` in ``[0, 1]``, ``a, b`` about ``±0.3``).

    Differentiable everywhere with finite gradients; within ``1e-6`` of
    :func:`lutgen.color.oklab.srgb_to_oklab` in float64 (see the module docstring).
    """
    if not rgb.is_floating_point():
        raise ValueError(f"srgb_to_oklab takes a float tensor, not {rgb.dtype}")
    if rgb.shape[-1:] != (3,):
        raise ValueError(f"srgb_to_oklab takes (..., 3) colours, not shape {tuple(rgb.shape)}")
    if rgb.dtype in _LOW_PRECISION:
        return srgb_to_oklab(rgb.float()).to(rgb.dtype)
    return linear_srgb_to_oklab(srgb_to_linear(rgb))
