"""Inverting a 3D LUT: the work behind ``lutgen invert``.

For every node colour ``y`` of the output lattice, the inverse holds the input ``x`` with
``LUT(x) = y``. ``x`` starts at the nearest of the LUT's forward samples (a scattered-data inverse)
and is refined by damped Gauss-Newton steps on the interpolated LUT. A colour the LUT never produces
gets, by default, the inverse continued smoothly beyond the LUT's domain (the LUT extended linearly
past its faces), so that cells of the inverse straddling the edge of the LUT's gamut still interpolate
the colours it does produce well; or, with ``extend=False``, the input of the nearest colour it
produces, inside the domain. With trilinear interpolation the nodes beyond the gamut are then refitted
(:func:`fit_gamut_edge`) so that those cells send the colours the LUT produces back to their inputs.
Measured on 8-bit photos (the bundled images shrunk 8 times), the inverse (33^3) of a smooth invertible
17^3 LUT combined with it gives the identity to 0 code values when extended and to 3 when clamped.

A plain inverse is a regular lattice over the LUT's input domain widened to every colour it produces
(:func:`inverse_domain`). With ``shaper``, the inverse is a 1D shaper and a 3D table at the nodes it
places, of two kinds (:data:`SHAPERS`), the better in a trial chosen by :func:`best_shaper`. The tone
curve's (:func:`tone_placement`) puts the nodes at the LUT's outputs along its grey axis, so that a
transfer function (an sRGB EOTF, steep at 0 and reaching 12.8 from a domain up to 3) is undone exactly,
where a regular lattice in its output leaves the photos 30 code values off. The stretched one crowds
the nodes towards 0 and 1 of each channel (:func:`stretching_curve`): looks that crush saturated colours
do it there, where one channel nears 0 or 1, and squeeze many inputs into a thin layer that a regular
lattice cannot follow. On the bundled Velvia (16% of its cells squeeze colours 20 times or more), the
65^3 inverse then ``combine`` keeps 97.9-100% of the pixels of the 23 colour photos of ``images/``
(shrunk 4 times) within 1 code value, every pixel on 15 of them, against 63.8-100% without; the
129^3 one every pixel on 22 of them and 99.3% of the last. What is left lies at the edge of the colours
Velvia produces, where it nearly folds some onto others (greens whose red and blue are near 0; some it
does fold onto others, and an inverse can return only one of them).

A LUT that cannot be inverted is refused in one sentence: a channel that falls along the grey axis
or along its own input by more than one 8-bit code value, or a LUT that collapses colours (the
Jacobian's determinant near zero over most of the table, as in a black-and-white look).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import cg
from scipy.spatial import cKDTree

from lutgen.color.sampling import Difference, check_interpolation, compare, dense_sample, evaluate
from lutgen.errors import LutgenError, OptionError
from lutgen.fileio import ensure_not_input
from lutgen.formats import format_module, read_lut, write_lut
from lutgen.tasks.convert import capabilities, write_options
from lutgen.lut import LUT, UNIT_DOMAIN, Shaper, grid
from lutgen.optim.lattice_fit import interpolation_matrix, trilinear_corners
from lutgen.tasks.health import cell_determinants, channel_reversal, neutral_reversal, node_lattice

REVERSAL_TOLERANCE = 1.0 / 255
"""A fall larger than one 8-bit code value along the grey axis or a channel's own input makes a LUT non-invertible."""

COLLAPSED_DETERMINANT = 1e-3
"""A cell whose Jacobian determinant is this close to 0 (the identity's is 1) squeezes colours together."""

COLLAPSED_SHARE = 0.5
"""A LUT with more than this share of collapsed cells is refused."""

SQUEEZED_DETERMINANT = 0.05
"""A cell whose Jacobian determinant is below this squeezes colours 20 times or more: a regular lattice
cannot follow the inverse there, so :func:`invert` reports the share of such cells."""

