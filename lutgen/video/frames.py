"""The frame loop: decode -> grade -> encode, other streams remuxed, the output written atomically.

:func:`grade_video` is shared by ``infer`` (one LUT for every frame) and ``enhance`` (a LUT per frame):
the caller gives the function that grades one RGB frame.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from lutgen.errors import ImageError, LutgenError
from lutgen.fileio import atomic_path
from lutgen.video.codecs import Family, check_available, family_for_input
from lutgen.video.reading import RgbDecoder, VideoSource, open_video, read_error
from lutgen.video.writing import VideoSink, container_format

FrameGrader = Callable[[np.ndarray], np.ndarray]
"""Grades one ``(H, W, 3)`` RGB frame (uint8 for 8-bit sources, uint16 for deeper ones), same shape and dtype."""


@dataclass
class VideoResult:
    """What grading one video wrote."""

    target: Path
    frames: int
    codec: str  # the encoder, such as libx264
    pixel_format: str  # of the output, such as yuv420p10le
    source_depth: int  # bits per component of the source, graded as uint8 (8) or uint16 (more)
    copied_streams: int  # audio, subtitle and data streams copied unchanged


def frame_bar(total: int | None, label: str = ""):
    """A tqdm bar counting frames, with frames per second and (when ``total`` is known) time left."""
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc=label or None, leave=False, dynamic_ncols=True)


def grade_video(source_path: Path, target: Path, grade: FrameGrader, *, family: Family | None = None,
                quality: int | None = None, progress: Callable | None = None) -> VideoResult:
    """Write ``target``: every frame of the video at ``source_path`` through ``grade``, the rest copied.

    ``family`` ``None`` keeps the source's codec family (:func:`~lutgen.video.codecs.family_for_input`);
    ``quality`` is its CRF (the family's default when ``None``). ``progress(total)`` makes a bar with
    ``update(n)`` and ``close()`` (``total``: the announced frame count, or ``None``).
    The file is written under a temporary name beside ``target`` and renamed when complete, so an error,
    Ctrl-C or SIGTERM leaves nothing under ``target``. Raises :class:`~lutgen.errors.ImageError` for an
    unreadable source and :class:`~lutgen.errors.OptionError` for a codec or container that cannot be used.
    """
    container_format(target)
    source = open_video(source_path)
    bar = None
    try:
        family = family or family_for_input(source.stream.codec_context.name)
        check_available(family)
        with atomic_path(target) as temporary:
            sink = VideoSink(temporary, target, source, family, quality)
            try:
                bar = progress(source.frame_count) if progress is not None else None
                frames = _run(source, sink, grade, bar)
            finally:
                sink.close()
        return VideoResult(target, frames, family.encoder, sink.pixel_format, source.depth, len(sink.copies))
    finally:
        if bar is not None:
            bar.close()
        source.close()


@contextlib.contextmanager
def _demuxer_errors():
    """Collect FFmpeg's error messages meanwhile (a file that ends early is only logged, not raised)."""
    import av.logging

    level, skip = av.logging.get_level(), av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.ERROR)
    av.logging.set_skip_repeated(False)
    try:
        with av.logging.Capture() as logs:
            yield logs
    finally:
        av.logging.set_level(level)
        av.logging.set_skip_repeated(skip)


def _run(source: VideoSource, sink: VideoSink, grade: FrameGrader, bar) -> int:
    """Demux the source once: video frames graded and encoded, other packets copied; the frame count."""
    to_rgb = RgbDecoder(source.rgb_format)
    streams = [source.stream, *source.others()]
    frames = 0
    with _demuxer_errors() as logs:
        try:
            for packet in source.container.demux(streams):
                if packet.stream.index != source.stream.index:
                    sink.copy(packet)
                    continue
                for frame in packet.decode():
                    sink.write(grade(to_rgb(frame)), frame)
                    frames += 1
                    if bar is not None:
                        bar.update(1)
        except av.FFmpegError as error:
            raise read_error(source.path, error) from None
    ended_early = [message.strip() for _, _, message in logs if "prematurely" in message or "truncat" in message]
    if ended_early:
        raise ImageError(f"cannot read {source.path}: the video is truncated ({ended_early[0]})")
    if frames == 0:
        raise LutgenError(f"cannot read {source.path}: its video stream has no frames that can be decoded")
    return frames
