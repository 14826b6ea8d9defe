"""Guidance models that score how well an image matches a text prompt (CLIP through open_clip).

Importing this package is cheap (no torch, no open_clip): it holds the option values that are
checked before any model loads. The checks of a local CLIP configuration and weights file are in
:mod:`lutgen.guidance.config` (no torch either); the models themselves are in :mod:`lutgen.guidance.clip`,
which builds them with :mod:`lutgen.guidance.loading` (safetensors weights streamed, no second copy,
the image tower read when first needed) and :mod:`lutgen.guidance.vision_tower` (faster equivalent
image-tower modules, matrix weights cast to bfloat16 once).
"""

from __future__ import annotations

from lutgen.errors import OptionError

CLIP_PRECISIONS = ("auto", "fp32", "bf16")


def check_clip_precision(precision: str) -> str:
    """Return ``precision`` if it is one of :data:`CLIP_PRECISIONS`; else raise an :class:`OptionError`."""
    if precision not in CLIP_PRECISIONS:
        raise OptionError(f"--clip-precision must be one of {', '.join(CLIP_PRECISIONS)}, not {precision!r}")
    return precision
