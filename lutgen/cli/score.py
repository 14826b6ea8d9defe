"""``lutgen score``: the CLIP score of one LUT against a prompt, beside the score of the photos ungraded.

Only parses options and reports; the work is :func:`lutgen.tasks.score.score`. Nothing here imports
torch or open_clip at import time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from lutgen.cli import app
from lutgen.cli import options as shared


@app.command()
def score(
    lut: Path = typer.Argument(..., help="The LUT file (.cube or any format lutgen reads)."),
    prompt: str = typer.Option(..., help="The look, e.g. 'moody teal night'."),
    negative_prompt: str = typer.Option(None, help="A look to score against, e.g. 'washed out'."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
    image_folder: Path = shared.SCORED_FOLDER,
    photos: int = shared.SCORED_PHOTOS,
    device: str = shared.DEVICE,
    clip_model: str = shared.CLIP_MODEL,
    clip_pretrained: str = shared.CLIP_PRETRAINED,
    clip_precision: str = shared.CLIP_PRECISION,
) -> None:
    """Print how much a LUT makes the photos look like a prompt, beside the ungraded photos' score.

    The score is that of 'lutgen rank': the mean over the photos of CLIP's cosine similarity between
    the graded photo and the prompt, minus that to the negative prompt when one is given.
    """
    from tqdm import tqdm

    from lutgen.tasks.score import ScoreOptions
    from lutgen.tasks.score import score as run_score

    options = ScoreOptions(
        prompt=prompt, lut=lut, negative_prompt=negative_prompt, image_folder=image_folder, photos=photos,
        device=device, clip_model=clip_model, clip_pretrained=clip_pretrained, clip_precision=clip_precision,
    )

    def warn(text: str) -> None:
        tqdm.write(f"warning: {text}", file=sys.stderr)

    result = run_score(options, warn=warn)
    if as_json:
        typer.echo(json.dumps({
            "lut": str(result.lut), "prompt": result.prompt, "negative_prompt": result.negative,
            "clip": result.weights_label, "photos": [str(path) for path in result.photos],
            "score": result.score, "identity_score": result.identity, "change": result.change,
        }, indent=2, allow_nan=False))
        return
    typer.echo(f"{'score':>8}  {'ungraded':>8}  {'change':>7}  (CLIP similarity to {result.prompt!r}"
               + (f" minus {result.negative!r}" if result.negative else "")
               + f", {len(result.photos)} photos, {result.weights_label})")
    typer.echo(f"{result.score:>8.4f}  {result.identity:>8.4f}  {result.change:>+7.4f}  {result.lut}")
