""".cube reading and writing, checked against colour-science, OpenColorIO and pillow-lut.

The parsed LUTs are applied with a float64 NumPy reference written here (1D linear interpolation
and trilinear interpolation, inputs clamped to each domain) and compared with colour-science's own
``read_LUT(path).apply``. colour-science extrapolates 1D tables linearly by default; it is asked for
constant extrapolation, which is the clamping every ``.cube`` reader applies.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest

from lutgen.errors import CubeFormatError, LutgenError
from lutgen.formats import cube as cube_module
from lutgen.formats import read_lut, write_lut
from lutgen.lut import LUT, UNIT_DOMAIN, Shaper, grid
from reference import apply_reference, colour, colour_apply, ocio_apply, random_colours

from PIL import Image
from pillow_lut import load_cube_file

DATA = Path(__file__).parent / "data" / "cube"
CORPUS = sorted(DATA.glob("*.cube"))


def colours_around(domain: np.ndarray, count: int = 400, seed: int = 0) -> np.ndarray:
    """Random colours spread over ``domain`` widened by half its span on each side."""
    return random_colours(count, np.random.default_rng(seed), domain, margin=0.5)


def random_lut(size: int, seed: int, domain=None, low: float = -0.3, high: float = 1.4) -> LUT:
    rng = np.random.default_rng(seed)
    return LUT(rng.uniform(low, high, (size, size, size, 3)), domain)


def random_shaper(size: int, seed: int, domain) -> Shaper:
    rng = np.random.default_rng(seed)
    return Shaper(np.sort(rng.uniform(-0.2, 1.3, (size, 3)), axis=0), domain)


# ------------------------------------------------------------------------------------------------
# Real-world files
# ------------------------------------------------------------------------------------------------


def test_corpus_is_complete():
    assert len(CORPUS) == 14
    readme = (DATA / "README.md").read_text()
    for path in CORPUS:
        assert path.name in readme


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_applies_like_colour_science(path):
    lut = read_lut(path)
    x = colours_around(lut.input_domain)
    expected = colour_apply(path, x)
    np.testing.assert_allclose(apply_reference(x, lut), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_tables_and_domains_equal_colour_science(path):
    lut = read_lut(path)
    loaded = colour.read_LUT(str(path))
    parts = list(loaded) if isinstance(loaded, colour.LUTSequence) else [loaded]
    ours = ([] if lut.shaper is None else [(lut.shaper.table, lut.shaper.domain)]) + (
        [] if lut.table is None else [(lut.table.transpose(2, 1, 0, 3), lut.domain)]  # colour: [r, g, b]
    )
    assert len(parts) == len(ours)
    for part, (table, domain) in zip(parts, ours, strict=True):
        np.testing.assert_array_equal(table, part.table)
        np.testing.assert_array_equal(domain, np.asarray(part.domain, dtype=np.float64))


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_fast_and_careful_parsers_agree_on_corpus(path):
    data = path.read_bytes().replace(b"\r\n", b"\n")
    header, (line, block) = cube_module._parse_header(path, iter([(1, data)]))
    block = cube_module._blank_comment_lines(path, block, line, [])
    fast = cube_module.fast_rows(block)
    assert fast is not None
    careful = np.empty_like(fast)
    assert cube_module._careful_rows(path, block, line, careful, 0) == len(fast)
    np.testing.assert_array_equal(fast, careful)
    assert len(fast) == cube_module._expected_rows(path, header, line)[0]


def test_corpus_metadata():
    lut = read_lut(DATA / "colour-science__resolve_cube__Three_Dimensional_Table_With_Shaper.cube")
    assert lut.title == "LUT3D with My Shaper"
    assert lut.comments[0] == 'A first "Shaper" comment.'
    assert (lut.shaper.size, lut.size) == (10, 3)
    demo = read_lut(DATA / "colour-science__iridas_cube__Demo.cube")  # a comment between data rows
    assert demo.table is None and demo.comments == ("Comments can go anywhere",)
    np.testing.assert_array_equal(demo.shaper.domain, [[0, 0, 0], [1, 2, 3]])


# ------------------------------------------------------------------------------------------------
# Tolerated variants and semantics
# ------------------------------------------------------------------------------------------------

BASE_3D = 'TITLE "Base"\nLUT_3D_SIZE 2\nDOMAIN_MIN -0.5 0 0\nDOMAIN_MAX 1 2 1.5\n\n' + "".join(
    f"{r * 1.25 - 0.1} {g * 0.5} {b * 2e-3}\n" for b in (0, 1) for g in (0, 1) for r in (0, 1)
)


def write_text(tmp_path: Path, text: str | bytes, name: str = "test.cube") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda t: t.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda t: t.replace("\n", "\r"), id="cr"),
        pytest.param(lambda t: "\ufeff" + t, id="bom"),
        pytest.param(lambda t: "\ufeff" + t.replace("\n", "\r\n"), id="bom-crlf"),
        pytest.param(lambda t: t.replace(" ", "\t"), id="tabs"),
        pytest.param(lambda t: t.replace("-0.1 ", "-1.0e-1 ").replace("1.15 ", "11.5E-1 "), id="exponent"),
        pytest.param(lambda t: t.replace('TITLE "Base"', "TITLE Base"), id="unquoted-title"),
        pytest.param(
            lambda t: t.replace("\n\n", "\n# a comment\n\n  \n").replace("\n1.15", "\n# mid\n\n1.15"),
            id="comments",
        ),
        pytest.param(lambda t: t.replace("\n", "  \n").replace("\n0", "\n   0"), id="spaces"),
        pytest.param(lambda t: t.rstrip("\n"), id="no-final-newline"),
    ],
)
def test_tolerated_variants_read_the_same(tmp_path, variant):
    base = read_lut(write_text(tmp_path, BASE_3D, "base.cube"))
    other = read_lut(write_text(tmp_path, variant(BASE_3D)))
    np.testing.assert_array_equal(other.table, base.table)
    np.testing.assert_array_equal(other.domain, base.domain)
    assert other.title == "Base"


def test_base_3d_matches_colour_science(tmp_path):
    path = write_text(tmp_path, BASE_3D)
    lut = read_lut(path)
    x = colours_around(lut.domain)
    np.testing.assert_allclose(apply_reference(x, lut), colour_apply(path, x), rtol=0, atol=1e-9)


SHAPER_ROWS = "0 0 0\n0.25 0.3 0.2\n1 1 1\n"
CUBE_ROWS = "".join(f"{r} {g} {b * 0.5}\n" for b in (0, 1) for g in (0, 1) for r in (0, 1))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "LUT_1D_SIZE 3\nLUT_3D_INPUT_RANGE 0 4\nLUT_1D_INPUT_RANGE -1 2\n" + SHAPER_ROWS,
            id="1d-ignores-3d-range",
        ),
        pytest.param("LUT_3D_SIZE 2\nLUT_1D_INPUT_RANGE -1 2\n" + CUBE_ROWS, id="3d-ignores-1d-range"),
        pytest.param("LUT_3D_SIZE 2\nLUT_3D_INPUT_RANGE -1 2\n" + CUBE_ROWS, id="3d-range"),
        pytest.param(
            "LUT_3D_SIZE 2\nLUT_1D_SIZE 3\nLUT_3D_INPUT_RANGE 0.1 0.9\n" + SHAPER_ROWS + CUBE_ROWS,
            id="shaper-3d-order",
        ),
        pytest.param(
            "LUT_1D_SIZE 3\nLUT_3D_SIZE 2\n" + SHAPER_ROWS + "\n" + CUBE_ROWS, id="shaper-3d-default-ranges"
        ),
        pytest.param(
            "LUT_1D_SIZE 3\nDOMAIN_MIN -1 0 0.5\nDOMAIN_MAX 2 3 0.75\n" + SHAPER_ROWS, id="1d-domain"
        ),
    ],
)
def test_synthetic_files_apply_like_colour_science(tmp_path, text):
    path = write_text(tmp_path, text)
    lut = read_lut(path)
    x = colours_around(lut.input_domain, seed=3)
    np.testing.assert_allclose(apply_reference(x, lut), colour_apply(path, x), rtol=0, atol=1e-9)


def test_domain_lines_with_shaper_and_table_set_the_shaper_domain(tmp_path):
    # colour-science refuses this mix; lutgen documents that DOMAIN_* is then the shaper's domain.
    with_domain = (
        "LUT_1D_SIZE 3\nLUT_3D_SIZE 2\nDOMAIN_MIN -1 -1 -1\nDOMAIN_MAX 2 2 2\nLUT_3D_INPUT_RANGE 0 1.5\n"
    )
    with_range = "LUT_1D_SIZE 3\nLUT_3D_SIZE 2\nLUT_1D_INPUT_RANGE -1 2\nLUT_3D_INPUT_RANGE 0 1.5\n"
    a = read_lut(write_text(tmp_path, with_domain + SHAPER_ROWS + CUBE_ROWS, "a.cube"))
    b = read_lut(write_text(tmp_path, with_range + SHAPER_ROWS + CUBE_ROWS, "b.cube"))
    np.testing.assert_array_equal(a.shaper.domain, [[-1] * 3, [2] * 3])
    np.testing.assert_array_equal(a.shaper.domain, b.shaper.domain)
    np.testing.assert_array_equal(a.domain, [[0] * 3, [1.5] * 3])
    np.testing.assert_array_equal(a.table, b.table)


def test_reading_values_is_exact_like_float(tmp_path):
    rng = np.random.default_rng(5)
    values = rng.uniform(-3, 3, (27, 3))
    formats = ["%.6f", "%.17g", "%.3e", "%g", "%.12f", "%.1f"]
    text = "LUT_3D_SIZE 3\n" + "".join(
        " ".join(formats[(i + c) % len(formats)] % v for c, v in enumerate(row)) + "\n"
        for i, row in enumerate(values)
    )
    lut = read_lut(write_text(tmp_path, text))
    expected = [[float(t) for t in line.split()] for line in text.splitlines()[1:]]
    np.testing.assert_array_equal(lut.table.reshape(-1, 3), expected)


@pytest.mark.parametrize("number_format", ["%.17g", "%.6e", "%.20f"])
def test_many_long_or_exponent_numbers_read_exactly(tmp_path, number_format):
    """Files where every number has an exponent or 16+ digits take numpy's text parser: still exact."""
    values = np.random.default_rng(3).uniform(-1.5, 1.5, (17**3, 3))
    lines = [" ".join(number_format % v for v in row) for row in values]
    path = write_text(tmp_path, "LUT_3D_SIZE 17\n" + "\n".join(lines) + "\n")
    expected = [[float(t) for t in line.split()] for line in lines]
    np.testing.assert_array_equal(read_lut(path).table.reshape(-1, 3), expected)
    lines[4000] = lines[4000].replace("e", "e1e", 1) if "e" in lines[4000] else lines[4000] + "e"
    path.write_text("LUT_3D_SIZE 17\n" + "\n".join(lines) + "\n")
    with pytest.raises(CubeFormatError, match="is not a number") as caught:
        read_lut(path)
    assert caught.value.line == 4002


