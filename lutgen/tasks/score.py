"""The CLIP score of one LUT against a prompt, beside the identity's: the work behind ``lutgen score``.

The photos, the prompt and the score are those of ``lutgen rank`` (:mod:`lutgen.tasks.rank`,
:mod:`lutgen.guidance.scoring`): the same options give the same numbers. The identity's score (the
photos ungraded) is the baseline; the LUT's minus it says how far the look moves the photos towards
the prompt (and away from the negative prompt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lutgen.formats import read_lut
from lutgen.tasks.rank import SCORE_PHOTOS, check_common, find_photos, prepare_scoring


@dataclass
class ScoreOptions:
    """Every option of ``lutgen score``, with the command line's defaults."""

    prompt: str
    lut: Path
    negative_prompt: str | None = None
    image_folder: Path | None = None
    photos: int = SCORE_PHOTOS
    device: str = "auto"
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    clip_precision: str = "auto"


@dataclass
class ScoreResult:
    """One LUT's score and the identity's, on the same photos."""

    lut: Path
    prompt: str
    negative: str | None
    score: float
    identity: float
    photos: list[Path] = field(default_factory=list)
    weights_label: str = ""

    @property
    def change(self) -> float:
        """The LUT's score minus the identity's."""
        return self.score - self.identity


def score(o: ScoreOptions, warn: Callable[[str], None] = print, guide=None) -> ScoreResult:
    """Score ``o.lut`` and the identity on the same photos with one CLIP pass.

    The options and the LUT are checked and read before torch is imported (one-sentence errors).
    ``guide``, when given, is used instead of loading the CLIP the options name.
    """
    prompt, negative = check_common(o)
    lut = read_lut(o.lut)
    folder, photos = find_photos(o.image_folder, o.photos)

    from lutgen.guidance.scoring import score_luts  # after every check: torch loads here

    scoring = prepare_scoring(o, prompt, negative, folder, photos, warn, guide)
    identity, value = score_luts(scoring.guide, scoring.views, [None, lut], scoring.target)
    return ScoreResult(Path(o.lut), prompt, negative, value, identity, scoring.photos, scoring.weights_label)
