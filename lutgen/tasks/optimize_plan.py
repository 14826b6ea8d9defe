"""The options of ``lutgen optimize`` and their checks: everything that happens before torch is imported.

:func:`validate` checks every option against its range (:data:`LIMITS`), the prompt, the output's
folder and the log folder (creatable, writable, and never where an input would be overwritten),
finds the images and reads the test image, and returns a :class:`Plan`. A bad value is one
sentence, an :class:`~lutgen.errors.OptionError` or :class:`~lutgen.errors.ImageError` (exit 2).

Limits, and why:

- ``--steps`` 1..100000 and ``--log-interval`` 0..100000, with at most :data:`MAX_SNAPSHOTS`
  snapshots and :data:`MAX_SNAPSHOT_BYTES` of .cube snapshots per run;
- ``--lut-size`` 2..128 (:data:`MAX_LUT_SIZE`), ``--batch-size`` 1..256 (:data:`MAX_BATCH_SIZE`):
  they size the memory of every step;
- ``--learning-rate`` 1e-6..1 (Adam on ``tanh``-bounded parameters: beyond 1 a single step
  saturates them) and loss weights 0..1000 (1000 already lets one term drown the CLIP loss);
- at most :data:`MAX_IMAGES` training images, all kept on the device;
- prompts of at most :data:`~lutgen.tasks.optimize_evidence.MAX_PROMPT_CHARACTERS` characters
  without control characters, and the other limits of the evidence
  (:mod:`lutgen.tasks.optimize_evidence`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lutgen.devices import check_device_name
from lutgen.errors import ImageError, OptionError
from lutgen.fileio import check_folder_writable, check_regular_file
from lutgen.guidance import check_clip_precision
from lutgen.imaging import find_images, load_rgb_float
from lutgen.lut import MIN_3D_SIZE
from lutgen.optim.training_log import BUNDLED_IMAGES, PREVIEW_WIDTH, is_log_file_name
from lutgen.tasks.optimize_evidence import MAX_PROMPT_CHARACTERS, Evidence, check_evidence  # noqa: F401
from lutgen.tasks.optimize_evidence import inputs as evidence_inputs
from lutgen.tasks.options import MAX_LOSS_WEIGHT, check_number, check_output_file, choose_seed

DEFAULT_TEST_IMAGE = "mate_greenmeadow.jpg"

MAX_STEPS = 100_000
MAX_LUT_SIZE = 128
"""Largest ``--lut-size``: a 128^3 LUT with its gradient and Adam's two moments takes about 0.85 GB
and 1.2 s per step on one CPU thread (measured); 256^3 would take about 7 GB."""
MAX_BATCH_SIZE = 256
"""Largest ``--batch-size``: every view keeps CLIP's activations for the backward pass, about 28 MB
per view for ViT-B-32 in float32 (measured), so 7 GB at 256; larger models need more."""
LEARNING_RATE_RANGE = (1e-6, 1.0)
MAX_SNAPSHOTS = 1000
MAX_SNAPSHOT_BYTES = 2 << 30
CUBE_BYTES_PER_NODE = 27  # "0.123456 0.123456 0.123456\n"
SLUG_BYTES = 100
NAME_MAX = 255  # bytes in one file name (Linux, macOS, Windows)
PATH_MAX = 4096
TEMPORARY_NAME_BYTES = 15  # what an atomic write adds to a name: ".NAME.12345678.part.cube"
MAX_IMAGES = 1000
"""Most training images: all are kept on the device at three times CLIP's input size, in float16
(about 2 MB each for 224-pixel models, 4.5 MB for 336), so 1000 take 2 to 5 GB."""
LOSS_WEIGHT_OPTIONS = ("image-smoothness", "image-regularization", "black-preservation", "lut-smoothness",
                       "highlight-preservation")
EVIDENCE_WEIGHT_OPTIONS = ("reference-similarity", "reference-colors", "pair-weight")
REPRESENTATIONS = ("structured", "lattice")

LIMITS = {
    "steps": (1, MAX_STEPS),
    "lut-size": (MIN_3D_SIZE, MAX_LUT_SIZE),
    "learning-rate": LEARNING_RATE_RANGE,
    **{name: (0.0, MAX_LOSS_WEIGHT) for name in (*LOSS_WEIGHT_OPTIONS, *EVIDENCE_WEIGHT_OPTIONS)},
    "batch-size": (1, MAX_BATCH_SIZE),
    "log-interval": (0, MAX_STEPS),
}
"""The range of every numeric option (both ends allowed); the seed's is in :mod:`lutgen.tasks.options`."""


def default_image_folder() -> Path:
    """The bundled ``images/`` folder of the project, or ``images`` in the working folder."""
    return BUNDLED_IMAGES if BUNDLED_IMAGES.is_dir() else Path("images")


