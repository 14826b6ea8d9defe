"""CLIP guidance with open_clip: finding the weights, loading a frozen model, embedding text and images.

Where the weights come from (``--clip-model`` / ``--clip-pretrained``), as open_clip understands them:

- a built-in architecture name (``ViT-B-32``) with a pretrained tag (``openai``): the weights come from
  the Hugging Face hub cache, downloaded once when the hub can be reached;
- a built-in architecture name with a local weights file (``.safetensors``, ``.bin``, ``.pt``);
- ``local-dir:FOLDER``: a folder holding ``open_clip_config.json`` and ``open_clip_model.safetensors``;
- ``hf-hub:ORG/REPO``: a hub repository in open_clip's layout.

:func:`resolve_weights` decides where the weights will come from without loading anything. When they
are not cached and cannot be downloaded it fails at once with one sentence (instead of open_clip's
retries, which take about 47 s). Cached hub weights are loaded with the hub in offline mode, so no
request is made at all.

:class:`ClipGuide` holds the frozen model on its device. Images reach it as ``(B, 3, S, S)`` float
tensors in ``[0, 1]`` that have already been cropped and resized (see :mod:`lutgen.optim.views`);
it applies open_clip's own mean/std normalisation, so the whole path stays differentiable.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from lutgen.errors import LutgenError, OptionError
from lutgen.guidance import check_clip_precision
from lutgen.guidance.config import (  # noqa: F401  (the prefixes are part of this module's API)
    CONFIG_NAME,
    HF_HUB_PREFIX,
    LOCAL_DIR_PREFIX,
    check_image_size,
    check_weights_file,
    local_dir_weights,
    read_local_config,
)
from lutgen.guidance.loading import return_freed_memory
from lutgen.guidance.open_clip_import import open_clip_for
from lutgen.guidance.vision_tower import (  # noqa: F401  (the tower's modules are part of this module's API)
    LinearPatchEmbedding,
    PackedSelfAttention,
    cast_matmul_weights,
    speed_up_vision_tower,
)

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
HUB_PROBE_TIMEOUT_S = 1.5

_HOW_TO_PROVIDE = (
    "download them once on a machine with network access, or pass --clip-pretrained PATH (a weights file "
    "for this architecture) or --clip-model local-dir:FOLDER (holding open_clip_config.json and "
    "open_clip_model.safetensors)"
)


@dataclass(frozen=True)
class WeightsSource:
    """Where the CLIP weights come from, decided before anything is loaded.

    Attributes:
        model_name: the name handed to open_clip (may carry ``local-dir:`` or ``hf-hub:``).
        pretrained: the tag or file handed to open_clip, ``None`` for schema names and random weights.
        label: how to name the weights to the user, e.g. ``ViT-B-32 'openai'``.
        quick_gelu: whether the tag was trained with QuickGELU (passed on to open_clip).
        offline: load with the hub in offline mode (the files are local or already cached).
    """

    model_name: str
    pretrained: str | None
    label: str
    quick_gelu: bool = False
    offline: bool = True


def _hub_constants():
    from huggingface_hub import constants

    return constants


def _hub_is_offline() -> bool:
    return bool(_hub_constants().HF_HUB_OFFLINE)


@contextlib.contextmanager
def hub_offline(enabled: bool = True) -> Iterator[None]:
    """Within the block, the Hugging Face hub makes no network request (when ``enabled``)."""
    if not enabled:
        yield
        return
    constants = _hub_constants()
    before_constant, before_env = constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")
    constants.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before_constant
        if before_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before_env


def _host_reachable(url: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds (DNS included)."""
    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(True)
        except OSError:
            outcome.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(outcome and outcome[0])


def _ensure_downloadable(label: str, url: str) -> None:
    """Raise the one-sentence error when weights that are not cached cannot be downloaded either."""
    if not url:
        reason = "open_clip names no address to download them from"
    elif _hub_is_offline():
        reason = "the Hugging Face hub is in offline mode (HF_HUB_OFFLINE)"
    elif not _host_reachable(url):
        reason = f"{urlparse(url).hostname} cannot be reached"
    else:
        return
    raise LutgenError(f"the CLIP weights {label} are not in the local cache and {reason}; {_HOW_TO_PROVIDE}")


