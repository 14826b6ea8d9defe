"""Sliced optimal transport of colour samples: move one point cloud's distribution onto another's.

The iterative distribution transfer of Pitié, Kokaram and Dahyot ("N-dimensional probability
density function transfer and its application to colour transfer", ICCV 2005), as a pure function
on NumPy arrays (no I/O, no torch):

1. pick a random orthonormal basis of the colour space (a rotation drawn uniformly);
2. project the source and the target samples on each of its three axes;
3. on each axis, move every source sample to the target's value at the same quantile (1D optimal
   transport: the sorted source is matched to the sorted target, so the order along the axis is kept);
4. move the source samples by that change (times a relaxation ``step``) and start again.

Every 1D marginal along the axes tried is matched exactly at each iteration; after a few tens of
random bases the whole 3D distribution of the source is close to the target's (the sliced
Wasserstein distance, :func:`sliced_wasserstein`, falls towards the sampling noise).

Shapes: samples are float arrays ``(P, D)`` (``D = 3`` for colours, any ``D >= 1`` works); the
source and target may have different numbers of samples. Everything is deterministic for a given
``numpy.random.Generator`` state.
"""

from __future__ import annotations

import numpy as np

DEFAULT_ITERATIONS = 30
"""Random bases tried by :func:`sliced_transport` by default."""
DEFAULT_DIRECTIONS = 64
"""Random directions over which :func:`sliced_wasserstein` averages."""


def random_basis(rng: np.random.Generator, dimensions: int = 3) -> np.ndarray:
    """A random orthonormal ``(D, D)`` matrix (columns are the axes), uniform over rotations and reflections."""
    q, r = np.linalg.qr(rng.standard_normal((dimensions, dimensions)))
    return q * np.sign(np.diag(r))  # the sign fix makes the draw uniform (Haar)


def quantile_map(values: np.ndarray, reference_sorted: np.ndarray, weights: np.ndarray | None = None,
                 reference_weights: np.ndarray | None = None) -> np.ndarray:
    """Each of ``values`` ``(P,)`` replaced by the value of ``reference_sorted`` ``(M,)`` at its quantile.

    Unweighted, the ``k``-th smallest of ``P`` values has quantile ``(k + 0.5) / P``; with
    ``weights`` ``(P,)``, its quantile is the weight of the values before it plus half its own, over
    the total (and likewise for the reference with ``reference_weights`` ``(M,)``, in the order of
    ``reference_sorted``). The reference's quantile function is linear between its samples. Ties
    among ``values`` get distinct quantiles (their order in the array), so the result has the
    reference's distribution.
    """
    order = np.argsort(values, kind="stable")
    mapped = np.empty(len(values), np.float64)
    mapped[order] = np.interp(_midpoints(weights, order, len(values)),
                              _midpoints(reference_weights, None, len(reference_sorted)), reference_sorted)
    return mapped


def _midpoints(weights: np.ndarray | None, order: np.ndarray | None, count: int) -> np.ndarray:
    """The quantile of each of ``count`` sorted samples: the weight before it plus half its own, over the total."""
    if weights is None:
        return (np.arange(count) + 0.5) / count
    ordered = np.asarray(weights, np.float64) if order is None else np.asarray(weights, np.float64)[order]
    cumulative = np.cumsum(ordered)
    return (cumulative - ordered / 2) / cumulative[-1]


def transport_step(source: np.ndarray, target: np.ndarray, basis: np.ndarray, step: float = 1.0,
                   source_weights: np.ndarray | None = None, target_weights: np.ndarray | None = None
                   ) -> np.ndarray:
    """One iteration: ``source`` ``(P, D)`` with its marginals along the columns of ``basis`` moved to ``target``'s.

    ``source_weights`` ``(P,)`` and ``target_weights`` ``(M,)`` (positive; ``None``: equal) weigh the
    samples in both distributions.
    """
    projected = source @ basis
    target_projected = target @ basis
    change = np.empty_like(projected)
    for axis in range(basis.shape[1]):
        order = np.argsort(target_projected[:, axis], kind="stable")
        reference_weights = None if target_weights is None else np.asarray(target_weights)[order]
        mapped = quantile_map(projected[:, axis], target_projected[order, axis], source_weights, reference_weights)
        change[:, axis] = mapped - projected[:, axis]
    return source + step * (change @ basis.T)


def sliced_transport(source: np.ndarray, target: np.ndarray, iterations: int = DEFAULT_ITERATIONS,
                     rng: np.random.Generator | None = None, step: float = 1.0,
                     source_weights: np.ndarray | None = None, target_weights: np.ndarray | None = None
                     ) -> np.ndarray:
    """``source`` ``(P, D)`` moved so that its distribution matches ``target`` ``(M, D)``; see the module docstring.

    Args:
        source: the samples to move (not changed in place).
        target: samples of the distribution to reach.
        iterations: random bases to go through (0 returns a copy of ``source``).
        rng: the random generator for the bases (a fresh ``default_rng(0)`` when ``None``).
        step: relaxation in ``(0, 1]``; below 1 each iteration moves the samples only part of the way.
        source_weights, target_weights: ``(P,)`` and ``(M,)`` positive weights of the samples in their
            distributions (``None``: all equal).

    Returns:
        The moved samples ``(P, D)``, float64; sample ``i`` is where ``source[i]`` went, so
        ``(source[i], moved[i])`` pairs describe the transfer as a mapping.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    moved = np.array(source, np.float64)
    target = np.asarray(target, np.float64)
    for _ in range(iterations):
        moved = transport_step(moved, target, random_basis(rng, moved.shape[1]), step, source_weights,
                               target_weights)
    return moved


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, directions: int = DEFAULT_DIRECTIONS, seed: int = 0,
                       weights: np.ndarray | None = None, other_weights: np.ndarray | None = None) -> float:
    """The sliced 2-Wasserstein distance between samples ``a`` ``(P, D)`` and ``b`` ``(M, D)``.

    The square root of the mean, over ``directions`` random unit directions (fixed by ``seed``), of
    the squared 1D Wasserstein distance between the two projected distributions (compared at
    matching quantiles). ``weights`` ``(P,)`` and ``other_weights`` ``(M,)`` weigh the samples
    (``None``: equal). In the units of the samples; 0 for identical distributions.
    """
    rng = np.random.default_rng(seed)
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    units = rng.standard_normal((a.shape[1], directions))
    units /= np.linalg.norm(units, axis=0)
    count = min(len(a), len(b), 100_000)
    quantiles = (np.arange(count) + 0.5) / count
    squared = []
    for k in range(directions):
        qa = _quantiles(a @ units[:, k], quantiles, weights)
        qb = _quantiles(b @ units[:, k], quantiles, other_weights)
        squared.append(np.mean((qa - qb) ** 2))
    return float(np.sqrt(np.mean(squared)))


def _quantiles(values: np.ndarray, quantiles: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """The empirical quantile function of ``values`` ``(P,)`` (weighted, midpoint convention) at ``quantiles``."""
    order = np.argsort(values, kind="stable")
    return np.interp(quantiles, _midpoints(weights, order, len(values)), values[order])