def test_fast_parser_agrees_with_careful_parser_on_random_tokens():
    """Whatever the vectorised parser accepts, the line-by-line parser accepts with the same values."""
    chooser = random.Random(7)
    pieces = [
        "1.",
        "-.5",
        ".5",
        "+1",
        "-0",
        "0.000",
        "12345678901234567",
        "1e308",
        "1e309",
        "1.2.3",
        "--1",
        "1-2",
        "e5",
        "-",
        ".",
        "1e-5",
        "-2.5E+3",
        "7",
        "0.123456789012345",
        "123456789012.5",
    ]

    def token():
        roll = chooser.random()
        if roll < 0.5:
            return chooser.choice(["%.6f", "%g", "%.3e", "%d", "%.17g"]) % chooser.uniform(-2, 2)
        if roll < 0.8:
            return chooser.choice(pieces)
        return "".join(chooser.choice("0123456789.-+eE") for _ in range(chooser.randint(1, 5)))

    accepted = 0
    for _ in range(3000):
        rows = chooser.randint(1, 3)
        lines = [" ".join(token() for _ in range(3 if chooser.random() < 0.95 else 2)) for _ in range(rows)]
        block = "\n".join(lines).encode()
        fast = cube_module.fast_rows(block)
        careful = np.empty((rows, 3))
        try:
            assert cube_module._careful_rows(Path("x.cube"), block, 1, careful, 0) == rows
        except CubeFormatError:
            careful = None
        if fast is not None:
            accepted += 1
            assert careful is not None, block
            np.testing.assert_array_equal(fast, careful)
            np.testing.assert_array_equal(np.signbit(fast), np.signbit(careful))
    assert accepted > 200


