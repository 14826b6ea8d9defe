"""`lutgen evaluate`: the metrics against independent references, and the command end to end."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import colour
import numpy as np
import pytest
from pairs_fixture import write_pairs
from scipy.signal import correlate2d

from lutgen.color import adaint
from lutgen.errors import LutgenError, OptionError
from lutgen.imaging import load_image
from lutgen.models import load_weights
from lutgen.tasks.enhance import enhance
from lutgen.tasks.evaluate import delta_e76, evaluate, psnr, srgb_to_lab, ssim


def reference_ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    """Wang's ssim.m on one 0..255 plane, step by step: explicit block means, scipy's 'valid' correlation."""
    f = max(1, int(np.floor(min(a.shape) / 256 + 0.5)))  # MATLAB rounds 2.5 up
    if f > 1:
        before = (f - 1) // 2
        after = f - 1 - before
        out = []
        for plane in (a, b):
            padded = np.pad(plane, ((before, after), (before, after)), mode="symmetric")
            rows = range(0, plane.shape[0], f)
            cols = range(0, plane.shape[1], f)
            out.append(np.array([[padded[i:i + f, j:j + f].mean() for j in cols] for i in rows]))
        a, b = out
    x = np.arange(11) - 5.0
    window = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()

    def filt(plane):
        return correlate2d(plane, window, mode="valid")

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = filt(a), filt(b)
    s_a = filt(a * a) - mu_a**2
    s_b = filt(b * b) - mu_b**2
    s_ab = filt(a * b) - mu_a * mu_b
    return float((((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_a + s_b + c2))).mean())


@pytest.mark.parametrize("shape", [(60, 90), (400, 530), (700, 300)])  # f = 1, 2 and 1 (min side 300 -> 1)
def test_ssim_matches_a_step_by_step_reference(shape):
    rng = np.random.default_rng(shape[0])
    a = rng.uniform(0, 1, size=(*shape, 3))
    b = np.clip(a + rng.normal(0, 0.05, a.shape) + 0.03 * np.sin(np.arange(shape[1]) / 7.0)[None, :, None], 0, 1)
    expected = np.mean([reference_ssim_plane(a[..., c] * 255, b[..., c] * 255) for c in range(3)])
    assert ssim(a, b) == pytest.approx(expected, abs=1e-10)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, b) < 0.99


def test_ssim_downsamples_large_images_by_blocks():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, size=(640, 700, 3))  # f = round(640 / 256) = round(2.5) = 3 in MATLAB
    b = np.clip(a * 0.9 + 0.05, 0, 1)
    expected = np.mean([reference_ssim_plane(a[..., c] * 255, b[..., c] * 255) for c in range(3)])
    assert ssim(a, b) == pytest.approx(expected, abs=1e-10)


def test_ssim_refuses_tiny_images():
    with pytest.raises(LutgenError, match="too small"):
        ssim(np.zeros((8, 40, 3)), np.zeros((8, 40, 3)))


def test_psnr_and_delta_e_against_colour_science():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 1, size=(30, 40, 3))
    b = np.clip(a + rng.normal(0, 0.02, a.shape), 0, 1)
    assert psnr(a, b) == pytest.approx(10 * np.log10(1 / np.mean((a - b) ** 2)), rel=1e-12)
    assert psnr(a, a) == np.inf
    assert psnr is adaint.psnr  # one PSNR for evaluate and for the exported LUTs' fidelity
    d65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    lab_a = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(a), d65)
    lab_b = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(b), d65)
    np.testing.assert_allclose(srgb_to_lab(a), lab_a, atol=0.05)  # white point and matrix digits: MATLAB vs IEC
    assert delta_e76(a, b) == pytest.approx(np.linalg.norm(lab_a - lab_b, axis=-1).mean(), abs=2e-3)
    assert srgb_to_lab(np.ones(3)) == pytest.approx([100, 0, 0], abs=1e-9)


def darkened(photo: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Input: the photo through a gamma of 1.3 (darker); target: the photo itself."""
    return photo**1.3, photo


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> tuple[Path, Path]:
    return write_pairs(tmp_path_factory.mktemp("pairs"), ("coffee", "chelsea_cat"), 160, darkened, ".jpg")