LEAST_DEFAULT_SIZE = 33
LARGEST_SIZE = 129
"""The largest inverse lattice (2.1 million colours to solve, about 3 minutes on 2 cores)."""
LARGEST_VALUE = 1e6
"""A LUT whose values reach this size is refused (its inverse would be meaningless rounding)."""
SOLVE_CHUNK = 1 << 16
"""Colours solved together: bounds the memory of the Jacobians to a few tens of MB."""
ITERATIONS = 60
RESTARTS = 8
"""Nearest forward samples a colour may start from before its best result is kept."""
RESTART_COST = 1e-18
"""A squared residual above this after a start tries the next start."""
REACHED = 1e-26
"""A squared residual below this counts as reaching the target colour."""
SEED_SAMPLES = 65
"""Nodes per axis of the forward samples the starting points are taken from."""
SHAPER_SAMPLES = 4096
"""Entries of the shaper of a shaped inverse (:func:`stretching_shaper`, :func:`tone_placement`)."""
TONE_SAMPLES = 1 << 14
"""Steps along the grey axis at which :func:`tone_curve` evaluates the LUT."""
TRIAL_SIZE = 17
TRIAL_SAMPLES = 1 << 14
"""Nodes per axis of the trial inverses and colours of the dense sample that :func:`best_shaper` compares."""
CRUSH_SHARE = 0.2
"""Share of the stretching curve that crowds nodes geometrically at both ends (:func:`stretching_curve`)."""
CRUSH_SCALE = 1e-4
"""Distance from 0 or 1 (0.026 of an 8-bit code value) below which that crowding stops growing."""
EDGE_SAMPLES = (65, 129)
"""Fewest and most forward samples per axis (the centres of a regular grid) that the nodes beyond the gamut
are fitted to: twice the inverse's nodes per axis, within these bounds."""
EDGE_ANCHOR = 0.1
"""Pull of those nodes towards the linear continuation, relative to the mean weight the samples give one."""


def stretching_curve(t: np.ndarray) -> np.ndarray:
    """The stretched inverse's shaper as a function: colours ``t`` in ``[0, 1]`` to positions in ``[0, 1]``
    along its table's axes, increasing, fixing 0, 1/2 and 1.

    ``(1 - CRUSH_SHARE)`` times the inverse of smoothstep (which spaces the nodes ``smoothstep(k / (N - 1))``,
    crowded quadratically towards both ends, 1.5 times the even spacing in the middle) plus ``CRUSH_SHARE``
    times a logarithm of the distance to the nearer end. At 65^3 five nodes then lie within the first 8-bit
    code value (0, 0.045, 0.13, 0.32, 0.66; smoothstep alone: three), and the middle ones 1.8 times the even
    spacing apart: a look may crush a channel of saturated colours that far (Velvia takes the green of
    some reds to within 0.1 code value of 0).
    """
    u = 0.5 - np.sin(np.arcsin(1.0 - 2.0 * t) / 3.0)  # the root in [0, 1] of 3u^2 - 2u^3 = t

    def crowding(d: np.ndarray) -> np.ndarray:  # 0 at d = 0, 1/2 at d = 1/2
        return 0.5 * np.log1p(d / CRUSH_SCALE) / np.log1p(0.5 / CRUSH_SCALE)

    log = np.where(t <= 0.5, crowding(t), 1.0 - crowding(1.0 - t))
    return (1.0 - CRUSH_SHARE) * u + CRUSH_SHARE * log


def stretching_shaper(domain: np.ndarray, samples: int = SHAPER_SAMPLES) -> Shaper:
    """:func:`stretching_curve` at ``samples`` even steps over ``domain``, ``(samples, 3)``, as a 1D shaper."""
    u = stretching_curve(np.linspace(0.0, 1.0, samples))
    return Shaper(np.repeat(u[:, None], 3, axis=1), domain)


