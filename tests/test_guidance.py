"""CLIP guidance: where weights come from, failing fast offline, the frozen model and its preprocessing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import open_clip  # noqa: F401  (imported up front: the timings below measure the checks, not this import)
import pytest
import torch
from PIL import Image

from lutgen.errors import LutgenError, OptionError
from lutgen.guidance import clip as guidance
from lutgen.optim.views import centre_box, resample_box

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """A hub cache with nothing in it (whatever this machine has cached stays out of the test)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path))  # ~/.cache/clip, where URL-only tags are kept
    return constants


# ----------------------------------------------------------------------------------------------
# Finding the weights


def test_local_dir_and_plain_file_load_the_same_weights(tiny_clip_model, tiny_clip_registered):
    name, weights_file = tiny_clip_registered
    by_dir = guidance.load_clip(tiny_clip_model, None, "cpu", "fp32")
    by_file = guidance.load_clip(name, str(weights_file), "cpu", "fp32")
    for a, b in zip(by_dir.model.state_dict().values(), by_file.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(by_dir.embed_text("warm light"), by_file.embed_text("warm light"))


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda d: f"local-dir:{d / 'missing'}", "does not exist"),
        (lambda d: f"local-dir:{d}", "open_clip_config.json"),
    ],
)
def test_local_dir_problems_are_one_sentence(tmp_path, make, fragment):
    with pytest.raises(OptionError, match=fragment):
        guidance.resolve_weights(make(tmp_path), None)


def test_local_dir_without_weights(tmp_path, tiny_clip_dir):
    (tmp_path / "open_clip_config.json").write_bytes((tiny_clip_dir / "open_clip_config.json").read_bytes())
    with pytest.raises(OptionError, match="no weights file"):
        guidance.resolve_weights(f"local-dir:{tmp_path}", None)


def test_unknown_architecture_tag_and_missing_file():
    with pytest.raises(OptionError, match="not an architecture open_clip knows"):
        guidance.resolve_weights("ViT-Nonexistent-7", "openai")
    with pytest.raises(OptionError, match=r"tags: .*openai"):
        guidance.resolve_weights("ViT-B-32", "no_such_tag")
    with pytest.raises(OptionError, match="no such weights file"):
        guidance.resolve_weights("ViT-B-32", "/nowhere/weights.safetensors")


