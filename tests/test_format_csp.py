"""CineSpace .csp reading and writing, checked against OpenColorIO and colour-science.

OpenColorIO applies each file (float32) to 8-bit and 16-bit code values and lutgen applies the LUT
it read (float64); they must agree within 0.5 code value. OpenColorIO joins pre-LUT points with a
cubic spline: :func:`spline_reference` below restates it from OpenColorIO's coefficient formulas,
independently of lutgen's vectorised version.
"""

from __future__ import annotations


import numpy as np
import pytest

from lutgen.color.cpu import apply_lut_array
from lutgen.errors import LutgenError
from lutgen.formats import csp, read_lut, write_lut
from lutgen.lut import LUT, Shaper
from reference import colour, random_shaper, smooth_random_lut
from test_format_spi import BUNDLED, DATA, assert_like_ocio, codes, lutgen_codes, ocio_codes

OCIO_FILES = ["lut3d_arbitrary.csp", "lut3d_red-only.csp", "lut3d_grn-only.csp", "lut3d_blu-only.csp"]
NON_UNIT = np.array([[-0.2, 0.0, 0.1], [1.5, 2.0, 1.2]])


def spline_reference(x: list[float], y: list[float], t: float) -> float:
    """OpenColorIO's ``rsr_Interpolator1D`` at ``t``, one segment at a time, in float64."""
    if t <= x[0]:
        return y[0]
    if t >= x[-1]:
        return y[-1]
    i = max(k for k in range(len(x) - 1) if x[k] <= t)
    z = (t - x[i]) / (x[i + 1] - x[i])
    f0, f1 = y[i], y[i + 1]
    if len(x) == 2:
        return f0 + z * (f1 - f0)
    if i == 0:
        dfdx1 = (y[2] - f0) / (1 + (x[2] - x[1]) / (x[1] - x[0]))
        a, b, c, d = f0, -2 * f0 + 2 * f1 - dfdx1, f0 - f1 + dfdx1, 0.0
    elif i == len(x) - 2:
        dfdx0 = (f1 - y[i - 1]) / (1 + (x[i] - x[i - 1]) / (x[i + 1] - x[i]))
        a, b, c, d = f0, dfdx0, -f0 + f1 - dfdx0, 0.0
    else:
        dfdx0 = (f1 - y[i - 1]) / (1 + (x[i] - x[i - 1]) / (x[i + 1] - x[i]))
        dfdx1 = (y[i + 2] - f0) / (1 + (x[i + 2] - x[i + 1]) / (x[i + 1] - x[i]))
        a, b = f0, dfdx0
        c, d = -3 * f0 - 2 * dfdx0 + 3 * f1 - dfdx1, 2 * f0 + dfdx0 - 2 * f1 + dfdx1
    return a + z * (b + z * (c + d * z))


def csp_text(prelut: list[tuple[list[float], list[float]]], rows: list[str], kind: str = "3D", size: str = "2 2 2") -> str:
    lines = ["CSPLUTV100", kind, ""]
    for x, y in prelut:
        lines += [str(len(x)), " ".join(map(repr, x)), " ".join(map(repr, y))]
    return "\n".join(lines + ["", size, *rows]) + "\n"


IDENTITY_ROWS = [f"{r} {g} {b}" for b in range(2) for g in range(2) for r in range(2)]


# ------------------------------------------------------------------------------------------------
# OpenColorIO's files and pre-LUTs
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("name", OCIO_FILES)
def test_ocio_files_apply_like_ocio(name, bits):
    assert_like_ocio(DATA / name, read_lut(DATA / name), bits)


