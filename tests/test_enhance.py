"""`lutgen enhance` end to end: the shipped model grades photos, exports their LUTs, and `infer` agrees.

The reference output is the published network and transform computed independently in float64
(``adaint_reference.py``); an 8- or 16-bit output code must lie within 0.5 (plus the 6-decimal rounding
of the exported LUT, below 0.002 codes) of it.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import colour
import numpy as np
import pytest
from adaint_reference import ROOT, SHIPPED_SRGB, read_published_tensors, reference_network

from lutgen.color.adaint import psnr, sample_colours
from lutgen.color.cpu import apply_lut_array
from lutgen.errors import ImageError, LutgenError, OptionError, Terminated
from lutgen.formats import read_lut
from lutgen.imaging import ImageData, load_image, save_image
from lutgen.models import load_weights
from lutgen.tasks.enhance import _CpuEnhancer, _TorchEnhancer, cube_paths, enhance
from lutgen.tasks.infer import infer

ROUNDING = 2e-3  # code values: the exported LUT's values are rounded to 6 decimals


@pytest.fixture(scope="module")
def tensors():
    return read_published_tensors(SHIPPED_SRGB)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A 8-bit PNG crop of a bundled photo, with an ICC profile and EXIF."""
    source = load_image(ROOT / "images" / "coffee.jpg")
    folder = tmp_path_factory.mktemp("photos")
    exif = _exif_with_orientation(1)
    data = ImageData(rgb=np.ascontiguousarray(source.rgb[100:260, 150:390]), icc_profile=_srgb_profile(), exif=exif)
    path = folder / "cup.png"
    save_image(data, path)
    return path


@functools.cache
def _srgb_profile() -> bytes:
    """An sRGB ICC profile (made once: its header holds the creation time)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif_with_orientation(orientation: int) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "lutgen test camera"
    return exif.tobytes()


def reference_codes(tensors, rgb: np.ndarray) -> np.ndarray:
    """The float64 published model's output for integer pixels, in code values (clipped, not rounded)."""
    top = float(np.iinfo(rgb.dtype).max)
    _, _, output = reference_network(tensors, rgb / top)
    return np.clip(output * top, 0, top)


def test_enhanced_photo_matches_the_reference_and_its_cube_reproduces_it(photo, tensors, tmp_path):
    out = tmp_path / "enhanced.png"
    result = enhance([photo], output_path=out, export_cube=True)
    assert result.written == [out] and not result.failed
    shaper_cube, plain_cube = cube_paths(out)
    assert (shaper_cube.name, plain_cube.name) == ("enhanced.cube", "enhanced_33.cube")
    exported = result.exported[out]
    assert (exported.shaper_cube, exported.plain_cube) == (shaper_cube, plain_cube)

    source = load_image(photo)
    enhanced = load_image(out)
    assert enhanced.rgb.dtype == np.uint8 and enhanced.rgb.shape == source.rgb.shape
    assert enhanced.icc_profile == source.icc_profile == _srgb_profile()
    assert enhanced.exif == source.exif and b"lutgen test camera" in enhanced.exif
    expected = reference_codes(tensors, source.rgb)
    assert np.abs(enhanced.rgb - expected).max() <= 0.5 + ROUNDING
    assert not np.array_equal(enhanced.rgb, source.rgb)

    # `lutgen infer NAME.cube photo` gives the same image, code for code
    inferred = tmp_path / "inferred.png"
    infer(shaper_cube, [photo], output_path=inferred)
    assert np.array_equal(load_image(inferred).rgb, enhanced.rgb)
    # and so does colour-science reading the same file, within 0.5 code value of the reference
    theirs = colour.read_LUT(str(shaper_cube)).apply(source.rgb / 255.0) * 255
    assert np.abs(np.clip(np.round(theirs), 0, 255) - expected).max() <= 0.5 + ROUNDING

    plain = read_lut(plain_cube)
    assert plain.shaper is None and plain.size == 33
    assert "PSNR" in " ".join(plain.comments)
    colours = sample_colours(source.rgb)  # every pixel of this small photo
    _, _, reference_output = reference_network(tensors, colours.reshape(source.rgb.shape))
    measured = psnr(apply_lut_array(colours, plain), reference_output.reshape(-1, 3))
    assert exported.plain_psnr == pytest.approx(measured, abs=0.1)
    assert exported.plain_psnr > 45


def test_16_bit_png_with_alpha_stays_16_bit(tensors, tmp_path):
    rgb8 = load_image(ROOT / "images" / "chelsea_cat.jpg").rgb[:120, :160]
    ramp = np.linspace(0, 1, rgb8.shape[1])[None, :, None]
    rgb16 = np.round(np.clip(rgb8 / 255.0 * 0.8 + 0.1 * ramp, 0, 1) * 65535).astype(np.uint16)
    alpha = np.tile(np.linspace(0, 65535, rgb8.shape[1]).astype(np.uint16), (rgb8.shape[0], 1))
    source = tmp_path / "cat16.png"
    save_image(ImageData(rgb=rgb16, alpha=alpha), source)
    out_dir = tmp_path / "out"
    result = enhance([source], output_dir=out_dir)
    enhanced = load_image(out_dir / "cat16.png")
    assert result.written == [out_dir / "cat16.png"]
    assert enhanced.rgb.dtype == np.uint16 and np.array_equal(enhanced.alpha, alpha)
    # float32 network vs float64 reference: the LUT differs by ~1e-6, i.e. ~0.1 of a 16-bit code
    assert np.abs(enhanced.rgb - reference_codes(tensors, rgb16)).max() <= 0.5 + 0.2


