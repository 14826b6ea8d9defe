"""Finding the images to work on among the files and folders given on the command line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lutgen.errors import ImageError
from lutgen.fileio import check_regular_file
from lutgen.imaging.common import IMAGE_EXTENSIONS


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


