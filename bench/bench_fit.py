"""Benchmark: how well ``lutgen fit`` recovers known looks from five before/after pairs.

Ground-truth looks (the two bundled ``.cube`` files and synthetic ones: a strong black-and-white
film look, a teal-orange split tone, a red-only saturation boost, a smooth log-to-video curve) are
applied to 5 bundled photos; the pairs are saved as 8-bit PNG and ``lutgen fit`` runs on them as a
fresh process (``--holdout none``, so that all five pairs are used), timed, with its peak memory.
The fitted LUT is then scored against the ground truth (float, no rounding) on 10 other bundled
photos and on a synthetic full-gamut chart (every colour of a 32^3 grid, most of which the pairs
never show): PSNR in dB and mean CIE76 Delta E.

In the same run, on the same pairs, the floor is a nearest-cell average (the mean after-colour of
the sampled pixels nearest each node, identity where none). With ``--tools-python`` (the Python of
a throwaway virtual environment holding ``lut-estimator`` and, optionally,
``darktable-lut-generator``; never lutgen's own), those published fitters run on the same pixels:
``lut-estimator``'s float table (its own default sampling, after its default 5x5 blur) and, with
``--darktable``, ``darktable-lut-generator``'s ``perform_estimation`` (its defaults: 100,000 pixels, a
9^3 LUT; a 33^3 fit takes minutes and gigabytes).

A last run times ``lutgen fit`` on five 1-megapixel pairs at 33^3 (fresh process, bytecode cached).

Run: ``.venv/bin/python bench/bench_fit.py [--looks velvia,bw_film] [--tools-python /tmp/tools/bin/python]``
"""

from __future__ import annotations

import argparse
import json
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
sys.path.insert(0, str(ROOT))

from lutgen.color.cpu import apply_lut_array  # noqa: E402
from lutgen.formats import read_lut  # noqa: E402
from lutgen.lut import LUT, grid  # noqa: E402
from lutgen.tasks.evaluate import srgb_to_lab  # noqa: E402

TRAIN = ["mate_aqua", "mate_garden", "astronaut", "coffee", "mate_dune"]
TEST = ["chelsea_cat", "china", "flower", "rocket", "mate_storm", "mate_wood", "mate_ladybird", "raccoon_face",
        "grace_hopper", "mate_yellowflower"]
LUMA = np.array([0.2126, 0.7152, 0.0722])


# --------------------------------------------------------------------------------------------
# Ground-truth looks: float (..., 3) -> (..., 3), in [0, 1]
# --------------------------------------------------------------------------------------------


def bundled(name: str):
    lut = read_lut(ROOT / "lutgen" / "data" / "luts" / name)
    return lambda rgb: apply_lut_array(np.asarray(rgb, np.float64), lut)


def bw_film(rgb):
    """Strong black and white: an orange-filter channel mix, a film S curve with lifted blacks."""
    grey = np.clip(rgb @ np.array([0.55, 0.4, 0.05]), 0, 1) ** 0.9
    curve = grey * grey * (3 - 2 * grey)
    return np.repeat((0.04 + 0.92 * curve)[..., None], 3, axis=-1)


def teal_orange(rgb):
    """Split tone: shadows pushed to teal, highlights to orange, by luminance."""
    lum = (rgb @ LUMA)[..., None]
    shadows, highlights = (1 - lum) ** 2, lum**2
    return np.clip(rgb + 0.18 * shadows * np.array([-0.6, 0.15, 0.45]) + 0.18 * highlights * np.array(
        [0.5, 0.1, -0.6]), 0, 1)


def red_boost(rgb):
    """Saturation boost for reds only (weight by how much red leads the other channels)."""
    lum = (rgb @ LUMA)[..., None]
    lead = np.clip((rgb[..., 0] - np.maximum(rgb[..., 1], rgb[..., 2])) / 0.3, 0, 1)[..., None]
    weight = lead * lead * (3 - 2 * lead)
    return np.clip(lum + (1 + 0.9 * weight) * (rgb - lum), 0, 1)


def log_to_video(rgb):
    """A camera-log-like encoding to display video: exponential decode, a filmic shoulder, a 2.2 gamma."""
    linear = 0.18 * 2.0 ** ((rgb - 0.4) * 10)
    mapped = linear * 1.3 / (linear + 0.3)
    return np.clip(mapped, 0, 1) ** (1 / 2.2)


LOOKS = {
    "velvia": bundled("fuji_velvia_50.cube"),
    "ilford_hp5": bundled("ilford_hp5_plus_400.cube"),
    "bw_film": bw_film,
    "teal_orange": teal_orange,
    "red_boost": red_boost,
    "log_to_video": log_to_video,
}


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


def photo(name: str) -> np.ndarray:
    with Image.open(ROOT / "images" / f"{name}.jpg") as im:
        return np.asarray(im.convert("RGB"), np.float64) / 255.0


def to_8bit(values: np.ndarray) -> np.ndarray:
    return np.round(np.clip(values, 0, 1) * 255).astype(np.uint8)


