"""Paired photos for training and evaluation: an input folder and a target folder matched by file name.

Files are matched by name without the extension (``a1234.jpg`` in the input folder with ``a1234.png``
or ``a1234.jpg`` in the target folder), since retouched targets are often saved in another format.
Every problem is one sentence, found before any work starts: a target folder that is the input folder
(an :class:`~lutgen.errors.OptionError`); and as :class:`~lutgen.errors.ImageError`, a missing or
empty folder, two files with one name in a folder, an input without a target or a target without an input, a file that is not an image, an image larger than
:data:`lutgen.imaging.MAX_PIXELS`, and a pair whose pictures differ in size (read from the file
headers, with the EXIF orientation applied). With ``aspect_tolerance`` (``lutgen fit``), a pair of
different sizes is kept when its aspect ratios agree within that fraction, and refused otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lutgen.errors import ImageError, LutgenError, OptionError
from lutgen.imaging import IMAGE_EXTENSIONS, find_images, image_size

_SHOWN = 3  # names quoted in an error message


@dataclass(frozen=True)
class ImagePair:
    """An input photo, its target (the same scene, graded), and their upright sizes ``(width, height)``.

    ``target_size`` is ``size`` unless :func:`pair_images` was given an ``aspect_tolerance``.
    """

    name: str
    input: Path
    target: Path
    size: tuple[int, int]
    target_size: tuple[int, int] | None = None


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


def _check_sizes(pair: ImagePair, aspect_tolerance: float | None) -> None:
    """Refuse a pair of different sizes, or (with ``aspect_tolerance``) of different aspect ratios, by name."""
    (width, height), (target_width, target_height) = pair.size, pair.target_size
    if pair.size == pair.target_size:
        return
    if aspect_tolerance is None:
        raise ImageError(f"{pair.input} is {width}x{height} but its target {pair.target} is "
                         f"{target_width}x{target_height}; a pair must show the same pixels")
    ratio = (width / height) / (target_width / target_height)
    if abs(ratio - 1) > aspect_tolerance:
        raise ImageError(f"{pair.input} is {width}x{height} but its target {pair.target} is "
                         f"{target_width}x{target_height}, another shape (aspect ratios differ by "
                         f"{abs(ratio - 1):.1%}, more than {aspect_tolerance:.0%}); a pair must show the same scene")


def _check_distinct_folders(input_dir: Path, target_dir: Path, options: tuple[str, str]) -> None:
    """Refuse a target folder that is the input folder: every photo would be its own target."""
    try:
        same = Path(input_dir).samefile(target_dir)
    except OSError:  # a folder that does not exist is reported by the pairing, by name
        return
    if same:
        raise OptionError(f"{options[1]} {target_dir} is the {options[0]} folder; the targets must be other photos "
                          "(the same scenes, graded)")


def pair_images(input_dir: Path, target_dir: Path, aspect_tolerance: float | None = None,
                options: tuple[str, str] = ("--input-dir", "--target-dir")) -> list[ImagePair]:
    """All pairs of ``input_dir`` and ``target_dir``, sorted by name; see the module docstring for errors.

    ``options`` name the two folders in messages, as the command's options give them.

    Pairs of different sizes are refused unless ``aspect_tolerance`` is given: then a pair is kept
    when the aspect ratios (width / height) agree within that fraction, with both sizes recorded.
    """
    _check_distinct_folders(input_dir, target_dir, options)
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
        pair = ImagePair(name, inputs[name], targets[name], image_size(inputs[name]), image_size(targets[name]))
        _check_sizes(pair, aspect_tolerance)
        pairs.append(pair)
    return pairs
