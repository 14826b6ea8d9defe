"""Enhance photos with a learned image-adaptive LUT (AdaInt): the work behind ``lutgen enhance``.

For every photo the model predicts its own 33^3 table and per-channel vertices from a 256 x 256
view of it; the photo is then graded by that adaptive-interval LUT at full resolution.

- ``device="cpu"`` (the default): the network runs in NumPy (:mod:`lutgen.models.adaint_cpu`) and the
  LUT, written as a 65536-node shaper plus the 33^3 table (exact at every 8- and 16-bit code value),
  is applied by lutgen's compiled kernel. Torch is not imported.
- ``cuda``/``mps``/``auto``: the torch model and :func:`~lutgen.color.adaint.ailut_transform` run on
  that device (``auto`` on a machine without a GPU takes the CPU path above).

With ``export_cube`` each output ``NAME.EXT`` gets ``NAME.cube`` (Resolve style: shaper + 3D, the
LUT the CPU path applied, so ``lutgen infer NAME.cube photo`` gives the same image) and
``NAME_33.cube`` (a plain 33^3 resampling for readers without shaper support, with its fidelity to
the transform on this photo as a PSNR). A photo's files are written together
(:func:`write_together`): an interruption leaves all of them or none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lutgen.color.adaint import psnr, resample_to_lut, sample_colours, to_lut
from lutgen.devices import check_device_name
from lutgen.errors import LutgenError, OptionError
from lutgen.fileio import Writer, write_together
from lutgen.formats import write_lut
from lutgen.imaging import ImageData, load_image, save_image
from lutgen.imaging.memory import RGBXBuffers, batch_memory
from lutgen.lut import LUT, MAX_3D_SIZE, MIN_3D_SIZE
from lutgen.models import DEFAULT_MODEL, Weights, load_weights
from lutgen.tasks.batch import FileSkipped, check_jobs, run_batch
from lutgen.tasks.enhance_video import DEFAULT_SCENE_CUT, DEFAULT_SMOOTHING, check_temporal_options
from lutgen.tasks.media import FrameProgress, MediaResult, plan_media, run_videos
from lutgen.tasks.options import check_quality
from lutgen.video.codecs import check_video_options

PLAIN_SIZE = 33


@dataclass
class ExportedLUTs:
    """The two ``.cube`` files of one photo and the plain one's fidelity to the transform (dB)."""

    shaper_cube: Path
    plain_cube: Path
    plain_psnr: float


@dataclass
class EnhanceResult(MediaResult):
    """What ``enhance`` did: files written and inputs that failed (:class:`MediaResult`), and the LUTs
    exported (by output image)."""

    exported: dict[Path, ExportedLUTs] = field(default_factory=dict)


def cube_paths(target: Path, plain_size: int = PLAIN_SIZE) -> tuple[Path, Path]:
    """``NAME.cube`` and ``NAME_<size>.cube`` beside the output image ``NAME.EXT``."""
    return target.with_suffix(".cube"), target.with_name(f"{target.stem}_{plain_size}.cube")


def check_options(quality: int, device: str, plain_size: int) -> str:
    """Check the options (no torch); returns the device name, lower-cased."""
    check_quality(quality)
    device = check_device_name(device)
    if not MIN_3D_SIZE <= plain_size <= MAX_3D_SIZE:
        raise OptionError(f"the plain LUT size must be between {MIN_3D_SIZE} and {MAX_3D_SIZE}, not {plain_size}")
    return device


def _check_cube_targets(pairs: Sequence[tuple[Path, Path]], plain_size: int) -> None:
    seen: set[Path] = set()
    for _, target in pairs:
        for cube in cube_paths(target, plain_size):
            if cube in seen:
                raise OptionError(
                    f"two outputs would export the same LUT file {cube}; give the images different names"
                )
            seen.add(cube)


@dataclass
class Prediction:
    """One photo's LUT, as float64 arrays, and its graded pixels."""

    table: np.ndarray  # (N, N, N, 3) [b, g, r, c]
    vertices: np.ndarray  # (3, N)
    lut: LUT  # shaper + table, as exported
    graded: np.ndarray  # (H, W, 3), the input's dtype


def model_lut(table: np.ndarray, vertices: np.ndarray, model: str) -> LUT:
    """The exported LUT (:func:`~lutgen.color.adaint.to_lut`) of a photo's prediction by ``model``.

    Raises:
        LutgenError: the prediction is no usable LUT, such as vertices that are not strictly
            increasing because an interval underflowed to zero (one sentence naming the model).
    """
    try:
        return to_lut(table, vertices)
    except ValueError as error:
        underflow = np.isfinite(vertices).all() and not np.all(np.diff(vertices, axis=-1) > 0)
        if underflow:
            raise LutgenError(f"the model {model} predicted vertices that are not strictly increasing for this "
                              "photo (one of its intervals underflowed to zero), so its LUT cannot be applied"
                              ) from None
        raise LutgenError(f"the model {model} predicted an unusable LUT for this photo ({error})") from None