@dataclass
class OptimizeOptions:
    """Every option of ``lutgen optimize``, with the command line's defaults.

    The evidence options (``prompt`` to ``pair_weight``) are described in
    :mod:`lutgen.tasks.optimize_evidence`; ``prompt`` may be one string or a sequence of them.
    """

    prompt: str | Sequence[str] = ()
    prompt_weight: Sequence[float] = ()
    negative_prompt: Sequence[str] = ()
    negative_weight: Sequence[float] = ()
    source_prompt: str | None = None
    reference_image: Sequence[Path] = ()
    reference_similarity: float = 1.0
    reference_colors: float = 1.0
    pairs: tuple[Path, Path] | None = None
    pair_weight: float = 1.0
    monochrome: bool = False
    representation: str = "structured"
    image_folder: Path | None = None
    lut_size: int = 16
    steps: int = 500
    learning_rate: float = 0.005
    image_smoothness: float = 1.0
    image_regularization: float = 1.0
    black_preservation: float = 1.0
    lut_smoothness: float = 1.0
    highlight_preservation: float = 1.0
    batch_size: int = 4
    log_interval: int = 50
    output_path: Path = Path("lut.cube")
    test_image: Path | None = None
    verbose: bool = False
    seed: int | None = None
    device: str = "auto"
    log_dir: Path | None = None
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    clip_precision: str = "auto"


@dataclass
class Plan:
    """What :func:`validate` found: the evidence, the image files, the test image (decoded) and the log folder."""

    evidence: Evidence
    folder: Path
    images: list[Path]
    test_image: Path
    test_pixels: np.ndarray  # (H, W, 3) float32, at most PREVIEW_WIDTH on its longer side
    log_dir: Path | None
    seed: int

    @property
    def title(self) -> str:
        """The title of the ``.cube`` and of the log's snapshots (the first prompt, or the evidence)."""
        return self.evidence.title()


def prompt_slug(prompt: str) -> str:
    """A safe folder name for ``prompt``: words joined by ``_``, only letters, digits, ``_ - .``, at most
    100 bytes in UTF-8, not starting with ``-`` or ``.``; ``untitled`` when nothing is left."""
    slug = re.sub(r"[^\w\-.]", "", "_".join(prompt.split()))
    slug = slug.encode("utf-8")[:SLUG_BYTES].decode("utf-8", "ignore")
    return slug.strip("_.-") or "untitled"


def _check_numbers(o: OptimizeOptions) -> None:
    for name, (low, high) in LIMITS.items():
        check_number(name, getattr(o, name.replace("-", "_")), low, high)
    _check_log_size(o)


def snapshot_count(steps: int, log_interval: int) -> int:
    """How many snapshots (a picture and a .cube each) a run saves: every ``log_interval`` steps and
    at the last step."""
    return 0 if log_interval == 0 else math.ceil(steps / log_interval)


