"""Benchmark: applying a 33^3 LUT to a 4000x3000 8-bit image on the CPU.

Compares, in one run on the same image and LUT (median of several runs each):

- Pillow ``ImageFilter.Color3DLUT`` (8-bit, C; the reference point),
- ``lutgen.color.cpu.apply_lut_array`` on uint8, trilinear and tetrahedral, after compilation,
- the same on a float32 array,
- ``lutgen.color.torch_ops.apply_lut`` (``grid_sample``) on a float32 ``(1, 3, H, W)`` tensor.

The methods are called in turn, round after round, so that load from other processes on a shared
machine falls on all of them alike; the table shows the median and the minimum.

It also times the first call of a fresh process twice, with an empty kernel cache (compilation) and
with the cache filled (loading), and reports the extra memory a call needs beyond its input. The first
call imports the kernel's compiler: llvmlite for 8-bit trilinear grading, Numba for tetrahedral.

Run: ``.venv/bin/python bench/bench_apply.py [--repeat 7] [--image images/china.jpg]``
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
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lutgen.lut import LUT, grid  # noqa: E402

WIDTH, HEIGHT, SIZE = 4000, 3000, 33


def bench_lut(size: int = SIZE) -> LUT:
    """A deterministic, smooth but clearly nonlinear grade: gamma, a hue twist and a contrast curve."""
    g = grid(size)
    r, gg, b = g[..., 0], g[..., 1], g[..., 2]
    out = np.stack([r**0.8 + 0.06 * np.sin(5 * gg), gg**1.1 + 0.05 * np.sin(4 * b), b**0.9 + 0.07 * np.sin(6 * r)], -1)
    out = 0.5 + 1.15 * (out - 0.5)
    return LUT(out, title="bench")


def bench_image(path: Path) -> np.ndarray:
    """The photo at ``path`` resized (bicubic) to 4000x3000, uint8 ``(H, W, 3)``."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((WIDTH, HEIGHT), Image.BICUBIC))


