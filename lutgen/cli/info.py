"""``lutgen info``: what a .cube file holds."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app


@app.command()
def info(lut_file: Path = typer.Argument(..., help="The .cube file to describe.")) -> None:
    """Print a LUT's size, domain, shaper, title, value range and whether it is an identity."""
    from lutgen.tasks.info import info as run_info

    rows = run_info(lut_file)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        typer.echo(f"{label.ljust(width)}  {value}")
