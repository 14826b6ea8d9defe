"""Time ``lutgen enhance`` (AdaInt, the shipped fivek-srgb model) on this machine.

Three tables:

1. **Model time**, in process: predicting a photo's LUT and vertices and grading the photo with it,
   from decoded 8-bit pixels to graded 8-bit pixels (no file I/O), at 480p (854 x 480) and 4000 x 3000.
   Rows: the default CPU path (NumPy network + compiled shaper/3D kernel) split into its parts, and
   the torch path (model + ``ailut_transform`` in float32 on the CPU) for comparison. Best and median
   of ``--repeat`` runs after a warm-up.
2. **GPU** (only when CUDA is available): the torch path per image at 480p and 4K, data on the GPU.
3. **Whole process** for a 4000 x 3000 JPEG: a fresh ``lutgen enhance photo.jpg -o out.jpg`` process,
   wall clock from outside, imports included, with and without cached bytecode (``.pyc``).

Run: ``uv run python bench/bench_enhance.py [--repeat 10]``. When another job shares the CPU the
medians grow; the best times are closer to an idle machine.
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

import lutgen.cli  # noqa: F401  (first: it sets the BLAS threading that the command line uses)
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENHANCE_JOB = """
import sys
sys.argv = ["lutgen", "enhance", *sys.argv[1:]]
from lutgen.cli import main
try:
    main()
except SystemExit as exit_:
    if exit_.code:
        raise
assert "torch" not in sys.modules, "the CPU path imported torch"
"""


def make_photo(width: int, height: int) -> np.ndarray:
    """A bundled photo resized to ``width x height``, darkened a little, with sensor-like noise."""
    photo = Image.open(ROOT / "images" / "mate_garden.jpg").convert("RGB").resize((width, height), Image.BICUBIC)
    pixels = np.asarray(photo, dtype=np.float32) * 0.8
    pixels += np.random.default_rng(0).normal(0, 2.0, pixels.shape).astype(np.float32)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def timed(function, repeat: int) -> tuple[float, float]:
    """Best and median seconds of ``repeat`` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def model_rows(repeat: int) -> list[tuple[str, str, float, float]]:
    from lutgen.color.adaint import to_lut
    from lutgen.color.cpu import apply_lut_array
    from lutgen.models import load_weights
    from lutgen.models.adaint_cpu import predict_lut

    weights = load_weights("fivek-srgb")
    rows = []
    for label, (width, height) in (("480p", (854, 480)), ("4000x3000", (4000, 3000))):
        rgb = make_photo(width, height)
        table, vertices = predict_lut(weights, rgb)
        lut = to_lut(table, vertices)

        def whole():
            t, v = predict_lut(weights, rgb)
            return apply_lut_array(rgb, to_lut(t, v))

        parts = {
            "CPU path: network (NumPy)": lambda: predict_lut(weights, rgb),
            "CPU path: LUT -> shaper + 3D": lambda: to_lut(table, vertices),
            "CPU path: grade pixels (8-bit kernel)": lambda: apply_lut_array(rgb, lut),
            "CPU path: total": whole,
        }
        for name, function in parts.items():
            rows.append((label, name, *timed(function, repeat)))
        rows.append((label, "torch path (float32, CPU): total", *torch_time(weights, rgb, max(1, repeat // 3))))
    return rows


def torch_time(weights, rgb: np.ndarray, repeat: int) -> tuple[float, float]:
    import torch

    from lutgen.models.adaint import build_model

    model = build_model(weights)

    def run():
        with torch.no_grad():
            image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div_(255)[None]
            out = model(image).image[0]
            return out.mul(255).round_().clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()

    return timed(run, repeat)


def gpu_rows(repeat: int) -> list[tuple[str, float, float]]:
    """Per-image time of the torch path on a CUDA GPU (network + transform, data already on the GPU)."""
    import torch

    if not torch.cuda.is_available():
        return []
    from lutgen.models import load_weights
    from lutgen.models.adaint import build_model

    model = build_model(load_weights("fivek-srgb")).cuda()
    rows = []
    for label, (width, height) in (("480p", (854, 480)), ("4K", (3840, 2160))):
        image = torch.from_numpy(make_photo(width, height)).cuda().permute(2, 0, 1).float().div_(255)[None]

        def run():
            with torch.no_grad():
                model(image)
            torch.cuda.synchronize()

        rows.append((f"{label} on {torch.cuda.get_device_name()}", *timed(run, repeat)))
    return rows


def run_process(args: list[str], cwd: Path, bytecode: bool) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{args} failed: {result.stderr.strip()}")
    return wall


def process_rows(repeat: int) -> list[tuple[str, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jpeg = folder / "photo_4000x3000.jpg"
        Image.fromarray(make_photo(4000, 3000)).save(jpeg, quality=92)
        jobs = {
            "enhance photo.jpg -o out.jpg": [sys.executable, "-c", ENHANCE_JOB, str(jpeg), "-o", "out.jpg"],
            "enhance ... --export-cube": [
                sys.executable, "-c", ENHANCE_JOB, str(jpeg), "-o", "out.jpg", "--export-cube"
            ],
        }
        for bytecode in (True, False):
            for name, args in jobs.items():
                run_process(args, folder, bytecode)  # warm-up: kernel and bytecode caches
                times = [run_process(args, folder, bytecode) for _ in range(repeat)]
                rows.append((f"{name} ({'.pyc cached' if bytecode else 'no .pyc'})", min(times),
                             statistics.median(times)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per row (in process)")
    parser.add_argument("--process-repeat", type=int, default=3, help="timed runs per whole-process row")
    options = parser.parse_args()

    print(f"lutgen enhance, model fivek-srgb; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    print()
    print("Model time: 8-bit pixels in memory -> graded 8-bit pixels (goal: < 30 ms at 480p)")
    print(f"{'size':10s} {'step':38s} {'best ms':>9s} {'median ms':>10s}")
    for label, name, best, median in model_rows(options.repeat):
        print(f"{label:10s} {name:38s} {best * 1e3:9.1f} {median * 1e3:10.1f}")
    gpu = gpu_rows(options.repeat)
    if gpu:
        print()
        print("GPU, per image (the paper: 1.29 ms at 480p, 1.59 ms at 4K on a V100)")
        for name, best, median in gpu:
            print(f"{name:49s} {best * 1e3:9.2f} {median * 1e3:10.2f}")
    print()
    print("Whole process, 4000x3000 JPEG (goal: < 2 s)")
    print(f"{'job':52s} {'best s':>8s} {'median s':>9s}")
    for name, best, median in process_rows(options.process_repeat):
        print(f"{name:52s} {best:8.2f} {median:9.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
