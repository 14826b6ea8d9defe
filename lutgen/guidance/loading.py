"""Building an open_clip model from a safetensors file without a second copy of its weights.

open_clip's own loading builds the model with random weights (about 2.6 s and 600 MB for ViT-B-32),
then reads the whole file into a second set of tensors and copies it in: a transient 1.2 GB. Here,
for a ``.safetensors`` file in open_clip's own layout (every name and shape of the model, nothing
else), the model is built on the ``meta`` device (no memory, no initialisation) and each tensor of
the file becomes the model's parameter itself:

- the text tower's tensors stay mapped from the file (safetensors' zero-copy tensors): only the
  pages a prompt touches are read, so the 49408-row token table costs a few rows, and the whole
  tower goes away with :meth:`~lutgen.guidance.clip.ClipGuide.release_text_tower`;
- the image tower's tensors are read later, when it is first needed, one by one into memory (not
  file-backed), the weights that only matrix products read (see
  :func:`~lutgen.guidance.vision_tower.matmul_weight_names`) straight into the compute dtype. So
  the text tower can embed the prompts and be released before the image tower takes its memory:
  the two are never in memory together (for ViT-B-32, 153 MB of text tower, 175 MB of image
  tower in bfloat16).

Other files (``.bin``/``.pt`` checkpoints, other layouts that open_clip converts) return ``None``
from :func:`load_streamed`; the caller then uses open_clip's ordinary loading.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from lutgen.guidance.vision_tower import matmul_weight_names

IMAGE_TOWER_PREFIX = "visual."

_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def checkpoint_file(source) -> Path | None:
    """The local weights file open_clip would load for a resolved ``source``
    (:class:`~lutgen.guidance.clip.WeightsSource`), or ``None`` for random weights.

    Tags and ``hf-hub:`` repositories go through open_clip's own download functions (which return
    the cached file; call this under :func:`~lutgen.guidance.clip.hub_offline` when the source is
    cached).
    """
    from open_clip import pretrained as oc_pretrained

    from lutgen.guidance.config import HF_HUB_PREFIX, LOCAL_DIR_PREFIX, local_dir_weights

    name = source.model_name
    if name.startswith(LOCAL_DIR_PREFIX):
        return local_dir_weights(Path(name[len(LOCAL_DIR_PREFIX):]))
    if name.startswith(HF_HUB_PREFIX):
        return Path(oc_pretrained.download_pretrained_from_hf(name[len(HF_HUB_PREFIX):]))
    if source.pretrained is None:
        return None
    if Path(source.pretrained).is_file():
        return Path(source.pretrained)
    cfg = oc_pretrained.get_pretrained_cfg(name, source.pretrained)
    return Path(oc_pretrained.download_pretrained(cfg)) if cfg else None


def return_freed_memory() -> None:
    """Hand the heap memory freed so far back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    glibc keeps freed blocks of up to 32 MB in its heap once such blocks have been freed (its
    mmap threshold grows), so memory freed by decoding images or by the text tower would still
    count against the process; for ViT-B-32 with the bundled images this returns about 100 MB.
    """
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def safetensors_index(path: Path) -> tuple[dict[str, dict], int]:
    """The tensors of a safetensors file, ``{name: {"dtype", "shape", "data_offsets"}}``, and the
    byte offset where their data starts (the ``__metadata__`` entry left out)."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header, 8 + length


READ_CHUNK_BYTES = 1 << 22
"""Converting reads go through one buffer of this size (4 MiB), so no full-size copy is made."""


