"""K looks optimised together: one CLIP forward and backward pass per step for the views of every look.

Each :class:`Look` is what one ``optimize`` run holds: its trainable LUT, its own
:class:`~lutgen.optim.views.ViewSampler` (seeded by the look's seed), its own
:class:`~lutgen.optim.objective.Objective` (its prompt embeddings, weights and random generator) and its
own Adam. :class:`LookGroup` takes one step of every look it holds:

1. every look draws its batch of views ``x_k`` ``(B_k, 3, h, w)`` and grades them by its LUT
   (``y_k = x_k + trilinear(x_k, D_k)`` with
   :func:`~lutgen.color.torch_ops.apply_lut_reproducible`, as :class:`~lutgen.optim.trainer.LutTrainer` does);
2. the graded views of all looks, ``(sum B_k, 3, h, w)``, go through CLIP's image tower in one
   batch (and the ungraded ones, without gradient, for looks with negative or directional prompts);
3. each look's objective computes its terms from its rows of those embeddings, and the sum of the
   looks' losses is differentiated once. Looks share no parameter, so the gradient of the sum with
   respect to look ``k``'s parameters is the gradient of look ``k``'s own loss;
4. each look's Adam steps, then its LUT is kept in range.

What is identical to optimising a look alone (``optimize`` with the same seed and settings): the
views drawn, the starting LUT, every loss term's formula, the random draws of the colour and pair
terms, Adam and its state. What is not: CLIP's matrix products run on a batch of ``sum B_k`` rows
instead of ``B_k``, and BLAS libraries may round a product differently for another number of rows
(another blocking), so a look's LUT may differ from the alone run in the last bits of float32, and
those differences grow slowly through Adam's steps. With one look in the group the computation is the
same as ``optimize``'s, operation for operation.

A look whose loss or gradient is not finite is not updated at that step and is reported by
:meth:`LookGroup.step` (as ``optimize`` stops at its last finite LUT); the other looks step as usual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lutgen.color.torch_ops import apply_lut_reproducible
from lutgen.optim.adam import Adam
from lutgen.optim.objective import Objective
from lutgen.optim.trainer import StepRecord
from lutgen.optim.views import ViewSampler


class _GivenEmbeddings:
    """Stands in for the guide of one look's :class:`~lutgen.optim.objective.Objective` during a step:
    :meth:`embed_images` hands back the embeddings computed for the whole group, in the order the
    objective asks for them (the graded views first, then the ungraded ones)."""

    def __init__(self, embeddings: list[torch.Tensor]):
        self._embeddings = list(embeddings)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        embedded = self._embeddings.pop(0)
        if embedded.shape[0] != images.shape[0]:
            raise RuntimeError(f"{embedded.shape[0]} embeddings were computed for {images.shape[0]} views")
        return embedded


@dataclass
class Look:
    """One look of a group: its trainable LUT, views, objective and optimiser.

    Attributes:
        name: the look's name (its file is ``NAME.cube``).
        lut: a trainable LUT of :mod:`lutgen.optim.parameterisation`.
        sampler: its view sampler (seeded by the look's seed).
        objective: its objective (seeded by the look's seed); its ``guide`` is the real CLIP guide, or
            ``None`` when the look needs no CLIP.
        optimizer: its Adam over ``lut.param_groups(learning_rate)``.
        steps: how many steps the look takes in all.
        steps_done: steps taken so far.
    """

    name: str
    lut: object
    sampler: ViewSampler
    objective: Objective
    optimizer: Adam
    steps: int
    steps_done: int = 0

    @classmethod
    def create(cls, name: str, lut, sampler: ViewSampler, objective: Objective, learning_rate: float,
               steps: int) -> Look:
        """A look at its start: Adam over the LUT's parameter groups, as :class:`LutTrainer` makes it."""
        optimizer = Adam(lut.param_groups(learning_rate), lr=learning_rate)
        return cls(name, lut, sampler, objective, optimizer, steps)

    @property
    def finished(self) -> bool:
        return self.steps_done >= self.steps

    def parameters(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def state(self) -> dict:
        """Everything needed to continue this look exactly where it is (see :meth:`restore`)."""
        return {
            "steps_done": self.steps_done,
            "lut": {k: v.detach().cpu() for k, v in self.lut.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.state(),
            "generator": self.objective.generator.get_state(),
        }

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`: the same LUT, Adam moments, view order and random draws."""
        self.lut.load_state_dict(state["lut"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.restore(state["sampler"])
        self.objective.generator.set_state(state["generator"])
        self.steps_done = int(state["steps_done"])


class LookGroup:
    """Steps a set of looks together, their views batched through one CLIP guide.

    Args:
        guide: the :class:`~lutgen.guidance.clip.ClipGuide` every look's objective uses, or ``None``
            when no look needs CLIP.
    """

    def __init__(self, guide=None):
        self.guide = guide
        self.looks: list[Look] = []

    def add(self, look: Look) -> None:
        self.looks.append(look)

    def remove(self, look: Look) -> None:
        self.looks.remove(look)

    def step(self) -> tuple[dict[str, StepRecord], dict[str, tuple[StepRecord, str]]]:
        """One step of every look in the group.

        Returns:
            ``(records, stopped)``: the record of every look that stepped (its losses before the
            step), and for every look whose loss or gradient was not finite, its record and
            ``"loss"`` or ``"gradient"``; those looks were not updated.
        """
        looks = list(self.looks)
        views = [look.sampler.sample() for look in looks]
        table_changes = [look.lut.change() for look in looks]
        changes = [apply_lut_reproducible(v, d) for v, d in zip(views, table_changes)]
        embedded = self._embeddings(looks, views, changes)
        records, stopped, totals = {}, {}, []
        for look, v, change, d, given in zip(looks, views, changes, table_changes, embedded):
            guide = look.objective.guide
            if given is not None:
                look.objective.guide = _GivenEmbeddings(given)
            try:
                terms = look.objective.terms(v, change, d)
            finally:
                look.objective.guide = guide
            record = StepRecord(look.steps_done + 1, **terms.values())
            if math.isfinite(record.total):
                records[look.name] = record
                totals.append(terms.total)
            else:
                stopped[look.name] = (record, "loss")
        stepping = [look for look in looks if look.name in records]
        for look in stepping:
            look.optimizer.zero_grad(set_to_none=True)
        if totals:
            torch.stack(totals).sum().backward()
        for look in stepping:
            if not all(p.grad is None or torch.isfinite(p.grad).all() for p in look.parameters()):
                stopped[look.name] = (records.pop(look.name), "gradient")
                continue
            look.optimizer.step()
            look.lut.keep_in_range()
            look.steps_done += 1
        return records, stopped

    def _embeddings(self, looks: list[Look], views: list[torch.Tensor], changes: list[torch.Tensor]):
        """Per look, the embeddings its objective will ask for (``None`` when it needs no CLIP): the
        graded views of every look in one batch, then the ungraded views of the looks that compare
        with them in a second batch, without gradient."""
        clip_looks = [i for i, look in enumerate(looks) if look.objective.evidence.uses_clip]
        given: list[list[torch.Tensor] | None] = [None] * len(looks)
        if not clip_looks:
            return given
        graded = self.guide.embed_images(torch.cat([views[i] + changes[i] for i in clip_looks]))
        for i, part in zip(clip_looks, graded.split([len(views[i]) for i in clip_looks])):
            given[i] = [part]
        original_looks = [i for i in clip_looks if looks[i].objective.evidence.needs_original_embeddings]
        if original_looks:
            with torch.no_grad():
                original = self.guide.embed_images(torch.cat([views[i] for i in original_looks]))
            for i, part in zip(original_looks, original.split([len(views[i]) for i in original_looks])):
                given[i].append(part)
        return given
