"""One static 3D LUT from before/after photo pairs: the work behind ``lutgen fit``.

Pairs are matched by file name as ``train`` and ``evaluate`` match them
(:func:`lutgen.tasks.pairs.pair_images`). A target of another size than its input is resized to the
input's size by pixel-area averaging (OpenCV ``INTER_AREA``) when the two aspect ratios agree within
1%; otherwise the pair is refused by name. Each pair must show the same pixels: a pair whose target
is shifted, cropped or rescaled against its input is found
(:func:`~lutgen.tasks.pair_pixels.check_alignment`) and refused by name before any fitting.

From each training pair at most ``max_pixels`` pixels are drawn at random (a fixed seed); the LUT
is fitted to them by :func:`lutgen.optim.lattice_fit.fit_lattice` (regularised lattice regression
over a global curve model, with a robust loss). With three pairs or more one pair is held out by
default (the last by name, or the one ``holdout`` names): the written LUT is fitted without it, and
its PSNR and mean CIE76 Delta E on the held-out pair (at full resolution) tell how well the look
carries to photos it never saw. The training scores are measured on (at most 200,000 of) the sampled
pixels.

Regularisation: the options of ``lutgen optimize``, with the meaning they have for a lattice
regression (:func:`lutgen.optim.lattice_fit.fit_lattice`, whose data term is the samples' weighted
mean squared colour error; each weight counts relative to it):

- ``lut_smoothness`` (``--lut-smoothness``, formerly ``--smoothness``): the weight of the smoothness
  prior, the mean squared second derivative of the table's offset from the global curve model
  (above 0, at most 1000; default :data:`~lutgen.optim.lattice_fit.DEFAULT_SMOOTHNESS`). What the
  global model explains (a colour matrix, per-channel curves) costs nothing; kinks do.
- ``image_regularization``: keep the grade subtle: the weight of the mean over all nodes of
  ``|table - identity|^2``. At 1000 the table is the identity within about 1e-3.
- ``black_preservation`` / ``highlight_preservation``: the weight of the mean of
  ``|table - identity|^2`` over the nodes at and near black (Rec.709 luma under 0.01) / white (luma
  over 0.99): the blacks stay black and the whites white. ``optimize`` penalises only a lift of the
  blacks (and, for highlights, also pushing other colours into clipping); a least-squares fit
  pulls those nodes to the identity from both sides. The few pixels that dark or that bright
  carry little weight in the data term, so a weight of 1 already holds them firmly (on uniformly
  spread samples of a look that lifts blacks by 0.06, the black node stays within 1e-4 of black).
- ``optimize``'s ``--image-smoothness`` is not offered: it penalises the high frequencies of the
  change a LUT makes to an image, which for a LUT come only from kinks in its change along the
  image's colours; a lattice regression sees colour samples, not pixel neighbourhoods, and
  ``lut_smoothness`` already penalises those kinks everywhere in the cube. A second weight on the
  same prior would be a second name for one setting.

A weight of 0 adds nothing to the least-squares system: with the three pulls at 0 (their default)
the LUT is bit for bit the one of the smoothness prior alone.

The ``.cube`` is written atomically, with the recipe (:mod:`lutgen.tasks.recipe`) in its comments:
lutgen's version, one ``settings:`` line (LUT size, the four regularisation weights, the pixels per
pair, the held-out pair, the sampling seed) and one line per pair (``pair`` or ``held-out pair``)
with the first 12 hex digits of the SHA-256 of both files.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lutgen.color.adaint import psnr
from lutgen.errors import LutgenError, LutgenWarning, OptionError
from lutgen.fileio import ensure_not_input
from lutgen.lut import INTERPOLATIONS, LUT
from lutgen.optim.lattice_fit import DEFAULT_SMOOTHNESS, fit_lattice, interpolate
from lutgen.tasks.options import MAX_LOSS_WEIGHT, check_number, check_output_file
from lutgen.tasks.pair_pixels import check_alignment, load_pair, sample_pixels
from lutgen.tasks.pairs import ImagePair, pair_images
from lutgen.tasks.recipe import pair_line, recipe

ASPECT_TOLERANCE = 0.01
"""A target of another size is resized to its input when the aspect ratios agree within this fraction."""
DEFAULT_LUT_SIZE = 33
MIN_LUT_SIZE, MAX_LUT_SIZE = 2, 129
DEFAULT_MAX_PIXELS = 200_000
MIN_PIXELS, MAX_SAMPLED_PIXELS = 100, 10_000_000
MAX_SMOOTHNESS = 1e3
WEIGHT_OPTIONS = ("image-regularization", "black-preservation", "highlight-preservation")
"""The regularisation weights besides ``--lut-smoothness``: each 0..1000 (``optimize``'s bound), default 0."""
NO_HOLDOUT = ("0", "none", "no", "off")
HOLDOUT_MIN_PAIRS = 3
"""With at least this many pairs, one is held out unless asked otherwise."""
SEED = 0
POORLY_EXPLAINED_PSNR, POORLY_EXPLAINED_GAP, POORLY_EXPLAINED_SAMPLES = 30.0, 8.0, 50_000
"""A training pair is warned about when the fit's PSNR on (50,000 of) its samples is under 30 dB and
8 dB under the best pair's."""
SCORED_SAMPLES = 200_000
"""The training PSNR and Delta E are measured on at most this many of the sampled pixels."""


@dataclass(frozen=True)
class FitSettings:
    """The options of ``lutgen fit`` (see the module docstring and the command's help), with its defaults."""

    lut_size: int = DEFAULT_LUT_SIZE
    lut_smoothness: float = DEFAULT_SMOOTHNESS
    image_regularization: float = 0.0
    black_preservation: float = 0.0
    highlight_preservation: float = 0.0
    holdout: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    interpolation: str = "trilinear"


@dataclass(frozen=True)
class FitScores:
    """PSNR in dB (values in [0, 1]) and mean CIE76 Delta E of a graded image against its target."""

    psnr: float
    delta_e: float


@dataclass(frozen=True)
class FitResult:
    """What ``fit`` did: the LUT written, the training pairs, the training and held-out scores."""

    output: Path
    lut: LUT
    training: list[str]
    training_scores: FitScores
    holdout: str | None
    holdout_scores: FitScores | None
    samples: int


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


def check_lut_smoothness(value: float, name: str = "lut-smoothness") -> None:
    """Refuse a smoothness weight that is not above 0 and at most :data:`MAX_SMOOTHNESS`, naming ``--name``."""
    check_number(name, value, 0, MAX_SMOOTHNESS, low_inclusive=False)


def lut_smoothness_option(lut_smoothness: float | None, smoothness: float | None, default: float) -> float:
    """The smoothness weight given as ``--lut-smoothness`` or by its old name ``--smoothness`` (else ``default``).

    Each is checked under the name it was given by; giving both is refused.
    """
    if lut_smoothness is not None and smoothness is not None:
        raise OptionError("give --lut-smoothness or its old name --smoothness, not both")
    if smoothness is not None:
        check_lut_smoothness(smoothness, "smoothness")
        return smoothness
    return default if lut_smoothness is None else lut_smoothness


def check_regularisation(settings) -> None:
    """Refuse bad regularisation weights of ``settings`` (a :class:`FitSettings` or a ``MatchSettings``) by name."""
    check_lut_smoothness(settings.lut_smoothness)
    for name in WEIGHT_OPTIONS:
        check_number(name, getattr(settings, name.replace("-", "_")), 0, MAX_LOSS_WEIGHT)


def regularisation(settings) -> dict[str, float]:
    """The four regularisation weights of ``settings`` by setting name, as floats (for the recipe)."""
    names = ("lut_smoothness", *(name.replace("-", "_") for name in WEIGHT_OPTIONS))
    return {name: float(getattr(settings, name)) for name in names}


def lattice_weights(settings) -> dict[str, float]:
    """The keyword arguments of :func:`~lutgen.optim.lattice_fit.fit_lattice` for the weights of ``settings``."""
    return {"smoothness": settings.lut_smoothness, "identity_weight": settings.image_regularization,
            "black_weight": settings.black_preservation, "white_weight": settings.highlight_preservation}


def check_options(output: Path, settings: FitSettings) -> None:
    """Refuse bad option values by name (one sentence each), before any image is read."""
    if not MIN_LUT_SIZE <= settings.lut_size <= MAX_LUT_SIZE:
        raise OptionError(f"--lut-size must be between {MIN_LUT_SIZE} and {MAX_LUT_SIZE}, not {settings.lut_size}")
    check_regularisation(settings)
    if not MIN_PIXELS <= settings.max_pixels <= MAX_SAMPLED_PIXELS:
        raise OptionError(f"--max-pixels must be between {MIN_PIXELS} and {MAX_SAMPLED_PIXELS}, "
                          f"not {settings.max_pixels}")
    if settings.interpolation not in INTERPOLATIONS:
        raise OptionError(f"--interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                          f"not {settings.interpolation!r}")
    check_output_file(output, "--output-path", ".cube")


def choose_holdout(pairs: Sequence[ImagePair], holdout: str | None) -> str | None:
    """The name of the pair to hold out: ``holdout`` if it names one, none for ``0``/``none``, else the default.

    By default the last pair by name is held out when there are at least :data:`HOLDOUT_MIN_PAIRS`.
    """
    names = [pair.name for pair in pairs]
    if holdout is None or holdout.strip().lower() == "auto":
        return names[-1] if len(names) >= HOLDOUT_MIN_PAIRS else None
    if holdout.strip().lower() in NO_HOLDOUT:
        return None
    if holdout not in names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise OptionError(f"--holdout {holdout} names no pair; the pairs are {shown}")
    if len(names) < 2:
        raise OptionError(f"--holdout {holdout} would leave no pair to fit; give another pair or --holdout none")
    return holdout


# --------------------------------------------------------------------------------------------
# Scores and recipe
# --------------------------------------------------------------------------------------------


def scores(graded: np.ndarray, target: np.ndarray) -> FitScores:
    """PSNR (dB) and mean CIE76 Delta E of ``graded`` against ``target``, both ``(..., 3)`` in [0, 1]."""
    from lutgen.tasks.evaluate import delta_e76

    graded = np.clip(np.asarray(graded, np.float64), 0, 1)
    return FitScores(psnr(graded, target), delta_e76(graded, target))


def score_lut(lut: LUT, before: np.ndarray, after: np.ndarray, interpolation: str) -> FitScores:
    """The scores of ``lut`` applied to ``before`` with ``interpolation``, against ``after``."""
    from lutgen.color.cpu import apply_lut_array

    return scores(apply_lut_array(before, lut, interpolation), after)


def recipe_lines(pairs: Sequence[ImagePair], settings: FitSettings, holdout: str | None) -> tuple[str, ...]:
    """The ``.cube`` comment lines that record how the LUT was made (:mod:`lutgen.tasks.recipe`).

    ``holdout`` is the pair actually held out (``None`` for none); the interpolation only changes
    the reported scores, so it is not recorded.
    """
    settings_used = {"lut_size": settings.lut_size, **regularisation(settings), "max_pixels": settings.max_pixels,
                     "holdout": "none" if holdout is None else holdout, "seed": SEED}
    evidence = [pair_line("held-out pair" if pair.name == holdout else "pair", pair.name, pair.input, pair.target)
                for pair in pairs]
    return recipe("fit", "regularised lattice regression from before/after pairs", settings_used, evidence)


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def _gather(pairs: Sequence[ImagePair], max_pixels: int, progress) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Load, check the alignment of, and sample every pair.

    Returns the samples ``(P, 3)`` and ``(P, 3)``, and how many came from each pair (in order).
    """
    rng = np.random.default_rng(SEED)
    xs, ys = [], []
    for pair in progress(list(pairs)):
        before, after = load_pair(pair)
        check_alignment(pair, before, after)
        x, y = sample_pixels(before, after, max_pixels, rng)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys), [len(x) for x in xs]


def warn_poorly_explained(pairs: Sequence[ImagePair], counts: Sequence[int], table: np.ndarray, x: np.ndarray,
                          y: np.ndarray) -> None:
    """Warn about each pair that the fitted table explains far worse than the best one (PSNR on its samples).

    Such a pair has another grade, local retouching or a misalignment the edge check missed; one
    LUT cannot follow it, and it pulls the fit of the pairs that share its colours (which may be
    named too). Needs three pairs or more to compare.
    """
    if len(pairs) < 3:
        return
    ends = np.cumsum(counts)
    psnrs = []
    for start, end in zip(ends - np.asarray(counts), ends):
        part = slice(start, min(end, start + POORLY_EXPLAINED_SAMPLES))
        psnrs.append(psnr(interpolate(table, x[part]), y[part]))
    best = max(psnrs)
    for pair, value in zip(pairs, psnrs):
        if value < POORLY_EXPLAINED_PSNR and value < best - POORLY_EXPLAINED_GAP:
            warnings.warn(f"the LUT explains {pair.input} and its target poorly ({value:.1f} dB against "
                          f"{best:.1f} dB for the best pair): check that the target shows the same picture "
                          "with the same grade, without local retouching", LutgenWarning)


def fit(
    input_dir: Path,
    target_dir: Path,
    output: Path,
    settings: FitSettings = FitSettings(),
    progress: Callable[[Sequence], Sequence] = lambda items: items,
) -> FitResult:
    """Fit one LUT to the pairs of ``input_dir``/``target_dir`` and write it to ``output``; see the module docstring.

    ``progress`` wraps the list of pairs read (a tqdm bar in the CLI).

    Raises:
        LutgenError: bad options, folders, pairs or images, misaligned pairs, an output that would
            overwrite an input or cannot be written (one sentence each, before the fit starts).
    """
    output = Path(output)
    check_options(output, settings)

    pairs = pair_images(input_dir, target_dir, aspect_tolerance=ASPECT_TOLERANCE)
    held = choose_holdout(pairs, settings.holdout)
    ensure_not_input(output, [path for pair in pairs for path in (pair.input, pair.target)])
    training = [pair for pair in pairs if pair.name != held]
    x, y, counts = _gather(training, settings.max_pixels, progress)
    held_pair = next((pair for pair in pairs if pair.name == held), None)
    held_images = None
    if held_pair is not None:
        held_images = load_pair(held_pair)
        check_alignment(held_pair, *held_images)
    result = fit_lattice(x, y, settings.lut_size, **lattice_weights(settings))
    warn_poorly_explained(training, counts, result.table, x, y)
    lut = LUT(result.table, title="lutgen fit", comments=recipe_lines(pairs, settings, held))
    scored = np.random.default_rng(SEED).permutation(len(x))[:SCORED_SAMPLES]
    training_scores = score_lut(lut, x[scored], y[scored], settings.interpolation)
    held_scores = None if held_images is None else score_lut(lut, *held_images, settings.interpolation)
    from lutgen.formats import write_lut

    try:
        write_lut(lut, output)
    except OSError as error:
        raise LutgenError(f"cannot write {output}: {error.strerror or error}") from None
    return FitResult(output, lut, [pair.name for pair in training], training_scores, held, held_scores, len(x))
