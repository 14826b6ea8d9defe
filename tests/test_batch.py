"""Whole folders on several cores: ``lutgen infer --jobs`` and the pipeline of :mod:`lutgen.tasks.batch`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cli_runner import ROOT, one_sentence_error, run_lutgen
from lutgen import interrupts
from lutgen.errors import LutgenError, OptionError
from lutgen.formats import write_lut
from lutgen.imaging import load_image
from lutgen.lut import LUT, grid
from lutgen.tasks.batch import FileSkipped, check_jobs, run_batch
from lutgen.tasks.infer import infer


def write_look(folder: Path) -> Path:
    """A smooth nonlinear 9^3 .cube (a per-channel gamma and a hue twist)."""
    rgb = grid(9)
    table = np.clip(rgb ** 0.7 + 0.08 * np.sin(5.0 * rgb[..., ::-1]), 0.0, 1.0)
    path = folder / "look.cube"
    write_lut(LUT(table), path)
    return path


def photo(height: int, width: int, seed: int, depth: int = 8) -> np.ndarray:
    """Smooth colour ramps with noise, ``(height, width, 3)`` uint8 or uint16."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([x, y, 1.0 - (x + y) / 2], axis=-1) + 0.05 * rng.standard_normal((height, width, 3))
    top = 65535 if depth == 16 else 255
    return np.round(np.clip(base, 0, 1) * top).astype(np.uint16 if depth == 16 else np.uint8)


