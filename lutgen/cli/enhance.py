"""``lutgen enhance``: let a learned model (AdaInt) grade each photo, or each frame of a video, with its own LUT."""

from __future__ import annotations

from pathlib import Path

import typer

from lutgen.cli import app, report_error, report_images, run_image_task
from lutgen.errors import LutgenError, OptionError, interrupt_exit_code


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
    temporal_smoothing: float = typer.Option(
        0.9, help="Video: weight of the earlier frames' LUT in each frame's LUT (an exponential moving average; "
        "0 = every frame its own LUT, 0.9 = about ten frames), restarted at scene cuts.",
    ),
    scene_cut: float = typer.Option(
        0.35, help="Video: colour-histogram distance (0-1) between consecutive frames above which a new shot "
        "starts and the smoothing restarts.",
    ),
    codec: str = typer.Option(
        None, help="Video: h264, hevc, vp9, prores or ffv1 (lossless RGB) [default: the input's own family, "
        "H.264 for others].",
    ),
    crf: int = typer.Option(
        None, help="Video: constant-quality factor of h264/hevc/vp9, lower is better [default: 18 for h264, "
        "20 for hevc, 31 for vp9].",
    ),
) -> None:
    """Enhance IMAGES (photos or videos) with a learned image-adaptive LUT, keeping bit depth and metadata.

    Works offline with the shipped model (AdaInt, Apache-2.0, trained on MIT-Adobe FiveK). Videos keep
    their audio, subtitles, time stamps, rotation and colour tags.
    """
    from lutgen.imaging.finding import find_media
    from lutgen.tasks.enhance import enhance as run_enhance

    photos, videos = find_media(images)
    if not videos:
        result = run_image_task(run_enhance, images, model, output_path, output_dir, export_cube, quality, device)
        _report_cubes(result.exported)
        report_images(result.written, result.failed, output_dir)
        return
    written, failed = _enhance_videos(photos, videos, model, output_path, output_dir, export_cube, temporal_smoothing,
                                      scene_cut, codec, crf)
    if photos:
        result = run_image_task(run_enhance, photos, model, None, output_dir, export_cube, quality, device)
        _report_cubes(result.exported)
        written, failed = result.written + written, result.failed + failed
    report_images(written, failed, output_dir)


def _report_cubes(exported) -> None:
    for target, luts in exported.items():
        typer.echo(
            f"{target}: wrote {luts.shaper_cube} (exact) and {luts.plain_cube} "
            f"(PSNR {luts.plain_psnr:.1f} dB against the exact LUT on this photo)"
        )


def _enhance_videos(photos, videos, model, output_path, output_dir, export_cube, smoothing, scene_cut, codec, crf):
    """Enhance each video with a frame bar; unreadable ones are reported and skipped. ``(written, failed)``."""
    from lutgen.tasks.enhance_video import check_temporal_options, enhance_video
    from lutgen.video.targets import plan_video_targets
    from lutgen.video.codecs import check_video_options
    from lutgen.video.frames import frame_bar

    if export_cube:
        raise OptionError("--export-cube exports one photo's LUT; a video's LUT changes with every frame")
    check_temporal_options(smoothing, scene_cut)
    check_video_options(codec, crf)
    pairs = plan_video_targets(videos, photos, output_path, output_dir)
    written, failed = [], []
    for source, target in pairs:
        try:
            result, cuts = enhance_video(source, target, model=model, temporal_smoothing=smoothing,
                                         scene_cut=scene_cut, codec=codec, quality=crf,
                                         progress=lambda total, name=source.name: frame_bar(total, name))
        except OptionError:
            raise
        except KeyboardInterrupt as interruption:
            report_error(f"interrupted; nothing was written to {target}")
            raise typer.Exit(interrupt_exit_code(interruption)) from None
        except LutgenError as error:
            failed.append((source, str(error)))
            continue
        typer.echo(f"{target}: {result.frames} frames in {result.codec} ({result.pixel_format}), "
                   f"{cuts} shot{'s' if cuts != 1 else ''}")
        written.append(target)
    return written, failed
