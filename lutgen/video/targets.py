"""Where graded videos go: the container for an output name, and each input video's output file.

No PyAV here: commands plan their outputs, and refuse bad ones, before any video is opened.
"""

from __future__ import annotations

from pathlib import Path

from lutgen.errors import OptionError
from lutgen.fileio import ensure_not_input
from lutgen.video.probe import VIDEO_EXTENSIONS

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi",
              ".ts": "mpegts", ".mts": "mpegts", ".m2ts": "mpegts", ".mxf": "mxf"}
"""The muxer for each video extension (:data:`lutgen.video.probe.VIDEO_EXTENSIONS`)."""


def container_format(target: Path) -> str:
    """The muxer name for the output's extension; an :class:`OptionError` for one that is no video."""
    try:
        return CONTAINERS[target.suffix.lower()]
    except KeyError:
        raise OptionError(f"the output of a video must end in one of {', '.join(VIDEO_EXTENSIONS)}, not "
                          f"{target.name}") from None


def plan_video_targets(videos: list[Path], images: list[Path], output_path: Path | None,
                       output_dir: Path | None) -> list[tuple[Path, Path]]:
    """Pair each video with its output, as :func:`lutgen.tasks.media.plan_outputs` pairs images.

    One video alone writes to ``output_path`` (default ``output`` with the video's own extension); with
    ``output_dir`` every video keeps its name there. An output must be a video file and no input.
    """
    if output_path is not None and output_dir is not None:
        raise OptionError("give either --output-path or --output-dir, not both")
    if output_dir is None:
        if len(videos) + len(images) > 1:
            raise OptionError(f"{len(videos) + len(images)} files were given: use --output-dir to say where they go")
        pairs = [(videos[0], output_path or Path(f"output{videos[0].suffix.lower()}"))]
    else:
        names = [p.name for p in [*videos, *images]]
        if len(set(names)) != len(names):
            raise OptionError("two inputs share a file name, so they would overwrite each other in --output-dir")
        pairs = [(video, output_dir / video.name) for video in videos]
    for _, target in pairs:
        container_format(target)
        ensure_not_input(target, [*videos, *images])
    return pairs
