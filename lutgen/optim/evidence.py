"""The evidence terms of ``lutgen optimize``: every way of asking for a look as one loss on the LUT.

Pure tensor functions, device-agnostic and dtype-preserving (float32 in the trainer, float64 in the
tests); no I/O, no options. Embeddings are unit-norm CLIP embeddings ``(B, D)`` of the graded views
(``graded``) and of the same views ungraded (``original``, computed without gradient), and
``(P, D)`` of prompts or reference photos; every loss is a 0-d tensor.

- **Prompts**, :func:`prompt_loss`: ``sum_i w_i * mean_b(1 - cos(g_b, t_i))``. The CLIP loss of one
  prompt (:func:`lutgen.optim.losses.clip_loss`), summed with the prompts' weights, so one prompt of
  weight 1 is exactly the single-prompt objective and the weights say how much each prompt counts.
- **Directional prompts**, :func:`directional_loss`: ``sum_i w_i * mean_b(1 - cos(g_b - o_b, d_i))``
  with ``d_i = normalize(T(prompt_i) - T(source))`` (:func:`text_directions`). "From a source to a
  prompt" names a change, not a destination: the change of the image embedding should point the
  way the text embedding changes, whatever the photo shows, so a night photo asked to go "from
  daylight to golden hour" is not pulled towards a generic golden-hour picture. At the identity
  LUT ``g = o`` and the change has no direction, so the cosine's normalisation is softened,
  ``(c . d) / sqrt(|c|^2 + DIRECTION_EPS^2)``: finite with a finite gradient ``d / DIRECTION_EPS``
  at ``c = 0`` (a push along ``d``), and the true cosine once ``|c| >> DIRECTION_EPS``. A visible
  grade moves a unit CLIP image embedding by ``|c|`` of about 0.1 to 0.5 (``1 - cos(g, o)`` from
  0.005 to 0.125), so ``DIRECTION_EPS = 0.02`` scales such cosines by ``|c| / sqrt(|c|^2 + eps^2)``,
  0.98 at 0.1 and 0.998 at 0.3, and caps the first steps' gradient at ``1 / 0.02 = 50`` times the
  direction, where the exact cosine's ``1 / |c|`` is unbounded as ``c`` starts from 0 (a spike that
  would also inflate Adam's second-moment estimate, and so slow every later step, for many steps).
- **Negative prompts**, :func:`negative_loss`: ``sum_j w_j * mean_b relu(cos(g_b, n_j) -
  cos(o_b, n_j) + margin)``. Minimising ``cos(g, n)`` itself has no floor: once the colours have
  done what they can, the only way further down is to push the image towards adversarial patterns
  CLIP happens to score low. The margin form asks only that each graded view be ``margin`` less like
  the negative prompt than the same view ungraded; there the term and its gradient are zero, so it
  cannot outweigh the other evidence for the rest of the run. At the identity it is ``margin * sum
  w_j`` with gradient ``w_j n_j / B`` (descent moves away from ``n_j``).
- **Reference photos, content**, :func:`reference_embedding_loss`: ``mean_b(1 - cos(g_b, r))``, ``r``
  the normalised mean of the references' image embeddings (their common look, one target).
- **Reference photos, colours**, :func:`colour_distribution_loss`: the squared sliced 2-Wasserstein
  distance in Oklab between the colours of the graded views and those of the references. Matching
  the distribution (not the mean colour) carries contrast, saturation and split toning; Oklab makes
  equal distances roughly equally visible; random 1D projections, sorted and compared at equal
  quantiles, are exact 1D optimal transport at ``O(n log n)`` per direction and differentiable
  through the sort (as in :mod:`lutgen.optim.transport`, which moves samples the same way). It is
  squared (no square root) so that its gradient stays finite at zero. Each step draws
  ``COLOUR_SAMPLES`` pixels of the views and as many reference colours, and ``COLOUR_DIRECTIONS``
  fresh directions; the near-black pixels' gradients are taken at half an 8-bit code
  (:func:`oklab_for_loss`), because Oklab's slope at black would otherwise stall the black corner.
- **Before/after pairs**, :func:`pair_loss`: the graded "before" pixels (trilinear, as the trainer
  grades views) against the "after" pixels, Charbonnier ``sqrt(r^2 + delta^2) - delta`` per channel:
  quadratic below ``delta`` (least squares on the small residuals, which are noise), linear above
  (each pixel's pull is bounded, so retouched areas and slight misalignments, which no LUT can
  explain, do not dominate). ``PAIR_DELTA = 0.01`` is about 2.5 8-bit code values: above the
  rounding of 8-bit files (``±0.002``) and mild JPEG noise, well below the colour changes of a grade.

Per-step sampling (:func:`sample_rows`, :func:`random_directions`) draws with a ``torch.Generator``,
on the generator's device, so a seed fixes every step.
"""

