"""The ``lutgen`` command line: a Typer app whose commands live one per module.

The CLI only parses options and reports; the work is done in :mod:`lutgen.tasks`. Every
:class:`~lutgen.errors.LutgenError` becomes one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import sys

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


def main() -> None:
    """Entry point of the ``lutgen`` console script and of ``main.py``."""
    from lutgen.cli import commands  # noqa: F401  (registers the commands on ``app``)

    try:
        app()
    except LutgenError as error:
        report_error(str(error))
        sys.exit(error.exit_code)