def round_robin_times(methods: dict, repeat: int) -> dict[str, list[float]]:
    """Seconds per call of each method, ``repeat`` rounds calling each once in turn.

    Interleaving spreads any load from other processes over all methods alike.
    """
    times = {name: [] for name in methods}
    for _ in range(repeat):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def _memory_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MiB, from ``/proc/self/status`` (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak_memory() -> float:
    """Reset this process's peak resident size to the current one (Linux) and return it in MiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _memory_mib("VmRSS")


def first_call_child(image_path: str, interpolation: str) -> None:
    """In a fresh process: seconds to import and for the first call; peak MiB added by the 1st and 2nd calls."""
    start = time.perf_counter()
    from lutgen.color.cpu import apply_lut_array

    imported = time.perf_counter() - start
    pixels = bench_image(Path(image_path))
    lut = bench_lut()
    before = _reset_peak_memory()
    start = time.perf_counter()
    out = apply_lut_array(pixels, lut, interpolation)
    first = time.perf_counter() - start
    first_extra = _memory_mib("VmHWM") - before
    del out
    before = _reset_peak_memory()
    apply_lut_array(pixels, lut, interpolation)
    second_extra = _memory_mib("VmHWM") - before
    print(f"{imported:.3f} {first:.3f} {first_extra:.1f} {second_extra:.1f}")


def first_calls(image: Path, interpolation: str) -> dict[str, float]:
    """A fresh process's import and first call with a cold then a warm kernel cache, and the memory added.

    The cache is a new ``NUMBA_CACHE_DIR``, which the LLVM kernel's cache follows too.
    """
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, __file__, "--child", interpolation, "--image", str(image)],
                env=env, capture_output=True, text=True, check=True,
            )
            rows.append([float(v) for v in done.stdout.split()])
    return {"import": rows[1][0], "compile": rows[0][1], "cached": rows[1][1], "first_mib": rows[1][2],
            "later_mib": rows[1][3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=ROOT / "images" / "china.jpg")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--child", choices=["trilinear", "tetrahedral"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        first_call_child(str(args.image), args.child)
        return

    from lutgen.color.cpu import apply_lut_array

    pixels = bench_image(args.image)
    lut = bench_lut()
    print(f"image {args.image.name} resized to {WIDTH}x{HEIGHT}, LUT {SIZE}^3, {os.cpu_count()} CPUs")

    colds = {interp: first_calls(args.image, interp) for interp in ("trilinear", "tetrahedral")}

    import torch

    from lutgen.color import torch_ops

    pil_image = Image.fromarray(pixels)
    pil_filter = ImageFilter.Color3DLUT(SIZE, lut.table.reshape(-1).tolist())
    floats = pixels.astype(np.float32) / 255
    tensor = torch.from_numpy(floats).permute(2, 0, 1).unsqueeze(0).contiguous()
    table = torch.from_numpy(lut.table).float()
    methods = {
        "Pillow Color3DLUT (uint8)": lambda: pil_image.filter(pil_filter),
        "lutgen cpu trilinear (uint8)": lambda: apply_lut_array(pixels, lut, "trilinear"),
        "lutgen cpu tetrahedral (uint8)": lambda: apply_lut_array(pixels, lut, "tetrahedral"),
        "lutgen cpu trilinear (float32)": lambda: apply_lut_array(floats, lut, "trilinear"),
        "torch grid_sample (float32, CPU)": lambda: torch_ops.apply_lut(tensor, table),
    }
    with torch.no_grad():
        outputs = {name: run() for name, run in methods.items()}  # also compiles or loads the kernels
        times = round_robin_times(methods, args.repeat)

    reference = statistics.median(times["Pillow Color3DLUT (uint8)"])
    print(f"\n{'method':36s} {'median s':>9s} {'min s':>7s} {'median vs Pillow':>17s}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:36s} {median:9.3f} {min(samples):7.3f} {median / reference:16.2f}x")
    print(f"({args.repeat} rounds, methods interleaved; lutgen's kernels and torch used {torch.get_num_threads()} "
          "threads)")

    print(f"\n{'fresh process (uint8)':24s} {'import':>7s} {'1st call':>9s} {'1st call':>9s} {'MiB added':>10s} "
          f"{'MiB added':>10s}")
    print(f"{'':24s} {'':>7s} {'no cache':>9s} {'cached':>9s} {'1st call':>10s} {'2nd call':>10s}")
    for interp, row in colds.items():
        print(f"{'lutgen cpu ' + interp:24s} {row['import']:7.3f} {row['compile']:9.3f} {row['cached']:9.3f} "
              f"{row['first_mib']:10.1f} {row['later_mib']:10.1f}")
    print(f"(input and output are {pixels.nbytes / 2**20:.1f} MiB each; the 1st call imports llvmlite "
          "(trilinear) or numba (tetrahedral))")

    ours = outputs["lutgen cpu trilinear (uint8)"].astype(int)
    pil_out = np.asarray(outputs["Pillow Color3DLUT (uint8)"]).astype(int)
    torch_out = outputs["torch grid_sample (float32, CPU)"][0].permute(1, 2, 0).numpy()
    tetra = outputs["lutgen cpu tetrahedral (uint8)"].astype(int)
    print("\nagreement on this image (8-bit code values):")
    print(f"  cpu trilinear vs Pillow: max {np.abs(ours - pil_out).max()}, mean {np.abs(ours - pil_out).mean():.4f}")
    torch_codes = np.clip(np.floor(torch_out * 255 + 0.5), 0, 255)
    print(f"  cpu trilinear vs torch grid_sample (rounded): max {np.abs(ours - torch_codes).max():.0f}")
    print(f"  cpu tetrahedral vs trilinear: max {np.abs(tetra - ours).max()}")


if __name__ == "__main__":
    main()
