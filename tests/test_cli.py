"""The command line as a user runs it: a fresh process, its exit code and what it prints."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
from cli_runner import ROOT, one_sentence_error, run_lutgen
from PIL import Image

VELVIA = ROOT / "lutgen" / "data" / "luts" / "fuji_velvia_50.cube"


def test_infer_writes_the_graded_image_without_importing_torch(tmp_path):
    source = tmp_path / "photo.jpg"
    Image.open(ROOT / "images" / "coffee.jpg").save(source)
    probe = (
        "import sys; sys.argv = ['lutgen', *sys.argv[1:]]\n"
        "from lutgen.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('heavy:', sorted(m for m in ('torch', 'open_clip') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, "infer", str(VELVIA), str(source), "--output-path", str(tmp_path / "out.jpg")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout
    graded = np.asarray(Image.open(tmp_path / "out.jpg"))
    assert graded.shape == np.asarray(Image.open(source)).shape
    assert np.abs(graded.astype(int) - np.asarray(Image.open(source)).astype(int)).mean() > 2


def test_default_output_is_output_png_in_the_working_folder(tmp_path):
    source = tmp_path / "photo.png"
    Image.new("RGB", (20, 10), (10, 120, 240)).save(source)
    result = run_lutgen("infer", VELVIA, source, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "output.png").is_file()


def test_malformed_cube_names_file_and_line(tmp_path):
    cube = tmp_path / "broken.cube"
    cube.write_text("LUT_3D_SIZE 2\n0 0 0\n1 0 0\n0 1\n1 1 0\n0 0 1\n1 0 1\n0 1 1\n1 1 1\n")
    image = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(image)
    result = run_lutgen("infer", cube, image, "-o", tmp_path / "y.png")
    one_sentence_error(result, "broken.cube", "line 4")
    assert not (tmp_path / "y.png").exists()


def test_missing_image_and_missing_lut(tmp_path):
    one_sentence_error(run_lutgen("infer", VELVIA, tmp_path / "nope.jpg"), "nope.jpg")
    image = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(image)
    one_sentence_error(run_lutgen("infer", tmp_path / "nope.cube", image), "nope.cube")


def test_bad_option_value_exits_2():
    result = run_lutgen("infer", VELVIA, ROOT / "images" / "coffee.jpg", "--strength", "2")
    one_sentence_error(result, "--strength")


def test_info_describes_a_lut():
    result = run_lutgen("info", VELVIA)
    assert result.returncode == 0, result.stderr
    assert "fuji_velvia_50" in result.stdout
    assert "13 (2197 nodes)" in result.stdout
    assert re.search(r"^identity +no$", result.stdout, re.M)


def test_only_image_unreadable_says_so_and_exits_2(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    result = run_lutgen("infer", VELVIA, bad, "-o", tmp_path / "out.jpg")
    one_sentence_error(result, "bad.jpg")
    assert "wrote" not in result.stdout
    assert not (tmp_path / "out.jpg").exists()

