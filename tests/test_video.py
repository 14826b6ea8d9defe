"""Video through ``infer`` and ``enhance`` (PyAV): exact grading at the source's depth, streams and metadata kept.

Clips are generated here with PyAV: a few dozen small frames of moving colour ramps, 8-bit H.264 and
10-bit ProRes, with an AAC audio track. Exactness is checked against ffmpeg's ``lut3d`` filter (where
ffmpeg is installed), both sides written losslessly (FFV1 RGB) and compared as decoded RGB.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from cli_runner import ROOT, one_sentence_error, run_lutgen
from lutgen.formats import read_lut, write_lut
from reference import nonlinear_lut

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed")
BT709 = 1
LIMITED = 1


def ramp_frame(index: int, width: int, height: int, dtype=np.uint8) -> np.ndarray:
    """A smooth colour ramp that moves with ``index``: ``(H, W, 3)`` codes of ``dtype``."""
    top = np.iinfo(dtype).max
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    phase = index / 24
    rgb = np.stack([0.5 + 0.45 * np.sin(2 * np.pi * (x + phase)), 0.1 + 0.8 * y,
                    0.5 + 0.45 * np.cos(2 * np.pi * (x * y + phase))], axis=-1)
    return np.round(rgb * top).astype(dtype)


def make_clip(path: Path, codec: str = "libx264", pix_fmt: str = "yuv420p", *, frames: int = 24,
              size: tuple[int, int] = (64, 48), rate: int = 24, audio: bool = True, pts=None,
              rotation: int = 0, frame=ramp_frame, options=None) -> Path:
    """Write a clip of ``frames`` ramp frames (BT.709, limited range), with a 440 Hz stereo AAC track.

    ``pts`` gives each frame's time stamp in units of ``1/rate`` (variable frame rate); ``frame(i, w, h,
    dtype)`` draws frame ``i``.
    """
    width, height = size
    deep = not pix_fmt.endswith("p") and pix_fmt not in ("nv12",)
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.time_base = Fraction(1, rate * 10)
        video.codec_context.time_base = Fraction(1, rate * 10)
        context = video.codec_context
        context.colorspace, context.color_range = BT709, LIMITED
        context.color_primaries, context.color_trc = BT709, BT709
        video.options = options or ({"qp": "4"} if codec == "libx264" else {})
        if rotation:
            video.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=48000, layout="stereo") if audio else None
        for i in range(frames):
            rgb = frame(i, width, height, np.uint16 if deep else np.uint8)
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if deep else "rgb24")
            picture = picture.reformat(format=pix_fmt, dst_colorspace="itu709", dst_color_range=LIMITED)
            picture.pts = (i if pts is None else pts[i]) * 10
            picture.color_primaries, picture.color_trc = BT709, BT709
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        if sound is not None:
            seconds = frames / rate
            t = np.arange(int(48000 * seconds)) / 48000
            samples = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]).astype(np.float32) * 0.3
            for start in range(0, samples.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]),
                                                   format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts = 48000, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def decoded_rgb(path: Path, fmt: str = "rgb24") -> np.ndarray:
    """Every frame of the first video stream as ``(T, H, W, 3)`` RGB."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format=fmt) for f in container.decode(video=0)])


def audio_packets(path: Path) -> list[bytes]:
    """The bytes of every packet of the first audio stream."""
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


@pytest.fixture
def look(tmp_path) -> Path:
    """A strongly nonlinear 17^3 .cube (cross-channel terms, so interpolation matters)."""
    cube = tmp_path / "look.cube"
    write_lut(nonlinear_lut(17, np.random.default_rng(5)), cube)
    return cube