def stretched_nodes(size: int, samples: int = SHAPER_SAMPLES) -> np.ndarray:
    """``(size,)`` colours in ``[0, 1]`` that the (piecewise-linear) :func:`stretching_shaper` sends to
    ``k / (size - 1)``: the stretched inverse's nodes, crowded towards both ends."""
    t = np.linspace(0.0, 1.0, samples)
    return np.interp(np.linspace(0.0, 1.0, size), stretching_curve(t), t)


@dataclass(frozen=True)
class Inverted:
    """The inverse LUT, its :class:`Difference` from the identity after the round trip ``inverse(LUT(x))``
    over a dense sample of the input domain, the share of its nodes the LUT cannot reach, the share of
    the source's cells that squeeze colours 20 times or more (:data:`SQUEEZED_DETERMINANT`), and its shaper."""

    lut: LUT
    round_trip: Difference
    unreachable_share: float
    squeezed_share: float = 0.0
    shaper: str | None = None
    """The one of :data:`SHAPERS` the inverse has, if any."""


def why_not_invertible(lut: LUT, determinants: np.ndarray | None = None) -> str | None:
    """Why ``lut`` cannot be inverted, as the end of a sentence, or ``None`` if it can be.

    ``determinants``: its cells' :func:`~lutgen.tasks.health.cell_determinants`, when the caller has them.
    """
    if lut.table is None:
        return "it is a 1D LUT; invert works on 3D LUTs"
    if not np.all(np.abs(lut.table) < LARGEST_VALUE) or (
            lut.shaper is not None and not np.all(np.abs(lut.shaper.table) < LARGEST_VALUE)):
        return f"its values are not all finite numbers below {LARGEST_VALUE:g} in size"
    inputs, outputs = node_lattice(lut)
    det = cell_determinants(inputs, outputs) if determinants is None else determinants
    collapsed = float(np.mean(np.abs(det) < COLLAPSED_DETERMINANT))
    if collapsed > COLLAPSED_SHARE:
        return (f"it collapses colours: the Jacobian's determinant is near zero in {100 * collapsed:.0f}% of its "
                "cells (as in a black-and-white look), so many inputs give the same output")
    neutral = neutral_reversal(inputs, outputs, REVERSAL_TOLERANCE)
    if neutral is not None:
        return f"it is not monotonic along the grey axis: {neutral}"
    channel = channel_reversal(inputs, outputs, REVERSAL_TOLERANCE)
    if channel is not None:
        return f"it is not monotonic per channel: {channel}"
    return None


def _jacobians(lut: LUT, x: np.ndarray, residual_at, interpolation: str, step: np.ndarray) -> np.ndarray:
    """``(P, 3, 3)`` derivatives of the LUT at ``x`` ``(P, 3)`` by one-sided differences into the domain.

    ``residual_at`` ``(P, 3)`` is the LUT at ``x``; ``step`` ``(3,)`` the difference step per channel.
    """
    hi = lut.input_domain[1]
    jac = np.empty(x.shape + (3,))
    for c in range(3):
        h = np.where(x[:, c] + step[c] <= hi[c], step[c], -step[c])
        moved = x.copy()
        moved[:, c] += h
        jac[:, :, c] = (evaluate(lut, moved, interpolation) - residual_at) / h[:, None]
    return jac


def extended(lut: LUT, x: np.ndarray, interpolation: str, step: np.ndarray) -> np.ndarray:
    """The LUT at ``x`` ``(P, 3)`` continued linearly beyond its input domain.

    Inside the domain this is the LUT; outside, the LUT at the nearest point of the domain plus its
    derivative there times the distance, so the inverse of a colour the LUT never produces continues
    the inverse of the colours it does produce smoothly.
    """
    lo, hi = lut.input_domain
    inside = np.clip(x, lo, hi)
    y = evaluate(lut, inside, interpolation)
    outside = np.any(inside != x, axis=1)
    if outside.any():
        jac = _jacobians(lut, inside[outside], y[outside], interpolation, step)
        y[outside] += (jac @ (x[outside] - inside[outside])[:, :, None])[:, :, 0]
    return y


