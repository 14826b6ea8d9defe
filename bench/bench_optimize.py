"""Seconds per ``optimize`` step at the defaults, with the ViT-B-32 architecture (random weights).

Usage::

    python bench/bench_optimize.py [--steps 10] [--warmup 3] [--sets 512,12mp] [--methods ours,ours-fp32,naive]

Image sets (made in a temporary folder from the bundled ``images/``):

- ``512``: the 25 bundled photos shrunk to 512 px on the longer side;
- ``12mp``: four bundled photos enlarged to 4000 x 3000 JPEGs.

Methods, all at the defaults (LUT 16, batch 4, Adam 0.005, all four loss weights 1.0):

- ``ours``: lutgen's loop: images decoded once onto the device, random resized crops + flips, CLIP
  with the faster equivalent image-tower modules, at ``--clip-precision auto``;
- ``ours-fp32``: the same with CLIP in float32;
- ``naive``: the naive step (decode every step, RandomCrop 224, fp32 CLIP), in this process, for a
  same-run ratio: 4 images decoded from disk every step, RandomCrop 224 + flips, the LUT applied
  with grid_sample, the stock open_clip model in float32, smoothness and regularisation measured on
  the output image and the table themselves, Adam, clamp.

Random weights produce denormal numbers that slow the CPU, so denormals are flushed for every
method. The last-but-one column divides figures recorded for an earlier text-to-LUT tool on this
machine, not this run (0.90 s/step at 512 px, about 1.4 s/step at 12 MP), by this run's medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EARLIER_TOOL_RECORDED = {"512": 0.90, "12mp": 1.4}  # s/step, an earlier text-to-LUT tool, not this run
TWELVE_MP = (4000, 3000)
TWELVE_MP_SOURCES = ("mate_greenmeadow.jpg", "mate_dune.jpg", "raccoon_face.jpg", "mate_wood.jpg")


def make_sets(folder: Path, wanted: list[str]) -> dict[str, list[Path]]:
    from PIL import Image

    sets = {}
    bundled = sorted(p for p in (ROOT / "images").iterdir() if p.suffix.lower() == ".jpg")
    if "512" in wanted:
        small = folder / "512"
        small.mkdir()
        for path in bundled:
            with Image.open(path) as im:
                im = im.convert("RGB")
                im.thumbnail((512, 512), Image.Resampling.LANCZOS)
                im.save(small / path.name, quality=90)
        sets["512"] = sorted(small.iterdir())
    if "12mp" in wanted:
        big = folder / "12mp"
        big.mkdir()
        for name in TWELVE_MP_SOURCES:
            with Image.open(ROOT / "images" / name) as im:
                im = im.convert("RGB")
                w, h = im.size
                crop_w = min(w, round(h * 4 / 3))
                crop_h = round(crop_w * 3 / 4)
                left, top = (w - crop_w) // 2, (h - crop_h) // 2
                im = im.crop((left, top, left + crop_w, top + crop_h)).resize(TWELVE_MP, Image.Resampling.BICUBIC)
                im.save(big / name, quality=90)
        sets["12mp"] = sorted(big.iterdir())
    return sets


def time_steps(step, steps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def ours(paths: list[Path], precision: str, steps: int, warmup: int) -> tuple[list[float], float]:
    import torch

    from lutgen.guidance.clip import load_clip
    from lutgen.imaging import load_rgb_float
    from lutgen.optim.losses import LossWeights
    from lutgen.optim.parameterisation import BoundedLUT
    from lutgen.optim.trainer import LutTrainer
    from lutgen.optim.views import ViewSampler, stored_image, working_side

    torch.manual_seed(0)
    guide = load_clip("ViT-B-32", None, "cpu", precision)
    start = time.perf_counter()
    side = working_side(guide.image_size)
    images = [stored_image(load_rgb_float(p, max_side=side), "cpu") for p in paths]
    decode = time.perf_counter() - start
    text = guide.embed_text("golden hour warm sunlight")
    sampler = ViewSampler(images, guide.image_size, 4, seed=0, interpolation=guide.interpolation)
    trainer = LutTrainer(guide, sampler, BoundedLUT(16), text, LossWeights(), 0.005)
    return time_steps(trainer.step, steps, warmup), decode


def naive(paths: list[Path], steps: int, warmup: int) -> list[float]:
    """The naive step (decode every step, RandomCrop 224, fp32 CLIP): 4 images decoded per step, flips."""
    import numpy as np
    import open_clip
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from lutgen.color.torch_ops import apply_lut, identity_table
    from lutgen.optim.losses import luma

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval().requires_grad_(False)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        text = F.normalize(model.encode_text(tokenizer(["golden hour warm sunlight"])), dim=-1)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    table = identity_table(16).requires_grad_(True)
    optimizer = torch.optim.Adam([table], lr=0.005)
    rng = random.Random(0)
    order: list[Path] = []

    def load(path: Path) -> torch.Tensor:
        with Image.open(path) as im:
            pixels = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float() / 255
        top, left = rng.randint(0, pixels.shape[1] - 224), rng.randint(0, pixels.shape[2] - 224)
        crop = pixels[:, top : top + 224, left : left + 224]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        if rng.random() < 0.5:
            crop = crop.flip(-2)
        return crop

    def down_up(x: torch.Tensor, mode: str) -> torch.Tensor:
        small = F.interpolate(x, scale_factor=0.5, mode=mode)
        return F.interpolate(small, size=x.shape[2:], mode=mode)

    def step() -> None:
        nonlocal order
        if len(order) < 4:
            order = list(paths)
            rng.shuffle(order)
        batch = torch.stack([load(order.pop()) for _ in range(4)])
        out = apply_lut(batch, table)
        features = F.normalize(model.encode_image((out - mean) / std), dim=-1)
        loss = (1 - features @ text.T).mean()
        loss = loss + F.mse_loss(out, down_up(out, "bilinear")) + F.mse_loss(out, batch)
        dark = luma(batch) < 0.01
        if dark.any():
            loss = loss + torch.relu(luma(out) - luma(batch))[dark].mean()
        volume = table.permute(3, 0, 1, 2).unsqueeze(0)
        loss = loss + F.mse_loss(volume, down_up(volume, "trilinear"))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([table], 1.0)
        optimizer.step()
        with torch.no_grad():
            table.clamp_(0, 1)

    return time_steps(step, steps, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sets", default="512,12mp")
    parser.add_argument("--methods", default="ours,ours-fp32,naive")
    args = parser.parse_args()
    wanted_sets = args.sets.split(",")
    methods = args.methods.split(",")

    import torch

    torch.set_flush_denormal(True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = make_sets(Path(tmp), wanted_sets)
        for set_name, paths in sets.items():
            naive_median = None
            results = {}
            for method in methods:
                if method == "naive":
                    times, decode = naive(paths, args.steps, args.warmup), None
                else:
                    precision = "fp32" if method == "ours-fp32" else "auto"
                    times, decode = ours(paths, precision, args.steps, args.warmup)
                median = statistics.median(times)
                results[method] = (median, decode)
                if method == "naive":
                    naive_median = median
                print(f"  {set_name:>5} {method:<10} median {median:.3f} s/step "
                      f"(min {min(times):.3f}, max {max(times):.3f})", flush=True)
            for method, (median, decode) in results.items():
                rows.append((set_name, len(paths), method, median, decode, naive_median))

    print()
    print("| images | n | method | s/step (median) | decode once (s) "
          "| x vs earlier tool 0.90/1.4 s (recorded on this machine, not this run) "
          "| x vs naive (same run) |")
    print("|---|---|---|---|---|---|---|")
    for set_name, count, method, median, decode, naive_median in rows:
        recorded = EARLIER_TOOL_RECORDED[set_name]
        same_run = f"{naive_median / median:.2f}" if naive_median else "-"
        decode_text = f"{decode:.2f}" if decode is not None else "every step"
        label = "512 px" if set_name == "512" else "12 MP"
        print(f"| {label} | {count} | {method} | {median:.3f} | {decode_text} | {recorded / median:.2f} | {same_run} |")


if __name__ == "__main__":
    main()
