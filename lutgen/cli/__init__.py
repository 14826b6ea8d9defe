"""The ``lutgen`` command line: a Typer app whose commands live one per module.

The CLI only parses options and reports; the work is done in :mod:`lutgen.tasks`. Every
:class:`~lutgen.errors.LutgenError` and every usage error (an unknown option, a value that is not a
number) becomes one sentence on stderr and exit code 2. Ctrl-C exits with 130 and SIGTERM with 143,
after the same clean-up (:mod:`lutgen.interrupts`: SIGTERM raises :class:`~lutgen.errors.Terminated`,
a ``KeyboardInterrupt``).
Only :class:`~lutgen.errors.LutgenWarning` warnings are shown, as one ``warning:`` line each.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from collections.abc import Iterator

# NumPy's OpenBLAS threads spin after each matrix product and then compete with the compiled LUT
# kernels' own threads; lutgen's NumPy matrix products (the enhance network) are small, so one
# BLAS thread is faster overall (enhance at 480p: 15 ms instead of 25 ms on 2 cores). This must be
# set before NumPy is first imported; a value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer

try:  # Typer 0.28 and later carry their own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older Typer over click
    from click import exceptions as click_errors

from lutgen import interrupts
from lutgen.errors import LutgenError, LutgenWarning, interrupt_exit_code

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
    """Run a per-file task (``infer``, ``enhance``) with progress bars (images, and each video's frames);
    Ctrl-C or SIGTERM exits with 130 or 143.

    Outputs are written atomically, so an interruption leaves every finished file complete.
    """

    def progress(pairs):
        if len(pairs) < 2:
            return pairs  # no bar for one image (nor tqdm's import)
        from tqdm import tqdm

        return tqdm(pairs, unit="image", leave=False)

    def frame_progress(total, label):
        from lutgen.video.frames import frame_bar  # only when a video is graded

        return frame_bar(total, label)

    try:
        return task(*args, progress=progress, frame_progress=frame_progress, **kwargs)
    except KeyboardInterrupt as interruption:
        report_error("interrupted; the files finished so far are written, none is half-written")
        raise typer.Exit(interrupt_exit_code(interruption)) from None


def report_images(written: list, failed: list, output_dir, videos: int = 0) -> None:
    """Say what a per-file task wrote and skipped (``videos`` of the written are videos); exit with code 2
    if any input failed."""
    for source, reason in failed:
        reason = reason.removeprefix(f"cannot read {source}: ")  # the file is named once
        report_error(f"skipped {source}: {reason}")
    if len(written) == 1:
        typer.echo(f"wrote {written[0]}")
    elif written:
        typer.echo(f"wrote {len(written)} {'files' if videos else 'images'} to {output_dir}")
    if failed:
        raise typer.Exit(2)


def _reporting_interruptions(callback):
    """Wrap a command so that a Ctrl-C or SIGTERM it does not handle itself is reported.

    Commands that save work on an interruption catch it themselves and exit with
    :func:`~lutgen.errors.interrupt_exit_code`; for the others nothing was written.
    """

    @functools.wraps(callback)
    def command(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except KeyboardInterrupt as interruption:
            report_error("interrupted; nothing was written")
            raise typer.Exit(interrupt_exit_code(interruption)) from None

    return command


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print lutgen's own warnings as one line; drop every other warning."""
    if issubclass(category, LutgenWarning):
        text = " ".join(str(message).split())
        print(f"warning: {text}", file=sys.stderr)


def _usage_sentence(error: click_errors.UsageError) -> str:
    """Click's usage error as one sentence: what is wrong, then where help is."""
    text = " ".join(error.format_message().split()).rstrip(".")
    command = error.ctx.command_path if error.ctx is not None else "lutgen"
    return f"{text}; see '{command} --help'"


@contextlib.contextmanager
def _stderr_of_our_own() -> Iterator[None]:
    """Meanwhile, ``sys.stderr`` writes to a copy of descriptor 2, so that lutgen's own lines never get lost.

    While a native decoder runs, :func:`lutgen.imaging.common.native_stderr_silenced` points descriptor 2
    at the null device to hide what the C library prints; progress bars, warnings and errors that other
    threads print meanwhile go through this copy, which still reaches the terminal. (Bars keep the stream
    they were made with, so the copy must be in place before any is made, hence here and not there.)
    """
    previous = sys.stderr
    try:
        copy = os.dup(2)
    except OSError:  # no descriptor 2
        yield
        return
    ours = os.fdopen(copy, "w", buffering=1, encoding=getattr(previous, "encoding", None),
                     errors=getattr(previous, "errors", None))
    with contextlib.suppress(Exception):
        previous.flush()
    sys.stderr = ours
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            ours.flush()
        sys.stderr = previous
        with contextlib.suppress(Exception):
            ours.close()


def main() -> None:
    """Entry point of the ``lutgen`` console script and of ``main.py``."""
    from lutgen.cli import commands  # noqa: F401  (registers the commands on ``app``)

    for command in app.registered_commands:
        if not hasattr(command.callback, "__wrapped__"):
            command.callback = _reporting_interruptions(command.callback)
    interrupts.install()
    warnings.simplefilter("default")
    warnings.showwarning = _show_warning
    with _stderr_of_our_own():
        code = _run_app()
    if code == _BROKEN_PIPE:
        sys.stderr.close()  # stop quietly: not even Python's complaint about flushing stdout at exit
    sys.exit(code if isinstance(code, int) else 0)


_BROKEN_PIPE = 141  # the exit code of a process killed by SIGPIPE, as shells report it


def _run_app():
    """Run the Typer app; every way it ends becomes an exit code (errors reported in one sentence)."""
    try:
        code = app(standalone_mode=False, prog_name="lutgen")
    except LutgenError as error:
        report_error(str(error))
        code = error.exit_code
    except click_errors.NoArgsIsHelpError as error:
        typer.echo(error.ctx.get_help() if error.ctx is not None else str(error))
        code = 0
    except click_errors.UsageError as error:
        report_error(_usage_sentence(error))
        code = 2
    except KeyboardInterrupt as interruption:  # before or after a command ran
        code = interrupt_exit_code(interruption)
    except click_errors.ClickException as error:
        report_error(" ".join(error.format_message().split()))
        code = 2
    except BrokenPipeError:  # the reader of our output went away (``lutgen info x.cube | head -1``)
        code = _BROKEN_PIPE
    except MemoryError:
        report_error("the machine ran out of memory; try fewer or smaller images, or a smaller LUT")
        code = 2
    return code
