"""``lutgen match``: one LUT that gives photos the colours of reference photos (no CLIP, no torch).

Only parses options and reports; the work is :func:`lutgen.tasks.match.match`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app


@app.command()
def match(
    references: list[Path] = typer.Argument(
        None, metavar="REFERENCE", show_default=False,
        help="Reference photos and/or folders of them (one or more): the look to reach.",
    ),
    image_folder: Path = typer.Option(None, help="Folder of the photos to grade [default: the bundled images/]."),
    output: Path = typer.Option(..., "--output-path", "-o", "--output", help="The .cube file to write."),
    lut_size: int = typer.Option(33, help="LUT resolution N (N^3 nodes), 2..129."),
    smoothness: float = typer.Option(
        1e-2, help="Weight of the smoothness prior (greater than 0, at most 1000): higher is smoother."
    ),
    strength: float = typer.Option(1.0, help="How far to move towards the references, 0..1 (0: identity)."),
    balance: float = typer.Option(
        0.75, help="How much large areas of one colour are damped, 0..1: 0 matches every pixel (references of "
                   "the same scene), higher lets a sky or a wall count less (references of other scenes)."
    ),
    max_pixels: int = typer.Option(20_000, help="Pixels sampled at random from each image, 100..1000000."),
    iterations: int = typer.Option(30, help="Random bases of the sliced transport, 1..1000."),
    seed: int = typer.Option(0, help="Seed of the pixel sampling and the random bases, 0..2147483647."),
) -> None:
    """Make the photos of --image-folder look like the reference photos: one smooth LUT from their colours."""
    from tqdm import tqdm

    from lutgen.tasks.match import MatchSettings
    from lutgen.tasks.match import match as run_match

    def progress(images):
        return tqdm(images, unit="image", disable=len(images) < 4, leave=False)

    settings = MatchSettings(lut_size, smoothness, strength, balance, max_pixels, iterations, seed)
    result = run_match(references or [], output, image_folder, settings, progress)
    typer.echo(f"matched {len(result.photos)} photo(s) to {len(result.references)} reference(s), "
               f"{result.samples} pixels: sliced Wasserstein distance in Oklab {result.distance_before:.4f} "
               f"before, {result.distance_after:.4f} after")
    typer.echo(f"wrote {result.output}")
