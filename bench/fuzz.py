"""Throw any number of hostile inputs at lutgen and print the tally.

    uv run python bench/fuzz.py                 # 1000 cases, seed 0
    uv run python bench/fuzz.py -n 5000 --seed 7 --workers 2

Each case is one command (``info``, ``infer``, ``convert``, ``enhance``, ``optimize``, ``fit``, ``match``,
``train``) over a mutated ``.cube``, a mutated file of another LUT format (``.3dl``, ``.csp``,
``.spi3d``, ``.spi1d``, CLF, a Hald image), a mutated image, a damaged weights file, a special file or
a hostile option value. A case
is clean when it exits 0, or 2 after one ``error:`` line, without a traceback, a hang, a big jump in
memory, a changed input or a half-written file (see ``tests/fuzzing.py``). The failures are listed
with their command lines; the same seed and count reproduce them. Exit status 1 when any failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzzing  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    start = time.monotonic()
    cases = fuzzing.make_cases(args.cases, args.seed)
    done = [0]

    def progress(outcome):
        done[0] += 1
        if not outcome.clean:
            print(f"FAILED {outcome.name}: {'; '.join(outcome.problems)}", flush=True)
        elif done[0] % 100 == 0:
            print(f"{done[0]}/{len(cases)} cases", flush=True)

    outcomes = fuzzing.run_cases(cases, workers=args.workers, progress=progress)
    seconds = time.monotonic() - start

    print(f"\n{'family':32} {'clean':>6} {'failed':>7}")
    counts = fuzzing.tally(outcomes)
    for family in sorted({f for f, _ in counts}):
        print(f"{family:32} {counts[(family, 'clean')]:6d} {counts[(family, 'FAILED')]:7d}")
    failed = [o for o in outcomes if not o.clean]
    slowest = max(outcomes, key=lambda o: o.seconds)
    print(f"\n{len(outcomes) - len(failed)} clean, {len(failed)} failed, seed {args.seed}, {seconds:.1f} s "
          f"({seconds / len(outcomes) * 1000:.0f} ms a case; slowest {slowest.seconds:.2f} s: {slowest.name})")
    for outcome in failed:
        print(f"\n{outcome.name}\n  lutgen {' '.join(outcome.argv)}\n  " + "\n  ".join(outcome.problems))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
