"""``lutgen optimize``: make a .cube LUT that grades images towards a text prompt (CLIP guidance).

Only parses options and reports; the work is :func:`lutgen.tasks.optimize.optimize`. Nothing here
imports torch or open_clip at import time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from lutgen.cli import app, report_error
from lutgen.errors import interrupt_exit_code


@app.command()
def optimize(
    prompt: str = typer.Option(
        ..., help="Text description of the look, e.g. 'golden hour warm sunlight' (at most 1000 characters)."
    ),
    image_folder: Path = typer.Option(
        None, help="Folder of at most 1000 training images [default: the bundled images/]."
    ),
    lut_size: int = typer.Option(16, help="LUT resolution N (N^3 nodes), 2..128."),
    steps: int = typer.Option(500, help="Optimisation steps, 1..100000."),
    learning_rate: float = typer.Option(0.005, help="Adam learning rate, 1e-6..1."),
    image_smoothness: float = typer.Option(1.0, help="Weight 0..1000: penalise banding the LUT adds to images."),
    image_regularization: float = typer.Option(1.0, help="Weight 0..1000: keep the grade subtle."),
    black_preservation: float = typer.Option(1.0, help="Weight 0..1000: do not lift the blacks."),
    highlight_preservation: float = typer.Option(
        1.0, help="Weight 0..1000: keep whites white and highlights out of clipping."
    ),
    lut_smoothness: float = typer.Option(1.0, help="Weight 0..1000: penalise kinks in the LUT's change."),
    batch_size: int = typer.Option(4, help="Views per step, 1..256 (each view of ViT-B-32 takes about 28 MB)."),
    log_interval: int = typer.Option(
        50, help="Save progress every N steps (0 disables logging); at most 1000 snapshots and 2 GB of .cube files."
    ),
    output_path: Path = typer.Option(Path("lut.cube"), help="The .cube file to write."),
    test_image: Path = typer.Option(None, help="Image shown before|after in the logs [default: a bundled image]."),
    verbose: bool = typer.Option(False, "--verbose", help="Print the loss breakdown every 10 steps."),
    seed: int = typer.Option(None, help="Random seed: same seed on the same device gives the same LUT."),
    device: str = typer.Option("auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps."),
    log_dir: Path = typer.Option(
        None, help="Log folder, outside the image folder [default: tmp/training_logs/<prompt>/]."
    ),
    clip_model: str = typer.Option(
        "ViT-B-32", help="open_clip architecture, or local-dir:FOLDER (open_clip_config.json + weights)."
    ),
    clip_pretrained: str = typer.Option("openai", help="open_clip pretrained tag, or a local weights file."),
    clip_precision: str = typer.Option(
        "auto", help="CLIP arithmetic: auto (bf16 on CUDA and on CPUs with native bf16, else fp32), fp32, bf16."
    ),
) -> None:
    """Optimise a 3D LUT so that the images, graded by it, match PROMPT according to CLIP."""
    from tqdm import tqdm

    from lutgen.tasks.optimize import OptimizeInterrupted, OptimizeOptions
    from lutgen.tasks.optimize import optimize as run_optimize

    options = OptimizeOptions(
        prompt=prompt, image_folder=image_folder, lut_size=lut_size, steps=steps, learning_rate=learning_rate,
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
    if result.log_dir is not None:
        typer.echo(f"Training logs are in {result.log_dir}/")
    typer.echo(f"LUT saved to {result.output_path}")
