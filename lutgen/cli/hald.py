"""``lutgen hald``: write an identity Hald CLUT image to grade in a photo editor."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app


@app.command()
def hald(
    output: Path = typer.Argument(..., help="The image to write: .png, .tif or .tiff."),
    level: int = typer.Option(12, help="Hald level 2..16: a level^2 cube per axis in a level^3-pixel square."),
    bit_depth: int = typer.Option(16, help="Bits per channel: 8 or 16."),
) -> None:
    """Write an identity Hald CLUT; grade it in any photo editor, then read it back as a LUT (convert, info, ...)."""
    from lutgen.tasks.hald import write_identity_hald

    path = write_identity_hald(output, level, bit_depth)
    side = level**3
    typer.echo(f"wrote {path} (level {level}: {side}x{side} pixels, a {level * level}^3 cube, {bit_depth}-bit)")
