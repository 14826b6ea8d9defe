"""Find a look by words: the work behind ``lutgen rank`` (and the set-up ``lutgen score`` shares).

Every LUT given (files, and folders searched with their sub-folders, of every format
:func:`~lutgen.formats.read_lut` reads) grades the same photos, and is scored by CLIP against the
prompt (:mod:`lutgen.guidance.scoring` defines the score). Order of work:

1. :func:`validate` checks the options, finds the LUT files and the photos and checks the contact
   sheet's path, importing neither torch nor open_clip; a bad value is one sentence (exit 2).
2. The photos (:data:`SCORE_PHOTOS` of the folder by default, spread evenly over its sorted list) are
   decoded once and resized once to CLIP's input (their centre view); the prompt is embedded once,
   then CLIP's text tower is released.
3. The LUTs are read a batch at a time and scored, several per CLIP pass (``batch_size`` LUTs times
   the photos in one forward pass); a LUT that cannot be read is reported in one line and skipped.
4. The contact sheet of the top LUTs is written (atomically), and the ranking returned.

Ctrl-C or SIGTERM (a ``KeyboardInterrupt``) stops it before anything is written or printed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lutgen.devices import check_device_name
from lutgen.errors import LutgenError, OptionError
from lutgen.fileio import check_folder_writable
from lutgen.formats import LUT_EXTENSIONS, read_lut
from lutgen.guidance import check_clip_precision
from lutgen.imaging import check_output_path, find_images
from lutgen.tasks.optimize_evidence import check_text
from lutgen.tasks.optimize_plan import image_folder, prompt_slug
from lutgen.tasks.options import NoProgressBar, check_number

SCORE_PHOTOS = 8
"""Photos a score is measured on by default (and the most ``optimize`` scores its result on): eight
spread over the folder; each one costs a CLIP pass per LUT."""
MAX_PHOTOS = 1000
MAX_BATCH_SIZE = 1024
MAX_SHEET_ROWS = 100
"""Most LUTs on a contact sheet (a JPEG is at most 65535 pixels tall)."""
DEFAULT_SHEET_FOLDER = Path("tmp") / "rank"


@dataclass
class RankOptions:
    """Every option of ``lutgen rank``, with the command line's defaults.

    ``contact_sheet=None`` writes the sheet to ``tmp/rank/<prompt>.jpg``; ``write_sheet=False`` writes none.
    ``batch_size=None`` chooses the LUTs per CLIP pass by the device
    (:func:`~lutgen.guidance.scoring.luts_per_pass`).
    """

    prompt: str
    luts: Sequence[Path] = ()
    negative_prompt: str | None = None
    image_folder: Path | None = None
    photos: int = SCORE_PHOTOS
    top: int = 10
    contact_sheet: Path | None = None
    write_sheet: bool = True
    batch_size: int | None = None
    device: str = "auto"
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    clip_precision: str = "auto"


@dataclass
class RankPlan:
    """What :func:`validate` found."""

    prompt: str
    negative: str | None
    luts: list[Path]
    folder: Path
    photos: list[Path]
    sheet: Path | None


@dataclass(frozen=True)
class Ranked:
    """One LUT's place: its file, its score and the identity's."""

    path: Path
    score: float
    identity: float

    @property
    def change(self) -> float:
        """How far the LUT moves the photos towards the prompt: its score minus the identity's."""
        return self.score - self.identity


@dataclass
class RankResult:
    """A finished ranking: every LUT scored, best first."""

    prompt: str
    negative: str | None
    identity: float
    ranked: list[Ranked]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    photos: list[Path] = field(default_factory=list)
    weights_label: str = ""
    contact_sheet: Path | None = None


def spread(items: Sequence, count: int) -> list:
    """``count`` items spread evenly over ``items`` (all of them when there are no more), in order:
    item ``floor((i + 0.5) * len / count)`` for ``i`` in ``0..count-1``."""
    if count >= len(items):
        return list(items)
    return [items[math.floor((i + 0.5) * len(items) / count)] for i in range(count)]


def _is_lut_name(path: Path) -> bool:
    return path.suffix.lower() in LUT_EXTENSIONS and not path.name.startswith(".")


def _luts_in(folder: Path) -> list[Path]:
    """The LUT files in ``folder`` and its sub-folders (hidden ones skipped), sorted by path."""
    found = []
    for root, dirs, files in os.walk(folder, onerror=None):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(root) / name for name in files if _is_lut_name(Path(name))]
    return sorted(path for path in found if path.is_file())


