"""Whole-process cost of ``lutgen infer`` against ffmpeg's ``lut3d``, measured in the same run.

1. One photo: a 4000x3000 JPEG (quality 92) graded with a 33^3 ``.cube`` as a fresh process, wall time
   and peak resident memory, against ``ffmpeg -i IN -vf lut3d=file=LUT OUT.jpg``. Then where lutgen's
   time goes: Python's start, each import (llvmlite, for the 8-bit trilinear kernel), the kernel's
   loading from its disk cache, the ``.cube`` read, decoding, grading and encoding (with EXIF/ICC),
   timed one after another in a fresh process, and the slowest imports from ``python -X importtime``.
   (``lutgen infer`` itself overlaps the kernel's loading with the decoding, so its wall time is less
   than the sum.)
2. A shoot: ``--photos`` 12-megapixel JPEGs (quality 92, made from the bundled photos) graded into a
   folder by one ``lutgen infer FOLDER -d OUT`` (every core, and ``--jobs 1``), photos per second and
   peak memory, against ffmpeg run once per photo in sequence, the way people script it.

Every row is a fresh process timed from outside; each figure is the best of ``--repeat`` runs, after one
warm-up run of each (so the kernel caches and Python's bytecode exist, as on a user's machine).
Run: ``uv run python bench/bench_infer.py [--repeat 3] [--photos 24] [--no-shoot]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FFMPEG = shutil.which("ffmpeg")

LUTGEN_JOB = """
import sys
sys.argv = ["lutgen", "infer", *sys.argv[1:]]
from lutgen.cli import main
try:
    main()
except SystemExit as exit_:
    if exit_.code:
        raise
heavy = [m for m in ("torch", "open_clip", "av") if m in sys.modules]
if "tetrahedral" not in sys.argv:  # 8-bit trilinear grading runs the LLVM kernel, not Numba's
    heavy += [m for m in ("numba",) if m in sys.modules]
assert not heavy, f"infer imported {heavy}"
"""

# The steps of `lutgen infer` on one photo, one after another, each timed (printed as "name seconds").
PHASES_JOB = """
import sys, time
start = time.perf_counter()
def step(name):
    global start
    now = time.perf_counter()
    print(name, now - start)
    start = now
