"""One 3D LUT that gives photos the colours of reference photos: the work behind ``lutgen match``.

"Make my photos look like this photo", without CLIP or torch. The method:

1. **Samples.** Every photo to grade and every reference is read (shrunk to at most
   :data:`SAMPLE_SIDE` pixels a side, which keeps its colour distribution) and at most
   ``max_pixels`` of its pixels are drawn at random: the photos' samples are the source, the
   references' the target. Each image gives the same share, so one large photo does not drown the others.
2. **Colours balanced.** In each sample set, each sample weighs the number of samples in its colour
   cell (a ``16^3`` grid over sRGB) to the power ``-balance`` (default 0.75, :data:`BALANCE_EXPONENT`). A large area of
   one colour (a sky, a wall) is mostly content, not look: without this, the sky of a reference
   would be painted over whatever fills the photos.
   Every colour the images show still counts, with the common ones damped; the transfer below
   matches these weighted distributions (weighted quantiles). For references of the same scene as
   the photos (the same shots graded, or a similar frame), ``balance`` 0 matches every pixel.
3. **Distribution transfer in Oklab.** Both sample sets go to Oklab (:mod:`lutgen.color.oklab`),
   where distances follow perceived differences, and the source is moved onto the references'
   distribution by iterative sliced optimal transport (:func:`lutgen.optim.transport.sliced_transport`:
   at each iteration a random orthonormal basis, each 1D projection quantile-matched).
4. **Lightness order kept.** The moved lightnesses are then handed back in the order of the source's
   lightnesses (a 1D quantile map of ``L``), so that a brighter colour never comes out darker than a
   darker one (no tone reversals, which would posterise or solarise gradients).
5. **One smooth LUT.** The moved samples go back to sRGB (clipped to the gamut) and are blended with
   their source colours by ``strength``; the pairs (source colour -> moved colour) are fitted by the
   regularised lattice regression of ``lutgen fit`` (:func:`lutgen.optim.lattice_fit.fit_lattice`: a
   global curve model plus a smooth residual lattice, robust loss), whose smoothness prior turns the
   scattered, noisy transport into one smooth look that also covers colours no photo shows.

Regularisation: the options of ``lutgen optimize`` and ``lutgen fit``, with the meaning they have in
the lattice regression of step 5 (see :mod:`lutgen.tasks.fit`): ``lut_smoothness`` (formerly
``smoothness``) weighs the smoothness prior; ``image_regularization`` pulls every node of the table
towards the identity (keep the grade subtle; at 1000 the table is nearly the identity);
``black_preservation`` / ``highlight_preservation`` pull the nodes at and near black (luma under
0.01) / white (luma over 0.99) to the identity. Each weight counts relative to the regression's data
term; 0 (the default of the last three) adds nothing to the least-squares system, bit for bit.
``--image-smoothness`` is not offered, for the reason given in :mod:`lutgen.tasks.fit`.

Deterministic for a given ``seed``. The ``.cube`` is written atomically at the end, with the recipe
(:mod:`lutgen.tasks.recipe`) in its comments: lutgen's version, one ``settings:`` line (LUT size,
the four regularisation weights, strength, balance, iterations, pixels per image, seed) and one line
per reference and per photo with the first 12 hex digits of its SHA-256. The report is the sliced
Wasserstein distance in Oklab between the photos' and the references' balanced colours, before and
after grading with the LUT written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lutgen.color.oklab import oklab_to_srgb, srgb_to_oklab
from lutgen.errors import ImageError, LutgenError
from lutgen.fileio import ensure_not_input
from lutgen.imaging import find_images, image_size, load_rgb_float
from lutgen.lut import LUT
from lutgen.optim.lattice_fit import fit_lattice, interpolate
from lutgen.optim.transport import (
    DEFAULT_ITERATIONS,
    quantile_map,
    sliced_transport,
    sliced_wasserstein,
)
from lutgen.tasks.fit import MAX_LUT_SIZE, MIN_LUT_SIZE, check_regularisation, lattice_weights, regularisation
from lutgen.tasks.optimize_plan import image_folder
from lutgen.tasks.options import MAX_SEED, check_number, check_output_file
from lutgen.tasks.recipe import file_line, recipe

DEFAULT_LUT_SIZE = 33
DEFAULT_SMOOTHNESS = 1e-2
"""Weight of the lattice prior: far higher than ``fit``'s, since transported samples scatter far more
than before/after pairs. On ``bench/bench_match.py``'s looks it matters little (median 25.2, 25.3 and
25.4 dB at 1e-3, 1e-2 and 1e-1; 18.3 dB at 1e-4 against 18.6 at 1e-2 before colours were balanced)."""
DEFAULT_MAX_PIXELS = 20_000
MIN_PIXELS, MAX_SAMPLED_PIXELS = 100, 1_000_000
MAX_ITERATIONS = 1000
MAX_IMAGES = 10_000
"""Most photos plus references in one run."""
MAX_SAMPLES = 2_000_000
"""Most samples of the photos, and of the references, in all: with many images, fewer pixels are drawn
from each (about 50 MB a set, a few hundred MB at the peak of the transfer and the fit)."""
SAMPLE_SIDE = 1024
"""Images are read shrunk to at most this many pixels a side before their pixels are sampled."""
SEED = 0
BALANCE_CELLS = 16
"""Cells per axis of the sRGB grid over which colours are balanced."""
BALANCE_EXPONENT = 0.75
"""The default ``--balance``: a sample weighs its colour cell's count to the power ``-0.75`` (0: every
pixel the same, 1: every colour cell shown the same). Chosen with ``bench/bench_match.py`` (references
of other scenes, six looks, median/worst PSNR: 0: 18.6/16.7 dB, 0.5: 22.8/21.1, 0.75: 25.3/20.2,
1: 24.6/18.8). With references of the same scene, 0 is best (35.0 dB median against 27.4 at 0.75):
the weights are counted in each set's own colours, which the look itself moves."""


