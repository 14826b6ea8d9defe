"""Time reading and writing every LUT format lutgen knows, against colour-science, in one run.

For each extension of :data:`lutgen.formats.FORMATS` whose module is present, lutgen writes a
random LUT (values 0..1) and reads that file back; colour-science (``colour.read_LUT`` and
``colour.write_LUT``) reads the same file and writes its own, where it knows the format (``.cube``,
``.spi3d``, ``.csp``, ``.spi1d``; not ``.3dl``, CLF or Hald images: ``n/a``). 3D formats are timed at
``--size`` (65) nodes per axis, Hald images at the nearest Hald lattice (64^3, level 8) and ``.spi1d``
with a 1D LUT of ``--size-1d`` (4096) entries. Times are the median of ``--repeat`` runs after one
untimed warm-up. Run: ``uv run python bench/bench_formats.py [--size 65] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from lutgen.formats import FORMATS, read_lut, write_lut
from lutgen.lut import LUT, Shaper

ONE_D = (".spi1d",)
HALD = (".png", ".tif", ".tiff")


def median_seconds(job, repeat: int) -> float:
    job()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def lut_for(extension: str, size: int, size_1d: int, rng: np.random.Generator) -> LUT:
    """The LUT timed for ``extension``: 1D for 1D formats, 64^3 for Hald images, else ``size``^3."""
    if extension in ONE_D:
        return LUT(None, shaper=Shaper(np.sort(rng.uniform(0, 1, (size_1d, 3)), axis=0)))
    n = 64 if extension in HALD else size
    return LUT(rng.uniform(0, 1, (n, n, n, 3)))


def colour_lut(colour, lut: LUT):
    """The same LUT as a colour-science object (colour indexes 3D tables ``[r, g, b]``)."""
    if lut.table is None:
        return colour.LUT3x1D(lut.shaper.table)
    return colour.LUT3D(lut.table.transpose(2, 1, 0, 3))


def colour_read_seconds(colour, shared: Path, own: Path, repeat: int) -> tuple[float, str]:
    """colour-science reading lutgen's file, or its own file (with a note) when it cannot read lutgen's."""
    try:
        colour.read_LUT(str(shared))
    except Exception as error:  # noqa: BLE001 - a benchmark reports, it does not stop
        note = f"  (colour cannot read lutgen's file: {type(error).__name__}; timed on its own file)"
        return median_seconds(lambda: colour.read_LUT(str(own)), repeat), note
    return median_seconds(lambda: colour.read_LUT(str(shared)), repeat), ""


def present(extension: str) -> bool:
    try:
        importlib.import_module(FORMATS[extension])
    except ModuleNotFoundError:
        return False
    return True


def show(seconds: float | None) -> str:
    return f"{'n/a':>8s}" if seconds is None else f"{seconds:8.3f}"


def ratio(ours: float, theirs: float | None) -> str:
    return "n/a" if theirs is None else f"{theirs / ours:6.1f}x"


def bench_format(extension: str, lut: LUT, folder: Path, colour, repeat: int) -> None:
    """Print one row: lutgen's and colour-science's read and write times for ``extension``."""
    from colour.io.luts import MAPPING_EXTENSION_TO_LUT_FORMAT

    nodes = f"{lut.shaper.size}" if lut.table is None else f"{lut.size}^3"
    shared, theirs_path = folder / f"shared{extension}", folder / f"colour{extension}"
    write = median_seconds(lambda: write_lut(lut, shared), repeat)
    read = median_seconds(lambda: read_lut(shared), repeat)
    colour_read = colour_write = None
    note = ""
    if extension in MAPPING_EXTENSION_TO_LUT_FORMAT:
        theirs = colour_lut(colour, lut)
        colour_write = median_seconds(lambda: colour.write_LUT(theirs, str(theirs_path)), repeat)
        colour_read, note = colour_read_seconds(colour, shared, theirs_path, repeat)
    print(
        f"{extension:8s} {nodes:>8s}  {show(read)} {show(colour_read)} {ratio(read, colour_read):>7s}   "
        f"{show(write)} {show(colour_write)} {ratio(write, colour_write):>7s}{note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=65)
    parser.add_argument("--size-1d", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # colour warns that SciPy and Matplotlib are missing
        import colour

    rng = np.random.default_rng(0)
    columns = f"{'read s':>8s} {'colour':>8s} {'faster':>7s}   {'write s':>8s} {'colour':>8s} {'faster':>7s}"
    print(f"{'format':8s} {'nodes':>8s}  {columns}")
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for extension in FORMATS:
            if not present(extension):
                print(f"{extension:8s} (module {FORMATS[extension]} not present)")
                continue
            bench_format(extension, lut_for(extension, args.size, args.size_1d, rng), Path(folder), colour, args.repeat)


if __name__ == "__main__":
    main()
