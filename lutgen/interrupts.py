"""Ctrl-C and SIGTERM: both raise an exception that every command's clean-up handles the same way.

:func:`install` (called by the command line) makes SIGTERM raise :class:`~lutgen.errors.Terminated`,
a ``KeyboardInterrupt``, so every ``except KeyboardInterrupt`` that saves work or removes temporary
files does the same on SIGTERM as on Ctrl-C. :func:`held` defers both for the few lines where a file
is created or renamed and the caller's bookkeeping must keep up with it (see
:func:`lutgen.fileio.atomic_path`): a signal that arrives meanwhile is raised when the block ends.

Python runs signal handlers in the main thread only, between bytecodes, whichever thread the operating
system delivered the signal to; so deferring in the handler works in processes with other threads
(the compiled kernels' and torch's), where blocking the signal in one thread would not.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from lutgen.errors import Terminated

_held = 0
_pending: list[int] = []


def install() -> None:
    """Route SIGTERM, and SIGINT unless it is ignored (a background job), through :func:`held`."""
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_signal)


def _on_signal(signum: int, frame) -> None:
    if _held:
        _pending.append(signum)
        return
    _raise_for(signum)


def _raise_for(signum: int) -> None:
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Defer Ctrl-C and SIGTERM (when :func:`install` has run) until the block ends, then raise."""
    global _held
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if not _held and _pending:
            signum = _pending[0]
            _pending.clear()
            _raise_for(signum)
