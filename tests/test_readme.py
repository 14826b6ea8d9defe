"""The README's promises: every test it names exists, and the limits it states are the code's."""

from __future__ import annotations

import ast
import re

from cli_runner import ROOT

README = (ROOT / "README.md").read_text()


def _guarantees() -> str:
    return README.split("## What lutgen guarantees", 1)[1].split("\n## ", 1)[0]


def _test_names(path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_guarantee_names_tests_that_exist():
    section = _guarantees()
    promises = re.split(r"\n\d+\. ", section)[1:]
    assert len(promises) >= 7
    for promise in promises:
        named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", promise)
        assert named, f"a promise names no test: {promise[:80]}"
        for file, name in named:
            assert (ROOT / file).is_file(), file
            assert name in _test_names(ROOT / file), f"{file}::{name} does not exist"


def test_the_stated_limits_are_the_codes():
    from lutgen.formats import cube, cube_lines
    from lutgen.imaging import MAX_PIXELS
    from lutgen.lut import MAX_1D_SIZE, MAX_3D_SIZE, MIN_1D_SIZE, MIN_3D_SIZE
    from lutgen.tasks import optimize_plan

    section = _guarantees()
    assert f"| image size, every command | {MAX_PIXELS // 1_000_000} megapixels" in section
    assert f"| `.cube` 3D / 1D size | {MIN_3D_SIZE}..{MAX_3D_SIZE} / {MIN_1D_SIZE}..{MAX_1D_SIZE} |" in section
    assert f"| `.cube` line length | {cube_lines.MAX_LINE_BYTES // 1024} KiB |" in section
    assert f"| `.cube` comment lines | {cube.MAX_COMMENT_LINES:,} |" in section
    assert f"{cube.SLACK_BYTES >> 20} MiB + {cube.ROW_BYTES} bytes for each row" in section
    assert f"`--steps` 1..{optimize_plan.MAX_STEPS:,}; `--lut-size` 2..{optimize_plan.MAX_LUT_SIZE}" in section
    assert f"`--batch-size` 1..{optimize_plan.MAX_BATCH_SIZE}" in section
    assert f"prompts up to {optimize_plan.MAX_PROMPT_CHARACTERS} characters" in section


def test_the_exit_codes_are_the_codes():
    from lutgen.errors import INTERRUPT_EXIT_CODE, TERMINATE_EXIT_CODE, LutgenError

    section = _guarantees()
    assert f"Ctrl-C exits with code {INTERRUPT_EXIT_CODE} and SIGTERM with\n   {TERMINATE_EXIT_CODE}" in section
    assert f"exit code {LutgenError.exit_code}**" in section
