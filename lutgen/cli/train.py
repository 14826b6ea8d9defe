"""``lutgen train``: train an image-adaptive LUT model (AdaInt) on pairs of photos."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app, report_error
from lutgen.errors import interrupt_exit_code


@app.command()
def train(
    input_dir: Path = typer.Option(..., help="Folder of input photos."),
    target_dir: Path = typer.Option(..., help="Folder of target photos, matched to the inputs by file name."),
    output_path: Path = typer.Option(Path("adaint.safetensors"), "--output-path", "-o",
                                     help="The trained model (.safetensors), for `enhance --model`."),
    checkpoint_dir: Path = typer.Option(None, help="Checkpoints [default: NAME_checkpoints beside the output]."),
    epochs: int = typer.Option(400, help="Passes over the pairs (per generation)."),
    batch_size: int = typer.Option(1, help="Photos per step, over all processes."),
    learning_rate: float = typer.Option(1e-4, help="Adam learning rate (the interval module uses 0.1 of it)."),
    max_side: int = typer.Option(720, help="Photos are loaded at most this many pixels on the longer side."),
    n_vertices: int = typer.Option(33, help="Nodes per axis of the LUT."),
    n_ranks: int = typer.Option(3, help="Basis LUTs."),
    adaint: bool = typer.Option(True, "--adaint/--uniform", help="Learn the vertices (AdaInt) or keep them uniform."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Random crops, flips and input jitter."),
    adaint_frozen_epochs: int = typer.Option(5, help="Epochs before the interval module starts learning."),
    monotonicity_factor: float = typer.Option(10.0, help="Weight of the monotonicity penalty."),
    smooth_factor: float = typer.Option(0.0, help="Weight of the smoothness (TV) penalty."),
    sparse_factor: float = typer.Option(1e-4, help="Weight of the mean squared basis-LUT weights."),
    generations: int = typer.Option(1, help="Born-Again generations: each after the first learns from the "
                                           "targets and the previous generation's outputs."),
    distill_weight: float = typer.Option(1.0, help="Weight of the previous generation's outputs in the loss."),
    checkpoint_every: int = typer.Option(0, help="Steps between checkpoints; 0: once per epoch."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    seed: int = typer.Option(None, help="Seed for initialisation, batches and augmentation [default: random]."),
    device: str = typer.Option("auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps; under "
                                            "torchrun, cuda gives process i GPU i."),
    precision: str = typer.Option("float32", help="float32, or float64 (slow; reproducible to rounding level)."),
) -> None:
    """Train a model on pairs of photos (input -> graded target); run it under torchrun for several GPUs.

    Ctrl-C or SIGTERM saves a checkpoint (continue with --resume) and puts the last finished generation, if
    any, at --output-path.
    """
    from tqdm import tqdm

    from lutgen.tasks.train import TrainOptions
    from lutgen.tasks.train import train as run_train

    options = TrainOptions(
        input_dir=input_dir, target_dir=target_dir, output_path=output_path, checkpoint_dir=checkpoint_dir,
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, max_side=max_side,
        n_vertices=n_vertices, n_ranks=n_ranks, adaptive=adaint, augment=augment,
        adaint_frozen_epochs=adaint_frozen_epochs, sparse_factor=sparse_factor, smooth_factor=smooth_factor,
        monotonicity_factor=monotonicity_factor, generations=generations, distill_weight=distill_weight,
        checkpoint_every=checkpoint_every, resume=resume, seed=seed, device=device, precision=precision,
    )

    def progress(total: int, initial: int):
        return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    try:
        result = run_train(options, echo=tqdm.write, progress=progress)
    except KeyboardInterrupt as interruption:
        report_error("interrupted before training started; nothing was written")
        raise typer.Exit(interrupt_exit_code(interruption)) from None
    if result.interrupted:
        if result.leader:  # what the checkpoint and the finished generations hold
            report_error(result.summary)
        raise typer.Exit(result.exit_code)
    if not result.leader:
        return
    if result.history:
        _, _, loss, psnr = result.history[-1]
        typer.echo(f"last epoch: loss {loss:.5f}, training PSNR {psnr:.2f} dB")
    if result.output_path is not None:
        typer.echo(f"wrote {result.output_path} (seed {result.seed})")
