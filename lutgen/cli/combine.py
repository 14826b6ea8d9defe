"""``lutgen combine``: several LUTs baked into one."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app


@app.command()
def combine(
    luts: list[Path] = typer.Argument(..., help="Two or more LUT files, applied in the order given."),
    output: Path = typer.Option(..., "--output", "-o", help="The combined LUT file (format by extension)."),
    size: int = typer.Option(
        None, "--size", help="Nodes per axis of the result (2-256) [default: the largest input size, at least 33]."
    ),
    interpolation: str = typer.Option("trilinear", help="How each input is applied: trilinear or tetrahedral."),
) -> None:
    """Write the LUT that applies LUTS one after another, with its error against applying them in turn."""
    from lutgen.tasks.combine import combine as run_combine

    result = run_combine(luts, output, size, interpolation)
    sampled = ", the first LUT's shaper sampled into the table" if result.shaper_sampled else ""
    typer.echo(f"wrote {output}: {len(luts)} LUTs combined at {result.size}^3 nodes{sampled}")
    typer.echo(f"against applying them in turn: {result.difference.describe()}")
