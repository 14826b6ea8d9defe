"""The one objective of ``lutgen optimize``: every kind of evidence plus the auxiliary losses.

One step grades a batch of views ``x`` of the training images by the LUT (``y = x + d``, see
:mod:`lutgen.optim.trainer`) and sums weighted terms, each one zero or constant where its evidence
is absent:

- ``clip``: the prompts, :func:`~lutgen.optim.evidence.prompt_loss` (absolute) or, with a source
  prompt, :func:`~lutgen.optim.evidence.directional_loss` (the change of the image embedding
  follows the change of the text embedding);
- ``negative``: the negative prompts, :func:`~lutgen.optim.evidence.negative_loss` (a bounded margin
  form: it stops pushing once the graded view is clearly less like the negative prompt);
- ``reference``: CLIP image-embedding similarity to the reference photos, weighted by
  ``reference_similarity``;
- ``colors``: the squared sliced Wasserstein distance in Oklab between the graded views' colours and
  the reference photos' colours, times :data:`COLOUR_SCALE`, weighted by ``reference_colors``;
- ``pairs``: the before/after pairs: graded "before" pixels against "after" pixels, a robust loss,
  weighted by ``pair_weight``;
- the five auxiliary losses of :mod:`lutgen.optim.losses` (image smoothness, image
  regularisation, black and highlight preservation, LUT smoothness).

CLIP runs only when some term needs it (prompts, negative prompts, or reference similarity with a
weight above 0), and embeds the ungraded views (without gradient) only for directional and negative
prompts. Views are ``(B, 3, h, w)`` in ``[0, 1]``; tables ``(N, N, N, 3)``; embeddings unit-norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lutgen.optim import evidence as ev
from lutgen.optim.losses import (
    LossWeights,
    black_preservation,
    highlight_preservation,
    image_regularization,
    image_smoothness,
    lut_smoothness,
)

COLOUR_SCALE = 100.0
"""The colour-distribution term is scaled so that its weight 1 balances CLIP's loss: the squared sliced
Wasserstein distance is about 2e-4 for a warm shift of 0.05 and 2e-3 for a 50 % desaturation
(measured), while the CLIP loss of a grade moves by a few hundredths."""


@dataclass(frozen=True)
class EvidenceWeights:
    """Weights of the evidence terms that are not prompts (prompts carry their own weights)."""

    reference_similarity: float = 1.0
    reference_colors: float = 1.0
    pairs: float = 1.0


@dataclass
class EvidenceTensors:
    """The evidence of one run, on the device (``None`` where it is absent).

    Attributes:
        prompts: ``(P, D)`` unit-norm prompt embeddings, with ``prompt_weights`` ``(P,)``.
        directions: ``(P, D)`` unit-norm directions from the source prompt to each prompt, when a
            source prompt was given (then the prompts act through them).
        negatives: ``(Q, D)`` unit-norm negative prompt embeddings, with ``negative_weights`` ``(Q,)``.
        references: ``(R, D)`` unit-norm image embeddings of the reference photos.
        reference_oklab: ``(M, 3)`` Oklab colours sampled from the reference photos.
        pair_before, pair_after: ``(S, 3)`` aligned pixel colours of the before/after pairs.
        weights: the weights of the reference and pair terms.
    """

    prompts: torch.Tensor | None = None
    prompt_weights: torch.Tensor | None = None
    directions: torch.Tensor | None = None
    negatives: torch.Tensor | None = None
    negative_weights: torch.Tensor | None = None
    references: torch.Tensor | None = None
    reference_oklab: torch.Tensor | None = None
    pair_before: torch.Tensor | None = None
    pair_after: torch.Tensor | None = None
    weights: EvidenceWeights = EvidenceWeights()

    @property
    def uses_reference_similarity(self) -> bool:
        return self.references is not None and self.weights.reference_similarity > 0

    @property
    def uses_clip(self) -> bool:
        """Whether some term needs CLIP image embeddings of the graded views."""
        return self.prompts is not None or self.negatives is not None or self.uses_reference_similarity

    @property
    def needs_original_embeddings(self) -> bool:
        """Whether some term compares with the embeddings of the ungraded views."""
        return self.directions is not None or self.negatives is not None


@dataclass
class LossTerms:
    """The weighted terms of one step (0-d tensors) and their sum ``total``."""

    total: torch.Tensor
    clip: torch.Tensor
    smooth: torch.Tensor
    reg: torch.Tensor
    black: torch.Tensor
    lut_smooth: torch.Tensor
    highlight: torch.Tensor
    negative: torch.Tensor
    reference: torch.Tensor
    colors: torch.Tensor
    pairs: torch.Tensor

    NAMES = ("total", "clip", "smooth", "reg", "black", "lut_smooth", "highlight", "negative", "reference",
             "colors", "pairs")

    def values(self) -> dict[str, float]:
        """The terms as Python floats (one device synchronisation)."""
        stacked = torch.stack([getattr(self, name).detach().float() for name in self.NAMES])
        return dict(zip(self.NAMES, stacked.cpu().tolist(), strict=True))


class Objective:
    """Computes every term of a step for a batch of views and a table change.

    Args:
        guide: a :class:`~lutgen.guidance.clip.ClipGuide`, or ``None`` when no term needs CLIP.
        evidence: the evidence on the guide's (or the views') device.
        weights: the auxiliary loss weights.
        seed: seeds the random colour samples, projection directions and pair pixels of each step.
    """

    def __init__(self, guide, evidence: EvidenceTensors, weights: LossWeights, seed: int):
        if evidence.uses_clip and guide is None:
            raise ValueError("this evidence needs a CLIP guide")
        self.guide = guide
        self.evidence = evidence
        self.weights = weights
        self.generator = torch.Generator().manual_seed(seed)

    def terms(self, views: torch.Tensor, change: torch.Tensor, table_change: torch.Tensor) -> LossTerms:
        """All weighted terms for ``views`` ``(B, 3, h, w)`` graded by ``change`` (graded minus views),
        where ``table_change`` ``(N, N, N, 3)`` is the LUT's table minus the identity. Differentiable."""
        e, w = self.evidence, self.weights
        zero = change.new_zeros(())

        def weighted(weight: float, compute) -> torch.Tensor:
            return weight * compute() if weight else zero

        graded = views + change
        clip = negative = reference = zero
        if e.uses_clip:
            embedded = self.guide.embed_images(graded)
            original = None
            if e.needs_original_embeddings:
                with torch.no_grad():
                    original = self.guide.embed_images(views)
            if e.directions is not None:
                clip = ev.directional_loss(embedded, original, e.directions, e.prompt_weights)
            elif e.prompts is not None:
                clip = ev.prompt_loss(embedded, e.prompts, e.prompt_weights)
            if e.negatives is not None:
                negative = ev.negative_loss(embedded, original, e.negatives, e.negative_weights)
            if e.uses_reference_similarity:
                reference = e.weights.reference_similarity * ev.reference_embedding_loss(embedded, e.references)
        colors = zero
        if e.reference_oklab is not None and e.weights.reference_colors:
            directions = ev.random_directions(ev.COLOUR_DIRECTIONS, self.generator, views.device, views.dtype)
            colors = e.weights.reference_colors * COLOUR_SCALE * ev.colour_distribution_loss(
                graded, e.reference_oklab, directions, ev.COLOUR_SAMPLES, self.generator)
        pairs = zero
        if e.pair_before is not None and e.weights.pairs:
            rows = ev.sample_rows(ev.PAIR_PIXELS_PER_STEP, len(e.pair_before), self.generator)
            rows = rows.to(e.pair_before.device)
            pairs = e.weights.pairs * ev.pair_loss(table_change, e.pair_before[rows], e.pair_after[rows])
        smooth = weighted(w.image_smoothness, lambda: image_smoothness(change))
        reg = weighted(w.image_regularization, lambda: image_regularization(change))
        black = weighted(w.black_preservation, lambda: black_preservation(views, change))
        lut_smooth = weighted(w.lut_smoothness, lambda: lut_smoothness(table_change))
        highlight = weighted(w.highlight_preservation, lambda: highlight_preservation(views, change))
        total = clip + negative + reference + colors + pairs + smooth + reg + black + lut_smooth + highlight
        return LossTerms(total, clip, smooth, reg, black, lut_smooth, highlight, negative, reference, colors, pairs)
