"""Finding the images to work on among the files and folders given on the command line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lutgen.errors import ImageError
from lutgen.fileio import check_regular_file
from lutgen.imaging.common import IMAGE_EXTENSIONS
from lutgen.video.probe import VIDEO_EXTENSIONS, has_video_name, is_video


def find_images(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand files and folders into the list of images to work on.

    A folder contributes its image files, sorted by name: regular files (or links to them) with
    one of :data:`IMAGE_EXTENSIONS` (any case), not hidden; sub-folders, FIFOs, devices, dangling
    links and link loops in it are passed over without being opened. A path given directly must
    be a regular file with an image extension. The order of ``paths`` is kept and duplicates are
    dropped. Raises :class:`ImageError` naming the path and the reason for a path that does not
    exist or is not a regular file, a file that is not an image, a folder without images, or
    when nothing is given.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    seen: set[Path] = set()
    for given in paths:
        for image in _images_at(Path(given)):
            key = image.resolve()
            if key not in seen:
                seen.add(key)
                found.append(image)
    if not found:
        raise ImageError("no images were given")
    return found


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _images_at(path: Path) -> list[Path]:
    """The images ``path`` stands for: itself, or the image files of the folder it names."""
    if path.is_dir():
        try:
            images = sorted(
                child
                for child in path.iterdir()
                if not child.name.startswith(".") and _is_image_name(child) and child.is_file()
            )
        except OSError as error:
            raise ImageError(f"cannot read the folder {path}: {error.strerror or error}") from None
        if not images:
            raise ImageError(f"the folder {path} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        return images
    check_regular_file(path, "image", ImageError)
    if not _is_image_name(path):
        raise ImageError(f"{path} is not an image lutgen reads; use {', '.join(IMAGE_EXTENSIONS)}")
    return [path]




def find_media(paths: str | Path | Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """Expand files and folders into the images and the videos to work on: ``(images, videos)``.

    As :func:`find_images`, but a folder also contributes its video files (one of
    :data:`~lutgen.video.probe.VIDEO_EXTENSIONS`, any case), and a file given directly is a video when
    its content says so (:func:`~lutgen.video.probe.is_video`: the container's first bytes, whatever its
    name), an image when its name says so. Each list keeps the order given, without duplicates. Raises
    :class:`ImageError` as :func:`find_images` does, when neither images nor videos are found.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    images: list[Path] = []
    videos: list[Path] = []
    seen: set[Path] = set()
    for given in paths:
        for path in _media_at(Path(given)):
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                (images if _is_image_name(path) else videos).append(path)
    if not images and not videos:
        raise ImageError("no images or videos were given")
    return images, videos


def _media_at(path: Path) -> list[Path]:
    """The images and videos ``path`` stands for: itself, or the image and video files of its folder."""
    if path.is_dir():
        try:
            found = sorted(
                child
                for child in path.iterdir()
                if not child.name.startswith(".") and (_is_image_name(child) or has_video_name(child))
                and child.is_file()
            )
        except OSError as error:
            raise ImageError(f"cannot read the folder {path}: {error.strerror or error}") from None
        if not found:
            kinds = ", ".join((*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS))
            raise ImageError(f"the folder {path} has no images or videos ({kinds})")
        return found
    check_regular_file(path, "image or video", ImageError)
    if _is_image_name(path) or is_video(path):
        return [path]
    raise ImageError(f"{path} is neither an image lutgen reads ({', '.join(IMAGE_EXTENSIONS)}) nor a video")
