"""The CLIP score of a grade: how much the graded photos look like a prompt (and unlike a negative one).

Definition (the one score of ``lutgen rank``, ``lutgen score``, ``optimize``'s before/after line and
``library.json``)::

    score = mean over photos p of [ cos(E(graded p), T(prompt)) - cos(E(graded p), T(negative)) ]

where ``E`` is CLIP's unit-norm image embedding of the photo's centre view (the square open_clip's own
preprocessing keeps, resized once to the model's input), graded by the LUT and clamped to ``[0, 1]``,
and ``T`` the unit-norm text embedding. Without a negative prompt the second term is absent. Several
prompts (or negative prompts) count by their weighted mean embedding similarity. Since every
cosine here is a dot product of unit vectors, the score of one photo is ``E . target`` for one
:class:`ScoreTarget` vector, and the score of a set of photos is the mean of those.

The score of the identity (the photos ungraded) is the baseline a look is compared with: a positive
difference means the look moves the photos towards the prompt.

Tensors: photos are ``(N, 3, h, w)`` float32 in ``[0, 1]`` on the guide's device, ``(h, w)`` the
guide's :attr:`~lutgen.guidance.clip.ClipGuide.image_size`; embeddings ``(D,)`` or ``(K, D)`` float32.
Scores are Python floats, typically between -0.1 and 0.4 for real CLIP weights (a difference of
0.01 is visible).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lutgen.color import torch_ops
from lutgen.lut import LUT

CPU_IMAGES_PER_PASS = 32
"""Images per CLIP forward pass on a CPU (four LUTs over eight photos). ViT-B-32 at 224 px on 2 cores took
0.15 to 0.18 CPU seconds per image at 8 per pass, 0.10 at 32 and 0.09 to 0.10 at 64 (measured on a
busy machine)."""
ACCELERATOR_IMAGES_PER_PASS = 256
"""Images per CLIP forward pass on a GPU, which needs large batches to be kept busy (inference only: no
activation is kept for a backward pass)."""


@dataclass(frozen=True)
class ScoreTarget:
    """What a photo's image embedding is compared with.

    Attributes:
        vector: ``(D,)`` float32 on the guide's device: the weighted mean of the prompt embeddings,
            minus the weighted mean of the negative prompt embeddings when there are any.
        prompts: the prompt texts (for reports; empty when built from embeddings alone).
        negatives: the negative prompt texts.
    """

    vector: torch.Tensor
    prompts: tuple[str, ...] = ()
    negatives: tuple[str, ...] = ()


def _weighted_mean(embeddings: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``sum_i w_i e_i / sum_i w_i`` of ``(K, D)`` embeddings (equal weights when ``weights`` is None)."""
    embeddings = embeddings.float()
    if weights is None:
        return embeddings.mean(dim=0)
    weights = torch.as_tensor(weights, dtype=torch.float32, device=embeddings.device).reshape(-1, 1)
    return (weights * embeddings).sum(dim=0) / weights.sum()


def target_from_embeddings(prompts: torch.Tensor, prompt_weights=None, negatives: torch.Tensor | None = None,
                           negative_weights=None, texts: Sequence[str] = (),
                           negative_texts: Sequence[str] = ()) -> ScoreTarget:
    """A :class:`ScoreTarget` from unit-norm text embeddings already made.

    Args:
        prompts: ``(P, D)`` (or ``(D,)``) unit-norm prompt embeddings.
        prompt_weights: ``(P,)`` weights (any positive numbers), ``None`` for equal weights.
        negatives: ``(Q, D)`` unit-norm negative prompt embeddings, or ``None``.
        negative_weights: ``(Q,)`` weights, ``None`` for equal weights.
        texts, negative_texts: the texts, kept for reports.
    """
    vector = _weighted_mean(prompts.reshape(-1, prompts.shape[-1]), prompt_weights)
    if negatives is not None and negatives.numel():
        vector = vector - _weighted_mean(negatives.reshape(-1, negatives.shape[-1]), negative_weights)
    return ScoreTarget(vector.detach(), tuple(texts), tuple(negative_texts))


def embed_prompts(guide, prompts: str | Sequence[str], negatives: str | Sequence[str] | None = None) -> ScoreTarget:
    """Embed ``prompts`` (and ``negatives``) with ``guide``'s text tower, all weighted equally.

    Call it before :meth:`~lutgen.guidance.clip.ClipGuide.release_text_tower`.
    """
    prompts = (prompts,) if isinstance(prompts, str) else tuple(prompts)
    negatives = () if negatives is None else (negatives,) if isinstance(negatives, str) else tuple(negatives)
    if not prompts:
        raise ValueError("a score needs at least one prompt")
    positive = torch.cat([guide.embed_text(text) for text in prompts])
    negative = torch.cat([guide.embed_text(text) for text in negatives]) if negatives else None
    return target_from_embeddings(positive, None, negative, None, prompts, negatives)


def photo_views(photos: Sequence[torch.Tensor], guide) -> torch.Tensor:
    """The centre view of each photo as CLIP's preprocessing keeps it, resized once to the model's input.

    Args:
        photos: ``(3, H, W)`` float tensors in ``[0, 1]`` (any float dtype, sizes may differ), e.g. the
            float16 copies of :func:`~lutgen.optim.views.stored_image`.
        guide: the :class:`~lutgen.guidance.clip.ClipGuide` (its image size, resampling and resize mode).

    Returns:
        ``(N, 3, h, w)`` float32 in ``[0, 1]`` on the guide's device.
    """
    from lutgen.optim.views import centre_box, resample_box

    views = []
    for photo in photos:
        box = centre_box(photo.shape[-2], photo.shape[-1], guide.image_size, guide.resize_mode)
        views.append(resample_box(photo.to(guide.device), box, guide.image_size, guide.interpolation))
    return torch.stack(views)


def grade(views: torch.Tensor, lut: LUT | None) -> torch.Tensor:
    """``views`` ``(N, 3, h, w)`` graded by ``lut`` (trilinear, shaper first) and clamped to ``[0, 1]``,
    as a saved image would be; ``lut=None`` is the identity (the views themselves)."""
    if lut is None:
        return views
    return torch_ops.apply(views, lut).clamp_(0.0, 1.0)


@torch.inference_mode()
def view_scores(guide, images: torch.Tensor, target: ScoreTarget) -> torch.Tensor:
    """``E(image) . target.vector`` of each of ``(B, 3, h, w)`` images in ``[0, 1]``: ``(B,)`` float32."""
    embeddings = guide.embed_images(images.to(guide.device))
    return embeddings @ target.vector.to(embeddings.device)


def score_images(guide, images: torch.Tensor, target: ScoreTarget | str, negative: str | None = None) -> float:
    """The score of ``(N, 3, h, w)`` photos in ``[0, 1]`` (already graded, at the guide's image size).

    ``target`` is a :class:`ScoreTarget`, or a prompt text embedded here (with ``negative``, which is
    then also a text; this needs the guide's text tower).
    """
    if isinstance(target, str):
        target = embed_prompts(guide, target, negative)
    elif negative is not None:
        raise ValueError("give the negative prompt inside the ScoreTarget (embed_prompts), not beside it")
    return float(view_scores(guide, images, target).mean())


def images_per_pass(device: torch.device) -> int:
    """How many images one CLIP forward pass takes on ``device`` (:data:`CPU_IMAGES_PER_PASS` or
    :data:`ACCELERATOR_IMAGES_PER_PASS`)."""
    return CPU_IMAGES_PER_PASS if torch.device(device).type == "cpu" else ACCELERATOR_IMAGES_PER_PASS


def luts_per_pass(device: torch.device, photos: int) -> int:
    """How many LUTs :func:`score_luts` grades per CLIP pass over ``photos`` photos (at least 1)."""
    return max(1, images_per_pass(device) // max(1, photos))


@torch.inference_mode()
def score_luts(guide, views: torch.Tensor, luts: Sequence[LUT | None], target: ScoreTarget,
               batch_size: int | None = None) -> list[float]:
    """The score of each LUT over the same photos: one CLIP pass per ``batch_size`` LUTs.

    Args:
        guide: the :class:`~lutgen.guidance.clip.ClipGuide`.
        views: ``(N, 3, h, w)`` ungraded photos from :func:`photo_views`.
        luts: the LUTs (``None`` for the identity).
        target: from :func:`embed_prompts` or :func:`target_from_embeddings`.
        batch_size: LUTs graded per pass (``batch_size * N`` images); ``None`` for :func:`luts_per_pass`.

    Returns:
        One float per LUT, in the order given.
    """
    batch_size = batch_size or luts_per_pass(guide.device, len(views))
    scores: list[float] = []
    for start in range(0, len(luts), batch_size):
        chunk = luts[start:start + batch_size]
        graded = torch.cat([grade(views, lut) for lut in chunk])
        per_view = view_scores(guide, graded, target).view(len(chunk), len(views))
        scores += per_view.mean(dim=1).tolist()
    return scores