def _step(jac: np.ndarray, residual: np.ndarray, damping: np.ndarray) -> np.ndarray:
    """Levenberg-Marquardt steps ``(P, 3)`` for Jacobians ``(P, 3, 3)``, residuals ``(P, 3)``, dampings ``(P,)``."""
    jt = np.transpose(jac, (0, 2, 1))
    normal = jt @ jac + damping[:, None, None] * np.eye(3)
    return np.linalg.solve(normal, jt @ residual[:, :, None])[:, :, 0]


def solve_inputs(lut: LUT, targets: np.ndarray, interpolation: str = "trilinear", extend: bool = False) -> np.ndarray:
    """Inputs ``(P, 3)`` whose outputs are nearest to ``targets`` ``(P, 3)``.

    Starts from the nearest of ``65``^3 forward samples and refines (:func:`_refine`); a colour not
    reached from there starts again from its next nearest samples (up to :data:`RESTARTS`), keeping the
    best. With ``extend`` false the inputs stay inside the LUT's input domain, so a colour the LUT
    never produces gets the input of the nearest colour it does produce; with ``extend`` true the LUT is
    continued linearly beyond its domain (:func:`extended`, up to half a span) and such a colour gets
    the continuation of the inverse.
    """
    seeds = grid(SEED_SAMPLES, lut.input_domain).reshape(-1, 3)
    _, nearest = cKDTree(evaluate(lut, seeds, interpolation)).query(targets, k=RESTARTS)
    x, cost = _refine(lut, seeds[nearest[:, 0]], targets, interpolation, extend)
    for k in range(1, RESTARTS):
        again = np.flatnonzero(cost > RESTART_COST)
        if again.size == 0:
            break
        x_k, cost_k = _refine(lut, seeds[nearest[again, k]], targets[again], interpolation, extend)
        better = cost_k < cost[again]
        x[again[better]], cost[again[better]] = x_k[better], cost_k[better]
    return x


def _refine(lut: LUT, x: np.ndarray, targets: np.ndarray, interpolation: str, extend: bool):
    """``(inputs, squared residuals)`` after damped Gauss-Newton (Levenberg-Marquardt) steps from ``x``.

    Each step is kept only where it lowers the residual; a coordinate held at a bound of the domain
    (or of the extended domain) is left out of the step. A colour stops when reached or stalled.
    """
    lo, hi = lut.input_domain
    span = hi - lo
    low, high = (lo - span / 2, hi + span / 2) if extend else (lo, hi)
    step = span * 1e-7
    x = x.copy()
    y = evaluate(lut, x, interpolation)
    cost = np.sum((y - targets) ** 2, axis=1)
    damping = np.full(x.shape[0], 1e-6)
    active = np.flatnonzero(cost > REACHED)
    for _ in range(ITERATIONS):
        if active.size == 0:
            break
        xa, ya, ta = x[active], y[active], targets[active]
        inside = np.clip(xa, lo, hi)
        jac = _jacobians(lut, inside, evaluate(lut, inside, interpolation), interpolation, step)
        delta = _step(jac, ta - ya, damping[active])
        blocked = ((xa <= low) & (delta < 0)) | ((xa >= high) & (delta > 0))
        if blocked.any():  # a coordinate held at a bound: solve for the free ones only
            rows = blocked.any(axis=1)
            delta[rows] = _step(jac[rows] * ~blocked[rows, None, :], (ta - ya)[rows], damping[active][rows])
            delta[blocked] = 0.0
        candidate = np.clip(xa + delta, low, high)
        y_new = extended(lut, candidate, interpolation, step)
        cost_new = np.sum((y_new - ta) ** 2, axis=1)
        better = cost_new < cost[active]
        kept = active[better]
        x[kept], y[kept], cost[kept] = candidate[better], y_new[better], cost_new[better]
        damping[active] = np.where(better, damping[active] * 0.1, damping[active] * 10.0).clip(1e-12, 1e8)
        active = active[(cost[active] > REACHED) & (damping[active] < 1e8)]
    return x, cost


