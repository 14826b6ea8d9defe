"""Before/after pairs as pixels: reading a pair, checking that it is aligned, sampling its pixels.

Shared by ``lutgen fit`` and ``lutgen optimize --pairs``. Images are float32 ``(H, W, 3)`` in
``[0, 1]``; samples are float64 ``(P, 3)``.
"""

from __future__ import annotations

import numpy as np

from lutgen.errors import ImageError
from lutgen.fileio import check_regular_file
from lutgen.imaging import load_rgb_float
from lutgen.tasks.pairs import ImagePair

ALIGNMENT_SIDE = 512
"""Pairs are compared for alignment at most this many pixels a side (box-averaged)."""
MAX_SHIFT = 6
"""Shifts tried in each direction, in pixels of the comparison size."""
ALIGNMENT_TILES = 3
"""The picture is compared in ``3 x 3`` tiles, so that a crop or a rescale (which shifts the edges of
the picture one way and the other) is seen as well as a shift."""
ALIGNMENT_GAIN = 0.05
"""A tile is misaligned when a shift of 2 pixels or more correlates better than none by this much and
by more than half the gap between no shift and a perfect match."""


def load_pair(pair: ImagePair) -> tuple[np.ndarray, np.ndarray]:
    """The input and target of ``pair`` as float32 ``(H, W, 3)`` in [0, 1], the target resized to the input."""
    for path in (pair.input, pair.target):
        check_regular_file(path, "image", ImageError)
    before = load_rgb_float(pair.input)
    after = load_rgb_float(pair.target)
    if after.shape != before.shape:
        import cv2

        after = cv2.resize(after, (before.shape[1], before.shape[0]), interpolation=cv2.INTER_AREA)
    return before, after


def _box_shrink(plane: np.ndarray, factor: int) -> np.ndarray:
    """``plane`` ``(H, W)`` averaged over ``factor x factor`` blocks (the ragged edge dropped)."""
    if factor == 1:
        return plane
    h, w = plane.shape[0] // factor * factor, plane.shape[1] // factor * factor
    return plane[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def edge_strength(plane: np.ndarray) -> np.ndarray:
    """Gradient magnitude of a grey picture ``(H, W)`` (zeros when a side is under 2 pixels)."""
    if min(plane.shape) < 2:
        return np.zeros_like(plane)
    gy, gx = np.gradient(plane)
    return np.hypot(gx, gy)


def _grey(rgb: np.ndarray, factor: int) -> np.ndarray:
    """The sum of the channels, box-shrunk by ``factor``, then replaced by its rank in [0, 1].

    Ranks undo any monotone tone curve, so that a strong grade (a log-to-video curve, crushed
    shadows) leaves the same edges in both pictures.
    """
    rgb = np.asarray(rgb, np.float32)
    plane = _box_shrink(rgb[..., 0] + rgb[..., 1] + rgb[..., 2], factor)
    _, where, counts = np.unique(plane, return_inverse=True, return_counts=True)
    middle_ranks = (np.cumsum(counts) - counts / 2) / max(plane.size, 1)  # equal values share one rank
    return middle_ranks[where.ravel()].reshape(plane.shape).astype(np.float32)


def tile_shifts(a: np.ndarray, b: np.ndarray, tiles: int = ALIGNMENT_TILES, reach: int = MAX_SHIFT
                ) -> list[tuple[tuple[int, int], float, float]]:
    """For each of ``tiles x tiles`` tiles with edges: the shift ``(dx, dy)`` of ``b`` best matching ``a``.

    Both are ``(H, W)`` edge maps. The match is the cosine similarity of the two maps over the tile,
    with ``b`` moved by every shift up to ``reach`` pixels. Returns ``(shift, best, unshifted)`` per
    tile with enough edges (a tenth of the mean tile's energy); flat tiles prove nothing.
    """
    h, w = a.shape
    if min(h, w) <= 2 * reach + tiles:
        return []  # too small to compare
    inner = a[reach:h - reach, reach:w - reach]
    rows = np.linspace(0, inner.shape[0], tiles + 1).astype(int)
    cols = np.linspace(0, inner.shape[1], tiles + 1).astype(int)

    def tile_sums(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.add.reduceat(values, rows[:-1], axis=0), cols[:-1], axis=1)

    energy_a = tile_sums(inner * inner)
    results = {}
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            moved = b[reach + dy:h - reach + dy, reach + dx:w - reach + dx]
            similarity = tile_sums(inner * moved) / np.sqrt(np.maximum(energy_a * tile_sums(moved * moved), 1e-30))
            results[(dx, dy)] = similarity
    structured = energy_a > 0.1 * energy_a.mean()
    found = []
    for i, j in zip(*np.nonzero(structured)):
        best = max(results, key=lambda shift: results[shift][i, j])
        found.append((best, float(results[best][i, j]), float(results[(0, 0)][i, j])))
    return found


def check_alignment(pair: ImagePair, before: np.ndarray, after: np.ndarray) -> None:
    """Refuse, by name, a pair whose target is shifted, cropped or rescaled against its input.

    The edge maps of both pictures are compared tile by tile at two sizes (at most
    :data:`ALIGNMENT_SIDE` pixels a side, and half that, so shifts up to twice :data:`MAX_SHIFT` are
    seen); a tile whose best match is a shift of 2 pixels or more, clearly better than no shift
    (see :data:`ALIGNMENT_GAIN`), means the pictures do not show the same pixels. A colour grade changes
    the strength of edges but not where they are, so graded pairs pass.
    """
    factor = max(1, -(-max(before.shape[:2]) // ALIGNMENT_SIDE))
    fine = _grey(before, factor), _grey(after, factor)
    for scale, (a, b) in ((2 * factor, [_box_shrink(plane, 2) for plane in fine]), (factor, fine)):
        for (dx, dy), best, unshifted in tile_shifts(edge_strength(a), edge_strength(b)):
            if max(abs(dx), abs(dy)) >= 2 and best - unshifted > max(ALIGNMENT_GAIN, (1 - unshifted) / 2):
                raise ImageError(f"{pair.input} and its target {pair.target} are not aligned: part of the "
                                 f"target matches the input moved by about {max(abs(dx), abs(dy)) * scale} "
                                 "pixels (a shift, crop or resize); a pair must show the same pixels in both")


def sample_pixels(before: np.ndarray, after: np.ndarray, max_pixels: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_pixels`` random pixel pairs (without replacement), as float64 ``(P, 3)`` each."""
    x = before.reshape(-1, 3)
    y = after.reshape(-1, 3)
    if len(x) > max_pixels:
        chosen = np.sort(rng.choice(len(x), size=max_pixels, replace=False))
        x, y = x[chosen], y[chosen]
    return x.astype(np.float64), y.astype(np.float64)
