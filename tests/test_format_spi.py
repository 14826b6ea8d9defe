""".spi3d and .spi1d reading and writing, checked against OpenColorIO and colour-science.

OpenColorIO applies each file (float32) to 8-bit and 16-bit code values; lutgen applies the LUT it
read (float64) to the same codes; they must agree within 0.5 code value. OpenColorIO's own test files
are in ``tests/data/formats`` (BSD-3-Clause, see its README).
"""

from __future__ import annotations

import random
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import PyOpenColorIO as ocio

from lutgen.color.cpu import apply_lut_array
from lutgen.errors import LutgenError, LutgenWarning
from lutgen.formats import read_lut, write_lut
from lutgen.lut import LUT, Shaper, grid
from reference import colour, random_shaper, smooth_random_lut

DATA = Path(__file__).parent / "data" / "formats"
BUNDLED = Path(__file__).parents[1] / "lutgen" / "data" / "luts" / "fuji_velvia_50.cube"


def codes(bits: int) -> np.ndarray:
    """A dense grid of 8-bit code values (every 5th code per channel) or 30,000 random 16-bit codes."""
    if bits == 8:
        axis = np.arange(0, 256, 5)
        return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(16)
    return np.concatenate([rng.integers(0, 65536, (30000, 3)), [[0, 0, 0], [65535, 65535, 65535]]])


def ocio_codes(path: Path, x: np.ndarray, bits: int) -> np.ndarray:
    """OpenColorIO's application of the file to codes ``x``, in code values (float)."""
    ocio.ClearAllCaches()
    transform = ocio.FileTransform(src=str(path), interpolation=ocio.INTERP_DEFAULT)
    processor = ocio.Config.CreateRaw().getProcessor(transform).getDefaultCPUProcessor()
    scale = 2**bits - 1
    pixels = np.ascontiguousarray(x / scale, dtype=np.float32)
    processor.applyRGB(pixels)
    return pixels.astype(np.float64) * scale


def lutgen_codes(lut: LUT, x: np.ndarray, bits: int) -> np.ndarray:
    scale = 2**bits - 1
    return apply_lut_array(x / scale, lut) * scale


def assert_like_ocio(path: Path, lut: LUT, bits: int) -> float:
    x = codes(bits)
    error = np.abs(lutgen_codes(lut, x, bits) - ocio_codes(path, x, bits)).max()
    assert error <= 0.5, f"{path.name}: {error:.4f} code values from OpenColorIO at {bits} bits"
    return error


# ------------------------------------------------------------------------------------------------
# OpenColorIO's files, and lutgen's files read by OpenColorIO
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("name", ["lut1d_1.spi1d", "lut1d_4.spi1d", "lut3d_bizarre.spi3d"])
def test_ocio_files_apply_like_ocio(name, bits):
    assert_like_ocio(DATA / name, read_lut(DATA / name), bits)


def test_ocio_spi1d_from_range_and_one_component():
    lut = read_lut(DATA / "lut1d_4.spi1d")
    assert lut.table is None and lut.shaper.size == 4096
    np.testing.assert_array_equal(lut.shaper.domain, [[-1.0] * 3, [2.0] * 3])
    assert lut.shaper.table[0].tolist() == [-6.0] * 3


@pytest.mark.parametrize("bits", [8, 16])
def test_two_component_spi1d_sets_blue_to_zero_like_ocio(tmp_path, bits):
    rows = "\n".join(f"{v * v!r} {1 - v!r}" for v in np.linspace(0, 1, 9))
    path = tmp_path / "two.spi1d"
    path.write_text(f"Version 1\nFrom -0.5 1.5\nLength 9\nComponents 2\n{{\n{rows}\n}}\n")
    lut = read_lut(path)
    np.testing.assert_array_equal(lut.shaper.table[:, 2], 0.0)
    assert_like_ocio(path, lut, bits)


@pytest.mark.parametrize("bits", [8, 16])
def test_written_spi3d_applies_like_ocio(tmp_path, bits):
    lut = read_lut(BUNDLED)
    path = tmp_path / "velvia.spi3d"
    write_lut(lut, path)
    assert_like_ocio(path, lut, bits)
    assert_like_ocio(path, read_lut(path), bits)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("same", [True, False], ids=["one-component", "three-components"])