def _check_log_size(o: OptimizeOptions) -> None:
    """Refuse a ``--log-interval`` that would save more than :data:`MAX_SNAPSHOTS` snapshots or more
    than :data:`MAX_SNAPSHOT_BYTES` of .cube snapshots, naming the smallest interval that fits."""
    count = snapshot_count(o.steps, o.log_interval)
    cube_bytes = o.lut_size**3 * CUBE_BYTES_PER_NODE
    allowed = min(MAX_SNAPSHOTS, MAX_SNAPSHOT_BYTES // cube_bytes)
    if count <= allowed:
        return
    smallest = math.ceil(o.steps / allowed)
    raise OptionError(
        f"--log-interval {o.log_interval} with --steps {o.steps} saves {count} snapshots of a "
        f"{o.lut_size}^3 LUT ({count * cube_bytes / 1e9:.1f} GB of .cube files); at most {allowed} "
        f"(and {MAX_SNAPSHOT_BYTES >> 30} GB) are allowed: use --log-interval {smallest} or more, or 0 for no log"
    )


def _check_choices(o: OptimizeOptions) -> None:
    check_device_name(o.device)
    check_clip_precision(o.clip_precision)
    if o.representation not in REPRESENTATIONS:
        raise OptionError(f"--representation {o.representation!r} is not one of {', '.join(REPRESENTATIONS)}")
    if not o.clip_model.strip():
        raise OptionError("--clip-model is empty; give an open_clip model name such as ViT-B-32")
    if not str(o.clip_pretrained).strip():
        raise OptionError("--clip-pretrained is empty; give a tag such as openai or a weights file")


def check_path_length(path: Path, what: str, spare: int = 0) -> None:
    """Refuse a path the file system cannot hold: a name over :data:`NAME_MAX` bytes (``spare`` fewer
    for the last one, to leave room for a temporary name beside it) or the whole over :data:`PATH_MAX`."""
    encoded = os.fsencode(path)
    if len(encoded) > PATH_MAX:
        raise OptionError(f"{what} is {len(encoded)} bytes long; a path may hold at most {PATH_MAX}")
    parts = path.parts
    for index, part in enumerate(parts):
        limit = NAME_MAX - (spare if index == len(parts) - 1 else 0)
        if len(os.fsencode(part)) > limit:
            raise OptionError(f"{what}: the name {part[:40]}... is {len(os.fsencode(part))} bytes long; "
                              f"at most {limit} are allowed")


def _check_output(path: Path) -> None:
    check_path_length(path, "--output-path", TEMPORARY_NAME_BYTES)
    check_output_file(path, "--output-path", ".cube")


def _choose_log_dir(o: OptimizeOptions, title: str) -> Path | None:
    """The log folder (``None`` when logging is off); refused when it cannot be created or written."""
    if o.log_interval == 0:
        return None
    log_dir = Path(o.log_dir) if o.log_dir is not None else Path("tmp") / "training_logs" / prompt_slug(title)
    check_path_length(log_dir, "--log-dir")
    check_folder_writable(log_dir, f"--log-dir {log_dir}")
    return log_dir


def image_folder(folder: Path | None, holds: str) -> Path:
    """``--image-folder``, or the bundled one when it is ``None``; refused unless it is an existing folder.

    ``holds`` says what the folder is for, in the message (``"the training images"``).
    """
    if folder is None:
        folder = default_image_folder()
        if not folder.is_dir():
            raise ImageError(f"the bundled image folder {folder} is not there; give --image-folder with {holds}")
        return folder
    folder = Path(folder)
    if not folder.exists():
        raise ImageError(f"--image-folder {folder} does not exist; give the folder that holds {holds}")
    if not folder.is_dir():
        raise ImageError(f"--image-folder {folder} is not a folder; give the folder that holds {holds}")
    return folder


def _real(path: Path) -> Path:
    """``path`` with every symbolic link followed (a link loop is left as it is, without an error)."""
    return Path(os.path.realpath(path))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_nothing_overwritten(output: Path, log_dir: Path | None, folder: Path, inputs: list[Path]) -> None:
    """Refuse outputs that would replace an input: a log folder in the image folder, an output that is
    an input (symbolic links followed), or an input in the log folder under a name the log writes."""
    out = _real(output)
    for source in inputs:
        if _real(source) == out:
            raise OptionError(f"--output-path {output} is the input {source}; choose another file for the LUT")
    if log_dir is None:
        return
    logs = _real(log_dir)
    if _inside(logs, _real(folder)):
        raise OptionError(
            f"the log folder {log_dir} (--log-dir) is inside the image folder {folder}, where the log would "
            "write among the images it reads; choose a log folder outside it"
        )
    for path, what in ((output, "--output-path"), *((source, "the input") for source in inputs)):
        if _real(path).parent == logs and is_log_file_name(path.name):
            raise OptionError(
                f"{what} {path} is in the log folder {log_dir}, where the training log writes a file "
                f"of that name; choose another --log-dir"
            )


def _default_test_image(images: list[Path]) -> Path:
    bundled = BUNDLED_IMAGES / DEFAULT_TEST_IMAGE
    return bundled if bundled.is_file() else images[0]


def _local_clip_files(o: OptimizeOptions) -> list[Path]:
    """The files of the CLIP model that are on disk: a weights file, a ``local-dir:`` folder's files."""
    files = []
    pretrained = Path(str(o.clip_pretrained).strip()).expanduser()
    if pretrained.is_file():
        files.append(pretrained)
    if o.clip_model.startswith("local-dir:"):
        folder = Path(o.clip_model[len("local-dir:"):]).expanduser()
        if folder.is_dir():
            files += [p for p in folder.iterdir() if p.is_file()]
    return files


def validate(o: OptimizeOptions) -> Plan:
    """Check every option and find the inputs, without importing torch. Raises OptionError/ImageError."""
    _check_numbers(o)
    seed = choose_seed(o.seed)
    _check_choices(o)
    _check_output(Path(o.output_path))
    evidence = check_evidence(o)
    log_dir = _choose_log_dir(o, evidence.title())
    if o.image_folder is not None:
        check_path_length(Path(o.image_folder), "--image-folder")
    folder = image_folder(o.image_folder, "the training images")
    images = find_images(folder)
    if len(images) > MAX_IMAGES:
        raise ImageError(
            f"the image folder {folder} has {len(images)} images; optimize keeps every one in memory, "
            f"so give a folder of at most {MAX_IMAGES}"
        )
    test_image = Path(o.test_image) if o.test_image is not None else _default_test_image(images)
    check_regular_file(test_image, "image", ImageError)
    inputs = [*images, test_image, *_local_clip_files(o), *evidence_inputs(evidence)]
    _check_nothing_overwritten(Path(o.output_path), log_dir, folder, inputs)
    test_pixels = load_rgb_float(test_image, max_side=PREVIEW_WIDTH)
    return Plan(evidence, folder, images, test_image, test_pixels, log_dir, seed)