def test_scores_are_those_of_the_enhanced_images(pairs, tmp_path):
    result = evaluate("fivek-srgb", pairs[0], pairs[1], tmp_path / "scores.csv")
    assert [row.name for row in result.rows] == ["chelsea_cat", "coffee"]
    for row in result.rows:
        enhance([pairs[0] / f"{row.name}.png"], output_path=tmp_path / f"{row.name}.png")
        output = load_image(tmp_path / f"{row.name}.png").rgb / 255.0
        target = load_image(pairs[1] / f"{row.name}.jpg").rgb / 255.0
        source = load_image(pairs[0] / f"{row.name}.png").rgb / 255.0
        assert row.output.psnr == pytest.approx(psnr(output, target), abs=1e-9)
        assert row.output.ssim == pytest.approx(ssim(output, target), abs=1e-12)
        assert row.output.delta_e == pytest.approx(delta_e76(output, target), abs=1e-9)
        assert row.input.psnr == pytest.approx(psnr(source, target), abs=1e-9)
    with open(tmp_path / "scores.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [line["image"] for line in table] == ["chelsea_cat", "coffee", "mean"]
    assert float(table[-1]["psnr"]) == pytest.approx(np.mean([r.output.psnr for r in result.rows]), abs=1e-4)


def test_cli_prints_a_table_and_writes_the_csv(pairs, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys\nsys.argv = ['lutgen', *sys.argv[1:]]\n"
        "import lutgen.cli.evaluate  # registers the command\nfrom lutgen.cli import main\nmain()\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    args = ["evaluate", "--input-dir", pairs[0], "--target-dir", pairs[1], "--csv", tmp_path / "out.csv"]
    result = subprocess.run([sys.executable, str(probe), *map(str, args)], capture_output=True, text=True, env=env,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["image", "PSNR", "SSIM", "dE76"]
    assert [line.split()[0] for line in lines[1:4]] == ["chelsea_cat", "coffee", "mean"]
    assert (tmp_path / "out.csv").is_file() and f"wrote {tmp_path / 'out.csv'}" in result.stdout

    bad = subprocess.run([sys.executable, str(probe), "evaluate", "--input-dir", str(pairs[0]), "--target-dir",
                          str(tmp_path / "absent")], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("error: the target folder") and len(bad.stderr.strip().splitlines()) == 1


def test_the_csv_never_overwrites_a_photo_and_is_checked_before_scoring(pairs, tmp_path):
    photo = pairs[0] / "coffee.png"
    original = photo.read_bytes()
    with pytest.raises(OptionError, match=r"^--csv .*coffee.png must end in .csv$"):
        evaluate("fivek-srgb", pairs[0], pairs[1], photo)
    alias = tmp_path / "scores.csv"
    alias.symlink_to(photo)  # a .csv name that is a photo all the same
    with pytest.raises(LutgenError, match=r"^refusing to overwrite the input .*coffee.png"):
        evaluate("fivek-srgb", pairs[0], pairs[1], alias)
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(OptionError, match="is a folder"):
        evaluate("fivek-srgb", pairs[0], pairs[1], tmp_path / "folder.csv")
    with pytest.raises(OptionError, match="--device must be one of"):
        evaluate("fivek-srgb", pairs[0], pairs[1], tmp_path / "new.csv", device="tpu")
    assert photo.read_bytes() == original and alias.is_symlink()
    assert not (tmp_path / "new.csv").exists()


def underflowing_model(path: Path) -> Path:
    """The shipped model with an interval logit so low that its softmax is exactly 0 in float32:
    two vertices of the red channel coincide for every photo."""
    from safetensors.numpy import save_file

    weights = load_weights("fivek-srgb")
    tensors = dict(weights.tensors)
    tensors["adaint.intervals_generator.weight"] = np.zeros_like(tensors["adaint.intervals_generator.weight"])
    bias = np.zeros_like(tensors["adaint.intervals_generator.bias"])
    bias[5] = -200.0
    tensors["adaint.intervals_generator.bias"] = bias
    save_file(tensors, str(path))
    return path


def test_a_model_whose_intervals_underflow_is_one_sentence_naming_it(pairs, tmp_path):
    import torch

    from lutgen.tasks.enhance import _TorchEnhancer

    model = underflowing_model(tmp_path / "underflow.safetensors")
    message = r"the model .*underflow.safetensors predicted vertices that are not strictly increasing"
    result = enhance([pairs[0]], model=str(model), output_dir=tmp_path / "out")
    assert result.written == [] and len(result.failed) == 2
    for _, reason in result.failed:
        assert re.match(message, reason) and "underflowed" in reason
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(LutgenError, match=f"^cannot evaluate .*chelsea_cat.png: {message}"):
        evaluate(str(model), pairs[0], pairs[1], tmp_path / "scores.csv")
    assert not (tmp_path / "scores.csv").exists()
    on_torch = _TorchEnhancer(load_weights(model), torch.device("cpu"))
    with pytest.raises(LutgenError, match=message):
        on_torch(load_image(pairs[0] / "coffee.png").rgb)


def test_csv_in_a_folder_that_cannot_exist_is_refused_before_scoring(tmp_path):
    from lutgen.errors import OptionError
    from lutgen.tasks.evaluate import evaluate

    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OptionError, match=r"--csv .* cannot be created: .*blocker is a file"):
        evaluate(input_dir=tmp_path, target_dir=tmp_path, csv_path=blocker / "scores.csv")


def test_a_pair_too_small_for_ssim_is_named_before_the_model_loads(tmp_path):
    from PIL import Image

    inputs, targets = tmp_path / "in", tmp_path / "target"
    inputs.mkdir()
    targets.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(inputs / "big.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(targets / "big.png")
    Image.fromarray(np.zeros((10, 30, 3), np.uint8)).save(inputs / "tiny.png")
    Image.fromarray(np.zeros((10, 30, 3), np.uint8)).save(targets / "tiny.png")
    with pytest.raises(LutgenError) as caught:
        evaluate(str(tmp_path / "absent.safetensors"), inputs, targets, tmp_path / "scores.csv")
    assert str(caught.value) == (f"{inputs / 'tiny.png'} and its target {targets / 'tiny.png'} are 30x10 pixels, too "
                                 "small for SSIM, which needs at least 11 pixels on each side")
    assert not (tmp_path / "scores.csv").exists()


def test_odd_folders_and_model_files_are_one_sentence_before_scoring(pairs, tmp_path):
    from cli_runner import one_sentence_error, run_lutgen
    from PIL import Image

    csv_path = tmp_path / "scores.csv"
    common = ["evaluate", "--csv", csv_path]
    same = run_lutgen(*common, "--input-dir", pairs[0], "--target-dir", pairs[0], timeout=60)
    one_sentence_error(same, f"--target-dir {pairs[0]} is the --input-dir folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_sentence_error(run_lutgen(*common, "--input-dir", empty, "--target-dir", pairs[1], timeout=60),
                       f"the input folder {empty} has no images")
    wide = tmp_path / "wide"
    wide.mkdir()
    for name in ("coffee", "chelsea_cat"):
        with Image.open(pairs[1] / f"{name}.jpg") as im:
            im.resize((im.width + 1, im.height)).save(wide / f"{name}.png")
    one_sentence_error(run_lutgen(*common, "--input-dir", pairs[0], "--target-dir", wide, timeout=60),
                       "but its target", "is ")
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    one_sentence_error(run_lutgen(*common, "--input-dir", pairs[0], "--target-dir", pairs[1], "--model", fifo,
                                  timeout=60), f"cannot read {fifo}: it is a FIFO (named pipe)")
    one_sentence_error(run_lutgen(*common, "--input-dir", pairs[0], "--target-dir", pairs[1], "--model",
                                  pairs[0] / "coffee.png", timeout=60), "use a .safetensors, .pth or .pt weights file")
    assert not csv_path.exists()
