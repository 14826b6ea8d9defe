"""The optimisation loop of ``lutgen optimize``: views -> LUT -> objective (CLIP and the evidence) -> Adam.

One step:

1. draw a full batch of random views ``x`` (``(B, 3, h, w)``, no gradient) from the device-resident
   images (:class:`~lutgen.optim.views.ViewSampler`);
2. grade them: ``y = x + trilinear(x, D)`` with ``D = table - identity``. Trilinear interpolation is
   linear in the table and reproduces the identity, so this equals ``trilinear(x, table)`` (the
   LUT as written to the file) while the change ``y - x`` is exactly zero at the identity;
3. compute every term of the objective (:class:`~lutgen.optim.objective.Objective`: CLIP on ``y``
   for the prompts and references, the colours of ``y``, the pairs, the auxiliary losses);
4. one Adam step on the LUT's parameters (:meth:`param_groups` of the representation, see
   :mod:`lutgen.optim.parameterisation`), then keep them in range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lutgen.color.torch_ops import apply_lut_reproducible
from lutgen.optim.adam import Adam
from lutgen.optim.objective import LossTerms, Objective
from lutgen.optim.views import ViewSampler


@dataclass(frozen=True)
class StepRecord:
    """The weighted loss terms of one step's batch, at the LUT before that step's update (floats),
    as logged to ``losses.csv`` and printed by ``--verbose``."""

    step: int
    total: float
    clip: float
    smooth: float
    reg: float
    black: float
    lut_smooth: float
    highlight: float
    negative: float = 0.0
    reference: float = 0.0
    colors: float = 0.0
    pairs: float = 0.0

    FIELDS = ("step", "total", "clip", "smooth", "reg", "black", "lut_smooth", "highlight", "negative",
              "reference", "colors", "pairs")
    EVIDENCE_LABELS = {"negative": "Negative", "reference": "Reference", "colors": "Colors", "pairs": "Pairs"}

    def verbose_line(self) -> str:
        """The line ``--verbose`` prints every 10 steps: the total and each weighted term, 4 decimals
        (the terms of evidence a run does not use, always 0, are left out)."""
        evidence = "".join(f", {label}: {getattr(self, name):.4f}" for name, label in self.EVIDENCE_LABELS.items()
                           if getattr(self, name))
        return (
            f"Step {self.step}: Loss = {self.total:.4f} (CLIP: {self.clip:.4f}{evidence}, Smooth: {self.smooth:.4f}, "
            f"Reg: {self.reg:.4f}, Black: {self.black:.4f}, Highlight: {self.highlight:.4f}, "
            f"LUT Smooth: {self.lut_smooth:.4f})"
        )


class NonFiniteLoss(ArithmeticError):
    """A step whose loss or gradient was not finite (infinite or NaN); the LUT was not updated.

    Attributes:
        record: the step's loss terms (some of them not finite when ``what`` is ``"loss"``).
        what: ``"loss"`` or ``"gradient"``, what was found not finite.
    """

    def __init__(self, record: StepRecord, what: str):
        super().__init__(f"the {what} of step {record.step} is not finite")
        self.record = record
        self.what = what


class LutTrainer:
    """Optimises a trainable LUT so that graded views minimise the objective.

    Args:
        objective: the :class:`~lutgen.optim.objective.Objective` (CLIP, evidence, auxiliary weights).
        sampler: the view sampler over the device-resident images.
        lut: the trainable LUT (a representation of :mod:`lutgen.optim.parameterisation`), on the
            same device.
        learning_rate: Adam's learning rate (each representation scales it per parameter group).
    """

    def __init__(self, objective: Objective, sampler: ViewSampler, lut, learning_rate: float):
        self.objective = objective
        self.sampler = sampler
        self.lut = lut
        self.parameters = [p for group in lut.param_groups(learning_rate) for p in group["params"]]
        self.optimizer = Adam(lut.param_groups(learning_rate), lr=learning_rate)
        self.steps_done = 0

    def losses(self, views: torch.Tensor) -> LossTerms:
        """All loss terms for a batch of views at the current LUT (differentiable)."""
        table_change = self.lut.change()
        change = apply_lut_reproducible(views, table_change)
        return self.objective.terms(views, change, table_change)

    def step(self) -> StepRecord:
        """Draw a batch, take one optimiser step, return the losses of that batch (before the step).

        Raises :class:`NonFiniteLoss` instead of stepping when the loss or its gradient is not
        finite; the LUT is then left as it was, the last finite one.
        """
        views = self.sampler.sample()
        terms = self.losses(views)
        record = StepRecord(self.steps_done + 1, **terms.values())
        if not math.isfinite(record.total):
            raise NonFiniteLoss(record, "loss")
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        if not all(p.grad is None or torch.isfinite(p.grad).all() for p in self.parameters):
            raise NonFiniteLoss(record, "gradient")
        self.optimizer.step()  # finite: Adam's update is bounded by a multiple of the (finite) learning rate
        self.lut.keep_in_range()
        self.steps_done += 1
        return record