class _CpuEnhancer:
    """NumPy network + compiled LUT kernel: no torch. ``parallel`` False grades each photo in the calling
    thread alone (for callers that enhance several photos at once)."""

    def __init__(self, weights: Weights, parallel: bool = True):
        self.weights = weights
        self.parallel = parallel

    def __call__(self, rgb: np.ndarray, out: np.ndarray | None = None) -> Prediction:
        from lutgen.color.cpu import apply_lut_array
        from lutgen.models.adaint_cpu import predict_lut

        table, vertices = predict_lut(self.weights, rgb)
        lut = model_lut(table, vertices, self.weights.source)
        return Prediction(table, vertices, lut, apply_lut_array(rgb, lut, parallel=self.parallel, out=out))


class _TorchEnhancer:
    """The torch model and the differentiable transform on a torch device."""

    def __init__(self, weights: Weights, device):
        from lutgen.models.adaint import build_model

        self.device = device
        self.source = weights.source
        self.model = build_model(weights).to(device)

    def __call__(self, rgb: np.ndarray, out: np.ndarray | None = None) -> Prediction:
        """(``out`` is not used: the graded photo comes back from the device as a new array.)"""
        import torch

        from lutgen.color.torch_ops import codes_to_image, image_to_codes

        with torch.no_grad():
            out = self.model(codes_to_image(rgb, self.device).unsqueeze(0))
            graded = image_to_codes(out.image[0], rgb.dtype)
            table = out.table[0].to("cpu", torch.float64).numpy()
            vertices = out.vertices[0].to("cpu", torch.float64).numpy()
        return Prediction(table, vertices, model_lut(table, vertices, self.source), graded)


def make_enhancer(weights: Weights, device: str, parallel: bool = True) -> Callable[..., Prediction]:
    """The CPU path for ``cpu`` (and ``auto`` without a GPU; ``parallel`` as for :class:`_CpuEnhancer`),
    the torch path otherwise.

    Each call of the result, ``enhancer(rgb, out=None)``, grades one photo ``(H, W, 3)`` uint8/uint16 (on
    the CPU into ``out`` when given, as :func:`~lutgen.color.cpu.apply_lut_array` takes it) and raises
    :class:`LutgenError` when the model predicts no usable LUT for it (see :func:`model_lut`).
    """
    device = check_device_name(device)
    if device == "cpu":
        return _CpuEnhancer(weights, parallel)
    from lutgen.devices import pick_device

    torch_device = pick_device(device)
    if torch_device.type == "cpu":
        return _CpuEnhancer(weights, parallel)
    return _TorchEnhancer(weights, torch_device)


def cube_files(prediction: Prediction, image: ImageData, target: Path, label: str,
               plain_size: int = PLAIN_SIZE) -> tuple[ExportedLUTs, list[tuple[Path, Writer]]]:
    """The photo's shaper + 3D LUT and its plain resampling, ready to be written beside ``target``.

    The resampling and its fidelity are computed here; the writers (``write(path)``) only write.
    """
    from lutgen.color.adaint import ailut_array
    from lutgen.color.cpu import apply_lut_array

    shaper_cube, plain_cube = cube_paths(target, plain_size)
    colours = sample_colours(image.rgb)
    plain = resample_to_lut(prediction.table, prediction.vertices, plain_size)
    fidelity = psnr(apply_lut_array(colours, plain), ailut_array(colours, prediction.table, prediction.vertices))
    plain = replace(
        plain,
        title=f"lutgen enhance {label}: {plain_size}^3 resampling",
        comments=(f"PSNR against the adaptive-interval transform on {image.path.name if image.path else 'the photo'}: "
                  f"{fidelity:.2f} dB",),
    )
    writers = [
        (shaper_cube, lambda path: write_lut(prediction.lut, path, style="resolve")),
        (plain_cube, lambda path: write_lut(plain, path, style="adobe")),
    ]
    return ExportedLUTs(shaper_cube, plain_cube, fidelity), writers


def photo_files(prediction: Prediction, image: ImageData, target: Path, quality: int, export_cube: bool,
                label: str, plain_size: int = PLAIN_SIZE) -> tuple[ExportedLUTs | None, list[tuple[Path, Writer]]]:
    """Everything ``enhance`` writes for one photo: the graded image and, with ``export_cube``, its LUTs."""
    graded = replace(image, rgb=prediction.graded)
    files: list[tuple[Path, Writer]] = [(target, lambda path: save_image(graded, path, quality=quality))]
    exported = None
    if export_cube:
        exported, cubes = cube_files(prediction, image, target, label, plain_size)
        files += cubes
    return exported, files


