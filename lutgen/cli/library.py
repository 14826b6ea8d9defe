"""``lutgen library``: many looks in one run, from a prompts file, resumable, with a browsable index.

Only parses options and reports; the work is :func:`lutgen.tasks.library.library`. Nothing here
imports torch or open_clip at import time. The options of ``optimize`` that shape a look are the
library-wide defaults (a CSV prompts file may set them per look).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from lutgen.cli import app, report_error
from lutgen.cli import options as shared
from lutgen.errors import interrupt_exit_code


@app.command()
def library(
    prompts: Path = typer.Argument(
        ..., show_default=False,
        help="A .txt of prompts (one a line, # comments) or a .csv with a prompt column, an optional name and "
             "per-look settings (lut-size, steps, seed, learning-rate, negative-prompt, the loss weights, ...)."
    ),
    output_dir: Path = typer.Option(Path("luts"), "--output-dir", "-o",
                                    help="Folder of the looks (NAME.cube), library.json and index.html."),
    batch_looks: int = typer.Option(
        0, help="Looks optimised together, one CLIP pass per step for all of them, 1..256 [default: 0 = 8 on a "
                "CPU, as many as fit 60% of a GPU's free memory]."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the looks an interrupted run saved the progress "
                                                        "of (finished looks are always kept and skipped)."),
    negative_prompt: list[str] = typer.Option(
        None, metavar="<str>", help="A look every look moves away from; repeatable (a CSV negative-prompt replaces "
                                    "them for its look)."
    ),
    negative_weight: list[float] = typer.Option(
        None, metavar="<float>", help="Weight of each --negative-prompt (0..1000] [default: 1 each]."
    ),
    prompt_weight: float = typer.Option(None, help="Weight of each look's prompt (0..1000] [default: 1]."),
    source_prompt: str = typer.Option(None, help="Make every look a direction from this text, e.g. 'a photo'."),
    reference_image: list[Path] = typer.Option(
        None, metavar="<path>", help="A photo, or folder of photos, every look should also resemble; repeatable."
    ),
    reference_similarity: float = shared.REFERENCE_SIMILARITY,
    reference_colors: float = shared.REFERENCE_COLORS,
    pairs: tuple[Path, Path] = typer.Option(
        None, metavar="<before-dir after-dir>", show_default=False,
        help="Folders of photos before and after a grade, matched by name, that every look should reproduce."
    ),
    pair_weight: float = shared.PAIR_WEIGHT,
    monochrome: bool = shared.MONOCHROME,
    representation: str = shared.REPRESENTATION,
    image_folder: Path = typer.Option(
        None, help="Folder of at most 1000 training images, also the thumbnails' and scores' photos "
                   "[default: the bundled images/]."
    ),
    lut_size: int = shared.LUT_SIZE,
    steps: int = typer.Option(500, help="Optimisation steps of each look, 1..100000."),
    learning_rate: float = shared.LEARNING_RATE,
    image_smoothness: float = shared.IMAGE_SMOOTHNESS,
    image_regularization: float = shared.IMAGE_REGULARIZATION,
    black_preservation: float = shared.BLACK_PRESERVATION,
    highlight_preservation: float = shared.HIGHLIGHT_PRESERVATION,
    lut_smoothness: float = shared.LUT_SMOOTHNESS,
    batch_size: int = typer.Option(4, help="Views per step of each look, 1..256."),
    seed: int = typer.Option(
        None, help="Library seed; each look's seed is derived from it and the look's name [default: the one this "
                   "folder's earlier run chose, else a random one]."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps (under torchrun: cuda gives process i "
                                            "GPU i)."),
    clip_model: str = shared.CLIP_MODEL,
    clip_pretrained: str = shared.CLIP_PRETRAINED,
    clip_precision: str = shared.CLIP_PRECISION,
) -> None:
    """Make a library of looks, one per prompt, optimised K at a time; rerun or --resume to continue."""
    from tqdm import tqdm

    from lutgen.tasks.library import LibraryInterrupted, LibraryOptions
    from lutgen.tasks.library import library as run_library
    from lutgen.tasks.optimize import OptimizeOptions

    defaults = OptimizeOptions(
        prompt_weight=() if prompt_weight is None else (prompt_weight,),
        negative_prompt=tuple(negative_prompt or ()), negative_weight=tuple(negative_weight or ()),
        source_prompt=source_prompt, reference_image=tuple(reference_image or ()),
        reference_similarity=reference_similarity, reference_colors=reference_colors,
        pairs=None if pairs is None or None in pairs else pairs, pair_weight=pair_weight, monochrome=monochrome,
        representation=representation, image_folder=image_folder, lut_size=lut_size, steps=steps,
        learning_rate=learning_rate, image_smoothness=image_smoothness, image_regularization=image_regularization,
        black_preservation=black_preservation, highlight_preservation=highlight_preservation,
        lut_smoothness=lut_smoothness, batch_size=batch_size, seed=seed, device=device, clip_model=clip_model,
        clip_pretrained=clip_pretrained, clip_precision=clip_precision,
    )
    options = LibraryOptions(prompts, output_dir, defaults, batch_looks, resume)

    def warn(text: str) -> None:
        tqdm.write(f"warning: {text}", file=sys.stderr)

    def progress(total: int):
        return tqdm(total=total, desc="Making looks", unit="step", dynamic_ncols=True)

    try:
        result = run_library(options, echo=tqdm.write, warn=warn, progress=progress)
    except LibraryInterrupted as interruption:
        report_error(interruption.message)
        raise typer.Exit(interrupt_exit_code(interruption.cause)) from None
    if result.index_html is not None:
        made = f"{len(result.made)} look(s) made" + (" by this process" if result.processes > 1 else "")
        typer.echo(f"{made}, {len(result.skipped)} kept from before, in {output_dir}/ "
                   f"({result.processes} process(es)); browse {result.index_html}")
    if result.stopped:
        report_error(f"{len(result.stopped)} look(s) stopped early because the loss was not finite "
                     f"({', '.join(result.stopped[:5])}); lower their learning-rate or weights and rerun")
        raise typer.Exit(2)
