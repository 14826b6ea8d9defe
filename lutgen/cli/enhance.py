"""``lutgen enhance``: let a learned model (AdaInt) grade each photo with its own LUT."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app, report_images, run_image_task


@app.command()
def enhance(
    images: list[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    model: str = typer.Option(
        "fivek-srgb",
        help="fivek-srgb (shipped: MIT-Adobe FiveK expert C retouching of sRGB photos), fivek-xyz (shipped: "
        "FiveK tone mapping of 16-bit CIE XYZ images), or a weights file (.safetensors, .pth, .pt).",
    ),
    output_path: Path = typer.Option(
        None, "--output-path", "-o", help="Output file for a single image [default: output.png]."
    ),
    output_dir: Path = typer.Option(
        None, "--output-dir", "-d", help="Folder for the outputs (needed for several images); names are kept."
    ),
    export_cube: bool = typer.Option(
        False,
        "--export-cube",
        help="Also write each photo's own LUT beside its output: NAME.cube (shaper + 3D, reproduces the "
        "output with `lutgen infer`) and NAME_33.cube (plain 33^3, for apps without shaper support).",
    ),
    quality: int = typer.Option(95, help="JPEG/WebP quality, 1-100."),
    device: str = typer.Option(
        "cpu", help="cpu (NumPy network + compiled LUT kernel, fastest start), cuda, mps, or auto."
    ),
) -> None:
    """Enhance IMAGES with a learned image-adaptive LUT, keeping bit depth, EXIF and ICC profile.

    Works offline with the shipped model (AdaInt, Apache-2.0, trained on MIT-Adobe FiveK).
    """
    from lutgen.tasks.enhance import enhance as run_enhance

    result = run_image_task(run_enhance, images, model, output_path, output_dir, export_cube, quality, device)
    for target, luts in result.exported.items():
        typer.echo(
            f"{target}: wrote {luts.shaper_cube} (exact) and {luts.plain_cube} "
            f"(PSNR {luts.plain_psnr:.1f} dB against the exact LUT on this photo)"
        )
    report_images(result.written, result.failed, output_dir)
