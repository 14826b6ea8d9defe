"""Checking CLIP configurations and weights files before anything is loaded (no torch, no open_clip).

A ``local-dir:`` model brings its own ``open_clip_config.json``; its values size everything that
follows (the working resolution of the training images, the views CLIP sees), so they are checked
here and a bad one is one sentence naming the file. A weights file given to ``--clip-pretrained``
is checked by its first bytes, so that a damaged or foreign file is refused before the images are
decoded and the model is built.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from lutgen.errors import OptionError
from lutgen.fileio import check_regular_file

CONFIG_NAME = "open_clip_config.json"
LOCAL_DIR_PREFIX = "local-dir:"
"""``--clip-model local-dir:FOLDER``: a model whose configuration and weights are in FOLDER."""
HF_HUB_PREFIX = "hf-hub:"
"""``--clip-model hf-hub:ORG/REPO``: a model published on the Hugging Face hub."""
MIN_IMAGE_SIZE = 16
"""The smallest image side a CLIP configuration may ask for (one ViT patch of 16 pixels)."""
MAX_IMAGE_SIZE = 1024
"""The largest image side a CLIP configuration may ask for (published models use 224 to 448)."""
MAX_CONFIG_BYTES = 1 << 20
MAX_SAFETENSORS_HEADER = 100 << 20  # safetensors' own limit on the JSON header
LOCAL_DIR_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth")
LOCAL_DIR_PREFERRED = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth",
)
"""The weights files open_clip looks for in a ``local-dir:`` folder, in its order of preference."""
_TORCH_MAGICS = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive, or a pickle (protocol 2 and later)


def check_image_size(size, where: str) -> tuple[int, int]:
    """``size`` (a whole number, or ``[height, width]``) as ``(height, width)``, each within
    :data:`MIN_IMAGE_SIZE`..:data:`MAX_IMAGE_SIZE`; else an :class:`OptionError` naming ``where``."""
    sides = list(size) if isinstance(size, (list, tuple)) else [size, size]
    if len(sides) != 2 or not all(_whole(side) for side in sides):
        raise OptionError(f"{where} must be a whole number of pixels or a [height, width] pair, not {size!r}")
    sides = [int(side) for side in sides]
    if not all(MIN_IMAGE_SIZE <= side <= MAX_IMAGE_SIZE for side in sides):
        raise OptionError(f"{where} must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels, not {size!r}")
    return sides[0], sides[1]


def _whole(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _object(parent: dict, key: str, path: Path, within: str = "") -> dict:
    value = parent.get(key)
    if not isinstance(value, dict):
        state = "has no" if value is None else "has a malformed"
        raise OptionError(f"{path} {state} {within}{key} object; it is not an open_clip configuration")
    return value


def _check_preprocess(cfg, path: Path) -> None:
    """The optional ``preprocess_cfg``: an object whose ``size``, ``mean`` and ``std`` are usable."""
    if cfg is None:
        return
    if not isinstance(cfg, dict):
        raise OptionError(f"{path}: preprocess_cfg must be a JSON object")
    if "size" in cfg:
        check_image_size(cfg["size"], f"{path}: preprocess_cfg.size")
    for key in ("mean", "std"):
        values = cfg.get(key)
        if values is None:
            continue
        numbers = isinstance(values, list) and len(values) == 3
        numbers = numbers and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not numbers or not all(math.isfinite(v) for v in values):
            raise OptionError(f"{path}: preprocess_cfg.{key} must be 3 finite numbers, not {values!r}")
        if key == "std" and not all(v > 0 for v in values):
            raise OptionError(f"{path}: preprocess_cfg.std must be 3 numbers greater than 0, not {values!r}")


def read_local_config(folder: Path) -> dict:
    """The checked contents of ``folder/open_clip_config.json`` (``model_cfg``, maybe ``preprocess_cfg``).

    Raises an :class:`OptionError` naming the file when it is not a readable regular file, not
    JSON, not an object, lacks ``model_cfg``, ``vision_cfg`` or ``text_cfg``, or when its image
    sizes, ``embed_dim`` or normalisation are unusable.
    """
    path = Path(folder) / CONFIG_NAME
    check_regular_file(path, "JSON file", OptionError)
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise OptionError(f"{path} is {size} bytes; an open_clip configuration is a few kilobytes")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise OptionError(f"{path} is not UTF-8 text; it is not an open_clip configuration") from None
    except json.JSONDecodeError as error:
        raise OptionError(f"{path} is not valid JSON (line {error.lineno}: {error.msg})") from None
    except RecursionError:
        raise OptionError(f"{path} is nested too deeply to be an open_clip configuration") from None
    if not isinstance(data, dict):
        raise OptionError(f"{path} holds a JSON {type(data).__name__}, not an object with model_cfg")
    model_cfg = _object(data, "model_cfg", path)
    vision = _object(model_cfg, "vision_cfg", path, "model_cfg.")
    _object(model_cfg, "text_cfg", path, "model_cfg.")
    embed_dim = model_cfg.get("embed_dim")
    if not (_whole(embed_dim) and embed_dim >= 1):
        raise OptionError(f"{path}: model_cfg.embed_dim must be a whole number of at least 1, not {embed_dim!r}")
    check_image_size(vision.get("image_size"), f"{path}: model_cfg.vision_cfg.image_size")
    _check_preprocess(data.get("preprocess_cfg"), path)
    return data


def local_dir_weights(folder: Path) -> Path | None:
    """The weights file open_clip loads from a ``local-dir:`` folder (its own order of preference), or None."""
    found = [p for p in Path(folder).iterdir() if p.suffix in LOCAL_DIR_WEIGHT_SUFFIXES]
    preferred = [p for p in found if p.name in LOCAL_DIR_PREFERRED]
    preferred.sort(key=lambda p: LOCAL_DIR_PREFERRED.index(p.name))
    if preferred:
        return preferred[0]
    found.sort(key=lambda p: (p.suffix != ".safetensors", p.name))
    return found[0] if found else None


def check_weights_file(path: Path, what: str = "--clip-pretrained") -> Path:
    """Refuse a weights file that open_clip could not load, by its first bytes (loads nothing).

    ``.safetensors`` files must start with a sane header length and a JSON object; every other
    file is read by ``torch.load`` and must be a zip archive (``torch.save``) or a pickle. ``what``
    names the file's origin in the message.
    """
    path = check_regular_file(path, "weights file", OptionError)
    size = path.stat().st_size
    if size == 0:
        raise OptionError(f"{what} {path} is empty; it is not a weights file")
    with open(path, "rb") as handle:
        head = handle.read(8)
        if path.suffix.lower() == ".safetensors":
            length = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            if not 2 <= length <= min(MAX_SAFETENSORS_HEADER, size - 8) or handle.read(1) != b"{":
                raise OptionError(f"{what} {path} is not a safetensors file (its header is damaged)")
        elif not head.startswith(_TORCH_MAGICS):
            raise OptionError(
                f"{what} {path} is neither a torch checkpoint nor a pickle; "
                "give a .safetensors, .bin, .pt or .pth weights file"
            )
    return path


def architecture_config(model_name: str) -> dict | None:
    """The ``model_cfg`` of an open_clip model name, read without importing open_clip; None when it is not
    known here (an ``hf-hub:`` model, an unknown name, a configuration that cannot be read).

    A ``local-dir:`` model's comes from its ``open_clip_config.json``, a built-in architecture's from
    the JSON file open_clip ships for it.
    """
    try:
        if model_name.startswith(LOCAL_DIR_PREFIX):
            return read_local_config(Path(model_name[len(LOCAL_DIR_PREFIX):]).expanduser())["model_cfg"]
        if model_name.startswith(HF_HUB_PREFIX):
            return None
        import importlib.util

        spec = importlib.util.find_spec("open_clip")  # finds the package without running it
        if spec is None or not spec.submodule_search_locations:
            return None
        for folder in spec.submodule_search_locations:
            path = Path(folder) / "model_configs" / f"{model_name}.json"
            if path.is_file():
                config = json.loads(path.read_text(encoding="utf-8"))
                return config if isinstance(config, dict) else None
    except (OSError, ValueError, OptionError, KeyError, TypeError):
        return None
    return None
