"""``lutgen mix``: a strength baked into a LUT, or a blend of two LUTs."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app


@app.command()
def mix(
    first: Path = typer.Argument(..., help="LUT A."),
    second: Path = typer.Argument(None, help="LUT B [default: none; A is blended with the identity]."),
    strength: float = typer.Option(
        ..., "--strength", "-s", help="0 to 1: 0 gives the identity (or A), 1 gives A (or B)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="The blended LUT file (format by extension)."),
    size: int = typer.Option(None, "--size", help="Nodes per axis (2-256) [default: A's, or the largest input's]."),
    interpolation: str = typer.Option(
        "trilinear", help="How inputs are sampled if resampled: trilinear or tetrahedral."
    ),
) -> None:
    """Bake a strength: (1 - S) * identity + S * A, or (1 - S) * A + S * B, as a new LUT file."""
    from lutgen.tasks.mix import mix as run_mix

    result = run_mix(first, second, strength, output, size, interpolation)
    how = "node by node (exact)" if result.exact else f"resampled at {result.lut.size}^3 nodes"
    typer.echo(f"wrote {output}: blended {how}; against the exact blend: {result.difference.describe()}")
