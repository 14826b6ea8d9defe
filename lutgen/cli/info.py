"""``lutgen info``: what a LUT file holds, and how healthy it is."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lutgen.cli import app


@app.command()
def info(
    lut_file: Path = typer.Argument(..., help="The LUT file to describe (.cube or any format lutgen reads)."),
    as_json: bool = typer.Option(False, "--json", help="Print the description and health report as JSON."),
) -> None:
    """Print a LUT's size, domain, shaper, title, value range and identity, then its health report.

    The health report: monotonic along the grey axis and per channel, clipped nodes, values out of
    0..1, the largest CIE76 deltaE from the identity, roughness (banding risk), near-identity, and
    the PSNR kept when resampled at 17, 33 and 65 nodes.
    """
    from lutgen.tasks.health import health_rows
    from lutgen.tasks.info import info_and_health

    rows, report = info_and_health(lut_file)
    if as_json:
        typer.echo(json.dumps({"info": dict(rows), "health": report}, indent=2, allow_nan=False))
        return
    printed = rows + health_rows(report)
    width = max(len(label) for label, _ in printed)
    for label, value in rows:
        typer.echo(f"{label.ljust(width)}  {value}")
    typer.echo("health")
    for label, value in health_rows(report):
        typer.echo(f"{label.ljust(width)}  {value}")
