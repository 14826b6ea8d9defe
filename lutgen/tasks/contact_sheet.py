"""The contact sheet of a ranking: one image with a row per LUT of the photos it graded, and its name.

Layout (all sizes in pixels): the first row is the photos ungraded, then one row per LUT, best
first. A row is a label line of :data:`LABEL_HEIGHT` (rank, score, change from the ungraded photos,
file) above one square thumbnail of :data:`THUMB` per photo (at most :data:`COLUMNS` photos, spread
over those scored: the centre views CLIP saw). Every thumbnail and every row is separated by
:data:`GAP`, so a sheet of ``r`` rows (the ungraded one included) and ``c`` columns is
``c * THUMB + (c + 1) * GAP`` wide and ``r * (LABEL_HEIGHT + THUMB + GAP) + GAP`` tall
(:func:`sheet_size`). It is written atomically, as JPEG or PNG by its extension.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

THUMB = 160
COLUMNS = 4
LABEL_HEIGHT = 16
GAP = 4
BACKGROUND = (24, 24, 24)
TEXT_COLOUR = (235, 235, 235)


def sheet_size(rows: int, columns: int) -> tuple[int, int]:
    """``(width, height)`` of a sheet of ``rows`` rows (the ungraded one included) and ``columns`` photos."""
    return columns * THUMB + (columns + 1) * GAP, rows * (LABEL_HEIGHT + THUMB + GAP) + GAP


def _fitted(text: str, draw, width: int) -> str:
    """``text``, its start cut and replaced by ``...`` until it fits in ``width`` pixels."""
    if draw.textlength(text) <= width:
        return text
    head, _, tail = text.partition(": ")  # keep the rank and score, cut the file name's start
    prefix = f"{head}: ..." if tail else "..."
    tail = tail or text
    while tail and draw.textlength(prefix + tail) > width:
        tail = tail[1:]
    return prefix + tail


def compose_sheet(rows: Sequence[tuple[str, Sequence[np.ndarray]]]) -> np.ndarray:
    """The sheet as an ``(H, W, 3)`` uint8 array (size :func:`sheet_size`).

    Args:
        rows: ``(label, thumbnails)`` per row, each thumbnail ``(THUMB, THUMB, 3)`` uint8; every row has
            the same number of thumbnails.
    """
    from PIL import Image, ImageDraw

    columns = len(rows[0][1])
    width, height = sheet_size(len(rows), columns)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for r, (label, thumbs) in enumerate(rows):
        top = GAP + r * (LABEL_HEIGHT + THUMB + GAP)
        draw.text((GAP, top + 2), _fitted(label, draw, width - 2 * GAP), fill=TEXT_COLOUR)
        for c, thumb in enumerate(thumbs):
            sheet.paste(Image.fromarray(thumb), (GAP + c * (THUMB + GAP), top + LABEL_HEIGHT))
    return np.asarray(sheet)


def _thumbnails(views) -> list[np.ndarray]:
    """``(N, 3, h, w)`` float views in ``[0, 1]`` as ``THUMB`` x ``THUMB`` uint8 thumbnails (antialiased)."""
    import torch
    import torch.nn.functional as F

    small = F.interpolate(views.float().cpu(), size=(THUMB, THUMB), mode="bilinear", antialias=True,
                          align_corners=False)
    codes = (small.clamp(0, 1) * 255).round().to(torch.uint8)
    return list(codes.permute(0, 2, 3, 1).numpy())


def write_ranking_sheet(path: Path, scoring, result, rows: int) -> None:
    """Write the sheet of the ``rows`` best LUTs of ``result`` (a :class:`~lutgen.tasks.rank.RankResult`)
    over the views of ``scoring`` (a :class:`~lutgen.tasks.rank.Scoring`), reading those LUTs again."""
    from lutgen.formats import read_lut
    from lutgen.guidance.scoring import grade
    from lutgen.imaging import ImageData, save_image
    from lutgen.tasks.rank import spread

    views = scoring.views[spread(range(len(scoring.views)), COLUMNS)]
    lines = [(f"ungraded: {result.identity:.4f}", _thumbnails(views))]
    for place, entry in enumerate(result.ranked[:rows], start=1):
        label = f"{place}. {entry.score:.4f} ({entry.change:+.4f}): {entry.path}"
        lines.append((label, _thumbnails(grade(views, read_lut(entry.path)))))
    save_image(ImageData(rgb=compose_sheet(lines)), path, quality=90)
