""".3dl reading and writing, checked against OpenColorIO.

``tests/data/formats/*.3dl`` are OpenColorIO's own test files (``tests/data/files/``, BSD-3-Clause,
licence in ``tests/data/formats/LICENSE-OpenColorIO``): a Lustre file with a mesh line and 12-bit
codes, a Nuke file with 16-bit codes, and a truncated file. OpenColorIO applies a file in float32
with linear (trilinear) interpolation; lutgen applies what it read with ``apply_lut_array``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_runner import one_sentence_error, run_lutgen
from reference import ocio_apply

from lutgen.color.cpu import apply_lut_array
from lutgen.errors import CubeFormatError, LutgenError, LutgenWarning, OptionError
from lutgen.formats import read_lut, threedl, write_lut
from lutgen.lut import LUT, Shaper, grid

DATA = Path(__file__).parent / "data" / "formats"
OCIO_FILES = ["discreet-3d-lut.3dl", "crosstalk.3dl"]


def code_grid(bits: int, steps: int) -> np.ndarray:
    """A dense grid of ``steps``^3 colours of ``bits``-bit codes (0 and full scale included), as floats 0..1."""
    top = 2**bits - 1
    axis = np.unique(np.round(np.linspace(0, top, steps)))
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3) / top


def assert_applies_like_ocio(lut: LUT, path: Path) -> None:
    """lutgen applying ``lut`` and OpenColorIO applying ``path`` agree within 0.5 code at 8 and 16 bits."""
    for bits, steps in ((8, 52), (16, 41)):  # every 5th 8-bit code, 41 16-bit codes per axis
        x = code_grid(bits, steps)
        difference = np.abs(apply_lut_array(x, lut) - ocio_apply(path, x)).max() * (2**bits - 1)
        assert difference <= 0.5, (bits, difference)


def random_lut(size: int, seed: int, low: float = 0.0, high: float = 1.0) -> LUT:
    return LUT(np.random.default_rng(seed).uniform(low, high, (size, size, size, 3)))


# --- OpenColorIO's files ----------------------------------------------------------------------


@pytest.mark.parametrize("name", OCIO_FILES)
def test_ocio_files_apply_like_ocio(name):
    path = DATA / name
    lut = read_lut(path)
    assert lut.size == 17 and lut.shaper is None  # both mesh lines are even ramps: identities
    assert_applies_like_ocio(lut, path)


def test_lustre_file_rows_are_blue_fastest_12_bit():
    lut = read_lut(DATA / "discreet-3d-lut.3dl")
    # Rows 1 to 3 of the file: "17 17 17" (a data row, as OpenColorIO counts it), "0 0 68", "0 0 126".
    assert np.array_equal(lut.table[0, 0, 0] * 4095, [17, 17, 17])
    assert np.allclose(lut.table[1, 0, 0] * 4095, [0, 0, 68])  # table[b, g, r]: blue steps first
    assert np.allclose(lut.table[2, 0, 0] * 4095, [0, 0, 126])
    assert np.allclose(lut.table[0, 1, 0] * 4095, [0, 79, 53])  # row 18: green's first step
    assert lut.comments == ("Tokens required by applications - do not edit",) * 2


def test_nuke_file_is_16_bit():
    lut = read_lut(DATA / "crosstalk.3dl")
    assert np.allclose(lut.table[1, 0, 0] * 65535, [0, 0, 2374])
    assert np.allclose(lut.table[0, 1, 0] * 65535, [0, 1981, 255])


def test_truncated_file_names_its_last_line():
    with pytest.raises(CubeFormatError, match=r"error_truncated_file\.3dl, line 375: the file has 369 data rows"):
        read_lut(DATA / "error_truncated_file.3dl")


# --- interpretation, as OpenColorIO's reader ---------------------------------------------------


def cube_text(codes: np.ndarray) -> str:
    """Rows of an ``(N, N, N, 3)`` ``[b, g, r]`` code table in .3dl order (blue fastest)."""
    return "".join(f"{r} {g} {b}\n" for r, g, b in codes.transpose(2, 1, 0, 3).reshape(-1, 3).tolist())


@pytest.mark.parametrize(
    ("largest", "scale"),
    [(128, 255), (511, 255), (512, 1023), (2047, 1023), (2048, 4095), (8191, 4095), (8192, 65535), (70000, 65535)],
)
def test_output_scale_is_inferred_from_the_largest_code(tmp_path, largest, scale):
    codes = np.zeros((2, 2, 2, 3), dtype=int)
    codes[1, 1, 1] = largest
    codes[0, 1, 0] = [7, 64, 100]
    path = tmp_path / "scale.3dl"
    path.write_text(cube_text(codes))
    lut = read_lut(path)
    assert np.array_equal(lut.table, codes / scale)
    assert_applies_like_ocio(lut, path)


def test_uneven_mesh_line_is_a_shaper_like_ocio(tmp_path):
    mesh = "0 20 90 300 600 1023"  # 10-bit, far from the even ramp 0 205 409 614 818 1023
    codes = np.random.default_rng(3).integers(0, 4096, (5, 5, 5, 3))
    path = tmp_path / "shaper.3dl"
    path.write_text(f"3DMESH\nMesh 2 12\n{mesh}\n{cube_text(codes)}")
    lut = read_lut(path)
    assert lut.shaper is not None
    assert np.array_equal(lut.shaper.table[:, 1], np.array([0, 20, 90, 300, 600, 1023]) / 1023)
    assert_applies_like_ocio(lut, path)


def test_mesh_line_within_two_codes_of_a_ramp_is_an_identity(tmp_path):
    codes = np.random.default_rng(4).integers(0, 1024, (2, 2, 2, 3))
    codes[1, 1, 1] = 1023
    for mesh, has_shaper in (("0 342 683 1023", False), ("1 342 681 1023", False), ("0 344 683 1023", True)):
        path = tmp_path / "mesh.3dl"
        path.write_text(f"{mesh}\n{cube_text(codes)}")
        assert (read_lut(path).shaper is not None) == has_shaper, mesh
        assert_applies_like_ocio(read_lut(path), path)


def test_crlf_comments_keywords_and_small_chunks_read_alike(tmp_path, monkeypatch):
    lut = random_lut(9, 5)
    plain = tmp_path / "plain.3dl"
    write_lut(lut, plain)
    text = plain.read_text().replace("\n", "\r\n").replace("3DMESH", "# a comment\r\n\r\n3DMESH\r\n  ")
    odd = tmp_path / "odd.3dl"
    odd.write_bytes(text.encode())
    expected = read_lut(plain).table
    assert np.array_equal(read_lut(odd).table, expected)
    monkeypatch.setattr(threedl, "CHUNK_BYTES", 7)  # lines and CRLFs cut across chunks
    assert np.array_equal(read_lut(odd).table, expected)


# --- writing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", threedl.FLAVOURS)
@pytest.mark.parametrize("bits", threedl.BIT_DEPTHS)
def test_written_files_apply_in_ocio_like_lutgen(tmp_path, flavour, bits):
    lut = random_lut(17, bits)
    path = tmp_path / f"{flavour}.3dl"
    write_lut(lut, path, flavour=flavour, bit_depth=bits)
    back = read_lut(path)
    assert np.abs(back.table - lut.table).max() <= 0.5 / (2**bits - 1) + 1e-12
    assert_applies_like_ocio(back, path)


def test_lustre_layout(tmp_path):
    path = tmp_path / "lustre.3dl"
    write_lut(LUT.identity(17), path)
    lines = path.read_text().splitlines()
    assert lines[:3] == ["3DMESH", "Mesh 4 12", " ".join(str(min(64 * i, 1023)) for i in range(17))]
    assert lines[4:7] == ["0 0 0", "0 0 256", "0 0 512"]  # blue fastest, 12-bit: 4095 / 16 = 255.94
    assert lines[-3:] == ["", "LUT8", "gamma 1.0"]
    assert len([line for line in lines if len(line.split()) == 3 and line[0].isdigit()]) == 17**3


def test_nuke_layout(tmp_path):
    path = tmp_path / "nuke.3dl"
    write_lut(LUT.identity(5), path, flavour="nuke", bit_depth=16)
    lines = path.read_text().splitlines()
    assert lines[0] == "0 16384 32768 49152 65535"
    assert lines[1:4] == ["0 0 0", "0 0 16384", "0 0 32768"]
    assert len(lines) == 1 + 5**3


def test_mesh_line_of_other_sizes_is_an_even_ramp():
    assert threedl.mesh_line(4, 10) == "0 341 682 1023"
    assert threedl.mesh_line(33, 10).split()[:3] == ["0", "32", "64"]


def test_cube_to_3dl_to_cube_within_the_3dl_precision(tmp_path):
    source = random_lut(33, 6)
    write_lut(source, tmp_path / "a.cube")
    for bits in threedl.BIT_DEPTHS:
        write_lut(read_lut(tmp_path / "a.cube"), tmp_path / "b.3dl", bit_depth=bits)
        write_lut(read_lut(tmp_path / "b.3dl"), tmp_path / "c.cube", decimals=8)
        error = np.abs(read_lut(tmp_path / "c.cube").table - source.table).max()
        assert error <= 0.5 / (2**bits - 1) + 1e-6, bits


def test_shaper_domain_and_1d_luts_are_sampled(tmp_path):
    rng = np.random.default_rng(7)
    shaper = Shaper(np.sort(rng.uniform(0, 1, (12, 3)), axis=0), [[-0.1] * 3, [1.2] * 3])
    lut = LUT(rng.uniform(0, 1, (9, 9, 9, 3)), [[0.1, 0, 0.2], [0.9, 1, 0.8]], shaper)
    for source, size in ((lut, 9), (LUT(None, shaper=shaper), threedl.DEFAULT_1D_SIZE)):
        path = tmp_path / "sampled.3dl"
        write_lut(source, path, bit_depth=16)
        back = read_lut(path)
        expected = np.clip(apply_lut_array(grid(size), source), 0, 1)
        assert back.size == size and np.abs(back.table - expected).max() <= 0.5 / 65535 + 1e-12
    write_lut(lut, path, size=5)
    assert read_lut(path).size == 5


def test_out_of_range_outputs_are_clipped_with_a_warning(tmp_path):
    lut = random_lut(5, 8, -0.2, 1.3)
    with pytest.warns(LutgenWarning, match="outside 0..1 were clipped"):
        write_lut(lut, tmp_path / "clip.3dl")
    assert np.array_equal(read_lut(tmp_path / "clip.3dl").table, np.round(np.clip(lut.table, 0, 1) * 4095) / 4095)


@pytest.mark.parametrize(("options", "fragment"), [({"flavour": "flame"}, "flavour"), ({"bit_depth": 8}, "bit depth")])
def test_bad_options(tmp_path, options, fragment):
    with pytest.raises(OptionError, match=fragment):
        write_lut(LUT.identity(3), tmp_path / "x.3dl", **options)
    assert not (tmp_path / "x.3dl").exists()


# --- malformed files ----------------------------------------------------------------------------


GOOD_ROWS = "".join(f"{r} {g} {b}\n" for r in (0, 4095) for g in (0, 4095) for b in (0, 4095))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no mesh line and no data rows"),
        ("# only a comment\n3DMESH\n", "no mesh line and no data rows"),
        ("0 64 1023 2000\n" + GOOD_ROWS + "0 0 0\n", r"line 10: the file has 9 data rows, which is not N\^3"),
        (GOOD_ROWS.replace("0 0 4095", "0 0 x4"), "line 2: 'x4' is not an integer"),
        (GOOD_ROWS.replace("0 0 4095", "0 0 0.5"), "line 2: '0.5' is not an integer"),
        (GOOD_ROWS.replace("0 0 4095", "0 0 12345678901"), "line 2: '12345678901' has too many digits"),
        (GOOD_ROWS.replace("0 0 4095", "0 4095"), r"line 2: a line of 2 number\(s\)"),
        ("0 5 9 1023\n0 5 9 1023\n" + GOOD_ROWS, "line 2: a second mesh line"),
        ("<?xml version='1.0'?>\n" + GOOD_ROWS, "line 1: a line starting with '<'"),
        (GOOD_ROWS.replace("4095", "100"), "the largest data value is 100, below 128"),
        ("0 1 2 3\n" + GOOD_ROWS, "line 1: the largest mesh line value is 3, below 128"),
        (GOOD_ROWS.replace("0 0 4095", "0 0 4095 \xe9"), "line 2: the line holds bytes that are not ASCII"),
    ],
)
def test_malformed_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.3dl"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(CubeFormatError, match=message) as raised:
        read_lut(path)
    assert str(raised.value).startswith(f"{path}")


def test_binary_and_special_files_are_refused(tmp_path):
    path = tmp_path / "binary.3dl"
    path.write_bytes(GOOD_ROWS.encode() + b"\x00\x01")
    with pytest.raises(CubeFormatError, match="line 9: the file holds binary data"):
        read_lut(path)
    with pytest.raises(LutgenError, match="no such file"):
        read_lut(tmp_path / "missing.3dl")
    with pytest.raises(LutgenError, match="it is a folder"):
        read_lut(tmp_path)


def test_overlong_line_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(threedl, "MAX_LINE_BYTES", 64)
    path = tmp_path / "long.3dl"
    path.write_text("0 " * 40 + "\n" + GOOD_ROWS)
    with pytest.raises(CubeFormatError, match="line 1: the line is longer than 64 bytes"):
        read_lut(path)


def test_too_many_rows_and_too_large_files_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.3dl"
    path.write_text(GOOD_ROWS * 3)
    monkeypatch.setattr(threedl, "MAX_ROWS", 20)
    with pytest.raises(CubeFormatError, match="more than 20 data rows"):
        read_lut(path)
    monkeypatch.setattr(threedl, "MAX_FILE_BYTES", 100)
    with pytest.raises(CubeFormatError, match=r"big\.3dl: the file has 252 bytes, more than the 100 bytes"):
        read_lut(path)


def test_cli_reports_a_malformed_file_in_one_sentence(tmp_path):
    path = tmp_path / "bad.3dl"
    path.write_text(GOOD_ROWS.replace("0 0 4095", "0 0 nope"))
    one_sentence_error(run_lutgen("info", path), "bad.3dl, line 2", "'nope' is not an integer")
