"""Model files given to ``enhance --model`` / ``evaluate --model``: every float type loads, every damaged or odd
file is one sentence naming it, and nothing that is not a regular file is ever opened."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from adaint_reference import ROOT
from cli_runner import one_sentence_error, run_lutgen
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file

from lutgen.errors import LutgenError
from lutgen.imaging import load_image
from lutgen.models import load_weights
from lutgen.tasks.enhance import enhance

SHIPPED = ROOT / "lutgen" / "models" / "weights" / "fivek_srgb.safetensors"
PHOTO = ROOT / "images" / "coffee.jpg"


@pytest.fixture(scope="module")
def shipped() -> dict[str, torch.Tensor]:
    return load_file(str(SHIPPED))


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    from lutgen.imaging import ImageData, save_image

    path = tmp_path_factory.mktemp("photo") / "cup.png"
    save_image(ImageData(rgb=np.ascontiguousarray(load_image(PHOTO).rgb[100:228, 150:310])), path)
    return path


def raw_safetensors(path: Path, header: dict, data: bytes = b"", length: int | None = None) -> Path:
    """A file in the safetensors layout with any header, even a wrong one."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_weights_load_and_grade_like_their_float32_values(dtype, shipped, photo, tmp_path):
    half = tmp_path / "half.safetensors"
    save_file({key: value.to(dtype) for key, value in shipped.items()}, str(half))
    widened = tmp_path / "widened.safetensors"
    save_file({key: value.to(dtype).float() for key, value in shipped.items()}, str(widened))
    loaded = load_weights(half)
    for key, value in shipped.items():
        assert loaded.tensors[key].dtype == np.float32
        assert np.array_equal(loaded.tensors[key], value.to(dtype).float().numpy()), key
    enhance([photo], model=str(half), output_path=tmp_path / "half.png")
    enhance([photo], model=str(widened), output_path=tmp_path / "widened.png")
    assert np.array_equal(load_image(tmp_path / "half.png").rgb, load_image(tmp_path / "widened.png").rgb)
    assert any(not np.array_equal(loaded.tensors[k], v.numpy()) for k, v in shipped.items())  # really rounded


def test_the_command_line_grades_with_bfloat16_weights_without_torch(shipped, photo, tmp_path):
    half = tmp_path / "bf16.safetensors"
    save_file({key: value.to(torch.bfloat16) for key, value in shipped.items()}, str(half))
    result = run_lutgen("enhance", photo, "--model", half, "-o", tmp_path / "out.png")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.png").is_file()


def _damaged(tmp_path: Path, shipped: dict[str, torch.Tensor]) -> dict[str, tuple[Path, str]]:
    """Damaged weights files, each with a fragment of the sentence that must refuse it."""
    arrays = {key: value.numpy() for key, value in shipped.items()}
    good = SHIPPED.read_bytes()
    files: dict[str, tuple[Path, str]] = {}

    def add(name: str, fragment: str, data: bytes | None = None, tensors: dict | None = None) -> None:
        path = tmp_path / f"{name}.safetensors"
        if tensors is not None:
            save_numpy(tensors, str(path))
        else:
            path.write_bytes(data)
        files[name] = (path, fragment)

    add("empty", "it is empty", b"")
    add("short", "only 5 bytes", b"\x01\x02\x03\x04\x05")
    add("huge_length", "more than the 100 MB allowed", struct.pack("<Q", 2**63) + b"{}")
    add("long_length", "is truncated or not a safetensors file", struct.pack("<Q", 10_000) + b"{}")
    add("truncated", "lies outside the file", good[: len(good) // 2])
    add("bad_json", "header is not valid JSON", struct.pack("<Q", 6) + b"{\"a\":[")
    add("png", "not a safetensors file", PHOTO.read_bytes())
    add("ints", "holds I32 values", tensors=dict(arrays, **{"backbone.0.0.bias": np.zeros(16, np.int32)}))
    add("wrong_shape", "has shape (15,), not (16,)",
        tensors=dict(arrays, **{"backbone.0.0.bias": np.zeros(15, np.float32)}))
    nan = dict(arrays)
    nan["backbone.1.0.weight"] = arrays["backbone.1.0.weight"].copy()
    nan["backbone.1.0.weight"][0, 0, 0, 0] = np.nan
    add("nan", "'backbone.1.0.weight' is not finite", tensors=nan)
    add("extra", "unexpected tensor 'extra'", tensors=dict(arrays, extra=np.zeros(2, np.float32)))
    missing = dict(arrays)
    del missing["adaint.intervals_generator.bias"]
    add("missing", "no 'adaint.intervals_generator.bias'", tensors=missing)
    files["outside"] = (raw_safetensors(tmp_path / "outside.safetensors",
                                        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8),
                        "lies outside the file")
    files["size_mismatch"] = (raw_safetensors(tmp_path / "size_mismatch.safetensors",
                                              {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}},
                                              b"\0" * 16),
                              "has 16 bytes of data, not the 12")
    files["not_object"] = (raw_safetensors(tmp_path / "not_object.safetensors", [1, 2]), "not a JSON object")
    files["no_offsets"] = (raw_safetensors(tmp_path / "no_offsets.safetensors", {"a": {"dtype": "F32"}}),
                           "lacks its dtype, shape or data offsets")
    return files


def test_damaged_weights_files_are_one_sentence_naming_the_file(shipped, tmp_path):
    for name, (path, fragment) in _damaged(tmp_path, shipped).items():
        with pytest.raises(LutgenError) as caught:
            load_weights(path)
        message = str(caught.value)
        assert message.startswith(f"cannot load the model {path}:"), (name, message)
        assert fragment in message, (name, message)
        assert "\n" not in message


def test_the_command_line_refuses_damaged_and_odd_model_files_before_grading(shipped, photo, tmp_path):
    damaged = _damaged(tmp_path, shipped)
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    cube = tmp_path / "look.cube"
    cube.write_text("LUT_3D_SIZE 2\n" + "0 0 0\n" * 8)
    cases = [
        (fifo, f"cannot read {fifo}: it is a FIFO (named pipe), not a regular weights file"),
        (folder, f"cannot read {folder}: it is a folder"),
        (cube, f"cannot load the model {cube}: use a .safetensors, .pth or .pt weights file"),
        (PHOTO, f"cannot load the model {PHOTO}: use a .safetensors"),
        (damaged["empty"][0], "it is empty"),
        (damaged["ints"][0], "holds I32 values"),
        (damaged["nan"][0], "is not finite"),
    ]
    for model, fragment in cases:
        result = run_lutgen("enhance", photo, "--model", model, "-o", tmp_path / "out.png", timeout=60)
        one_sentence_error(result, fragment)
    assert not (tmp_path / "out.png").exists()


def test_torch_checkpoints_with_integer_tensors_are_refused(shipped, tmp_path):
    state = dict(shipped, **{"backbone.0.0.bias": torch.zeros(16, dtype=torch.int64)})
    torch.save({"state_dict": state}, tmp_path / "ints.pth")
    with pytest.raises(LutgenError, match=r"ints.pth: 'backbone.0.0.bias' holds torch.int64 values"):
        load_weights(tmp_path / "ints.pth")
    torch.save({"state_dict": {k: v.to(torch.bfloat16) for k, v in shipped.items()}}, tmp_path / "bf16.pth")
    assert load_weights(tmp_path / "bf16.pth").tensors["backbone.0.0.bias"].dtype == np.float32