def inverse_domain(lut: LUT) -> np.ndarray:
    """``(2, 3)``: the colours a plain inverse of ``lut`` takes, the LUT's input domain widened, per channel,
    to every value its table holds (a LUT may produce colours beyond the domain it reads, as an sRGB EOTF
    over ``[-1, 3]`` reaches 12.8)."""
    values = lut.table.reshape(-1, 3)
    return np.stack([np.minimum(lut.input_domain[0], values.min(axis=0)),
                     np.maximum(lut.input_domain[1], values.max(axis=0))])


def stretched_placement(lut: LUT, size: int) -> tuple[Shaper, np.ndarray]:
    """``(shaper, nodes)`` of the stretched inverse: :func:`stretching_shaper` over the range of every
    channel's :func:`inverse_domain`, and ``(size, 3)`` node colours per channel that it sends to
    ``k / (size - 1)``."""
    domain = _common(inverse_domain(lut))
    return stretching_shaper(domain), domain[0] + (domain[1] - domain[0]) * stretched_nodes(size)[:, None]


def _common(domain: np.ndarray) -> np.ndarray:
    """``(2, 3)``: the smallest range holding every channel's of ``domain``, for all three (a Resolve
    ``.cube`` has one input range for its shaper)."""
    return np.stack([np.full(3, domain[0].min()), np.full(3, domain[1].max())])


