"""Apply a LUT file to images: the work behind ``lutgen infer``.

On the CPU the LUT is applied by lutgen's compiled kernel (:mod:`lutgen.color.cpu`), so this
path never imports torch. With ``device="cuda"``/``"mps"``/``"auto"`` the torch functions of
:mod:`lutgen.color.torch_ops` run on the chosen device instead.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from lutgen.devices import check_device_name
from lutgen.errors import LutgenError, OptionError
from lutgen.fileio import check_folder_writable
from lutgen.formats import read_lut
from lutgen.imaging import ImageData, load_image, save_image
from lutgen.imaging.memory import RGBXBuffers, batch_memory
from lutgen.lut import INTERPOLATIONS, LUT
from lutgen.tasks.batch import FileSkipped, check_jobs, run_batch
from lutgen.tasks.media import FrameProgress, MediaResult, plan_media, run_videos
from lutgen.tasks.options import check_number, check_quality
from lutgen.video.codecs import check_video_options

def check_options(strength: float, interpolation: str, quality: int, device: str) -> str:
    """Check the option values before any file is read; return the device name, lower-cased."""
    check_number("strength", strength, 0, 1)
    if interpolation not in INTERPOLATIONS:
        raise OptionError(f"--interpolation must be trilinear or tetrahedral, not {interpolation!r}")
    check_quality(quality)
    return check_device_name(device)


Applier = Callable[..., np.ndarray]
"""``apply(rgb, out=None)``: an ``(H, W, 3)`` uint8/uint16 array graded, written into ``out`` when given
(C-contiguous, ``(H, W, 3)`` or ``(H, W, 4)`` of which the first 3 channels are filled), and returned
as ``(H, W, 3)``."""


def make_applier(lut: LUT, interpolation: str, strength: float, device: str, parallel: bool = True) -> Applier:
    """The :data:`Applier` of ``lut`` with these settings.

    ``cpu``, and ``auto`` on a machine without a GPU, use the compiled float64 kernel, on every kernel
    thread, or in the calling thread alone when ``parallel`` is False (for callers that grade several
    images at once); a GPU runs the torch functions in float32.
    """
    device = _resolved_device(device)
    if device == "cpu":

        def apply_on_cpu(rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
            from lutgen.color.cpu import apply_lut_array

            return apply_lut_array(rgb, lut, interpolation, strength, parallel, out=out)

        return apply_on_cpu

    import torch

    from lutgen.color import torch_ops
    from lutgen.devices import pick_device

    torch_device = pick_device(device)

    def apply_on_device(rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        with torch.no_grad():
            image = torch_ops.codes_to_image(rgb, torch_device)
            graded = torch_ops.image_to_codes(torch_ops.apply(image, lut, interpolation, strength), rgb.dtype)
        if out is None:
            return graded
        out[..., :3] = graded
        return out[..., :3]

    return apply_on_device


def _resolved_device(device: str) -> str:
    """``auto`` as ``cpu`` on a machine without a GPU; other names as they are."""
    if device == "auto":
        from lutgen.devices import has_accelerator

        return "auto" if has_accelerator() else "cpu"
    return device


def _load_kernels_meanwhile(interpolation: str, parallel: bool) -> None:
    """Load the compiled kernel for 8-bit images in a background thread while the caller reads the images.

    Trilinear grading imports llvmlite and loads its kernel from the disk cache (a few hundredths of a
    second); tetrahedral grading imports Numba and loads its kernel, about as long as decoding a
    12-megapixel JPEG. Decoding runs without the GIL, so done side by side one hides the other. The
    first grading call waits for the loading (the kernel's lock, Numba's and Python's import locks), or
    loads what else it needs itself.
    """

    def load() -> None:
        from lutgen.color.cpu import warm_up

        with contextlib.suppress(Exception):  # the grading call itself reports any real problem
            warm_up(np.uint8, interpolation, parallel)

    threading.Thread(target=load, name="lutgen-kernel-loading").start()


def grade_file(source: Path, target: Path, apply: Applier, quality: int, buffers: RGBXBuffers | None = None) -> None:
    """Read ``source``, grade it with ``apply`` and write ``target`` atomically, keeping its metadata.

    8-bit pixels are graded into an :func:`~lutgen.imaging.rgbx_buffer` (this thread's one of ``buffers``
    when given, else a new one), which the writer hands to the encoder without a copy. Raises
    :class:`~lutgen.tasks.batch.FileSkipped` when ``source`` cannot be read; errors writing ``target`` are
    raised as they are.
    """
    try:
        image: ImageData = load_image(source)
    except LutgenError as error:
        raise FileSkipped(str(error)) from None
    out = (buffers or RGBXBuffers()).out_for(image.rgb)
    save_image(replace(image, rgb=apply(image.rgb, out=out)), target, quality=quality)


def infer(
    lut_path: Path,
    inputs: Sequence[Path],
    output_path: Path | None = None,
    output_dir: Path | None = None,
    strength: float = 1.0,
    interpolation: str = "trilinear",
    quality: int = 95,
    device: str = "cpu",
    jobs: int | None = None,
    codec: str | None = None,
    crf: int | None = None,
    progress: Callable[[Sequence], Sequence] = lambda items: items,
    frame_progress: FrameProgress | None = None,
) -> MediaResult:
    """Grade every image and video of ``inputs`` (files or folders) with the LUT at ``lut_path``.

    Images: ``jobs`` at once (default: one per core; see :mod:`lutgen.tasks.batch`), the LUT read once
    for all. Videos (:mod:`lutgen.tasks.infer_video`), after the images, one at a time, every frame
    through the same kernel at the source's bit depth, in ``codec`` (default: the source's own family)
    at ``crf``; ``frame_progress`` makes each video's frame bar. Inputs that cannot be read are
    reported in the result and skipped; every output is written atomically, so an interruption leaves
    every finished file complete and no partial one.
    """
    device = check_options(strength, interpolation, quality, device)
    jobs = check_jobs(jobs)
    check_video_options(codec, crf)  # before any file, videos or not (imports PyAV only for a --codec)
    if output_dir is not None:
        check_folder_writable(output_dir, f"--output-dir {output_dir}")
    lut = read_lut(lut_path)
    image_pairs, video_pairs = plan_media(inputs, output_path, output_dir)
    result = MediaResult()
    if image_pairs:
        workers = min(jobs, len(image_pairs))
        device = _resolved_device(device)
        if device == "cpu":
            _load_kernels_meanwhile(interpolation, parallel=workers == 1)
        apply = make_applier(lut, interpolation, strength, device, parallel=workers == 1)
        with batch_memory(workers) as buffers:
            grade = functools.partial(grade_file, apply=apply, quality=quality, buffers=buffers)
            images = run_batch(image_pairs, grade, workers, progress)
        result.written, result.failed = images.written, images.failed
    if video_pairs:
        from lutgen.tasks.infer_video import infer_video

        def grade_one(source: Path, target: Path):
            bar = None if frame_progress is None else (lambda total: frame_progress(total, source.name))
            return infer_video(lut, source, target, interpolation=interpolation, strength=strength, codec=codec,
                               quality=crf, device=device, progress=bar)

        run_videos(video_pairs, grade_one, result)
    return result