def test_jpeg_with_exif_rotation_comes_out_upright_with_metadata(tmp_path):
    from PIL import Image

    rgb = load_image(ROOT / "images" / "mate_dune.jpg").rgb[:90, :140]
    source = tmp_path / "rotated.jpg"
    Image.fromarray(rgb).save(source, quality=95, exif=_exif_with_orientation(6), icc_profile=_srgb_profile())
    out = tmp_path / "upright.jpg"
    enhance([source], output_path=out)
    enhanced = load_image(out)
    assert enhanced.rgb.shape == (140, 90, 3)  # orientation 6 turns the 140-wide picture upright
    assert enhanced.icc_profile == _srgb_profile()
    with Image.open(out) as im:
        assert im.getexif()[0x0112] == 1 and im.getexif()[0x010F] == "lutgen test camera"


def test_torch_path_agrees_with_the_cpu_path(photo):
    """The float32 torch transform and the exact shaper + 3D LUT differ by at most one code (rounding)."""
    import torch

    weights = load_weights()
    rgb = load_image(photo).rgb
    on_cpu = _CpuEnhancer(weights)(rgb)
    on_torch = _TorchEnhancer(weights, torch.device("cpu"))(rgb)
    np.testing.assert_allclose(on_torch.table, on_cpu.table, rtol=0, atol=1e-5)
    np.testing.assert_allclose(on_torch.vertices, on_cpu.vertices, rtol=0, atol=1e-6)
    difference = np.abs(on_torch.graded.astype(int) - on_cpu.graded)
    assert difference.max() <= 1 and np.mean(difference > 0) < 0.01


