"""Common LUT Format (.clf) reading and writing, checked against OpenColorIO and colour-science.

OpenColorIO applies each file (float32) to 8-bit and 16-bit code values and lutgen applies the LUT
it read (float64, with the file's LUT3D interpolation); they must agree within 0.5 code value.
OpenColorIO's own CLF test files, legal and illegal, are in ``tests/data/formats``. (colour-science
0.4 neither reads nor writes CLF, so no colour-science files are compared here.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lutgen.color.cpu import apply_lut_array
from lutgen.errors import LutgenError
from lutgen.formats import clf, read_lut, write_lut
from lutgen.lut import LUT, Shaper, grid
from reference import random_shaper, smooth_random_lut
from test_format_spi import BUNDLED, DATA, codes, ocio_codes

LEGAL = sorted((DATA / "clf").glob("*.clf"))
ILLEGAL = sorted((DATA / "clf-illegal").glob("*.clf"))
REFUSED = {"multiple_ops.clf": "line 4, <ASC_CDL>: ASC_CDL is not supported by lutgen"}
SAMPLED = {"difficult_syntax.clf"}  # a Matrix before a LUT1D: no LUT of lutgen holds it exactly


def interpolation(lut: LUT) -> str:
    return "tetrahedral" if f"{clf.INTERPOLATION_COMMENT}tetrahedral" in lut.comments else "trilinear"


def error_codes(path: Path, lut: LUT, bits: int) -> float:
    x = codes(bits)
    scale = 2**bits - 1
    ours = apply_lut_array(x / scale, lut, interpolation(lut)) * scale
    return float(np.abs(ours - ocio_codes(path, x, bits)).max())


# ------------------------------------------------------------------------------------------------
# OpenColorIO's files
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("path", [p for p in LEGAL if p.name not in {*REFUSED, *SAMPLED}], ids=lambda p: p.stem)
def test_ocio_files_apply_like_ocio(path, bits):
    assert error_codes(path, read_lut(path), bits) <= 0.5


def test_sampled_chain_equals_ocio_at_the_lattice_nodes():
    path = DATA / "clf" / "difficult_syntax.clf"
    lut = read_lut(path)
    assert lut.size == clf.BAKE_SIZE and lut.shaper is None
    nodes = grid(clf.BAKE_SIZE).reshape(-1, 3) * 65535  # exact node positions, not rounded to codes
    np.testing.assert_allclose(lut.table.reshape(-1, 3) * 65535, ocio_codes(path, nodes, 16), rtol=0, atol=0.5)


@pytest.mark.parametrize("name, message", REFUSED.items())
def test_other_process_nodes_are_refused_naming_them(name, message):
    with pytest.raises(LutgenError, match=rf"^{DATA / 'clf' / name}, {message}"):
        read_lut(DATA / "clf" / name)


def test_exact_chains_are_held_exactly():
    lut = read_lut(DATA / "clf" / "lut3d_17x17x17_10i_12i.clf")
    assert lut.size == 17 and lut.shaper is None
    first = [float(v) for v in (DATA / "clf" / "lut3d_17x17x17_10i_12i.clf").read_text().split("<Array")[1]
             .split(">", 1)[1].split()[:6]]
    np.testing.assert_array_equal(lut.table[0, 0, 0], np.array(first[:3]) / 4095)  # 12i out: / 4095
    np.testing.assert_array_equal(lut.table[1, 0, 0], np.array(first[3:]) / 4095)  # blue fastest in the file
    one = read_lut(DATA / "clf" / "lut1d_example.clf")
    assert one.table is None and one.shaper.size == 65
    assert one.shaper.table[0, 0] == -1023.75 / 4095
    tetra = read_lut(DATA / "clf" / "lut3d_identity_12i_16f.clf")
    assert interpolation(tetra) == "tetrahedral"


@pytest.mark.parametrize("path", ILLEGAL, ids=lambda p: p.stem)
def test_illegal_files_are_one_sentence_naming_line_and_element(path):
    with pytest.raises(LutgenError) as caught:
        read_lut(path)
    said = str(caught.value)
    assert said.startswith(f"{path}, line "), said
    assert "\n" not in said and ("<" in said or "XML" in said), said


def test_illegal_file_messages():
    expected = {
        "array_bad_value.clf": "line 5, <Array>: 'P' is not a finite number",
        "array_missing_values.clf": "line 5, <Array>: the array's dim calls for 9 values but it holds 3",
        "lut3d_unequal_size.clf": "line 5, <Array>: a LUT3D has the same size on every axis, not 2x2x3",
        "range_empty.clf": "line 4, <Range>: a Range needs minimum or maximum values",
        "transform_empty.clf": "line 2, <ProcessList>: the list holds no process node",
        "process_list_missing.clf": "line 1, <Matrix>: a CLF file's root element is ProcessList",
        "matrix_end_missing.clf": "line 5, inside <Matrix> of line 4: the file is not well-formed XML",
    }
    for name, message in expected.items():
        path = DATA / "clf-illegal" / name
        with pytest.raises(LutgenError, match=rf"^{path}, {message}"):
            read_lut(path)


# ------------------------------------------------------------------------------------------------
# Writing: read by OpenColorIO, round trips
# ------------------------------------------------------------------------------------------------

NON_UNIT = np.array([[-0.2, 0.0, 0.1], [1.5, 2.0, 1.2]])


def synthetic(which: str) -> LUT:
    rng = np.random.default_rng(6)
    if which == "bundled":
        return read_lut(BUNDLED)
    if which == "shaper":
        return LUT(smooth_random_lut(9, rng, NON_UNIT).table, NON_UNIT,
                   shaper=random_shaper(64, rng, [[-0.5] * 3, [2.5] * 3], out_range=(-0.3, 2.3)))
    if which == "per-channel-domain":
        return smooth_random_lut(7, rng, NON_UNIT)
    if which == "uniform-domain":
        return smooth_random_lut(7, rng, [[-0.5] * 3, [1.5] * 3])
    return LUT(None, shaper=random_shaper(33, rng, NON_UNIT, out_range=(-0.1, 1.3)))


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("which", ["bundled", "shaper", "per-channel-domain", "uniform-domain", "1d"])
def test_written_clf_applies_like_ocio(tmp_path, bits, which):
    lut = synthetic(which)
    path = tmp_path / f"{which}.clf"
    write_lut(lut, path)
    assert error_codes(path, lut, bits) <= 0.5
    assert error_codes(path, read_lut(path), bits) <= 0.5


def test_domains_are_written_as_range_or_matrix_and_read_back_exactly(tmp_path):
    per_channel, uniform = synthetic("per-channel-domain"), synthetic("uniform-domain")
    write_lut(per_channel, tmp_path / "p.clf")
    write_lut(uniform, tmp_path / "u.clf")
    assert "<Matrix" in (tmp_path / "p.clf").read_text() and "<Range" in (tmp_path / "u.clf").read_text()
    for lut, name in ((per_channel, "p.clf"), (uniform, "u.clf")):
        back = read_lut(tmp_path / name)
        assert back.shaper is None
        np.testing.assert_allclose(back.domain, lut.domain, rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(back.table, lut.table, rtol=0, atol=5e-7 + 1e-12)


def test_written_tetrahedral_clf_applies_like_ocio(tmp_path):
    lut = read_lut(BUNDLED)
    write_lut(lut, tmp_path / "t.clf", interpolation="tetrahedral")
    back = read_lut(tmp_path / "t.clf")
    assert interpolation(back) == "tetrahedral"
    assert error_codes(tmp_path / "t.clf", back, 16) <= 0.5


def test_cube_clf_cube_round_trip_within_5e7(tmp_path):
    lut = read_lut(BUNDLED)
    write_lut(lut, tmp_path / "a.clf")
    back_clf = read_lut(tmp_path / "a.clf")
    assert back_clf.shaper is None  # LUT3D alone: held exactly
    write_lut(back_clf, tmp_path / "b.cube")
    back = read_lut(tmp_path / "b.cube")
    np.testing.assert_allclose(back.table, lut.table, rtol=0, atol=5e-7 + 1e-12)


def test_synthetic_round_trip_keeps_domain_and_shaper(tmp_path):
    domain, table_domain = np.array([[-0.5] * 3, [2.5] * 3]), np.array([[-0.2] * 3, [1.6] * 3])
    rng = np.random.default_rng(13)
    lut = LUT(smooth_random_lut(9, rng, table_domain).table, table_domain,
              shaper=random_shaper(100, rng, domain, out_range=(-0.2, 1.6)))
    write_lut(lut, tmp_path / "a.cube")
    middle = read_lut(tmp_path / "a.cube")
    write_lut(middle, tmp_path / "a.clf")
    back = read_lut(tmp_path / "a.clf")
    assert back.shaper.size == 100  # Range + LUT1D + LUT3D: exact, the shaper rescaled onto 0..1
    np.testing.assert_array_equal(back.shaper.domain, domain)
    np.testing.assert_allclose(back.table, middle.table, rtol=0, atol=5e-7 + 1e-12)
    rescaled = (middle.shaper.table - table_domain[0]) / (table_domain[1] - table_domain[0])
    np.testing.assert_allclose(back.shaper.table, rescaled, rtol=0, atol=5e-7 + 1e-12)
    colours = rng.uniform(-0.7, 2.7, (4000, 3))
    np.testing.assert_allclose(apply_lut_array(colours, back), apply_lut_array(colours, middle), rtol=0, atol=2e-6)


# ------------------------------------------------------------------------------------------------
# Hostile and malformed XML
# ------------------------------------------------------------------------------------------------

HEAD = '<?xml version="1.0"?>\n<ProcessList id="x" compCLFversion="3.0">\n'
LUT3D_2 = ('<LUT3D inBitDepth="32f" outBitDepth="32f"><Array dim="2 2 2 3">'
           + " ".join(["0 0 0"] * 8) + "</Array></LUT3D>\n")


@pytest.mark.parametrize(
    "text, message",
    [
        ('<?xml version="1.0"?>\n<!DOCTYPE lol [<!ENTITY a "aaaaaaaa">]>\n<ProcessList>&a;</ProcessList>',
         r"line 2: a DOCTYPE declaration is refused in a .clf file"),
        (HEAD + '<LUT3D inBitDepth="32f" outBitDepth="32f"><Array dim="129 129 129 3">1 2 3</Array></LUT3D>'
         "</ProcessList>", r"line 3, <Array>: the array's dim calls for 6440067 values but it holds 3"),
        (HEAD + '<LUT3D inBitDepth="32f" outBitDepth="32f"><Array dim="4000 4000 4000 3"></Array></LUT3D>'
         "</ProcessList>", r"line 3, <Array>: a LUT3D's size is from 2 to 129, not 4000"),
        (HEAD + '<LUT1D inBitDepth="32f" outBitDepth="32f" halfDomain="true"><Array dim="65536 1"></Array>'
         "</LUT1D></ProcessList>", r"line 3, <LUT1D>: halfDomain 1D tables are not supported by lutgen"),
        (HEAD + '<LUT1D inBitDepth="9i" outBitDepth="32f"></LUT1D></ProcessList>',
         r"line 3, <LUT1D>: inBitDepth='9i' is not one of 8i, 10i, 12i, 16i, 16f, 32f"),
        (HEAD + LUT3D_2.replace('outBitDepth="32f"', 'outBitDepth="32f" interpolation="cubic"') + "</ProcessList>",
         r"line 3, <LUT3D>: interpolation='cubic' is not 'trilinear' or 'tetrahedral'"),
        (HEAD + '<Range inBitDepth="32f" outBitDepth="32f"><minInValue>0.1</minInValue>'
         "<minOutValue>0.2</minOutValue></Range></ProcessList>", r"line 3, <Range>: a one-sided Range needs equal"),
        (HEAD + '<Matrix inBitDepth="32f" outBitDepth="32f"><Array dim="4 4">' + "0 " * 16 + "</Array></Matrix>"
         "</ProcessList>", r"line 3, <Array>: a Matrix array has dim='3 3' or dim='3 4'"),
        (HEAD + LUT3D_2 + "</ProcessList", r"line 4, inside <ProcessList> of line 2: the file is not well-formed XML"),
        (HEAD + LUT3D_2[: len(LUT3D_2) // 2], r"line 3, inside <Array> of line 3: the file is not well-formed XML"),
        ("", r"line 1: the file is not well-formed XML"),
    ],
)
def test_hostile_and_malformed_xml_is_one_sentence(tmp_path, text, message):
    path = tmp_path / "bad.clf"
    path.write_text(text)
    with pytest.raises(LutgenError) as caught:
        read_lut(path)
    said = str(caught.value)
    assert said.startswith(f"{path}, "), said
    assert "\n" not in said
    import re

    assert re.search(message, said), said


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.clf"
    path.write_bytes(HEAD.encode() + b" " * 2048 + LUT3D_2.encode() + b"</ProcessList>")
    assert read_lut(path).size == 2
    monkeypatch.setattr(clf, "MAX_FILE_BYTES", 2048)
    with pytest.raises(LutgenError, match=r"big.clf, the file has \d+ bytes, more than the 2048 bytes"):
        read_lut(path)


def test_writing_keeps_title_and_descriptions(tmp_path):
    lut = LUT(LUT.identity(2).table, title='A "look" & more', comments=("first", "second"))
    write_lut(lut, tmp_path / "m.clf")
    back = read_lut(tmp_path / "m.clf")
    assert back.title == 'A "look" & more' and back.comments == ("first", "second")
    with pytest.raises(LutgenError, match=r"interpolation must be trilinear or tetrahedral"):
        write_lut(lut, tmp_path / "n.clf", interpolation="cubic")
    assert not (tmp_path / "n.clf").exists()


def test_shaper_only_lut_with_unit_domain_is_a_lone_lut1d(tmp_path):
    lut = LUT(None, shaper=Shaper(np.linspace(0, 1, 5)[:, None].repeat(3, 1) ** 2))
    write_lut(lut, tmp_path / "s.clf")
    text = (tmp_path / "s.clf").read_text()
    assert "<LUT1D" in text and "<Range" not in text and "<Matrix" not in text and "<LUT3D" not in text
    np.testing.assert_allclose(read_lut(tmp_path / "s.clf").shaper.table, lut.shaper.table, rtol=0, atol=5e-7)
