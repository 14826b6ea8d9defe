"""The command line as a user runs it: a fresh process, its exit code and what it prints."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
from cli_runner import ROOT, STACKS_ON_ABORT, one_sentence_error, output_after_signal, run_lutgen
from PIL import Image

VELVIA = ROOT / "lutgen" / "data" / "luts" / "fuji_velvia_50.cube"


def test_infer_writes_the_graded_image_without_importing_torch_or_numba(tmp_path):
    """8-bit trilinear grading, the common case, runs the LLVM kernel: no torch, and no Numba either."""
    source = tmp_path / "photo.jpg"
    Image.open(ROOT / "images" / "coffee.jpg").convert("RGB").save(source)
    probe = (
        "import sys; sys.argv = ['lutgen', *sys.argv[1:]]\n"
        "from lutgen.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('heavy:', sorted(m for m in ('torch', 'open_clip', 'numba') if m in sys.modules))\n"
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



# --- usage errors and signals -------------------------------------------------------------------


import os  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("infer", VELVIA, "a.png", "--quality", "abc"), ("'--quality'", "'abc'", "lutgen infer --help")),
        (("infer", VELVIA, "a.png", "--strength", "x"), ("'--strength'", "lutgen infer --help")),
        (("infer",), ("Missing argument", "lutgen infer --help")),
        (("info", VELVIA, "--bogus"), ("No such option: --bogus", "lutgen info --help")),
        (("frobnicate",), ("No such command 'frobnicate'", "lutgen --help")),
        (("--version",), ("No such option: --version",)),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args, fragments):
    line = one_sentence_error(run_lutgen(*args), *fragments)
    assert line.startswith("error: ")


def test_no_arguments_prints_the_help_and_succeeds():
    result = run_lutgen()
    assert result.returncode == 0
    assert "Usage: lutgen" in result.stdout and "infer" in result.stdout


def _graded_folder(tmp_path, count: int):
    photos = tmp_path / "photos"
    photos.mkdir()
    big = Image.open(ROOT / "images" / "coffee.jpg").convert("RGB").resize((1600, 1200))
    for k in range(count):
        big.save(photos / f"p{k:02d}.png", compress_level=1)
    return photos


@pytest.mark.parametrize(("signal_number", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_infer_keeps_finished_images_and_leaves_no_partial_file(tmp_path, signal_number, exit_code):
    photos, out = _graded_folder(tmp_path, 24), tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "infer", str(VELVIA), str(photos), "-d", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **STACKS_ON_ABORT},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.exists() and any(out.glob("p*.png"))):
        time.sleep(0.01)
    process.send_signal(signal_number)
    _, stderr = output_after_signal(process)
    assert process.returncode == exit_code, stderr
    assert "Traceback" not in stderr
    last = stderr.replace("\r", "\n").strip().splitlines()[-1]  # after the progress bar
    assert last == "error: interrupted; the files finished so far are written, none is half-written"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], sorted(p.name for p in out.iterdir())
    written = sorted(out.iterdir())
    assert 1 <= len(written) < 24
    for path in written:
        assert Image.open(path).size == (1600, 1200)
        Image.open(path).load()  # complete, not truncated


@pytest.mark.parametrize("own", [True, False])
def test_lines_printed_while_a_native_decoder_is_silenced_still_reach_the_terminal(own):
    """Another thread's progress bar or warning is not swallowed while descriptor 2 points at the null
    device (the control run, without the CLI's own copy of stderr, shows that it would be)."""
    script = (
        "import contextlib, sys, threading\n"
        "from lutgen.cli import _stderr_of_our_own\n"
        "from lutgen.imaging.common import native_stderr_silenced\n"
        "before = sys.stderr\n"
        f"with _stderr_of_our_own() if {own} else contextlib.nullcontext():\n"
        "    with native_stderr_silenced():\n"
        "        thread = threading.Thread(target=lambda: print('from another thread', file=sys.stderr))\n"
        "        thread.start(); thread.join()\n"
        "        sys.stderr.flush()\n"
        "assert sys.stderr is before\n"
        "print('after', file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert ("from another thread" in result.stderr) == own and "after" in result.stderr
