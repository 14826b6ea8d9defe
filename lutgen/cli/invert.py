"""``lutgen invert``: the inverse of a 3D LUT."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app


@app.command()
def invert(
    lut_file: Path = typer.Argument(..., help="The 3D LUT file to invert."),
    output: Path = typer.Option(..., "--output", "-o", help="The inverse LUT file (format by extension)."),
    size: int = typer.Option(None, "--size", help="Nodes per axis (2-256) [default: the input's, at least 33]."),
    interpolation: str = typer.Option("trilinear", help="How the LUT is interpolated: trilinear or tetrahedral."),
    extend: bool = typer.Option(
        False, "--extend", help="Continue the inverse beyond the colours the LUT reaches instead of clamping "
        "to the nearest (values may leave the domain by up to half its span)."
    ),
) -> None:
    """Write the LUT that undoes LUT_FILE, with the round-trip error; refuse a LUT that cannot be undone.

    Colours the LUT never produces map to the input of the nearest colour it does produce (or, with
    --extend, to the inverse continued linearly).
    """
    from lutgen.tasks.invert import invert as run_invert

    result = run_invert(lut_file, output, size, interpolation, extend)
    typer.echo(f"wrote {output}: inverse at {result.lut.size}^3 nodes, "
               f"{100 * result.unreachable_share:.1f}% of them out of the LUT's reach "
               f"({'continued' if extend else 'clamped to the nearest'})")
    typer.echo(f"round trip inverse(LUT(x)) against x: {result.round_trip.describe()}")