# ------------------------------------------------------------------------------------------------
# Malformed files: CubeFormatError with the file and the line
# ------------------------------------------------------------------------------------------------

ROWS_2 = "0 0 0\n1 0 0\n0 1 0\n1 1 0\n0 0 1\n1 0 1\n0 1 1\n1 1 1\n"  # lines k..k+7


def rows_with(replacement: str, index: int) -> str:
    lines = ROWS_2.splitlines()
    lines[index] = replacement
    return "\n".join(lines) + "\n"


MALFORMED = [
    # (id, content, line, words in the message)
    (
        "too-few-rows",
        "LUT_3D_SIZE 2\n" + "\n".join(ROWS_2.splitlines()[:7]) + "\n",
        8,
        ["8 data rows", "after 7"],
    ),
    ("too-many-rows", "LUT_3D_SIZE 2\n" + ROWS_2 + "0.5 0.5 0.5\n", 10, ["8 data rows", "has 9"]),
    (
        "too-few-with-shaper",
        "LUT_1D_SIZE 3\nLUT_3D_SIZE 2\n" + SHAPER_ROWS + ROWS_2[:-6],
        12,
        ["11 data rows", "after 10"],
    ),
    ("no-rows", "LUT_3D_SIZE 2\n", 1, ["8 data rows", "after 0"]),
    ("two-numbers", "LUT_3D_SIZE 2\n" + rows_with("0.5 0.5", 2), 4, ["three numbers", "found 2"]),
    ("four-numbers", "LUT_3D_SIZE 2\n" + rows_with("0.5 0.5 0.5 0.5", 5), 7, ["three numbers", "found 4"]),
    ("not-a-number", "LUT_3D_SIZE 2\n" + rows_with("0.5 0.5 abc", 3), 5, ["'abc' is not a number"]),
    ("bad-number", "LUT_3D_SIZE 2\n" + rows_with("0.5 1.2.3 0", 3), 5, ["'1.2.3' is not a number"]),
    ("size-3d-too-big", "LUT_3D_SIZE 257\n", 1, ["257", "2..256"]),
    ("size-3d-too-small", 'TITLE "x"\nLUT_3D_SIZE 1\n0 0 0\n', 2, ["2..256"]),
    ("size-1d-too-big", "LUT_1D_SIZE 65537\n", 1, ["2..65536"]),
    ("size-1d-too-small", "LUT_1D_SIZE 1\n", 1, ["2..65536"]),
    ("size-not-integer", "LUT_3D_SIZE 2.5\n", 1, ["whole number"]),
    ("size-missing-value", "LUT_3D_SIZE\n", 1, ["whole number"]),
    ("unknown-keyword", "LUT_3D_SIZE 2\nLUT_4D_SIZE 2\n" + ROWS_2, 2, ["unknown keyword", "LUT_4D_SIZE"]),
    (
        "video-range-in",
        "LUT_3D_SIZE 2\nLUT_IN_VIDEO_RANGE\n" + ROWS_2,
        2,
        ["LUT_IN_VIDEO_RANGE", "not supported"],
    ),
    (
        "video-range-out",
        "LUT_OUT_VIDEO_RANGE\nLUT_3D_SIZE 2\n" + ROWS_2,
        1,
        ["LUT_OUT_VIDEO_RANGE", "not supported"],
    ),
    (
        "keyword-after-data",
        "LUT_3D_SIZE 2\n" + rows_with("DOMAIN_MIN 0 0 0", 4),
        6,
        ["DOMAIN_MIN", "after the data"],
    ),
    ("title-after-data", "LUT_3D_SIZE 2\n" + ROWS_2 + 'TITLE "late"\n', 10, ["TITLE", "after the data"]),
    ("word-in-data", "LUT_3D_SIZE 2\n" + rows_with("hello 0 0", 1), 3, ["'hello'"]),
    ("missing-size", 'TITLE "x"\n\n' + ROWS_2, 3, ["LUT_3D_SIZE or LUT_1D_SIZE"]),
    ("no-size-no-data", 'TITLE "x"\n# only a comment\n', None, ["no LUT_3D_SIZE or LUT_1D_SIZE"]),
    ("empty", "", None, ["empty"]),
    ("blank", "\n  \n\t\n", None, ["empty"]),
    ("bom-only", "\ufeff", None, ["empty"]),
    ("nan", "LUT_3D_SIZE 2\n" + rows_with("nan 0 0", 6), 8, ["'nan'", "finite"]),
    ("inf", "LUT_3D_SIZE 2\n" + rows_with("0 -inf 0", 6), 8, ["'-inf'", "finite"]),
    ("overflow", "LUT_3D_SIZE 2\n" + rows_with("0 0 1e999", 7), 9, ["1e999", "finite"]),
    ("nan-domain", "LUT_3D_SIZE 2\nDOMAIN_MIN 0 nan 0\n" + ROWS_2, 2, ["'nan'", "finite"]),
    ("decimal-comma", "LUT_3D_SIZE 2\n" + rows_with("0,5 0,5 0,5", 2), 4, ["'0,5'", "comma"]),
    ("comma-separated", "LUT_3D_SIZE 2\n" + rows_with("0.5,0.5,0.5", 2), 4, ["comma"]),
    ("decimal-comma-domain", "LUT_3D_SIZE 2\nDOMAIN_MAX 1,0 1,0 1,0\n" + ROWS_2, 2, ["comma"]),
    (
        "domain-max-not-above-min",
        "LUT_3D_SIZE 2\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 0 1\n" + ROWS_2,
        3,
        ["DOMAIN_MAX", "exceed"],
    ),
    (
        "domain-min-above-default-max",
        "DOMAIN_MIN 2 0 0\nLUT_3D_SIZE 2\n" + ROWS_2,
        1,
        ["DOMAIN_MAX", "exceed"],
    ),
    ("domain-two-numbers", "LUT_3D_SIZE 2\nDOMAIN_MIN 0 0\n" + ROWS_2, 2, ["three numbers"]),
    (
        "range-reversed",
        "LUT_3D_SIZE 2\nLUT_3D_INPUT_RANGE 1 0\n" + ROWS_2,
        2,
        ["LUT_3D_INPUT_RANGE", "maximum above"],
    ),
    ("range-three-numbers", "LUT_3D_SIZE 2\nLUT_3D_INPUT_RANGE 0 1 2\n" + ROWS_2, 2, ["two numbers"]),
    (
        "domain-twice",
        "LUT_3D_SIZE 2\nDOMAIN_MAX 2 2 2\nLUT_3D_INPUT_RANGE 0 1\n" + ROWS_2,
        3,
        ["domain twice"],
    ),
    ("size-twice", "LUT_3D_SIZE 2\nLUT_3D_SIZE 2\n" + ROWS_2, 2, ["twice", "line 1"]),
    ("nul-bytes", b"LUT_3D_SIZE 2\n0 0 0\n\x00\x01\x02\x03", 3, ["binary"]),
    ("undecodable", b"LUT_3D_SIZE 2\n0 0 0\n\xff\xfe\xfd 0 0\n", 3, ["0xff", "UTF-8"]),
    ("undecodable-header", b"LUT_3D_SIZE\xe9 2\n", 1, ["UTF-8"]),
    (
        "crlf-line-numbers",
        ("LUT_3D_SIZE 2\n" + rows_with("0.5 0.5", 4)).replace("\n", "\r\n"),
        6,
        ["three numbers"],
    ),
    (
        "comments-count-as-lines",
        "# one\nLUT_3D_SIZE 2\n# two\n" + rows_with("# three\n0 0", 2),
        7,
        ["three numbers"],
    ),
]


