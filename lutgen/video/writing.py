"""Writing a graded video: the encoder, the copied streams and the metadata kept from the source.

The video stream keeps the source's time base and every frame's time stamp (so variable frame rates
survive), its frame rate, sample aspect ratio, rotation (display matrix), colour description
(primaries, transfer, matrix, range) and alpha channel (in ProRes 4444 and FFV1; other codecs drop it
with a warning). Audio, subtitle and data streams are remuxed packet by packet,
unchanged. The container is chosen by the output's extension.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from lutgen.errors import LutgenError, LutgenWarning, OptionError
from lutgen.video.codecs import ALPHA_FAMILIES, Family, output_format
from lutgen.video.reading import VideoSource
from lutgen.video.targets import container_format

_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
"""libswscale's matrix (``SWS_CS_*``) for a stream's ``AVColorSpace``: BT.709, FCC, BT.601 (both), 240M, BT.2020."""
_RGB_SPACE = 0  # AVCOL_SPC_RGB
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG


def _kept_tags(metadata) -> dict[str, str]:
    """A stream's tags that describe its content (the muxer writes its own duration and statistics)."""
    return {key: value for key, value in metadata.items() if key.lower() in ("language", "title", "handler_name")}


class VideoSink:
    """An output container being written: :meth:`write` graded frames, :meth:`copy` other packets, :meth:`close`.

    ``path`` is where the file is written (a temporary name), ``target`` its final name (for messages
    and the container's type).
    """

    def __init__(self, path: Path, target: Path, source: VideoSource, family: Family, quality: int | None):
        self.target = target
        self.source = source
        self.container = av.open(str(path), "w", format=container_format(target))
        self.reformatter = VideoReformatter()
        try:
            self._add_video(family, quality)
            self.copies = {s.index: self._add_copy(s) for s in source.others()}
        except BaseException:
            self.container.close()
            raise
        self.container.metadata.update(source.container.metadata)
        self.started = False
        self.last_pts: int | None = None
        self.held: list[av.Packet] = []  # copied packets that arrive before the first frame (and header)

    def _add_video(self, family: Family, quality: int | None) -> None:
        src = self.source.stream
        codec = av.codec.Codec(family.encoder, "w")
        if not self._holds(family.encoder):
            raise OptionError(f"a {self.target.suffix} file cannot hold {family.label} video; choose another "
                              "--codec or write .mkv")
        supported = {f.name for f in codec.video_formats or ()}
        self.keeps_alpha = self.source.alpha and family.name in ALPHA_FAMILIES
        self.pixel_format = output_format(family, self.source.depth, self.source.chroma, supported, self.keeps_alpha,
                                          src.codec_context.name)
        if self.source.alpha and not self.keeps_alpha:
            warnings.warn(f"the alpha channel of {self.source.path} is not kept in {self.target}: {family.label} "
                          "cannot hold it (--codec prores or ffv1 keeps it)", LutgenWarning, stacklevel=2)
        rate = src.average_rate or src.guessed_rate or src.base_rate
        stream = self.container.add_stream(family.encoder, rate=rate)
        context = stream.codec_context
        context.width, context.height = src.codec_context.width, src.codec_context.height
        context.pix_fmt = self.pixel_format
        context.time_base = src.time_base
        stream.time_base = src.time_base
        context.thread_type = "AUTO"
        if src.sample_aspect_ratio:
            context.sample_aspect_ratio = src.sample_aspect_ratio
        self._set_colour(context, src.codec_context)
        stream.options = family.options(quality, self.source.chroma, self.keeps_alpha)
        stream.metadata.update(_kept_tags(src.metadata))
        stream.disposition = src.disposition
        self.family = family
        self.stream = stream

    def _holds(self, codec_name: str) -> bool:
        return codec_name in self.container.supported_codecs

    def _set_colour(self, context, src_context) -> None:
        """The source's colour description on the encoder; RGB output is tagged RGB, full range."""
        context.color_primaries = src_context.color_primaries
        context.color_trc = src_context.color_trc
        if self.is_rgb:
            context.colorspace, context.color_range = _RGB_SPACE, _FULL_RANGE
            self.tags = (context.color_primaries, context.color_trc, _RGB_SPACE, _FULL_RANGE)
            self.matrix, self.range = None, _FULL_RANGE
            return
        context.colorspace = src_context.colorspace
        context.color_range = src_context.color_range
        self.tags = (context.color_primaries, context.color_trc, context.colorspace, context.color_range)
        self.matrix = _SWS_MATRIX.get(int(src_context.colorspace))
        self.range = int(src_context.color_range) or _LIMITED_RANGE

    @property
    def is_rgb(self) -> bool:
        return self.pixel_format.startswith(("gbr", "bgr", "rgb"))

    def _add_copy(self, stream):
        """A stream of the output that takes ``stream``'s packets unchanged, with its language, title and flags."""
        try:
            copy = self.container.add_stream_from_template(stream)
            copy.metadata.update(_kept_tags(stream.metadata))
            copy.disposition = stream.disposition
            return copy
        except (ValueError, av.FFmpegError):
            raise OptionError(f"a {self.target.suffix} file cannot hold the {stream.type} stream "
                              f"#{stream.index} ({stream.codec_context.name if stream.codec_context else 'data'}) "
                              f"of {self.source.path}; write .mkv instead") from None

    def _start(self, frame: av.VideoFrame) -> None:
        """Set the rotation of the first frame (the header is written with it), then mux held packets."""
        rotation = frame.rotation
        if rotation:
            self.stream.set_display_rotation(rotation)
        self.started = True

    def frame_from_rgb(self, rgb: np.ndarray) -> av.VideoFrame:
        """The graded ``(H, W, 3)`` RGB (or ``(H, W, 4)`` RGBA) uint8/uint16 array as a frame in the output's
        pixel format; an alpha channel the output cannot hold is left out.

        Deep RGB(A) output (``gbrpNle``, ``gbrapNle``) is rounded from 16 bits here, to the nearest code;
        everything else goes through libswscale with the source's matrix and range.
        """
        if rgb.shape[-1] == 4 and not self.keeps_alpha:
            rgb = np.ascontiguousarray(rgb[..., :3])
        if self.pixel_format.startswith("gbr") and self.pixel_format.endswith("le"):
            bits = int(self.pixel_format.removeprefix("gbrap").removeprefix("gbrp")[:-2])
            codes = rgb if bits == 16 else ((rgb.astype(np.uint32) * ((1 << bits) - 1) + 32767) // 65535)
            return av.VideoFrame.from_ndarray(codes.astype(np.uint16), format=self.pixel_format)
        packed = {(3, True): "rgb24", (3, False): "rgb48le", (4, True): "rgba", (4, False): "rgba64le"}
        frame = av.VideoFrame.from_ndarray(rgb, format=packed[rgb.shape[-1], rgb.dtype == np.uint8])
        return self.reformatter.reformat(frame, format=self.pixel_format, dst_colorspace=self.matrix,
                                         dst_color_range=self.range)

    def write(self, rgb: np.ndarray, source_frame: av.VideoFrame) -> None:
        """Encode the graded ``rgb`` with the time stamp of ``source_frame``."""
        if not self.started:
            self._start(source_frame)
        frame = self.frame_from_rgb(rgb)
        frame.time_base = source_frame.time_base or self.source.stream.time_base
        frame.pts = self._pts(source_frame.pts, frame.time_base)
        frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range = self.tags
        self._mux(self.stream.encode(frame))
        if self.held:
            held, self.held = self.held, []
            self._mux(held)

    def _pts(self, pts: int | None, time_base) -> int:
        """The source frame's time stamp; one frame after the last where the source has none."""
        if pts is None:
            rate = self.stream.codec_context.framerate or self.stream.average_rate
            step = max(1, round(1 / (rate * time_base))) if rate else 1
            pts = 0 if self.last_pts is None else self.last_pts + step
        self.last_pts = pts
        return pts

    def copy(self, packet: av.Packet) -> None:
        """Remux a packet of an audio, subtitle or data stream unchanged."""
        if packet.dts is None and packet.size == 0:
            return  # the demuxer's end-of-stream marker
        packet.stream = self.copies[packet.stream.index]
        if self.started:
            self._mux([packet])
        else:
            self.held.append(packet)

    def _mux(self, packets) -> None:
        try:
            self.container.mux(packets)
        except av.FFmpegError as error:
            raise LutgenError(f"cannot write {self.target}: {getattr(error, 'strerror', None) or error}") from None

    def close(self, flush: bool = True) -> None:
        """Flush the encoder and finish the file (``flush=False``: just release it, the file is abandoned)."""
        try:
            if flush:
                self._mux(self.stream.encode(None))
                self._mux(self.held)
        finally:
            self.container.close()
