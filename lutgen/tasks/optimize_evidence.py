"""The evidence ``lutgen optimize`` is given for a look, checked before torch is imported.

Every kind of evidence is a term of one objective over the one trainable LUT
(:mod:`lutgen.optim.objective`):

- prompts (``--prompt``, repeatable), each with a weight: ``--prompt-weight`` given once per
  ``--prompt``, in the same order (a separate option, so a prompt may hold any colon, comma or
  equals sign); every weight is 1 when none is given;
- negative prompts (``--negative-prompt``, repeatable), with ``--negative-weight`` by the same rule;
- a source prompt (``--source-prompt "a photo"``): every prompt then becomes a direction, from the
  source prompt to the prompt, that the change of the image embedding should follow;
- reference photos (``--reference-image FILE_OR_FOLDER``, repeatable);
- before/after pairs (``--pairs BEFORE_DIR AFTER_DIR``), matched by file name as for ``fit``.

At least one piece of evidence is needed. Problems are one sentence each
(:class:`~lutgen.errors.OptionError` or :class:`~lutgen.errors.ImageError`).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lutgen.errors import ImageError, OptionError
from lutgen.fileio import check_regular_file
from lutgen.imaging import IMAGE_EXTENSIONS, find_images, image_size
from lutgen.tasks.options import MAX_LOSS_WEIGHT
from lutgen.tasks.pairs import ImagePair, pair_images
from lutgen.tasks.recipe import file_line, pair_line, text_line

MAX_PROMPT_CHARACTERS = 1000
MAX_PROMPTS = 16
"""Most prompts of each kind: every one is embedded once and compared with every view at every step."""
MAX_REFERENCES = 100
MAX_PAIRS = 100
PAIR_ASPECT_TOLERANCE = 0.01
"""Pairs of different sizes are kept when their aspect ratios agree within 1 %: the after picture is
resized to the before picture (area averaging), as ``fit`` does."""


@dataclass(frozen=True)
class WeightedText:
    """A prompt and its weight (greater than 0)."""

    text: str
    weight: float = 1.0


@dataclass
class Evidence:
    """The checked evidence of one run (see the module docstring)."""

    prompts: list[WeightedText] = field(default_factory=list)
    negatives: list[WeightedText] = field(default_factory=list)
    source: str | None = None
    references: list[Path] = field(default_factory=list)
    pairs: list[ImagePair] = field(default_factory=list)

    def texts(self) -> list[str]:
        """Every text to embed: the prompts, the negative prompts and the source prompt."""
        return [p.text for p in self.prompts] + [n.text for n in self.negatives] + (
            [self.source] if self.source is not None else [])

    def needs_clip(self, reference_similarity: float) -> bool:
        """Whether some term needs CLIP: prompts, negative prompts, or references weighed by CLIP similarity."""
        return bool(self.prompts or self.negatives or (self.references and reference_similarity > 0))

    def title(self) -> str:
        """The title of the ``.cube``: the first prompt, else what the look was made from."""
        if self.prompts:
            return self.prompts[0].text
        if self.references:
            return f"like {self.references[0].name}" + (" and more" if len(self.references) > 1 else "")
        if self.pairs:
            return f"learned from {len(self.pairs)} before/after pair(s)"
        return "not " + self.negatives[0].text

    def recipe_lines(self) -> list[str]:
        """One recipe line per piece of evidence, files with their hashes (:mod:`lutgen.tasks.recipe`)."""
        lines = [text_line("prompt", p.text, p.weight) for p in self.prompts]
        lines += [text_line("negative prompt", n.text, n.weight) for n in self.negatives]
        if self.source is not None:
            lines.append(text_line("source prompt", self.source))
        lines += [file_line("reference", path) for path in self.references]
        lines += [pair_line("pair", pair.name, pair.input, pair.target) for pair in self.pairs]
        return lines


def check_text(text: str, option: str) -> str:
    """``text`` with runs of white space as single spaces; an :class:`OptionError` when it is empty, longer
    than :data:`MAX_PROMPT_CHARACTERS` or holds control characters."""
    clean = " ".join(str(text or "").split())
    if not clean:
        raise OptionError(f"{option} is empty; describe the look you want, e.g. 'golden hour warm sunlight'")
    if len(clean) > MAX_PROMPT_CHARACTERS:
        raise OptionError(
            f"{option} is {len(clean)} characters long; CLIP reads about 300 (77 tokens), "
            f"so keep it under {MAX_PROMPT_CHARACTERS}"
        )
    control = next((c for c in clean if unicodedata.category(c) in ("Cc", "Cs")), None)
    if control is not None:
        raise OptionError(f"{option} holds the control character U+{ord(control):04X}; give plain text")
    return clean


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, Path, float, int)):
        return [value]
    return list(value)


def weighted_texts(texts, weights, option: str, weight_option: str) -> list[WeightedText]:
    """Texts of ``option`` with the weights of ``weight_option``: none (all 1) or exactly one per text."""
    texts, weights = _as_list(texts), _as_list(weights)
    if len(texts) > MAX_PROMPTS:
        raise OptionError(f"{option} is given {len(texts)} times; at most {MAX_PROMPTS} are allowed")
    if weights and len(weights) != len(texts):
        raise OptionError(
            f"{weight_option} is given {len(weights)} time(s) for {len(texts)} {option}; give one weight per "
            f"{option}, in the same order, or none (every weight 1)"
        )
    checked = []
    for index, text in enumerate(texts):
        weight = weights[index] if weights else 1.0
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not math.isfinite(weight) \
                or not 0 < weight <= MAX_LOSS_WEIGHT:
            raise OptionError(f"{weight_option} {weight!r} is not a number greater than 0 and at most "
                              f"{MAX_LOSS_WEIGHT:g}")
        checked.append(WeightedText(check_text(text, option), float(weight)))
    return checked


def reference_files(paths) -> list[Path]:
    """The images named by ``--reference-image`` (files, and every image in a folder), each checked to be
    a readable image file within the pixel limit; one sentence naming the first that is not."""
    found: list[Path] = []
    for path in map(Path, _as_list(paths)):
        if path.is_dir():
            try:
                found += find_images(path)
            except Exception:
                raise ImageError(f"--reference-image {path} is a folder without images "
                                 f"({', '.join(IMAGE_EXTENSIONS)})") from None
        else:
            check_regular_file(path, "reference image", ImageError)
            found.append(path)
    if len(found) > MAX_REFERENCES:
        raise ImageError(f"--reference-image names {len(found)} images; at most {MAX_REFERENCES} are allowed")
    for path in found:
        image_size(path)  # a file that is not an image, or too large, is refused now
    return found


def check_pairs(pairs) -> list[ImagePair]:
    """The pairs of ``--pairs BEFORE_DIR AFTER_DIR`` (none when not given), matched by name."""
    if pairs is None or all(part is None for part in pairs):
        return []
    before_dir, after_dir = map(Path, pairs)
    found = pair_images(before_dir, after_dir, aspect_tolerance=PAIR_ASPECT_TOLERANCE,
                        options=("--pairs BEFORE_DIR", "--pairs AFTER_DIR"))
    if len(found) > MAX_PAIRS:
        raise ImageError(f"--pairs {before_dir} {after_dir} holds {len(found)} pairs; at most {MAX_PAIRS} are allowed")
    return found


def check_evidence(o) -> Evidence:
    """The evidence of the options ``o`` (an :class:`~lutgen.tasks.optimize_plan.OptimizeOptions`), checked."""
    prompts = weighted_texts(o.prompt, o.prompt_weight, "--prompt", "--prompt-weight")
    negatives = weighted_texts(o.negative_prompt, o.negative_weight, "--negative-prompt", "--negative-weight")
    source = check_text(o.source_prompt, "--source-prompt") if o.source_prompt is not None else None
    if source is not None:
        if not prompts:
            raise OptionError("--source-prompt needs at least one --prompt: the look is the change from the source "
                              "prompt to the prompt")
        same = next((p.text for p in prompts if p.text == source), None)
        if same is not None:
            raise OptionError(f"--prompt {same!r} is the --source-prompt; a direction needs two different texts")
    evidence = Evidence(prompts, negatives, source, reference_files(o.reference_image), check_pairs(o.pairs))
    if not (evidence.prompts or evidence.negatives or evidence.references or evidence.pairs):
        raise OptionError("give the look to make: --prompt TEXT, --negative-prompt TEXT, --reference-image FILE "
                          "or --pairs BEFORE_DIR AFTER_DIR")
    return evidence


def inputs(evidence: Evidence) -> Sequence[Path]:
    """Every input file of the evidence (never to be overwritten)."""
    return [*evidence.references, *(p.input for p in evidence.pairs), *(p.target for p in evidence.pairs)]


# --------------------------------------------------------------------------------------------
# The evidence as tensors on the device (torch is imported here, after every check)
# --------------------------------------------------------------------------------------------

REFERENCE_COLOURS = 16384
"""Colours sampled from the reference photos (shared evenly among them) for the colour-distribution term."""
PAIR_PIXELS = 65536
"""Pixel pairs sampled from each before/after pair (each step draws a random subset of all of them)."""


def text_tensors(guide, evidence: Evidence, device):
    """The prompt, direction and negative embeddings and weights (``None`` where absent), embedded once."""
    import torch

    from lutgen.optim.evidence import text_directions

    def stack(items: list[WeightedText]):
        if not items:
            return None, None
        embedded = torch.cat([guide.embed_text(item.text) for item in items])
        weights = torch.tensor([item.weight for item in items], dtype=torch.float32, device=device)
        return embedded, weights

    prompts, prompt_weights = stack(evidence.prompts)
    negatives, negative_weights = stack(evidence.negatives)
    directions = None
    if evidence.source is not None:
        directions = text_directions(prompts, guide.embed_text(evidence.source))
    return prompts, prompt_weights, directions, negatives, negative_weights


def reference_tensors(paths: Sequence[Path], guide, device, side: int, seed: int, need_embeddings: bool):
    """``(embeddings (R, D) or None, Oklab colours (M, 3))`` of the reference photos.

    Each photo is decoded once at most ``side`` pixels on its longer side; its embedding is that of
    the centre view CLIP's own preprocessing would keep, and :data:`REFERENCE_COLOURS` colours are
    drawn at random from all of them, in equal shares, with the run's seed.
    """
    import numpy as np
    import torch

    from lutgen.color.oklab_torch import srgb_to_oklab
    from lutgen.imaging import load_rgb_float
    from lutgen.optim.views import centre_box, resample_box, stored_image

    rng = np.random.default_rng(seed)
    share = max(1, REFERENCE_COLOURS // len(paths))
    colours, embeddings = [], []
    for path in paths:
        pixels = load_rgb_float(path, max_side=side)
        flat = pixels.reshape(-1, 3)
        chosen = rng.choice(len(flat), size=min(share, len(flat)), replace=False)
        colours.append(torch.from_numpy(np.ascontiguousarray(flat[chosen])))
        if need_embeddings:
            image = stored_image(pixels, device)
            box = centre_box(image.shape[-2], image.shape[-1], guide.image_size, guide.resize_mode)
            view = resample_box(image, box, guide.image_size, guide.interpolation)
            with torch.no_grad():
                embeddings.append(guide.embed_images(view[None]))
    oklab = srgb_to_oklab(torch.cat(colours).to(device=device, dtype=torch.float32))
    return (torch.cat(embeddings) if embeddings else None), oklab


def pair_tensors(pairs: Sequence[ImagePair], device, seed: int):
    """``(before (S, 3), after (S, 3))`` float32 pixel colours sampled from the aligned pairs.

    Each pair is read whole (the after picture resized to the before one when their sizes differ),
    refused by name when it is not aligned (a shift, crop or resize, as ``fit`` checks), and
    :data:`PAIR_PIXELS` of its pixels are drawn at random with the run's seed.
    """
    import numpy as np
    import torch

    from lutgen.tasks.pair_pixels import check_alignment, load_pair, sample_pixels

    rng = np.random.default_rng(seed)
    befores, afters = [], []
    for pair in pairs:
        before, after = load_pair(pair)
        check_alignment(pair, before, after)
        x, y = sample_pixels(before, after, PAIR_PIXELS, rng)
        befores.append(x)
        afters.append(y)

    def tensor(parts):
        return torch.from_numpy(np.concatenate(parts)).to(device=device, dtype=torch.float32)

    return tensor(befores), tensor(afters)
