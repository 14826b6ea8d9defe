"""``lutgen match``: one LUT that gives photos the colours of reference photos (no CLIP, no torch).

Only parses options and reports; the work is :func:`lutgen.tasks.match.match`, whose docstring gives
the meaning of the regularisation options (those of ``lutgen optimize`` and ``lutgen fit``, for the
lattice regression that turns the transported colours into a LUT; ``--image-smoothness`` is not
offered). ``--smoothness`` is the old name of ``--lut-smoothness``, still accepted and hidden from the
help.
"""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app

DEFAULT_LUT_SMOOTHNESS = 1e-2  # lutgen.tasks.match.DEFAULT_SMOOTHNESS, not imported here (numpy, scipy)


@app.command()
def match(
    references: list[Path] = typer.Argument(
        None, metavar="REFERENCE", show_default=False,
        help="Reference photos and/or folders of them (one or more): the look to reach.",
    ),
    image_folder: Path = typer.Option(None, help="Folder of the photos to grade [default: the bundled images/]."),
    output: Path = typer.Option(..., "--output-path", "-o", "--output", help="The .cube file to write."),
    lut_size: int = typer.Option(33, help="LUT resolution N (N^3 nodes), 2..129."),
    lut_smoothness: float = typer.Option(
        None, show_default=False,
        help=f"Weight of the smoothness prior (greater than 0, at most 1000): higher is smoother "
             f"[default: {DEFAULT_LUT_SMOOTHNESS:g}].",
    ),
    smoothness: float = typer.Option(None, hidden=True, help="The old name of --lut-smoothness."),
    image_regularization: float = typer.Option(
        0.0, help="Weight 0..1000: keep the grade subtle (pull every node of the LUT towards the identity)."
    ),
    black_preservation: float = typer.Option(
        0.0, help="Weight 0..1000: do not change the blacks (pull the nodes with luma under 0.01 to the identity)."
    ),
    highlight_preservation: float = typer.Option(
        0.0, help="Weight 0..1000: keep whites white (pull the nodes with luma over 0.99 to the identity)."
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
    """Make the photos of --image-folder look like the reference photos: one smooth LUT from their colours.

    The regularisation weights are optimize's, for a least-squares fit: each counts against the mean
    squared colour error on the sampled pixels. optimize's --image-smoothness is not offered: a
    per-pixel fit sees no neighbouring pixels, and --lut-smoothness already penalises the kinks that
    would band an image.
    """
    from tqdm import tqdm

    from lutgen.tasks.fit import lut_smoothness_option
    from lutgen.tasks.match import DEFAULT_SMOOTHNESS, MatchSettings
    from lutgen.tasks.match import match as run_match

    def progress(images):
        return tqdm(images, unit="image", disable=len(images) < 4, leave=False)

    settings = MatchSettings(
        lut_size=lut_size, lut_smoothness=lut_smoothness_option(lut_smoothness, smoothness, DEFAULT_SMOOTHNESS),
        strength=strength, balance=balance, max_pixels=max_pixels, iterations=iterations, seed=seed,
        image_regularization=image_regularization, black_preservation=black_preservation,
        highlight_preservation=highlight_preservation,
    )
    result = run_match(references or [], output, image_folder, settings, progress)
    typer.echo(f"matched {len(result.photos)} photo(s) to {len(result.references)} reference(s), "
               f"{result.samples} pixels: sliced Wasserstein distance in Oklab {result.distance_before:.4f} "
               f"before, {result.distance_after:.4f} after")
    typer.echo(f"wrote {result.output}")
