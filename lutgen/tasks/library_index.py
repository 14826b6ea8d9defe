"""The browsable page of a library: ``index.html`` and its thumbnails, a static page with no external asset.

For every finished look the page shows its name, prompt, seed, CLIP score before and after, a link to
its ``.cube``, and its thumbnails beside the ungraded ones: the first :data:`THUMBNAIL_PHOTOS` photos
of the image folder, at most :data:`THUMBNAIL_SIDE` pixels on the longer side, as small JPEG files in
``thumbnails/`` (``thumbnails/_before/I.jpg`` for the photos as they are, ``thumbnails/NAME/I.jpg``
for each look; a look's name never starts with ``_``). A look's thumbnails are graded with
:func:`~lutgen.color.cpu.apply_lut_array`, as ``lutgen infer`` applies the ``.cube``. No torch here.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

import numpy as np

from lutgen.fileio import atomic_write_bytes
from lutgen.imaging import ImageData, load_rgb_float, save_image

THUMBNAIL_PHOTOS = 3
THUMBNAIL_SIDE = 192
THUMBNAIL_QUALITY = 85
BEFORE_FOLDER = "_before"
INDEX_HTML = "index.html"

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; background: #1d1d1f; color: #eee; }
h1 { font-size: 1.3em; } .look { margin: 0 0 1.5em 0; padding: 0.8em; background: #2a2a2d; }
.look h2 { font-size: 1.05em; margin: 0 0 0.3em 0; } .prompt { color: #ccc; font-style: italic; }
.meta { color: #aaa; font-size: 0.85em; } .pairs { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0; } img { display: block; max-height: 192px; } figcaption { font-size: 0.75em; color: #aaa; }
a { color: #8cf; }
"""


def thumbnail_pixels(images: list[Path]) -> list[np.ndarray]:
    """The first :data:`THUMBNAIL_PHOTOS` photos, decoded small: ``(H, W, 3)`` uint8 each."""
    return [np.uint8(np.rint(load_rgb_float(path, max_side=THUMBNAIL_SIDE) * 255))
            for path in images[:THUMBNAIL_PHOTOS]]


def _write_thumbnails(folder: Path, pixels: list[np.ndarray]) -> list[Path]:
    paths = []
    for index, rgb in enumerate(pixels, start=1):
        path = folder / f"{index}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(ImageData(rgb=rgb), path, quality=THUMBNAIL_QUALITY)
        paths.append(path)
    return paths


def write_before_thumbnails(output_dir: Path, pixels: list[np.ndarray]) -> list[str]:
    """Write the ungraded thumbnails; their paths relative to ``output_dir``."""
    folder = Path(output_dir) / "thumbnails" / BEFORE_FOLDER
    return [path.relative_to(output_dir).as_posix() for path in _write_thumbnails(folder, pixels)]


def write_look_thumbnails(output_dir: Path, name: str, lut, pixels: list[np.ndarray]) -> list[str]:
    """Write the thumbnails graded by ``lut`` (a :class:`~lutgen.lut.LUT`); their paths relative to ``output_dir``."""
    from lutgen.color.cpu import apply_lut_array

    graded = [apply_lut_array(rgb, lut) for rgb in pixels]
    folder = Path(output_dir) / "thumbnails" / name
    return [path.relative_to(output_dir).as_posix() for path in _write_thumbnails(folder, graded)]


def _score(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _look_html(look: dict, before: list[str]) -> str:
    name, prompt = html.escape(look["name"]), html.escape(look["prompt"])
    cube = quote(look["file"])
    figures = []
    for index, after in enumerate(look.get("thumbnails", [])):
        original = before[index] if index < len(before) else None
        pair = "" if original is None else (
            f'<figure><img src="{quote(original)}" alt="before"><figcaption>before</figcaption></figure>')
        pair += f'<figure><img src="{quote(after)}" alt="{name}"><figcaption>after</figcaption></figure>'
        figures.append(f'<div class="pairs">{pair}</div>')
    stopped = f' <span class="meta">({html.escape(look["stopped"])})</span>' if look.get("stopped") else ""
    return (
        f'<section class="look" id="{name}"><h2><a href="{cube}">{name}.cube</a>{stopped}</h2>'
        f'<div class="prompt">{prompt}</div>'
        f'<div class="meta">seed {look["seed"]} &middot; {look["steps_done"]} steps &middot; LUT {look["lut_size"]}^3 '
        f'&middot; CLIP score {_score(look.get("score_before"))} &rarr; {_score(look.get("score_after"))}</div>'
        f'<div class="pairs">{"".join(figures)}</div></section>'
    )


def index_html(data: dict, before: list[str]) -> str:
    """The page for ``library.json``'s ``data`` (see :mod:`lutgen.tasks.library_records`)."""
    looks = "\n".join(_look_html(look, before) for look in data["looks"])
    pending = data.get("pending", [])
    waiting = (f'<p class="meta">{len(pending)} look(s) not finished yet: '
               f'{html.escape(", ".join(pending))}</p>') if pending else ""
    title = f"LUT library: {len(data['looks'])} looks"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>"
        f'<p class="meta">made by lutgen {html.escape(str(data["lutgen"]))} from '
        f'{html.escape(data["prompts_file"])}, seed {data["seed"]}</p>{waiting}\n{looks}\n</body></html>\n'
    )


def write_index(output_dir: Path, data: dict, before: list[str]) -> Path:
    """Write ``index.html`` atomically."""
    path = Path(output_dir) / INDEX_HTML
    atomic_write_bytes(path, index_html(data, before).encode("utf-8"))
    return path
