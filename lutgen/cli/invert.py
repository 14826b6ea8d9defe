"""``lutgen invert``: the inverse of a 3D LUT."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app


@app.command()
def invert(
    lut_file: Path = typer.Argument(..., help="The 3D LUT file to invert."),
    output: Path = typer.Option(..., "--output", "-o", help="The inverse LUT file (format by extension)."),
    size: int = typer.Option(None, "--size", help="Nodes per axis (2-129) [default: the input's, from 33 to 129]."),
    interpolation: str = typer.Option("trilinear", help="How the LUT is interpolated: trilinear or tetrahedral."),
    clamp: bool = typer.Option(
        False, "--clamp", help="Map colours the LUT never produces to the input of the nearest colour it does "
        "produce, inside the domain [default: continue the inverse smoothly, values may leave the domain]."
    ),
    shaper: bool = typer.Option(
        False, "--shaper", help="Write a 1D shaper before the 3D table: the better, in a trial, of one crowding "
        "its nodes towards 0 and 1 of each channel, where looks crush saturated colours, and one following "
        "the LUT's tone curve, for transfer functions such as an sRGB EOTF (.cube, .csp or .clf; some "
        "applications, ffmpeg among them, cannot read a .cube with a shaper)."
    ),
) -> None:
    """Write the LUT that undoes LUT_FILE, with the round-trip error; refuse a LUT that cannot be undone.

    Colours the LUT never produces get the inverse continued smoothly beyond the LUT's domain, fitted at
    the edge of its gamut so that the colours it does produce come back (or, with --clamp, the input of
    the nearest colour it does produce).
    """
    from lutgen.tasks.invert import invert as run_invert

    result = run_invert(lut_file, output, size, interpolation, not clamp, shaper)
    shaped = {None: "", "stretched": " after a shaper crowding them towards 0 and 1",
              "tone": " after a shaper following the LUT's tone curve"}[result.shaper]
    typer.echo(f"wrote {output}: inverse at {result.lut.size}^3 nodes{shaped}, "
               f"{100 * result.unreachable_share:.1f}% of them out of the LUT's reach "
               f"({'clamped to the nearest' if clamp else 'continued'})")
    typer.echo(f"round trip inverse(LUT(x)) against x: {result.round_trip.describe()}")
    if result.squeezed_share >= 0.01 and result.round_trip.max_code > 1:  # the squeeze explains an error seen
        hint = "" if shaper else " (--shaper puts more of its nodes where looks squeeze)"
        typer.echo(f"warning: {100 * result.squeezed_share:.0f}% of the LUT's cells squeeze colours 20 times or more; "
                   "a regular lattice follows the inverse there badly, so colours from those cells may "
                   f"come back only approximately{hint}", err=True)