@dataclass(frozen=True)
class MatchSettings:
    """The options of ``lutgen match`` (see the command's help), with its defaults."""

    lut_size: int = DEFAULT_LUT_SIZE
    lut_smoothness: float = DEFAULT_SMOOTHNESS
    strength: float = 1.0
    balance: float = BALANCE_EXPONENT
    max_pixels: int = DEFAULT_MAX_PIXELS
    iterations: int = DEFAULT_ITERATIONS
    seed: int = SEED
    image_regularization: float = 0.0
    black_preservation: float = 0.0
    highlight_preservation: float = 0.0


@dataclass(frozen=True)
class MatchResult:
    """What ``match`` did: the LUT written, its inputs, and the distances before and after grading."""

    output: Path
    lut: LUT
    references: list[Path]
    photos: list[Path]
    samples: int
    distance_before: float
    distance_after: float


# --------------------------------------------------------------------------------------------
# Options and inputs
# --------------------------------------------------------------------------------------------


def check_settings(settings: MatchSettings) -> None:
    """Refuse bad option values by name (one sentence each), before any image is read."""
    check_number("lut-size", settings.lut_size, MIN_LUT_SIZE, MAX_LUT_SIZE)
    check_regularisation(settings)
    check_number("strength", settings.strength, 0.0, 1.0)
    check_number("balance", settings.balance, 0.0, 1.0)
    check_number("max-pixels", settings.max_pixels, MIN_PIXELS, MAX_SAMPLED_PIXELS)
    check_number("iterations", settings.iterations, 1, MAX_ITERATIONS)
    check_number("seed", settings.seed, 0, MAX_SEED)


def check_output(output: Path) -> None:
    """The output must be a ``.cube`` file name in a folder that can be written."""
    check_output_file(output, "--output-path", ".cube")


def find_references(references: Sequence[Path]) -> list[Path]:
    """The reference images among the files and folders given, or one sentence saying why there are none."""
    if not references:
        raise ImageError("no reference image was given; name one or more reference photos or folders")
    return find_images(list(references))


