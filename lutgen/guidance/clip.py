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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from lutgen.errors import LutgenError, OptionError
from lutgen.guidance import check_clip_precision
from lutgen.guidance.config import (
    CONFIG_NAME,
    check_image_size,
    check_weights_file,
    local_dir_weights,
    read_local_config,
)

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"
LOCAL_DIR_PREFIX = "local-dir:"
HF_HUB_PREFIX = "hf-hub:"
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

    import open_clip

    if model_name.startswith(HF_HUB_PREFIX):
        return _resolve_hf_hub(model_name)
    model_name = model_name.replace("/", "-")  # open_clip's own spelling: ViT-B/32 is ViT-B-32
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
    import open_clip

    try:
        with hub_offline():  # an hf-hub: name reads a cached config, never the network
            model_cfg = open_clip.get_model_config(model_name)
    except Exception:  # an hf-hub: repository not cached, or a cached file open_clip cannot read
        return None
    return model_cfg if isinstance(model_cfg, dict) else None


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for CLIP on ``device``: ``None`` means plain float32.

    ``auto`` is bfloat16 on CUDA and on CPUs with native bfloat16 matrix units (AVX512-BF16, AMX),
    float32 elsewhere (MPS included).
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


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class PackedSelfAttention(nn.Module):
    """Self-attention computing the same function as the ``nn.MultiheadAttention`` it wraps, faster.

    ``nn.MultiheadAttention`` in batch-first mode multiplies a transposed (non-contiguous) input by its
    in-projection, which torch runs as one small matrix product per token position; here the
    projection is one matrix product over all ``B * L`` tokens, followed by scaled-dot-product
    attention. The wrapped module's parameters are used as they are.
    """

    def __init__(self, attention: nn.MultiheadAttention):
        super().__init__()
        self.inner = attention
        self.heads = attention.num_heads

    @staticmethod
    def supports(attention: nn.Module) -> bool:
        return (
            type(attention) is nn.MultiheadAttention
            and attention.batch_first
            and attention._qkv_same_embed_dim
            and attention.in_proj_bias is not None
            and attention.bias_k is None
            and not attention.add_zero_attn
            and attention.dropout == 0.0
        )

    def forward(self, query, key=None, value=None, need_weights=False, attn_mask=None):
        if (key is not None and key is not query) or (value is not None and value is not query):
            return self.inner(query, key, value, need_weights=need_weights, attn_mask=attn_mask)
        batch, length, width = query.shape
        qkv = F.linear(query, self.inner.in_proj_weight, self.inner.in_proj_bias)
        q, k, v = qkv.view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(batch, length, width)
        return self.inner.out_proj(out), None


class LinearPatchEmbedding(nn.Module):
    """A ViT patch-embedding convolution (kernel = stride, no padding) computed as one matrix product.

    Same function and parameters as the wrapped ``nn.Conv2d``; its backward pass to the image is a
    plain matrix product instead of a transposed convolution. Output ``(B, E, H / p, W / p)``.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.inner = conv

    @staticmethod
    def supports(conv: nn.Module) -> bool:
        return (
            type(conv) is nn.Conv2d
            and conv.kernel_size == conv.stride
            and conv.padding in ((0, 0), 0)
            and conv.dilation == (1, 1)
            and conv.groups == 1
            and conv.padding_mode == "zeros"
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = image.shape
        ph, pw = self.inner.kernel_size
        gh, gw = height // ph, width // pw
        image = image[:, :, : gh * ph, : gw * pw]
        patches = image.reshape(batch, channels, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(batch, gh * gw, channels * ph * pw)
        weight = self.inner.weight.reshape(self.inner.out_channels, -1)
        tokens = F.linear(patches, weight, self.inner.bias)  # (B, L, E)
        return tokens.transpose(1, 2).unflatten(2, (gh, gw))


def speed_up_vision_tower(model: nn.Module) -> int:
    """Swap the image tower's attention and patch embedding for :class:`PackedSelfAttention` and
    :class:`LinearPatchEmbedding` where the layout allows it; returns how many modules were swapped.

    The swapped modules compute the same function with the same parameters (tests compare outputs).
    Towers of other kinds (timm, ResNet) are left as they are.
    """
    visual = getattr(model, "visual", None)
    swapped = 0
    conv = getattr(visual, "conv1", None)
    if conv is not None and LinearPatchEmbedding.supports(conv):
        visual.conv1 = LinearPatchEmbedding(conv)
        swapped += 1
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", [])
    for block in blocks:
        attention = getattr(block, "attn", None)
        if attention is not None and PackedSelfAttention.supports(attention):
            block.attn = PackedSelfAttention(attention)
            swapped += 1
    return swapped


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
    """

    def __init__(self, model: nn.Module, tokenizer, device: torch.device, amp_dtype: torch.dtype | None = None):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.amp_dtype = amp_dtype
        cfg = dict(getattr(model.visual, "preprocess_cfg", {}))
        cfg.setdefault("size", getattr(model.visual, "image_size", 224))
        self.input = ClipInput(cfg)
        self.image_size = self.input.image_size
        self.interpolation = self.input.interpolation
        self.resize_mode = self.input.resize_mode

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
        """The unit-norm embedding of ``prompt``, shape ``(1, D)`` float32 (computed in float32)."""
        tokens = self.tokenizer([prompt]).to(self.device)
        features = self.model.encode_text(tokens).float()
        return F.normalize(features, dim=-1)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """open_clip's normalisation of ``(B, 3, H, W)`` images in ``[0, 1]`` (see :class:`ClipInput`)."""
        return self.input.normalise(images)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings ``(B, D)`` float32 of ``(B, 3, h, w)`` images in ``[0, 1]``, where
        ``(h, w)`` is :attr:`image_size`. Differentiable with respect to ``images``."""
        with self._autocast():
            features = self.model.encode_image(self.normalise(images))
        return F.normalize(features.float(), dim=-1)


def load_clip(
    model_name: str = DEFAULT_MODEL,
    pretrained: str | None = DEFAULT_PRETRAINED,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    source: WeightsSource | None = None,
    fast: bool = True,
) -> ClipGuide:
    """Load a frozen open_clip model and its tokenizer onto ``device``.

    Args:
        model_name, pretrained: as for :func:`resolve_weights` (ignored when ``source`` is given).
        device: torch device for the model.
        precision: ``auto``, ``fp32`` or ``bf16`` (see :func:`autocast_dtype`).
        source: an already resolved :class:`WeightsSource`.
        fast: swap in the faster, equivalent image-tower modules (:func:`speed_up_vision_tower`).

    Raises:
        LutgenError: the weights cannot be found or loaded (one sentence naming them).
    """
    import open_clip

    device = torch.device(device)
    amp = autocast_dtype(device, precision)
    source = source or resolve_weights(model_name, pretrained)
    with hub_offline(source.offline):
        try:
            model = open_clip.create_model(
                source.model_name,
                pretrained=source.pretrained,
                device=device,
                force_quick_gelu=source.quick_gelu,
                weights_only=True,
            )
            tokenizer = open_clip.get_tokenizer(source.model_name)
        except Exception as error:  # open_clip and torch raise many kinds for unusable weights
            raise LutgenError(f"could not load the CLIP weights {source.label}: {_one_line(error)}") from error
    if fast:
        speed_up_vision_tower(model)
    return ClipGuide(model, tokenizer, device, amp)