def tone_curve(lut: LUT, samples: int = TONE_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """``(t, h)``: ``lut`` along its grey axis, ``h`` ``(samples, 3)`` its output at the even steps ``t`` in
    ``[0, 1]`` from the low to the high corner of its input domain, made increasing (a running maximum,
    then a rise of 1e-12 over the whole curve), and with its ends moved to the smallest and largest value of
    each channel in the table (the rest of the curve follows by a share falling linearly with distance)."""
    lo, hi = lut.input_domain
    t = np.linspace(0.0, 1.0, samples)
    g = np.maximum.accumulate(evaluate(lut, lo + (hi - lo) * t[:, None]), axis=0)
    values = lut.table.reshape(-1, 3)
    h = g + (values.min(axis=0) - g[0]) * (1.0 - t[:, None]) + (values.max(axis=0) - g[-1]) * t[:, None]
    return t, h + 1e-12 * t[:, None]


def tone_placement(lut: LUT, size: int, samples: int = SHAPER_SAMPLES) -> tuple[Shaper, np.ndarray]:
    """``(shaper, nodes)`` of the inverse that follows the LUT's :func:`tone_curve` ``h``.

    Node ``k`` of a channel is ``h`` at the stretched node ``k`` (:func:`stretched_nodes`); the shaper,
    over the range of ``h`` on every channel, is :func:`stretching_curve` of ``h``'s inverse (0 and 1
    beyond its ends). Where a LUT is one curve per channel (a transfer function such as an sRGB EOTF)
    the table then holds a lattice even in the LUT's input, and a curve that a regular lattice in its
    output follows badly (steep at 0, or leaving the input domain) is undone exactly.
    """
    t, h = tone_curve(lut)
    nodes = np.stack([np.interp(stretched_nodes(size), t, h[:, c]) for c in range(3)], axis=1)
    domain = _common(np.stack([h[0], h[-1]]))
    v = np.linspace(domain[0], domain[1], samples)
    table = stretching_curve(np.stack([np.interp(v[:, c], h[:, c], t) for c in range(3)], axis=1))
    return Shaper(table, domain), nodes


SHAPERS = {"stretched": stretched_placement, "tone": tone_placement}
"""The shapers a shaped inverse may have, by name: each places a ``size``^3 table's nodes for a LUT."""


def inverse(lut: LUT, size: int, interpolation: str = "trilinear", extend: bool = True,
            shaper: str | None = None) -> tuple[LUT, float]:
    """``(inverse LUT, unreachable share)``: a ``size``^3 table over :func:`inverse_domain`, or with ``shaper``
    (one of :data:`SHAPERS`) that shaper and a table at its nodes (see :func:`best_shaper`).

    The unreachable share is that of nodes whose colour the LUT comes no nearer to than half an 8-bit
    code value; they hold the input of the nearest reachable colour, or with ``extend`` the linear
    continuation of the inverse (see :func:`solve_inputs`), refitted at the gamut's edge for trilinear
    interpolation (:func:`fit_gamut_edge`).
    """
    if shaper is None:
        table_shaper, domain = None, inverse_domain(lut)
        nodes = domain[0] + (domain[1] - domain[0]) * np.linspace(0.0, 1.0, size)[:, None]
    else:
        table_shaper, nodes = SHAPERS[shaper](lut, size)
        domain = UNIT_DOMAIN
    targets = _lattice(nodes)
    x = np.concatenate([solve_inputs(lut, targets[i:i + SOLVE_CHUNK], interpolation, extend)
                        for i in range(0, targets.shape[0], SOLVE_CHUNK)])
    lo, hi = lut.input_domain
    unreachable = np.abs(evaluate(lut, np.clip(x, lo, hi), interpolation) - targets).max(axis=1) > 0.5 / 255
    title = f"inverse of {lut.title}" if lut.title else None
    result = LUT(x.reshape(size, size, size, 3), domain, shaper=table_shaper, title=title)
    if extend and interpolation == "trilinear" and unreachable.any():
        result = fit_gamut_edge(lut, result, unreachable)
    return result, float(np.mean(unreachable))


def best_shaper(lut: LUT, interpolation: str = "trilinear", extend: bool = True) -> str:
    """The one of :data:`SHAPERS` whose inverse at :data:`TRIAL_SIZE`^3 sends more of a dense sample of the
    LUT's inputs back within one 8-bit code value through the LUT (the first on a tie).

    Looks that crush saturated colours are best followed by the stretched shaper (Velvia: 72.5% of the
    sample against 69.1%; on the photos at 33^3, 90.6% of the pixels against 77.4% at worst), a LUT made
    of one steep curve per channel by the tone curve (an sRGB EOTF: 51% against 5.8% at the trial's
    17^3, every pixel of the photos exact at 33^3).
    """
    x = dense_sample(lut.input_domain, TRIAL_SAMPLES)
    y = evaluate(lut, x, interpolation)
    shares = [np.mean(np.abs(evaluate(inverse(lut, TRIAL_SIZE, interpolation, extend, name)[0], y, interpolation)
                             - x).max(axis=1) <= 1 / 255) for name in SHAPERS]
    return list(SHAPERS)[int(np.argmax(shares))]


def fit_gamut_edge(lut: LUT, inv: LUT, unreachable: np.ndarray) -> LUT:
    """``inv`` with the nodes that ``lut`` does not reach refitted to the colours it does produce.

    A cell of the inverse that straddles the edge of the LUT's gamut mixes exact nodes with nodes whose
    colour the LUT never produces: these matter only through the colours inside the cell that it does
    produce. The linear continuation they start from follows a look badly where it squeezes colours
    against the edge of its gamut. Here they are chosen by least squares so that trilinear interpolation
    of ``inv`` sends ``lut(x)`` back to ``x`` for the forward samples ``x`` (:data:`EDGE_SAMPLES`, the
    centres of a regular grid over the input domain) whose colour falls in such a cell, pulled towards
    the continuation (:data:`EDGE_ANCHOR`); a node no sample's cell touches keeps it, and the reached
    nodes are not changed.

    ``unreachable``: ``(N^3,)`` bool over the flat nodes of ``inv.table`` (red fastest).
    """
    n = inv.size
    m = min(max(2 * n - 1, EDGE_SAMPLES[0]), EDGE_SAMPLES[1])
    lo, hi = lut.input_domain
    x = lo + (hi - lo) * ((grid(m).reshape(-1, 3) * (m - 1) + 0.5) / m)
    y = evaluate(lut, x)
    shaped = evaluate(LUT(None, shaper=inv.shaper), y) if inv.shaper is not None else y
    corners, weights = trilinear_corners((shaped - inv.domain[0]) / (inv.domain[1] - inv.domain[0]), n)
    near = unreachable[corners].any(axis=1)
    rows = interpolation_matrix(corners[near], weights[near], n).tocsc()
    table = inv.table.reshape(-1, 3).copy()
    free = np.flatnonzero(unreachable)
    target = x[near] - rows[:, np.flatnonzero(~unreachable)] @ table[~unreachable]
    a = rows[:, free]
    used = np.asarray(a.power(2).sum(axis=0)).ravel() > 0
    if not used.any():
        return inv
    a, free = a[:, used], free[used]
    gram = (a.T @ a).tocsr()
    anchor = EDGE_ANCHOR * gram.diagonal().mean()
    system = gram + anchor * sp.identity(len(free), format="csr")
    for c in range(3):
        right = a.T @ target[:, c] + anchor * table[free, c]
        table[free, c], _ = cg(system, right, x0=table[free, c], rtol=1e-10, maxiter=2000)
    return LUT(table.reshape(inv.table.shape), inv.domain, shaper=inv.shaper, title=inv.title)


def _lattice(nodes: np.ndarray) -> np.ndarray:
    """Every colour of the lattice with ``nodes`` ``(N, 3)`` on the three axes, ``(N^3, 3)``, red fastest (as
    :func:`grid`)."""
    b, g, r = np.meshgrid(nodes[:, 2], nodes[:, 1], nodes[:, 0], indexing="ij")
    return np.stack([r, g, b], axis=-1).reshape(-1, 3)


def invert(source: Path, output: Path, size: int | None = None, interpolation: str = "trilinear",
           extend: bool = True, shaper: bool = False) -> Inverted:
    """Read ``source``, refuse it if it cannot be inverted, write its inverse to ``output`` (with ``shaper``,
    the :func:`best_shaper` and a table at its nodes; see :func:`inverse`).

    The default ``size`` is the source's, at least 33 and at most :data:`LARGEST_SIZE`.

    Raises:
        LutgenError: an unreadable or non-invertible source, a bad option, an output that is the
            source, or a failed write.
    """
    check_interpolation(interpolation)
    if size is not None and not 2 <= size <= LARGEST_SIZE:
        raise OptionError(f"--size must be from 2 to {LARGEST_SIZE} for an inverse, not {size}")
    if shaper and not capabilities(format_module(output, "write"))["shaper"]:
        raise OptionError(f"--shaper needs an output format that holds a 1D shaper (.cube, .csp or .clf), "
                          f"not '{output.suffix}'")
    lut = read_lut(source)
    ensure_not_input(output, [source])
    with np.errstate(all="ignore"):
        det = cell_determinants(*node_lattice(lut)) if lut.table is not None else None
        reason = why_not_invertible(lut, det)
        if reason is not None:
            raise LutgenError(f"cannot invert {source}: {reason}")
        size = min(max(lut.size, LEAST_DEFAULT_SIZE), LARGEST_SIZE) if size is None else size
        shaper_name = best_shaper(lut, interpolation, extend) if shaper else None
        inv, unreachable = inverse(lut, size, interpolation, extend, shaper_name)
        x = dense_sample(lut.input_domain, 1 << 16)
        round_trip = compare(evaluate(inv, evaluate(lut, x, interpolation), interpolation), x)
        squeezed = float(np.mean(np.abs(det) < SQUEEZED_DETERMINANT))
    write_lut(inv, output, **write_options(format_module(output, 'write'), inv))
    return Inverted(inv, round_trip, unreachable, squeezed, shaper_name)