def test_unreadable_images_are_skipped_and_reported(photo, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_good.png").write_bytes(photo.read_bytes())
    (folder / "b_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = enhance([folder], output_dir=tmp_path / "out")
    assert result.written == [tmp_path / "out" / "a_good.png"]
    assert [path.name for path, _ in result.failed] == ["b_broken.jpg"]


def test_option_errors(photo, tmp_path):
    with pytest.raises(OptionError, match="--output-dir"):
        enhance([photo, ROOT / "images" / "coffee.jpg"], output_path=tmp_path / "x.png")
    with pytest.raises(LutgenError, match="refusing to overwrite"):
        enhance([photo], output_path=photo)
    with pytest.raises(OptionError, match="--quality"):
        enhance([photo], output_path=tmp_path / "x.jpg", quality=0)
    with pytest.raises(OptionError, match="--device"):
        enhance([photo], output_path=tmp_path / "x.jpg", device="tpu")
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = other / "cup.jpg"
    twin.write_bytes((ROOT / "images" / "coffee.jpg").read_bytes())
    with pytest.raises(OptionError, match="same LUT file"):
        enhance([photo, twin], output_dir=tmp_path / "out", export_cube=True)
    with pytest.raises(ImageError):
        enhance([tmp_path / "absent.jpg"], output_path=tmp_path / "x.jpg")


def test_missing_or_invalid_model_is_one_sentence(photo, tmp_path):
    with pytest.raises(LutgenError, match="absent.safetensors: no such file"):
        enhance([photo], model=str(tmp_path / "absent.safetensors"), output_path=tmp_path / "x.png")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")  # a valid safetensors file without tensors
    with pytest.raises(LutgenError, match="does not hold AdaInt weights"):
        enhance([photo], model=str(junk), output_path=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_a_published_checkpoint_file_gives_the_same_result(photo, tmp_path):
    published = ROOT.parent / "shared" / "models" / "adaint" / "AiLUT-FiveK-sRGB.pth"
    if not published.is_file():
        pytest.skip(f"{published} is not available")
    enhance([photo], output_path=tmp_path / "shipped.png")
    enhance([photo], model=str(published), output_path=tmp_path / "published.png")
    assert np.array_equal(load_image(tmp_path / "shipped.png").rgb, load_image(tmp_path / "published.png").rgb)


# ------------------------------------------------------------------------------------------------
# The command line, in a fresh process
# ------------------------------------------------------------------------------------------------

PROBE = """
import sys
sys.argv = ['lutgen', *sys.argv[1:]]
import lutgen.cli.enhance  # registers the command (lutgen.cli.commands may import it too)
from lutgen.cli import main
try:
    main()
finally:
    print('torch imported' if 'torch' in sys.modules else 'torch not imported', file=sys.stderr)
"""


def run_cli(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(probe), "enhance", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)


def test_cli_enhances_and_exports_without_torch(photo, tmp_path):
    result = run_cli(tmp_path, photo, "-o", tmp_path / "out.jpg", "--export-cube")
    assert result.returncode == 0, result.stderr
    assert "torch not imported" in result.stderr
    assert f"wrote {tmp_path / 'out.jpg'}" in result.stdout
    assert "out_33.cube (PSNR" in result.stdout and "dB" in result.stdout
    for name in ("out.jpg", "out.cube", "out_33.cube"):
        assert (tmp_path / name).is_file()


def test_cli_reports_a_bad_model_in_one_sentence(photo, tmp_path):
    result = run_cli(tmp_path, photo, "--model", "fivek-unknown", "-o", tmp_path / "out.png")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip() and "torch" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: unknown model 'fivek-unknown'"), result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------------
# A photo's files are written together: an interruption leaves all of them or none
# ------------------------------------------------------------------------------------------------


def _text_writer(text: str):
    return lambda path: Path(path).write_text(text)


def test_write_together_leaves_every_file_or_none(tmp_path):
    from lutgen.fileio import write_together

    def interrupt(path):
        raise Terminated()

    files = [(tmp_path / "a.txt", _text_writer("a")), (tmp_path / "b.txt", _text_writer("b")),
             (tmp_path / "c.txt", interrupt)]
    with pytest.raises(Terminated):
        write_together(files)
    assert list(tmp_path.iterdir()) == []  # neither targets nor temporary files

    blocker = tmp_path / "c.txt"
    blocker.mkdir()
    (blocker / "keep").write_text("a folder where the last file should go")
    with pytest.raises(LutgenError, match=rf"^cannot write {blocker}: Is a directory"):
        write_together([(tmp_path / "a.txt", _text_writer("a")), (tmp_path / "b.txt", _text_writer("b")),
                        (blocker, _text_writer("c"))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]  # a.txt and b.txt were renamed, then removed
    blocker.joinpath("keep").unlink()
    blocker.rmdir()

    write_together([(tmp_path / "a.txt", _text_writer("a")), (tmp_path / "b.txt", _text_writer("b"))])
    assert (tmp_path / "a.txt").read_text() == "a" and (tmp_path / "b.txt").read_text() == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_an_interruption_between_a_photos_files_leaves_none_of_them(photo, tmp_path):
    """The real writers of one photo (image, shaper cube, plain cube), interrupted after each in turn."""
    from lutgen.fileio import write_together
    from lutgen.tasks.enhance import make_enhancer, photo_files

    image = load_image(photo)
    prediction = make_enhancer(load_weights("fivek-srgb"), "cpu")(image.rgb)
    target = tmp_path / "out" / "m00.png"
    for stop_after in range(3):
        _, files = photo_files(prediction, image, target, 95, True, "fivek-srgb")
        assert [path.name for path, _ in files] == ["m00.png", "m00.cube", "m00_33.cube"]
        path, write = files[stop_after]

        def write_then_interrupt(temporary, write=write):
            write(temporary)
            assert Path(temporary).stat().st_size > 0
            raise KeyboardInterrupt

        files[stop_after] = (path, write_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            write_together(files)
        assert list(target.parent.iterdir()) == []
    _, files = photo_files(prediction, image, target, 95, True, "fivek-srgb")
    write_together(files)
    assert sorted(p.name for p in target.parent.iterdir()) == ["m00.cube", "m00.png", "m00_33.cube"]


def test_errors_from_a_writer_name_the_target_not_its_temporary(tmp_path):
    from lutgen.fileio import write_together

    def refuse(path):
        raise ImageError(f"cannot write {path}: the disk is full")

    target = tmp_path / "x.png"
    with pytest.raises(LutgenError, match=rf"^cannot write {target}: the disk is full$"):
        write_together([(target, refuse)])
    assert list(tmp_path.iterdir()) == []


def test_sigterm_leaves_complete_photo_sets_and_exits_143(tmp_path):
    """SIGTERM while enhancing a folder with --export-cube: exit 143 with one line, and every photo has all
    three files or none (the signal lands anywhere; the property must hold wherever it does)."""
    import signal
    import time

    from cli_runner import ROOT as REPO

    folder = tmp_path / "in"
    folder.mkdir()
    source = load_image(ROOT / "images" / "coffee.jpg").rgb
    for i in range(30):
        crop = np.ascontiguousarray(np.roll(source, 7 * i, axis=1)[:120, :160])
        save_image(ImageData(rgb=crop), folder / f"m{i:02d}.png")
    out = tmp_path / "out"
    command = [sys.executable, str(REPO / "main.py"), "enhance", str(folder), "-d", str(out), "--export-cube"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None and not list(out.glob("*_33.cube")):
            time.sleep(0.01)
        time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 143, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and "%|" not in line]  # not the progress bar
    assert lines == ["error: interrupted; the files finished so far are written, none is half-written"], stderr
    names = {p.name for p in out.iterdir()}
    assert not [name for name in names if ".part" in name or name.startswith(".")]
    finished = {name[:-4] for name in names if name.endswith(".png")}
    assert 0 < len(finished) < 30
    assert names == {f"{stem}{suffix}" for stem in finished for suffix in (".png", ".cube", "_33.cube")}
