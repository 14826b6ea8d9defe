"""CLIP guidance: where weights come from, failing fast offline, the frozen model and its preprocessing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import open_clip  # imported up front: the timings below measure the checks, not this import
import pytest
import torch
from PIL import Image

from lutgen.errors import LutgenError, OptionError
from lutgen.guidance import clip as guidance
from lutgen.guidance import loading, vision_tower
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
    by_dir.load_image_tower()
    by_file.load_image_tower()
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
    fast.load_image_tower()  # the faster modules go in when the image tower is read
    assert isinstance(fast.model.visual.conv1, guidance.LinearPatchEmbedding)
    assert isinstance(fast.model.visual.transformer.resblocks[0].attn, guidance.PackedSelfAttention)
    last = fast.model.visual.transformer.resblocks[-1]
    assert isinstance(last, vision_tower.ClassTokenBlock) and isinstance(last.inner.attn, guidance.PackedSelfAttention)
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


# ----------------------------------------------------------------------------------------------
# Memory and speed: streamed loading, the image tower cast once, the text tower released


def _stock_model(tiny_clip_registered):
    """The tiny CLIP as open_clip loads it itself (random initialisation, then the weights copied in)."""
    name, weights_file = tiny_clip_registered
    return open_clip.create_model(name, pretrained=str(weights_file)).eval().requires_grad_(False)


def test_streamed_loading_builds_the_model_open_clip_builds(tiny_clip_registered):
    name, weights_file = tiny_clip_registered
    source = guidance.resolve_weights(name, str(weights_file))
    assert loading.checkpoint_file(source) == weights_file
    model, read_image_tower = loading.load_streamed(source, weights_file, None)
    assert all(p.is_meta for p in model.visual.parameters())  # the image tower is read when needed
    assert not any(p.is_meta for n, p in model.named_parameters() if not n.startswith("visual."))
    read_image_tower()
    stock = _stock_model(tiny_clip_registered)
    ours, theirs = model.state_dict(), stock.state_dict()
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert ours[key].dtype == theirs[key].dtype and torch.equal(ours[key], theirs[key]), key
    assert torch.equal(model.attn_mask, stock.attn_mask)  # the one buffer no file holds
    assert not any(p.requires_grad for p in model.parameters())


def test_streamed_loading_reads_the_image_tower_in_the_compute_dtype(tiny_clip_registered):
    name, weights_file = tiny_clip_registered
    model, read_image_tower = loading.load_streamed(guidance.resolve_weights(name, str(weights_file)), weights_file,
                                            torch.bfloat16)
    read_image_tower()
    stock = _stock_model(tiny_clip_registered).visual
    cast = set(vision_tower.matmul_weight_names(stock))
    for key, value in stock.state_dict().items():
        expected = value.to(torch.bfloat16) if key in cast else value
        assert torch.equal(model.visual.state_dict()[key], expected), key


def test_other_checkpoints_load_through_open_clip(tmp_path, tiny_clip_registered):
    """A torch checkpoint is not streamed: open_clip loads it, and it gives the same embeddings."""
    name, weights_file = tiny_clip_registered
    stock = _stock_model(tiny_clip_registered)
    checkpoint = tmp_path / "tiny.pt"
    torch.save(stock.state_dict(), checkpoint)
    assert loading.load_streamed(guidance.resolve_weights(name, str(checkpoint)), checkpoint, None) is None
    by_pt = guidance.load_clip(name, str(checkpoint), "cpu", "fp32")
    by_safetensors = guidance.load_clip(name, str(weights_file), "cpu", "fp32")
    assert torch.equal(by_pt.embed_text("dusk"), by_safetensors.embed_text("dusk"))
    images = torch.rand(2, 3, *by_pt.image_size)
    assert torch.equal(by_pt.embed_images(images), by_safetensors.embed_images(images))


@pytest.mark.parametrize("chunk_bytes", [4, 12, 1 << 22])
def test_converting_reads_go_chunk_by_chunk_to_the_same_values(tmp_path, monkeypatch, chunk_bytes):
    from safetensors.torch import save_file

    torch.manual_seed(3)
    tensors = {"a": torch.randn(5, 7), "b": torch.randn(3), "c": torch.randn(2, 2, 2).double()}
    path = tmp_path / "t.safetensors"
    save_file(tensors, str(path))
    monkeypatch.setattr(loading, "READ_CHUNK_BYTES", chunk_bytes)  # 4 and 12 bytes: 1 and 3 floats a chunk
    index, start = loading.safetensors_index(path)
    with open(path, "rb") as handle:
        for name, tensor in tensors.items():
            assert torch.equal(loading.read_tensor(handle, index[name], start), tensor)
            for dtype in (torch.bfloat16, torch.float16, torch.float32):
                read = loading.read_tensor(handle, index[name], start, dtype)
                assert read.dtype == dtype and torch.equal(read, tensor.to(dtype))


def test_matmul_weights_are_the_linear_conv_attention_and_projection_weights(guide):
    """Listed by hand for the tiny ViT (2 blocks): what autocast runs as matrix products."""
    stock = _fresh_tower(guide)
    expected = {"conv1.weight", "proj"}
    for block in range(2):
        prefix = f"transformer.resblocks.{block}."
        expected |= {prefix + "attn.in_proj_weight", prefix + "attn.in_proj_bias", prefix + "attn.out_proj.weight",
                     prefix + "attn.out_proj.bias", prefix + "mlp.c_fc.weight", prefix + "mlp.c_fc.bias",
                     prefix + "mlp.c_proj.weight", prefix + "mlp.c_proj.bias"}
    assert vision_tower.matmul_weight_names(stock) == expected


def _fresh_tower(guide):
    """A stock (not sped-up) copy of the tiny image tower in float32."""
    import copy

    from conftest import TINY_CLIP_CONFIG
    from open_clip.model import CLIP

    model = CLIP(**TINY_CLIP_CONFIG)
    model.visual.load_state_dict(_stock_visual_state(guide))
    return copy.deepcopy(model.visual)


def _stock_visual_state(guide):
    """The tiny image tower's state dict with the sped-up modules' names mapped back to the stock ones."""
    guide.load_image_tower()
    state = guide.model.visual.state_dict()
    return {key.replace(".inner.", "."): value for key, value in state.items()}  # the wrappers' own names


class _ParameterCopies:
    """Counts, within the block, the copies (``aten._to_copy``) made of the given tensors."""

    def __init__(self, tensors):
        from torch.utils._python_dispatch import TorchDispatchMode

        watched = {t.data_ptr() for t in tensors}
        counter = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if func is torch.ops.aten._to_copy.default and args[0].data_ptr() in watched:
                    counter.count += 1
                return func(*args, **(kwargs or {}))

        self.count = 0
        self.mode = Mode()

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


def test_bf16_image_tower_is_cast_once_and_computes_what_autocast_computes(tiny_clip_model):
    """load_clip(bf16) stores the matrix weights in bfloat16 at load; the embeddings and their input
    gradients are bit for bit those of autocast over the float32 weights (tolerance 0), and a step
    copies no weight, where the autocast path copies every matrix weight at every call."""
    fp32 = guidance.load_clip(tiny_clip_model, None, "cpu", "fp32")
    fp32.load_image_tower()
    autocast = guidance.ClipGuide(fp32.model, fp32.tokenizer, fp32.device, torch.bfloat16)
    cast_once = guidance.load_clip(tiny_clip_model, None, "cpu", "bf16")
    cast_once.load_image_tower()
    visual = cast_once.model.visual
    matrices = vision_tower.matmul_weights(visual)
    assert len(matrices) == 2 + 8 * 2
    assert all(getattr(m, name).dtype == torch.bfloat16 for m, name in matrices)
    assert visual.ln_pre.weight.dtype == visual.ln_post.weight.dtype == torch.float32
    assert visual.class_embedding.dtype == visual.positional_embedding.dtype == torch.float32

    torch.manual_seed(4)
    images = torch.rand(3, 3, *fp32.image_size)
    results = []
    for g in (autocast, cast_once):
        x = images.clone().requires_grad_(True)
        weights = [getattr(m, name) for m, name in vision_tower.matmul_weights(g.model.visual)]
        with _ParameterCopies(weights) as copies:
            emb = g.embed_images(x)
            (emb[:, 0].sum() - emb[:, 3].sum()).backward()
        results.append((emb.detach(), x.grad, copies.count))
    (emb_a, grad_a, copies_a), (emb_b, grad_b, copies_b) = results
    assert torch.equal(emb_b, emb_a) and torch.equal(grad_b, grad_a)
    assert copies_a >= len(matrices) and copies_b == 0


def test_release_text_tower_frees_it_and_images_still_embed(tiny_clip_model):
    from conftest import TINY_CLIP_CONFIG

    kept = guidance.load_clip(tiny_clip_model, None, "cpu", "fp32")
    released = guidance.load_clip(tiny_clip_model, None, "cpu", "fp32")
    text = released.embed_text("warm light")
    assert torch.equal(text, kept.embed_text("warm light"))
    text_values = sum(p.numel() for n, p in released.model.named_parameters() if not n.startswith("visual."))
    text_values -= released.model.logit_scale.numel()
    context = TINY_CLIP_CONFIG["text_cfg"]["context_length"]
    assert released.release_text_tower() == text_values + context * context  # the weights and the causal mask
    assert all(n.startswith("visual.") or n == "logit_scale" for n, _ in released.model.named_parameters())
    assert released.release_text_tower() == 0  # a second call has nothing left to free
    with pytest.raises(LutgenError, match="text tower was released") as caught:
        released.embed_text("cold light")
    assert "\n" not in str(caught.value)
    assert released.text_limit("warm " * 100) == kept.text_limit("warm " * 100)
    images = torch.rand(2, 3, *kept.image_size)
    assert torch.equal(released.embed_images(images), kept.embed_images(images))


def test_the_image_tower_is_read_when_first_needed_and_a_cut_file_is_one_sentence(tmp_path, tiny_clip_dir):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "open_clip_config.json").write_bytes((tiny_clip_dir / "open_clip_config.json").read_bytes())
    weights = folder / "open_clip_model.safetensors"
    weights.write_bytes((tiny_clip_dir / "open_clip_model.safetensors").read_bytes())
    guide = guidance.load_clip(f"local-dir:{folder}", None, "cpu", "fp32")
    assert all(p.is_meta for p in guide.model.visual.parameters())
    guide.embed_text("dusk")
    index, start = loading.safetensors_index(weights)
    last_visual_end = max(e["data_offsets"][1] for n, e in index.items() if n.startswith("visual."))
    with open(weights, "r+b") as handle:
        handle.truncate(start + last_visual_end - 1)  # the image tower's last tensor is cut short
    with pytest.raises(LutgenError, match=r"could not load the CLIP weights .*: the file ends inside a tensor$"):
        guide.release_text_tower()
    with pytest.raises(LutgenError, match="the file ends inside a tensor"):  # still not read: the same sentence
        guide.embed_images(torch.rand(1, 3, *guide.image_size))


def test_auto_precision_is_bf16_only_on_cpus_with_bf16_matrix_instructions():
    skylake = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\nbogomips\t: 5600\n"
    sapphire = skylake.replace("avx512_vnni", "avx512_vnni avx512_bf16 amx_bf16 amx_tile")
    cooper = skylake.replace("avx512_vnni", "avx512_bf16")
    assert guidance.cpu_flags(skylake) == {"fpu", "sse2", "avx2", "avx512f", "avx512bw", "avx512_vnni"}
    assert guidance.cpu_flags("model name : x\n") == set()
    assert not guidance.native_bf16(guidance.cpu_flags(skylake))
    assert guidance.native_bf16(guidance.cpu_flags(sapphire)) and guidance.native_bf16(guidance.cpu_flags(cooper))
    here = guidance.cpu_flags(Path("/proc/cpuinfo").read_text()) if Path("/proc/cpuinfo").exists() else set()
    expected = torch.bfloat16 if guidance.native_bf16(here) and torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    assert guidance.autocast_dtype(torch.device("cpu"), "auto") == expected
    assert guidance.autocast_dtype(torch.device("cpu"), "bf16") == torch.bfloat16


def test_class_token_block_is_the_wrapped_blocks_class_token_in_float64(guide):
    """The last block computed for the class token alone equals the full block at position 0."""
    import copy

    guide.load_image_tower()
    wrapped = copy.deepcopy(guide.model.visual.transformer.resblocks[-1]).double()
    assert isinstance(wrapped, vision_tower.ClassTokenBlock)
    torch.manual_seed(5)
    tokens = torch.randn(3, 17, wrapped.attention.embed_dim, dtype=torch.float64)
    full = wrapped.inner(tokens)
    alone = wrapped(tokens)
    assert alone.shape == (3, 1, tokens.shape[-1])
    torch.testing.assert_close(alone, full[:, :1], rtol=0, atol=1e-12)
    assert not torch.allclose(full[:, 1:2], full[:, :1])  # position 0 is not like the others


def test_towers_reading_more_than_the_class_token_keep_their_last_block(tiny_clip_model):
    stock = guidance.load_clip(tiny_clip_model, None, "cpu", "fp32", fast=False)
    stock.load_image_tower()
    visual = stock.model.visual
    assert vision_tower.pools_class_token(visual)
    for attribute, value in (("output_tokens", True), ("pool_type", "avg")):
        before = getattr(visual, attribute)
        setattr(visual, attribute, value)
        assert not vision_tower.pools_class_token(visual)
        setattr(visual, attribute, before)


def test_open_clip_comes_without_timm_for_its_own_towers_and_gets_it_back_for_a_timm_tower(tiny_clip_model, tmp_path):
    """In a fresh process: the tiny CLIP (a tower of open_clip's own) loads and embeds with neither timm
    nor torch's compiler (nor the SymPy of its shape checks) imported; afterwards the real compiler imports, and a timm-tower configuration
    in the same process still builds its timm tower."""
    import json
    import subprocess
    import sys

    from conftest import TINY_CLIP_CONFIG, TINY_PREPROCESS

    timm_folder = tmp_path / "timm_tower"
    timm_folder.mkdir()
    vision = {"timm_model_name": "vit_tiny_patch16_224", "timm_model_pretrained": False, "timm_pool": "",
              "timm_proj": "linear", "image_size": 64}
    model_cfg = {**TINY_CLIP_CONFIG, "vision_cfg": vision}
    (timm_folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": TINY_PREPROCESS}), encoding="utf-8")
    script = (
        "import sys, json, torch\n"
        "from lutgen.guidance.clip import load_clip\n"
        "from lutgen.guidance.open_clip_import import open_clip_for\n"
        "guide = load_clip(sys.argv[1], None)\n"
        "assert guide.embed_images(torch.rand(1, 3, 64, 64)).shape == (1, 32)\n"
        "print('timm after the tiny CLIP:', 'timm' in sys.modules)\n"
        "print('compiler after the tiny CLIP:', 'torch._dynamo' in sys.modules, 'sympy' in sys.modules)\n"
        "import torch._dynamo\n"
        "print('real compiler afterwards:', callable(getattr(torch._dynamo, 'optimize', None)))\n"
        "open_clip = open_clip_for('local-dir:' + sys.argv[2])\n"
        "cfg = json.load(open(sys.argv[2] + '/open_clip_config.json'))['model_cfg']\n"
        "model = open_clip.model.CLIP(**cfg)\n"
        "print('timm tower:', type(model.visual).__name__, 'timm' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, tiny_clip_model, str(timm_folder)], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "timm after the tiny CLIP: False" in result.stdout
    assert "compiler after the tiny CLIP: False False" in result.stdout
    assert "real compiler afterwards: True" in result.stdout
    assert "timm tower: TimmModel True" in result.stdout


def test_architecture_configs_are_read_without_open_clip_and_say_which_need_timm(tiny_clip_model):
    from lutgen.guidance.config import architecture_config
    from lutgen.guidance.open_clip_import import needs_timm

    vit = architecture_config("ViT-B-32")
    assert vit == open_clip.get_model_config("ViT-B-32") and not needs_timm(vit)
    siglip = architecture_config("ViT-B-16-SigLIP")
    assert siglip == open_clip.get_model_config("ViT-B-16-SigLIP") and needs_timm(siglip)
    assert not needs_timm(architecture_config(tiny_clip_model))
    for unknown in ("hf-hub:org/repo", "no-such-architecture", "local-dir:/no/such/folder"):
        assert architecture_config(unknown) is None and needs_timm(None)


@pytest.mark.parametrize("model_name", ["ViT-B-32", "RN50"])
def test_a_skeleton_has_the_structure_of_a_plain_meta_build(model_name):
    """Built without initial values, the skeleton has every parameter and buffer of the model, each on
    ``meta``, with the names, shapes and dtypes of open_clip's own build on ``meta``."""
    from types import SimpleNamespace

    from lutgen.guidance.loading import build_skeleton
    from lutgen.guidance.open_clip_import import open_clip_for

    skeleton = build_skeleton(SimpleNamespace(model_name=model_name, pretrained=None, quick_gelu=False))
    with torch.device("meta"):
        plain = open_clip_for(model_name).create_model(model_name, pretrained=None, load_weights=False, device="meta")

    def layout(model):
        tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        return {name: (tuple(t.shape), t.dtype, t.is_meta, isinstance(t, torch.nn.Parameter))
                for name, t in tensors.items()}

    assert layout(skeleton) == layout(plain)
    assert all(meta for _, _, meta, _ in layout(skeleton).values())
