"""Seconds per ``optimize`` step at the defaults with ViT-B-32 (random weights), and the peak memory of a whole run.

Usage::

    python bench/bench_optimize.py [--rounds 6] [--warmup 2] [--sets 512] [--methods ours,ours-evidence,ours-fp32,ours-bf16,naive]
                                   [--memory-steps 5]

Image sets (made in a temporary folder from the bundled ``images/``):

- ``512``: the 25 bundled photos shrunk to 512 px on the longer side (the default);
- ``12mp``: four bundled photos enlarged to 4000 x 3000 JPEGs.

Methods, all at the defaults (LUT 16, batch 4, Adam 0.005, the auxiliary loss weights 1.0), with the
same random ViT-B-32 weights file, made once by the bench:

- ``ours``: lutgen's loop at ``--clip-precision auto``: images decoded once onto the device, random
  resized crops + flips, CLIP with the faster equivalent image-tower modules, the text tower released
  after the prompt is embedded;
- ``ours-evidence``: ``ours`` with three reference photos (CLIP similarity and colour distribution)
  and three before/after pairs added, as ``--reference-image`` and ``--pairs`` add them; the bench prints
  what they add per step (goal: at most 15 %);
- ``ours-fp32`` and ``ours-bf16``: the same with CLIP forced to float32 or bfloat16 (bfloat16 with the
  image tower's matrix weights cast once at load);
- ``naive``: the naive step, in this process: 4 images decoded from disk every step, RandomCrop 224 +
  flips, the LUT applied with grid_sample, the stock open_clip model in float32, smoothness and
  regularisation measured on the output image and the table themselves, Adam, clamp.

The methods are timed in interleaved rounds (one step of each per round), so that other work on the
machine slows them alike; the ratios to ``naive`` are those of the medians of the same run. Wall time
and the process's CPU time are both reported (CPU time is less sensitive to other processes).

Memory: a whole ``main.py optimize --steps N`` run (``--clip-model ViT-B-32 --clip-pretrained`` the random
weights file, ``--log-interval 0``) as a fresh process, at ``auto`` and at ``bf16``, its peak resident set
(``ru_maxrss`` of that child alone), against the 1.2 GB goal.

Measured on the 2-core AVX-512 Xeon without bfloat16 instructions (auto is float32 there), torch
2.15, 2 threads, other work on the machine (1 min 31 s in all):

| 512 px | s/step wall | CPU s/step | x naive (wall) |
|---|---|---|---|
| ours (auto = fp32) | 0.455 | 0.863 | 1.52 |
| ours-fp32 | 0.447 | 0.863 | 1.55 |
| ours-bf16 (emulated by oneDNN) | 1.415 | 2.783 | 0.49 |
| naive | 0.694 | 1.346 | 1.00 |

(Measured before the image tower's last block computed the class token alone, which made its
forward and backward 6.5 % faster. On a busier machine the same bench gave 1.39 to 1.73 times
naive for float32 and 0.78 to 0.80 for bfloat16.)

Three reference photos and three pairs (``ours-evidence``) added 8.2 % wall and 9.0 % CPU time per
step to ``ours`` in one run (5 rounds, machine busy; goal: at most 15 %).

Whole ``optimize`` (5 steps): 1365 MB at auto (float32; 2038 MB before the image tower was read
lazily, the text tower released and the weights streamed), 1181 to 1237 MB at bf16 (2068 MB before);
1300 to 1320 MB at auto since open_clip is imported without timm for ViT-B-32; 1168 to 1190 MB at auto
(1021 to 1030 MB at bf16) since torch's compiler and SymPy are not imported (lutgen's own Adam, a
stand-in ``torch._dynamo`` while torchvision is imported, skeletons built without initial values).
Steps at auto in that run: 0.413 s (1.65x naive, 0.682 s), and 8.8 % more with the evidence. About
600 MB of the peak is importing torch (537 MB, of which 166 MB are the CUDA libraries of the CUDA
build, resident even on a CPU) and open_clip; 350 MB the image tower's weights; about 170 MB one
step's activations of 4 views.

Random weights produce denormal numbers that slow the CPU, so denormals are flushed for every
method. The ``earlier tool`` column divides figures recorded for an earlier text-to-LUT tool on this
machine, not this run (0.90 s/step at 512 px, about 1.4 s/step at 12 MP), by this run's medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EARLIER_TOOL_RECORDED = {"512": 0.90, "12mp": 1.4}  # s/step, an earlier text-to-LUT tool, not this run
TWELVE_MP = (4000, 3000)
TWELVE_MP_SOURCES = ("mate_greenmeadow.jpg", "mate_dune.jpg", "raccoon_face.jpg", "mate_wood.jpg")
MEMORY_GOAL_MB = 1200
EVIDENCE_PHOTOS = 3
PROMPT = "golden hour warm sunlight"


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


def random_weights_file(folder: Path) -> Path:
    """ViT-B-32 with open_clip's random initialisation, saved as a safetensors file (as published weights are).

    Made in a child process, so that this one stays small until the memory of whole runs is measured.
    """
    path = folder / "vit_b_32_random.safetensors"
    script = (
        "import sys, torch, open_clip\n"
        "from safetensors.torch import save_file\n"
        "torch.manual_seed(0)\n"
        "model = open_clip.create_model('ViT-B-32', pretrained=None)\n"
        "save_file({k: v.contiguous() for k, v in model.state_dict().items()}, sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, stderr=subprocess.DEVNULL,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return path


def ours(paths: list[Path], weights: Path, precision: str, evidence: bool = False):
    """lutgen's step at ``precision`` (with reference photos and pairs too when ``evidence``); returns the
    step function and the seconds taken to decode the images."""
    import torch

    from lutgen.guidance.clip import load_clip, resolve_weights
    from lutgen.imaging import load_rgb_float
    from lutgen.optim.losses import LossWeights
    from lutgen.optim.objective import EvidenceTensors, Objective
    from lutgen.optim.parameterisation import StructuredLUT
    from lutgen.optim.trainer import LutTrainer
    from lutgen.optim.views import ViewSampler, stored_image, working_side

    torch.manual_seed(0)
    guide = load_clip(device="cpu", precision=precision, source=resolve_weights("ViT-B-32", str(weights)))
    text = guide.embed_text(PROMPT)
    guide.release_text_tower()
    start = time.perf_counter()
    side = working_side(guide.image_size)
    images = [stored_image(load_rgb_float(p, max_side=side), "cpu") for p in paths]
    decode = time.perf_counter() - start
    sampler = ViewSampler(images, guide.image_size, 4, seed=0, interpolation=guide.interpolation)
    extra = evidence_tensors(guide, images[:EVIDENCE_PHOTOS]) if evidence else {}
    objective = Objective(guide, EvidenceTensors(prompts=text, prompt_weights=torch.ones(1), **extra), LossWeights(), 0)
    return LutTrainer(objective, sampler, StructuredLUT(16), 0.005).step, decode


def evidence_tensors(guide, images) -> dict:
    """Reference photos (their CLIP embeddings and 16384 Oklab colours) and before/after pairs (65,536 pixels
    of each photo, the after 80 % desaturated), as ``optimize --reference-image --pairs`` would hold them."""
    import torch

    from lutgen.color.oklab_torch import srgb_to_oklab
    from lutgen.optim.views import centre_box, resample_box

    generator = torch.Generator().manual_seed(0)
    views = torch.stack([resample_box(image, centre_box(*image.shape[-2:], guide.image_size), guide.image_size)
                         for image in images])
    with torch.no_grad():
        references = guide.embed_images(views)
    pixels = torch.cat([image.float().reshape(3, -1).t() for image in images])
    colours = pixels[torch.randint(len(pixels), (16384,), generator=generator)]
    before = pixels[torch.randint(len(pixels), (65536 * len(images),), generator=generator)]
    luma = before @ torch.tensor([0.2126, 0.7152, 0.0722])
    after = before + 0.8 * (luma[:, None] - before)
    return {"references": references, "reference_oklab": srgb_to_oklab(colours), "pair_before": before,
            "pair_after": after}


def naive(paths: list[Path]):
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

    return step


def interleaved(steps: dict, rounds: int, warmup: int) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds of each step function, one step of each per round (after ``warmup`` rounds)."""
    times = {name: ([], []) for name in steps}
    for round_ in range(warmup + rounds):
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            step()
            if round_ >= warmup:
                times[name][0].append(time.perf_counter() - wall)
                times[name][1].append(time.process_time() - cpu)
    return times