def read_tensor(handle, entry: dict, data_start: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """One tensor of an open safetensors file, read into a new tensor (not file-backed) of ``dtype``
    (``None``: as stored). A conversion goes through a small buffer, chunk by chunk, so that reading a
    float32 weight into bfloat16 never holds the float32 copy (nor leaves it to the allocator)."""
    stored = _SAFETENSORS_DTYPES[entry["dtype"]]
    begin, end = entry["data_offsets"]
    handle.seek(data_start + begin)
    if dtype is None or dtype == stored:
        raw = torch.empty(end - begin, dtype=torch.uint8)
        _read_exactly(handle, raw)
        return raw.view(stored).reshape(entry["shape"])
    out = torch.empty(entry["shape"], dtype=dtype).view(-1)
    step = max(1, READ_CHUNK_BYTES // stored.itemsize)
    chunk = torch.empty(min(step, out.numel()) * stored.itemsize, dtype=torch.uint8)
    for first in range(0, out.numel(), step):
        count = min(step, out.numel() - first)
        part = chunk[: count * stored.itemsize]
        _read_exactly(handle, part)
        out[first : first + count] = part.view(stored)
    return out.view(entry["shape"])


def _read_exactly(handle, into: torch.Tensor) -> None:
    if handle.readinto(into.numpy()) != into.numel():
        raise ValueError("the file ends inside a tensor")


@contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """open_clip logs a warning when it builds a model without weights; here they come next."""
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(before)


def build_skeleton(source) -> nn.Module:
    """The open_clip model of ``source`` on the ``meta`` device: its structure and preprocessing
    configuration, no weights (builds in under a tenth of a second)."""
    from lutgen.guidance.open_clip_import import open_clip_for

    open_clip = open_clip_for(source.model_name)

    with _quiet_open_clip(), torch.device("meta"), _NoInitialValues():
        return open_clip.create_model(
            source.model_name, pretrained=source.pretrained, load_weights=False, device="meta",
            force_quick_gelu=source.quick_gelu, weights_only=True,
        )


class _NoInitialValues(TorchFunctionMode):
    """While a skeleton is built on ``meta``: no initial values are computed.

    A ``meta`` tensor has no values, yet torch runs the initialisations and the arithmetic on such
    tensors in Python (its reference implementations), whose checks import SymPy (2 s and 34 MB)
    and whose wrappers import torch's compiler. Here the ``nn.init`` functions and the in-place
    fills of a ``meta`` tensor do nothing, and the factories that make values (``randn``, ``ones``
    and the like: class embeddings, scales, masks, small by design) make zeros or their values on the
    CPU, where the arithmetic that follows is plain; ``create_model(device="meta")`` then moves every
    tensor to ``meta``. An operation not listed here runs as it would have.
    """

    _VALUE_FACTORIES = (torch.randn, torch.rand, torch.ones, torch.zeros, torch.full, torch.arange, torch.tensor)
    _RANDOM = (torch.randn, torch.rand)
    _FILLS = (torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.fill_, torch.Tensor.zero_,
              torch.Tensor.triu_, torch.Tensor.tril_)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in self._VALUE_FACTORIES:
            kwargs.pop("generator", None)
            kwargs["device"] = "cpu"
            return (torch.zeros if func in self._RANDOM else func)(*args, **kwargs)
        target = args[0] if args else kwargs.get("tensor")
        if isinstance(target, torch.Tensor) and target.is_meta and (
                func in self._FILLS or getattr(func, "__module__", None) == "torch.nn.init"):
            return target
        return func(*args, **kwargs)


def _fits(model: nn.Module, index: dict[str, dict]) -> bool:
    """Whether the file holds exactly the model's state dict (names and shapes), in known dtypes."""
    expected = model.state_dict()
    if set(expected) != set(index):
        return False
    return all(
        index[name]["dtype"] in _SAFETENSORS_DTYPES and list(tensor.shape) == list(index[name]["shape"])
        for name, tensor in expected.items()
    )


def _causal_mask(size: int) -> torch.Tensor:
    """The additive causal mask of open_clip's text transformer: ``-inf`` above the diagonal, else 0."""
    return torch.full((size, size), float("-inf")).triu_(1)


def _fill_unsaved_buffers(model: nn.Module, skip: nn.Module | None) -> bool:
    """Build the buffers no file holds (the text tower's causal ``attn_mask``) outside ``skip``;
    False if another buffer or parameter outside ``skip`` is left without a value."""
    skipped = {id(t) for t in (*skip.parameters(), *skip.buffers())} if skip is not None else set()
    for module in model.modules():
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer is None or not buffer.is_meta or id(buffer) in skipped:
                continue
            if name != "attn_mask" or buffer.ndim != 2 or buffer.shape[0] != buffer.shape[1]:
                return False
            setattr(module, name, _causal_mask(buffer.shape[0]))
    tensors = (*model.parameters(), *model.buffers())
    return not any(t.is_meta and id(t) not in skipped for t in tensors)


def _saves_every_buffer(module: nn.Module) -> bool:
    """Whether every buffer of ``module`` is in its state dict (so that a file can fill them all)."""
    return len(module.state_dict()) == len(list(module.parameters())) + len(list(module.buffers()))


def load_streamed(
    source, path: Path | None, matmul_dtype: torch.dtype | None
) -> tuple[nn.Module, Callable[[], None]] | None:
    """The model of ``source`` with the weights of ``path``, built as the module docstring says,
    and the function that reads its image tower.

    Everything but the image tower is in place on return; the image tower stays on the ``meta``
    device until the returned function is called (once), so that the text tower can embed the
    prompts and be released before the image tower takes its memory. The image tower's matrix
    weights are read in ``matmul_dtype`` (``None``: float32 like the rest).

    Returns ``None`` when ``path`` is not a safetensors file in open_clip's layout for this model
    (the caller falls back to open_clip's loading). Parameters do not require gradients.
    """
    if path is None or path.suffix.lower() != ".safetensors":
        return None
    from safetensors import safe_open

    model = build_skeleton(source)
    index, data_start = safetensors_index(path)
    visual = getattr(model, "visual", None)
    if not isinstance(visual, nn.Module) or not _saves_every_buffer(visual) or not _fits(model, index):
        return None
    expected = model.state_dict()
    later = {name for name in index if name.startswith(IMAGE_TOWER_PREFIX)}
    state = {}
    with open(path, "rb") as handle, safe_open(str(path), framework="pt") as mapped:
        for name, entry in index.items():
            if name in later:
                continue
            dtype = expected[name].dtype
            state[name] = read_tensor(handle, entry, data_start, dtype) if "." not in name else (
                mapped.get_tensor(name).to(dtype))
    model.load_state_dict(state, strict=False, assign=True)
    del state
    if not _fill_unsaved_buffers(model, skip=visual):
        return None
    casts = matmul_weight_names(visual) if matmul_dtype is not None else set()

    def load_image_tower() -> None:
        tower = {}
        with open(path, "rb") as handle:
            for name in later:
                key = name[len(IMAGE_TOWER_PREFIX):]
                dtype = matmul_dtype if key in casts else expected[name].dtype
                tower[key] = read_tensor(handle, index[name], data_start, dtype)
        visual.load_state_dict(tower, strict=True, assign=True)
        visual.requires_grad_(False)

    return model.requires_grad_(False), load_image_tower
