"""Hostile and odd ``.cube`` inputs: each one reads correctly or gives one sentence naming the file and line.

Covers what is not a regular file (FIFOs, devices), sizes in non-ASCII digits or of thousands of
digits, overlong lines, files far larger than their sizes need, too many comments, odd encodings
and separators, domains too narrow or too wide to grade with, reading in bounded memory, and
reading in chunks giving the same result wherever the chunks are cut.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from cli_runner import one_sentence_error, run_lutgen
from lutgen.errors import CubeFormatError, LutgenError
from lutgen.formats import cube as cube_module
from lutgen.formats import cube_lines
from lutgen.formats import read_lut
from lutgen.lut import LUT, SMALLEST_SPAN, Shaper
from lutgen.tasks.info import describe

# The 2-node identity rows: lines 2..9 after one header line.
ROWS = "".join(f"{r} {g} {b}\n" for b in (0, 1) for g in (0, 1) for r in (0, 1))
IDENTITY_2 = "LUT_3D_SIZE 2\n" + ROWS


def write(tmp_path: Path, content: str | bytes, name: str = "test.cube") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def refused(path: Path, line: int | None, *words: str) -> str:
    """The message of the CubeFormatError that reading ``path`` raises, checked for ``line`` and ``words``."""
    with pytest.raises(CubeFormatError) as caught:
        read_lut(path)
    message = str(caught.value)
    assert caught.value.line == line, message
    assert message.startswith(f"{path}, line {line}: " if line is not None else f"{path}: "), message
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def with_last_row(text: str) -> str:
    """The 2-node identity with its last row replaced by ``text`` (line 9)."""
    return IDENTITY_2.replace("1 1 1\n", text + "\n")


# ------------------------------------------------------------------------------------------------
# Sizes (ASCII digits only, range checked before any conversion)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "digit", ["\u00b2", "\u0663", "\uff12", "\u09e8"], ids=["superscript", "arabic", "fullwidth", "bengali"]
)
def test_size_in_non_ascii_digits_is_refused(tmp_path, digit):
    path = write(tmp_path, f"LUT_3D_SIZE {digit}\n" + ROWS)
    refused(path, 1, "LUT_3D_SIZE needs one whole number written in ASCII digits")


@pytest.mark.parametrize("keyword, limits", [("LUT_3D_SIZE", "2..256"), ("LUT_1D_SIZE", "2..65536")])
def test_size_of_thousands_of_digits_is_out_of_range(tmp_path, keyword, limits):
    path = write(tmp_path, f"{keyword} {'9' * 5000}\n")
    message = refused(path, 1, f"{keyword} 999", f"is outside the allowed {limits}")
    assert len(message) < 200


def test_size_with_leading_zeros_reads(tmp_path):
    assert read_lut(write(tmp_path, "LUT_3D_SIZE " + "0" * 5000 + "2\n" + ROWS)).is_identity()
    refused(write(tmp_path, "LUT_3D_SIZE +2\n" + ROWS), 1, "whole number")


# ------------------------------------------------------------------------------------------------
# Only regular files are opened
# ------------------------------------------------------------------------------------------------


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.cube"
    os.mkfifo(fifo)
    with pytest.raises(LutgenError, match=r"pipe\.cube: it is a FIFO \(named pipe\), not a regular \.cube"):
        read_lut(fifo)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_link_to_a_device_is_refused(tmp_path, device):
    link = tmp_path / "device.cube"
    link.symlink_to(device)
    with pytest.raises(LutgenError, match=r"device\.cube: it is a character device, not a regular \.cube"):
        read_lut(link)


def test_dangling_link_is_refused(tmp_path):
    link = tmp_path / "gone.cube"
    link.symlink_to(tmp_path / "missing.cube")
    with pytest.raises(LutgenError, match="gone.cube: it is a symbolic link to a missing file"):
        read_lut(link)


# ------------------------------------------------------------------------------------------------
# Bounded lines, comments and file size
# ------------------------------------------------------------------------------------------------


def test_long_title_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, "# hello\nTITLE \"" + "x" * 10_000_000 + "\"\n" + IDENTITY_2)
    refused(path, 2, f"longer than {cube_lines.MAX_LINE_BYTES} bytes")


def test_long_data_line_is_refused_with_its_line(tmp_path):
    long_row = "0 " * cube_lines.MAX_LINE_BYTES
    refused(write(tmp_path, with_last_row(long_row)), 9, "longer than")  # inside one chunk
    single_line = "LUT_3D_SIZE 256\n" + "0 " * 3_000_000  # longer than a chunk, never ends
    refused(write(tmp_path, single_line, "one-line.cube"), 2, "longer than")


def test_line_of_the_limit_is_read(tmp_path):
    title = "x" * (cube_lines.MAX_LINE_BYTES - len('TITLE ""'))
    lut = read_lut(write(tmp_path, f'TITLE "{title}"\n' + IDENTITY_2))
    assert lut.title == title
    refused(write(tmp_path, f'TITLE "{title}x"\n' + IDENTITY_2, "over.cube"), 1, "longer than")
    padded = with_last_row("1 1 1" + " " * cube_lines.MAX_LINE_BYTES)
    refused(write(tmp_path, padded, "end.cube"), 9, "longer")


def test_file_far_larger_than_its_size_needs_is_refused_before_reading_data(tmp_path):
    most = cube_module.SLACK_BYTES + 8 * cube_module.ROW_BYTES
    text = IDENTITY_2.replace("0 0 0\n", "0 0 x\n" + "\n" * most, 1)  # the refusal comes first
    message = refused(write(tmp_path, text), 1, "LUT_3D_SIZE 2 needs 8 data rows", "a file this large")
    assert f"fit in {most / 1e6:.1f} MB" in message
    read_lut(write(tmp_path, IDENTITY_2 + "\n" * (most - len(IDENTITY_2)), "just.cube"))


def test_file_size_rule_with_a_shaper(tmp_path, monkeypatch):
    monkeypatch.setattr(cube_module, "SLACK_BYTES", 100)
    monkeypatch.setattr(cube_module, "ROW_BYTES", 10)
    head = "LUT_1D_SIZE 2\nLUT_3D_SIZE 2\n"  # 10 rows: at most 200 bytes
    path = write(tmp_path, head + "0 0 0\n1 1 1\n" + ROWS + " " * 150)
    refused(path, 2, "LUT_1D_SIZE 2 and LUT_3D_SIZE 2 need 10 data rows")


def test_file_larger_than_any_cube_file_is_refused_first(tmp_path, monkeypatch):
    monkeypatch.setattr(cube_module, "SLACK_BYTES", 50)
    monkeypatch.setattr(cube_module, "ROW_BYTES", 0)
    path = write(tmp_path, "garbage\n" + IDENTITY_2)
    refused(path, None, f"the file has {len(IDENTITY_2) + 8} bytes, more than the 50 bytes that the largest")


def test_a_file_that_grows_while_read_is_cut_off(tmp_path):
    stream = io.BytesIO(b"# growing\n" * 1000)
    source = cube_lines.LineBlocks(tmp_path / "log.cube", stream, max_bytes=5000, chunk_bytes=1024)
    with pytest.raises(CubeFormatError, match="log.cube: the file grew beyond 5000 bytes while being read"):
        list(source.blocks())


def test_too_many_comment_lines_are_refused(tmp_path):
    limit = cube_module.MAX_COMMENT_LINES
    many = write(tmp_path, "# c\n" * (limit + 5) + IDENTITY_2)
    refused(many, limit + 1, f"more than {limit} comment lines")
    in_data = "# c\n" * (limit - 1) + IDENTITY_2.replace("1 1 1\n", "# one\n# two\n1 1 1\n")
    refused(write(tmp_path, in_data, "data.cube"), limit + 9, f"more than {limit} comment lines")
    assert len(read_lut(write(tmp_path, "# c\n" * limit + IDENTITY_2, "ok.cube")).comments) == limit


# ------------------------------------------------------------------------------------------------
# Encodings, separators and numbers
# ------------------------------------------------------------------------------------------------

ODD_ROWS = [
    # (id, last row, words in the message); the row is line 9
    ("exponent-overflow", "1 1 1e999999999", ["'1e999999999' is too large to be a finite number"]),
    ("hex-float", "1 1 0x1p3", ["'0x1p3' is not a number"]),
    ("arabic-indic", "1 1 \u0661.\u0665", ["'\u0661.\u0665' is not a number", "ASCII digits"]),
    ("fullwidth", "\uff11 1 1", ["'\uff11' is not a number", "ASCII digits"]),
    ("underscore", "1 1 1_000", ["'1_000' is not a number"]),
    ("no-break-space", "1 1\u00a01", ["'1\\xa01' is not a number", "spaces or tabs"]),
    ("em-space", "1 1\u20031", ["'1\\u20031' is not a number"]),
    ("trailing-no-break-space", "1 1 1\u00a0", ["'1\\xa0' is not a number"]),
    ("vertical-tab", "1 1\x0b1", ["'1\\x0b1' is not a number"]),
    ("form-feed-line", "\x0c", ["'\\x0c' is not a number"]),
    ("latin-1-in-data", "1 1 1\xe9".encode("latin-1"), ["byte 0xe9 is not UTF-8"]),
]


@pytest.mark.parametrize("row, words", [r[1:] for r in ODD_ROWS], ids=[r[0] for r in ODD_ROWS])
def test_odd_numbers_and_separators_are_refused_with_their_line(tmp_path, row, words):
    if isinstance(row, str):
        content = with_last_row(row)
    else:
        content = IDENTITY_2.encode().replace(b"1 1 1\n", row + b"\n")
    refused(write(tmp_path, content), 9, *words)
    block = (content if isinstance(content, bytes) else content.encode()).split(b"\n", 1)[1]
    assert cube_module.fast_rows(block) is None  # both parsers refuse it


@pytest.mark.parametrize(
    "header, line, words",
    [
        ("LUT_3D_SIZE\u00a02", 1, ["unknown keyword 'LUT_3D_SIZE\\xa02'"]),
        ("LUT_3D_SIZE\u20032", 1, ["unknown keyword"]),
        ("LUT_3D_SIZE 2\nDOMAIN_MAX 1\u00a01 1", 2, ["'1\\xa01' is not a number"]),
        ("LUT_3D_SIZE 2\nLUT_3D_INPUT_RANGE 0 \u0661", 2, ["not a number", "ASCII digits"]),
    ],
)
def test_unicode_separators_and_digits_in_keyword_lines(tmp_path, header, line, words):
    refused(write(tmp_path, header + "\n" + ROWS), line, *words)


def test_tiny_exponent_and_very_long_number_read_like_float(tmp_path):
    long_number = "0." + "3" * 60_000
    lut = read_lut(write(tmp_path, with_last_row(f"1e-999999999 1 {long_number}")))
    np.testing.assert_array_equal(lut.table[1, 1, 1], [0.0, 1.0, float(long_number)])


def test_keyword_line_with_nul_is_binary(tmp_path):
    refused(write(tmp_path, b"# x\nLUT_3D\x00_SIZE 2\n" + ROWS.encode()), 2, "binary data (NUL bytes)")


def test_utf16_is_refused_in_one_sentence(tmp_path):
    for encoding in ("utf-16", "utf-16-be"):
        content = IDENTITY_2.encode(encoding)
        if encoding == "utf-16-be":
            content = b"\xfe\xff" + content
        refused(write(tmp_path, content, f"{encoding}.cube"), None, "UTF-16 text", "UTF-8")


def test_latin1_title_and_comment_are_read(tmp_path):
    content = 'TITLE "Caf\xe9"\n# cr\xe8me\n'.encode("latin-1") + IDENTITY_2.encode()
    lut = read_lut(write(tmp_path, content))
    assert (lut.title, lut.comments) == ("Caf\xe9", ("cr\xe8me",))
    assert read_lut(write(tmp_path, 'TITLE "Caf\xe9"\n' + IDENTITY_2, "utf8.cube")).title == "Caf\xe9"


# ------------------------------------------------------------------------------------------------
# Reading in chunks: the same result wherever a chunk ends
# ------------------------------------------------------------------------------------------------

CHUNKED = (
    "\ufeff# first\r\nTITLE \"t\"\r\nLUT_1D_SIZE 3\rLUT_3D_SIZE 2\r\n\r\n0 0 0\n0.5 0.25 0.125\r1 1 1\r\n"
    + ROWS.replace("0 1 0\n", "# mid\r\n\r\n0 1 0\r").replace("1 1 0\n", "1 1 0\r\n\r")
)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 13, 64])
def test_chunk_boundaries_do_not_change_what_is_read(tmp_path, monkeypatch, chunk):
    path = write(tmp_path, CHUNKED)
    whole = read_lut(path)
    assert whole.title == "t" and whole.comments == ("first", "mid") and whole.shaper.size == 3
    monkeypatch.setattr(cube_lines, "CHUNK_BYTES", chunk)
    pieces = read_lut(path)
    np.testing.assert_array_equal(pieces.table, whole.table)
    np.testing.assert_array_equal(pieces.shaper.table, whole.shaper.table)
    assert (pieces.title, pieces.comments) == (whole.title, whole.comments)
    bad = write(tmp_path, CHUNKED.replace("1 1 0\r\n", "1 1 x\r\n"), "bad.cube")
    refused(bad, 14, "'x' is not a number")
    short = write(tmp_path, CHUNKED.rsplit("1 1 1", 1)[0], "short.cube")
    refused(short, 18, "11 data rows but the file ends after 10")
    extra = write(tmp_path, CHUNKED + "1 1 1\r\n\r\n2 2 2", "extra.cube")
    refused(extra, 20, "the file has 13; this is the first extra row")


def test_rows_spread_over_many_chunks_read_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(cube_lines, "CHUNK_BYTES", 4096)
    values = np.random.default_rng(4).uniform(-2, 2, (17**3, 3))
    lines = [" ".join(f"{v:.{(i + c) % 17 + 1}g}" for c, v in enumerate(row)) for i, row in enumerate(values)]
    lines[100] = "# a comment between rows"
    lines[101:101] = ["", "  \t"]
    text = "LUT_3D_SIZE 17\n" + "\n".join(lines) + "\n" + " ".join(repr(float(v)) for v in values[100]) + "\n"
    kept = [line for line in text.splitlines()[1:] if line.strip() and not line.startswith("#")]
    expected = [[float(t) for t in line.split()] for line in kept]
    np.testing.assert_array_equal(read_lut(write(tmp_path, text)).table.reshape(-1, 3), expected)


# ------------------------------------------------------------------------------------------------
# Domains
# ------------------------------------------------------------------------------------------------

SPANS = [
    ("subnormal-max", "DOMAIN_MAX 5e-324 5e-324 5e-324", 2, ["red channel spans only 4.94e-324", "narrow"]),
    ("subnormal-span", "DOMAIN_MIN 0 0 1e-310\nDOMAIN_MAX 1 1 2e-310", 3, ["blue channel", "too narrow"]),
    ("overflowing", "DOMAIN_MIN -1.7e308 0 0\nDOMAIN_MAX 1.7e308 1 1", 3, ["red channel", "too wide"]),
    ("3d-range", "LUT_3D_INPUT_RANGE -1.7e308 1.7e308", 2, ["LUT_3D_INPUT_RANGE", "too wide"]),
    ("3d-range-narrow", "LUT_3D_INPUT_RANGE 0 1e-320", 2, ["LUT_3D_INPUT_RANGE 0 9.99989e-321", "narrow"]),
    ("1d-range", "LUT_1D_INPUT_RANGE -1e308 1e308", 2, ["LUT_1D_INPUT_RANGE", "too wide"]),
]


@pytest.mark.parametrize("lines, line, words", [s[1:] for s in SPANS], ids=[s[0] for s in SPANS])
def test_domain_too_narrow_or_too_wide_is_refused(tmp_path, lines, line, words):
    refused(write(tmp_path, "LUT_3D_SIZE 2\n" + lines + "\n" + ROWS), line, *words)


def test_domain_spans_of_normal_floats_read(tmp_path):
    narrow = read_lut(write(tmp_path, "LUT_3D_SIZE 2\nDOMAIN_MAX 1e-300 1 1\n" + ROWS, "narrow.cube"))
    assert narrow.domain[1, 0] == 1e-300
    wide = read_lut(write(tmp_path, "LUT_3D_SIZE 2\nDOMAIN_MIN -8e307 0 0\nDOMAIN_MAX 8e307 1 1\n" + ROWS))
    assert wide.domain[0, 0] == -8e307


@pytest.mark.parametrize("domain", [[0, 5e-324], [-1.7e308, 1.7e308], [0, SMALLEST_SPAN / 2]])
def test_lut_refuses_unusable_domain_spans(domain):
    with pytest.raises(ValueError, match="span"):
        LUT.identity(2, domain)
    with pytest.raises(ValueError, match="span"):
        Shaper.identity(3, domain)
    assert LUT.identity(2, [0, SMALLEST_SPAN]).size == 2


def test_describe_never_warns_on_huge_values(tmp_path):
    rows = "".join(f"{-1.7e308 if i % 2 else 1.7e308} -1.7e308 1.7e308\n" for i in range(8))
    path = write(tmp_path, "LUT_3D_SIZE 2\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1.7e308 1.7e308 1.7e308\n" + rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows_out = dict(describe(read_lut(path)))
    assert rows_out["identity"] == "no"
    assert rows_out["3D values"] == "min -1.7e+308 -1.7e+308 1.7e+308, max 1.7e+308 -1.7e+308 1.7e+308"


def test_identity_check_per_plane():
    domain = [[-0.5, 0, 0.25], [1, 2, 0.75]]
    lut = LUT.identity(9, domain)
    assert lut.is_identity()
    table = lut.table.copy()
    table[8, 3, 2, 1] += 1e-5
    assert not lut.with_table(table).is_identity()
    assert lut.with_table(table).is_identity(atol=2e-5)


# ------------------------------------------------------------------------------------------------
# The command line and memory
# ------------------------------------------------------------------------------------------------


def test_cli_reports_hostile_files_in_one_sentence(tmp_path):
    fifo = tmp_path / "pipe.cube"
    os.mkfifo(fifo)
    cases = [
        (fifo, ["pipe.cube", "FIFO"]),
        (write(tmp_path, "LUT_3D_SIZE " + "7" * 5000, "digits.cube"), ["line 1", "allowed 2..256"]),
        (write(tmp_path, "LUT_3D_SIZE 2\n" + "0 " * 100_000, "long.cube"), ["line 2", "longer than 65536"]),
        (write(tmp_path, "LUT_3D_SIZE 2\nDOMAIN_MAX 5e-324 1 1\n" + ROWS, "tiny.cube"), ["line 2", "narrow"]),
    ]
    for path, fragments in cases:
        result = run_lutgen("info", path, timeout=60)
        one_sentence_error(result, str(path), *fragments)
        assert result.stdout == ""


# The peak resident size of this process since it started (VmHWM). Not getrusage's ru_maxrss: on Linux
# that also counts the parent's pages a forked child held before exec, which a test process may have many of.
PEAK_RSS = """
import re, sys
from lutgen.tasks.info import info
rows = dict(info(sys.argv[1]))
status = open("/proc/self/status").read()
print(rows["3D size"], int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024)
"""


def test_reading_a_large_file_stays_within_three_tables(tmp_path):
    """A 128^3 file: peak memory of info at most 3x the float64 table + 300 MB (its own bound)."""
    size = 128
    rows = np.random.default_rng(1).uniform(-0.2, 1.2, (4096, 3))
    text = "".join(f"{r:.6f} {g:.6f} {b:.6f}\n" for r, g, b in rows).encode()
    path = write(tmp_path, b"LUT_3D_SIZE 128\n" + text * (size**3 // 4096))
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(path)], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
    label, peak = result.stdout.rsplit(" ", 1)
    assert label.startswith("128 ")
    table_bytes = size**3 * 3 * 8
    assert int(peak) <= 3 * table_bytes + 300 * 2**20, f"peak {int(peak) / 2**20:.0f} MiB"
