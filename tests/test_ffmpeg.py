"""ffmpeg's ``lut3d`` filter reads the plain 3D files lutgen writes and agrees with lutgen's appliers.

ffmpeg runs in float (``gbrpf32``, fed raw floats so no format conversion intervenes), so its
output is compared with lutgen's float output directly. The test is skipped, with the reason shown in the summary, where no ffmpeg is installed
(``.ci/run`` installs it when it can).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from lutgen.color.cpu import apply_lut_array
from lutgen.formats import read_lut, write_lut
from reference import nonlinear_lut, smooth_random_lut

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed")


def ffmpeg_apply(cube, rgb: np.ndarray, interpolation: str) -> np.ndarray:
    """ffmpeg's float application of ``cube`` to ``rgb`` ``(H, W, 3)`` float32 in 0..1, as float64."""
    height, width, _ = rgb.shape
    planar = np.ascontiguousarray(rgb[..., [1, 2, 0]].transpose(2, 0, 1), dtype="<f4")  # planes G, B, R
    command = [
        FFMPEG, "-v", "error", "-f", "rawvideo", "-pix_fmt", "gbrpf32le", "-s", f"{width}x{height}", "-i", "-",
        "-vf", f"lut3d=file={cube}:interp={interpolation}", "-f", "rawvideo", "-pix_fmt", "gbrpf32le", "-",
    ]
    raw = subprocess.run(command, input=planar.tobytes(), capture_output=True, check=True).stdout
    planes = np.frombuffer(raw, dtype="<f4").reshape(3, height, width)
    return np.stack([planes[2], planes[0], planes[1]], axis=-1).astype(np.float64)


@pytest.mark.parametrize("interpolation", ["trilinear", "tetrahedral"])
@pytest.mark.parametrize("make", [smooth_random_lut, nonlinear_lut], ids=["smooth", "nonlinear"])
def test_ffmpeg_reads_written_cube_and_agrees(tmp_path, make, interpolation):
    rng = np.random.default_rng(3)
    cube = tmp_path / "look.cube"
    write_lut(make(17, rng), cube)
    rgb = rng.uniform(0, 1, size=(32, 40, 3)).astype(np.float32)
    theirs = ffmpeg_apply(cube, rgb, interpolation)
    ours = apply_lut_array(rgb.astype(np.float64), read_lut(cube), interpolation)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=2e-6)
