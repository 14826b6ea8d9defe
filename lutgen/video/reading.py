"""Opening a video with PyAV and decoding its frames to RGB arrays at the source's bit depth.

8-bit sources decode to ``rgb24`` (uint8); deeper ones (``yuv420p10le``, ProRes 4:2:2 and 4:4:4, 12-bit)
to ``rgb48le`` (uint16, the codes scaled to 0..65535), so nothing passes through 8 bits. Sources with an
alpha channel (ProRes 4444, FFV1, PNG or QuickTime Animation in MOV) decode to ``rgba``/``rgba64le``
instead, the alpha as the 4th channel. The YUV -> RGB conversion is libswscale's with the stream's own
matrix and range (BT.601 where the file says nothing), as ffmpeg's filters get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from lutgen.errors import ImageError
from lutgen.fileio import check_regular_file


@dataclass
class VideoSource:
    """An open input: its container, its (first) video stream and how its frames are decoded."""

    path: Path
    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    depth: int  # bits per component of the decoded pixel format
    chroma: str  # "420", "422" or "444"
    alpha: bool = False  # the decoded pixel format has an alpha channel

    @property
    def rgb_format(self) -> str:
        """``rgb24`` for 8-bit sources, ``rgb48le`` for deeper ones; ``rgba``/``rgba64le`` with alpha."""
        if self.alpha:
            return "rgba" if self.depth <= 8 else "rgba64le"
        return "rgb24" if self.depth <= 8 else "rgb48le"

    @property
    def frame_count(self) -> int | None:
        """The number of frames the container announces, else its duration times the frame rate (Matroska
        stores no count), ``None`` where neither is known; for progress bars only."""
        if self.stream.frames:
            return self.stream.frames
        rate = self.stream.average_rate or self.stream.guessed_rate
        if self.stream.duration and self.stream.time_base:
            seconds = float(self.stream.duration * self.stream.time_base)
        elif self.container.duration:
            seconds = self.container.duration / 1_000_000  # AV_TIME_BASE
        else:
            return None
        return max(1, round(seconds * float(rate))) if rate else None

    def others(self) -> list:
        """The streams copied unchanged: audio, subtitles and data (attachments are left out)."""
        return [s for s in self.container.streams if s.index != self.stream.index and s.type in
                ("audio", "subtitle", "data")]

    def close(self) -> None:
        self.container.close()


def read_error(path: Path, error: Exception) -> ImageError:
    """One sentence for a video PyAV cannot read (corrupt, truncated, not a video at all)."""
    reason = getattr(error, "strerror", None) or str(error)
    return ImageError(f"cannot read {path}: the video is corrupt, truncated or not a video ({reason})")


def open_video(path: str | Path) -> VideoSource:
    """Open ``path`` and pick its first video stream, decoding with as many threads as the codec allows.

    Raises :class:`ImageError` (one sentence) for a file that is missing or special, unreadable as a
    video, without a video stream, or in a codec this build cannot decode.
    """
    path = check_regular_file(path, "video", ImageError)
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise read_error(path, error) from None
    if not container.streams.video:
        container.close()
        raise ImageError(f"cannot read {path}: it has no video stream")
    stream = container.streams.video[0]
    context = stream.codec_context
    if context is None or context.format is None:
        container.close()
        raise ImageError(f"cannot read {path}: this build of PyAV cannot decode its video codec")
    context.thread_type = "AUTO"
    components = context.format.components
    depth = max(c.bits for c in components) if components else 8
    alpha = any(c.is_alpha for c in components)
    from lutgen.video.codecs import chroma_of

    return VideoSource(path, container, stream, depth, chroma_of(context.format.name), alpha)


class RgbDecoder:
    """Turns decoded frames into ``(H, W, 3)`` RGB (or ``(H, W, 4)`` RGBA) arrays of the source's depth
    (one reused scaler)."""

    def __init__(self, rgb_format: str):
        self.rgb_format = rgb_format
        self.reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        """``frame`` as uint8 (``rgb24``, ``rgba``) or uint16 (``rgb48le``, ``rgba64le``) pixels."""
        return self.reformatter.reformat(frame, format=self.rgb_format).to_ndarray()