def shoot(folder: Path) -> list[str]:
    """A few small images of every kind a shoot mixes: JPEG with EXIF, 16-bit PNG, PNG with alpha, TIFF."""
    folder.mkdir()
    exif = Image.Exif()
    exif[0x010F] = "lutgen test camera"  # Make
    exif[0x0112] = 6  # Orientation: turned upright when read
    Image.fromarray(photo(24, 40, 1)).save(folder / "a_camera.jpg", quality=90, exif=exif.tobytes())
    Image.fromarray(photo(30, 20, 2)).save(folder / "b_plain.png")
    cv2.imwrite(str(folder / "c_deep.png"), photo(18, 26, 3, 16)[..., ::-1])
    rgba = np.dstack([photo(16, 16, 4), np.linspace(0, 255, 256).reshape(16, 16).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "d_alpha.png")
    Image.fromarray(photo(20, 28, 5)).save(folder / "e_scan.tif")
    Image.fromarray(photo(22, 22, 6)).save(folder / "f_web.webp", quality=90)
    return sorted(p.name for p in folder.iterdir())


def test_jobs_give_the_same_files_as_one_at_a_time_and_skip_a_corrupt_one(tmp_path):
    source = tmp_path / "shoot"
    names = shoot(source)
    (source / "c_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    cube = write_look(tmp_path)

    results = {}
    for jobs in (1, 3):
        out = tmp_path / f"out{jobs}"
        result = run_lutgen("infer", cube, source, "-d", out, "--jobs", jobs)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]  # (and the bar's lines)
        assert len(errors) == 1 and "skipped" in errors[0] and "c_broken.jpg" in errors[0], result.stderr
        assert result.stdout.strip() == f"wrote {len(names)} images to {out}"
        assert sorted(p.name for p in out.iterdir()) == names  # same names, nothing else (no temporary files)
        results[jobs] = {name: (out / name).read_bytes() for name in names}
    assert results[3] == results[1]

    # What was written is the graded image with its metadata: 16 bits kept, EXIF carried, upright.
    deep = load_image(tmp_path / "out3" / "c_deep.png")
    assert deep.rgb.dtype == np.uint16 and deep.rgb.shape == (18, 26, 3)
    camera = load_image(tmp_path / "out3" / "a_camera.jpg")
    assert camera.rgb.shape == (40, 24, 3) and b"lutgen test camera" in camera.exif
    assert load_image(tmp_path / "out3" / "d_alpha.png").alpha is not None
    # Lossless outputs hold exactly the kernel's grading of their own photo (buffers are reused across photos).
    from lutgen.color.cpu import apply_lut_array
    from lutgen.formats import read_lut

    for name in ("b_plain.png", "d_alpha.png"):
        expected = apply_lut_array(load_image(source / name).rgb, read_lut(cube))
        np.testing.assert_array_equal(load_image(tmp_path / "out3" / name).rgb, expected)


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_jobs_values_are_one_sentence(tmp_path, value):
    image = tmp_path / "a.png"
    Image.fromarray(photo(8, 8, 0)).save(image)
    if value.lstrip("-").isdigit():  # a whole number: refused by the task, before the LUT is read
        with pytest.raises(OptionError, match=rf"--jobs must be a whole number of at least 1, not {value}"):
            infer(tmp_path / "missing.cube", [image], output_dir=tmp_path / "o", jobs=int(value))
        return
    result = run_lutgen("infer", tmp_path / "missing.cube", image, "-d", tmp_path / "o", "--jobs", value)
    one_sentence_error(result, "--jobs")
    assert not (tmp_path / "o").exists()


def test_check_jobs():
    assert check_jobs(3) == 3
    assert check_jobs(None) >= 1
    for bad in (0, -1, True, 1.5):
        with pytest.raises(OptionError):
            check_jobs(bad)


def test_run_batch_keeps_the_order_bounds_the_files_in_flight_and_skips_failures(tmp_path):
    pairs = [(tmp_path / f"in{i}", tmp_path / f"out{i}") for i in range(9)]
    lock = threading.Lock()
    in_flight, most, threads = [0], [0], set()

    def process_one(source: Path, target: Path) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            threads.add(threading.current_thread().name)
        try:
            index = int(source.name[2:])
            time.sleep(0.002 * (9 - index))  # the first files finish last
            if index == 4:
                raise FileSkipped(f"cannot read {source}: damaged")
            target.write_text(source.name)
        finally:
            with lock:
                in_flight[0] -= 1

    ticks = []

    def progress(items):
        for item in items:
            ticks.append(len(list(tmp_path.glob("out*"))))
            yield item

    result = run_batch(pairs, process_one, jobs=3, progress=progress)
    assert result.written == [target for i, (_, target) in enumerate(pairs) if i != 4]
    assert result.failed == [(pairs[4][0], f"cannot read {pairs[4][0]}: damaged")]
    assert most[0] == 3 and len(threads) == 3
    assert len(ticks) == 9 and ticks[0] == 0  # one tick before the first file and after each finished one
    assert all(target.read_text() == source.name for source, target in pairs if target in result.written)

    sequential = run_batch(pairs, process_one, jobs=1)
    assert sequential == result


def test_run_batch_stops_on_another_error_after_finishing_the_files_in_progress(tmp_path):
    started, finished = [], []

    def process_one(source: Path, target: Path) -> None:
        started.append(source)
        if source.name == "in1":
            raise LutgenError(f"cannot write {target}: no space left on device")
        time.sleep(0.05)
        finished.append(source)

    pairs = [(tmp_path / f"in{i}", tmp_path / f"out{i}") for i in range(6)]
    with pytest.raises(LutgenError, match="no space left"):
        run_batch(pairs, process_one, jobs=2)
    assert tmp_path / "in0" in finished  # the file in progress was finished
    assert len(started) <= 3  # and no more than one new file was started meanwhile


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_is_raised_between_the_pools_steps_never_inside_its_locks(tmp_path, signum):
    """Raised inside ``threading``'s waiting, Ctrl-C could leave a lock held and a worker blocked on it for good
    (a folder run once hung so in CI); the batch holds the signal until the main thread is out of the pool."""
    pairs = [(tmp_path / f"in{i}", tmp_path / f"out{i}") for i in range(12)]
    started = []

    def process_one(source: Path, target: Path) -> None:
        started.append(source)
        if source == pairs[2][0]:
            os.kill(os.getpid(), signum)  # reaches the main thread while it waits for the workers
        time.sleep(0.05)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    interrupts.install()
    try:
        with pytest.raises(KeyboardInterrupt) as raised:
            run_batch(pairs, process_one, jobs=2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    frames = [entry.path for entry in raised.traceback]
    assert not [path for path in frames if "threading" in str(path) or "concurrent" in str(path)], frames
    assert len(started) <= 4  # the file that sent it, the one beside it, and at most one started meanwhile
    assert all(not thread.name.startswith("lutgen-batch") for thread in threading.enumerate())


def test_sigterm_mid_run_leaves_only_complete_files(tmp_path):
    source = tmp_path / "shoot"
    source.mkdir()
    for index in range(8):  # 16-bit PNGs: slow to decode and encode, so the run lasts
        cv2.imwrite(str(source / f"frame{index:02d}.png"), photo(360, 480, index, 16))
    cube = write_look(tmp_path)
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "infer", str(cube), str(source), "-d", str(out), "--jobs", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not (out.exists() and any(p.suffix == ".png" and not p.name.startswith(".") for p in out.iterdir())):
        assert child.poll() is None and time.monotonic() < deadline, "no image was written"
        time.sleep(0.005)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 143, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    written = sorted(out.iterdir())
    assert all(not p.name.startswith(".") for p in written)  # no temporary file left behind
    assert 1 <= len(written) < 8  # it did stop mid-run
    for path in written:
        image = load_image(path)  # a truncated PNG would fail its checks here
        assert image.rgb.shape == (360, 480, 3) and image.rgb.dtype == np.uint16


def test_enhance_jobs_give_the_same_files_and_luts_as_one_at_a_time(tmp_path):
    """``enhance --jobs 3`` writes byte-for-byte what ``--jobs 1`` writes, LUT exports included, and skips
    the corrupt photo the same way."""
    source = tmp_path / "shoot"
    names = shoot(source)
    (source / "c_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    outputs = {}
    for jobs in (1, 3):
        out = tmp_path / f"out{jobs}"
        result = run_lutgen("enhance", source, "-d", out, "--jobs", jobs, "--export-cube")
        assert result.returncode == 2 and "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "c_broken.jpg" in errors[0], result.stderr
        assert f"wrote {len(names)} images to {out}" in result.stdout
        outputs[jobs] = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(outputs[1]) == 3 * len(names)  # each photo, its NAME.cube and its NAME_33.cube
    assert outputs[1] == outputs[3]
