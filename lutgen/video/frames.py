"""The frame loop: decode -> grade -> encode, other streams remuxed, the output written atomically.

:func:`grade_video` is shared by ``infer`` (one LUT for every frame) and ``enhance`` (a LUT per frame):
the caller gives the function that grades one RGB frame.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from lutgen import interrupts
from lutgen.errors import ImageError, LutgenError
from lutgen.fileio import atomic_path
from lutgen.video.codecs import Family, check_available, family_for_input
from lutgen.video.reading import RgbDecoder, VideoSource, open_video, read_error
from lutgen.video.targets import container_format
from lutgen.video.writing import VideoSink

FrameGrader = Callable[[np.ndarray], np.ndarray]
"""Grades one ``(H, W, 3)`` RGB frame (uint8 for 8-bit sources, uint16 for deeper ones), same shape and dtype.
A source's alpha channel never reaches it: it is carried past the grading unchanged."""


@dataclass
class VideoResult:
    """What grading one video wrote."""

    target: Path
    frames: int
    codec: str  # the encoder, such as libx264
    pixel_format: str  # of the output, such as yuv420p10le
    source_depth: int  # bits per component of the source, graded as uint8 (8) or uint16 (more)
    copied_streams: int  # audio, subtitle and data streams copied unchanged
    alpha: bool = False  # the source's alpha channel was written (False also when the source had none)


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
            except BaseException:
                sink.close(flush=False)
                raise
            sink.close()
        return VideoResult(target, frames, family.encoder, sink.pixel_format, source.depth, len(sink.copies),
                           sink.keeps_alpha)
    finally:
        if bar is not None:
            bar.close()
        source.close()


@contextlib.contextmanager
def _demuxer_errors():
    """Collect FFmpeg's error messages of every thread meanwhile, instead of printing them (a file that
    ends early is only logged, not raised)."""
    import av.logging

    level, skip = av.logging.get_level(), av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.ERROR)
    av.logging.set_skip_repeated(False)
    try:
        with av.logging.Capture(local=False) as logs:
            yield logs
    finally:
        av.logging.set_level(level)
        av.logging.set_skip_repeated(skip)


_END = object()
_WAIT = 0.1  # seconds between checks of the other threads while a queue is full or empty
_DEPTH = 3  # frames waiting between two steps (decoded, graded): enough to keep every step busy


class _Step(threading.Thread):
    """One step of the loop in its own thread; what it raises is kept for the main thread to raise."""

    def __init__(self, name: str, work: Callable[[], None]):
        super().__init__(name=name, daemon=True)
        self.work = work
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as error:  # handed to the main thread
            self.error = error


def _give(items: queue.Queue, item, stop: threading.Event, consumer: threading.Thread | None = None) -> bool:
    """Put ``item`` once there is room; ``False`` if ``stop`` is set (or ``consumer`` ended) meanwhile."""
    while not stop.is_set() and (consumer is None or consumer.is_alive()):
        try:
            with interrupts.held():  # see _take
                items.put(item, timeout=_WAIT)
            return True
        except queue.Full:
            continue
    return False


def _take(items: queue.Queue, stop: threading.Event, producer: threading.Thread):
    """The next item, or :data:`_END` once ``producer`` has ended and left nothing (or ``stop`` is set)."""
    while not stop.is_set():
        try:
            # Ctrl-C raised inside the queue's waiting could leave its lock held and the other step blocked
            # on it for good; held, it is raised once the queue is let go (at most _WAIT later).
            with interrupts.held():
                return items.get(timeout=_WAIT)
        except queue.Empty:
            if not producer.is_alive() and items.empty():
                return _END
    return _END


def _run(source: VideoSource, sink: VideoSink, grade: FrameGrader, bar) -> int:
    """Demux the source once: video frames graded and encoded, other packets copied; the frame count.

    Three steps overlap, joined by short queues: a thread demuxes, decodes and converts to RGB; the
    calling thread grades (the kernel uses every core); a thread converts back, encodes and muxes, the
    copied packets in their demuxed order. An error or interruption in any step stops all three.
    """
    decoded: queue.Queue = queue.Queue(maxsize=_DEPTH)
    graded: queue.Queue = queue.Queue(maxsize=_DEPTH)
    stop = threading.Event()
    reader = _Step("lutgen-decode", lambda: _read(source, decoded, stop))
    writer = _Step("lutgen-encode", lambda: _write(sink, graded, stop))
    frames = 0
    reader.start()
    writer.start()
    try:
        while (item := _take(decoded, stop, reader)) is not _END:
            if item[0] == "frame":
                item = ("frame", _grade_colour(grade, item[2]), item[1])
                frames += 1
                if bar is not None:
                    bar.update(1)
            if not _give(graded, item, stop, writer):
                break
        for step in (reader, writer):
            if step is writer and step.error is None:
                _give(graded, _END, stop, writer)
                writer.join()
            if step.error is not None:
                raise step.error
    finally:
        with interrupts.held():
            stop.set()
            reader.join()
            writer.join()
    if frames == 0:
        raise LutgenError(f"cannot read {source.path}: its video stream has no frames that can be decoded")
    return frames


def _grade_colour(grade: FrameGrader, pixels: np.ndarray) -> np.ndarray:
    """``pixels`` ``(H, W, 3)`` graded, or ``(H, W, 4)`` with the colour graded and the alpha kept as it is."""
    if pixels.shape[-1] == 3:
        return grade(pixels)
    graded = np.empty_like(pixels)
    graded[..., :3] = grade(pixels[..., :3])
    graded[..., 3] = pixels[..., 3]
    return graded


def _read(source: VideoSource, decoded: queue.Queue, stop: threading.Event) -> None:
    """Demux ``source``: ``("frame", frame, rgb)`` for each video frame, ``("copy", packet)`` for the others."""
    try:
        _demux(source, decoded, stop)
    finally:
        _give(decoded, _END, stop)


def _demux(source: VideoSource, decoded: queue.Queue, stop: threading.Event) -> None:
    to_rgb = RgbDecoder(source.rgb_format)
    streams = [source.stream, *source.others()]
    with _demuxer_errors() as logs:
        try:
            for packet in source.container.demux(streams):
                if packet.stream.index != source.stream.index:
                    items = [("copy", packet)]
                else:
                    items = [("frame", frame, to_rgb(frame)) for frame in packet.decode()]
                for item in items:
                    if not _give(decoded, item, stop):
                        return
        except av.FFmpegError as error:
            raise read_error(source.path, error) from None
    ended_early = [message.strip() for _, _, message in logs if "prematurely" in message or "truncat" in message]
    if ended_early:
        raise ImageError(f"cannot read {source.path}: the video is truncated ({ended_early[0]})")


def _write(sink: VideoSink, graded: queue.Queue, stop: threading.Event) -> None:
    """Encode graded frames and mux copied packets in the order they come, until :data:`_END`."""
    while not stop.is_set():
        try:
            item = graded.get(timeout=_WAIT)
        except queue.Empty:
            continue
        if item is _END:
            return
        if item[0] == "copy":
            sink.copy(item[1])
        else:
            sink.write(item[1], item[2])
