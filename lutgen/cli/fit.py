"""``lutgen fit``: one static 3D LUT from aligned before/after photo pairs (no CLIP, no torch).

Only parses options and reports; the work is :func:`lutgen.tasks.fit.fit`, whose docstring gives
the meaning of the regularisation options (those of ``lutgen optimize``, for a lattice regression;
``--image-smoothness`` has no separate meaning there and is not offered). ``--smoothness`` is the old
name of ``--lut-smoothness``, still accepted and hidden from the help.
"""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app

DEFAULT_LUT_SMOOTHNESS = 3e-6  # lutgen.optim.lattice_fit.DEFAULT_SMOOTHNESS, not imported here (numpy, scipy)


@app.command()
def fit(
    input_dir: Path = typer.Option(..., help="Folder of photos before the grade."),
    target_dir: Path = typer.Option(..., help="Folder of the same photos graded, matched to the inputs by file name."),
    output: Path = typer.Option(..., "--output-path", "-o", "--output", help="The .cube file to write."),
    lut_size: int = typer.Option(33, help="LUT resolution N (N^3 nodes), 2..129."),
    lut_smoothness: float = typer.Option(
        None, show_default=False,
        help=f"Weight of the smoothness prior (greater than 0, at most 1000): higher is smoother; raise it for "
             f"noisy pairs [default: {DEFAULT_LUT_SMOOTHNESS:g}].",
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
    holdout: str = typer.Option(
        None, help="Pair (file name without extension) to hold out and score; 'none' to fit every pair "
                   "[default: the last pair by name when there are 3 or more]."
    ),
    max_pixels: int = typer.Option(200_000, help="Pixels sampled at random from each pair, 100..10000000."),
    interpolation: str = typer.Option("trilinear", help="trilinear or tetrahedral, for the reported scores."),
) -> None:
    """Fit one LUT that turns the input photos into their graded targets, and report how well it does.

    The regularisation weights are optimize's, for a least-squares fit: each counts against the mean
    squared colour error on the sampled pixels. optimize's --image-smoothness is not offered: a
    per-pixel fit sees no neighbouring pixels, and --lut-smoothness already penalises the kinks that
    would band an image.
    """
    from tqdm import tqdm

    from lutgen.tasks.fit import DEFAULT_SMOOTHNESS, FitSettings, lut_smoothness_option
    from lutgen.tasks.fit import fit as run_fit

    def progress(pairs):
        return tqdm(pairs, unit="pair", disable=len(pairs) < 2, leave=False)

    settings = FitSettings(
        lut_size=lut_size, lut_smoothness=lut_smoothness_option(lut_smoothness, smoothness, DEFAULT_SMOOTHNESS),
        image_regularization=image_regularization, black_preservation=black_preservation,
        highlight_preservation=highlight_preservation, holdout=holdout, max_pixels=max_pixels,
        interpolation=interpolation,
    )
    result = run_fit(input_dir, target_dir, output, settings, progress)
    train = result.training_scores
    typer.echo(f"fitted {len(result.training)} pair(s), {result.samples} pixels: "
               f"PSNR {train.psnr:.2f} dB, mean dE76 {train.delta_e:.2f}")
    if result.holdout_scores is not None:
        held = result.holdout_scores
        typer.echo(f"held-out pair {result.holdout}: PSNR {held.psnr:.2f} dB, mean dE76 {held.delta_e:.2f}")
    else:
        typer.echo("no pair held out (give 3 pairs or more, or --holdout NAME, to score the LUT on an unseen pair)")
    typer.echo(f"wrote {result.output}")
