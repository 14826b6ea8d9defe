"""Score a model on paired photos: the work behind ``lutgen evaluate``.

Each input is enhanced exactly as ``lutgen enhance`` does it (the same 8- or 16-bit output codes) and
compared with its target, with the metrics of the AdaInt paper's evaluation scripts:

- **PSNR** in dB on values in ``[0, 1]`` (codes divided by 255 or 65535;
  :func:`lutgen.color.adaint.psnr`);
- **SSIM** of Wang's ``ssim.m`` (2009): values on a 0..255 scale, automatic downsampling by
  ``f = max(1, round(min(H, W) / 256))`` (an ``f x f`` mean filter with symmetric borders, then every
  ``f``-th pixel), an 11 x 11 Gaussian window (sigma 1.5) over the valid region, ``K = (0.01, 0.03)``.
  It is computed per RGB channel and averaged; the published script applies it to the RGB array laid
  out as one 2-D matrix (the channels side by side), which differs only in the few windows that
  straddle two channels;
- **Delta E** (CIE76): the mean Euclidean distance in CIELAB, from sRGB with a D65 white, as
  MATLAB's ``rgb2lab`` computes it (up to the rounding of its white point, about 0.01).

The same scores of the untouched input against the target are the baseline.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lutgen.color.adaint import psnr
from lutgen.devices import check_device_name
from lutgen.errors import LutgenError
from lutgen.fileio import atomic_write_bytes, ensure_not_input
from lutgen.tasks.options import check_output_file
from lutgen.imaging import load_image
from lutgen.models import DEFAULT_MODEL, load_weights
from lutgen.tasks.pairs import ImagePair, pair_images

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K = (0.01, 0.03)
SSIM_PEAK = 255.0

# sRGB (IEC 61966-2-1) to XYZ; the white is the XYZ of sRGB white, D65 (0.95047, 1, 1.08883), so that
# white maps to L* = 100, a* = b* = 0 (MATLAB rounds this white to 4 decimals: a 0.01 difference in Delta E).
SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
D65_WHITE = SRGB_TO_XYZ.sum(axis=1)


# --------------------------------------------------------------------------------------------
# Metrics on float images (H, W, 3) in [0, 1]
# --------------------------------------------------------------------------------------------


def _box_downsample(plane: np.ndarray, f: int) -> np.ndarray:
    """MATLAB ``imfilter(x, ones(f)/f^2, 'symmetric', 'same')`` then ``x(1:f:end, 1:f:end)``."""
    before = (f - 1) // 2  # the centre of an f x f kernel is at floor((f + 1) / 2), 1-based
    after = f - 1 - before
    padded = np.pad(plane, ((before, after), (before, after)), mode="symmetric")
    sums = padded.cumsum(0).cumsum(1)
    sums = np.pad(sums, ((1, 0), (1, 0)))
    rows = np.arange(0, plane.shape[0], f)
    cols = np.arange(0, plane.shape[1], f)
    total = (sums[np.ix_(rows + f, cols + f)] - sums[np.ix_(rows, cols + f)] - sums[np.ix_(rows + f, cols)]
             + sums[np.ix_(rows, cols)])
    return total / (f * f)


def _gaussian_window() -> np.ndarray:
    """MATLAB ``fspecial('gaussian', 11, 1.5)`` as a normalised 1-D factor (the 2-D window is its outer product)."""
    x = np.arange(SSIM_WINDOW) - (SSIM_WINDOW - 1) / 2
    g = np.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def _filter_valid(plane: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable correlation of ``plane`` with ``outer(g, g)``, keeping only the fully covered region."""
    rows = np.lib.stride_tricks.sliding_window_view(plane, len(g), axis=0) @ g
    return np.lib.stride_tricks.sliding_window_view(rows, len(g), axis=1) @ g


def ssim_factor(height: int, width: int) -> int:
    """The SSIM downsampling factor of an image: ``round(min(H, W) / 256)``, at least 1 (MATLAB's round)."""
    return max(1, math.floor(min(height, width) / 256 + 0.5))