def psnr(a, b) -> float:
    return float(10 * np.log10(1 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


def delta_e(a, b) -> float:
    return float(np.sqrt(((srgb_to_lab(np.clip(a, 0, 1)) - srgb_to_lab(b)) ** 2).sum(-1)).mean())


def score(table: np.ndarray, look, tests: list[np.ndarray], chart: np.ndarray) -> dict:
    """Median-free summary: mean PSNR and Delta E over the test photos, and on the chart."""
    lut = LUT(table)
    photos = [(psnr(apply_lut_array(p, lut), look(p)), delta_e(apply_lut_array(p, lut), look(p))) for p in tests]
    graded = apply_lut_array(chart, lut)
    return {"psnr": float(np.mean([p for p, _ in photos])), "de": float(np.mean([d for _, d in photos])),
            "chart_psnr": psnr(graded, look(chart)), "chart_de": delta_e(graded, look(chart))}


# --------------------------------------------------------------------------------------------
# Fitters
# --------------------------------------------------------------------------------------------


def fresh_env() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's installation has its bytecode compiled
    return env


# The peak is read from /proc (VmHWM, reset by exec): getrusage's maximum would include the RSS the
# process inherited from this one at fork time.
MEASURED = ("import runpy, sys; sys.argv = ['main.py'] + sys.argv[1:]\n"
            "try:\n    runpy.run_path('main.py', run_name='__main__')\n"
            "finally:\n    peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
            "    print('peak_kb', peak, file=sys.stderr)\n")


def run_lutgen_fit(inputs: Path, targets: Path, output: Path, extra: list[str]) -> tuple[float, float, str]:
    """``lutgen fit`` as a fresh process: wall seconds, peak MB, stdout."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, "fit", "--input-dir", str(inputs), "--target-dir",
                           str(targets), "-o", str(output), *extra], cwd=ROOT, env=fresh_env(),
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"lutgen fit failed: {done.stderr}")
    peak = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("peak_kb"))
    return seconds, peak / 1024, done.stdout


def nearest_cell_average(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """The floor: each node the mean after-colour of the samples nearest it; identity where none."""
    cell = np.rint(np.clip(x, 0, 1) * (n - 1)).astype(np.int64)
    key = (cell[:, 2] * n + cell[:, 1]) * n + cell[:, 0]
    counts = np.bincount(key, minlength=n**3)
    table = grid(n).reshape(-1, 3).copy()
    sums = np.stack([np.bincount(key, y[:, c], n**3) for c in range(3)], axis=1)
    table[counts > 0] = sums[counts > 0] / counts[counts > 0, None]
    return table.reshape(n, n, n, 3)


TOOL_SCRIPT = r"""
import json, sys, time
import numpy as np, cv2
data = np.load(sys.argv[1])
tool, size = sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
if tool == "lut-estimator":
    from lut_estimator import estimate_lut
    befores, afters = [], []
    for i in range(int(data["count"])):
        befores.append(cv2.GaussianBlur(data[f"before{i}"], (5, 5), 0).reshape(-1, 3))
        afters.append(cv2.GaussianBlur(data[f"after{i}"], (5, 5), 0).reshape(-1, 3))
    before = np.concatenate(befores)[:, None, :]
    after = np.concatenate(afters)[:, None, :]
    table = estimate_lut(before, after, lut_size=size, blur_ksize=0, seed=0) / 255.0  # [r, g, b, ch]
else:
    from darktable_lut_generator.estimate_lut import perform_estimation
    rng = np.random.default_rng(0)
    count = int(data["count"])
    refs, raws = [], []
    for i in range(count):
        before = data[f"before{i}"].reshape(-1, 3) / 255.0
        after = data[f"after{i}"].reshape(-1, 3) / 255.0
        pick = rng.choice(len(before), 100000 // count, replace=False)
        refs.append(after[pick]); raws.append(before[pick])
    table = perform_estimation(np.concatenate(refs), np.concatenate(raws), size, False, "trilinear")
seconds = time.perf_counter() - start
np.save(sys.argv[4], np.transpose(np.asarray(table, np.float64), (2, 1, 0, 3)))
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]
print(json.dumps({"seconds": seconds, "peak_mb": int(peak) / 1024}))
"""


def run_tool(python: str, tool: str, pairs: list[tuple[np.ndarray, np.ndarray]], size: int, folder: Path):
    """A published fitter in its own virtual environment: table [b, g, r, ch], seconds, peak MB."""
    data = folder / "pairs.npz"
    arrays = {"count": len(pairs)}
    for i, (before, after) in enumerate(pairs):
        arrays[f"before{i}"], arrays[f"after{i}"] = before, after
    np.savez(data, **arrays)
    out = folder / f"{tool}.npy"
    done = subprocess.run([python, "-c", TOOL_SCRIPT, str(data), tool, str(size), str(out)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        print(f"  {tool} failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return np.load(out), info["seconds"], info["peak_mb"]


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def one_look(name: str, look, args, tests, chart) -> list[tuple]:
    """Every fitter on one look: rows ``(look, method, scores, seconds, peak MB)``."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        (folder / "out").mkdir()
        pairs = []
        for photo_name in TRAIN:
            before = to_8bit(photo(photo_name))
            after = to_8bit(look(before / 255.0))
            Image.fromarray(before).save(folder / "in" / f"{photo_name}.png")
            Image.fromarray(after).save(folder / "out" / f"{photo_name}.png")
            pairs.append((before, after))
        extra = ["--holdout", "none", "--lut-size", str(args.lut_size)]
        if args.lut_smoothness:
            extra += ["--lut-smoothness", str(args.lut_smoothness)]
        seconds, peak, _ = run_lutgen_fit(folder / "in", folder / "out", folder / "fit.cube", extra)
        rows.append((name, "lutgen fit", score(read_lut(folder / "fit.cube").table, look, tests, chart), seconds, peak))
        x = np.concatenate([b.reshape(-1, 3) for b, _ in pairs]) / 255.0
        y = np.concatenate([a.reshape(-1, 3) for _, a in pairs]) / 255.0
        start = time.perf_counter()
        table = nearest_cell_average(x, y, args.lut_size)
        rows.append((name, "nearest-cell average", score(table, look, tests, chart), time.perf_counter() - start,
                     float("nan")))
        if args.tools_python:
            tools = ["lut-estimator"] + (["darktable-lut-generator"] if args.darktable else [])
            for tool in tools:
                size = args.lut_size if tool == "lut-estimator" else 9
                found = run_tool(args.tools_python, tool, pairs, size, folder)
                if found is not None:
                    rows.append((name, f"{tool} ({size}^3)", score(found[0], look, tests, chart), found[1], found[2]))
    return rows


def timing_run(args) -> tuple[float, float, float]:
    """``lutgen fit`` on five 1-megapixel pairs at 33^3, twice (the first fills the bytecode cache)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        (folder / "out").mkdir()
        look = LOOKS["velvia"]
        for photo_name in TRAIN:
            with Image.open(ROOT / "images" / f"{photo_name}.jpg") as im:
                before = np.asarray(im.convert("RGB").resize((1280, 800), Image.LANCZOS))
            Image.fromarray(before).save(folder / "in" / f"{photo_name}.png")
            Image.fromarray(to_8bit(look(before / 255.0))).save(folder / "out" / f"{photo_name}.png")
        extra = ["--holdout", "none", "--lut-size", "33"]
        runs = [run_lutgen_fit(folder / "in", folder / "out", folder / "fit.cube", extra) for _ in range(3)]
        cpu = os.times()
        return min(r[0] for r in runs[1:]), max(r[1] for r in runs), cpu.children_user + cpu.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--looks", default=",".join(LOOKS), help="comma-separated looks")
    parser.add_argument("--lut-size", type=int, default=33)
    parser.add_argument("--lut-smoothness", type=float, default=None, help="lutgen fit --lut-smoothness (default: its own)")
    parser.add_argument("--tools-python", default=None, help="python of a venv with lut-estimator etc.")
    parser.add_argument("--darktable", action="store_true", help="also run darktable-lut-generator (slow)")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    tests = [photo(name) for name in TEST]
    chart = grid(32).reshape(-1, 3)
    rows = []
    for name in args.looks.split(","):
        look_rows = one_look(name, LOOKS[name], args, tests, chart)
        for row in look_rows:
            s = row[2]
            print(f"{row[0]:13s} {row[1]:30s} photos {s['psnr']:6.2f} dB dE {s['de']:5.2f}   "
                  f"chart {s['chart_psnr']:6.2f} dB dE {s['chart_de']:5.2f}   {row[3]:6.2f} s {row[4]:7.0f} MB",
                  flush=True)
        rows += look_rows
    methods = list(dict.fromkeys(row[1] for row in rows))
    print("\nmedian over looks (and worst look):")
    ours = {row[0]: row[2] for row in rows if row[1] == "lutgen fit"}
    for method in methods:
        mine = [row[2] for row in rows if row[1] == method]
        gain = [ours[row[0]]["psnr"] - row[2]["psnr"] for row in rows if row[1] == method]
        chart_gain = [ours[row[0]]["chart_psnr"] - row[2]["chart_psnr"] for row in rows if row[1] == method]
        print(f"  {method:30s} photos {statistics.median(s['psnr'] for s in mine):6.2f} dB "
              f"(worst {min(s['psnr'] for s in mine):6.2f}), dE {statistics.median(s['de'] for s in mine):5.2f}; "
              f"chart {statistics.median(s['chart_psnr'] for s in mine):6.2f} dB; lutgen fit ahead by "
              f"{statistics.median(gain):+.2f} dB on photos, {statistics.median(chart_gain):+.2f} dB on the chart")
    if not args.skip_timing:
        seconds, peak, _ = timing_run(args)
        print(f"\nfive 1-megapixel pairs at 33^3, fresh process: {seconds:.2f} s (best of 2 warm), peak {peak:.0f} MB")


if __name__ == "__main__":
    main()