def enhance_photo(source: Path, target: Path, enhancer: Callable[..., Prediction], quality: int,
                  export_cube: bool, label: str, plain_size: int = PLAIN_SIZE,
                  buffers: RGBXBuffers | None = None) -> ExportedLUTs | None:
    """Enhance one photo into ``target`` (and, with ``export_cube``, its LUTs), all files together.

    8-bit photos are graded into this thread's buffer of ``buffers`` when given, else a new one (see
    :func:`lutgen.tasks.infer.grade_file`). Raises :class:`~lutgen.tasks.batch.FileSkipped` when the
    photo cannot be read or the model predicts no usable LUT for it; errors writing are raised as they are.
    """
    try:
        image = load_image(source)
        prediction = enhancer(image.rgb, out=(buffers or RGBXBuffers()).out_for(image.rgb))
    except LutgenError as error:
        raise FileSkipped(str(error)) from None
    exported, files = photo_files(prediction, image, target, quality, export_cube, label, plain_size)
    write_together(files)
    return exported


def enhance(
    inputs: Sequence[Path],
    model: str = DEFAULT_MODEL,
    output_path: Path | None = None,
    output_dir: Path | None = None,
    export_cube: bool = False,
    quality: int = 95,
    device: str = "cpu",
    jobs: int | None = None,
    temporal_smoothing: float = DEFAULT_SMOOTHING,
    scene_cut: float = DEFAULT_SCENE_CUT,
    codec: str | None = None,
    crf: int | None = None,
    progress: Callable[[Sequence], Sequence] = lambda items: items,
    frame_progress: FrameProgress | None = None,
    plain_size: int = PLAIN_SIZE,
) -> EnhanceResult:
    """Enhance every photo and video of ``inputs`` (files or folders) with ``model`` (a shipped name or a file).

    Photos: ``jobs`` at once on the CPU (default: one per core; one at a time on a GPU). Photos that cannot
    be read, or for which the model predicts no usable LUT, are reported in the result and skipped; the
    others are written with their bit depth, EXIF and ICC profile, each photo's files (image and LUTs)
    all together or not at all (:func:`write_together`). Videos (:mod:`lutgen.tasks.enhance_video`),
    after the photos, one at a time, with the LUT smoothed over time (``temporal_smoothing``) and
    restarted at scene cuts (``scene_cut``), in ``codec`` at ``crf``; ``frame_progress`` makes each
    video's frame bar; ``result.videos`` holds each video's result and number of shots.
    Raises :class:`LutgenError` (one sentence) for bad options, a missing or invalid model, or outputs
    that would overwrite an input.
    """
    device = check_options(quality, device, plain_size)
    jobs = check_jobs(jobs)
    check_temporal_options(temporal_smoothing, scene_cut)  # before any file, videos or not
    check_video_options(codec, crf)  # (imports PyAV only for a --codec)
    image_pairs, video_pairs = plan_media(inputs, output_path, output_dir)
    if video_pairs and export_cube:
        raise OptionError("--export-cube exports one photo's LUT; a video's LUT changes with every frame")
    if export_cube:
        _check_cube_targets(image_pairs, plain_size)
    result = EnhanceResult()
    if image_pairs:
        weights = load_weights(model)
        workers = min(jobs, len(image_pairs)) if device in ("cpu", "auto") else 1
        enhancer = make_enhancer(weights, device, parallel=workers == 1)
        if not isinstance(enhancer, _CpuEnhancer):
            workers = 1  # one model on one GPU: photos in turn
        label = Path(str(model)).name

        with batch_memory(workers) as buffers:

            def one_photo(source: Path, target: Path) -> None:
                exported = enhance_photo(source, target, enhancer, quality, export_cube, label, plain_size, buffers)
                if exported is not None:
                    result.exported[target] = exported

            photos = run_batch(image_pairs, one_photo, workers, progress)
        result.written, result.failed = photos.written, photos.failed
    if video_pairs:
        from lutgen.tasks.enhance_video import enhance_video

        def grade_one(source: Path, target: Path):
            bar = None if frame_progress is None else (lambda total: frame_progress(total, source.name))
            return enhance_video(source, target, model=model, temporal_smoothing=temporal_smoothing,
                                 scene_cut=scene_cut, codec=codec, quality=crf, progress=bar)

        run_videos(video_pairs, grade_one, result)
    return result