def test_written_spi1d_applies_like_ocio(tmp_path, bits, same):
    rng = np.random.default_rng(3)
    shaper = random_shaper(257, rng, [[-0.25] * 3, [1.5] * 3], out_range=(-0.1, 1.2))
    if same:
        shaper = Shaper(np.repeat(shaper.table[:, :1], 3, axis=1), shaper.domain)
    lut = LUT(None, shaper=shaper)
    path = tmp_path / "curve.spi1d"
    write_lut(lut, path)
    assert ("Components 1" in path.read_text()) == same
    assert_like_ocio(path, lut, bits)


def test_written_spi3d_of_a_shaper_lut_is_sampled_with_a_warning(tmp_path):
    rng = np.random.default_rng(5)
    domain = np.array([[-0.1, 0.0, 0.05], [1.2, 1.0, 1.1]])
    lut = LUT(smooth_random_lut(9, rng).table, shaper=random_shaper(64, rng, domain))
    path = tmp_path / "baked.spi3d"
    with pytest.warns(LutgenWarning, match=r"cannot hold a shaper; the LUT was sampled on a plain 9x9x9 lattice"):
        write_lut(lut, path)
    back = read_lut(path)
    assert back.shaper is None and back.size == 9
    np.testing.assert_allclose(back.table, apply_lut_array(grid(9), lut), rtol=0, atol=5e-7)
    assert_like_ocio(path, back, 16)


# ------------------------------------------------------------------------------------------------
# colour-science's files, round trips, order of rows
# ------------------------------------------------------------------------------------------------


def test_colour_science_spi3d_and_spi1d_read_the_same_tables(tmp_path):
    rng = np.random.default_rng(7)
    table = rng.uniform(-0.1, 1.1, (5, 5, 5, 3))  # colour: [r, g, b, c]
    colour.write_LUT(colour.LUT3D(table), str(tmp_path / "c.spi3d"))
    lut = read_lut(tmp_path / "c.spi3d")
    np.testing.assert_allclose(lut.table, table.transpose(2, 1, 0, 3), rtol=0, atol=5e-7)
    curve = np.sort(rng.uniform(0, 1, (64, 3)), axis=0)
    colour.write_LUT(colour.LUT3x1D(curve, domain=[[-0.5] * 3, [2.0] * 3]), str(tmp_path / "c.spi1d"))
    lut = read_lut(tmp_path / "c.spi1d")
    np.testing.assert_allclose(lut.shaper.table, curve, rtol=0, atol=5e-7)
    np.testing.assert_array_equal(lut.shaper.domain, [[-0.5] * 3, [2.0] * 3])
    loaded = colour.read_LUT(str(tmp_path / "c.spi1d"))
    x = rng.uniform(-0.5, 2.0, (500, 3))
    np.testing.assert_allclose(apply_lut_array(x, lut), loaded.apply(x), rtol=0, atol=1e-6)


def test_cube_spi3d_cube_round_trip_within_5e7(tmp_path):
    lut = read_lut(BUNDLED)
    write_lut(lut, tmp_path / "a.spi3d")
    write_lut(read_lut(tmp_path / "a.spi3d"), tmp_path / "b.cube")
    back = read_lut(tmp_path / "b.cube")
    assert back.size == lut.size
    np.testing.assert_allclose(back.table, lut.table, rtol=0, atol=5e-7 + 1e-12)


def test_cube_spi1d_cube_round_trip_within_5e7_keeps_the_domain(tmp_path):
    rng = np.random.default_rng(9)
    lut = LUT(None, shaper=random_shaper(100, rng, [[-2.0] * 3, [3.0] * 3], out_range=(-0.3, 1.7)))
    write_lut(lut, tmp_path / "a.cube")
    write_lut(read_lut(tmp_path / "a.cube"), tmp_path / "a.spi1d")
    write_lut(read_lut(tmp_path / "a.spi1d"), tmp_path / "b.cube")
    back = read_lut(tmp_path / "b.cube")
    np.testing.assert_array_equal(back.shaper.domain, lut.shaper.domain)
    np.testing.assert_allclose(back.shaper.table, lut.shaper.table, rtol=0, atol=1e-6 + 1e-12)