@pytest.mark.parametrize("content, line, words", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_files_raise_with_line(tmp_path, content, line, words):
    path = write_text(tmp_path, content)
    with pytest.raises(CubeFormatError) as caught:
        read_lut(path)
    error = caught.value
    assert error.line == line
    assert error.path == path
    message = str(error)
    assert message.startswith(f"{path}, line {line}: " if line is not None else f"{path}: ")
    for word in words:
        assert word in message
    assert "\n" not in message


def test_error_deep_in_a_large_file_has_its_line(tmp_path):
    lut = random_lut(17, seed=2)
    path = tmp_path / "big.cube"
    write_lut(lut, path)
    lines = path.read_text().splitlines()
    header_lines = lines.index("") + 1
    bad_line = header_lines + 3000  # 1-based line of data row 3000
    lines[bad_line - 1] = lines[bad_line - 1].rsplit(" ", 1)[0]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CubeFormatError) as caught:
        read_lut(path)
    assert caught.value.line == bad_line
    assert "found 2" in str(caught.value)


def test_missing_file_folder_and_extension(tmp_path):
    with pytest.raises(LutgenError, match="no such file"):
        read_lut(tmp_path / "absent.cube")
    (tmp_path / "folder.cube").mkdir()
    with pytest.raises(LutgenError, match="folder"):
        read_lut(tmp_path / "folder.cube")
    (tmp_path / "lut.lut").write_text("0 1 2\n")
    with pytest.raises(LutgenError, match=r"'\.lut' is not a LUT format lutgen knows; use one of \.cube, "):
        read_lut(tmp_path / "lut.lut")
    upper = tmp_path / "UPPER.CUBE"
    write_lut(LUT.identity(3), upper)
    assert read_lut(upper).is_identity()
    upper.unlink()
    with pytest.raises(LutgenError, match="'.jpg' is not a LUT format"):
        write_lut(LUT.identity(2), tmp_path / "lut.jpg")
    assert not (tmp_path / "lut.jpg").exists()


