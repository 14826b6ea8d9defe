"""Photos and videos in one run: where each output goes, and the videos graded one after another.

``infer`` and ``enhance`` take any mix of image files, video files and folders of both. They plan
every output before any work (:func:`plan_media`), so a bad output name fails at once; the images then
go through :func:`lutgen.tasks.batch.run_batch` on every core, and the videos through
:func:`run_videos`, one at a time (each video already keeps every core busy: decoding, grading and
encoding overlap in threads). Nothing here imports PyAV unless a video is among the inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lutgen.errors import LutgenError, OptionError
from lutgen.fileio import ensure_not_input
from lutgen.imaging import check_output_path
from lutgen.imaging.finding import find_media
from lutgen.tasks.batch import BatchResult, Pair

DEFAULT_OUTPUT = Path("output.png")
"""Where one image goes without ``--output-path`` or ``--output-dir`` (one video goes to ``output.EXT``)."""

FrameProgress = Callable[[int | None, str], Any]
"""Makes a frame bar for one video: ``(frame count or None, label) -> bar`` with ``update(n)`` and ``close()``."""


@dataclass
class MediaResult(BatchResult):
    """A :class:`BatchResult` whose ``written`` and ``failed`` list images and videos (images first), and
    what each video's grading returned, by output file."""

    videos: dict[Path, Any] = field(default_factory=dict)


def plan_outputs(
    inputs: Sequence[Path], output_path: Path | None, output_dir: Path | None
) -> list[Pair]:
    """Pair each input image with its output file; refuse any pairing that would overwrite an input.

    One image writes to ``output_path`` (default :data:`DEFAULT_OUTPUT`) unless ``output_dir`` is given;
    several images need ``output_dir``, where each keeps its file name.
    """
    if output_path is not None and output_dir is not None:
        raise OptionError("give either --output-path or --output-dir, not both")
    if output_dir is None:
        if len(inputs) > 1:
            raise OptionError(f"{len(inputs)} images were given: use --output-dir to say where they go")
        pairs = [(inputs[0], output_path or DEFAULT_OUTPUT)]
    else:
        names = [p.name for p in inputs]
        if len(set(names)) != len(names):
            raise OptionError("two inputs share a file name, so they would overwrite each other in --output-dir")
        pairs = [(p, output_dir / p.name) for p in inputs]
    for _, out in pairs:
        check_output_path(out)
        ensure_not_input(out, inputs)
    return pairs


def plan_media(
    inputs: Sequence[Path], output_path: Path | None, output_dir: Path | None
) -> tuple[list[Pair], list[Pair]]:
    """The ``(image pairs, video pairs)`` of ``inputs`` (files and folders), every output checked.

    Without videos this is :func:`plan_outputs`. With them, one file alone may go to ``output_path``
    (a video's default is ``output`` with its own extension); several need ``output_dir``, where every
    file keeps its name, and no two inputs may share a name. Raises :class:`OptionError` (or
    :class:`~lutgen.errors.ImageError` when nothing is found) before any file is read.
    """
    images, videos = find_media(inputs)
    if not videos:
        return plan_outputs(images, output_path, output_dir), []
    from lutgen.video.targets import plan_video_targets

    video_pairs = plan_video_targets(videos, images, output_path, output_dir)
    image_pairs = plan_outputs(images, None, output_dir) if images else []
    return image_pairs, video_pairs


def run_videos(pairs: Sequence[Pair], grade_one: Callable[[Path, Path], Any], result: MediaResult) -> None:
    """Grade each video with ``grade_one(source, target)`` and record it in ``result``.

    A video that cannot be read (any :class:`LutgenError` but an :class:`OptionError`) is recorded in
    ``result.failed`` and the next one goes on; what ``grade_one`` returns is kept in ``result.videos``.
    Ctrl-C and SIGTERM propagate: the video in progress leaves nothing under its name (videos are
    written atomically), the ones before it are complete.
    """
    for source, target in pairs:
        try:
            outcome = grade_one(source, target)
        except OptionError:
            raise
        except LutgenError as error:
            result.failed.append((source, str(error)))
            continue
        result.written.append(target)
        result.videos[target] = outcome
