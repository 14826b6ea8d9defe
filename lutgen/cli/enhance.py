"""``lutgen enhance``: let a learned model (AdaInt) grade each photo, or each frame of a video, with its own LUT."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app, report_images, run_image_task
from lutgen.cli import options as shared


@app.command()
def enhance(
    images: list[Path] = typer.Argument(..., help="Image and video files and/or folders of them."),
    model: str = typer.Option(
        "fivek-srgb",
        help="fivek-srgb (shipped: MIT-Adobe FiveK expert C retouching of sRGB photos), fivek-xyz (shipped: "
        "FiveK tone mapping of 16-bit CIE XYZ images), or a weights file (.safetensors, .pth, .pt).",
    ),
    output_path: Path = typer.Option(
        None, "--output-path", "-o",
        help="Output file for a single image or video [default: output.png, or output.EXT for a video .EXT].",
    ),
    output_dir: Path = typer.Option(
        None, "--output-dir", "-d", help="Folder for the outputs (needed for several files); names are kept."
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
    jobs: int = typer.Option(
        None, "--jobs", "-j", help="Photos enhanced at once on the CPU, each on its own core; 1 enhances one "
        "after another [default: every core]."
    ),
    temporal_smoothing: float = typer.Option(
        0.9, help="Video: weight of the earlier frames' LUT in each frame's LUT (an exponential moving average; "
        "0 = every frame its own LUT, 0.9 = about ten frames), restarted at scene cuts.",
    ),
    scene_cut: float = typer.Option(
        0.35, help="Video: colour-histogram distance (0-1) between consecutive frames above which a new shot "
        "starts and the smoothing restarts.",
    ),
    codec: str = shared.CODEC,
    crf: int = shared.CRF,
) -> None:
    """Enhance IMAGES (photos or videos) with a learned image-adaptive LUT, keeping bit depth and metadata.

    Works offline with the shipped model (AdaInt, Apache-2.0, trained on MIT-Adobe FiveK). Videos keep
    their audio, subtitles, time stamps, rotation and colour tags.
    """
    from lutgen.tasks.enhance import enhance as run_enhance

    result = run_image_task(run_enhance, images, model, output_path, output_dir, export_cube, quality, device, jobs,
                            temporal_smoothing, scene_cut, codec, crf)
    for target, luts in result.exported.items():
        typer.echo(
            f"{target}: wrote {luts.shaper_cube} (exact) and {luts.plain_cube} "
            f"(PSNR {luts.plain_psnr:.1f} dB against the exact LUT on this photo)"
        )
    for target, (video, shots) in result.videos.items():
        alpha = ", alpha kept" if video.alpha else ""
        typer.echo(f"{target}: {video.frames} frames in {video.codec} ({video.pixel_format}{alpha}), "
                   f"{shots} shot{'s' if shots != 1 else ''}")
    report_images(result.written, result.failed, output_dir, videos=len(result.videos))
