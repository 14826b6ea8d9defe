"""sRGB <-> linear sRGB <-> Oklab, in NumPy float64 (pure functions, no I/O).

Oklab is Björn Ottosson's perceptual colour space (https://bottosson.github.io/posts/oklab/):
linear sRGB goes to an LMS-like cone space by a 3x3 matrix, each cone response is cube-rooted, and
a second 3x3 matrix gives ``L`` (lightness, 0 for black and 1 for the D65 white), ``a`` (green to
red) and ``b`` (blue to yellow). Straight lines and distances in it follow perceived differences
far better than in sRGB, which is why colour distributions are compared and moved in it.

The matrices are Ottosson's published ones for linear sRGB; the inverse ones are their exact
inverses (computed once), so that a round trip returns the input to machine precision.

Shapes: every function takes ``(..., 3)`` arrays (the last axis the three components) and returns
a float64 array of the same shape. sRGB values are in ``[0, 1]`` (values outside pass through the
transfer curves' odd extensions, so out-of-gamut colours survive a round trip).
"""

from __future__ import annotations

import numpy as np

LINEAR_SRGB_TO_LMS = np.array([
    [0.4122214708, 0.5363325363, 0.0514459929],
    [0.2119034982, 0.6806995451, 0.1073969566],
    [0.0883024619, 0.2817188376, 0.6299787005],
])
"""Ottosson's ``M1`` for linear sRGB (D65) to cone responses."""
LMS_TO_OKLAB = np.array([
    [0.2104542553, 0.7936177850, -0.0040720468],
    [1.9779984951, -2.4285922050, 0.4505937099],
    [0.0259040371, 0.7827717662, -0.8086757660],
])
"""Ottosson's ``M2`` from cube-rooted cone responses to ``L, a, b``."""
LMS_TO_LINEAR_SRGB = np.linalg.inv(LINEAR_SRGB_TO_LMS)
OKLAB_TO_LMS = np.linalg.inv(LMS_TO_OKLAB)

SRGB_THRESHOLD = 0.04045
"""Encoded sRGB value below which the transfer curve is linear."""
LINEAR_THRESHOLD = 0.0031308
"""Linear value below which the sRGB encoding is linear."""


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """Decode sRGB ``(..., 3)`` to linear light (IEC 61966-2-1 curve, odd-extended below 0)."""
    rgb = np.asarray(rgb, np.float64)
    size = np.abs(rgb)
    linear = np.where(size <= SRGB_THRESHOLD, size / 12.92, ((size + 0.055) / 1.055) ** 2.4)
    return np.copysign(linear, rgb)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Encode linear light ``(..., 3)`` as sRGB (the inverse of :func:`srgb_to_linear`)."""
    linear = np.asarray(linear, np.float64)
    size = np.abs(linear)
    encoded = np.where(size <= LINEAR_THRESHOLD, size * 12.92, 1.055 * size ** (1 / 2.4) - 0.055)
    return np.copysign(encoded, linear)


def linear_srgb_to_oklab(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB ``(..., 3)`` to Oklab ``(..., 3)`` (``L, a, b``)."""
    lms = np.asarray(linear, np.float64) @ LINEAR_SRGB_TO_LMS.T
    return np.cbrt(lms) @ LMS_TO_OKLAB.T


def oklab_to_linear_srgb(lab: np.ndarray) -> np.ndarray:
    """Oklab ``(..., 3)`` to linear sRGB ``(..., 3)`` (may fall outside ``[0, 1]`` out of gamut)."""
    roots = np.asarray(lab, np.float64) @ OKLAB_TO_LMS.T
    return (roots**3) @ LMS_TO_LINEAR_SRGB.T


def srgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    """Encoded sRGB ``(..., 3)`` in ``[0, 1]`` to Oklab ``(..., 3)``."""
    return linear_srgb_to_oklab(srgb_to_linear(rgb))


def oklab_to_srgb(lab: np.ndarray, clip: bool = True) -> np.ndarray:
    """Oklab ``(..., 3)`` to encoded sRGB ``(..., 3)``, clipped to ``[0, 1]`` unless ``clip`` is false."""
    rgb = linear_to_srgb(oklab_to_linear_srgb(lab))
    return np.clip(rgb, 0.0, 1.0) if clip else rgb