def ffmpeg_graded(source: Path, cube: Path, interpolation: str, target: Path, pix_fmt: str) -> Path:
    """ffmpeg's ``lut3d`` on every frame, written losslessly as FFV1 ``pix_fmt`` (RGB).

    The filter is fed packed RGB (``rgb24``/``rgb48le``): ffmpeg 5.1's planar 10-bit path (``gbrp10``) of
    ``lut3d`` gives results far from its own packed 16-bit path on the same frames (measured), so the
    reference uses the packed one.
    """
    packed = "rgb24" if pix_fmt == "bgr0" else "rgb48le"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(source), "-vf",
                    f"format={packed},lut3d=file={cube}:interp={interpolation},format={pix_fmt}",
                    "-c:v", "ffv1", "-an", str(target)], check=True)
    return target


@needs_ffmpeg
@pytest.mark.parametrize("interpolation", ["trilinear", "tetrahedral"])
@pytest.mark.parametrize("depth", [8, 10])
def test_frames_match_ffmpeg_lut3d_within_one_code(tmp_path, look, depth, interpolation):
    from lutgen.color.cpu import apply_lut_array
    from lutgen.tasks.infer_video import infer_video

    if depth == 8:
        source = make_clip(tmp_path / "clip.mp4", frames=12)
        fmt, ffv1_format, one_code = "rgb24", "bgr0", 1
    else:
        source = make_clip(tmp_path / "clip.mov", "prores_ks", "yuv422p10le", frames=12)
        fmt, ffv1_format, one_code = "rgb48le", "gbrp16le", 65535 / 1023
    ours = infer_video(read_lut(look), source, tmp_path / "ours.mkv", interpolation=interpolation, codec="ffv1")
    assert (ours.frames, ours.source_depth, ours.codec) == (12, depth, "ffv1")
    assert ours.pixel_format == ("bgr0" if depth == 8 else "gbrp10le")
    theirs = decoded_rgb(ffmpeg_graded(source, look, interpolation, tmp_path / "ffmpeg.mkv", ffv1_format), fmt)
    graded = decoded_rgb(ours.target, fmt)
    assert graded.shape == theirs.shape == (12, 48, 64, 3)
    assert np.abs(graded.astype(np.int64) - theirs).max() <= one_code + 1
    assert audio_packets(ours.target) == audio_packets(source) and len(audio_packets(source)) > 10
    if depth == 10:  # the same frames rounded to 8 bits before grading miss by many 10-bit codes
        rounded = np.round(decoded_rgb(source, fmt) / 257).astype(np.uint8)
        eight_bit = np.stack([apply_lut_array(f, read_lut(look), interpolation) for f in rounded])
        assert np.abs(eight_bit.astype(np.int64) * 257 - theirs).max() > 10 * one_code


def stream_facts(path: Path) -> dict:
    """What the output must keep of its source: codec, rate, tags, rotation, every frame's time (s)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        context = video.codec_context
        frames = list(container.decode(video=0))
        return dict(codec=context.name, pix_fmt=context.format.name, rate=video.average_rate,
                    colour=(int(context.color_primaries), int(context.color_trc), int(context.colorspace),
                            int(context.color_range)),
                    rotation=frames[0].rotation, times=[float(f.time) for f in frames],
                    audio=[s.codec_context.name for s in container.streams.audio])


@pytest.mark.parametrize("kind", ["h264-vfr-rotated", "prores-10bit"])
def test_codec_family_time_stamps_rotation_and_colour_are_kept(tmp_path, look, kind):
    from lutgen.tasks.infer_video import infer_video

    if kind == "prores-10bit":
        source = make_clip(tmp_path / "clip.mov", "prores_ks", "yuv422p10le", frames=8)
        expected_format = "yuv422p10le"
    else:  # variable frame rate: frames 1 to 3 twice as long, then a jump
        pts = [0, 1, 3, 5, 7, 8, 9, 12, 13, 14]
        source = make_clip(tmp_path / "clip.mp4", frames=len(pts), pts=pts, rotation=90)
        expected_format = "yuv420p"
    result = infer_video(read_lut(look), source, tmp_path / f"out{source.suffix}")
    before, after = stream_facts(source), stream_facts(result.target)
    assert after["codec"] == before["codec"] == ("prores" if kind == "prores-10bit" else "h264")
    assert after["pix_fmt"] == result.pixel_format == expected_format
    assert after["colour"] == before["colour"] == (BT709, BT709, BT709, LIMITED)
    assert after["rotation"] == before["rotation"]
    assert after["times"] == pytest.approx(before["times"], abs=1e-3)
    assert after["audio"] == ["aac"] and audio_packets(result.target) == audio_packets(source)
    if kind == "prores-10bit":
        assert after["rate"] == before["rate"] == 24
    else:
        assert before["rotation"] == 90 and np.ptp(np.diff(before["times"])) > 0.05


def audio_only(path: Path) -> Path:
    """A Matroska file holding one AAC track and no video."""
    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=48000, layout="stereo")
        for start in range(0, 48000, 1024):
            chunk = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = 48000, start
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    return path


@pytest.fixture
def read_only_folder(tmp_path) -> Path:
    """A folder no file can be created in: a 0o555 folder, or /sys where permissions do not bind (root)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder if not os.access(folder, os.W_OK) else Path("/sys")
    folder.chmod(0o755)


