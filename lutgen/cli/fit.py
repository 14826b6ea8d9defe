"""``lutgen fit``: one static 3D LUT from aligned before/after photo pairs (no CLIP, no torch).

Only parses options and reports; the work is :func:`lutgen.tasks.fit.fit`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app


@app.command()
def fit(
    input_dir: Path = typer.Option(..., help="Folder of photos before the grade."),
    target_dir: Path = typer.Option(..., help="Folder of the same photos graded, matched to the inputs by file name."),
    output: Path = typer.Option(..., "--output-path", "-o", "--output", help="The .cube file to write."),
    lut_size: int = typer.Option(33, help="LUT resolution N (N^3 nodes), 2..129."),
    smoothness: float = typer.Option(
        3e-6, help="Weight of the smoothness prior (greater than 0, at most 1000): higher is smoother."
    ),
    holdout: str = typer.Option(
        None, help="Pair (file name without extension) to hold out and score; 'none' to fit every pair "
                   "[default: the last pair by name when there are 3 or more]."
    ),
    max_pixels: int = typer.Option(200_000, help="Pixels sampled at random from each pair, 100..10000000."),
    interpolation: str = typer.Option("trilinear", help="trilinear or tetrahedral, for the reported scores."),
) -> None:
    """Fit one LUT that turns the input photos into their graded targets, and report how well it does."""
    from tqdm import tqdm

    from lutgen.tasks.fit import fit as run_fit

    def progress(pairs):
        return tqdm(pairs, unit="pair", disable=len(pairs) < 2, leave=False)

    result = run_fit(input_dir, target_dir, output, lut_size, smoothness, holdout, max_pixels, interpolation,
                     progress)
    train = result.training_scores
    typer.echo(f"fitted {len(result.training)} pair(s), {result.samples} pixels: "
               f"PSNR {train.psnr:.2f} dB, mean dE76 {train.delta_e:.2f}")
    if result.holdout_scores is not None:
        held = result.holdout_scores
        typer.echo(f"held-out pair {result.holdout}: PSNR {held.psnr:.2f} dB, mean dE76 {held.delta_e:.2f}")
    else:
        typer.echo("no pair held out (give 3 pairs or more, or --holdout NAME, to score the LUT on an unseen pair)")
    typer.echo(f"wrote {result.output}")