def test_number_forms_read_exactly_like_float(tmp_path):
    forms = [".5", "1.", "-1e-3", "+2E+1", "0.1234567890123456789", "7", "-0", "3.0e0"]
    rows = [f"{r}\t{g}  {b} {forms[(4 * r + 2 * g + b) % 8]} {forms[(r + g + b) % 8]}\t{forms[(b + 5) % 8]}"
            for r in range(2) for g in range(2) for b in range(2)]
    (tmp_path / "f.spi3d").write_text("SPILUT 1.0\n3 3\n2 2 2\n" + "\n".join(rows) + "\n")
    lut = read_lut(tmp_path / "f.spi3d")
    for row in rows:
        r, g, b, *values = row.split()
        assert lut.table[int(b), int(g), int(r)].tolist() == [float(v) for v in values]


def test_spi3d_rows_in_any_order_read_the_same(tmp_path):
    lines = (DATA / "lut3d_bizarre.spi3d").read_text().splitlines()
    rows = lines[3:]
    random.Random(0).shuffle(rows)
    (tmp_path / "shuffled.spi3d").write_text("\n".join(lines[:3] + rows) + "\n")
    expected = read_lut(DATA / "lut3d_bizarre.spi3d").table
    np.testing.assert_array_equal(read_lut(tmp_path / "shuffled.spi3d").table, expected)
    assert_like_ocio(tmp_path / "shuffled.spi3d", read_lut(tmp_path / "shuffled.spi3d"), 8)
    # Row "1 0 0" holds the node red 1, green 0, blue 0: table[b=0, g=0, r=1].
    first = next(r for r in rows if r.split()[:3] == ["1", "0", "0"])
    np.testing.assert_array_equal(expected[0, 0, 1], [float(v) for v in first.split()[3:]])


# ------------------------------------------------------------------------------------------------
# Errors: one sentence naming the file and the line
# ------------------------------------------------------------------------------------------------

SPI3D = "SPILUT 1.0\n3 3\n2 2 2\n" + "".join(
    f"{r} {g} {b} {r}.0 {g}.0 {b}.0\n" for r in range(2) for g in range(2) for b in range(2)
)
SPI1D = "Version 1\nFrom 0.0 1.0\nLength 3\nComponents 1\n{\n0.0\n0.5\n1.0\n}\n"