def test_uncached_weights_fail_at_once_in_offline_mode(empty_hub, monkeypatch):
    monkeypatch.setattr(empty_hub, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(LutgenError) as caught:
        guidance.load_clip("ViT-B-32", "openai", "cpu")
    assert time.perf_counter() - start < 2.0
    message = str(caught.value)
    assert "ViT-B-32 'openai'" in message and "offline" in message
    assert "--clip-pretrained" in message and "local-dir:" in message
    assert "\n" not in message


def test_uncached_weights_fail_at_once_when_the_hub_cannot_be_reached(empty_hub, monkeypatch):
    # Online mode, but the hub address is a closed local port: no 47 s of retries.
    monkeypatch.setattr(empty_hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(empty_hub, "ENDPOINT", "http://127.0.0.1:9")
    start = time.perf_counter()
    with pytest.raises(LutgenError, match="cannot be reached") as caught:
        guidance.resolve_weights("ViT-B-32", "laion2b_s34b_b79k")
    assert time.perf_counter() - start < 2.0
    assert "ViT-B-32 'laion2b_s34b_b79k'" in str(caught.value)


def test_cached_hub_weights_load_with_no_request(tiny_clip_model, tiny_clip_registered, tmp_path, monkeypatch):
    """A pretrained tag whose weights are in the hub cache loads offline, even with the hub unreachable."""
    from huggingface_hub import constants
    from open_clip import pretrained

    name, weights = tiny_clip_registered
    monkeypatch.setitem(pretrained._PRETRAINED, name, {"cachedtag": {"hf_hub": "lutgen-tests/tiny-clip/"}})
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--lutgen-tests--tiny-clip"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "snapshots" / revision / "open_clip_model.safetensors").write_bytes(weights.read_bytes())
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # any request would fail (and retry)

    start = time.perf_counter()
    source = guidance.resolve_weights(name, "cachedtag")
    assert source.offline and source.label == f"{name} 'cachedtag'"
    cached = guidance.load_clip(source=source, device="cpu", precision="fp32")
    assert time.perf_counter() - start < 5.0
    assert constants.HF_HUB_OFFLINE is False  # offline mode was only for the load
    local = guidance.load_clip(tiny_clip_model, None, "cpu", "fp32")
    assert torch.equal(cached.embed_text("dusk"), local.embed_text("dusk"))


def test_damaged_weights_file_is_one_sentence(tmp_path, tiny_clip_registered):
    """A file whose header looks right but whose tensors are missing fails when open_clip loads it."""
    import json
    import struct

    name, _ = tiny_clip_registered
    broken = tmp_path / "broken.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [10], "data_offsets": [0, 40]}}).encode()
    broken.write_bytes(struct.pack("<Q", len(header)) + header)  # the 40 bytes of data are missing
    with pytest.raises(LutgenError, match=r"could not load the CLIP weights .*broken\.safetensors") as caught:
        guidance.load_clip(name, str(broken), "cpu")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "make", "fragment"),
    [
        ("garbage.safetensors", lambda p: p.write_bytes(b"this is not a safetensors file"),
         "is not a safetensors file (its header is damaged)"),
        ("huge_header.safetensors", lambda p: p.write_bytes(b"\xff" * 8 + b"{}"), "header is damaged"),
        ("garbage.pt", lambda p: p.write_bytes(b"GIF89a not weights"), "neither a torch checkpoint nor a pickle"),
        ("empty.bin", lambda p: p.write_bytes(b""), "is empty"),
        ("folder.pt", lambda p: p.mkdir(), "it is a folder, not a weights file"),
        ("fifo.safetensors", lambda p: os.mkfifo(p), "it is a FIFO (named pipe), not a regular weights file"),
        ("loop.pt", lambda p: p.symlink_to(p), "symbolic link loop"),
    ],
)
def test_unusable_weights_files_are_refused_before_loading(tmp_path, tiny_clip_registered, name, make, fragment):
    arch, _ = tiny_clip_registered
    path = tmp_path / name
    make(path)
    start = time.perf_counter()
    with pytest.raises(OptionError) as caught:
        guidance.resolve_weights(arch, str(path))
    assert time.perf_counter() - start < 1.0  # a FIFO is not opened, a header is not trusted
    assert fragment in str(caught.value) and name in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"open_clip_model.safetensors": b"garbage"},
         "the weights file .*open_clip_model.safetensors is not a safetensors"),
        ({"weights.pt": b"PK\x03\x04"}, "has no weights file"),  # open_clip does not look for .pt files here
        ({"open_clip_pytorch_model.bin": b"GIF89a"}, "open_clip_pytorch_model.bin is neither a torch checkpoint"),
    ],
)
def test_local_dir_weights_are_checked_before_loading(tmp_path, tiny_clip_dir, files, fragment):
    (tmp_path / "open_clip_config.json").write_bytes((tiny_clip_dir / "open_clip_config.json").read_bytes())
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(OptionError, match=fragment):
        guidance.resolve_weights(f"local-dir:{tmp_path}", None)


def test_a_tag_wins_over_a_folder_of_the_same_name(tmp_path, empty_hub, monkeypatch):
    monkeypatch.setattr(empty_hub, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "openai").mkdir()  # not a weights file: the tag is meant
    with pytest.raises(LutgenError, match="ViT-B-32 'openai' are not in the local cache"):
        guidance.resolve_weights("ViT-B-32", "openai")


def _config_folder(tmp_path: Path, tiny_clip_dir: Path, edit) -> Path:
    """A ``local-dir:`` folder with the tiny model's weights and a configuration changed by ``edit``."""
    import json

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "open_clip_model.safetensors").symlink_to(tiny_clip_dir / "open_clip_model.safetensors")
    config = json.loads((tiny_clip_dir / "open_clip_config.json").read_text())
    text = edit(config)
    (folder / "open_clip_config.json").write_text(text if isinstance(text, str) else json.dumps(config))
    return folder


def _set(path: str, value):
    def edit(config):
        *parents, key = path.split(".")
        target = config
        for parent in parents:
            target = target[parent]
        target[key] = value

    return edit


