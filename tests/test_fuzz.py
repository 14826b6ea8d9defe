"""The fuzz suite: a few hundred hostile cases with a fixed seed must all end cleanly.

What "cleanly" means, and how the cases are made and run, is in ``tests/fuzzing.py``;
``bench/fuzz.py`` runs any number of cases with any seed.
"""

from __future__ import annotations

import pytest

import fuzzing

CI_CASES = 300
CI_SEED = 0


def test_every_case_ends_cleanly():
    outcomes = fuzzing.run_cases(fuzzing.make_cases(CI_CASES, CI_SEED), workers=2)
    failed = [o for o in outcomes if not o.clean]
    report = "\n".join(f"{o.name}: lutgen {' '.join(o.argv)}: {'; '.join(o.problems)}" for o in failed)
    assert not failed, f"{len(failed)} of {len(outcomes)} cases were not clean:\n{report}"
    families = {name for name, _ in fuzzing.tally(outcomes)}
    for kind in ("cube/", "image/", "special/fifo", "special/dev-zero", "special/loop", "model/", "option/"):
        assert any(f.startswith(kind) for f in families), kind


def test_the_same_seed_makes_the_same_cases():
    first, again = fuzzing.make_cases(40, 5), fuzzing.make_cases(40, 5)
    assert [(c.name, c.argv, c.files) for c in first] == [(c.name, c.argv, c.files) for c in again]
    other = fuzzing.make_cases(40, 6)
    assert [c.files for c in first] != [c.files for c in other]


@pytest.mark.parametrize(
    ("exit_code", "stderr", "escaped", "problem"),
    [
        (2, "error: cannot read x.cube: no such file\n", None, None),
        (0, "warning: the EXIF block was left out\n", None, None),
        (2, "\r  0%|          | 0/2 [00:00<?, ?image/s]\r 50%|#####     | 1/2 [00:00<00:00,  6.02image/s]\r"
            "                \rerror: cannot read b.png: it is damaged\n", None, None),
        (2, "Optimizing LUT:  10%|#   | 5/50 [00:01<00:09, 5step/s]\nerror: the loss is not finite\n", None, None),
        (2, "10%|#   | 5/50\nerror: x\n", None, "exactly one"),
        (2, "Traceback (most recent call last):\nValueError: x\n", None, "traceback"),
        (2, "libpng error: bad\nerror: cannot read a.png\n", None, "exactly one"),
        (0, "some noise\n", None, "exit 0 but stderr"),
        (1, "", None, "exit code 1"),
        (130, "error: interrupted\n", None, "exit code 130"),
        (None, "", "Traceback ...\nKeyError: 'x'", "escaped"),
        (None, "", "timeout", "no answer"),
        (2, "error: the machine ran out of memory; try fewer images\n", None, "out of memory"),
    ],
)
def test_the_judge_tells_clean_from_not(exit_code, stderr, escaped, problem):
    problems = fuzzing._judge(exit_code, stderr, escaped)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def _stand_in(behaviour):
    """A stand-in for ``lutgen.cli.main`` that misbehaves as told, to check the runner catches it."""

    def main():
        import os
        import sys
        import time
        from pathlib import Path

        folder = Path(sys.argv[-1])
        if behaviour == "changes-input":
            (folder / "a.cube").write_bytes(b"changed")
        elif behaviour == "leaves-part":
            (folder / ".graded.1234.part.png").write_bytes(b"half")
        elif behaviour == "hangs":
            time.sleep(30)
        elif behaviour == "grabs-memory":
            block = bytearray(600 << 20)
            block[:: 4096] = b"x" * len(block[:: 4096])
        elif behaviour == "native-noise":
            os.write(2, b"libpng error: IDAT: incorrect data check\n")
            sys.stderr.write("error: cannot read a.png: it is damaged\n")
            sys.exit(2)
        sys.exit(0)

    return main


@pytest.mark.parametrize(
    ("behaviour", "problem"),
    [
        ("changes-input", "inputs changed"),
        ("leaves-part", "half-written"),
        ("hangs", "no answer"),
        ("grabs-memory", "peak memory rose"),
        ("native-noise", "exactly one"),
    ],
)
def test_the_runner_catches_each_kind_of_failure(tmp_path, behaviour, problem):
    case = fuzzing.Case(f"probe/{behaviour}", ["info", "{dir}"], {"a.cube": b"LUT_3D_SIZE 2\n"})
    outcome = fuzzing._run_one(case, tmp_path / "case", _stand_in(behaviour), limit=1.0)
    assert any(problem in p for p in outcome.problems), outcome.problems
