"""Apply a LUT to every frame of a video: the work behind ``lutgen infer LUT VIDEO``.

Frames are graded by the same kernels as still images (:func:`lutgen.tasks.infer.make_applier`: the
compiled CPU kernel, or torch on a GPU), at the source's bit depth: 8-bit video as uint8 RGB, 10- and
12-bit video as uint16 RGB, written back at the same depth (see :mod:`lutgen.video.codecs`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lutgen.lut import LUT
from lutgen.video.codecs import check_video_options
from lutgen.video.frames import VideoResult, grade_video

__all__ = ["VideoResult", "infer_video"]


def infer_video(lut: LUT, source: Path, target: Path, *, interpolation: str = "trilinear", strength: float = 1.0,
                codec: str | None = None, quality: int | None = None, device: str = "cpu",
                progress: Callable | None = None) -> VideoResult:
    """Grade every frame of the video ``source`` with ``lut`` into ``target`` (written atomically).

    ``codec`` ``None`` keeps the source's codec family; ``quality`` is the CRF (``None``: the family's
    default). ``progress(total)`` makes a frame bar (see :func:`lutgen.video.frames.grade_video`).
    """
    from lutgen.tasks.infer import make_applier

    family = check_video_options(codec, quality)
    apply = make_applier(lut, interpolation, strength, device)
    return grade_video(Path(source), Path(target), apply, family=family, quality=quality, progress=progress)
