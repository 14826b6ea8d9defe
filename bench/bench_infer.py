"""Whole-process cost of ``lutgen infer`` on a 4000x3000 JPEG with a 33^3 LUT.

Every row is a fresh Python process, timed from outside (wall clock) with its peak resident
memory, so imports count as they do for a user. The reference row, measured in the same run,
is a Pillow-only process doing the same job at 8-bit precision (decode, ``Color3DLUT``, JPEG
encode). Run: ``uv run python bench/bench_infer.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

PILLOW_JOB = """
import sys
from PIL import Image, ImageFilter
from lutgen_bench_lut import table, size
image = Image.open(sys.argv[1]).convert("RGB")
lut = ImageFilter.Color3DLUT(size, table)
image.filter(lut).save(sys.argv[2], quality=95)
"""

LUTGEN_JOB = """
import sys
sys.argv = ["lutgen", "infer", *sys.argv[1:]]
from lutgen.cli import main
try:
    main()
except SystemExit as exit_:
    if exit_.code:
        raise
heavy = [m for m in ("torch", "open_clip") if m in sys.modules]
assert not heavy, f"infer imported {heavy}"
"""


def make_inputs(folder: Path) -> tuple[Path, Path]:
    """A 4000x3000 JPEG made from a bundled photo, and a smooth nonlinear 33^3 .cube."""
    photo = Image.open(ROOT / "images" / "mate_garden.jpg").convert("RGB").resize((4000, 3000), Image.LANCZOS)
    jpeg = folder / "photo_4000x3000.jpg"
    photo.save(jpeg, quality=92)

    n = 33
    axis = np.linspace(0.0, 1.0, n)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    rgb = np.stack([r, g, b], axis=-1)
    graded = np.clip(rgb ** 0.8 + 0.05 * np.sin(6 * rgb[..., ::-1]), 0, 1)
    cube = folder / "look_33.cube"
    rows = "\n".join(f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in graded.reshape(-1, 3))
    cube.write_text(f'TITLE "bench"\nLUT_3D_SIZE {n}\n\n{rows}\n')
    (folder / "lutgen_bench_lut.py").write_text(
        f"size = {n}\ntable = {graded.reshape(-1).round(6).tolist()!r}\n"
    )
    return jpeg, cube


def run_process(args: list[str], cwd: Path, bytecode: bool) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process.

    ``bytecode=False`` recompiles every imported module from source, as on machines that set
    PYTHONDONTWRITEBYTECODE; ``bytecode=True`` lets Python cache it, as on a user's machine.
    """
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    start = time.perf_counter()
    with subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL) as child:
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode:
        raise SystemExit(f"{args} failed with exit code {child.returncode}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jpeg, cube = make_inputs(folder)
        jobs = {
            "Pillow Color3DLUT, 8-bit (reference)": [sys.executable, "-c", PILLOW_JOB, str(jpeg), "pillow.jpg"],
            "lutgen infer, trilinear": [
                sys.executable, "-c", LUTGEN_JOB, str(cube), str(jpeg), "-o", "lutgen_tri.jpg"
            ],
            "lutgen infer, tetrahedral": [
                sys.executable, "-c", LUTGEN_JOB, str(cube), str(jpeg), "-o", "lutgen_tet.jpg",
                "--interpolation", "tetrahedral",
            ],
        }
        results = {}
        for bytecode in (False, True):
            # One warm-up of each, so the compiled-kernel (and bytecode) caches exist as on a user's machine.
            for args in jobs.values():
                run_process(args, folder, bytecode)
            for name, args in jobs.items():
                runs = [run_process(args, folder, bytecode) for _ in range(options.repeat)]
                results[name, bytecode] = (statistics.median(w for w, _ in runs), max(m for _, m in runs))

    print(f"4000x3000 JPEG, 33^3 LUT, fresh process each, median of {options.repeat}, {os.cpu_count()} CPUs")
    print(f"{'job':42s} {'.pyc':>5s} {'wall s':>8s} {'x ref':>7s} {'peak MB':>8s}")
    for (name, bytecode), (wall, peak) in results.items():
        reference = results["Pillow Color3DLUT, 8-bit (reference)", bytecode][0]
        print(f"{name:42s} {'yes' if bytecode else 'no':>5s} {wall:8.2f} {wall / reference:7.2f} {peak:8.0f}")
    print(".pyc no: every import compiled from source (PYTHONDONTWRITEBYTECODE=1, as on the CI machines)")
    print("recorded elsewhere (not this run): the reference text-to-LUT tool's infer, 12-13 s and 1.28 GB")


if __name__ == "__main__":
    main()