@pytest.mark.parametrize("case", ["corrupt", "truncated-mp4", "truncated-mkv", "audio-only", "unknown-codec",
                                  "codec-not-built", "crf-out-of-range", "read-only-folder", "prores-12bit-target"])
def test_video_failures_are_one_sentence_and_write_nothing(tmp_path, look, read_only_folder, case):
    from lutgen.errors import LutgenError
    from lutgen.tasks.infer_video import infer_video
    from lutgen.video.codecs import FAMILIES, check_video_options, output_format

    source, target, options = tmp_path / "clip.mkv", tmp_path / "out" / "graded.mkv", {}
    if case == "corrupt":
        source.write_bytes(b"\x1a\x45\xdf\xa3" + np.random.default_rng(0).bytes(5000))
    elif case.startswith("truncated"):
        clip = make_clip(tmp_path / f"whole.{case[-3:]}", frames=16)
        source = tmp_path / f"cut.{case[-3:]}"
        source.write_bytes(clip.read_bytes()[: clip.stat().st_size * 2 // 3])
    elif case == "audio-only":
        audio_only(source)
    else:
        make_clip(source, frames=4, audio=False)
        options = {"unknown-codec": dict(codec="theora9"), "crf-out-of-range": dict(codec="h264", quality=60)
                   }.get(case, {})
        target = read_only_folder / "graded.mkv" if case == "read-only-folder" else target
    with pytest.raises(LutgenError) as raised:
        if case == "codec-not-built":
            check_video_options("hevc", None, available={"libx264", "ffv1"})
        elif case == "prores-12bit-target":
            output_format(FAMILIES["prores"], 12, "444", set())
        else:
            infer_video(read_lut(look), source, target, **options)
    message = str(raised.value)
    assert "\n" not in message and message.count(". ") == 0, message
    expected = {"corrupt": "corrupt", "truncated-mp4": "truncated", "truncated-mkv": "truncated",
                "audio-only": "no video stream", "unknown-codec": "--codec must be one of",
                "codec-not-built": "no libx265 encoder", "crf-out-of-range": "between 0 and 51",
                "read-only-folder": "cannot write", "prores-12bit-target": "choose ffv1"}[case]
    assert expected in message, message
    assert not target.exists() and not any(tmp_path.glob("**/*.part*"))


def test_cli_reports_a_bad_video_in_one_line_and_exit_2(tmp_path):
    broken = tmp_path / "broken.mov"
    broken.write_bytes(b"\x00\x00\x00\x18ftypqt  " + bytes(3000))
    result = run_lutgen("enhance", broken, "-o", tmp_path / "out.mov")
    one_sentence_error(result, "broken.mov", "corrupt")
    assert not (tmp_path / "out.mov").exists()
    result = run_lutgen("enhance", broken, "-o", tmp_path / "out.mov", "--codec", "av2")
    one_sentence_error(result, "--codec must be one of")


def test_videos_are_told_by_content(tmp_path):
    from PIL import Image

    from lutgen.imaging.finding import find_media
    from lutgen.video.probe import is_video, is_video_header

    mkv = make_clip(tmp_path / "a.mkv", frames=2, audio=False)
    renamed = tmp_path / "no_extension"
    renamed.write_bytes(make_clip(tmp_path / "b.mp4", frames=2, audio=False).read_bytes())
    Image.new("RGB", (8, 8)).save(tmp_path / "c.jpg")
    (tmp_path / "notes.txt").write_text("not a video")
    assert is_video(mkv) and is_video(renamed) and is_video(tmp_path / "b.mp4")
    assert not is_video(tmp_path / "c.jpg") and not is_video(tmp_path / "notes.txt") and not is_video(tmp_path)
    assert not is_video_header(b"\x00\x00\x00\x1cftypheic" + bytes(20))  # a HEIC photo is an image
    assert not is_video_header(b"\x00\x00\x00\x1cftypM4A " + bytes(20))  # audio only
    assert is_video_header(b"RIFF\x00\x00\x00\x00AVI LIST") and is_video_header(b"\x1a\x45\xdf\xa3\x01")
    images, videos = find_media([tmp_path, renamed])
    assert images == [tmp_path / "c.jpg"] and videos == [mkv, tmp_path / "b.mp4", renamed]


def shot_frame(index: int, width: int, height: int, dtype=np.uint8) -> np.ndarray:
    """Frames 0-4: a still ramp with a little sensor noise; frames 5 on: another shot (dim, blue-green)."""
    rng = np.random.default_rng(index)
    rgb = ramp_frame(0, width, height, np.uint16) / 65535 if index < 5 else None
    if rgb is None:
        y, x = np.mgrid[0:height, 0:width]
        rgb = np.stack([0.05 + 0.1 * x / width, 0.2 + 0.2 * y / height, 0.3 + 0.3 * x / width], axis=-1)
    top = np.iinfo(dtype).max
    return np.clip(np.round((rgb + rng.normal(0, 0.02, rgb.shape)) * top), 0, top).astype(dtype)


def test_enhance_smooths_a_static_shot_and_restarts_at_a_cut(tmp_path):
    from lutgen.color.cpu import apply_lut_array
    from lutgen.models import DEFAULT_MODEL, load_weights
    from lutgen.models.adaint_cpu import predict_lut, resize_input
    from lutgen.tasks.enhance import model_lut
    from lutgen.tasks.enhance_video import TemporalSmoother, enhance_video

    source = make_clip(tmp_path / "shots.mkv", "ffv1", "bgr0", frames=8, size=(96, 64), frame=shot_frame)
    frames = decoded_rgb(source)
    weights = load_weights(DEFAULT_MODEL)
    smoother = TemporalSmoother(0.9)
    raw, smoothed = [], []
    for rgb in frames:
        small = resize_input(rgb)
        raw.append(predict_lut(weights, rgb))
        smoothed.append(smoother(small, *raw[-1]))
    assert [s.cut for s in smoothed] == [True, False, False, False, False, True, False, False]
    raw_change = max(np.abs(raw[i][0] - raw[i - 1][0]).max() for i in range(1, 5))
    smooth_change = max(np.abs(smoothed[i].table - smoothed[i - 1].table).max() for i in range(1, 5))
    assert raw_change > 1e-3 and smooth_change < 0.2 * raw_change
    assert np.array_equal(smoothed[5].table, raw[5][0]) and np.array_equal(smoothed[5].vertices, raw[5][1])

    result, cuts = enhance_video(source, tmp_path / "enhanced.mkv", codec="ffv1")
    assert (result.frames, cuts) == (8, 2)
    written = decoded_rgb(result.target)
    for i in (0, 5):  # the first frame of each shot is graded by its own prediction
        own = apply_lut_array(frames[i], model_lut(*raw[i], weights.source))
        assert np.array_equal(written[i], own)
    assert not np.array_equal(written[6], apply_lut_array(frames[6], model_lut(*raw[6], weights.source)))


def _wait_for_frames(process: subprocess.Popen, frames: int, seconds: float = 60) -> bytes:
    """Read the progress bar on the process's stderr until it shows ``frames`` done; what was read."""
    seen = b""
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        seen += os.read(process.stderr.fileno(), 4096)
        if any(int(done) >= frames for done in re.findall(rb"(\d+)/\d+ \[", seen)):
            break
    return seen


def test_sigterm_during_a_video_leaves_nothing_under_its_name(tmp_path):
    source = make_clip(tmp_path / "clip.mkv", frames=48, size=(64, 48))
    folder = tmp_path / "out"
    folder.mkdir()
    process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "enhance", str(source), "-o",
                                str(folder / "graded.mkv")], stderr=subprocess.PIPE,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    progress = _wait_for_frames(process, 3)
    totals = {int(total) for total in re.findall(rb"/(\d+) \[", progress)}
    assert totals <= {48, 49} and totals, progress  # frames out of the estimate: Matroska's duration x rate
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert b"interrupted" in stderr.strip().splitlines()[-1]
    assert list(folder.iterdir()) == []


def test_video_outputs_are_planned_before_any_work(tmp_path):
    from lutgen.errors import LutgenError
    from lutgen.video.targets import plan_video_targets

    clip, other, photo = tmp_path / "a.MOV", tmp_path / "b.mkv", tmp_path / "c.jpg"
    for path in (clip, other, photo):
        path.write_bytes(b"")
    assert plan_video_targets([clip], [], None, None) == [(clip, Path("output.mov"))]
    assert plan_video_targets([clip, other], [photo], None, tmp_path / "out") == [
        (clip, tmp_path / "out" / "a.MOV"), (other, tmp_path / "out" / "b.mkv")]
    refusals = {"use --output-dir": ([clip], [photo], None, None), "must end in one of": ([clip], [], photo, None),
                "refusing to overwrite the input": ([clip], [], clip, None),
                "share a file name": ([clip, other], [tmp_path / "x" / "a.MOV"], None, tmp_path)}
    for fragment, arguments in refusals.items():
        with pytest.raises(LutgenError, match=fragment):
            plan_video_targets(*arguments)


@needs_ffmpeg
def test_subtitles_are_copied_unchanged(tmp_path, look):
    from lutgen.tasks.infer_video import infer_video

    clip = make_clip(tmp_path / "clip.mkv", frames=12, audio=False)
    (tmp_path / "subs.srt").write_text("1\n00:00:00,000 --> 00:00:00,200\nFirst line\n\n"
                                       "2\n00:00:00,250 --> 00:00:00,450\nSecond line\n")
    source = tmp_path / "with_subs.mkv"
    subprocess.run([FFMPEG, "-v", "error", "-i", str(clip), "-i", str(tmp_path / "subs.srt"), "-map", "0", "-map", "1",
                    "-c", "copy", "-metadata:s:s:0", "language=fra", str(source)], check=True)
    result = infer_video(read_lut(look), source, tmp_path / "out.mkv")
    assert result.copied_streams == 1

    def subtitles(path):
        with av.open(str(path)) as container:
            stream = container.streams.subtitles[0]
            packets = [(bytes(p), float(p.pts * p.time_base)) for p in container.demux(stream) if p.size]
            return stream.codec_context.name, stream.metadata.get("language"), packets

    assert subtitles(result.target) == subtitles(source)
    assert len(subtitles(source)[2]) == 2


def test_infer_cli_grades_a_folder_of_photos_and_videos(tmp_path, look):
    """``lutgen infer LUT FOLDER -d OUT``: the photo graded as a still, the video frame by frame in its own
    container and codec family, each output under its input's name; the same frames as infer_video."""
    from PIL import Image

    from lutgen.tasks.infer_video import infer_video

    shoot = tmp_path / "shoot"
    shoot.mkdir()
    make_clip(shoot / "clip.mp4", frames=6)
    Image.fromarray(ramp_frame(0, 64, 48)).save(shoot / "still.png")
    result = run_lutgen("infer", look, shoot, "-d", tmp_path / "out", "--codec", "ffv1", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'out' / 'clip.mp4'}: 6 frames in ffv1 (bgr0)" in result.stdout
    assert "wrote 2 files to" in result.stdout
    alone = infer_video(read_lut(look), shoot / "clip.mp4", tmp_path / "alone.mkv", codec="ffv1")
    assert np.array_equal(decoded_rgb(tmp_path / "out" / "clip.mp4"), decoded_rgb(alone.target))
    from lutgen.color.cpu import apply_lut_array

    still = np.asarray(Image.open(tmp_path / "out" / "still.png"))
    assert np.array_equal(still, apply_lut_array(ramp_frame(0, 64, 48), read_lut(look)))
    one_sentence_error(run_lutgen("infer", look, shoot / "clip.mp4", "-o", tmp_path / "graded.png"),
                       "must end in one of")


def test_video_options_are_checked_before_any_file_even_without_a_video(tmp_path, look):
    """A bad --codec, --crf, --temporal-smoothing or --scene-cut is refused in one sentence whatever the
    inputs are, before any of them is read (the photo here does not even exist)."""
    photo = tmp_path / "missing.jpg"
    one_sentence_error(run_lutgen("infer", look, photo, "-o", tmp_path / "x.jpg", "--codec", "av1"), "--codec")
    one_sentence_error(run_lutgen("infer", look, photo, "-o", tmp_path / "x.jpg", "--crf", "-3"), "--crf")
    one_sentence_error(run_lutgen("enhance", photo, "-o", tmp_path / "x.jpg", "--temporal-smoothing", "1.5"),
                       "--temporal-smoothing")
    one_sentence_error(run_lutgen("enhance", photo, "-o", tmp_path / "x.jpg", "--scene-cut", "0"), "--scene-cut")
    assert list(tmp_path.iterdir()) == [look]


def rgba_clip(path: Path, codec: str, pix_fmt: str, deep: bool, frames: int = 8, options=None) -> np.ndarray:
    """A clip of moving ramps whose alpha runs from 0 (left) to opaque (right); returns the RGBA written."""
    dtype = np.uint16 if deep else np.uint8
    top = np.iinfo(dtype).max
    alpha = np.round(np.linspace(0, 1, 64)[None, :].repeat(48, 0) * top).astype(dtype)
    written = np.stack([np.dstack([ramp_frame(i, 64, 48, dtype), alpha]) for i in range(frames)])
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, pix_fmt
        video.options = options or {}
        for i, rgba in enumerate(written):
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba64le" if deep else "rgba").reformat(format=pix_fmt)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return written


@pytest.mark.parametrize(("pix_fmt", "deep"), [("bgra", False), ("gbrap16le", True)])
def test_alpha_is_kept_exactly_in_ffv1(tmp_path, look, pix_fmt, deep):
    """An FFV1 source with alpha: the colour graded exactly as a photo would be, the alpha untouched."""
    from lutgen.color.cpu import apply_lut_array

    source = tmp_path / "matte.mkv"
    rgba_clip(source, "ffv1", pix_fmt, deep)
    result = run_lutgen("infer", look, source, "-o", tmp_path / "graded.mkv")
    assert result.returncode == 0, result.stderr
    assert f"8 frames in ffv1 ({pix_fmt}, alpha kept)" in result.stdout and "warning" not in result.stderr
    fmt = "rgba64le" if deep else "rgba"
    before, after = decoded_rgb(source, fmt), decoded_rgb(tmp_path / "graded.mkv", fmt)
    assert np.array_equal(after[..., 3], before[..., 3])
    assert np.array_equal(after[..., :3], apply_lut_array(np.ascontiguousarray(before[..., :3]), read_lut(look)))


def test_prores_4444_keeps_its_alpha_and_stays_prores(tmp_path, look):
    """ProRes 4444 decodes at 12 bits; ProRes in is still ProRes out (10-bit 4:4:4:4), the alpha within a
    10-bit code."""
    source = tmp_path / "titles.mov"
    rgba_clip(source, "prores_ks", "yuva444p10le", True, options={"profile": "4444"})
    result = run_lutgen("infer", look, source, "-o", tmp_path / "graded.mov")
    assert result.returncode == 0, result.stderr
    assert "8 frames in prores_ks (yuva444p10le, alpha kept)" in result.stdout
    before, after = decoded_rgb(source, "rgba64le"), decoded_rgb(tmp_path / "graded.mov", "rgba64le")
    assert np.abs(after[..., 3].astype(int) - before[..., 3]).max() <= 65535 / 1023
    assert np.abs(after[..., :3].astype(int) - before[..., :3]).mean() > 1000  # graded, not copied
    from lutgen.video.codecs import FAMILIES, output_format

    assert output_format(FAMILIES["prores"], 12, "444", set(), source_codec="prores") == "yuv444p10le"


def test_a_codec_without_alpha_drops_it_with_one_warning(tmp_path, look):
    source = tmp_path / "matte.mkv"
    rgba_clip(source, "ffv1", "bgra", False, frames=4)
    result = run_lutgen("infer", look, source, "-o", tmp_path / "graded.mp4", "--codec", "h264")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "alpha channel of" in warnings[0] and "--codec prores or ffv1" in warnings[0]
    with av.open(str(tmp_path / "graded.mp4")) as container:
        components = container.streams.video[0].codec_context.format.components
        assert not any(c.is_alpha for c in components)


def test_frames_without_time_stamps_are_written_one_frame_apart(tmp_path):
    """A decoder that gives no time stamps (as raw streams do) still yields a playable file: each frame is
    stamped one frame period after the last."""
    from lutgen.video.codecs import FAMILIES
    from lutgen.video.reading import open_video
    from lutgen.video.writing import VideoSink

    source = open_video(make_clip(tmp_path / "clip.mp4", frames=2, audio=False))
    target = tmp_path / "out.mkv"
    sink = VideoSink(target, target, source, FAMILIES["ffv1"], None)
    try:
        for i in range(5):
            stamped_nothing = av.VideoFrame.from_ndarray(ramp_frame(i, 64, 48), format="rgb24")
            stamped_nothing.pts, stamped_nothing.time_base = None, source.stream.time_base
            sink.write(ramp_frame(i, 64, 48), stamped_nothing)
    finally:
        sink.close()
        source.close()
    with av.open(str(target)) as container:
        seconds = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    assert seconds == pytest.approx([i / 24 for i in range(5)], abs=1e-3)
    assert np.array_equal(decoded_rgb(target)[3], ramp_frame(3, 64, 48))


def test_a_codec_that_cannot_keep_the_depth_points_only_to_codecs_that_can():
    from lutgen.errors import OptionError
    from lutgen.video.codecs import FAMILIES, output_format

    with pytest.raises(OptionError, match=r"cannot write 12-bit video; choose --codec ffv1$"):
        output_format(FAMILIES["vp9"], 12, "444", {"yuv444p", "yuv444p10le"})
    with pytest.raises(OptionError, match=r"cannot write 10-bit video; choose --codec prores or ffv1$"):
        output_format(FAMILIES["h264"], 10, "420", {"yuv420p"})