def test_mutated_files_never_raise_anything_but_cube_format_error(tmp_path):
    """Random damage to real files either still reads or gives a CubeFormatError, never a traceback."""
    chooser = random.Random(11)
    sources = [p.read_bytes() for p in CORPUS if p.stat().st_size < 20000]
    path = tmp_path / "mutated.cube"
    for _ in range(400):
        data = bytearray(chooser.choice(sources))
        for _ in range(chooser.randint(1, 4)):
            position = chooser.randrange(len(data))
            kind = chooser.random()
            if kind < 0.4:
                data[position] = chooser.choice(b"0123456789.-+eE ,\t\n#xAZ_\x00\xff\r")
            elif kind < 0.7:
                del data[position : position + chooser.randint(1, 30)]
            else:
                data[position:position] = chooser.choice([b"\n", b" 1", b"LUT_3D_SIZE 2\n", b"nan", b"-"])
        path.write_bytes(bytes(data))
        try:
            read_lut(path)
        except CubeFormatError as error:
            assert error.line is None or error.line >= 1


# ------------------------------------------------------------------------------------------------
# Writing and round trips
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 3, 17, 33])
def test_round_trip_3d(tmp_path, size):
    lut = random_lut(size, seed=size)
    lut = LUT(lut.table, title="Round trip", comments=("made for a test", "second line"))
    path = tmp_path / "lut.cube"
    write_lut(lut, path)
    back = read_lut(path)
    assert back.size == size and back.shaper is None
    np.testing.assert_allclose(back.table, lut.table, rtol=0, atol=5e-7 + 1e-12)
    np.testing.assert_array_equal(back.domain, UNIT_DOMAIN)
    assert back.title == "Round trip"
    assert back.comments == ("made for a test", "second line")
    text = path.read_text()
    assert "DOMAIN_" not in text
    assert text.startswith('TITLE "Round trip"\n# made for a test\n# second line\nLUT_3D_SIZE')


