"""``lutgen convert``: a LUT file to another format and/or size."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app


@app.command()
def convert(
    source: Path = typer.Argument(
        ..., help="The LUT file to convert (.cube, .png/.tif Hald, .3dl, .csp, .spi3d, .spi1d, .clf)."
    ),
    output: Path = typer.Argument(..., help="The file to write; its extension chooses the format."),
    size: int = typer.Option(None, "--size", help="Resample to SIZE^3 nodes (2-256) [default: keep the size]."),
    interpolation: str = typer.Option(
        "trilinear", help="How the source is sampled when resampling: trilinear or tetrahedral."
    ),
) -> None:
    """Convert SOURCE to OUTPUT's format, losslessly where OUTPUT's format holds the LUT as it is.

    Resamples when --size differs or the format cannot hold the shaper, domain or size, and prints
    the fidelity kept (PSNR over a dense sample of the input domain).
    """
    from lutgen.tasks.convert import convert as run_convert

    result = run_convert(source, output, size, interpolation)
    if result.lossless:
        typer.echo(f"wrote {result.output}: lossless")
        return
    if result.resampled_to:
        how = f"resampled to {result.resampled_to}^3 nodes ({result.reason})"
    else:
        how = "same lattice, values within the format's precision"
    typer.echo(f"wrote {result.output}: {how}; against the source: {result.difference.describe()}")
