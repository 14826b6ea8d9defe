"""Shared fixtures: a tiny open_clip model, saved the way real weights are, and small training images.

The tiny CLIP (about 1.7 M parameters, mostly the text tower's token table) is built once per session
with fixed random weights and saved as a ``local-dir:`` folder (``open_clip_config.json`` +
``open_clip_model.safetensors``). Code under test loads it through the same open_clip calls as the
published weights; nothing binary is committed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TINY_PREPROCESS = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}
TINY_NAME = "lutgen-test-tiny"


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A ``local-dir:`` folder holding the tiny CLIP: ``open_clip_config.json`` + ``open_clip_model.safetensors``."""
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny_clip")
    torch.manual_seed(1234)
    model = CLIP(**TINY_CLIP_CONFIG)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    config = {"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": TINY_PREPROCESS}
    (folder / "open_clip_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_clip_model(tiny_clip_dir) -> str:
    """The ``--clip-model`` value of the tiny CLIP."""
    return f"local-dir:{tiny_clip_dir}"


@pytest.fixture(scope="session")
def tiny_clip_registered(tiny_clip_dir, tmp_path_factory) -> tuple[str, Path]:
    """The tiny architecture registered with open_clip under a name, and its weights as a plain file:
    the ``--clip-model NAME --clip-pretrained FILE`` form."""
    import open_clip

    configs = tmp_path_factory.mktemp("tiny_config")
    (configs / f"{TINY_NAME}.json").write_text(json.dumps(TINY_CLIP_CONFIG), encoding="utf-8")
    open_clip.add_model_config(configs)
    return TINY_NAME, tiny_clip_dir / "open_clip_model.safetensors"


@pytest.fixture(scope="session")
def guide(tiny_clip_model):
    """The tiny CLIP loaded on the CPU in float32 (a :class:`~lutgen.guidance.clip.ClipGuide`), frozen."""
    from lutgen.guidance.clip import load_clip

    return load_clip(tiny_clip_model, None, "cpu", "fp32")


def _smooth_photo(height: int, width: int, seed: int) -> np.ndarray:
    """A colourful float image with gradients, a dark corner and some texture, (H, W, 3) in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width]).reshape(2, 1, 1)
    base = np.stack([x, y, 1 - x * y], axis=-1) * rng.uniform(0.6, 1.0, 3)
    base += 0.05 * rng.standard_normal((height, width, 3))
    base[: height // 5, : width // 5] = 0.002  # a patch of near-black
    return np.clip(base, 0, 1)


@pytest.fixture(scope="session")
def training_folder(tmp_path_factory) -> Path:
    """Small training images: 8-bit JPEG, 16-bit PNG, grey PNG, all smaller than CLIP's 224 px."""
    folder = tmp_path_factory.mktemp("train")
    Image.fromarray(np.uint8(_smooth_photo(72, 96, 1) * 255)).save(folder / "a_colour.jpg", quality=95)
    sixteen = np.uint16(np.rint(_smooth_photo(80, 60, 2) * 65535))
    import cv2

    cv2.imwrite(str(folder / "b_sixteen.png"), sixteen[..., ::-1])
    grey = np.uint8(_smooth_photo(64, 64, 3)[..., 0] * 255)
    Image.fromarray(grey, "L").save(folder / "c_grey.png")
    return folder