from __future__ import annotations

import torch

from lutgen.color.oklab_torch import srgb_to_oklab
from lutgen.color.torch_ops import apply_lut_reproducible

NEGATIVE_MARGIN = 0.02
"""How much less like a negative prompt than the ungraded view a graded view must be before
:func:`negative_loss` stops pushing. CLIP ViT-B/32 image-text cosines sit around 0.2-0.35 and a colour
grade moves them by a few hundredths; 0.02 is a clear, reachable decrease, a good part of what
colour alone can do, without asking for the adversarial changes a larger one would need."""
DIRECTION_EPS = 0.02
"""Softening of the norm of the image-embedding change in :func:`directional_loss` (see the module docstring)."""
DIRECTION_MIN_NORM = 1e-4
"""A prompt whose text embedding is closer than this to the source prompt's gives no direction."""
PAIR_DELTA = 0.01
"""Charbonnier scale of :func:`pair_loss` (see the module docstring)."""
COLOUR_SAMPLES = 4096
"""Pixels of the graded views (and reference colours) drawn per step for :func:`colour_distribution_loss`."""
COLOUR_DIRECTIONS = 16
"""Random Oklab directions per step for :func:`colour_distribution_loss`. Drawn afresh every step, so a
run covers the sphere of directions; the number per step only sets the noise of each step's estimate.
Forward and backward with :data:`COLOUR_SAMPLES` (two sorts of 16 x 4096 values dominate): 15-30 ms
on one thread of a busy 2-core CPU, where a CLIP ViT-B/32 forward and backward pass of 4 views takes
2.3 s; 32 directions cost 25-37 ms."""
PAIR_PIXELS_PER_STEP = 8192
"""Before/after pixel pairs drawn per step for :func:`pair_loss`: 4-9 ms forward and backward with a
16^3 table on the same thread (16,384 pairs: 9-17 ms)."""
OKLAB_GRADIENT_FLOOR = 0.002
"""sRGB level (half an 8-bit code value) below which :func:`oklab_for_loss` takes gradients as at the floor."""
_REJECTION_RATIO = 4
""":func:`sample_rows` draws by rejection when the rows outnumber the draws this many times."""


# ------------------------------------------------------------------------------------------------
# CLIP embeddings
# ------------------------------------------------------------------------------------------------