@pytest.mark.parametrize(
    "name, text, line, message",
    [
        ("a.spi3d", SPI3D.replace("SPILUT 1.0", "LUT 1.0"), 1, "starts with 'SPILUT 1.0'"),
        ("a.spi3d", SPI3D.replace("2 2 2\n", "2 2 3\n", 1), 3, "differ"),
        ("a.spi3d", SPI3D.replace("2 2 2\n", "200 200 200\n", 1), 3, "from 2 to 129"),
        ("a.spi3d", SPI3D[: SPI3D.rindex("1 1 1 1.0")], 10, "has 8 rows but the file has only 7"),
        ("a.spi3d", SPI3D[: SPI3D.rindex("1.0 1.0 1.0")], 11, "has 6 numbers, this line has 3"),
        ("a.spi3d", SPI3D + "0 0 0 1 1 1\n", 12, "has 8 rows but the file has more 9"),
        ("a.spi3d", SPI3D.replace("0 1 1 0.0 1.0 1.0", "0 1 1 0.0 x 1.0"), 7, "'x' is not a number"),
        ("a.spi3d", SPI3D.replace("0 1 1 0.0 1.0 1.0", "0 1 1 0.0 1.0"), 7, "this line has 5"),
        ("a.spi3d", SPI3D.replace("0 1 1 0.0", "0 0 1 0.0"), 7, "the node 0 0 1 is given twice"),
        ("a.spi3d", SPI3D.replace("0 1 1 0.0", "0 2 1 0.0"), 7, "indices must be whole numbers from 0 to 1"),
        ("a.spi3d", SPI3D.replace("0 1 1 0.0", "0 1 1 nan"), 7, "'nan' is not a number"),
        ("a.spi3d", SPI3D.replace("0 1 1 0.0 1.0 1.0", "0 1 1 0.0 1.0").replace("1 0 0 1.0 0.0 0.0", "1 0 0 1.0 0.0 0.0 1"),
         7, "this line has 5"),
        ("a.spi3d", SPI3D.replace("0 1 1 0.0 1.0 1.0", "0 1 1 0.0 1.0.5 1.0"), 7, "'1.0.5' is not a number"),
        ("a.spi1d", SPI1D.replace("Length 3", "Length 4"), 9, "'Length 4' calls for 4 rows but the table has 3"),
        ("a.spi1d", SPI1D.replace("0.5\n", "0.5 0.2\n"), 7, "has 1 numbers, this line has 2"),
        ("a.spi1d", SPI1D.replace("0.5\n", "half\n"), 7, "'half' is not a number"),
        ("a.spi1d", SPI1D.replace("}\n", ""), 8, "not closed by '}'"),
        ("a.spi1d", SPI1D.replace("Version 1", "Version 2"), 1, "'Version' must be 1, not 2"),
        ("a.spi1d", SPI1D.replace("From 0.0 1.0", "From 1.0 0.0"), 2, "the maximum must exceed the minimum"),
        ("a.spi1d", SPI1D.replace("Components 1\n", ""), 4, "no 'Components' line"),
        ("a.spi1d", SPI1D.replace("Length 3", "Length 99999999"), 3, "'Length' must be from 2 to 65536"),
        ("a.spi1d", SPI1D.replace("From", "Frm"), 2, "is not a .spi1d header line"),
    ],
)
def test_malformed_files_are_one_sentence_naming_the_line(tmp_path, name, text, line, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LutgenError) as caught:
        read_lut(path)
    text = str(caught.value)
    assert text.startswith(f"{path}, line {line}: "), text
    assert message in text and "\n" not in text


def test_a_file_far_larger_than_its_sizes_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.spi3d"
    path.write_bytes(SPI3D.encode() + b"#" * (17 * 2**20))
    with pytest.raises(LutgenError, match=r"big.spi3d: the file has 17.\d MB, more than the 16.\d MB its header"):
        read_lut(path)


def test_empty_and_binary_files_are_one_sentence(tmp_path):
    (tmp_path / "e.spi1d").write_bytes(b"")
    with pytest.raises(LutgenError, match=r"e.spi1d, line 1: the file has no '\{' line"):
        read_lut(tmp_path / "e.spi1d")
    (tmp_path / "b.spi3d").write_bytes(b"SPILUT\x00\x01")
    with pytest.raises(LutgenError, match=r"b.spi3d: the file is binary or UTF-16 data"):
        read_lut(tmp_path / "b.spi3d")


def test_writing_the_wrong_kind_of_lut_is_one_sentence(tmp_path):
    with pytest.raises(LutgenError, match=r"cannot write .*a.spi1d: a .spi1d file holds 1D curves only"):
        write_lut(LUT.identity(3), tmp_path / "a.spi1d")
    with pytest.raises(LutgenError, match=r"cannot write .*a.spi3d: a .spi3d file holds a 3D table, and this"):
        write_lut(LUT(None, shaper=Shaper.identity(4)), tmp_path / "a.spi3d")
    per_channel = LUT(None, shaper=Shaper.identity(4, [[0, 0, 0], [1, 2, 1]]))
    with pytest.raises(LutgenError, match=r"one input range for all channels"):
        write_lut(per_channel, tmp_path / "b.spi1d")
    assert not list(tmp_path.iterdir())


def test_writing_never_leaves_a_partial_file(tmp_path):
    path = tmp_path / "a.spi3d"
    path.write_text("old")
    bad = LUT(np.full((2, 2, 2, 3), np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(LutgenError, match=r"not finite"):
            write_lut(bad, path)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.spi3d"]
    assert re.fullmatch(r"old", path.read_text())