def test_round_trip_non_unit_domain(tmp_path):
    domain = np.array([[-0.1, 0.0, -2.5], [1.7, 3.0, 0.25]])
    lut = random_lut(9, seed=4, domain=domain, low=-5, high=12)
    path = tmp_path / "domain.cube"
    write_lut(lut, path, style="adobe")
    back = read_lut(path)
    np.testing.assert_array_equal(back.domain, domain)
    np.testing.assert_allclose(back.table, lut.table, rtol=0, atol=5e-7 + 1e-12)
    assert "DOMAIN_MIN -0.1 0 -2.5\nDOMAIN_MAX 1.7 3 0.25\n" in path.read_text()


def test_round_trip_shaper_resolve(tmp_path):
    shaper = random_shaper(64, seed=1, domain=[-0.25, 2.0])
    lut = LUT(
        random_lut(17, seed=6).table, [[0.1] * 3, [1.3] * 3], shaper, title="dropped", comments=("dropped",)
    )
    path = tmp_path / "shaper.cube"
    write_lut(lut, path)  # auto: resolve
    text = path.read_text()
    assert text.startswith(
        "LUT_1D_SIZE 64\nLUT_1D_INPUT_RANGE -0.25 2\nLUT_3D_SIZE 17\nLUT_3D_INPUT_RANGE 0.1 1.3\n"
    )
    assert "TITLE" not in text and "#" not in text
    back = read_lut(path)
    np.testing.assert_allclose(back.shaper.table, shaper.table, rtol=0, atol=5e-7 + 1e-12)
    np.testing.assert_array_equal(back.shaper.domain, shaper.domain)
    np.testing.assert_allclose(back.table, lut.table, rtol=0, atol=5e-7 + 1e-12)
    np.testing.assert_array_equal(back.domain, lut.domain)
    # The shaper's rounding (5e-7) is magnified by the random table's slope (below 40 here).
    x = colours_around(shaper.domain, seed=9)
    np.testing.assert_allclose(apply_reference(x, back), apply_reference(x, lut), rtol=0, atol=4e-5)


