"""A 3D LUT from before/after colour samples: regularised lattice regression, solved directly.

The method (the solver behind ``lutgen fit``; pure functions, no I/O, no torch):

1. **A global model in front of the lattice.** Each output channel is a sum of three smooth 1D
   curves, one of each input channel (``out_j = f_jR(R) + f_jG(G) + f_jB(B)``), fitted by weighted
   least squares with a second-difference penalty on the curves. This holds any 3x3 colour matrix
   with an offset, per-channel tone curves, and a channel mix (black and white) as special cases,
   and it extrapolates to colours the samples never show by following the look, not the identity.
2. **A residual lattice.** The unknowns are the ``N^3 x 3`` output values of the table. Each sample
   contributes a trilinear-interpolation row over the 8 nodes around its input colour. A smoothness
   prior (squared second differences along each axis of the *offset from the global model*, scaled
   as a mean squared second derivative over the unit cube so that one ``smoothness`` suits every
   ``N``), plus a small ridge on that offset, makes the nodes the samples never reach follow the
   global model. The normal equations ``(A^T W A + smoothness * P + ridge / N^3 * I) d = A^T W r``
   (one matrix, three right-hand sides, weights summing to 1) are sparse and symmetric positive
   definite. A direct sparse factorisation fills in far too much at ``33^3`` (minutes), and plain
   conjugate gradients need thousands of iterations on a curvature prior, so they are solved by
   conjugate gradients preconditioned with a geometric multigrid V-cycle: about ten iterations.
3. **Colour bins.** To keep the system small, samples are grouped into bins nested in the lattice
   cells (at least 64 bins per axis); each bin contributes one row, the weighted mean of its
   samples' interpolation rows and target colours, with the summed weight.
4. **Pulls towards the identity** (all zero by default). Three soft constraints keep parts of the
   table at the identity ``I`` (the node's own colour): ``identity_weight`` times the mean over all
   nodes of ``|T_k - I_k|^2`` (a ridge on the table's change), ``black_weight`` times the same mean
   over the nodes at and near black (Rec.709 luma under :data:`BLACK_LUMA`, always the black node),
   and ``white_weight`` over the nodes at and near white (luma over :data:`WHITE_LUMA`, always the
   white node). Each weight is relative to the data term (the samples' weighted mean squared error,
   weights summing to 1): at weight 1 a mean squared change of ``e`` on those nodes costs as much as
   a mean squared error of ``e`` on the samples. They are extra weighted rows ``T_k = I_k`` of the
   least-squares system, so they add a diagonal ``c`` ``(N^3,)`` to its matrix and ``c * (I - g)``
   to its right-hand side (``g`` the global model at the nodes):
   ``(A^T W A + smoothness * P + ridge / N^3 * I + diag(c)) d = A^T W r + c * (I - g)``.
5. **A robust loss.** A few iterations of iteratively reweighted least squares with Huber weights on
   each sample's colour error (``min(1, delta / |error|)``), so that a few outlier pixels (JPEG
   artefacts, local retouching) do not bend the LUT.

Shapes: colours are float arrays ``(P, 3)`` in ``[0, 1]`` in R, G, B order; tables are ``(N, N, N, 3)``
indexed ``[b, g, r, channel]`` as :class:`lutgen.lut.LUT` holds them; a flat node index is
``(b * N + g) * N + r``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from lutgen.color.luma import BLACK_LUMA, LUMA_709, WHITE_LUMA
from lutgen.lut import grid

CURVE_KNOTS = 17
"""Knots of each curve of the global model (piecewise linear over [0, 1])."""
CURVE_SMOOTHNESS = 1e-4
"""Weight of the curves' second-difference penalty (per unit mean squared second derivative)."""
RIDGE = 3e-3
"""Weight of the pull of the lattice offset towards zero (the global model), per unit mean squared offset."""
HUBER_DELTA = 0.03
"""Colour error (Euclidean, in [0, 1] RGB) beyond which a sample's weight falls as ``delta / error``."""
MIN_BINS_PER_AXIS = 64
"""Colour bins per axis, at least (a multiple of the lattice's cells)."""
DEFAULT_SMOOTHNESS = 3e-6
"""Weight of the lattice prior (per unit mean squared second derivative); chosen by ``bench/bench_fit.py``."""
CG_TOLERANCE = 1e-7
"""Conjugate gradients stop when each channel's residual is this fraction of its right-hand side."""
CG_MAX_ITERATIONS = 200