def _drop(path: str):
    def edit(config):
        *parents, key = path.split(".")
        target = config
        for parent in parents:
            target = target[parent]
        del target[key]

    return edit


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (_set("model_cfg.vision_cfg.image_size", 0), "vision_cfg.image_size must be between 16 and 1024 pixels, not 0"),
        (_set("model_cfg.vision_cfg.image_size", -64), "between 16 and 1024 pixels, not -64"),
        (_set("model_cfg.vision_cfg.image_size", 100000), "not 100000"),
        (_set("model_cfg.vision_cfg.image_size", [0, 64]), "not [0, 64]"),
        (_set("model_cfg.vision_cfg.image_size", [64, 64, 64]), "a whole number of pixels or a [height, width] pair"),
        (_set("model_cfg.vision_cfg.image_size", "64"), "a whole number of pixels"),
        (_set("model_cfg.vision_cfg.image_size", 64.5), "a whole number of pixels"),
        (_set("model_cfg.vision_cfg.image_size", True), "a whole number of pixels"),
        (_set("model_cfg.vision_cfg.image_size", None), "a whole number of pixels"),
        (lambda c: json_text(c).replace("64,", "NaN,", 1), "a whole number of pixels"),
        (_drop("model_cfg.vision_cfg"), "has no model_cfg.vision_cfg object"),
        (_drop("model_cfg.text_cfg"), "has no model_cfg.text_cfg object"),
        (_set("model_cfg.vision_cfg", [1, 2]), "has a malformed model_cfg.vision_cfg object"),
        (_drop("model_cfg"), "has no model_cfg object"),
        (_set("model_cfg.embed_dim", 0), "model_cfg.embed_dim must be a whole number of at least 1, not 0"),
        (_set("preprocess_cfg.size", 0), "preprocess_cfg.size must be between 16 and 1024"),
        (_set("preprocess_cfg.std", [0.2, 0.0, 0.2]), "preprocess_cfg.std must be 3 numbers greater than 0"),
        (_set("preprocess_cfg.mean", [0.5, 0.5]), "preprocess_cfg.mean must be 3 finite numbers"),
        (_set("preprocess_cfg", "bicubic"), "preprocess_cfg must be a JSON object"),
        (lambda c: "{not json", "is not valid JSON (line 1: "),
        (lambda c: "", "is not valid JSON"),
        (lambda c: "[1, 2, 3]", "holds a JSON list, not an object with model_cfg"),
        (lambda c: "[" * 100000 + "]" * 100000, "open_clip_config.json"),
    ],
)
def test_bad_local_configs_are_one_sentence_naming_the_file(tmp_path, tiny_clip_dir, edit, fragment):
    folder = _config_folder(tmp_path, tiny_clip_dir, edit)
    with pytest.raises(OptionError) as caught:
        guidance.resolve_weights(f"local-dir:{folder}", None)
    message = str(caught.value)
    assert fragment in message and str(folder / "open_clip_config.json") in message and "\n" not in message


def json_text(config) -> str:
    import json

    return json.dumps(config)


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: os.mkfifo(p), lambda p: p.symlink_to("/dev/zero")])
def test_a_config_that_is_not_a_regular_file_is_refused_without_opening_it(tmp_path, tiny_clip_dir, make):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "open_clip_model.safetensors").symlink_to(tiny_clip_dir / "open_clip_model.safetensors")
    make(folder / "open_clip_config.json")
    with pytest.raises(OptionError, match=r"cannot read .*open_clip_config\.json: it is (a folder|a FIFO|a character)"):
        guidance.resolve_weights(f"local-dir:{folder}", None)


def test_image_size_pairs_are_accepted_and_the_longer_side_is_used(tmp_path, tiny_clip_dir):
    folder = _config_folder(tmp_path, tiny_clip_dir, _set("model_cfg.vision_cfg.image_size", [48, 64]))
    source = guidance.resolve_weights(f"local-dir:{folder}", None)
    assert guidance.expected_image_size(source) == 64
    assert guidance.expected_image_size(guidance.resolve_weights("ViT-B-32", None)) == 224


# ----------------------------------------------------------------------------------------------
# The model


def test_model_is_frozen_and_text_embedding_is_unit_norm(guide):
    assert not any(p.requires_grad for p in guide.model.parameters())
    assert not guide.model.training
    text = guide.embed_text("golden hour warm sunlight")
    assert text.shape == (1, 32) and not text.requires_grad
    assert torch.linalg.vector_norm(text).item() == pytest.approx(1.0, abs=1e-6)


def test_faster_image_tower_computes_the_same_function(tiny_clip_model):
    stock = guidance.load_clip(tiny_clip_model, None, "cpu", "fp32", fast=False)
    fast = guidance.load_clip(tiny_clip_model, None, "cpu", "fp32", fast=True)
    assert isinstance(fast.model.visual.conv1, guidance.LinearPatchEmbedding)
    assert isinstance(fast.model.visual.transformer.resblocks[0].attn, guidance.PackedSelfAttention)
    torch.manual_seed(0)
    images = torch.rand(3, 3, *stock.image_size)
    outputs, grads = [], []
    for g in (stock, fast):
        x = images.clone().requires_grad_(True)
        emb = g.embed_images(x)
        (emb[:, 0].sum() - emb[:, 1].sum()).backward()
        outputs.append(emb.detach())
        grads.append(x.grad)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=2e-6)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-7)