def find_luts(paths: Sequence[str | Path]) -> list[Path]:
    """The LUT files that ``paths`` stand for: files as given, folders searched with their sub-folders.

    The order of ``paths`` is kept and duplicates dropped. Raises an :class:`OptionError` for a path
    that does not exist, a file whose extension is not a LUT format, or when no LUT is found at all.
    """
    if not paths:
        raise OptionError("no LUTs were given; name LUT files or folders that hold them")
    found, seen = [], set()
    for given in map(Path, paths):
        if given.is_dir():
            candidates = _luts_in(given)
        elif not os.path.lexists(given):
            raise OptionError(f"{given} does not exist; name LUT files or folders that hold them")
        elif not _is_lut_name(given):
            raise OptionError(f"{given} is not a LUT file lutgen reads; use {', '.join(LUT_EXTENSIONS)}")
        else:
            candidates = [given]
        for path in candidates:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                found.append(path)
    if not found:
        shown = ", ".join(map(str, paths[:3])) + (", ..." if len(paths) > 3 else "")
        raise OptionError(f"no LUT files ({', '.join(LUT_EXTENSIONS)}) were found in {shown}")
    return found


def check_common(o) -> tuple[str, str | None]:
    """The checks ``rank`` and ``score`` share; returns the prompt and negative prompt, cleaned."""
    prompt = check_text(o.prompt, "--prompt")
    negative = check_text(o.negative_prompt, "--negative-prompt") if o.negative_prompt is not None else None
    check_number("photos", o.photos, 1, MAX_PHOTOS)
    check_device_name(o.device)
    check_clip_precision(o.clip_precision)
    if not o.clip_model.strip():
        raise OptionError("--clip-model is empty; give an open_clip model name such as ViT-B-32")
    if not str(o.clip_pretrained).strip():
        raise OptionError("--clip-pretrained is empty; give a tag such as openai or a weights file")
    return prompt, negative


def find_photos(folder: Path | None, count: int) -> tuple[Path, list[Path]]:
    """The photo folder (the bundled one when ``None``) and ``count`` of its images spread over it."""
    folder = image_folder(folder, "the photos to grade")
    return folder, spread(find_images(folder), count)


def _sheet_path(o: RankOptions, prompt: str, inputs: Sequence[Path]) -> Path | None:
    """Where the contact sheet goes, checked (an image extension, a writable folder, not an input)."""
    if not o.write_sheet:
        return None
    default = DEFAULT_SHEET_FOLDER / f"{prompt_slug(prompt)}.jpg"
    path = Path(o.contact_sheet) if o.contact_sheet is not None else default
    check_output_path(path)
    check_folder_writable(path.parent, f"--contact-sheet {path}")
    real = os.path.realpath(path)
    for source in inputs:
        if os.path.realpath(source) == real:
            raise OptionError(f"--contact-sheet {path} is the input {source}; choose another file for the sheet")
    return path


def validate(o: RankOptions) -> RankPlan:
    """Check every option and find the inputs, without importing torch (one-sentence errors)."""
    prompt, negative = check_common(o)
    check_number("top", o.top, 1)
    if o.batch_size is not None:
        check_number("batch-size", o.batch_size, 1, MAX_BATCH_SIZE)
    luts = find_luts(o.luts)
    folder, photos = find_photos(o.image_folder, o.photos)
    sheet = _sheet_path(o, prompt, [*luts, *photos])
    return RankPlan(prompt, negative, luts, folder, photos, sheet)


@dataclass
class Scoring:
    """What scoring needs, made ready once: the guide, the photos' views and the score's target."""

    guide: object  # lutgen.guidance.clip.ClipGuide
    views: object  # (N, 3, h, w) float32 torch tensor in [0, 1]
    target: object  # lutgen.guidance.scoring.ScoreTarget
    photos: list[Path]
    weights_label: str