def cosines(embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(B, P)`` dot products of unit-norm ``(B, D)`` embeddings with unit-norm ``(P, D)`` targets.

    Each is the elementwise product summed over ``D``, the same arithmetic as
    :func:`~lutgen.optim.losses.clip_loss`, so one target gives bit-identical values.
    """
    return (embeddings.unsqueeze(1) * targets.unsqueeze(0)).sum(dim=-1)


def prompt_loss(graded: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i * mean_b(1 - cos(graded_b, target_i))``.

    Args:
        graded: ``(B, D)`` unit-norm image embeddings of the graded views.
        targets: ``(P, D)`` unit-norm prompt embeddings.
        weights: ``(P,)`` prompt weights.

    Returns:
        0-d tensor, in ``[0, 2 * sum(w)]`` for non-negative weights.
    """
    return (weights * (1.0 - cosines(graded, targets)).mean(dim=0)).sum()


def text_directions(targets: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """The unit-norm ``(P, D)`` directions ``normalize(T(prompt_i) - T(source))``.

    Args:
        targets: ``(P, D)`` prompt embeddings.
        source: ``(1, D)`` source prompt embedding.

    Raises:
        ValueError: a prompt whose embedding is (within ``DIRECTION_MIN_NORM``) the source's, which
            gives no direction (the message names it by its 1-based position).
    """
    difference = targets - source
    norms = difference.norm(dim=-1, keepdim=True)
    same = (norms[:, 0] < DIRECTION_MIN_NORM).nonzero()
    if len(same):
        which = int(same[0, 0]) + 1
        raise ValueError(f"prompt {which} has the same text embedding as the source prompt, so it gives no direction")
    return difference / norms


def softened_cosines(changes: torch.Tensor, directions: torch.Tensor, eps: float = DIRECTION_EPS) -> torch.Tensor:
    """``(B, P)`` cosines ``(c_b . d_i) / sqrt(|c_b|^2 + eps^2)`` of ``(B, D)`` changes with unit ``(P, D)`` directions.

    The true cosine for ``|c| >> eps``; 0 with the finite gradient ``d_i / eps`` at ``c = 0``.
    """
    dots = cosines(changes, directions)
    norms = (changes.square().sum(dim=-1, keepdim=True) + eps * eps).sqrt()
    return dots / norms


def directional_loss(graded: torch.Tensor, original: torch.Tensor, directions: torch.Tensor,
                     weights: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i * mean_b(1 - cos(graded_b - original_b, direction_i))``, the cosine softened near 0.

    Args:
        graded: ``(B, D)`` unit-norm image embeddings of the graded views.
        original: ``(B, D)`` unit-norm image embeddings of the same views ungraded.
        directions: ``(P, D)`` unit-norm text directions (:func:`text_directions`).
        weights: ``(P,)`` prompt weights.

    Returns:
        0-d tensor, ``sum(w)`` when ``graded == original`` (finite gradient there, see
        :func:`softened_cosines`).
    """
    return (weights * (1.0 - softened_cosines(graded - original, directions)).mean(dim=0)).sum()


def negative_loss(graded: torch.Tensor, original: torch.Tensor, negatives: torch.Tensor, weights: torch.Tensor,
                  margin: float = NEGATIVE_MARGIN) -> torch.Tensor:
    """``sum_j w_j * mean_b relu(cos(graded_b, n_j) - cos(original_b, n_j) + margin)``.

    Args:
        graded: ``(B, D)`` unit-norm image embeddings of the graded views.
        original: ``(B, D)`` unit-norm image embeddings of the same views ungraded.
        negatives: ``(Q, D)`` unit-norm negative prompt embeddings.
        weights: ``(Q,)`` their weights.
        margin: how much less similar than ``original`` a graded view must become.

    Returns:
        0-d tensor: ``margin * sum(w)`` at the identity, 0 once every view is ``margin`` less like
        every negative prompt than ungraded.
    """
    excess = cosines(graded, negatives) - cosines(original, negatives) + margin
    return (weights * torch.relu(excess).mean(dim=0)).sum()


def reference_embedding_loss(graded: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """``mean_b(1 - cos(graded_b, r))``, ``r`` the normalised mean of the reference embeddings.

    Args:
        graded: ``(B, D)`` unit-norm image embeddings of the graded views.
        references: ``(R, D)`` unit-norm image embeddings of the reference photos.
    """
    mean = references.mean(dim=0, keepdim=True)
    target = mean / mean.norm(dim=-1, keepdim=True).clamp(min=torch.finfo(mean.dtype).tiny)
    return (1.0 - cosines(graded, target)).mean()


# ------------------------------------------------------------------------------------------------
# Colours and pixels
# ------------------------------------------------------------------------------------------------


def sample_rows(count: int, total: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``count`` distinct rows of ``total``, uniformly at random; every row when ``count >= total``.

    An int64 tensor on the generator's device, in the order drawn (``arange(total)`` when every row
    is taken). Where the rows outnumber the draws 4 times or more, draws with replacement and
    discards repeats until ``count`` distinct rows are in hand (sequential rejection, which is exact
    sampling without replacement in ``O(count log count)``, instead of a permutation of every row); otherwise
    the first ``count`` of a random permutation.
    """
    device = generator.device
    if count >= total:
        return torch.arange(total, device=device)
    if total < _REJECTION_RATIO * count:
        return torch.randperm(total, generator=generator, device=device)[:count]
    chosen = torch.empty(0, dtype=torch.long, device=device)
    while len(chosen) < count:
        missing = count - len(chosen)
        drawn = torch.randint(total, (missing + missing // 8 + 8,), generator=generator, device=device)
        chosen = _first_occurrences(torch.cat([chosen, drawn]))[:count]
    return chosen


def _first_occurrences(values: torch.Tensor) -> torch.Tensor:
    """``values`` ``(n,)`` without repeats, each kept where it first occurs, in the original order."""
    ordered, order = torch.sort(values, stable=True)
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return values[torch.sort(order[first]).values]


def random_directions(count: int, generator: torch.Generator, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(count, 3)`` unit vectors uniform on the sphere (normalised Gaussian draws), on ``device`` in ``dtype``.

    Drawn in float32 on the generator's device, so a seed gives the same directions for every
    target device and dtype (up to the final rounding).
    """
    draws = torch.randn((count, 3), generator=generator, device=generator.device, dtype=torch.float32)
    draws = draws.to(device=device, dtype=dtype)
    return draws / draws.norm(dim=-1, keepdim=True)


def view_pixels(views: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The ``(S, 3)`` colours of ``views`` ``(B, 3, h, w)`` at flat pixel indices ``rows`` ``(S,)``.

    Pixel ``k`` is view ``k // (h * w)``, position ``k % (h * w)`` in row-major order. Indexes the
    views in place (no copy of all pixels); differentiable.
    """
    count = views.shape[-2] * views.shape[-1]
    return views.flatten(2)[rows // count, :, rows % count]


def interpolated_quantiles(sorted_values: torch.Tensor, count: int) -> torch.Tensor:
    """The empirical quantile function of ``sorted_values`` ``(..., M)``, sorted along the last axis,
    at ``count`` quantiles.

    Sample ``j`` of ``M`` sits at quantile ``(j + 0.5) / M``; the function is linear between the
    samples and constant beyond the first and last (as ``numpy.interp``). It is read at
    ``(k + 0.5) / count``, ``k = 0 .. count - 1``. Returns ``(..., count)``; with ``count == M`` exactly
    ``sorted_values`` (positions and fractions come from integer arithmetic).
    """
    m = sorted_values.shape[-1]
    k = torch.arange(count, device=sorted_values.device)
    numerator = (2 * k + 1) * m - count  # position (k + 0.5) * m / count - 0.5 in the sorted samples, over 2 * count
    low = torch.div(numerator, 2 * count, rounding_mode="floor").clamp(0, m - 1)
    high = (low + 1).clamp(max=m - 1)
    fraction = ((numerator - low * 2 * count).to(sorted_values.dtype) / (2 * count)).clamp(0.0, 1.0)
    below = sorted_values[..., low]
    return below + fraction * (sorted_values[..., high] - below)


def oklab_for_loss(rgb: torch.Tensor, floor: float = OKLAB_GRADIENT_FLOOR) -> torch.Tensor:
    """Oklab ``(..., 3)`` of sRGB ``(..., 3)``, exactly :func:`~lutgen.color.oklab_torch.srgb_to_oklab`'s
    values, with gradients taken as at ``max(rgb, floor)`` per channel.

    Oklab's cube root makes its slope at black enormous (about ``1e12``, see
    :mod:`lutgen.color.oklab_torch`): one exact-black pixel would give the table's black corner a
    gradient ``1e10`` times any other node's. Adam's first step is bounded, but its second-moment
    estimate keeps that spike for thousands of steps, so the corner then barely moves. Matching a
    reference whose blacks are lifted to 0.08 (a 9^3 table, 300 Adam steps at 0.005, views 30 %
    black), the exact gradient lifted the black corner to 0.03; with the floor it reached 0.080.
    At ``0.002`` (half an 8-bit code) the slope is about ten times that of mid-grey. Colours at or
    above the floor get the exact gradient.
    """
    exact = srgb_to_oklab(rgb.detach())
    surrogate = srgb_to_oklab(rgb + (rgb.detach().clamp(min=floor) - rgb.detach()))
    return surrogate + (exact - surrogate).detach()


def sliced_wasserstein_squared(samples: torch.Tensor, reference: torch.Tensor,
                               directions: torch.Tensor) -> torch.Tensor:
    """Squared sliced 2-Wasserstein distance between point clouds ``(S, C)`` and ``(M, C)``.

    The mean over the unit ``(K, C)`` directions and over the ``S`` quantiles ``(k + 0.5) / S`` of the
    squared difference between the sorted projections of ``samples`` and the reference's quantile
    function there (:func:`interpolated_quantiles`). Differentiable w.r.t. ``samples`` (through the
    sort) and ``reference``. Projections are ``(K, S)`` and ``(K, M)``, sorted along their rows.
    """
    projected, _ = torch.sort(directions @ samples.t(), dim=-1)
    reference_sorted, _ = torch.sort(directions @ reference.t(), dim=-1)
    target = interpolated_quantiles(reference_sorted, samples.shape[0])
    return (projected - target).square().mean()


def colour_distribution_loss(graded_views: torch.Tensor, reference_oklab: torch.Tensor, directions: torch.Tensor,
                             samples: int, generator: torch.Generator) -> torch.Tensor:
    """Squared sliced 2-Wasserstein distance in Oklab between graded pixels and reference colours.

    ``S = min(samples, B * h * w)`` pixels are drawn from the views, the rows
    ``sample_rows(samples, B * h * w, generator)`` of :func:`view_pixels`, then ``min(samples, M)``
    reference colours, the rows ``sample_rows(samples, M, generator)``; both are projected on the
    directions and compared at equal quantiles (:func:`sliced_wasserstein_squared`, interpolating
    the reference when it has fewer than ``S`` colours). Drawing the reference too keeps each step at
    two sorts of ``S`` values per direction however many reference colours there are (a sort
    dominates the cost); it adds noise but no bias to the gradient (the squared difference to a
    random reference order statistic is, in expectation over the draw, the squared difference to
    its mean plus a variance that does not depend on the views).

    Args:
        graded_views: ``(B, 3, h, w)`` sRGB views in ``[0, 1]``.
        reference_oklab: ``(M, 3)`` Oklab colours of the reference photos.
        directions: ``(K, 3)`` unit projection directions (:func:`random_directions`).
        samples: how many pixels (and reference colours) to draw; all of them when there are no more.
        generator: draws the pixels and the reference colours.

    Returns:
        0-d tensor (Oklab units squared), 0 when the drawn pixels and reference colours are the
        same colours; differentiable w.r.t. the views (gradients of near-black pixels as of
        :func:`oklab_for_loss`).
    """
    if graded_views.dim() != 4 or graded_views.shape[1] != 3:
        raise ValueError(f"views have shape (B, 3, h, w), not {tuple(graded_views.shape)}")
    b, _, h, w = graded_views.shape
    rows = sample_rows(samples, b * h * w, generator).to(graded_views.device)
    colours = oklab_for_loss(view_pixels(graded_views, rows))
    reference_rows = sample_rows(samples, reference_oklab.shape[0], generator).to(reference_oklab.device)
    reference = reference_oklab[reference_rows].to(colours)
    return sliced_wasserstein_squared(colours, reference, directions.to(colours))


def charbonnier(residuals: torch.Tensor, delta: float) -> torch.Tensor:
    """``sqrt(r^2 + delta^2) - delta`` elementwise, computed as ``r^2 / (sqrt(r^2 + delta^2) + delta)``.

    The two are equal; the second has no cancellation, so it is exactly 0 at ``r = 0`` and accurate
    for tiny residuals. ``delta > 0``.
    """
    squared = residuals.square()
    return squared / ((squared + delta * delta).sqrt() + delta)


def pair_loss(table_change: torch.Tensor, before: torch.Tensor, after: torch.Tensor,
              delta: float = PAIR_DELTA) -> torch.Tensor:
    """Mean Charbonnier residual of before/after pixel pairs graded by the LUT.

    Args:
        table_change: ``(N, N, N, 3)`` table minus identity (``[b, g, r, c]``).
        before: ``(P, 3)`` pixel colours before the look, in ``[0, 1]``.
        after: ``(P, 3)`` the same pixels after it.
        delta: the Charbonnier scale (see :data:`PAIR_DELTA`).

    Returns:
        0-d tensor, the mean over pixels and channels of ``charbonnier(before + trilinear(before,
        table_change) - after)``: 0 when the LUT is the look. Differentiable w.r.t. the table, by
        the kernel whose backward pass is reproducible on the pixels' device (the trainer's).
    """
    image = before.t().unsqueeze(0).unsqueeze(2)  # (1, 3, 1, P), graded as the trainer grades views
    change = apply_lut_reproducible(image, table_change)[0, :, 0, :].t()
    return charbonnier(before + change - after, delta).mean()