def _hub_files_cached(repo_id: str, filenames: list[str]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in filenames)


def _tag_cached(cfg: dict) -> tuple[bool, str]:
    """Whether the weights of an open_clip pretrained config are on disk, and where they would come from."""
    from open_clip import pretrained as oc_pretrained

    if cfg.get("file"):
        return Path(cfg["file"]).is_file(), ""
    hub = cfg.get("hf_hub", "")
    if hub and oc_pretrained.has_hf_hub():
        repo_id, filename = os.path.split(hub)
        names = [filename] if filename else [oc_pretrained.HF_WEIGHTS_NAME]
        names += [alt for name in list(names) for alt in oc_pretrained._get_safe_alternatives(name)]
        return _hub_files_cached(repo_id, names), _hub_constants().ENDPOINT
    url = cfg.get("url", "")
    target = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
    return target.is_file(), url


def _resolve_local_dir(model_name: str) -> WeightsSource:
    folder = Path(model_name[len(LOCAL_DIR_PREFIX):]).expanduser()
    if not folder.is_dir():
        raise OptionError(f"--clip-model {model_name}: the folder {folder} does not exist")
    if not os.path.lexists(folder / CONFIG_NAME):
        raise OptionError(f"--clip-model {model_name}: {folder} has no {CONFIG_NAME}")
    read_local_config(folder)
    weights = local_dir_weights(folder)
    if weights is None:
        raise OptionError(f"--clip-model {model_name}: {folder} has no weights file (open_clip_model.safetensors)")
    check_weights_file(weights, f"--clip-model {model_name}: the weights file")
    name = f"{LOCAL_DIR_PREFIX}{folder}"
    return WeightsSource(name, None, name)


def _resolve_hf_hub(model_name: str) -> WeightsSource:
    from open_clip import pretrained as oc_pretrained

    repo_id = model_name[len(HF_HUB_PREFIX):]
    label = model_name
    weights = [oc_pretrained.HF_SAFE_WEIGHTS_NAME, oc_pretrained.HF_WEIGHTS_NAME]
    cached = _hub_files_cached(repo_id, ["open_clip_config.json"]) and _hub_files_cached(repo_id, weights)
    if not cached:
        _ensure_downloadable(label, _hub_constants().ENDPOINT)
    return WeightsSource(model_name, None, label, offline=cached)


def _looks_like_path(value: str) -> bool:
    return os.sep in value or "/" in value or value.lower().endswith(WEIGHT_SUFFIXES)


def resolve_weights(model_name: str, pretrained: str | None) -> WeightsSource:
    """Decide where the weights of ``model_name`` / ``pretrained`` come from, loading nothing.

    ``pretrained=None`` means random weights (for benchmarks). Raises :class:`OptionError` for names,
    tags and paths that cannot work, and :class:`LutgenError` within about 1.5 s when the weights are
    neither cached nor downloadable.
    """
    model_name = (model_name or "").strip()
    if not model_name:
        raise OptionError("--clip-model is empty; give an open_clip model name such as ViT-B-32")
    if model_name.startswith(LOCAL_DIR_PREFIX):
        return _resolve_local_dir(model_name)
    if model_name.startswith(HF_HUB_PREFIX):
        return _resolve_hf_hub(model_name)
    model_name = model_name.replace("/", "-")  # open_clip's own spelling: ViT-B/32 is ViT-B-32
    open_clip = open_clip_for(model_name)
    if open_clip.get_model_config(model_name) is None:
        raise OptionError(
            f"--clip-model {model_name!r} is not an architecture open_clip knows; "
            "use a name from open_clip.list_models() or local-dir:FOLDER"
        )
    if pretrained is None:
        return WeightsSource(model_name, None, f"{model_name} (random weights)")
    pretrained = pretrained.strip()
    file = Path(pretrained).expanduser()
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if file.is_file() or (not cfg and (os.path.lexists(file) or _looks_like_path(pretrained))):
        if not os.path.lexists(file):
            raise OptionError(f"--clip-pretrained {pretrained}: no such weights file")
        check_weights_file(file)
        return WeightsSource(model_name, str(file), f"{model_name} from {file}")
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
        raise OptionError(
            f"--clip-pretrained {pretrained!r} is neither a weights file nor a tag open_clip knows "
            f"for {model_name} (its tags: {tags})"
        )
    label = f"{model_name} '{pretrained}'"
    cached, source_url = _tag_cached(cfg)
    if not cached:
        _ensure_downloadable(label, source_url)
    return WeightsSource(model_name, pretrained, label, bool(cfg.get("quick_gelu", False)), offline=cached)


