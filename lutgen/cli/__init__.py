"""The ``lutgen`` command line: a Typer app whose commands live one per module.

The CLI only parses options and reports; the work is done in :mod:`lutgen.tasks`. Every
:class:`~lutgen.errors.LutgenError` becomes one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys

# NumPy's OpenBLAS threads spin after each matrix product and then compete with the compiled LUT
# kernels' own threads; lutgen's NumPy matrix products (the enhance network) are small, so one
# BLAS thread is faster overall (enhance at 480p: 15 ms instead of 25 ms on 2 cores). This must be
# set before NumPy is first imported; a value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer

from lutgen.errors import LutgenError

app = typer.Typer(
    name="lutgen",
    help="Colour grading with 3D LUTs: make a .cube from a text prompt, apply any .cube to images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def report_error(message: str) -> None:
    """Print one error sentence on stderr."""
    typer.echo(f"error: {message}", err=True)


def run_image_task(task, *args, **kwargs):
    """Run a per-image task (``infer``, ``enhance``) with a progress bar; Ctrl-C exits with code 130.

    Outputs are written atomically, so an interruption leaves every finished image complete.
    """
    from tqdm import tqdm

    def progress(pairs):
        return tqdm(pairs, unit="image", disable=len(pairs) < 2, leave=False)

    try:
        return task(*args, progress=progress, **kwargs)
    except KeyboardInterrupt:
        report_error("interrupted; the images finished so far are written, none is half-written")
        raise typer.Exit(130) from None


def report_images(written: list, failed: list, output_dir) -> None:
    """Say what a per-image task wrote and skipped; exit with code 2 if any image failed."""
    for source, reason in failed:
        report_error(f"skipped {source}: {reason}")
    if len(written) == 1:
        typer.echo(f"wrote {written[0]}")
    elif written:
        typer.echo(f"wrote {len(written)} images to {output_dir}")
    if failed:
        raise typer.Exit(2)


def main() -> None:
    """Entry point of the ``lutgen`` console script and of ``main.py``."""
    from lutgen.cli import commands  # noqa: F401  (registers the commands on ``app``)

    try:
        app()
    except LutgenError as error:
        report_error(str(error))
        sys.exit(error.exit_code)