import typer, click
step("import typer (CLI)")
import lutgen.cli, lutgen.cli.commands
step("import lutgen's commands")
import numpy
step("import numpy")
from PIL import Image, JpegImagePlugin
step("import Pillow")
from dataclasses import replace
from lutgen.formats import read_lut
from lutgen.imaging import load_image, save_image
from lutgen.tasks.infer import infer
step("import lutgen's infer task")
import llvmlite.binding
step("import llvmlite")
from lutgen.color import cpu
cpu.warm_up(numpy.uint8)
step("compile/load the 8-bit kernel")
lut = read_lut(sys.argv[1])
step("read the .cube")
image = load_image(sys.argv[2])
step("decode the JPEG")
graded = cpu.apply_lut_array(image.rgb, lut)
step("grade")
save_image(replace(image, rgb=graded), sys.argv[3])
step("encode the JPEG (with EXIF/ICC)")
"""


def make_photo(source: Path, target: Path, size=(4000, 3000)) -> None:
    """A ``size`` JPEG at quality 92 from a bundled photo."""
    Image.open(source).convert("RGB").resize(size, Image.LANCZOS).save(target, quality=92)


def make_cube(folder: Path) -> Path:
    """A smooth nonlinear 33^3 ``.cube``."""
    n = 33
    axis = np.linspace(0.0, 1.0, n)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    rgb = np.stack([r, g, b], axis=-1)
    graded = np.clip(rgb ** 0.8 + 0.05 * np.sin(6 * rgb[..., ::-1]), 0, 1)
    cube = folder / "look_33.cube"
    rows = "\n".join(f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in graded.reshape(-1, 3))
    cube.write_text(f'TITLE "bench"\nLUT_3D_SIZE {n}\n\n{rows}\n')
    return cube


def lutgen_env() -> dict[str, str]:
    """The environment of every timed process: lutgen importable, no hub, and Python's bytecode written.

    ``PYTHONDONTWRITEBYTECODE`` is dropped: with it, every start compiles the sources of the packages that
    have no bytecode yet (Typer's alone cost 70 ms here), which no user's machine pays after the first run.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_process(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process (its output discarded)."""
    env = lutgen_env()
    start = time.perf_counter()
    with subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as child:
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        errors = child.stderr.read().decode(errors="replace")
    wall = time.perf_counter() - start
    if child.returncode:
        raise SystemExit(f"{args} failed with exit code {child.returncode}: {errors[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def run_sequence(commands: list[list[str]], cwd: Path) -> tuple[float, float]:
    """Wall seconds of running ``commands`` one after another, and the largest peak RSS (MB) among them."""
    start = time.perf_counter()
    peak = max(run_process(command, cwd)[1] for command in commands)
    return time.perf_counter() - start, peak


def best_of(repeat: int, measure) -> tuple[float, float]:
    """One warm-up call of ``measure()``, then the least wall time and the largest peak of ``repeat`` calls."""
    measure()
    runs = [measure() for _ in range(repeat)]
    return min(wall for wall, _ in runs), max(peak for _, peak in runs)


def ffmpeg_command(source: Path, cube: Path, target: Path, interp: str = "trilinear") -> list[str]:
    return [FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", str(source),
            "-vf", f"lut3d=file={cube}:interp={interp}", str(target)]


def lutgen_command(*args) -> list[str]:
    return [sys.executable, "-c", LUTGEN_JOB, *map(str, args)]


def single_photo(folder: Path, cube: Path, repeat: int) -> None:
    photo = folder / "photo_4000x3000.jpg"
    make_photo(ROOT / "images" / "mate_garden.jpg", photo)
    rows = {}
    if FFMPEG:
        rows["ffmpeg lut3d (reference)"] = best_of(
            repeat, lambda: run_process(ffmpeg_command(photo, cube, folder / "ffmpeg.jpg"), folder))
    rows["lutgen infer, trilinear"] = best_of(
        repeat, lambda: run_process(lutgen_command(cube, photo, "-o", "lutgen_tri.jpg"), folder))
    rows["lutgen infer, tetrahedral"] = best_of(repeat, lambda: run_process(
        lutgen_command(cube, photo, "-o", "lutgen_tet.jpg", "--interpolation", "tetrahedral"), folder))
    reference = rows.get("ffmpeg lut3d (reference)", (None,))[0]
    print(f"One 4000x3000 JPEG, 33^3 LUT, fresh process each, best of {repeat}, {os.cpu_count()} CPUs")
    print(f"{'job':34s} {'wall s':>8s} {'x ffmpeg':>9s} {'peak MB':>8s}")
    for name, (wall, peak) in rows.items():
        ratio = f"{wall / reference:9.2f}" if reference else f"{'-':>9s}"
        print(f"{name:34s} {wall:8.2f} {ratio} {peak:8.0f}")
    breakdown(folder, cube, photo, repeat)


def breakdown(folder: Path, cube: Path, photo: Path, repeat: int) -> None:
    """Where one photo's time goes: each step of infer, best of ``repeat`` fresh processes."""
    env = lutgen_env()
    steps: dict[str, float] = {}
    python = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
        python.append(time.perf_counter() - start)
        out = subprocess.run([sys.executable, "-c", PHASES_JOB, str(cube), str(photo), "phases.jpg"], cwd=folder,
                             env=env, check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            name, seconds = line.rsplit(" ", 1)
            steps[name] = min(steps.get(name, float("inf")), float(seconds))
    print(f"\nWhere the time goes (each step alone, in order, best of {repeat + 1}):")
    print(f"  {'python start (python -c pass)':34s} {min(python) * 1000:6.0f} ms")
    for name, seconds in steps.items():
        print(f"  {name:34s} {seconds * 1000:6.0f} ms")
    print(f"  {'sum':34s} {(min(python) + sum(steps.values())) * 1000:6.0f} ms")
    imports = subprocess.run([sys.executable, "-X", "importtime", "-c", LUTGEN_JOB, str(cube), str(photo), "-o",
                              "importtime.jpg"], cwd=folder, env=env, check=True, capture_output=True, text=True)
    slowest = []
    for line in imports.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(2)) <= 3:  # top-level imports and their direct children
            slowest.append((int(match.group(1)), match.group(2), match.group(3)))
    print("Slowest imports of lutgen infer (python -X importtime, cumulative, top level and one below):")
    for micros, indent, name in sorted(slowest, reverse=True)[:10]:
        print(f"  {indent}{name:{40 - len(indent)}s} {micros / 1000:6.0f} ms")


def shoot(folder: Path, cube: Path, photos: int, repeat: int) -> None:
    sources = sorted((ROOT / "images").glob("mate_*.jpg")) or sorted((ROOT / "images").glob("*.jpg"))
    shoot_folder = folder / "shoot"
    shoot_folder.mkdir()
    for index in range(photos):
        make_photo(sources[index % len(sources)], shoot_folder / f"IMG_{index:04d}.jpg")
    inputs = sorted(shoot_folder.iterdir())
    rows = {}
    if FFMPEG:
        (folder / "ffmpeg_out").mkdir()
        commands = [ffmpeg_command(p, cube, folder / "ffmpeg_out" / p.name) for p in inputs]
        rows["ffmpeg lut3d, once per photo (reference)"] = best_of(repeat, lambda: run_sequence(commands, folder))
    jobs_all = lutgen_command(cube, shoot_folder, "-d", folder / "out_all")
    rows["lutgen infer FOLDER (every core)"] = best_of(repeat, lambda: run_process(jobs_all, folder))
    jobs_one = lutgen_command(cube, shoot_folder, "-d", folder / "out_one", "--jobs", "1")
    rows["lutgen infer FOLDER --jobs 1"] = best_of(repeat, lambda: run_process(jobs_one, folder))
    reference = rows.get("ffmpeg lut3d, once per photo (reference)", (None,))[0]
    print(f"\nA shoot: {photos} JPEGs of 4000x3000 (quality 92) into a folder, best of {repeat}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'job':42s} {'wall s':>7s} {'photos/s':>9s} {'x ffmpeg':>9s} {'peak MB':>8s}")
    for name, (wall, peak) in rows.items():
        ratio = f"{reference / wall:9.2f}" if reference else f"{'-':>9s}"
        print(f"{name:42s} {wall:7.2f} {photos / wall:9.2f} {ratio} {peak:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each row (after one warm-up)")
    parser.add_argument("--photos", type=int, default=24, help="photos in the shoot")
    parser.add_argument("--no-single", action="store_true", help="skip the one-photo case")
    parser.add_argument("--no-shoot", action="store_true", help="skip the shoot")
    options = parser.parse_args()
    if not FFMPEG:
        print("ffmpeg was not found: lutgen's rows only")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cube = make_cube(folder)
        if not options.no_single:
            single_photo(folder, cube, options.repeat)
        if not options.no_shoot:
            shoot(folder, cube, options.photos, options.repeat)


if __name__ == "__main__":
    main()
