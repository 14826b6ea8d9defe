"""``lutgen infer``: apply a .cube file to one image, several images or a folder (``--jobs`` at once)."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app, report_images, run_image_task


@app.command()
def infer(
    lut_file: Path = typer.Argument(..., help="The .cube file to apply (any Adobe or Resolve .cube)."),
    images: list[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    output_path: Path = typer.Option(
        None, "--output-path", "-o", help="Output file for a single image [default: output.png]."
    ),
    output_dir: Path = typer.Option(
        None, "--output-dir", "-d", help="Folder for the outputs (needed for several images); names are kept."
    ),
    strength: float = typer.Option(1.0, help="Blend with the original: 0 leaves it, 1 applies the LUT fully."),
    interpolation: str = typer.Option(
        "trilinear", help="trilinear (as Resolve/OCIO default) or tetrahedral (as ffmpeg)."
    ),
    quality: int = typer.Option(95, help="JPEG/WebP quality, 1-100."),
    device: str = typer.Option(
        "cpu", help="cpu (compiled kernel, fastest start), cuda, mps, or auto (CUDA, then MPS, then CPU)."
    ),
    jobs: int = typer.Option(
        None, "--jobs", "-j", help="Images graded at once, each on its own core; 1 grades one after another "
        "[default: every core]."
    ),
) -> None:
    """Apply LUT_FILE to IMAGES and write graded copies, keeping bit depth, EXIF and ICC profile."""
    from lutgen.tasks.infer import infer as run_infer

    result = run_image_task(
        run_infer, lut_file, images, output_path, output_dir, strength, interpolation, quality, device, jobs
    )
    report_images(result.written, result.failed, output_dir)
