"""Running lutgen as a user does, in a fresh process, and reading what it printed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_lutgen(*args, cwd=None, env=None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python main.py ARGS...`` with the hub offline (unless ``env`` says otherwise), text output captured."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"} if env is None else env
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout,
    )


STACKS_ON_ABORT = {"PYTHONFAULTHANDLER": "1"}
"""Environment for a child that :func:`output_after_signal` may abort: Python then prints every thread's stack."""


def output_after_signal(process: subprocess.Popen, timeout: int = 60) -> tuple[str, str]:
    """``(stdout, stderr)`` of ``process`` once it exits after a signal; if it has not exited within ``timeout``
    seconds, abort it and fail the test with every thread's stack (when started with :data:`STACKS_ON_ABORT`),
    so that a hang shows where it is."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        pytest.fail(f"no exit {timeout} s after the signal; the process's threads:\n{stderr[-8000:]}")


def only_line(stderr: str) -> str:
    """The one non-blank line of ``stderr`` (asserting there is exactly one and no traceback)."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def one_sentence_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The error line of a run that exited with code 2 after printing exactly one line holding ``fragments``."""
    assert result.returncode == 2, result.stderr
    line = only_line(result.stderr)
    for fragment in fragments:
        assert fragment in line, line
    return line


OPTIMIZE_IMPORTS_PROBE = (
    "import sys; sys.argv = ['lutgen', 'optimize', *sys.argv[1:]]\n"
    "from lutgen.cli import main\n"
    "code = 0\ntry:\n    main()\nexcept SystemExit as e:\n    code = e.code or 0\n"
    "heavy = ('torch', 'open_clip', 'torch._dynamo', 'timm')\n"
    "print('exit', code, 'heavy', sorted(m for m in heavy if m in sys.modules))\n"
)
"""``python -c OPTIMIZE_IMPORTS_PROBE ARGS``: runs ``lutgen optimize ARGS`` and prints its exit code and
which heavy modules it imported (to show an option error comes before torch and open_clip load, and that
a whole run needs neither torch's compiler nor timm)."""
