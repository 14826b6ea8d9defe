"""Guidance models that score how well an image matches a text prompt (CLIP through open_clip).

Importing this package is cheap; torch and open_clip load with :mod:`lutgen.guidance.clip`.
"""

from __future__ import annotations

_EXPORTS = ("ClipGuide", "ClipInput", "WeightsSource", "load_clip", "resolve_weights", "DEFAULT_MODEL", "DEFAULT_PRETRAINED")

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        from lutgen.guidance import clip

        return getattr(clip, name)
    raise AttributeError(f"module 'lutgen.guidance' has no attribute {name!r}")
