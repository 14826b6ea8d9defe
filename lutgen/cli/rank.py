"""``lutgen rank``: order LUT files by how much the photos they grade look like a text prompt (CLIP).

Only parses options and reports; the work is :func:`lutgen.tasks.rank.rank`. Nothing here imports
torch or open_clip at import time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from lutgen.cli import app
from lutgen.cli import options as shared



@app.command()
def rank(
    luts: list[Path] = typer.Argument(..., help="LUT files, and folders searched with their sub-folders "
                                                "(.cube, .3dl, .csp, .spi3d, .spi1d, .clf, Hald .png/.tif)."),
    prompt: str = typer.Option(..., help="The look to find, e.g. 'moody teal night'."),
    negative_prompt: str = typer.Option(None, help="A look to score against, e.g. 'washed out'."),
    top: int = typer.Option(10, help="How many of the best LUTs to print and put on the contact sheet (>= 1)."),
    as_json: bool = typer.Option(False, "--json", help="Print the ranking as JSON instead of a table."),
    contact_sheet: Path = typer.Option(
        None, help="Image (.jpg, .png) of the photos graded by each of the top LUTs (at most 100) "
                   "[default: tmp/rank/<prompt>.jpg]."),
    no_contact_sheet: bool = typer.Option(False, "--no-contact-sheet", help="Write no contact sheet."),
    batch_size: int = typer.Option(
        None, help="LUTs graded per CLIP pass, 1..1024 [default: 32 images per pass on a CPU, 256 on a GPU]."),
    image_folder: Path = shared.SCORED_FOLDER,
    photos: int = shared.SCORED_PHOTOS,
    device: str = shared.DEVICE,
    clip_model: str = shared.CLIP_MODEL,
    clip_pretrained: str = shared.CLIP_PRETRAINED,
    clip_precision: str = shared.CLIP_PRECISION,
) -> None:
    """Rank LUTs by CLIP similarity of the photos they grade to a prompt; write a contact sheet of the best.

    The score: the mean over the photos of CLIP's cosine similarity between the graded photo and the
    prompt, minus that to the negative prompt when one is given. LUTs that cannot be read are
    reported and skipped.
    """
    from tqdm import tqdm

    from lutgen.tasks.rank import RankOptions
    from lutgen.tasks.rank import rank as run_rank

    options = RankOptions(
        prompt=prompt, luts=tuple(luts), negative_prompt=negative_prompt, image_folder=image_folder, photos=photos,
        top=top, contact_sheet=contact_sheet, write_sheet=not no_contact_sheet, batch_size=batch_size,
        device=device, clip_model=clip_model, clip_pretrained=clip_pretrained, clip_precision=clip_precision,
    )

    def warn(text: str) -> None:
        tqdm.write(f"warning: {text}", file=sys.stderr)

    def progress(total: int):
        return tqdm(total=total, desc="Scoring LUTs", unit="LUT", dynamic_ncols=True, leave=False)

    result = run_rank(options, warn=warn, progress=progress)
    if as_json:
        typer.echo(json.dumps(ranking_json(result, top), indent=2, allow_nan=False))
    else:
        print_table(result, top)


def ranking_json(result, top: int) -> dict:
    """The ranking as a JSON-ready dict: the prompt, the identity's score, the ``top`` LUTs, what was skipped."""
    return {
        "prompt": result.prompt,
        "negative_prompt": result.negative,
        "clip": result.weights_label,
        "photos": [str(path) for path in result.photos],
        "identity_score": result.identity,
        "luts_scored": len(result.ranked),
        "ranking": [
            {"rank": place, "path": str(entry.path), "score": entry.score, "change": entry.change}
            for place, entry in enumerate(result.ranked[:top], start=1)
        ],
        "skipped": [{"path": str(path), "reason": reason} for path, reason in result.skipped],
        "contact_sheet": str(result.contact_sheet) if result.contact_sheet is not None else None,
    }


def print_table(result, top: int) -> None:
    """The ``top`` LUTs as a table: rank, score, change from the ungraded photos, file."""
    against = f", against {result.negative!r}" if result.negative else ""
    typer.echo(f"{len(result.ranked)} LUTs ranked by CLIP similarity to {result.prompt!r}{against} "
               f"on {len(result.photos)} photos ({result.weights_label}); ungraded photos score {result.identity:.4f}")
    typer.echo(f"{'rank':>4}  {'score':>7}  {'change':>7}  LUT")
    for place, entry in enumerate(result.ranked[:top], start=1):
        typer.echo(f"{place:>4}  {entry.score:>7.4f}  {entry.change:>+7.4f}  {entry.path}")
    if result.contact_sheet is not None:
        typer.echo(f"contact sheet: {result.contact_sheet}")