def ssim_fits(height: int, width: int) -> bool:
    """Whether an image keeps at least the SSIM window (11 pixels) on each side after downsampling."""
    f = ssim_factor(height, width)
    return -(-min(height, width) // f) >= SSIM_WINDOW


def _ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    if not ssim_fits(*a.shape):
        raise LutgenError(f"an image of {a.shape[1]}x{a.shape[0]} pixels is too small for SSIM: it needs at least "
                          f"{SSIM_WINDOW} pixels on each side")
    f = ssim_factor(*a.shape)
    if f > 1:
        a, b = _box_downsample(a, f), _box_downsample(b, f)
    g = _gaussian_window()
    c1 = (SSIM_K[0] * SSIM_PEAK) ** 2
    c2 = (SSIM_K[1] * SSIM_PEAK) ** 2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = _filter_valid(b * b, g) - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(output: np.ndarray, target: np.ndarray) -> float:
    """Mean over the RGB channels of Wang's SSIM (see the module docstring); images ``(H, W, 3)`` in ``[0, 1]``."""
    a = np.asarray(output, np.float64) * SSIM_PEAK
    b = np.asarray(target, np.float64) * SSIM_PEAK
    return float(np.mean([_ssim_plane(a[..., c], b[..., c]) for c in range(3)]))


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB of sRGB values ``(..., 3)`` in ``[0, 1]``, D65 white (MATLAB's ``rgb2lab`` defaults)."""
    rgb = np.asarray(rgb, np.float64)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ SRGB_TO_XYZ.T / D65_WHITE
    delta = 6 / 29
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def delta_e76(output: np.ndarray, target: np.ndarray) -> float:
    """Mean CIE76 colour difference of two sRGB images ``(H, W, 3)`` in ``[0, 1]``."""
    difference = srgb_to_lab(output) - srgb_to_lab(target)
    return float(np.sqrt((difference**2).sum(axis=-1)).mean())


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    psnr: float
    ssim: float
    delta_e: float

    @classmethod
    def of(cls, output: np.ndarray, target: np.ndarray) -> Scores:
        return cls(psnr(output, target), ssim(output, target), delta_e76(output, target))

    @classmethod
    def mean(cls, scores: Sequence[Scores]) -> Scores:
        return cls(*(float(np.mean([getattr(s, k) for s in scores])) for k in ("psnr", "ssim", "delta_e")))


@dataclass
class EvaluationRow:
    name: str
    output: Scores  # the model's output against the target
    input: Scores  # the untouched input against the target (baseline)


@dataclass
class EvaluationResult:
    rows: list[EvaluationRow] = field(default_factory=list)
    csv_path: Path | None = None

    @property
    def mean_output(self) -> Scores:
        return Scores.mean([row.output for row in self.rows])

    @property
    def mean_input(self) -> Scores:
        return Scores.mean([row.input for row in self.rows])


def _unit(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) / float(np.iinfo(rgb.dtype).max)


def _check_ssim_sizes(pairs: Sequence[ImagePair]) -> None:
    """Refuse, before scoring any, a pair too small for SSIM, naming its files."""
    for pair in pairs:
        width, height = pair.size
        if not ssim_fits(height, width):
            raise LutgenError(f"{pair.input} and its target {pair.target} are {width}x{height} pixels, too small for "
                              f"SSIM, which needs at least {SSIM_WINDOW} pixels on each side")


def evaluate_pair(enhancer, pair: ImagePair) -> EvaluationRow:
    """Enhance ``pair.input`` as ``lutgen enhance`` would and score it (and the input) against the target."""
    source = load_image(pair.input).rgb
    target = _unit(load_image(pair.target).rgb)
    try:
        graded = enhancer(source).graded
    except LutgenError as error:
        raise LutgenError(f"cannot evaluate {pair.input}: {error}") from None
    output = _unit(graded)
    return EvaluationRow(pair.name, Scores.of(output, target), Scores.of(_unit(source), target))


def _check_csv_path(csv_path: Path) -> None:
    check_output_file(csv_path, "--csv", ".csv")


CSV_COLUMNS = ("image", "psnr", "ssim", "delta_e", "input_psnr", "input_ssim", "input_delta_e")


def csv_text(result: EvaluationResult) -> str:
    """One line per image and a last line ``mean``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    lines = [(row.name, row.output, row.input) for row in result.rows]
    lines.append(("mean", result.mean_output, result.mean_input))
    for name, out, base in lines:
        writer.writerow([name, f"{out.psnr:.4f}", f"{out.ssim:.6f}", f"{out.delta_e:.4f}",
                         f"{base.psnr:.4f}", f"{base.ssim:.6f}", f"{base.delta_e:.4f}"])
    return buffer.getvalue()


def evaluate(
    model: str = DEFAULT_MODEL,
    input_dir: Path = Path("input"),
    target_dir: Path = Path("target"),
    csv_path: Path | None = Path("evaluation.csv"),
    device: str = "cpu",
    progress: Callable[[Sequence], Sequence] = lambda items: items,
) -> EvaluationResult:
    """Score ``model`` on every pair of ``input_dir``/``target_dir``; write the CSV unless ``csv_path`` is None.

    The CSV (:func:`csv_text`) is written atomically once every pair is scored; its path is checked
    before: it must end in ``.csv``, must not be a folder, and must not be one of the photos.

    Raises:
        LutgenError: bad options, folders or pairs, a missing or invalid model, a model that predicts
            no usable LUT for a photo, an unwritable CSV (one sentence).
    """
    from lutgen.tasks.enhance import make_enhancer

    device = check_device_name(device)
    if csv_path is not None:
        _check_csv_path(Path(csv_path))
    pairs = pair_images(input_dir, target_dir)
    _check_ssim_sizes(pairs)
    if csv_path is not None:
        ensure_not_input(csv_path, [path for pair in pairs for path in (pair.input, pair.target)])
    enhancer = make_enhancer(load_weights(model), device)
    result = EvaluationResult(csv_path=csv_path)
    for pair in progress(pairs):
        result.rows.append(evaluate_pair(enhancer, pair))
    if csv_path is not None:
        try:
            atomic_write_bytes(csv_path, csv_text(result).encode("utf-8"))
        except OSError as error:
            raise LutgenError(f"cannot write {csv_path}: {error.strerror or error}") from None
    return result
