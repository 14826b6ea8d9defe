"""Paired photos for training and evaluation: an input folder and a target folder matched by file name.

Files are matched by name without the extension (``a1234.jpg`` in the input folder with ``a1234.png``
or ``a1234.jpg`` in the target folder), since retouched targets are often saved in another format.
Every problem is one sentence (:class:`~lutgen.errors.ImageError`), found before any work starts:
a missing or empty folder, two files with one name in a folder, an input without a target or a
target without an input, a file that is not an image, an image larger than
:data:`lutgen.imaging.MAX_PIXELS`, and a pair whose pictures differ in size (read from the file
headers, with the EXIF orientation applied).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lutgen.errors import ImageError, LutgenError
from lutgen.imaging import IMAGE_EXTENSIONS, find_images, image_size

_SHOWN = 3  # names quoted in an error message


@dataclass(frozen=True)
class ImagePair:
    """An input photo, its target (the same scene, graded), and the upright size ``(width, height)``."""

    name: str
    input: Path
    target: Path
    size: tuple[int, int]


def _by_stem(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise ImageError(f"the {role} folder {folder} does not exist" if not folder.exists()
                         else f"the {role} folder {folder} is not a folder")
    try:
        images = find_images(folder)
    except LutgenError:
        raise ImageError(f"the {role} folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)})") from None
    found: dict[str, Path] = {}
    for path in images:
        if path.stem in found:
            raise ImageError(f"the {role} folder has two images named {path.stem}: {found[path.stem].name} and "
                             f"{path.name}; keep one")
        found[path.stem] = path
    return found


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def pair_images(input_dir: Path, target_dir: Path) -> list[ImagePair]:
    """All pairs of ``input_dir`` and ``target_dir``, sorted by name; see the module docstring for errors."""
    inputs = _by_stem(Path(input_dir), "input")
    targets = _by_stem(Path(target_dir), "target")
    lonely_inputs = sorted(set(inputs) - set(targets))
    if lonely_inputs:
        raise ImageError(f"{len(lonely_inputs)} input image(s) have no target of the same name in {target_dir}: "
                         f"{_listing([inputs[n].name for n in lonely_inputs])}")
    lonely_targets = sorted(set(targets) - set(inputs))
    if lonely_targets:
        raise ImageError(f"{len(lonely_targets)} target image(s) have no input of the same name in {input_dir}: "
                         f"{_listing([targets[n].name for n in lonely_targets])}")
    pairs = []
    for name in sorted(inputs):
        size = image_size(inputs[name])
        target_size = image_size(targets[name])
        if size != target_size:
            raise ImageError(f"{inputs[name]} is {size[0]}x{size[1]} but its target {targets[name]} is "
                             f"{target_size[0]}x{target_size[1]}; a pair must show the same pixels")
        pairs.append(ImagePair(name, inputs[name], targets[name], size))
    return pairs
