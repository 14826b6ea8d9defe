"""``lutgen evaluate``: PSNR, SSIM and Delta E of a model on pairs of photos."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app


@app.command()
def evaluate(
    input_dir: Path = typer.Option(..., help="Folder of input photos."),
    target_dir: Path = typer.Option(..., help="Folder of target photos, matched to the inputs by file name."),
    model: str = typer.Option("fivek-srgb", help="fivek-srgb, fivek-xyz, or a weights file (.safetensors, .pth)."),
    csv_path: Path = typer.Option(Path("evaluation.csv"), "--csv", help="Where to write the scores (a .csv file)."),
    device: str = typer.Option("cpu", help="cpu (NumPy network + compiled LUT kernel), cuda, mps, or auto."),
) -> None:
    """Enhance every input as `lutgen enhance` does and score it against its target (and the input, as a baseline)."""
    from tqdm import tqdm

    from lutgen.tasks.evaluate import evaluate as run_evaluate

    def progress(pairs):
        return tqdm(pairs, unit="image", disable=len(pairs) < 2, leave=False)

    result = run_evaluate(model, input_dir, target_dir, csv_path, device, progress)
    width = max(len("mean"), *(len(row.name) for row in result.rows))
    typer.echo(f"{'image':{width}s}  {'PSNR':>7s} {'SSIM':>7s} {'dE76':>6s}   input: {'PSNR':>7s} {'SSIM':>7s} {'dE76':>6s}")
    lines = [(row.name, row.output, row.input) for row in result.rows]
    lines.append(("mean", result.mean_output, result.mean_input))
    for name, out, base in lines:
        typer.echo(f"{name:{width}s}  {out.psnr:7.2f} {out.ssim:7.4f} {out.delta_e:6.2f}          "
                   f"{base.psnr:7.2f} {base.ssim:7.4f} {base.delta_e:6.2f}")
    typer.echo(f"wrote {result.csv_path}")
