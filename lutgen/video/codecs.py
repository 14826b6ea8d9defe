"""Output codecs for graded video: the families ``--codec`` names, their encoders, quality and pixel formats.

By default a video is written in the family of its own codec (H.264 in, H.264 out; ProRes in,
ProRes out), and in H.264 when its codec is none of :data:`FAMILIES`. The depth of the source is kept:
an 8-bit source is written in 8 bits, a 10-bit source in 10 bits (never fewer bits than the source).

``ffv1`` is the lossless choice: it stores the graded RGB frames themselves (``bgr0`` for 8-bit sources,
``gbrpNle`` for deeper ones), so there is no RGB -> YUV conversion after grading and a decoded frame
equals the graded one exactly. The only colour conversion left is the decoding of a YUV source to RGB,
the same conversion ffmpeg's ``lut3d`` filter is fed with.
"""

from __future__ import annotations

from dataclasses import dataclass

from lutgen.errors import OptionError


@dataclass(frozen=True)
class Family:
    """One ``--codec`` choice: the encoder, the input codecs that default to it, its quality scale."""

    name: str
    encoder: str
    label: str
    crf: tuple[int, int, int] | None = None  # (default, best, worst); None: no quality setting

    def options(self, quality: int | None, chroma: str, alpha: bool = False) -> dict[str, str]:
        """The encoder options for ``quality`` (the family's default when ``None``), the chroma layout and
        whether an alpha channel is written."""
        if self.name == "prores":
            return {"profile": "4444" if chroma == "444" or alpha else "hq"}
        if self.crf is None:
            return {}
        options = {"crf": str(self.crf[0] if quality is None else quality)}
        if self.name == "vp9":
            options["b"] = "0"  # constant quality, no bit-rate cap
        if self.name == "hevc":
            options["x265-params"] = "log-level=error"
        return options


FAMILIES = {
    "h264": Family("h264", "libx264", "H.264 (libx264)", (18, 0, 51)),
    "hevc": Family("hevc", "libx265", "HEVC (libx265)", (20, 0, 51)),
    "vp9": Family("vp9", "libvpx-vp9", "VP9 (libvpx-vp9)", (31, 0, 63)),
    "prores": Family("prores", "prores_ks", "ProRes 422 HQ / 4444 (prores_ks)"),
    "ffv1": Family("ffv1", "ffv1", "FFV1, lossless RGB"),
}
"""The ``--codec`` names. CRF defaults: x264 18 and x265 20 (visually lossless for most footage), VP9 31."""

_ALIASES = {"libx264": "h264", "x264": "h264", "avc": "h264", "h265": "hevc", "libx265": "hevc", "x265": "hevc",
            "libvpx-vp9": "vp9", "prores_ks": "prores"}
DEFAULT_FAMILY = "h264"


def family_named(name: str) -> Family:
    """The family of a ``--codec`` value (any case, encoder names accepted); :class:`OptionError` otherwise."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in FAMILIES:
        raise OptionError(f"--codec must be one of {', '.join(FAMILIES)}, not {name!r}")
    return FAMILIES[key]


def family_for_input(codec_name: str) -> Family:
    """The family a video in ``codec_name`` (a decoder name such as ``h264``) is written in by default."""
    return FAMILIES.get(_ALIASES.get(codec_name, codec_name), FAMILIES[DEFAULT_FAMILY])


def check_available(family: Family, available=None) -> None:
    """Raise an :class:`OptionError` when this build of PyAV lacks the family's encoder.

    ``available`` is the set of codec names of the build (PyAV's ``av.codecs_available`` when ``None``).
    """
    if available is None:
        import av

        available = av.codecs_available
    if family.encoder not in available:
        others = [f.name for f in FAMILIES.values() if f.encoder in available]
        raise OptionError(f"this build of PyAV has no {family.encoder} encoder for --codec {family.name}; "
                          f"choose one of {', '.join(others)}")


def check_quality(family: Family | None, quality: int | None) -> None:
    """Raise an :class:`OptionError` for a ``--crf`` outside the family's scale or given to one without one.

    With ``family`` ``None`` (the family follows each input), ``quality`` must suit H.264 and HEVC (0-51).
    """
    if quality is None:
        return
    if family is not None and family.crf is None:
        with_crf = ", ".join(f.name for f in FAMILIES.values() if f.crf)
        raise OptionError(f"--crf applies to {with_crf} only; {family.name} has no quality setting")
    best, worst = (family.crf[1:] if family is not None else (0, 51))
    if not isinstance(quality, int) or not best <= quality <= worst:
        raise OptionError(f"--crf must be a whole number between {best} and {worst}, not {quality}")


def check_video_options(codec: str | None, quality: int | None, available=None) -> Family | None:
    """Check ``--codec`` and ``--crf`` before any file is read; the chosen family (``None``: per input)."""
    family = None if codec is None else family_named(codec)
    if family is not None:
        check_available(family, available)
    check_quality(family, quality)
    return family


def chroma_of(pixel_format: str) -> str:
    """``"444"``, ``"422"`` or ``"420"``: the chroma layout of a pixel format (RGB formats count as 4:4:4)."""
    name = pixel_format.lower()
    if "444" in name or name.startswith(("gbr", "rgb", "bgr")):
        return "444"
    if "422" in name:
        return "422"
    return "420"


ALPHA_FAMILIES = ("prores", "ffv1")
"""The families that keep a source's alpha channel (ProRes 4444, FFV1 RGBA); the others drop it."""


def output_format(family: Family, depth: int, chroma: str, supported: set[str], alpha: bool = False,
                  source_codec: str = "") -> str:
    """The pixel format a source of ``depth`` bits and ``chroma`` layout is written in by ``family``.

    ``supported`` holds the encoder's pixel formats. FFV1 stores RGB; ProRes is 10-bit 4:2:2 or 4:4:4;
    the others keep the source's chroma layout where they can, else 4:2:0, always at the source's depth.
    A ProRes source (``source_codec`` ``prores``) counts as 10-bit for ProRes output: FFmpeg decodes every
    ProRes 4444 at 12 bits, and ProRes in is written as ProRes out.
    With ``alpha``, the families of :data:`ALPHA_FAMILIES` keep it: FFV1 as ``bgra`` or ``gbrapNle``
    (the least N of 10, 12, 14, 16 that holds the depth), ProRes as 4:4:4:4 ``yuva444p10le``.
    Raises an :class:`OptionError` when the encoder cannot keep the depth.
    """
    if family.name == "prores" and source_codec == "prores":
        depth = min(depth, 10)
    if family.name == "ffv1":
        if alpha:
            return "bgra" if depth <= 8 else f"gbrap{min(b for b in (10, 12, 14, 16) if b >= min(depth, 16))}le"
        return "bgr0" if depth <= 8 else f"gbrp{min(max(depth, 9), 16)}le"
    if family.name == "prores":
        if depth > 10:
            raise OptionError(f"--codec prores writes 10 bits, fewer than this {depth}-bit video; choose ffv1")
        if alpha:
            return "yuva444p10le"
        return "yuv444p10le" if chroma == "444" else "yuv422p10le"
    suffix = "" if depth <= 8 else f"{depth}le"
    for layout in (chroma, "420"):
        candidate = f"yuv{layout}p{suffix}"
        if candidate in supported:
            return candidate
    keeps_depth = ["ffv1"] if depth > 10 else ["prores", "ffv1"]  # the families that always can
    raise OptionError(f"{family.encoder} in this build cannot write {depth}-bit video; choose --codec "
                      f"{' or '.join(keeps_depth)}")