@pytest.mark.parametrize("style", ["adobe", "resolve", "auto"])
def test_round_trip_1d_only(tmp_path, style):
    domain = [[-1.0, 0.0, 0.5], [2.0, 1.0, 4.0]] if style != "resolve" else [[-1.0] * 3, [2.0] * 3]
    lut = LUT(None, shaper=random_shaper(1024, seed=2, domain=domain))
    path = tmp_path / "one.cube"
    write_lut(lut, path, style=style)
    back = read_lut(path)
    assert back.table is None
    np.testing.assert_array_equal(back.shaper.domain, lut.shaper.domain)
    np.testing.assert_allclose(back.shaper.table, lut.shaper.table, rtol=0, atol=5e-7 + 1e-12)
    x = colours_around(lut.shaper.domain)
    np.testing.assert_allclose(apply_reference(x, back), colour_apply(path, x), rtol=0, atol=1e-9)
    first = (
        "LUT_1D_SIZE 1024\nLUT_1D_INPUT_RANGE -1 2\n"
        if style == "resolve"
        else "LUT_1D_SIZE 1024\nDOMAIN_MIN -1 0 0.5\n"
    )
    assert path.read_text().startswith(first)


def test_written_numbers_match_printf_and_never_negative_zero(tmp_path):
    rng = np.random.default_rng(8)
    values = np.concatenate(
        [
            rng.uniform(-1, 1, 3000) * 10.0 ** rng.integers(-9, 4, 3000),
            [-1e-9, -4e-7, -0.0, 0.0, 4.9e-7, -5.1e-7, 123456.5, -98765.25, 1.0, -1.0],
        ]
    )
    values = values[: values.size // 3 * 3].reshape(-1, 3)
    text = cube_module.format_rows(values, 6).decode()

    def printf(v):
        s = f"{v:.6f}"
        return s[1:] if re.fullmatch(r"-0\.0+", s) else s

    expected = "".join(" ".join(printf(v) for v in row) + "\n" for row in values)
    assert text == expected
    assert "-0.000000" not in text
    assert (
        cube_module.format_rows(np.array([[-3e-7, 2.5, -1e15]]), 3).decode()
        == "0.000 2.500 -1000000000000000.000\n"
    )
    assert (
        cube_module.format_rows(np.array([[-1e13, 0.1, 7]]), 6).decode()
        == "-10000000000000.000000 0.100000 7.000000\n"
    )


def test_decimals_and_exactness(tmp_path):
    lut = random_lut(5, seed=12)
    path = tmp_path / "d.cube"
    write_lut(lut, path, decimals=10)
    np.testing.assert_allclose(read_lut(path).table, lut.table, rtol=0, atol=5e-11 + 1e-15)
    write_lut(lut, path, decimals=2)
    np.testing.assert_allclose(read_lut(path).table, lut.table, rtol=0, atol=5e-3 + 1e-12)
    assert (
        path.read_text().splitlines()[2].count(".") == 3
        and len(path.read_text().splitlines()[2]) <= 3 * 5 + 2
    )
    for bad in (0, 16, 2.5):
        with pytest.raises(LutgenError, match="decimals"):
            write_lut(lut, path, decimals=bad)


def test_title_is_cleaned(tmp_path):
    lut = LUT(LUT.identity(2).table, title='Say "hi"\nthere')
    path = tmp_path / "t.cube"
    write_lut(lut, path)
    assert path.read_text().startswith("TITLE \"Say 'hi' there\"\nLUT_3D_SIZE 2\n\n")
    assert read_lut(path).title == "Say 'hi' there"


def test_write_refusals_leave_no_file(tmp_path):
    shaper = random_shaper(8, seed=0, domain=[0, 1])
    both = LUT(LUT.identity(3).table, shaper=shaper)
    path = tmp_path / "x.cube"
    with pytest.raises(LutgenError, match="use style 'resolve'"):
        write_lut(both, path, style="adobe")
    per_channel = LUT(LUT.identity(3).table, [[0, 0, 0], [1, 2, 1]], shaper=shaper)
    with pytest.raises(LutgenError, match="differs between channels"):
        write_lut(per_channel, path)
    per_channel_shaper = LUT(LUT.identity(3).table, shaper=Shaper(shaper.table, [[0, 0, 0], [1, 1, 2]]))
    with pytest.raises(LutgenError, match="shaper's domain differs"):
        write_lut(per_channel_shaper, path, style="resolve")
    with pytest.raises(LutgenError, match="unknown .cube style"):
        write_lut(LUT.identity(2), path, style="nuke")
    bad = LUT.identity(2).table.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(LutgenError, match="not finite"):
        write_lut(LUT(bad), path)
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "x.cube"
    write_lut(LUT.identity(2), path)
    write_lut(random_lut(3, seed=1), path)
    assert read_lut(path).size == 3
    assert [p.name for p in tmp_path.iterdir()] == ["x.cube"]


def test_resolve_style_for_plain_3d(tmp_path):
    lut = random_lut(4, seed=3, domain=[-0.5, 1.5])
    path = tmp_path / "r.cube"
    write_lut(lut, path, style="resolve")
    assert path.read_text().startswith("LUT_3D_SIZE 4\nLUT_3D_INPUT_RANGE -0.5 1.5\n")
    back = read_lut(path)
    np.testing.assert_array_equal(back.domain, lut.domain)
    x = colours_around(lut.domain)
    np.testing.assert_allclose(apply_reference(x, back), colour_apply(path, x), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ocio_apply(path, x), apply_reference(x, back), rtol=0, atol=2e-5)


# ------------------------------------------------------------------------------------------------
# Written files in other readers
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 17, 33])
def test_written_3d_reads_in_ocio_colour_and_pillow_lut(tmp_path, size):
    lut = LUT(
        random_lut(size, seed=20 + size, low=0.0, high=1.0).table, title="For others", comments=("a comment",)
    )
    path = tmp_path / f"plain{size}.cube"
    write_lut(lut, path)
    back = read_lut(path)
    x = colours_around(UNIT_DOMAIN, seed=size)
    ours = apply_reference(x, back)
    np.testing.assert_allclose(colour_apply(path, x), ours, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ocio_apply(path, x), ours, rtol=0, atol=2e-5)

    pillow = load_cube_file(str(path))
    assert pillow.size == (size, size, size) and pillow.name == "For others"
    np.testing.assert_allclose(
        np.asarray(pillow.table, dtype=np.float64).reshape(-1, 3), back.table.reshape(-1, 3), rtol=0, atol=0
    )
    np.testing.assert_allclose(back.table, lut.table, rtol=0, atol=5e-7 + 1e-12)
    # And Pillow's own 8-bit application agrees with the float reference within a code value.
    pixels = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    graded = np.asarray(Image.fromarray(pixels).filter(pillow), dtype=np.float64)
    expected = apply_reference(pixels.reshape(-1, 3) / 255.0, back).reshape(pixels.shape) * 255.0
    assert np.abs(graded - np.clip(expected, 0, 255)).max() <= 1.0


