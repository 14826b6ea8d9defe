"""Looks per hour: ``lutgen library`` with K prompts against ``optimize`` run K times in sequence.

Usage::

    python bench/bench_library.py [--looks 1,4,16] [--steps 10] [--images 8] [--device cpu]

Both sides run in this process, with the random-weight ViT-B-32 (made once, saved as a safetensors file
as published weights are: :func:`bench_optimize.random_weights_file`) and the bundled photos shrunk to
512 px (the first ``--images`` of them), at the defaults (LUT 16, batch 4 views per look, structured
LUT, ``--clip-precision auto``) but for ``--steps``:

- ``sequential``: :func:`lutgen.tasks.optimize.optimize` once per prompt, each paying what a user's
  ``lutgen optimize`` pays apart from starting Python: resolving and loading CLIP, decoding the
  images, embedding the prompt, the steps, writing the ``.cube``;
- ``library``: :func:`lutgen.tasks.library.library` once for the K prompts with ``--batch-looks K``:
  CLIP loaded and the images decoded once, the K prompts embedded once, K looks per CLIP pass; each
  look's ``.cube``, record, thumbnails and CLIP score before/after written as it finishes, then
  ``library.json`` and ``index.html``.

For each K the two are timed in the same run, one after the other (wall time and this process's
CPU time); the ratio is looks per hour of the library over looks per hour of the sequence (goal on
a CPU: at least 1.2 at K = 16; on a GPU: at least 4). With few steps the shared fixed costs weigh
more than in real runs of hundreds of steps; ``--steps`` sets how many. Both sides are warmed up
once (imports, compiled kernels) before anything is timed.

Measured on the 2-core AVX-512 Xeon (float32 CLIP), torch 2.15, 2 threads, 10 steps, 8 photos, with
other work on the machine at times (so the figures are rough):

| K | sequential looks/h | library looks/h | x sequential (wall) | x sequential (CPU) |
|---|---|---|---|---|
| 1 | 460 | 463 | 1.01 | 1.00 |
| 4 | 443 | 580 | 1.31 | 1.30 |
| 16 | 495 | 688 | 1.39 | 1.37 |

(K = 16 from a second, quieter run; in the first, others' work slowed the sequential side to 122
looks/h and gave 2.60, which is not the library's doing.) Goal at K = 16 on a CPU (1.2) met.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PROMPTS = ("golden hour warm sunlight", "moody teal night", "faded film", "bleach bypass", "cross processed",
           "pastel spring morning", "noir black and white", "cyberpunk neon", "autumn forest", "desert heat",
           "arctic blue", "vintage polaroid", "sepia memories", "high key fashion", "muted documentary",
           "vivid travel postcard")


def _quiet(text: str) -> None:
    pass


def _timed(work) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``work()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def sequential(defaults, prompts: list[str], folder: Path) -> tuple[float, float]:
    from lutgen.tasks.optimize import optimize

    def work() -> None:
        for index, prompt in enumerate(prompts):
            optimize(replace(defaults, prompt=(prompt,), seed=index, output_path=folder / f"{index}.cube"),
                     echo=_quiet, warn=_quiet)

    return _timed(work)


def library_run(defaults, prompts: list[str], folder: Path, k: int) -> tuple[float, float]:
    from lutgen.tasks.library import LibraryOptions, library

    folder.mkdir(parents=True, exist_ok=True)
    prompts_file = folder / "prompts.txt"
    prompts_file.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    return _timed(lambda: library(LibraryOptions(prompts_file, folder / "luts", defaults, batch_looks=k),
                                  echo=_quiet, warn=_quiet))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--looks", default="1,4,16", help="the values of K, comma-separated (at most 16)")
    parser.add_argument("--steps", type=int, default=10, help="steps of every look")
    parser.add_argument("--images", type=int, default=8, help="training photos (512 px)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    counts = [int(k) for k in args.looks.split(",")]

    import torch

    from bench_optimize import make_sets, random_weights_file
    from lutgen.tasks.optimize_plan import OptimizeOptions

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = make_sets(tmp, ["512"])["512"]
        for extra in photos[args.images:]:
            extra.unlink()
        weights = random_weights_file(tmp)
        defaults = OptimizeOptions(image_folder=photos[0].parent, steps=args.steps, log_interval=0,
                                   device=args.device, clip_model="ViT-B-32", clip_pretrained=str(weights))
        machine = platform.processor() or platform.machine()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {machine}, {os.cpu_count()} CPUs, "
              f"device {args.device}, {args.steps} steps, {args.images} photos", flush=True)
        warm = replace(defaults, steps=1)  # imports and compiled kernels of both sides, not timed
        sequential(warm, PROMPTS[:1], tmp / "warm-seq")
        library_run(warm, PROMPTS[:1], tmp / "warm-lib", 1)
        rows = []
        for k in counts:
            prompts = list(PROMPTS[:k])
            seq = sequential(defaults, prompts, tmp / f"seq{k}")
            lib = library_run(defaults, prompts, tmp / f"lib{k}", k)
            rows.append((k, seq, lib))
            print(f"  K={k}: sequential {seq[0]:.1f} s ({seq[1]:.1f} s CPU), library {lib[0]:.1f} s "
                  f"({lib[1]:.1f} s CPU)", flush=True)

    print()
    print("| K | sequential looks/h | library looks/h | x sequential (wall) | x sequential (CPU) |")
    print("|---|---|---|---|---|")
    for k, seq, lib in rows:
        print(f"| {k} | {3600 * k / seq[0]:.0f} | {3600 * k / lib[0]:.0f} | {seq[0] / lib[0]:.2f} "
              f"| {seq[1] / lib[1]:.2f} |")


if __name__ == "__main__":
    main()
