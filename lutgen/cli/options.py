"""Typer options that several commands share, declared once so that their names, defaults and help agree.

- CLIP: ``optimize``, ``library``, ``rank`` and ``score``;
- what shapes a look (representation, size, learning rate, loss and evidence weights): ``optimize`` and
  ``library``;
- the photos ``rank`` and ``score`` grade;
- video output: ``infer`` and ``enhance``.
"""

from __future__ import annotations

import typer

# --- CLIP ------------------------------------------------------------------------------------------

DEVICE = typer.Option("auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
CLIP_MODEL = typer.Option(
    "ViT-B-32", help="open_clip architecture, or local-dir:FOLDER (open_clip_config.json + weights)."
)
CLIP_PRETRAINED = typer.Option("openai", help="open_clip pretrained tag, or a local weights file.")
CLIP_PRECISION = typer.Option(
    "auto", help="CLIP arithmetic: auto (bf16 on CUDA and on CPUs with native bf16, else fp32), fp32, bf16."
)

# --- what shapes a look ----------------------------------------------------------------------------

REFERENCE_SIMILARITY = typer.Option(
    1.0, help="Weight 0..1000 of CLIP similarity to the reference photos (0: colours only, no CLIP needed)."
)
REFERENCE_COLORS = typer.Option(
    1.0, help="Weight 0..1000 of matching the reference photos' colour distribution (Oklab)."
)
PAIR_WEIGHT = typer.Option(1.0, help="Weight 0..1000 of the before/after pairs.")
MONOCHROME = typer.Option(
    False, "--monochrome", help="Black and white: the output is neutral (R = G = B), a learned channel mix "
                                "and tone curve."
)
REPRESENTATION = typer.Option(
    "structured", help="structured (a colour matrix and curves in front of a residual lattice, baked into "
                       "the table) or lattice (the table's nodes alone)."
)
LUT_SIZE = typer.Option(16, help="LUT resolution N (N^3 nodes), 2..128.")
LEARNING_RATE = typer.Option(0.005, help="Adam learning rate, 1e-6..1.")
IMAGE_SMOOTHNESS = typer.Option(1.0, help="Weight 0..1000: penalise banding the LUT adds to images.")
IMAGE_REGULARIZATION = typer.Option(1.0, help="Weight 0..1000: keep the grade subtle.")
BLACK_PRESERVATION = typer.Option(1.0, help="Weight 0..1000: do not lift the blacks.")
HIGHLIGHT_PRESERVATION = typer.Option(
    1.0, help="Weight 0..1000: keep whites white and highlights out of clipping."
)
LUT_SMOOTHNESS = typer.Option(1.0, help="Weight 0..1000: penalise kinks in the LUT's change.")

# --- the photos rank and score grade ---------------------------------------------------------------

SCORED_FOLDER = typer.Option(None, help="Folder of the photos to grade [default: the bundled images/].")
SCORED_PHOTOS = typer.Option(8, help="Photos scored, spread evenly over the folder's sorted list (1..1000).")

# --- video output ----------------------------------------------------------------------------------

CODEC = typer.Option(
    None, help="Video: h264, hevc, vp9, prores or ffv1 (lossless RGB) [default: the input's own family, "
    "H.264 for others].",
)
CRF = typer.Option(
    None, help="Video: constant-quality factor of h264/hevc/vp9, lower is better [default: 18 for h264, "
    "20 for hevc, 31 for vp9].",
)
