"""Many files through one per-file job, on every core: the pipeline of ``infer`` on a folder or a shoot.

:func:`run_batch` takes ``(source, target)`` pairs and a function that does one file from start to end
(read it, work on it, write the target atomically). With ``jobs`` 1 the files go one after another in
the calling thread. With more, ``jobs`` worker threads each take the next file, so that one file is
decoded while another is graded and a third encoded: Pillow and OpenCV release the GIL while they
decode and encode, and lutgen's compiled kernels run without it. At most ``jobs`` files are in
progress at once, which bounds the memory: about ``jobs`` decoded images and their graded copies.

What the caller sees does not depend on ``jobs``: the same files written under the same names, the
result listed in the order of the pairs, a file that the per-file function skips (:class:`FileSkipped`,
an unreadable input) reported with its reason while the others go on. Any other error (an output that
cannot be written) stops the batch: no new file is started, the files in progress are finished, and
the error is raised. Ctrl-C and SIGTERM do the same, so every finished file is kept and, each being
written atomically, none is left half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lutgen import interrupts
from lutgen.devices import available_cores
from lutgen.errors import LutgenError, OptionError


class FileSkipped(LutgenError):
    """Raised by a per-file function for a file that cannot be done (an unreadable input): the batch
    reports the message and goes on with the other files."""


Pair = tuple[Path, Path]
"""An input file and the output file it becomes."""

ProcessOne = Callable[[Path, Path], None]
"""Does one file: reads ``source``, writes ``target`` atomically; raises FileSkipped to skip the file."""

Progress = Callable[[Sequence[Pair]], Iterable[Pair]]
"""Wraps the pairs in an iterable over them, as ``tqdm`` does; the batch advances it one item per finished file."""


@dataclass
class BatchResult:
    """The targets written, and the sources that failed with their reason, both in the order of the pairs."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def check_jobs(jobs: int | None) -> int:
    """The number of files to work on at once: ``jobs``, or every core when it is None.

    Raises an :class:`OptionError` for anything but a whole number of at least 1.
    """
    if jobs is None:
        return available_cores()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise OptionError(f"--jobs must be a whole number of at least 1, not {jobs}")
    return jobs


def run_batch(
    pairs: Sequence[Pair],
    process_one: ProcessOne,
    jobs: int = 1,
    progress: Progress = lambda pairs: pairs,
) -> BatchResult:
    """Call ``process_one(source, target)`` for every pair, ``jobs`` files at a time (see the module docstring).

    ``jobs`` 1 runs every file in the calling thread; more uses that many worker threads (never more
    than there are files). :class:`FileSkipped` from ``process_one`` fails that file only; any other
    exception stops the batch once the files in progress are finished, and is raised.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    if jobs == 1 or len(pairs) < 2:
        outcomes = _run_in_turn(pairs, process_one, progress)
    else:
        outcomes = _run_in_threads(pairs, process_one, min(jobs, len(pairs)), progress)
    result = BatchResult()
    for (source, target), problem in zip(pairs, outcomes):
        if problem is None:
            result.written.append(target)
        else:
            result.failed.append((source, problem))
    return result


def _run_one(process_one: ProcessOne, source: Path, target: Path) -> str | None:
    """None when the file was done, else the one-sentence reason it failed."""
    try:
        process_one(source, target)
    except FileSkipped as skipped:
        return str(skipped)
    return None


def _run_in_turn(pairs: Sequence[Pair], process_one: ProcessOne, progress: Progress) -> list[str | None]:
    """Every pair in the calling thread, one after another; an interruption is raised where it lands."""
    return [_run_one(process_one, source, target) for source, target in progress(pairs)]


def _run_in_threads(pairs: Sequence[Pair], process_one: ProcessOne, jobs: int,
                    progress: Progress) -> list[str | None]:
    """Every pair on ``jobs`` worker threads, at most ``jobs`` at once; outcomes in the order of ``pairs``.

    The main thread only hands out files and waits; Ctrl-C and SIGTERM (whose handlers Python runs in the
    main thread) are held while it waits on, or hands work to, the thread pool, and raised between two
    such steps; it then starts no new file and waits for the running ones. Raised inside the pool's
    waiting, an interruption could leave one of ``threading``'s locks held (or released twice) and a
    worker blocked on it for good, so that the run never ended.
    """
    import concurrent.futures as futures  # here: one image never needs it

    outcomes: list[str | None] = [None] * len(pairs)
    ticks = iter(progress(pairs))
    next(ticks, None)  # shows the bar at 0; each finished file then moves it on by one
    upcoming = iter(enumerate(pairs))
    running: dict = {}  # Future -> index of its pair
    pool = futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="lutgen-batch")
    try:
        with interrupts.held():
            for _ in range(jobs):
                _start_next(pool, upcoming, running, process_one)
        while running:
            with interrupts.held():
                done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    outcomes[running.pop(future)] = future.result()
                    next(ticks, None)
            # an interruption that arrived meanwhile is raised here, before another file is started
            with interrupts.held():
                for _ in done:
                    _start_next(pool, upcoming, running, process_one)
    finally:
        # Normally nothing is left; after an interruption or an unexpected error the files in progress
        # are finished (their writes are atomic) and the others are never started.
        with interrupts.held():
            pool.shutdown(wait=True, cancel_futures=True)
            close = getattr(ticks, "close", None)  # a generator (tqdm's): its bar is closed now, not when collected
            if close is not None:
                close()
    return outcomes


def _start_next(pool, upcoming, running: dict, process_one: ProcessOne) -> None:
    """Submit the next pair of ``upcoming`` (if any) to the thread pool and record its index in ``running``."""
    item = next(upcoming, None)
    if item is not None:
        index, (source, target) = item
        running[pool.submit(_run_one, process_one, source, target)] = index
