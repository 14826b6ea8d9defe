"""How long ``lutgen rank`` takes over many 33^3 LUTs on 8 photos at 224 px with ViT-B-32 (random weights).

Usage::

    python bench/bench_rank.py [--luts 50] [--naive-luts 2] [--goal-luts 500]

The bench writes ``--luts`` synthetic, varied 33^3 ``.cube`` files (each a random colour matrix,
per-channel gamma, lift and gain, and a saturation change) in a temporary folder, picks 8 of the
bundled photos, and makes a random-weight ViT-B-32 weights file (as ``bench_optimize`` does). Then,
in this process, with denormals flushed (random weights produce them):

- ``ours``: :func:`lutgen.tasks.rank.rank` over the folder, as ``lutgen rank`` runs it: the photos
  decoded once and resized once to 224 px, the prompt embedded once, the LUTs read from disk and
  graded a batch at a time, several LUTs per CLIP forward pass (32 images per pass on a CPU), the
  image tower with its faster equivalent modules. Its time is split into the set-up (loading CLIP,
  decoding the photos, embedding the prompt) and the time per LUT (reading, grading, scoring);
- ``naive``: the same scores the plain way, for ``--naive-luts`` LUTs before ``ours`` and as many
  after (so that both see the machine's load alike; one untimed LUT first, as a warm-up): for every
  LUT and every photo, decode the photo, resize it and crop its centre (torchvision, as open_clip's
  preprocessing does), grade it with the LUT (lutgen's torch ``apply``), and embed it alone with the
  stock open_clip model in float32.

It prints the seconds per LUT of both and their ratio (same run), and ``ours`` extrapolated to
``--goal-luts`` LUTs (set-up + LUTs x seconds per LUT) against the goal of 5 minutes for 500.
Timing 50 LUTs and extrapolating is what the default does; ``--luts 500`` times them all. The
extrapolation is printed twice: from this run's wall time, and from its CPU time divided by torch's
threads (what the run would take with the cores to itself).

Measured on the 2-core AVX-512 Xeon (float32: no native bfloat16), torch 2.15, 2 threads, on a quiet
machine, ``--luts 500 --naive-luts 2`` (all 500 timed): ours 0.414 s wall (0.775 CPU s) per LUT, naive
0.963 s (2.33x), 500 LUTs in 208 s with a set-up of 1.1 s (goal: 300 s).

Earlier, with other
work keeping the load average at 5 to 8 (so the wall times are about three times a quiet machine's),
two runs of the default (50 LUTs timed):

| | wall s per LUT | CPU s per LUT | x naive wall (same run) | x naive CPU (same run) |
|---|---|---|---|---|
| ours | 1.43 to 1.50 | 0.96 to 1.02 | 2.7 to 5.6 | 2.8 to 5.1 |

500 LUTs extrapolated: 719 to 752 s from the busy runs' wall time, 244 to 260 s from their CPU time over
2 threads (goal: 300 s). Of a LUT's CPU second, reading its 33^3 ``.cube`` took 0.02 s and grading
the 8 views 0.1 s (measured apart); the rest is CLIP, about 0.11 s per photo. The naive figures moved
most between runs (4.1 and 7.9 s per LUT).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PROMPT = "moody teal night"
PHOTOS = 8
LUT_SIZE = 33
GOAL_SECONDS = 300.0


def synthetic_lut(rng: np.random.Generator, size: int = LUT_SIZE):
    """A varied, plausible look: colour matrix near the identity, per-channel gamma, lift and gain, saturation."""
    from lutgen.lut import LUT, grid

    rgb = grid(size)  # (N, N, N, 3) [b, g, r] nodes holding (r, g, b)
    matrix = np.eye(3) + rng.normal(0, 0.12, (3, 3))
    matrix /= matrix.sum(axis=1, keepdims=True)
    out = np.clip(rgb @ matrix.T, 0, 1) ** rng.uniform(0.7, 1.4, 3)
    out = out * rng.uniform(0.85, 1.1, 3) + rng.uniform(0, 0.08, 3)
    grey = out @ np.array([0.2126, 0.7152, 0.0722])
    out = grey[..., None] + rng.uniform(0.3, 1.5) * (out - grey[..., None])
    return LUT(np.clip(out, 0, 1))


def write_luts(folder: Path, count: int) -> None:
    from lutgen.formats import write_lut

    rng = np.random.default_rng(7)
    for index in range(count):
        write_lut(synthetic_lut(rng), folder / f"look_{index:04d}.cube")


def pick_photos(folder: Path) -> Path:
    """A folder of 8 of the bundled photos, spread over them (links to the files)."""
    from lutgen.imaging import find_images
    from lutgen.tasks.optimize_plan import default_image_folder
    from lutgen.tasks.rank import spread

    folder.mkdir()
    for path in spread(find_images(default_image_folder()), PHOTOS):
        (folder / path.name).symlink_to(path.resolve())
    return folder


def ours(luts: Path, photos: Path, weights: Path) -> tuple[float, float, float, int]:
    """``(set-up seconds, wall seconds per LUT, CPU seconds per LUT, LUTs)`` of one ``rank`` run."""
    from lutgen.tasks.rank import RankOptions, rank

    marks = {}

    class Bar:
        def update(self, n):
            marks["last"] = (time.perf_counter(), time.process_time())

        def close(self):
            pass

    def progress(total):
        marks["first"] = (time.perf_counter(), time.process_time())
        marks["total"] = total
        return Bar()

    start = time.perf_counter()
    options = RankOptions(prompt=PROMPT, luts=[luts], image_folder=photos, write_sheet=False, device="cpu",
                          clip_model="ViT-B-32", clip_pretrained=str(weights))
    rank(options, warn=print, progress=progress)
    (wall0, cpu0), (wall1, cpu1), count = marks["first"], marks["last"], marks["total"]
    return wall0 - start, (wall1 - wall0) / count, (cpu1 - cpu0) / count, count


def naive_scorer():
    """A function scoring one LUT the plain way (see the module docstring); seconds per call are timed."""
    import open_clip
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torchvision import transforms

    from lutgen.color.torch_ops import apply
    from lutgen.formats import read_lut

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval().requires_grad_(False)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        text = F.normalize(model.encode_text(tokenizer([PROMPT])), dim=-1)[0]
    resize = transforms.Compose([transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
                                 transforms.CenterCrop(224), transforms.ToTensor()])
    normalise = transforms.Normalize(open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)

    @torch.no_grad()
    def score(lut_path: Path, photos: list[Path]) -> float:
        lut = read_lut(lut_path)
        values = []
        for path in photos:
            with Image.open(path) as im:
                view = resize(im.convert("RGB"))
            graded = apply(view, lut).clamp(0, 1)
            embedding = F.normalize(model.encode_image(normalise(graded)[None]), dim=-1)[0]
            values.append(float(embedding @ text))
        return sum(values) / len(values)

    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--luts", type=int, default=50, help="LUTs ranked by ours (default 50)")
    parser.add_argument("--naive-luts", type=int, default=2, help="LUTs scored the naive way, before and after ours")
    parser.add_argument("--goal-luts", type=int, default=500, help="LUTs the extrapolation is for")
    args = parser.parse_args()

    import torch

    from bench_optimize import random_weights_file

    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        luts, photos = tmp / "luts", pick_photos(tmp / "photos")
        luts.mkdir()
        began = time.perf_counter()
        write_luts(luts, args.luts)
        print(f"wrote {args.luts} LUTs of {LUT_SIZE}^3 in {time.perf_counter() - began:.1f} s; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
        weights = random_weights_file(tmp)
        naive = naive_scorer()
        lut_files = sorted(luts.iterdir())[: args.naive_luts]
        photo_files = sorted(photos.iterdir())
        naive_times = []

        def run_naive():
            for path in lut_files:
                began, cpu = time.perf_counter(), time.process_time()
                naive(path, photo_files)
                naive_times.append((time.perf_counter() - began, time.process_time() - cpu))

        naive(lut_files[0], photo_files)  # warm-up, untimed: the first forward pass sets up oneDNN
        run_naive()
        setup, per_lut, cpu_per_lut, count = ours(luts, photos, weights)
        run_naive()
        threads = torch.get_num_threads()

    naive_wall, naive_cpu = (float(np.median(column)) for column in zip(*naive_times))
    print()
    print("| method | LUTs timed | set-up (s) | wall s per LUT | CPU s per LUT | x naive wall | x naive CPU |")
    print("|---|---|---|---|---|---|---|")
    print(f"| ours | {count} | {setup:.1f} | {per_lut:.3f} | {cpu_per_lut:.3f} | {naive_wall / per_lut:.2f} "
          f"| {naive_cpu / cpu_per_lut:.2f} |")
    print(f"| naive | {len(naive_times)} | - | {naive_wall:.3f} | {naive_cpu:.3f} | 1.00 | 1.00 |")
    print()
    how = "extrapolated from " + str(count) if count != args.goal_luts else "timed"
    for label, seconds in (("wall time, this run", per_lut),
                           (f"CPU time / {threads} threads, as if the machine were quiet", cpu_per_lut / threads)):
        total = setup + args.goal_luts * seconds
        verdict = "met" if total <= GOAL_SECONDS else "not met"
        print(f"ours for {args.goal_luts} LUTs of {LUT_SIZE}^3 on {PHOTOS} photos ({label}; {how}): {total:.0f} s "
              f"(set-up {setup:.1f} s + {args.goal_luts} x {seconds:.3f} s); goal {GOAL_SECONDS:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
