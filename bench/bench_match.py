"""Benchmark: how close ``lutgen match`` brings photos to a known look shown only on other photos.

The ground-truth looks are those of ``bench/bench_fit.py`` (the bundled ``.cube`` files, a strong
black-and-white film look, a teal-orange split tone, a red-only saturation boost, a log-to-video
curve). Each look is applied to the 5 photos ``bench_fit`` trains on (saved as 8-bit PNG): those are
the references. ``lutgen match`` then grades 10 OTHER bundled photos (``bench_fit``'s test photos)
towards them, and the graded photos are scored against the same photos with the true look (float, no
rounding): mean PSNR in dB and mean CIE76 Delta E over the 10 photos. The identity (no grading) is
the floor.

With ``--also-unbalanced``, ``lutgen match --balance 0`` (every pixel counted the same) runs too.
With ``--same-content``, each method also runs with the graded test photos themselves as the
references (lutgen match with its ``--balance`` and with 0, which suits references of the same
scene): the colour distributions then differ by the look alone, which bounds what a distribution
transfer can do; the main protocol adds the difference in content between two sets of photos, which
no distribution transfer can tell from a look.

In the same run, with ``--tools-python`` (the Python of a throwaway virtual environment holding
``color-matcher``; never lutgen's own), ``color-matcher``'s default transfer (``ColorMatcher().transfer``,
method ``"default"``) grades each of the 10 photos towards the 5 references (their pixels
stacked into one reference image), scored the same way.

Measured on this 2-core CPU (shared), six looks, median over looks (worst look), mean CIE76 Delta E:
``lutgen match`` 25.6 dB (20.1), dE 8.5; ``color-matcher`` default 13.9 dB (12.4), dE 33.5, so match is
ahead by 11.4 dB (median of the per-look gains); ``--balance 0`` 18.6 dB (16.6); the identity 22.4 dB
(11.5): on the subtle looks (Velvia, teal-orange, red boost) the difference in content between the
two sets of photos outweighs the look and match lands below the identity, on the strong ones (B&W,
HP5, log-to-video) far above it. With the same photos as references: match ``--balance 0`` 35.5 dB
(29.7), color-matcher per photo 38.4 dB (28.8); match at 0.75 26.9 dB. About 25 s per match of 10
photos to 5 references (20,000 pixels each, 33^3) in process, with other jobs on the machine.

Run: ``.venv/bin/python bench/bench_match.py [--looks velvia,bw_film] [--tools-python /tmp/cm/bin/python]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_fit import LOOKS, TEST, TRAIN, delta_e, photo, psnr, to_8bit  # noqa: E402

from lutgen.color.cpu import apply_lut_array  # noqa: E402
from lutgen.tasks.match import MatchSettings, match  # noqa: E402

TOOL_SCRIPT = r"""
import sys
import numpy as np
from color_matcher import ColorMatcher
data = np.load(sys.argv[1])
out = {}
for i in range(int(data["count"])):
    reference = data[f"reference{i}"] if f"reference{i}" in data else data["reference"]
    graded = ColorMatcher().transfer(src=data[f"photo{i}"], ref=reference, method="default")
    out[f"graded{i}"] = np.asarray(graded, np.float64)