def test_red_only_file_is_red_fastest():
    lut = read_lut(DATA / "lut3d_red-only.csp")
    assert lut.shaper is None and lut.size == 2
    rows = np.loadtxt(DATA / "lut3d_red-only.csp", skiprows=14)
    np.testing.assert_array_equal(lut.table.reshape(-1, 3), rows)  # row (b * 2 + g) * 2 + r
    assert lut.table[1, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_spline_matches_ocio_formulas():
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.uniform(0.05, 0.4, 9)) - 0.3
    y = rng.uniform(-0.2, 1.2, 9)
    t = np.linspace(x[0] - 0.1, x[-1] + 0.1, 1001)
    expected = [spline_reference(list(x), list(y), v) for v in t]
    np.testing.assert_allclose(csp.spline(x, y, t), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bits", [8, 16])
def test_curved_and_uneven_prelut_applies_like_ocio(tmp_path, bits):
    uneven = [0.0, 0.05, 0.2, 0.5, 1.0]
    prelut = [(uneven, [0.0, 0.3, 0.55, 0.8, 1.0]), ([0.0, 0.25, 0.5, 0.75, 1.0], [0, 0.0625, 0.25, 0.5625, 1.0]),
              ([-0.5, 2.0], [0.0, 1.0])]
    path = tmp_path / "curved.csp"
    path.write_text(csp_text(prelut, IDENTITY_ROWS))
    lut = read_lut(path)
    assert lut.shaper.size == csp.PRELUT_SAMPLES  # the spline, sampled as OpenColorIO samples it
    np.testing.assert_array_equal(lut.shaper.domain, [[0.0, 0.0, -0.5], [1.0, 1.0, 2.0]])
    t = np.linspace(0, 1, 65536)
    np.testing.assert_allclose(lut.shaper.table[::4097, 0], [spline_reference(uneven, prelut[0][1], v) for v in t[::4097]],
                               rtol=0, atol=1e-12)
    assert_like_ocio(path, lut, bits)


def test_straight_prelut_is_held_exactly(tmp_path):
    prelut = [([-0.25, 0.5, 1.25], [0.0, 0.3, 0.6])] * 3
    path = tmp_path / "straight.csp"
    path.write_text(csp_text(prelut, IDENTITY_ROWS))
    lut = read_lut(path)
    assert lut.shaper.size == 3
    np.testing.assert_array_equal(lut.shaper.table[:, 0], [0.0, 0.3, 0.6])
    np.testing.assert_array_equal(lut.shaper.domain, [[-0.25] * 3, [1.25] * 3])
    two_points = [([-1.0, 3.0], [0.0, 1.0])] * 3
    path.write_text(csp_text(two_points, IDENTITY_ROWS))
    lut = read_lut(path)
    assert lut.shaper is None
    np.testing.assert_array_equal(lut.domain, [[-1.0] * 3, [3.0] * 3])
    assert_like_ocio(path, lut, 16)


def test_identity_prelut_is_not_applied_like_ocio(tmp_path):
    path = tmp_path / "identity.csp"
    path.write_text(csp_text([([0.0, 2.0], [0.0, 2.0])] * 3, IDENTITY_ROWS))
    lut = read_lut(path)
    assert lut.shaper is None
    np.testing.assert_array_equal(lut.domain, [[0.0] * 3, [1.0] * 3])


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("prelut", [([0.0, 0.5, 1.0], [0.0, 0.3, 1.0]), ([-0.5, 1.5], [0.2, 0.8])],
                         ids=["curved", "two-points"])
def test_1d_csp_applies_like_ocio(tmp_path, bits, prelut):
    rows = [f"{v} {v * v} {1 - v}" for v in np.linspace(0, 1, 11)]
    path = tmp_path / "one.csp"
    path.write_text(csp_text([prelut] * 3, rows, kind="1D", size="11"))
    lut = read_lut(path)
    assert lut.table is None
    assert_like_ocio(path, lut, bits)


# ------------------------------------------------------------------------------------------------
# lutgen's files read by OpenColorIO, colour-science's by lutgen, round trips
# ------------------------------------------------------------------------------------------------


def shaper_lut(size: int = 9, shaper_size: int = 64, seed: int = 4) -> LUT:
    rng = np.random.default_rng(seed)
    return LUT(smooth_random_lut(size, rng, NON_UNIT).table, NON_UNIT,
               shaper=random_shaper(shaper_size, rng, [[-0.5] * 3, [2.5] * 3], out_range=(-0.3, 2.3)))


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("which", ["bundled", "shaper", "domain", "1d"])
def test_written_csp_applies_like_ocio(tmp_path, bits, which):
    rng = np.random.default_rng(8)
    lut = {
        "bundled": lambda: read_lut(BUNDLED),
        "shaper": shaper_lut,
        "domain": lambda: smooth_random_lut(7, rng, NON_UNIT),
        "1d": lambda: LUT(None, shaper=random_shaper(33, rng, NON_UNIT, out_range=(-0.1, 1.3))),
    }[which]()
    path = tmp_path / f"{which}.csp"
    write_lut(lut, path)
    x = codes(bits)
    ocio = ocio_codes(path, x, bits)
    assert np.abs(lutgen_codes(lut, x, bits) - ocio).max() <= 0.5
    assert np.abs(lutgen_codes(read_lut(path), x, bits) - ocio).max() <= 0.5


def test_shaper_with_kinks_is_guarded_for_the_spline(tmp_path):
    lut = shaper_lut(shaper_size=5)
    path = tmp_path / "kinks.csp"
    write_lut(lut, path)
    prelut = [line for line in path.read_text().split("END METADATA")[1].splitlines() if line]
    counts = [int(line) for line in prelut[0:9:3]]
    assert counts == [5 + 2 * 3] * 3  # two more points beside each of the 3 inner nodes
    assert_like_ocio(path, lut, 8)
    # OpenColorIO samples the pre-LUT at 65536 even steps: a kink of this random 5-point shaper
    # inside a step costs up to (change of slope) * step / 4, 0.8 of a 16-bit code here.
    x = codes(16)
    assert np.abs(lutgen_codes(lut, x, 16) - ocio_codes(path, x, 16)).max() <= 1.0


@pytest.mark.parametrize("which", ["bundled", "shaper", "1d"])
def test_written_csp_reads_in_colour_science(tmp_path, which):
    rng = np.random.default_rng(10)
    lut = {"bundled": lambda: read_lut(BUNDLED), "shaper": shaper_lut,
           "1d": lambda: LUT(None, shaper=random_shaper(33, rng, NON_UNIT, out_range=(-0.1, 1.3)))}[which]()
    path = tmp_path / f"{which}.csp"
    write_lut(lut, path)
    loaded = colour.read_LUT(str(path))
    colours = rng.uniform(0, 1, (3000, 3)) * (lut.input_domain[1] - lut.input_domain[0]) + lut.input_domain[0]
    # colour-science joins pre-LUT points by straight lines (OpenColorIO by its spline) and cannot
    # read the guard points of a curved pre-LUT, so only its table is compared there.
    if which == "shaper":
        table = loaded[1].table if isinstance(loaded, colour.LUTSequence) else loaded.table
        np.testing.assert_allclose(table.transpose(2, 1, 0, 3), lut.table, rtol=0, atol=5e-7)
        return
    np.testing.assert_allclose(loaded.apply(colours), apply_lut_array(colours, lut), rtol=0, atol=2e-6)


def test_cube_csp_cube_round_trip_within_5e7(tmp_path):
    lut = read_lut(BUNDLED)
    write_lut(lut, tmp_path / "a.csp")
    write_lut(read_lut(tmp_path / "a.csp"), tmp_path / "b.cube")
    back = read_lut(tmp_path / "b.cube")
    assert back.shaper is None
    np.testing.assert_allclose(back.table, lut.table, rtol=0, atol=5e-7 + 1e-12)
    np.testing.assert_array_equal(back.domain, lut.domain)


def test_synthetic_round_trip_with_smooth_shaper_and_domain(tmp_path):
    rng = np.random.default_rng(12)
    domain, table_domain = np.array([[-0.5] * 3, [2.5] * 3]), np.array([[-0.2] * 3, [1.6] * 3])
    x = np.linspace(0, 1, 256)[:, None]
    shaper = Shaper(table_domain[0] + (x**0.8) * (table_domain[1] - table_domain[0]), domain)  # held exactly
    lut = LUT(smooth_random_lut(9, rng, table_domain).table, table_domain, shaper=shaper)
    write_lut(lut, tmp_path / "a.cube")
    write_lut(read_lut(tmp_path / "a.cube"), tmp_path / "a.csp")
    back = read_lut(tmp_path / "a.csp")
    # A curved shaper is written with guard points and read back as OpenColorIO's 65536 samples.
    assert back.shaper.size == csp.PRELUT_SAMPLES
    np.testing.assert_allclose(back.table, lut.table, rtol=0, atol=5e-7 + 1e-12)
    colours = rng.uniform(-0.7, 2.7, (4000, 3))
    np.testing.assert_allclose(apply_lut_array(colours, back), apply_lut_array(colours, lut), rtol=0, atol=2e-6)


def test_colour_science_csp_reads_like_colour_science(tmp_path):
    rng = np.random.default_rng(2)
    table = smooth_random_lut(9, rng).table.transpose(2, 1, 0, 3)  # colour: [r, g, b, c]
    prelut = colour.LUT3x1D(np.linspace(0, 1, 2)[:, None].repeat(3, 1), domain=[[-0.5] * 3, [2.0] * 3])
    sequence = colour.LUTSequence(prelut, colour.LUT3D(table))
    path = tmp_path / "c.csp"
    colour.write_LUT(sequence, str(path))
    lut = read_lut(path)
    np.testing.assert_allclose(lut.table, table.transpose(2, 1, 0, 3), rtol=0, atol=5e-7)  # colour writes 6 digits
    colours = rng.uniform(-0.5, 2.0, (2000, 3))
    expected = colour.read_LUT(str(path)).apply(colours)
    np.testing.assert_allclose(apply_lut_array(colours, lut), expected, rtol=0, atol=1e-6)
    assert_like_ocio(path, lut, 16)


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------

GOOD = csp_text([([0.0, 1.0], [0.0, 1.0])] * 3, IDENTITY_ROWS)


@pytest.mark.parametrize(
    "text, line, message",
    [
        (GOOD.replace("CSPLUTV100", "CSPLUT"), 1, "starts with 'CSPLUTV100'"),
        (GOOD.replace("3D", "2D"), 2, "'3D' or '1D'"),
        (GOOD.replace("\n2\n0.0 1.0", "\ntwo\n0.0 1.0", 1), 4, "'two' is not a whole number"),
        (GOOD.replace("0.0 1.0\n0.0 1.0", "0.0 1.0\n0.0 x", 1), 6, "'x' is not a number"),
        (GOOD.replace("0.0 1.0\n0.0 1.0", "0.0 1.0\n0.0", 1), 6, "has 2 numbers, this line has 1"),
        (GOOD.replace("0.0 1.0\n0.0 1.0", "1.0 0.0\n0.0 1.0", 1), 5, "input positions must increase"),
        (GOOD.replace("2 2 2", "2 2 3"), 14, "3D sizes 2 2 3 differ"),
        (GOOD.replace("2 2 2", "300 300 300"), 14, "from 2 to 129"),
        (GOOD[: GOOD.rindex("1 1 1\n")], 21, "has 8 rows but the file has only 7"),
        (GOOD + "0 0 0\n", 23, "has 8 rows but the file has more 9"),
        (GOOD.replace("0 1 1", "0 1 nan"), 21, "'nan' is not a number"),
        (GOOD.replace("1 0 1", "1 0"), 20, "has 3 numbers, this line has 2"),
        ("CSPLUTV100\n3D\nBEGIN METADATA\nno end\n", 4, "has no 'END METADATA'"),
        ("CSPLUTV100\n3D\n2\n0 1\n", 4, "ends inside the red pre-LUT"),
    ],
)
def test_malformed_files_are_one_sentence_naming_the_line(tmp_path, text, line, message):
    path = tmp_path / "bad.csp"
    path.write_text(text)
    with pytest.raises(LutgenError) as caught:
        read_lut(path)
    said = str(caught.value)
    assert said.startswith(f"{path}, line {line}: "), said
    assert message in said and "\n" not in said


def test_metadata_round_trips_as_title_and_comments(tmp_path):
    lut = LUT(LUT.identity(2).table, title="Look", comments=("made by hand",))
    write_lut(lut, tmp_path / "m.csp")
    back = read_lut(tmp_path / "m.csp")
    assert "BEGIN METADATA\nLook\nmade by hand\nEND METADATA" in (tmp_path / "m.csp").read_text()
    np.testing.assert_array_equal(back.table, lut.table)
    assert back.title == "Look" and back.comments == ("made by hand",)
