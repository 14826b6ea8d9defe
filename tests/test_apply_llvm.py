"""lutgen.color.cpu_llvm: the 8-bit trilinear kernel compiled with LLVM, its runs in threads and its disk cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_runner import ROOT
from reference import apply_reference_codes, random_shaper, smooth_random_lut

from lutgen.color import cpu, cpu_llvm
from lutgen.color.cpu import apply_lut_array
from lutgen.lut import LUT


def _kernel_arrays(lut: LUT):
    """The tables :func:`cpu_llvm.grade_red_lerped` takes for ``lut``, made as lutgen.color.cpu makes them."""
    n = lut.size
    index, frac = cpu._code_cells(cpu._shaped_codes(255, lut.shaper), *lut.domain, n)
    rows = np.stack([index[1] * (3 * 256), index[2] * (3 * 256 * n)])
    return cpu_llvm.red_lerped(lut.table, index[0], frac[0]), rows, np.ascontiguousarray(frac[1:]), n


def _assert_rounded_reference(out: np.ndarray, codes: np.ndarray, lut: LUT, strength: float) -> None:
    expected = apply_reference_codes(codes, lut, "trilinear", strength)
    assert np.abs(out - expected).max() <= 0.5 + 1e-9
    away = np.abs(expected - np.floor(expected) - 0.5) > 1e-6
    np.testing.assert_array_equal(out[away], np.round(expected[away]))


def test_chunks_split_the_pixels_into_nearly_equal_contiguous_runs():
    for count in (1, 2, 3, 7, 8, 1001):
        for parts in (1, 2, 3, 8, 64):
            chunks = cpu_llvm._chunks(count, parts)
            assert len(chunks) == min(count, parts)
            assert chunks[0][0] == 0 and chunks[-1][1] == count
            assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
            lengths = [stop - first for first, stop in chunks]
            assert min(lengths) >= 1 and max(lengths) - min(lengths) <= 1


@pytest.mark.parametrize("count", [1, 2, 5, 7, 8, 9, 1001])
@pytest.mark.parametrize("threads", [2, 7])
@pytest.mark.parametrize("channels", [3, 4])
def test_runs_in_threads_give_the_serial_result_at_every_chunk_boundary(monkeypatch, count, threads, channels):
    """However the pixels are split (fewer pixels than threads, odd counts, one pixel), every pixel is graded once."""
    lut = smooth_random_lut(17, np.random.default_rng(count))
    codes = np.random.default_rng(count + 1).integers(0, 256, size=(count, 3)).astype(np.uint8)
    rt, rows, frac, n = _kernel_arrays(lut)
    serial = np.full((count, channels), 7, np.uint8)
    cpu_llvm.grade_red_lerped(codes, serial, rt, rows, frac, n, 0.8, parallel=False)
    monkeypatch.setattr(cpu_llvm, "available_cores", lambda: threads)
    parallel = np.full((count, channels), 7, np.uint8)
    cpu_llvm.grade_red_lerped(codes, parallel, rt, rows, frac, n, 0.8, parallel=True)
    np.testing.assert_array_equal(parallel, serial)
    _assert_rounded_reference(serial[:, :3], codes, lut, 0.8)
    if channels == 4:
        np.testing.assert_array_equal(serial[:, 3], 7)


@pytest.mark.parametrize("strength", [1.0, 0.55, 0.0, -0.5, 2.0])
def test_a_shaper_lut_at_every_strength_is_the_rounded_reference(strength):
    rng = np.random.default_rng(21)
    domain = [[-0.1] * 3, [1.1] * 3]
    lut = LUT(smooth_random_lut(33, rng, domain).table, domain,
              shaper=random_shaper(64, rng, [[-0.25, 0.0, 0.1], [2.0, 1.0, 1.5]], out_range=(-0.2, 1.2)))
    codes = np.random.default_rng(22).integers(0, 256, size=(30000, 3)).astype(np.uint8)
    for parallel in (True, False):
        _assert_rounded_reference(apply_lut_array(codes, lut, "trilinear", strength, parallel), codes, lut, strength)


def test_every_code_of_every_channel_is_the_rounded_reference():
    lut = smooth_random_lut(33, np.random.default_rng(23))
    rng = np.random.default_rng(24)
    every = np.arange(256, dtype=np.uint8)
    codes = np.concatenate([np.stack([rng.permutation(every) for _ in range(3)], axis=-1) for _ in range(8)])
    _assert_rounded_reference(apply_lut_array(codes, lut), codes, lut, 1.0)


@pytest.mark.parametrize("size", [2, 17, 65])
def test_the_red_interpolated_table_mixes_the_two_red_nodes_around_each_code(size):
    rng = np.random.default_rng(size)
    table = rng.normal(size=(size, size, size, 3))
    index = rng.integers(0, size - 1, size=256)
    frac = rng.uniform(size=256)
    frac[:3] = [0.0, 1.0, 0.5]
    rt = cpu_llvm.red_lerped(table, index, frac).reshape(size, size, 256, 3)
    below, above = table[:, :, index], table[:, :, index + 1]
    expected = (1.0 - frac[:, None]) * below + frac[:, None] * above
    np.testing.assert_allclose(rt, expected, rtol=0, atol=4 * np.spacing(np.abs(table).max()))
    np.testing.assert_array_equal(rt[:, :, 0], below[:, :, 0])  # exactly a node at f = 0 and f = 1
    np.testing.assert_array_equal(rt[:, :, 1], above[:, :, 1])


def test_wrong_arrays_are_refused_before_the_kernel_runs():
    lut = smooth_random_lut(5, np.random.default_rng(25))
    rt, rows, frac, n = _kernel_arrays(lut)
    codes = np.zeros((4, 3), np.uint8)
    out = np.zeros((4, 3), np.uint8)
    for bad in (
        dict(pixels=codes.astype(np.uint16)),
        dict(pixels=np.zeros((8, 3), np.uint8)[::2]),
        dict(out=np.zeros((3, 3), np.uint8)),
        dict(out=np.zeros((4, 5), np.uint8)),
        dict(rt=rt[:-1]),
        dict(rows=rows.astype(np.uint32)),
        dict(frac=np.zeros((3, 256))),
        dict(rows=rows + (rows == rows.max()) * 3 * 256),  # a cell past the table's last
        dict(rows=rows - 3 * 256),
    ):
        arrays = dict(pixels=codes, out=out, rt=rt, rows=rows, frac=frac) | bad
        with pytest.raises(ValueError, match="grade_red_lerped"):
            cpu_llvm.grade_red_lerped(**arrays, n=n, strength=1.0, parallel=False)
    table, index, frac = lut.table, np.zeros(256, np.int64), np.zeros(256)
    for bad in (dict(index=index + 4), dict(index=index - 1), dict(index=index.astype(np.int32)),
                dict(frac=frac[:255]), dict(table=table[:, :, :4])):
        arrays = dict(table=table, index=index, frac=frac) | bad
        with pytest.raises(ValueError, match="red_lerped"):
            cpu_llvm.red_lerped(**arrays)


def test_machine_code_is_cached_and_a_damaged_cache_is_compiled_again(monkeypatch, tmp_path):
    cache = tmp_path / "grade.o"
    monkeypatch.setattr(cpu_llvm, "_cache_file", lambda key: cache)
    lut = smooth_random_lut(9, np.random.default_rng(26))
    arrays = _kernel_arrays(lut)
    codes = np.random.default_rng(27).integers(0, 256, size=(3000, 3)).astype(np.uint8)

    def grade_with(kernel) -> np.ndarray:
        rt, rows, frac, n = arrays
        out = np.zeros_like(codes)
        kernel(codes.ctypes.data, out.ctypes.data, 0, len(codes), 3, rt.ctypes.data, rows.ctypes.data,
               frac.ctypes.data, n, 255.0, 0.9)
        return out

    compiled, *keep = cpu_llvm._compile()
    written = cache.read_bytes()
    assert cpu_llvm._read(cache) == written[32:] and len(written) > 100
    loaded, *keep_loaded = cpu_llvm._compile()  # from the cache: no file is written
    assert cache.read_bytes() == written
    np.testing.assert_array_equal(grade_with(loaded.grade), grade_with(compiled.grade))
    _assert_rounded_reference(grade_with(loaded.grade), codes, lut, 0.9)

    cache.write_bytes(written[:-10])  # cut short: not run, compiled and written again
    assert cpu_llvm._read(cache) is None
    again, *keep_again = cpu_llvm._compile()
    assert cache.read_bytes() == written
    np.testing.assert_array_equal(grade_with(again.grade), grade_with(compiled.grade))


def test_the_cache_follows_numba_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "kernels"))
    path = cpu_llvm._cache_file("0123456789abcdef" * 4)
    assert path.parent == tmp_path / "kernels" / "lutgen" and path.parent.is_dir()
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    beside = Path(cpu_llvm.__file__).parent / "__pycache__"
    if os.access(beside, os.W_OK):  # a checkout; an installed copy may be read-only
        assert cpu_llvm._cache_file("0123456789abcdef" * 4).parent == beside


def test_8bit_trilinear_grading_never_imports_numba():
    """Shaper or not, any strength, in threads or not: the common case is graded without Numba."""
    probe = (
        "import sys, numpy as np\n"
        "from lutgen.color.cpu import apply_lut_array, warm_up\n"
        "from lutgen.lut import LUT, Shaper\n"
        "warm_up(np.uint8)\n"
        "codes = np.arange(3000, dtype=np.uint8).reshape(-1, 3)\n"
        "lut = LUT(np.random.default_rng(1).uniform(size=(33, 33, 33, 3)), shaper=Shaper.identity(64))\n"
        "for strength in (1.0, 0.5):\n"
        "    for parallel in (True, False):\n"
        "        apply_lut_array(codes, lut, 'trilinear', strength, parallel)\n"
        "print('numba' in sys.modules, 'llvmlite' in sys.modules)\n"
        "apply_lut_array(codes, lut, 'tetrahedral')\n"
        "print('numba' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True"]
