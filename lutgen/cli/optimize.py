"""``lutgen optimize``: make a .cube LUT that grades images towards a text prompt (CLIP guidance).

Only parses options and reports; the work is :func:`lutgen.tasks.optimize.optimize`. Nothing here
imports torch or open_clip at import time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from lutgen.cli import app, report_error
from lutgen.cli import options as shared
from lutgen.errors import interrupt_exit_code


@app.command()
def optimize(
    prompt: list[str] = typer.Option(
        None, metavar="<str>", help="Text description of the look, e.g. 'golden hour warm sunlight' (at most 1000 characters); "
                   "repeat for several prompts."
    ),
    prompt_weight: list[float] = typer.Option(
        None, metavar="<float>", help="Weight of each --prompt (0..1000], given once per --prompt in the same order [default: 1 each]."
    ),
    negative_prompt: list[str] = typer.Option(
        None, metavar="<str>", help="A look to move away from, e.g. 'green tint'; repeatable (a bounded push: see the README)."
    ),
    negative_weight: list[float] = typer.Option(
        None, metavar="<float>", help="Weight of each --negative-prompt (0..1000], once per --negative-prompt [default: 1 each]."
    ),
    source_prompt: str = typer.Option(
        None, help="Make every --prompt a direction from this text, e.g. 'a photo' -> 'a photo at golden hour'."
    ),
    reference_image: list[Path] = typer.Option(
        None, metavar="<path>", help="A photo, or a folder of photos, whose look to match; repeatable (at most 100 photos)."
    ),
    reference_similarity: float = shared.REFERENCE_SIMILARITY,
    reference_colors: float = shared.REFERENCE_COLORS,
    pairs: tuple[Path, Path] = typer.Option(
        None, metavar="<before-dir after-dir>", show_default=False,
        help="Folders of photos before and after a grade, matched by file name: the LUT must reproduce the grade."
    ),
    pair_weight: float = shared.PAIR_WEIGHT,
    monochrome: bool = shared.MONOCHROME,
    representation: str = shared.REPRESENTATION,
    image_folder: Path = typer.Option(
        None, help="Folder of at most 1000 training images [default: the bundled images/]."
    ),
    lut_size: int = shared.LUT_SIZE,
    steps: int = typer.Option(500, help="Optimisation steps, 1..100000."),
    learning_rate: float = shared.LEARNING_RATE,
    image_smoothness: float = shared.IMAGE_SMOOTHNESS,
    image_regularization: float = shared.IMAGE_REGULARIZATION,
    black_preservation: float = shared.BLACK_PRESERVATION,
    highlight_preservation: float = shared.HIGHLIGHT_PRESERVATION,
    lut_smoothness: float = shared.LUT_SMOOTHNESS,
    batch_size: int = typer.Option(4, help="Views per step, 1..256 (each view of ViT-B-32 takes about 28 MB)."),
    log_interval: int = typer.Option(
        50, help="Save progress every N steps (0 disables logging); at most 1000 snapshots and 2 GB of .cube files."
    ),
    output_path: Path = typer.Option(Path("lut.cube"), help="The .cube file to write."),
    test_image: Path = typer.Option(None, help="Image shown before|after in the logs [default: a bundled image]."),
    verbose: bool = typer.Option(False, "--verbose", help="Print the loss breakdown every 10 steps."),
    seed: int = typer.Option(None, help="Random seed: same seed on the same device gives the same LUT."),
    device: str = shared.DEVICE,
    log_dir: Path = typer.Option(
        None, help="Log folder, outside the image folder [default: tmp/training_logs/<prompt>/]."
    ),
    clip_model: str = shared.CLIP_MODEL,
    clip_pretrained: str = shared.CLIP_PRETRAINED,
    clip_precision: str = shared.CLIP_PRECISION,
) -> None:
    """Optimise a 3D LUT towards the look you describe: prompts (CLIP), reference photos, before/after pairs."""
    from tqdm import tqdm

    from lutgen.tasks.optimize import OptimizeInterrupted, OptimizeOptions
    from lutgen.tasks.optimize import optimize as run_optimize

    options = OptimizeOptions(
        prompt=tuple(prompt or ()), prompt_weight=tuple(prompt_weight or ()),
        negative_prompt=tuple(negative_prompt or ()), negative_weight=tuple(negative_weight or ()),
        source_prompt=source_prompt, reference_image=tuple(reference_image or ()),
        reference_similarity=reference_similarity, reference_colors=reference_colors,
        pairs=None if pairs is None or None in pairs else pairs, pair_weight=pair_weight,
        monochrome=monochrome, representation=representation, image_folder=image_folder, lut_size=lut_size, steps=steps, learning_rate=learning_rate,
        image_smoothness=image_smoothness, image_regularization=image_regularization,
        black_preservation=black_preservation, highlight_preservation=highlight_preservation,
        lut_smoothness=lut_smoothness, batch_size=batch_size,
        log_interval=log_interval, output_path=output_path, test_image=test_image, verbose=verbose, seed=seed,
        device=device, log_dir=log_dir, clip_model=clip_model, clip_pretrained=clip_pretrained,
        clip_precision=clip_precision,
    )

    def warn(text: str) -> None:
        tqdm.write(f"warning: {text}", file=sys.stderr)

    def progress(total: int):
        return tqdm(total=total, desc="Optimizing LUT", unit="step", dynamic_ncols=True)

    try:
        result = run_optimize(options, echo=tqdm.write, warn=warn, progress=progress)
    except OptimizeInterrupted as interruption:
        report_error(interruption.message)
        raise typer.Exit(interrupt_exit_code(interruption.cause)) from None
    try:
        _report_success(result)
    except KeyboardInterrupt as late:
        report_error(f"interrupted; the LUT is written to {result.output_path}")
        raise typer.Exit(interrupt_exit_code(late)) from None


def _report_success(result) -> None:
    """Say what a finished run wrote."""
    final = f" Final loss: {result.final.total:.4f}." if result.final is not None else ""
    typer.echo(f"Optimization complete!{final}")
    if result.scores is not None:
        before, after = result.scores
        typer.echo(f"CLIP score (as lutgen score measures it): {before:.4f} ungraded, {after:.4f} graded "
                   f"({after - before:+.4f})")
    if result.log_dir is not None:
        typer.echo(f"Training logs are in {result.log_dir}/")
    typer.echo(f"LUT saved to {result.output_path}")
