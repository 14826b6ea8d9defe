"""Is a file a video? Decided by the container's first bytes, without importing PyAV.

Recognised containers: ISO base media / QuickTime (``.mp4``, ``.m4v``, ``.mov``), Matroska and WebM,
AVI, MPEG transport streams (``.ts``, ``.mts``, ``.m2ts``) and MXF. ISO files whose brand says they
are a still image (HEIC, AVIF) or audio only (``M4A``) are not videos. A file that passes may still
turn out to hold no video stream; the reader says so in one sentence.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mts", ".m2ts", ".ts", ".mxf")
"""File name endings (any case) that folders are searched for; a file given by name is judged by content."""

_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_NOT_VIDEO_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis",
                     b"M4A ", b"M4B ", b"M4P ", b"crx ")
_TS_PACKET = 188
_HEAD = 2 * _TS_PACKET + 8


def is_video_header(head: bytes) -> bool:
    """Whether the first bytes of a file start a video container (see the module's list)."""
    if head[4:8] in _ISO_BOXES:
        return not (head[4:8] == b"ftyp" and head[8:12] in _NOT_VIDEO_BRANDS)
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, WebM
        return True
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return True
    if head.startswith(b"\x06\x0e\x2b\x34"):  # SMPTE universal label: MXF
        return True
    return any(len(head) > start + 2 * _TS_PACKET and all(head[start + k * _TS_PACKET] == 0x47 for k in range(3))
               for start in (0, 4))  # MPEG-TS, and M2TS with its 4-byte time code before each packet


def is_video(path: str | Path) -> bool:
    """Whether ``path`` is a regular file whose content starts like a video container (reads 384 bytes).

    Anything else (a folder, a FIFO, a device, a missing or unreadable file) is not, and is never opened.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as stream:
            return is_video_header(stream.read(_HEAD))
    except OSError:
        return False


def has_video_name(path: str | Path) -> bool:
    """Whether the name of ``path`` ends with one of :data:`VIDEO_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS
