"""Apply a LUT file to images: the work behind ``lutgen infer``.

On the CPU the LUT is applied by lutgen's compiled kernel (:mod:`lutgen.color.cpu`), so this
path never imports torch. With ``device="cuda"``/``"mps"``/``"auto"`` the torch functions of
:mod:`lutgen.color.torch_ops` run on the chosen device instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lutgen.devices import check_device_name
from lutgen.errors import LutgenError, OptionError
from lutgen.fileio import ensure_not_input
from lutgen.formats import read_lut
from lutgen.imaging import ImageData, check_output_path, find_images, load_image, save_image
from lutgen.lut import INTERPOLATIONS, LUT
from lutgen.tasks.options import check_number, check_quality

DEFAULT_OUTPUT = Path("output.png")


@dataclass
class InferResult:
    """What ``infer`` did: the files written and the inputs that failed, with the reason."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def plan_outputs(
    inputs: Sequence[Path], output_path: Path | None, output_dir: Path | None
) -> list[tuple[Path, Path]]:
    """Pair each input image with its output file; refuse any pairing that would overwrite an input.

    One image writes to ``output_path`` (default ``output.png``) unless ``output_dir`` is given;
    several images need ``output_dir``, where each keeps its file name.
    """
    if output_path is not None and output_dir is not None:
        raise OptionError("give either --output-path or --output-dir, not both")
    if output_dir is None:
        if len(inputs) > 1:
            raise OptionError(f"{len(inputs)} images were given: use --output-dir to say where they go")
        pairs = [(inputs[0], output_path or DEFAULT_OUTPUT)]
    else:
        names = [p.name for p in inputs]
        if len(set(names)) != len(names):
            raise OptionError("two inputs share a file name, so they would overwrite each other in --output-dir")
        pairs = [(p, output_dir / p.name) for p in inputs]
    for _, out in pairs:
        check_output_path(out)
        ensure_not_input(out, inputs)
    return pairs


def check_options(strength: float, interpolation: str, quality: int, device: str) -> str:
    """Check the option values before any file is read; return the device name, lower-cased."""
    check_number("strength", strength, 0, 1)
    if interpolation not in INTERPOLATIONS:
        raise OptionError(f"--interpolation must be trilinear or tetrahedral, not {interpolation!r}")
    check_quality(quality)
    return check_device_name(device)


def make_applier(lut: LUT, interpolation: str, strength: float, device: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping an ``(H, W, 3)`` uint8/uint16 array to the graded array of the same dtype.

    ``cpu``, and ``auto`` on a machine without a GPU, use the compiled float64 kernel; a GPU runs the
    torch functions in float32.
    """
    if device == "auto":
        from lutgen.devices import has_accelerator

        device = "auto" if has_accelerator() else "cpu"
    if device == "cpu":
        from lutgen.color.cpu import apply_lut_array

        return lambda rgb: apply_lut_array(rgb, lut, interpolation, strength)

    import torch

    from lutgen.color import torch_ops
    from lutgen.devices import pick_device

    torch_device = pick_device(device)

    def apply_on_device(rgb: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            image = torch_ops.codes_to_image(rgb, torch_device)
            return torch_ops.image_to_codes(torch_ops.apply(image, lut, interpolation, strength), rgb.dtype)

    return apply_on_device


def infer(
    lut_path: Path,
    inputs: Sequence[Path],
    output_path: Path | None = None,
    output_dir: Path | None = None,
    strength: float = 1.0,
    interpolation: str = "trilinear",
    quality: int = 95,
    device: str = "cpu",
    progress: Callable[[Sequence], Sequence] = lambda items: items,
) -> InferResult:
    """Grade every image of ``inputs`` (files or folders) with the LUT at ``lut_path``.

    Images that cannot be read are reported in the result and skipped; the others are written
    atomically, so an interruption leaves every finished file complete and no partial one.
    """
    device = check_options(strength, interpolation, quality, device)
    lut = read_lut(lut_path)
    images = find_images(inputs)
    pairs = plan_outputs(images, output_path, output_dir)
    apply = make_applier(lut, interpolation, strength, device)
    result = InferResult()
    for source, target in progress(pairs):
        try:
            image: ImageData = load_image(source)
        except LutgenError as error:
            result.failed.append((source, str(error)))
            continue
        graded = replace(image, rgb=apply(image.rgb))
        save_image(graded, target, quality=quality)
        result.written.append(target)
    return result