def test_image_embedding_is_differentiable_and_bf16_agrees(tiny_clip_model):
    fp32 = guidance.load_clip(tiny_clip_model, None, "cpu", "fp32")
    bf16 = guidance.load_clip(tiny_clip_model, None, "cpu", "bf16")
    assert guidance.autocast_dtype(torch.device("cpu"), "fp32") is None
    assert bf16.amp_dtype == torch.bfloat16
    torch.manual_seed(1)
    x = torch.rand(2, 3, *fp32.image_size)
    a, b = fp32.embed_images(x), bf16.embed_images(x)
    assert b.dtype == torch.float32
    cosine = (a * b).sum(-1)
    assert cosine.min().item() > 0.99


@pytest.fixture(scope="module")
def default_preprocess_cfg() -> dict:
    """open_clip's preprocessing configuration of the default model, ViT-B-32 'openai' (no weights loaded)."""
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    cfg = merge_preprocess_dict(PreprocessCfg(), open_clip.get_pretrained_cfg("ViT-B-32", "openai"))
    cfg["size"] = open_clip.get_model_config("ViT-B-32")["vision_cfg"]["image_size"]
    return cfg


def test_guide_takes_its_input_format_from_the_model(guide):
    from conftest import TINY_CLIP_CONFIG, TINY_PREPROCESS

    size = TINY_CLIP_CONFIG["vision_cfg"]["image_size"]
    assert guide.image_size == (size, size)
    assert guide.input.mean == tuple(TINY_PREPROCESS["mean"]) and guide.input.std == tuple(TINY_PREPROCESS["std"])
    assert (guide.interpolation, guide.resize_mode) == ("bicubic", "shortest")


@pytest.mark.parametrize(
    ("size", "mean_levels", "p999_levels"),
    [((320, 320), 0.5, 1.5), ((672, 448), 0.5, 1.5), ((300, 451), 3.5, 30.0)],
)
def test_centred_view_matches_open_clip_preprocessing(default_preprocess_cfg, size, mean_levels, p999_levels):
    """For a centred view, lutgen's tensor path gives CLIP what open_clip's own transform gives it
    (ViT-B-32 'openai': shortest side to 224 px, bicubic, centre crop, OpenAI mean/std).

    The differences left are those of resampling: Pillow's bicubic reads 8-bit pixels and rounds its
    result to 8 bits, torch's antialiased bicubic stays in float. 320 x 320 (no crop) and 672 x 448
    (a crop of whole pixels) agree to 8-bit rounding: measured mean 0.3 and 99.9th percentile 1.0
    levels of 255 (tolerance 0.5 and 1.5). For 300 x 451 torchvision resizes the long side to
    int(336.75) = 336 px, squeezing the width by 0.2 %, so its crop window drifts from the exact
    centred box by up to 0.8 source pixels at the right edge: measured mean 2.9 levels, 99.9th
    percentile 25 along sharp edges (tolerance 3.5 and 30).
    """
    from open_clip.transform import PreprocessCfg, image_transform_v2

    height, width = size
    with Image.open(ROOT / "images" / "chelsea_cat.jpg") as photo:
        source = photo.convert("RGB").resize((width, height), Image.LANCZOS)
    reference = image_transform_v2(PreprocessCfg(**default_preprocess_cfg), is_train=False)(source).unsqueeze(0)

    clip_input = guidance.ClipInput(default_preprocess_cfg)
    pixels = torch.from_numpy(np.asarray(source).astype(np.float32) / 255).permute(2, 0, 1)
    box = centre_box(height, width, clip_input.image_size, clip_input.resize_mode)
    view = resample_box(pixels, box, clip_input.image_size, clip_input.interpolation)
    ours = clip_input.normalise(view.unsqueeze(0))

    assert ours.shape == reference.shape == (1, 3, 224, 224)
    levels = ((ours - reference) * torch.tensor(clip_input.std).view(1, 3, 1, 1)).abs() * 255
    assert levels.mean().item() < mean_levels
    assert torch.quantile(levels.flatten(), 0.999).item() < p999_levels