def test_written_non_unit_domain_and_1d_read_in_ocio_and_colour(tmp_path):
    lut = random_lut(9, seed=30, domain=[[-0.1, 0.0, -0.2], [1.5, 2.0, 3.0]])
    one_d = LUT(None, shaper=random_shaper(33, seed=31, domain=[[0.0, -1.0, 0.0], [1.0, 1.0, 2.0]]))
    for name, item in (("domain.cube", lut), ("one.cube", one_d)):
        path = tmp_path / name
        write_lut(item, path)
        back = read_lut(path)
        x = colours_around(back.input_domain, seed=4)
        ours = apply_reference(x, back)
        np.testing.assert_allclose(colour_apply(path, x), ours, rtol=0, atol=1e-9)
        np.testing.assert_allclose(ocio_apply(path, x), ours, rtol=0, atol=5e-5)


@pytest.mark.parametrize("shaper_size, size", [(16, 5), (1024, 33)])
def test_written_resolve_shaper_reads_in_ocio_and_colour(tmp_path, shaper_size, size):
    shaper = random_shaper(shaper_size, seed=shaper_size, domain=[-0.5, 2.5])
    lut = LUT(
        random_lut(size, seed=size, low=0, high=1).table, [[-0.2] * 3, [1.3] * 3], shaper, title="ignored"
    )
    path = tmp_path / "shaper.cube"
    write_lut(lut, path, style="resolve")
    back = read_lut(path)
    x = colours_around(shaper.domain, seed=5)
    ours = apply_reference(x, back)
    np.testing.assert_allclose(colour_apply(path, x), ours, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ocio_apply(path, x), ours, rtol=0, atol=5e-5)
    # The same numbers as before writing, within the 6 decimals magnified by the table's slope.
    np.testing.assert_allclose(ours, apply_reference(x, lut), rtol=0, atol=4e-5)


def test_identity_grid_round_trip(tmp_path):
    lut = LUT(grid(5, [[-1, 0, 0], [1, 1, 2]]), [[-1, 0, 0], [1, 1, 2]])
    path = tmp_path / "identity.cube"
    write_lut(lut, path)
    assert read_lut(path).is_identity()
