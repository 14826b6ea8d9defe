"""The video options that ``infer`` and ``enhance`` share, declared once so their help stays the same."""

from __future__ import annotations

import typer

CODEC = typer.Option(
    None, help="Video: h264, hevc, vp9, prores or ffv1 (lossless RGB) [default: the input's own family, "
    "H.264 for others].",
)
CRF = typer.Option(
    None, help="Video: constant-quality factor of h264/hevc/vp9, lower is better [default: 18 for h264, "
    "20 for hevc, 31 for vp9].",
)
