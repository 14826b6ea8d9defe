"""Before/after photo pairs for the training and evaluation tests, made from the bundled photos.

:func:`write_pairs` writes ``input/NAME.png`` and ``target/NAME.<suffix>`` for each photo: the photo
is shrunk to at most ``side`` pixels, and a test-chosen function turns it into the (input, target)
pair, both float ``(H, W, 3)`` in ``[0, 1]`` and saved as 8-bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

MakePair = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def bundled_photo(name: str, side: int) -> np.ndarray:
    """``images/NAME.jpg`` shrunk (Lanczos) to at most ``side`` pixels a side, float64 ``(H, W, 3)`` in [0, 1]."""
    with Image.open(ROOT / "images" / f"{name}.jpg") as im:
        im = im.convert("RGB")
        im.thumbnail((side, side), Image.LANCZOS)
        return np.asarray(im) / 255.0


def save_unit(values: np.ndarray, path: Path) -> None:
    """Save float values in [0, 1] as an 8-bit image (JPEG at quality 95)."""
    image = Image.fromarray(np.round(np.clip(values, 0, 1) * 255).astype(np.uint8))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=95)
    else:
        image.save(path)


def write_pairs(folder: Path, names: Iterable[str], side: int, make_pair: MakePair, target_suffix: str = ".png",
                seed: int = 0) -> tuple[Path, Path]:
    """Write the pairs ``make_pair(photo, rng)`` of the bundled photos ``names``; returns the two folders."""
    rng = np.random.default_rng(seed)
    inputs, targets = folder / "input", folder / "target"
    inputs.mkdir(parents=True)
    targets.mkdir()
    for name in names:
        before, after = make_pair(bundled_photo(name, side), rng)
        save_unit(before, inputs / f"{name}.png")
        save_unit(after, targets / f"{name}{target_suffix}")
    return inputs, targets