def peak_memory_mb(folder: Path, weights: Path, precision: str, steps: int) -> tuple[float, float]:
    """Peak resident set (MB) and wall seconds of a whole ``optimize`` run as a fresh process.

    Linux counts in a child's ``ru_maxrss`` what it held between fork and exec, a copy of this
    process's page tables: call this while this process is small (before it imports torch).
    """
    command = [sys.executable, str(ROOT / "main.py"), "optimize", "--prompt", PROMPT, "--image-folder", str(folder),
               "--steps", str(steps), "--clip-model", "ViT-B-32", "--clip-pretrained", str(weights),
               "--clip-precision", precision, "--log-interval", "0", "--output-path", str(folder.parent / "bench.cube")]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"optimize failed ({child.returncode}): {stderr.decode(errors='replace')[-500:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--sets", default="512")
    parser.add_argument("--methods", default="ours,ours-evidence,ours-fp32,ours-bf16,naive")
    parser.add_argument("--memory-steps", type=int, default=5, help="steps of the whole runs measured (0: none)")
    args = parser.parse_args()
    methods = args.methods.split(",")

    with tempfile.TemporaryDirectory() as tmp:
        sets = make_sets(Path(tmp), args.sets.split(","))
        weights = random_weights_file(Path(tmp))
        memory = []
        if args.memory_steps > 0 and "512" in sets:
            for precision in ("auto", "bf16"):
                peak, seconds = peak_memory_mb(sets["512"][0].parent, weights, precision, args.memory_steps)
                memory.append((precision, peak, seconds))
                print(f"  whole optimize, {args.memory_steps} steps, --clip-precision {precision}: peak {peak:.0f} MB "
                      f"({seconds:.0f} s)", flush=True)

        import torch

        from lutgen.guidance.clip import autocast_dtype

        torch.set_flush_denormal(True)
        auto = "bf16" if autocast_dtype(torch.device("cpu"), "auto") == torch.bfloat16 else "fp32"
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{platform.processor() or platform.machine()}, "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, --clip-precision auto is {auto} here",
              flush=True)
        rows = []
        for set_name, paths in sets.items():
            steps, decodes = {}, {}
            for method in methods:
                if method == "naive":
                    steps[method], decodes[method] = naive(paths), None
                else:
                    precision = {"ours": "auto", "ours-evidence": "auto", "ours-fp32": "fp32",
                                 "ours-bf16": "bf16"}[method]
                    steps[method], decodes[method] = ours(paths, weights, precision, method == "ours-evidence")
            times = interleaved(steps, args.rounds, args.warmup)
            medians = {m: (statistics.median(w), statistics.median(c)) for m, (w, c) in times.items()}
            for method in methods:
                rows.append((set_name, len(paths), method, *medians[method], decodes[method], medians.get("naive")))

    print()
    print(f"Seconds per step, medians of {args.rounds} interleaved rounds ({args.warmup} rounds of warm-up):")
    print()
    print("| images | n | method | s/step wall | CPU s/step | decode once (s) | x naive wall (same run) "
          "| x naive CPU (same run) | x earlier tool (recorded, not this run) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for set_name, count, method, wall, cpu, decode, naive_medians in rows:
        label = "512 px" if set_name == "512" else "12 MP"
        name = f"{method} ({auto})" if method == "ours" else method
        decode_text = f"{decode:.2f}" if decode is not None else "every step"
        ratios = [f"{naive_medians[i] / value:.2f}" if naive_medians else "-" for i, value in enumerate((wall, cpu))]
        recorded = EARLIER_TOOL_RECORDED[set_name] / wall
        print(f"| {label} | {count} | {name} | {wall:.3f} | {cpu:.3f} | {decode_text} | {ratios[0]} | {ratios[1]} "
              f"| {recorded:.2f} |")
    for set_name in sets:
        by_method = {method: wall for name, _, method, wall, *_ in rows if name == set_name}
        if "ours" in by_method and "ours-evidence" in by_method:
            extra = by_method["ours-evidence"] / by_method["ours"] - 1
            print(f"\nreference photos and pairs added to a run ({set_name}): {extra:+.1%} per step "
                  f"(goal: at most +15%)")
    if memory:
        print()
        print(f"| whole optimize ({args.memory_steps} steps, 512 px) | peak resident set | goal {MEMORY_GOAL_MB} MB |")
        print("|---|---|---|")
        for precision, peak, _ in memory:
            shown = f"{precision} ({auto})" if precision == "auto" else precision
            print(f"| --clip-precision {shown} | {peak:.0f} MB | {'met' if peak <= MEMORY_GOAL_MB else 'not met'} |")


if __name__ == "__main__":
    main()