def find_photos(folder: Path | None) -> tuple[Path, list[Path]]:
    """The folder of photos to grade (the bundled ``images/`` by default) and its images."""
    folder = image_folder(folder, "the photos to grade")
    return folder, find_images(folder)


def check_headers(paths: Sequence[Path]) -> None:
    """Read every image's header (cheap), so that a file that is not a readable image is named first."""
    if len(paths) > MAX_IMAGES:
        raise ImageError(f"{len(paths)} photos and references are too many for one match; give at most {MAX_IMAGES}")
    for path in paths:
        image_size(path)


# --------------------------------------------------------------------------------------------
# Samples and the transfer (pure)
# --------------------------------------------------------------------------------------------


def sample_image(path: Path, max_pixels: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_pixels`` random pixels of the image at ``path`` (shrunk), float64 ``(P, 3)`` in [0, 1]."""
    pixels = load_rgb_float(path, max_side=SAMPLE_SIDE).reshape(-1, 3)
    if len(pixels) > max_pixels:
        pixels = pixels[np.sort(rng.choice(len(pixels), size=max_pixels, replace=False))]
    return pixels.astype(np.float64)


def gather(photos: Sequence[Path], references: Sequence[Path], max_pixels: int, rng: np.random.Generator,
           progress: Callable[[Sequence], Sequence]) -> tuple[np.ndarray, np.ndarray]:
    """The samples of every photo and of every reference, each set concatenated: ``(P, 3)`` and ``(M, 3)``.

    Each image gives at most ``max_pixels`` samples, and fewer when a set would pass :data:`MAX_SAMPLES`.
    """
    per_photo = min(max_pixels, MAX_SAMPLES // len(photos))
    per_reference = min(max_pixels, MAX_SAMPLES // len(references))
    images = [(path, per_photo) for path in photos] + [(path, per_reference) for path in references]
    samples = [sample_image(path, count, rng) for path, count in progress(images)]
    return np.concatenate(samples[:len(photos)]), np.concatenate(samples[len(photos):])


def colour_weights(samples: np.ndarray, exponent: float = BALANCE_EXPONENT, cells: int = BALANCE_CELLS
                   ) -> np.ndarray:
    """The weight ``(P,)`` of each sample ``(P, 3)`` in [0, 1]: ``count ** -exponent``, summing to 1.

    ``count`` is how many samples share its cell of a ``cells^3`` grid over the colour cube, so
    common colours are damped.
    """
    cell = np.clip((samples * cells).astype(np.int64), 0, cells - 1)
    key = (cell[:, 0] * cells + cell[:, 1]) * cells + cell[:, 2]
    weights = np.bincount(key, minlength=cells**3)[key].astype(np.float64) ** -exponent
    return weights / weights.sum()


def keep_lightness_order(source_lab: np.ndarray, moved_lab: np.ndarray, weights: np.ndarray | None = None
                         ) -> np.ndarray:
    """``moved_lab`` with its lightnesses re-dealt in the order of ``source_lab``'s (both ``(P, 3)`` Oklab).

    The distribution of the moved lightnesses (under ``weights`` ``(P,)``, equal when ``None``) is
    kept, so it still matches the references'; only which sample gets which changes: a sample
    darker than another in the source stays darker, a monotone tone curve.
    """
    out = moved_lab.copy()
    order = np.argsort(moved_lab[:, 0], kind="stable")
    reference_weights = None if weights is None else weights[order]
    out[:, 0] = quantile_map(source_lab[:, 0], moved_lab[order, 0], weights, reference_weights)
    return out


def transfer_pairs(source: np.ndarray, target: np.ndarray, iterations: int, strength: float,
                   rng: np.random.Generator, balance: float = BALANCE_EXPONENT) -> np.ndarray:
    """Where each source colour ``(P, 3)`` goes: moved onto ``target``'s distribution in Oklab; ``(P, 3)`` sRGB.

    See steps 2 to 5 of the module docstring; ``strength`` blends the moved colours with the
    source's (0 gives the source back).
    """
    source_lab = srgb_to_oklab(source)
    source_weights = colour_weights(source, balance)
    moved = sliced_transport(source_lab, srgb_to_oklab(target), iterations, rng, source_weights=source_weights,
                             target_weights=colour_weights(target, balance))
    moved = oklab_to_srgb(keep_lightness_order(source_lab, moved, source_weights))
    return source + strength * (moved - source)


def match_table(source: np.ndarray, target: np.ndarray, settings: MatchSettings) -> np.ndarray:
    """The LUT table ``(N, N, N, 3)`` moving the colours of ``source`` samples towards ``target``'s.

    Both are ``(P, 3)`` / ``(M, 3)`` sRGB samples in [0, 1] (pixels as drawn); see steps 2 to 5 of the
    module docstring. Deterministic for ``settings.seed``.
    """
    rng = np.random.default_rng(settings.seed)
    moved = transfer_pairs(source, target, settings.iterations, settings.strength, rng, settings.balance)
    return fit_lattice(source, moved, settings.lut_size, **lattice_weights(settings)).table


def oklab_distance(a: np.ndarray, b: np.ndarray, balance: float = BALANCE_EXPONENT) -> float:
    """The sliced Wasserstein distance in Oklab between the balanced colours of sRGB samples ``a`` and ``b``.

    Both ``(P, 3)``; each set is weighted by :func:`colour_weights` with ``balance``, as the transfer weighs them.
    """
    return sliced_wasserstein(srgb_to_oklab(a), srgb_to_oklab(b), weights=colour_weights(a, balance),
                              other_weights=colour_weights(b, balance))


# --------------------------------------------------------------------------------------------
# Recipe and the command
# --------------------------------------------------------------------------------------------


def recipe_lines(references: Sequence[Path], photos: Sequence[Path], settings: MatchSettings) -> tuple[str, ...]:
    """The ``.cube`` comment lines that record how the LUT was made (:mod:`lutgen.tasks.recipe`)."""
    settings_used = {"lut_size": settings.lut_size, **regularisation(settings), "strength": float(settings.strength),
                     "balance": float(settings.balance), "iterations": settings.iterations,
                     "max_pixels": settings.max_pixels, "seed": settings.seed}
    evidence = [file_line("reference", path) for path in references] + [file_line("photo", path) for path in photos]
    return recipe("match", "sliced optimal transport in Oklab of balanced colours, fitted by regularised lattice "
                  "regression", settings_used, evidence)


def match(
    references: Sequence[Path],
    output: Path,
    image_folder: Path | None = None,
    settings: MatchSettings = MatchSettings(),
    progress: Callable[[Sequence], Sequence] = lambda items: items,
) -> MatchResult:
    """Write to ``output`` one LUT that gives the photos of ``image_folder`` the colours of ``references``.

    See the module docstring. ``progress`` wraps the list of images read (a tqdm bar in the CLI).

    Raises:
        LutgenError: bad options, no or unreadable references, a missing or empty image folder, an
            output that would overwrite an input or cannot be written (one sentence each, before the
            long work starts).
    """
    output = Path(output)
    check_settings(settings)
    check_output(output)
    reference_paths = find_references([Path(path) for path in references])
    _, photos = find_photos(image_folder)
    ensure_not_input(output, [*reference_paths, *photos])
    check_headers([*reference_paths, *photos])

    rng = np.random.default_rng(settings.seed)
    source, target = gather(photos, reference_paths, settings.max_pixels, rng, progress)
    table = match_table(source, target, settings)
    lut = LUT(table, title="lutgen match", comments=recipe_lines(reference_paths, photos, settings))
    before = oklab_distance(source, target, settings.balance)
    after = oklab_distance(interpolate(table, source), target, settings.balance)
    from lutgen.formats import write_lut

    try:
        write_lut(lut, output)
    except OSError as error:
        raise LutgenError(f"cannot write {output}: {error.strerror or error}") from None
    return MatchResult(output, lut, reference_paths, photos, len(source), before, after)
