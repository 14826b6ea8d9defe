"""Time reading and writing a 65^3 ``.cube`` file: lutgen against colour-science, in one run.

Both read the same file (written by lutgen with 6 decimals; values in -0.2..1.2 so signs and
lengths vary); each writes its own. Times are the median of ``--repeat`` runs in this process,
after one untimed warm-up. Run: ``uv run python bench/bench_cube_io.py [--size 65] [--repeat 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from lutgen.formats import read_lut, write_lut
from lutgen.lut import LUT


def median_seconds(job, repeat: int) -> float:
    job()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=65)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # colour warns that SciPy and Matplotlib are missing
        import colour

    rng = np.random.default_rng(0)
    n = args.size
    lut = LUT(rng.uniform(-0.2, 1.2, (n, n, n, 3)))
    colour_lut = colour.LUT3D(lut.table.transpose(2, 1, 0, 3))  # colour indexes [r, g, b]

    with tempfile.TemporaryDirectory() as folder:
        shared = Path(folder) / "shared.cube"
        write_lut(lut, shared)
        ours_back, colour_back = read_lut(shared), colour.read_LUT(str(shared))
        assert np.array_equal(ours_back.table.transpose(2, 1, 0, 3), colour_back.table)

        rows = [
            (
                "read",
                median_seconds(lambda: read_lut(shared), args.repeat),
                median_seconds(lambda: colour.read_LUT(str(shared)), args.repeat),
            ),
            (
                "write",
                median_seconds(lambda: write_lut(lut, Path(folder) / "lutgen.cube"), args.repeat),
                median_seconds(
                    lambda: colour.write_LUT(colour_lut, str(Path(folder) / "colour.cube")), args.repeat
                ),
            ),
        ]
        size_mb = shared.stat().st_size / 1e6

    print(f".cube I/O, {n}^3 table ({size_mb:.1f} MB file), median of {args.repeat} runs")
    print(f"| operation | lutgen s | colour-science {colour.__version__} s | colour / lutgen |")
    print("|---|---|---|---|")
    for name, ours, theirs in rows:
        print(f"| {name} | {ours:.4f} | {theirs:.4f} | {theirs / ours:.1f}x |")


if __name__ == "__main__":
    main()