def prepare_scoring(o, prompt: str, negative: str | None, folder: Path, photos: list[Path],
                    warn: Callable[[str], None], guide=None) -> Scoring:
    """Load CLIP (unless ``guide`` is given), embed the prompts, release the text tower, and decode the
    photos once into their centre views; unreadable photos are skipped with a warning each."""
    from lutgen.devices import pick_device
    from lutgen.guidance.clip import expected_image_size, load_clip, resolve_weights
    from lutgen.guidance.scoring import embed_prompts, photo_views
    from lutgen.optim.views import stored_image, working_side
    from lutgen.tasks.optimize import decode_images

    if guide is None:
        device = pick_device(o.device)
        source = resolve_weights(o.clip_model, o.clip_pretrained)
        side = working_side((expected_image_size(source),) * 2)
        decoded, _ = decode_images(photos, folder, side, warn, lambda pixels: stored_image(pixels, device))
        guide = load_clip(device=device, precision=o.clip_precision, source=source)
        label = source.label
    else:
        decoded, _ = decode_images(photos, folder, working_side(guide.image_size), warn,
                                    lambda pixels: stored_image(pixels, guide.device))
        label = "the given CLIP guide"
    for text in (prompt, negative):
        overflow = guide.text_limit(text) if text is not None else None
        if overflow is not None:
            warn(f"the prompt {text[:40]!r} is {overflow[0]} tokens long and CLIP reads {overflow[1]}; "
                 "its end is ignored")
    target = embed_prompts(guide, prompt, negative)
    guide.release_text_tower()
    views = photo_views([image for _, image in decoded], guide)
    return Scoring(guide, views, target, [path for path, _ in decoded], label)


def rank(o: RankOptions, warn: Callable[[str], None] = print, progress: Callable[[int], object] | None = None,
         guide=None) -> RankResult:
    """Run ``lutgen rank`` (see the module docstring).

    Args:
        o: the options.
        warn: prints a warning line (an unreadable LUT or photo; must not break a progress bar).
        progress: makes a progress bar for ``total`` LUTs (``update``, ``close``), ``None`` for none.
        guide: a :class:`~lutgen.guidance.clip.ClipGuide` with its text tower, used instead of loading
            the one the options name (its text tower is released).

    Raises:
        LutgenError: bad options or inputs, no LUT readable, unusable CLIP weights, unwritable sheet.
        KeyboardInterrupt: Ctrl-C or SIGTERM; nothing was written.
    """
    plan = validate(o)  # before torch is imported

    from lutgen.guidance.scoring import luts_per_pass, score_luts

    scoring = prepare_scoring(o, plan.prompt, plan.negative, plan.folder, plan.photos, warn, guide)
    batch_size = o.batch_size or luts_per_pass(scoring.guide.device, len(scoring.views))
    [identity] = score_luts(scoring.guide, scoring.views, [None], scoring.target)
    scores, skipped = _score_files(scoring, plan.luts, batch_size, warn, progress)
    if not scores:
        raise LutgenError(f"none of the {len(plan.luts)} LUT files could be read (the first: {skipped[0][1]})")
    ranked = sorted((Ranked(path, score, identity) for path, score in scores), key=lambda r: -r.score)
    result = RankResult(plan.prompt, plan.negative, identity, ranked, skipped, scoring.photos,
                        scoring.weights_label, plan.sheet)
    if plan.sheet is not None:
        from lutgen.tasks.contact_sheet import write_ranking_sheet

        write_ranking_sheet(plan.sheet, scoring, result, min(o.top, MAX_SHEET_ROWS))
    return result


def _read(path: Path, skipped: list, warn):
    """The LUT at ``path``, or ``None`` after reporting it in one line when it cannot be read."""
    try:
        return read_lut(path)
    except LutgenError as error:
        reason = str(error).removeprefix(f"cannot read {path}: ")
        skipped.append((path, reason))
        warn(f"skipped {reason}" if reason.startswith(str(path)) else f"skipped {path}: {reason}")  # named once
        return None


def _score_files(scoring: Scoring, paths: list[Path], batch_size: int, warn, progress):
    """``([(path, score)], [(path, reason)])``: the files read and scored ``batch_size`` at a time."""
    from lutgen.guidance.scoring import score_luts

    bar = progress(len(paths)) if progress is not None else NoProgressBar()
    scores, skipped = [], []
    try:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            read = [(path, lut) for path in chunk if (lut := _read(path, skipped, warn)) is not None]
            if read:
                values = score_luts(scoring.guide, scoring.views, [lut for _, lut in read], scoring.target,
                                    batch_size)
                scores += [(path, value) for (path, _), value in zip(read, values)]
            bar.update(len(chunk))
    finally:
        bar.close()
    return scores, skipped