np.savez(sys.argv[2], **out)
"""


def score(graded: list[np.ndarray], truth: list[np.ndarray]) -> tuple[float, float]:
    """Mean PSNR and mean Delta E of the graded photos against the true look."""
    return (float(np.mean([psnr(g, t) for g, t in zip(graded, truth)])),
            float(np.mean([delta_e(g, t) for g, t in zip(graded, truth)])))


def color_matcher(python: str, photos: list[np.ndarray], references: list[np.ndarray], folder: Path,
                  own: list[np.ndarray] | None = None):
    """``color-matcher``'s default transfer of each photo to the stacked references (or to ``own[i]``), in its venv."""
    stacked = np.concatenate([r.reshape(-1, 3) for r in references])[:, None, :]
    arrays = {"count": len(photos), "reference": stacked.astype(np.float64)}
    for i, picture in enumerate(photos):
        arrays[f"photo{i}"] = picture.astype(np.float64)
        if own is not None:
            arrays[f"reference{i}"] = own[i].astype(np.float64)
    np.savez(folder / "cm_in.npz", **arrays)
    done = subprocess.run([python, "-c", TOOL_SCRIPT, str(folder / "cm_in.npz"), str(folder / "cm_out.npz")],
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  color-matcher failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    out = np.load(folder / "cm_out.npz")
    return [np.clip(out[f"graded{i}"], 0, 1) for i in range(len(photos))]


def one_look(name: str, look, args, tests: list[np.ndarray]) -> list[tuple]:
    """Every method on one look: rows ``(look, method, psnr, delta_e, seconds)``."""
    truth = [look(p) for p in tests]
    rows = [(name, "identity", *score(tests, truth), 0.0)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "refs").mkdir()
        (folder / "photos").mkdir()
        references = []
        for photo_name in TRAIN:
            graded = to_8bit(look(photo(photo_name)))
            Image.fromarray(graded).save(folder / "refs" / f"{photo_name}.png")
            references.append(graded / 255.0)
        for photo_name in TEST:
            (folder / "photos" / f"{photo_name}.jpg").symlink_to(ROOT / "images" / f"{photo_name}.jpg")
        settings = MatchSettings(**{key: value for key, value in vars(args).items()
                                    if key in MatchSettings.__dataclass_fields__ and value is not None})
        start = time.perf_counter()
        result = match([folder / "refs"], folder / "match.cube", folder / "photos", settings)
        seconds = time.perf_counter() - start
        graded = [apply_lut_array(p, result.lut) for p in tests]
        rows.append((name, "lutgen match", *score(graded, truth), seconds))
        if args.also_unbalanced:
            start = time.perf_counter()
            plain = match([folder / "refs"], folder / "plain.cube", folder / "photos", replace(settings, balance=0.0))
            seconds = time.perf_counter() - start
            graded = [apply_lut_array(p, plain.lut) for p in tests]
            rows.append((name, "lutgen match --balance 0", *score(graded, truth), seconds))
        if args.tools_python:
            start = time.perf_counter()
            found = color_matcher(args.tools_python, tests, references, folder)
            if found is not None:
                rows.append((name, "color-matcher default", *score(found, truth), time.perf_counter() - start))
        if args.same_content:
            rows += same_content(name, folder, tests, truth, settings, args)
    return rows


def same_content(name: str, folder: Path, tests, truth, settings, args) -> list[tuple]:
    """The upper bound: the references are the graded photos themselves (same content, so the
    distributions differ by the look alone); color-matcher matches each photo to its own graded copy."""
    (folder / "own").mkdir()
    for photo_name, graded in zip(TEST, truth):
        Image.fromarray(to_8bit(graded)).save(folder / "own" / f"{photo_name}.png")
    rows = []
    for balance in (settings.balance, 0.0):
        start = time.perf_counter()
        result = match([folder / "own"], folder / "own.cube", folder / "photos", replace(settings, balance=balance))
        seconds = time.perf_counter() - start
        graded = [apply_lut_array(p, result.lut) for p in tests]
        rows.append((name, f"match, same photos, bal {balance:g}", *score(graded, truth), seconds))
    if args.tools_python:
        start = time.perf_counter()
        own = [to_8bit(g) / 255.0 for g in truth]
        found = color_matcher(args.tools_python, tests, own, folder, own=own)
        if found is not None:
            rows.append((name, "color-matcher, same photos", *score(found, truth), time.perf_counter() - start))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--looks", default=",".join(LOOKS), help="comma-separated looks")
    parser.add_argument("--lut-size", type=int, default=None)
    parser.add_argument("--lut-smoothness", type=float, default=None)
    parser.add_argument("--strength", type=float, default=None)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--max-pixels", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--tools-python", default=None, help="python of a venv with color-matcher")
    parser.add_argument("--balance", type=float, default=None)
    parser.add_argument("--also-unbalanced", action="store_true", help="also run lutgen match with --balance 0")
    parser.add_argument("--same-content", action="store_true",
                        help="also match to the graded photos themselves (the upper bound)")
    args = parser.parse_args()
    tests = [photo(name) for name in TEST]
    rows = []
    for name in args.looks.split(","):
        look_rows = one_look(name, LOOKS[name], args, tests)
        for row in look_rows:
            print(f"{row[0]:13s} {row[1]:30s} photos {row[2]:6.2f} dB dE {row[3]:5.2f}   {row[4]:6.2f} s", flush=True)
        rows += look_rows
    ours = {row[0]: row[2] for row in rows if row[1] == "lutgen match"}
    print("\nmedian over looks (and worst look):")
    for method in dict.fromkeys(row[1] for row in rows):
        mine = [row for row in rows if row[1] == method]
        gain = statistics.median(ours[row[0]] - row[2] for row in mine if row[0] in ours)
        print(f"  {method:30s} photos {statistics.median(r[2] for r in mine):6.2f} dB "
              f"(worst {min(r[2] for r in mine):6.2f}), dE {statistics.median(r[3] for r in mine):5.2f}; "
              f"lutgen match ahead by {gain:+.2f} dB (median of per-look gains)")


if __name__ == "__main__":
    main()
