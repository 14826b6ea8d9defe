"""Banding of high-resolution LUTs learned by ``optimize``: the plain lattice against the structured representation.

A lattice whose every node is a free parameter moves nodes that no pixel of the training photos
reaches as freely as the others (Adam scales each parameter's step alike), so at 64^3 a learned
look turns rough: neighbouring nodes disagree and smooth gradients in a graded photo show steps.
The structured representation (a colour matrix and per-channel curves in front of a residual
lattice) puts the large change in smooth global parts.

For each ``--lut-size`` and representation, one whole ``main.py optimize`` run (fresh process, the
same prompt, seed, steps, photos and random ViT-B-32 weights), then, on the written ``.cube``:

- ``rough max`` / ``rough rms``: the largest and the root-mean-square second difference of the
  table's change from the identity along r, g and b, in 8-bit code values (a smooth look has
  second differences that shrink as the lattice gets finer);
- ``reversals``: over three smooth ramps (black to white, deep blue to sky, a skin-tone ramp) of
  4096 steps graded trilinearly, the number of places where a graded channel turns back (rising
  then falling or the reverse) by more than 0.25 code value: the visible bands;
- ``steps/s``: optimisation speed, for scale.

Measured on the 2-core CPU (60 steps, busy machine, so the seconds are only for scale):

| size | representation | lut-smoothness | rough max | rough rms | reversals |
|---|---|---|---|---|---|
| 33 | lattice | 1 | 54.07 | 6.01 | 161 |
| 33 | structured | 1 | 54.45 | 6.16 | 173 |
| 64 | lattice | 1 | 65.15 | 5.90 | 447 |
| 64 | structured | 1 | 66.48 | 5.98 | 471 |
| 64 | lattice | 10 | 58.80 | 4.59 | 409 |
| 64 | structured | 10 | 64.17 | 4.59 | 433 |
| 64 | lattice | 100 | 41.22 | 2.10 | 275 |
| 64 | structured | 100 | 45.97 | 2.07 | 303 |

With a residual lattice as large as the table, the structured representation was no smoother than the
lattice under the random-weight model's gradients: the residual took the same node-by-node noise, and
``--lut-smoothness`` (which penalises only what a half-size lattice cannot hold) reduced the roughness
slowly. At 64 nodes the ramps turned back 2.8 times as often as at 33 (447 against 161 turns).

Since the structured residual has at most 17 nodes a side, interpolated to the table's size
(``RESIDUAL_MAX_SIZE`` in ``lutgen/optim/parameterisation.py``), the same run at 64 nodes gives:

| size | representation | lut-smoothness | rough max | rough rms | reversals |
|---|---|---|---|---|---|
| 64 | structured | 1 | 12.15 | 0.70 | 22 |

(the plain lattice, unchanged, is the row above with 447 reversals).

Usage::

    python bench/bench_banding.py [--steps 60] [--sizes 33,64] [--representations lattice,structured]
                                  [--lut-smoothness 1,10]
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_optimize import PROMPT, make_sets, random_weights_file  # noqa: E402

from lutgen.color.cpu import apply_lut_array  # noqa: E402
from lutgen.formats import read_lut  # noqa: E402

RAMPS = {
    "black to white": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "deep blue to sky": ((0.02, 0.05, 0.25), (0.65, 0.8, 0.98)),
    "skin tones": ((0.35, 0.2, 0.15), (0.98, 0.82, 0.72)),
}
RAMP_STEPS = 4096
TURN_CODES = 0.25


def second_differences(change: np.ndarray) -> np.ndarray:
    """Absolute second differences of ``change`` ``(N, N, N, 3)`` along each of the three lattice axes, flattened."""
    parts = []
    for axis in range(3):
        a = np.moveaxis(change, axis, 0)
        parts.append(np.abs(a[2:] - 2 * a[1:-1] + a[:-2]).ravel())
    return np.concatenate(parts)


def reversals(lut) -> int:
    """Turns of more than :data:`TURN_CODES` code values in the graded channels of the smooth ramps."""
    count = 0
    t = np.linspace(0.0, 1.0, RAMP_STEPS)[:, None]
    for start, end in RAMPS.values():
        ramp = (np.asarray(start) * (1 - t) + np.asarray(end) * t)[None]  # (1, steps, 3) float64
        graded = apply_lut_array(ramp, lut, "trilinear")[0] * 255.0
        for channel in graded.T:
            # Collapse runs of flat steps, then count sign changes of the remaining differences.
            d = np.diff(channel)
            d = d[np.abs(d) > 1e-9]
            turns = np.flatnonzero(np.sign(d[1:]) != np.sign(d[:-1]))
            # A turn counts when the excursion before it exceeds the threshold.
            edges = np.concatenate([[0], turns + 1, [len(d)]])
            excursions = [abs(d[a:b].sum()) for a, b in zip(edges[:-1], edges[1:])]
            count += sum(1 for e in excursions[1:-1] if e > TURN_CODES)
    return count


def run_optimize(folder: Path, weights: Path, size: int, representation: str, steps: int, out: Path,
                 smoothness: float) -> float:
    """One whole ``optimize`` run; returns its wall seconds."""
    command = [sys.executable, str(ROOT / "main.py"), "optimize", "--prompt", PROMPT, "--image-folder", str(folder),
               "--steps", str(steps), "--lut-size", str(size), "--representation", representation, "--seed", "1",
               "--clip-model", "ViT-B-32", "--clip-pretrained", str(weights), "--log-interval", "0",
               "--output-path", str(out), "--lut-smoothness", str(smoothness)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        raise SystemExit(f"optimize failed ({result.returncode}): {result.stderr[-500:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--sizes", default="33,64")
    parser.add_argument("--representations", default="lattice,structured")
    parser.add_argument("--lut-smoothness", default="1", help="comma-separated weights of optimize's --lut-smoothness")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    representations = args.representations.split(",")
    weights_of_smoothness = [float(w) for w in args.lut_smoothness.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = make_sets(tmp, ["512"])["512"][0].parent
        weights = random_weights_file(tmp)
        print(f"prompt {PROMPT!r}, {args.steps} steps, seed 1, random ViT-B-32, 512 px bundled photos")
        print(f"| size | representation | lut-smoothness | rough max (codes) | rough rms (codes) "
              f"| reversals > {TURN_CODES} code | s |")
        print("|---|---|---|---|---|---|---|")
        for size, representation, smoothness in itertools.product(sizes, representations, weights_of_smoothness):
            out = tmp / f"{representation}_{size}_{smoothness}.cube"
            seconds = run_optimize(photos, weights, size, representation, args.steps, out, smoothness)
            lut = read_lut(out)
            axis = np.linspace(0.0, 1.0, size)
            b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
            change = (lut.table - np.stack([r, g, b], axis=-1)) * 255.0
            d2 = second_differences(change)
            print(f"| {size} | {representation} | {smoothness:g} | {d2.max():.2f} | {np.sqrt(np.mean(d2 ** 2)):.3f} "
                  f"| {reversals(lut)} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