def expected_image_size(source: WeightsSource) -> int:
    """The longer side of the image tower's input for ``source``, read from its configuration without
    loading the model; 224 when a hub configuration cannot be read (a repository not cached yet).

    Raises an :class:`OptionError` when a configuration asks for an unusable size (see
    :func:`~lutgen.guidance.config.check_image_size`), naming the file for ``local-dir:`` models.
    """
    if source.model_name.startswith(LOCAL_DIR_PREFIX):
        folder = Path(source.model_name[len(LOCAL_DIR_PREFIX):])
        data = read_local_config(folder)  # checks both sizes, naming the file
        size = data.get("preprocess_cfg", {}).get("size", data["model_cfg"]["vision_cfg"]["image_size"])
        where = f"{folder / CONFIG_NAME}: the image size"
    else:
        model_cfg = _builtin_model_config(source.model_name)
        if model_cfg is None:
            return 224
        size = model_cfg.get("vision_cfg", {}).get("image_size")
        where = f"--clip-model {source.model_name}: vision_cfg.image_size"
    return max(check_image_size(size, where))


def _builtin_model_config(model_name: str) -> dict | None:
    """open_clip's configuration of ``model_name`` (an ``hf-hub:`` one only from the cache), or None."""
    open_clip = open_clip_for(model_name)

    try:
        with hub_offline():  # an hf-hub: name reads a cached config, never the network
            model_cfg = open_clip.get_model_config(model_name)
    except Exception:  # an hf-hub: repository not cached, or a cached file open_clip cannot read
        return None
    return model_cfg if isinstance(model_cfg, dict) else None


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for CLIP on ``device``: ``None`` means plain float32.

    ``auto`` is bfloat16 on CUDA and on CPUs with native bfloat16 matrix units (AVX512-BF16, AMX;
    see :data:`NATIVE_BF16_FLAGS`), float32 elsewhere (MPS included, and AVX-512 CPUs without them,
    where oneDNN's emulated bfloat16 is slower than float32).
    """
    check_clip_precision(precision)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return None


NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""CPU flags (``/proc/cpuinfo``) of bfloat16 matrix instructions. Without them oneDNN still runs
bfloat16 (``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is true on any AVX-512 CPU) but emulates
it: on an AVX-512 Xeon without them, a ViT-B-32 step took 3.3 times the CPU time of float32."""


def native_bf16(cpu_flags: set[str] | frozenset[str]) -> bool:
    """Whether a CPU with these ``/proc/cpuinfo`` flags multiplies bfloat16 matrices natively."""
    return bool(NATIVE_BF16_FLAGS & set(cpu_flags))


def cpu_flags(cpuinfo: str) -> set[str]:
    """The flags of the first processor listed in ``/proc/cpuinfo`` text (empty when there are none)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def _cpu_has_native_bf16() -> bool:
    """This CPU has bfloat16 matrix instructions and torch's oneDNN uses them (Linux; else False)."""
    try:
        flags = cpu_flags(Path("/proc/cpuinfo").read_text(errors="replace"))
        return native_bf16(flags) and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (OSError, AttributeError, RuntimeError):
        return False


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.rstrip(".")[:300]


class ClipInput:
    """How open_clip prepares images for a model, from its preprocessing configuration.

    Attributes:
        image_size: ``(height, width)`` of the images the image tower takes.
        interpolation: ``"bicubic"`` or ``"bilinear"``, open_clip's resampling for this model.
        resize_mode: open_clip's ``shortest`` / ``longest`` / ``squash``.
        mean, std: per-channel normalisation, 3 floats each.
    """

    def __init__(self, cfg: dict):
        size = cfg.get("size", 224)
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        interpolation = cfg.get("interpolation", "bicubic")
        self.interpolation = interpolation if interpolation in ("bicubic", "bilinear") else "bicubic"
        self.resize_mode = cfg.get("resize_mode", "shortest")
        self.mean = tuple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
        self.std = tuple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """``(images - mean) / std`` of ``(B, 3, H, W)`` images in ``[0, 1]``, in float32."""
        images = images.float()
        mean = torch.tensor(self.mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
        return (images - mean) / std


class ClipGuide:
    """A frozen open_clip model that embeds text once and images differentiably.

    Attributes:
        model: the open_clip model in eval mode, every parameter with ``requires_grad=False``.
        device: where the model lives.
        input: the model's :class:`ClipInput` (size, resampling, normalisation).
        image_size, interpolation, resize_mode: those of :attr:`input`.
        amp_dtype: autocast dtype for the model, ``None`` for float32.

    :func:`load_clip` stores the image tower's matrix weights in :attr:`amp_dtype` once (see
    :func:`~lutgen.guidance.vision_tower.cast_matmul_weights`); a guide built here around a float32
    model computes the same embeddings, casting the weights at every call.

    The image tower may be made ready later: ``prepare_image_tower`` (called once, by
    :meth:`load_image_tower`) reads its weights and swaps in the faster modules. It runs at
    :meth:`release_text_tower` or at the first image embedding, whichever comes first, so that the
    text tower embeds the prompts and goes before the image tower takes its memory. Once every
    prompt is embedded, :meth:`release_text_tower` frees the text tower (a third of ViT-B-32's
    weights); images can still be embedded, text no longer.
    """

    TEXT_TOWER_PARTS = ("transformer", "token_embedding", "positional_embedding", "ln_final",
                        "text_projection", "attn_mask", "text")
    """The attributes of an open_clip model that make up its text tower (``text`` in CustomTextCLIP)."""

    def __init__(self, model: nn.Module, tokenizer, device: torch.device, amp_dtype: torch.dtype | None = None,
                 prepare_image_tower: Callable[[], None] | None = None):
        self.model = model.eval().requires_grad_(False)
        self._prepare_image_tower = prepare_image_tower
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.amp_dtype = amp_dtype
        cfg = dict(getattr(model.visual, "preprocess_cfg", {}))
        cfg.setdefault("size", getattr(model.visual, "image_size", 224))
        self.input = ClipInput(cfg)
        self.image_size = self.input.image_size
        self.interpolation = self.input.interpolation
        self.resize_mode = self.input.resize_mode
        self.text_released = False

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def text_limit(self, prompt: str) -> tuple[int, int] | None:
        """``(tokens, context length)`` when ``prompt`` is longer than the text tower reads (its end is
        cut off); ``None`` when it fits or the tokenizer cannot count (only open_clip's BPE tokenizer can)."""
        encode, context = getattr(self.tokenizer, "encode", None), getattr(self.tokenizer, "context_length", None)
        if encode is None or not context:
            return None
        count = len(encode(prompt)) + 2  # start and end of text
        return (count, int(context)) if count > context else None

    @torch.no_grad()
    def embed_text(self, prompt: str) -> torch.Tensor:
        """The unit-norm embedding of ``prompt``, shape ``(1, D)`` float32 (computed in float32).

        Raises a :class:`LutgenError` after :meth:`release_text_tower`.
        """
        if self.text_released:
            raise LutgenError(
                f"cannot embed the prompt {prompt[:60]!r}: the CLIP text tower was released after the prompts "
                "were embedded; embed every prompt before calling release_text_tower"
            )
        tokens = self.tokenizer([prompt]).to(self.device)
        features = self.model.encode_text(tokens).float()
        return F.normalize(features, dim=-1)

    def load_image_tower(self) -> None:
        """Make the image tower ready (read its weights) if it is not yet; later calls do nothing.

        Raises a :class:`LutgenError` when its weights cannot be read.
        """
        if self._prepare_image_tower is None:
            return
        return_freed_memory()  # what the caller freed before (decoded images, the text tower)
        self._prepare_image_tower()
        self._prepare_image_tower = None
        self.model.visual.eval().requires_grad_(False)

    def release_text_tower(self) -> int:
        """Free the text tower (its weights and causal mask) once every prompt is embedded; returns
        how many values were freed (about 63 M for ViT-B-32, 253 MB in float32). Idempotent.

        The embeddings already made stay valid; :meth:`embed_text` raises afterwards, and
        :meth:`text_limit` still counts tokens (the tokenizer is kept).
        """
        freed = 0
        for name in self.TEXT_TOWER_PARTS:
            part = getattr(self.model, name, None)
            if isinstance(part, nn.Module):
                freed += sum(t.numel() for t in (*part.parameters(), *part.buffers()))
            elif isinstance(part, torch.Tensor):
                freed += part.numel()
            if hasattr(self.model, name):
                delattr(self.model, name)
        self.text_released = True
        self.load_image_tower()
        return freed

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """open_clip's normalisation of ``(B, 3, H, W)`` images in ``[0, 1]`` (see :class:`ClipInput`)."""
        return self.input.normalise(images)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings ``(B, D)`` float32 of ``(B, 3, h, w)`` images in ``[0, 1]``, where
        ``(h, w)`` is :attr:`image_size`. Differentiable with respect to ``images``."""
        self.load_image_tower()
        with self._autocast():
            features = self.model.encode_image(self.normalise(images))
        return F.normalize(features.float(), dim=-1)


def _move_all_but_image_tower(model: nn.Module, device: torch.device) -> None:
    """Move ``model`` to ``device`` but for its image tower (still unread, on the ``meta`` device)."""
    if device.type == "cpu":
        return  # read onto the CPU already
    visual = model.visual
    model.visual = nn.Identity()
    try:
        model.to(device)
    finally:
        model.visual = visual


def load_clip(
    model_name: str = DEFAULT_MODEL,
    pretrained: str | None = DEFAULT_PRETRAINED,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    source: WeightsSource | None = None,
    fast: bool = True,
) -> ClipGuide:
    """Load a frozen open_clip model and its tokenizer onto ``device``.

    A ``.safetensors`` file in open_clip's layout is loaded without random initialisation and without
    a second copy of the weights (:func:`~lutgen.guidance.loading.load_streamed`), and its image
    tower is read only when first needed (see :class:`ClipGuide`); other files go through open_clip.
    When CLIP runs in bfloat16, the image tower's matrix weights are stored in bfloat16 once
    (:func:`~lutgen.guidance.vision_tower.cast_matmul_weights`).

    Args:
        model_name, pretrained: as for :func:`resolve_weights` (ignored when ``source`` is given).
        device: torch device for the model.
        precision: ``auto``, ``fp32`` or ``bf16`` (see :func:`autocast_dtype`).
        source: an already resolved :class:`WeightsSource`.
        fast: swap in the faster, equivalent image-tower modules (:func:`speed_up_vision_tower`).

    Raises:
        LutgenError: the weights cannot be found or loaded (one sentence naming them).
    """
    from lutgen.guidance.loading import checkpoint_file, load_streamed

    device = torch.device(device)
    amp = autocast_dtype(device, precision)
    source = source or resolve_weights(model_name, pretrained)
    open_clip = open_clip_for(source.model_name)
    with hub_offline(source.offline):
        try:
            streamed = load_streamed(source, checkpoint_file(source), amp)
            if streamed is None:
                model = open_clip.create_model(
                    source.model_name,
                    pretrained=source.pretrained,
                    device=device,
                    force_quick_gelu=source.quick_gelu,
                    weights_only=True,
                )
                read_image_tower = None
            else:
                model, read_image_tower = streamed
                _move_all_but_image_tower(model, device)
            tokenizer = open_clip.get_tokenizer(source.model_name)
        except Exception as error:  # open_clip, safetensors and torch raise many kinds for unusable weights
            raise LutgenError(f"could not load the CLIP weights {source.label}: {_one_line(error)}") from error

    def prepare_image_tower() -> None:
        if read_image_tower is not None:
            try:
                read_image_tower()
            except Exception as error:  # a file changed or cut short since it was opened
                raise LutgenError(
                    f"could not load the CLIP weights {source.label}: {_one_line(error)}") from error
            model.visual.to(device)
        if amp is not None and getattr(model, "visual", None) is not None:
            cast_matmul_weights(model.visual, amp)
        if fast:
            speed_up_vision_tower(model)

    guide = ClipGuide(model, tokenizer, device, amp, prepare_image_tower)
    if read_image_tower is None:
        guide.load_image_tower()
    return guide
