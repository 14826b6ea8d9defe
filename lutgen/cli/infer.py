"""``lutgen infer``: apply a LUT to one image or video, several, or folders of them (images ``--jobs`` at once)."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app, report_images, run_image_task
from lutgen.cli import options as shared


@app.command()
def infer(
    lut_file: Path = typer.Argument(..., help="The LUT to apply: .cube (Adobe or Resolve) or any format lutgen reads."),
    images: list[Path] = typer.Argument(..., help="Image and video files and/or folders of them."),
    output_path: Path = typer.Option(
        None, "--output-path", "-o",
        help="Output file for a single image or video [default: output.png, or output.EXT for a video .EXT].",
    ),
    output_dir: Path = typer.Option(
        None, "--output-dir", "-d", help="Folder for the outputs (needed for several files); names are kept."
    ),
    strength: float = typer.Option(1.0, help="Blend with the original: 0 leaves it, 1 applies the LUT fully."),
    interpolation: str = typer.Option(
        "trilinear", help="trilinear (as Resolve/OCIO default) or tetrahedral (as ffmpeg)."
    ),
    quality: int = typer.Option(95, help="JPEG/WebP quality, 1-100."),
    codec: str = shared.CODEC,
    crf: int = shared.CRF,
    device: str = typer.Option(
        "cpu", help="cpu (compiled kernel, fastest start), cuda, mps, or auto (CUDA, then MPS, then CPU)."
    ),
    jobs: int = typer.Option(
        None, "--jobs", "-j", help="Images graded at once, each on its own core; 1 grades one after another "
        "[default: every core]."
    ),
) -> None:
    """Apply LUT_FILE to IMAGES (photos or videos) and write graded copies, keeping bit depth and metadata
    (EXIF and ICC of photos; audio, subtitles, time stamps, rotation and colour tags of videos)."""
    from lutgen.tasks.infer import infer as run_infer

    result = run_image_task(
        run_infer, lut_file, images, output_path, output_dir, strength, interpolation, quality, device, jobs,
        codec, crf,
    )
    for target, video in result.videos.items():
        alpha = ", alpha kept" if video.alpha else ""
        typer.echo(f"{target}: {video.frames} frames in {video.codec} ({video.pixel_format}{alpha})")
    report_images(result.written, result.failed, output_dir, videos=len(result.videos))