# --------------------------------------------------------------------------------------------
# Interpolation rows
# --------------------------------------------------------------------------------------------


def trilinear_corners(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The 8 lattice nodes around each colour and their trilinear weights.

    Args:
        x: ``(P, 3)`` colours in ``[0, 1]`` (clipped), R, G, B.
        n: nodes per axis, at least 2.

    Returns:
        ``(nodes, weights)``: ``(P, 8)`` int64 flat node indices and ``(P, 8)`` float64 weights summing to 1.
    """
    scaled = np.clip(np.asarray(x, np.float64), 0.0, 1.0) * (n - 1)
    low = np.minimum(scaled.astype(np.int64), n - 2)
    frac = scaled - low
    nodes = np.empty((len(scaled), 8), np.int64)
    weights = np.empty((len(scaled), 8), np.float64)
    for corner in range(8):
        step = [(corner >> axis) & 1 for axis in range(3)]  # r, g, b
        index = [low[:, axis] + step[axis] for axis in range(3)]
        nodes[:, corner] = (index[2] * n + index[1]) * n + index[0]
        w = np.ones(len(scaled))
        for axis in range(3):
            w *= frac[:, axis] if step[axis] else 1.0 - frac[:, axis]
        weights[:, corner] = w
    return nodes, weights


def interpolation_matrix(nodes: np.ndarray, weights: np.ndarray, n: int) -> sp.csr_matrix:
    """The sparse ``(P, N^3)`` matrix whose rows interpolate a flat table at the colours of ``nodes``/``weights``."""
    rows = np.repeat(np.arange(len(nodes)), nodes.shape[1])
    return sp.csr_matrix((weights.ravel(), (rows, nodes.ravel())), shape=(len(nodes), n**3))


def interpolate(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of ``table`` ``(N, N, N, 3)`` at colours ``x`` ``(P, 3)``; returns ``(P, 3)``."""
    n = table.shape[0]
    nodes, weights = trilinear_corners(x, n)
    flat = table.reshape(-1, 3)
    return np.einsum("pc,pck->pk", weights, flat[nodes])


# --------------------------------------------------------------------------------------------
# Smoothness prior
# --------------------------------------------------------------------------------------------


def second_differences(m: int) -> sp.csr_matrix:
    """``(m - 2, m)`` matrix of second differences along one axis (empty when ``m < 3``)."""
    if m < 3:
        return sp.csr_matrix((0, m))
    return sp.diags([np.ones(m - 2), -2 * np.ones(m - 2), np.ones(m - 2)], [0, 1, 2], shape=(m - 2, m), format="csr")


def smoothness_prior(n: int) -> sp.csr_matrix:
    """``(N^3, N^3)`` matrix ``P`` with ``d^T P d`` the mean squared second derivative of ``d`` over the cube.

    The sum over the three axes of squared second differences, divided by the number of nodes and by
    the node spacing ``1 / (N - 1)`` to the fourth power.
    """
    d2 = second_differences(n)
    eye = sp.identity(n, format="csr")
    axes = [sp.kron(sp.kron(eye, eye), d2),  # along r (fastest)
            sp.kron(sp.kron(eye, d2), eye),  # along g
            sp.kron(sp.kron(d2, eye), eye)]  # along b
    prior = sum((axis.T @ axis for axis in axes), sp.csr_matrix((n**3, n**3)))
    return (prior * (float(n - 1) ** 4 / n**3)).tocsr()


# --------------------------------------------------------------------------------------------
# Pulls towards the identity
# --------------------------------------------------------------------------------------------


def node_luma(n: int) -> np.ndarray:
    """Rec.709 luma ``(N^3,)`` of the colour of each node of an ``N``-node lattice, in flat node order."""
    return grid(n).reshape(-1, 3).astype(np.float64) @ np.array(LUMA_709)


def identity_pull(n: int, identity_weight: float = 0.0, black_weight: float = 0.0,
                  white_weight: float = 0.0) -> np.ndarray:
    """The weight ``c`` ``(N^3,)`` with which each node is pulled towards its identity value.

    ``identity_weight / N^3`` at every node (a mean over all nodes), plus ``black_weight / K`` at each
    of the ``K`` nodes with luma under :data:`BLACK_LUMA`, plus ``white_weight / K'`` at each of the
    ``K'`` nodes with luma over :data:`WHITE_LUMA` (both sets hold at least the black and the white
    node). Weights are non-negative; all zero gives zeros.
    """
    luma = node_luma(n)
    pull = np.full(n**3, identity_weight / n**3)
    for weight, chosen in ((black_weight, luma < BLACK_LUMA), (white_weight, luma > WHITE_LUMA)):
        pull[chosen] += weight / np.count_nonzero(chosen)
    return pull


# --------------------------------------------------------------------------------------------
# Global model: each output channel a sum of three 1D curves
# --------------------------------------------------------------------------------------------


def _hat_features(x: np.ndarray, knots: int) -> tuple[np.ndarray, np.ndarray]:
    """For colours ``(P, 3)``: the 2 active hat functions per channel, as ``(P, 6)`` columns and weights."""
    scaled = np.clip(x, 0.0, 1.0) * (knots - 1)
    low = np.minimum(scaled.astype(np.int64), knots - 2)
    frac = scaled - low
    columns = np.concatenate([low + np.arange(3) * knots, low + 1 + np.arange(3) * knots], axis=1)
    weights = np.concatenate([1.0 - frac, frac], axis=1)
    return columns, weights


@dataclass(frozen=True)
class CurveModel:
    """``out_j = sum_c f_jc(x_c)``: ``values`` ``(3 * K, 3)`` are the curves' knot values (input channel-major)."""

    values: np.ndarray

    @property
    def knots(self) -> int:
        return self.values.shape[0] // 3

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The model at colours ``(P, 3)``; returns ``(P, 3)``."""
        columns, weights = _hat_features(np.asarray(x, np.float64), self.knots)
        return np.einsum("pc,pck->pk", weights, self.values[columns])


def fit_curve_model(x: np.ndarray, y: np.ndarray, w: np.ndarray, knots: int = CURVE_KNOTS,
                    smoothness: float = CURVE_SMOOTHNESS) -> CurveModel:
    """Weighted least squares of :class:`CurveModel` to ``y`` ``(P, 3)`` at ``x`` ``(P, 3)``, weights ``w`` ``(P,)``.

    The data term is the weighted mean squared error; each curve pays ``smoothness`` times its mean
    squared second derivative (from its knots' second differences), so curves extend linearly past
    the data. The three curves of an output channel share one constant, fixed by a tiny ridge.
    """
    columns, weights = _hat_features(np.asarray(x, np.float64), knots)
    rows = np.repeat(np.arange(len(x)), 6)
    features = sp.csr_matrix((weights.ravel(), (rows, columns.ravel())), shape=(len(x), 3 * knots))
    w = np.asarray(w, np.float64) / max(float(np.sum(w)), 1e-300)
    weighted = features.T.multiply(w).tocsr()
    gram = (weighted @ features).toarray()
    d2 = second_differences(knots).toarray()
    curve_penalty = d2.T @ d2 * (float(knots - 1) ** 4 / knots)
    gram += smoothness * np.kron(np.eye(3), curve_penalty) + 1e-9 * np.eye(3 * knots)
    values = np.linalg.solve(gram, weighted @ np.asarray(y, np.float64))
    return CurveModel(values)


# --------------------------------------------------------------------------------------------
# Colour bins
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bins:
    """Samples grouped by input colour into bins nested in the lattice cells.

    Attributes:
        labels: ``(P,)`` the bin of each sample, in ``0..B-1``.
        nodes: ``(B, 8)`` the lattice nodes around each bin (shared by all its samples).
        sample_weights: ``(P, 8)`` each sample's trilinear weights over those nodes.
        centres: ``(B, 3)`` the mean input colour of each bin.
    """

    labels: np.ndarray
    nodes: np.ndarray
    sample_weights: np.ndarray
    centres: np.ndarray

    @property
    def count(self) -> int:
        return len(self.nodes)


def bins_per_axis(n: int) -> int:
    """Bins per axis: a multiple of the ``N - 1`` cells, at least :data:`MIN_BINS_PER_AXIS`."""
    return (n - 1) * -(-MIN_BINS_PER_AXIS // (n - 1))


def make_bins(x: np.ndarray, n: int) -> Bins:
    """Group the colours ``x`` ``(P, 3)`` into bins nested in the cells of an ``N``-node lattice."""
    x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
    per_axis = bins_per_axis(n)
    cell = np.minimum((x * per_axis).astype(np.int64), per_axis - 1)
    key = (cell[:, 2] * per_axis + cell[:, 1]) * per_axis + cell[:, 0]
    unique, labels = np.unique(key, return_inverse=True)
    labels = labels.ravel()
    nodes, weights = trilinear_corners(x, n)
    first = np.zeros(len(unique), np.int64)
    first[labels[::-1]] = np.arange(len(labels))[::-1]
    counts = np.bincount(labels, minlength=len(unique)).astype(np.float64)
    centres = np.stack([np.bincount(labels, x[:, c], len(unique)) for c in range(3)], axis=1) / counts[:, None]
    return Bins(labels, nodes[first], weights, centres)


def _bin_rows(bins: Bins, h: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: summed weight ``(B,)``, weighted mean interpolation weights ``(B, 8)`` and targets ``(B, 3)``."""
    total = np.bincount(bins.labels, h, bins.count)
    safe = np.where(total > 0, total, 1.0)
    rows = np.stack([np.bincount(bins.labels, h * bins.sample_weights[:, k], bins.count) for k in range(8)], axis=1)
    targets = np.stack([np.bincount(bins.labels, h * y[:, c], bins.count) for c in range(3)], axis=1)
    return total, rows / safe[:, None], targets / safe[:, None]


# --------------------------------------------------------------------------------------------
# The fit
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatticeFit:
    """A fitted table ``(N, N, N, 3)``, the global model under it, and the samples' Huber weights ``(P,)``.

    The weights are those of the last solve (all 1 after a single iteration).
    """

    table: np.ndarray
    model: CurveModel
    sample_weights: np.ndarray
    iterations: int


def huber_weights(errors: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """IRLS weights of a Huber loss for colour errors ``(P, 3)``: 1 within ``delta``, ``delta / |e|`` beyond."""
    size = np.sqrt(np.einsum("pk,pk->p", errors, errors))
    return np.minimum(1.0, delta / np.maximum(size, 1e-300))


def _normal_equations(rows: sp.csr_matrix, weights: np.ndarray, residuals: np.ndarray, prior: sp.csr_matrix,
                      smoothness: float, ridge: float, pull: np.ndarray | None = None,
                      pull_target: np.ndarray | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(A^T W A + smoothness * P + ridge / N^3 * I + diag(c), A^T W r + c * t)``, the weights summing to 1.

    ``c`` is ``pull`` ``(N^3,)`` and ``t`` is ``pull_target`` ``(N^3, 3)``; without them, no pull.
    """
    w = weights / max(float(weights.sum()), 1e-300)
    weighted = rows.T.multiply(w).tocsr()
    system = weighted @ rows + smoothness * prior + (ridge / rows.shape[1]) * sp.identity(rows.shape[1])
    right = weighted @ residuals
    if pull is not None:
        system = system + sp.diags(pull)
        right = right + pull[:, None] * pull_target
    return system.tocsr(), right


def prolongation(fine: int, coarse: int) -> sp.csr_matrix:
    """``(fine^3, coarse^3)``: trilinear interpolation of a ``coarse`` lattice at the nodes of a ``fine`` one."""
    return interpolation_matrix(*trilinear_corners(grid(fine).reshape(-1, 3), coarse), coarse)


@dataclass
class _Level:
    system: sp.csr_matrix
    inverse_diagonal: np.ndarray
    step: float  # damped Jacobi factor: 1 / (largest eigenvalue of D^-1 A)
    up: sp.csr_matrix | None  # prolongation from the next coarser level


def _jacobi_step(level: _Level) -> float:
    """``1 / lambda_max(D^-1 A)`` estimated by a few power iterations (slightly overestimated for safety)."""
    v = np.random.default_rng(0).standard_normal(level.system.shape[0])
    largest = 1.0
    for _ in range(12):
        w = level.inverse_diagonal * (level.system @ v)
        largest = float(np.linalg.norm(w) / max(np.linalg.norm(v), 1e-300))
        v = w / max(np.linalg.norm(w), 1e-300)
    return 1.0 / (1.1 * largest)


def _hierarchy(system: sp.csr_matrix, n: int) -> tuple[list[_Level], np.ndarray]:
    """Galerkin levels ``P^T A P`` down to at most 9 nodes a side, and the coarsest level's inverse."""
    levels = []
    size = n
    while True:
        level = _Level(system, 1.0 / system.diagonal(), 1.0, None)
        level.step = _jacobi_step(level)
        levels.append(level)
        if size <= 9:
            break
        coarse = (size + 1) // 2
        level.up = prolongation(size, coarse)
        system = (level.up.T @ system @ level.up).tocsr()
        size = coarse
    return levels, np.linalg.inv(levels[-1].system.toarray())


def _v_cycle(levels: list[_Level], coarsest: np.ndarray, right: np.ndarray, depth: int = 0,
             sweeps: int = 3) -> np.ndarray:
    """One multigrid V-cycle for ``A x = right`` ``(M, k)`` from zero: damped Jacobi around a coarse correction."""
    if depth == len(levels) - 1:
        return coarsest @ right
    level = levels[depth]
    scale = (level.step * level.inverse_diagonal)[:, None]
    x = scale * right
    for _ in range(sweeps - 1):
        x += scale * (right - level.system @ x)
    x += level.up @ _v_cycle(levels, coarsest, level.up.T @ (right - level.system @ x), depth + 1, sweeps)
    for _ in range(sweeps):
        x += scale * (right - level.system @ x)
    return x


def _multigrid_cg(system: sp.csr_matrix, right: np.ndarray, start: np.ndarray, n: int,
                  tolerance: float = CG_TOLERANCE, iterations: int = CG_MAX_ITERATIONS,
                  scale: np.ndarray | None = None) -> np.ndarray:
    """Conjugate gradients on the columns of ``right`` ``(M, k)`` together, preconditioned by a V-cycle.

    They stop when each column's residual is ``tolerance`` times its ``scale`` ``(k,)`` (by default
    the norm of that column of ``right``), or after ``iterations``.
    """
    levels, coarsest = _hierarchy(system, n)
    x = start.copy()
    r = right - system @ x
    goal = tolerance * np.maximum(np.linalg.norm(right, axis=0) if scale is None else scale, 1e-300)
    z = _v_cycle(levels, coarsest, r)
    p = z.copy()
    rz = np.einsum("mk,mk->k", r, z)
    for _ in range(iterations):
        if np.all(np.linalg.norm(r, axis=0) <= goal):
            break
        q = system @ p
        alpha = rz / np.where(np.einsum("mk,mk->k", p, q) != 0, np.einsum("mk,mk->k", p, q), 1.0)
        x += alpha * p
        r -= alpha * q
        z = _v_cycle(levels, coarsest, r)
        rz_next = np.einsum("mk,mk->k", r, z)
        p = z + (rz_next / np.where(rz != 0, rz, 1.0)) * p
        rz = rz_next
    return x


def solve_lattice(rows: sp.csr_matrix, weights: np.ndarray, residuals: np.ndarray, n: int, smoothness: float,
                  ridge: float | None = None, start: np.ndarray | None = None, pull: np.ndarray | None = None,
                  pull_target: np.ndarray | None = None) -> np.ndarray:
    """The offsets ``d`` ``(N^3, 3)`` minimising the regularised weighted least squares of the module docstring.

    Solved by conjugate gradients preconditioned with a geometric multigrid V-cycle (trilinear
    prolongation, Galerkin coarse levels, damped Jacobi smoothing, an exact solve on at most 9 nodes
    a side), all three channels at once. They stop at :data:`CG_TOLERANCE` times the norm of the
    data's part of the right-hand side, so that a strong pull on a few nodes (whose part can be
    thousands of times larger) does not loosen the fit everywhere else.

    Args:
        rows: ``(B, N^3)`` interpolation rows.
        weights: ``(B,)`` row weights (normalised here to sum to 1).
        residuals: ``(B, 3)`` the targets of the interpolated offsets.
        n: nodes per axis.
        smoothness, ridge: the prior's and the ridge's weights.
        start: a first guess ``(N^3, 3)`` (zeros if ``None``).
        pull, pull_target: ``(N^3,)`` weights (see :func:`identity_pull`) pulling each offset towards
            ``(N^3, 3)`` targets; ``None`` for no pull.
    """
    ridge = RIDGE if ridge is None else ridge
    system, right = _normal_equations(rows, weights, residuals, smoothness_prior(n), smoothness, ridge, pull,
                                      pull_target)
    if n <= 9:
        return np.linalg.solve(system.toarray(), right)
    scale = None if pull is None else np.linalg.norm(right - pull[:, None] * pull_target, axis=0)
    return _multigrid_cg(system, right, np.zeros_like(right) if start is None else start, n, scale=scale)


def fit_lattice(x: np.ndarray, y: np.ndarray, n: int, smoothness: float = DEFAULT_SMOOTHNESS,
                iterations: int = 3, delta: float = HUBER_DELTA, identity_weight: float = 0.0,
                black_weight: float = 0.0, white_weight: float = 0.0) -> LatticeFit:
    """Fit an ``N``-node table to samples ``x`` -> ``y`` (both ``(P, 3)`` in ``[0, 1]``); see the module docstring.

    ``iterations`` is the number of solves: the first unweighted, each later one with Huber
    weights from the previous fit's errors. ``identity_weight``, ``black_weight`` and
    ``white_weight`` (non-negative) pull the whole table, its blacks and its whites towards the
    identity (:func:`identity_pull`); all zero, the system is exactly the one without them. The
    table is clipped to ``[0, 1]``.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    bins = make_bins(x, n)
    nodes_rgb = grid(n).reshape(-1, 3)
    pull = identity_pull(n, identity_weight, black_weight, white_weight) if (
        identity_weight or black_weight or white_weight) else None
    h = np.ones(len(x))
    offset = flat = None
    iterations = max(1, iterations)
    for iteration in range(iterations):
        if iteration:
            h = huber_weights(y - _predict(bins, flat), delta)
        total, row_weights, targets = _bin_rows(bins, h, y)
        model = fit_curve_model(bins.centres, targets, total)
        base = model(nodes_rgb)
        rows = interpolation_matrix(bins.nodes, row_weights, n)
        offset = solve_lattice(rows, total, targets - rows @ base, n, smoothness, start=offset, pull=pull,
                               pull_target=None if pull is None else nodes_rgb - base)
        flat = base + offset
    table = np.clip(flat, 0.0, 1.0).reshape(n, n, n, 3)
    return LatticeFit(table, model, h, iterations)


def _predict(bins: Bins, flat: np.ndarray) -> np.ndarray:
    """The flat table ``(N^3, 3)`` interpolated at every sample of ``bins``; returns ``(P, 3)``."""
    nodes = bins.nodes[bins.labels]
    out = np.zeros((len(nodes), 3))
    for corner in range(nodes.shape[1]):
        out += bins.sample_weights[:, corner, None] * flat[nodes[:, corner]]
    return out
