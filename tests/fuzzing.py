"""Hostile inputs for lutgen's commands, and a runner that checks that each one ends cleanly.

A *case* is one command line (``info``, ``infer``, ``enhance``, ...) over files made for it: a
mutated ``.cube`` (byte flips, truncation, keyword and number mutations, odd encodings), a mutated
image (truncation, byte flips, CRC-fixed PNG corruption, wrong extensions), a special file (a FIFO,
a link to ``/dev/zero``, a link loop) or a hostile option value. Cases are drawn from a seeded
``random.Random``, so a seed always gives the same cases.

*Clean* means what the README promises: exit 0, or exit 2 after exactly one ``error:`` line; no
traceback, nothing else on stderr but ``warning:`` lines; every input file unchanged; no
half-written (``.part``) file left behind; done within a time limit; and no big jump in memory.

The cases run in worker processes that call :func:`lutgen.cli.main` once per case, exactly as the
``lutgen`` script does, with stdout and stderr captured at the file-descriptor level (so that a
C library's own messages count too). That keeps a few hundred cases within a minute. A worker that
stops answering (a hang in native code) is killed, its case is reported as a hang, and a new
worker goes on with the next case. ``tests/test_fuzz.py`` runs a fixed seed in CI and
``bench/fuzz.py`` runs any number of cases with any seed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CUBE_SEEDS = sorted((ROOT / "lutgen" / "data" / "luts").glob("*.cube")) + sorted(
    p for p in (ROOT / "tests" / "data" / "cube").glob("*.cube") if p.stat().st_size < 400_000
)
FORMAT_SEEDS = [ROOT / "tests" / "data" / "formats" / name for name in (
    "discreet-3d-lut.3dl", "lut3d_arbitrary.csp", "lut3d_bizarre.spi3d", "lut1d_1.spi1d", "clf/lut3d_bizarre.clf",
    "clf/range.clf", "clf/matrix_3x4_example.clf")]
"""Small valid files of the other LUT formats (OpenColorIO's test files) that format cases mutate."""
PHOTO = ROOT / "images" / "coffee.jpg"

CASE_TIME_LIMIT_S = 20.0  # one case; a worker silent for longer than this plus start-up is killed
MEMORY_JUMP_LIMIT_MB = 300  # a case may raise the worker's peak memory by at most this much
WORKER_ADDRESS_LIMIT = 8 << 30  # a runaway allocation fails instead of taking the machine


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One command over files made for it.

    ``argv`` is the command line after ``lutgen``; ``{dir}`` in it stands for the case's folder.
    ``files`` maps names in that folder to their bytes; ``links`` maps names to link targets
    (``{dir}`` allowed); ``fifos`` lists names made as named pipes.
    """

    name: str
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    fifos: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """What a case did, and the reasons it was not clean (none when it was)."""

    name: str
    argv: list[str]
    exit_code: int | None
    stderr: str
    seconds: float
    memory_jump_mb: float
    problems: list[str]

    @property
    def clean(self) -> bool:
        return not self.problems


def make_cases(count: int, seed: int) -> list[Case]:
    """``count`` cases drawn with ``seed``: the special-file cases first, then a random mix."""
    rng = random.Random(seed)
    seeds = _Seeds()
    cases = special_file_cases(seeds)
    makers = [
        (0.40, lambda i: cube_case(rng, seeds, i)),
        (0.30, lambda i: image_case(rng, seeds, i)),
        (0.10, lambda i: format_case(rng, seeds, i)),
        (0.08, lambda i: option_case(rng, seeds, i)),
        (0.06, lambda i: model_case(rng, seeds, i)),
        (0.06, lambda i: output_case(rng, seeds, i)),
        (0.05, lambda i: pairs_case(rng, seeds, i)),
    ]
    weights = [w for w, _ in makers]
    index = 0
    while len(cases) < count:
        _, maker = rng.choices(makers, weights)[0]
        cases.append(maker(index))
        index += 1
    return cases[:count]


class _Seeds:
    """The valid files that cases are mutated from, made once: LUTs, small images, the weights."""

    def __init__(self):
        import numpy as np
        from PIL import Image

        self.cubes = {p.name: p.read_bytes() for p in CUBE_SEEDS}
        self.formats = {p.name: p.read_bytes() for p in FORMAT_SEEDS if p.is_file()}
        hald = io.BytesIO()
        levels = np.arange(4) * 85  # a level-2 Hald: a 4^3 identity in an 8 x 8 image, red fastest
        pixels = np.stack(np.meshgrid(levels, levels, levels, indexing="ij")[::-1], axis=-1).reshape(8, 8, 3)
        Image.fromarray(pixels.astype(np.uint8)).save(hald, format="PNG")
        self.formats["hald.png"] = hald.getvalue()
        photo = Image.open(PHOTO).convert("RGB").resize((40, 28))
        self.images = {}
        for suffix, fmt in ((".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP"), (".tif", "TIFF")):
            buffer = io.BytesIO()
            photo.save(buffer, format=fmt)
            self.images[suffix] = buffer.getvalue()
        self.images["16.png"] = _png16(np.asarray(photo).astype(np.uint16) * 257)
        self.weights = (ROOT / "lutgen" / "models" / "weights" / "fivek_srgb.safetensors").read_bytes()
        self.identity = b"LUT_3D_SIZE 2\n" + b"".join(
            f"{r} {g} {b}\n".encode() for b in (0, 1) for g in (0, 1) for r in (0, 1)
        )


def _png16(rgb) -> bytes:
    """A 16-bit RGB PNG of ``rgb`` (H, W, 3) uint16, written directly (no library needed)."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


# --- .cube cases --------------------------------------------------------------------------------

_SIZE_VALUES = ["0", "1", "2", "257", "65537", "-3", "3.5", "1e2", "\u00b2", "\u0663", "\uff13", "9" * 5000, "", "0x10"]
_NUMBER_VALUES = [
    "nan", "inf", "-inf", "1e999", "1e-999", "5e-324", "1.7e308", "-1.7e308", "1,5", "0x10", "\u0661.\u0665",
    "--1", "1e", ".", "1.2.3", "1_0", "\u00a01", "1\u2003", "+", "1" * 400, "0." + "3" * 400, "٣",
]


def cube_case(rng: random.Random, seeds: _Seeds, index: int) -> Case:
    """A mutated ``.cube`` given to ``info`` or to ``infer`` on a small photo."""
    seed_name = rng.choice(sorted(seeds.cubes))
    data = seeds.cubes[seed_name]
    mutation = rng.choice(sorted(_CUBE_MUTATIONS))
    mutated = _CUBE_MUTATIONS[mutation](rng, data)
    name = f"cube/{mutation}/{seed_name}#{index}"
    if rng.random() < 0.5:
        return Case(name, ["info", "{dir}/look.cube"], {"look.cube": mutated})
    argv = ["infer", "{dir}/look.cube", "{dir}/photo.png", "-o", "{dir}/out/graded.png"]
    return Case(name, argv, {"look.cube": mutated, "photo.png": seeds.images[".png"]})


def format_case(rng: random.Random, seeds: _Seeds, index: int) -> Case:
    """A mutated file of another LUT format (.3dl, .csp, .spi3d, .spi1d, CLF, a Hald image) given to ``info``
    or ``convert``; PNG mutations for the Hald image, the text mutations of ``.cube`` files for the others."""
    seed_name = rng.choice(sorted(seeds.formats))
    data = seeds.formats[seed_name]
    suffix = Path(seed_name).suffix
    if suffix == ".png":
        mutation = rng.choice(sorted(_IMAGE_MUTATIONS))
        mutated, suffix = _IMAGE_MUTATIONS[mutation](rng, data, suffix)
    else:
        mutation = rng.choice(sorted(_CUBE_MUTATIONS))
        mutated = _CUBE_MUTATIONS[mutation](rng, data)
    name = f"format/{mutation}/{seed_name}#{index}"
    look = f"look{suffix}"
    if rng.random() < 0.5:
        return Case(name, ["info", f"{{dir}}/{look}"], {look: mutated})
    return Case(name, ["convert", f"{{dir}}/{look}", "{dir}/out/look.cube"], {look: mutated})


def _flip_bytes(rng, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _truncate(rng, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def _lines_op(rng, data: bytes) -> bytes:
    lines = data.split(b"\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.choice(["drop", "duplicate", "swap"])
    if op == "drop":
        del lines[i]
    elif op == "duplicate":
        lines.insert(i, lines[j])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def _size_value(rng, data: bytes) -> bytes:
    keyword = b"LUT_3D_SIZE" if b"LUT_3D_SIZE" in data else b"LUT_1D_SIZE"
    lines = data.split(b"\n")
    for k, line in enumerate(lines):
        if line.startswith(keyword):
            lines[k] = keyword + b" " + rng.choice(_SIZE_VALUES).encode()
    return b"\n".join(lines)


def _keyword(rng, data: bytes) -> bytes:
    lines = data.split(b"\n")
    position = rng.randrange(len(lines))
    extra = rng.choice([
        b"DOMAIN_MIN 0 0 0", b"DOMAIN_MAX 5e-324 5e-324 5e-324", b"DOMAIN_MIN -1.7e308 -1.7e308 -1.7e308",
        b"DOMAIN_MAX 1.7e308 1.7e308 1.7e308", b"LUT_3D_INPUT_RANGE 0 1e-320", b"LUT_1D_INPUT_RANGE 1 0",
        b"LUT_IN_VIDEO_RANGE", b"TITLE", b'TITLE "' + b"x" * 5000, b"LUT_3D_SIZE 2", b"LUT_1D_SIZE 65536",
        b"BOGUS_KEYWORD 1", b"DOMAIN_MAX 1 1", b"DOMAIN_MIN nan 0 0", b"LUT_3D_SIZE\t\t17",
    ])
    lines.insert(position, extra)
    return b"\n".join(lines)


def _number(rng, data: bytes) -> bytes:
    lines = data.split(b"\n")
    rows = [k for k, line in enumerate(lines) if line[:1].isdigit() or line[:1] in b"-."]
    if not rows:
        return data + rng.choice(_NUMBER_VALUES).encode()
    k = rng.choice(rows)
    tokens = lines[k].split()
    op = rng.random()
    if op < 0.7 and tokens:
        tokens[rng.randrange(len(tokens))] = rng.choice(_NUMBER_VALUES).encode()
    elif op < 0.85:
        tokens.append(b"0.5")
    else:
        tokens = tokens[:-1]
    lines[k] = b" ".join(tokens)
    return b"\n".join(lines)


def _encoding(rng, data: bytes) -> bytes:
    op = rng.choice(["utf16", "utf16le", "latin1-title", "bom-inside", "cr", "crlf", "nul", "tabs", "utf8-title"])
    if op == "utf16":
        return data.decode("utf-8", "replace").encode("utf-16")
    if op == "utf16le":
        return data.decode("utf-8", "replace").encode("utf-16-le")
    if op == "latin1-title":
        return "TITLE \"Caf\u00e9 \u00e0 l'ancienne\"\n".encode("latin-1") + data
    if op == "utf8-title":
        return "TITLE \"\u8272\u5f69 \U0001f3a8\"\n".encode() + data
    if op == "bom-inside":
        middle = rng.randrange(len(data))
        return data[:middle] + b"\xef\xbb\xbf" + data[middle:]
    if op == "cr":
        return data.replace(b"\n", b"\r")
    if op == "crlf":
        return data.replace(b"\n", b"\r\n")
    if op == "nul":
        middle = rng.randrange(len(data))
        return data[:middle] + b"\x00" + data[middle:]
    return data.replace(b" ", b"\t")


def _long_line(rng, data: bytes) -> bytes:
    filler = rng.choice([b"# " + b"x" * (3 << 20), b"0." + b"5" * (2 << 20) + b" 0 0", b"TITLE " + b"t" * (3 << 20)])
    lines = data.split(b"\n")
    lines.insert(rng.randrange(len(lines)), filler)
    return b"\n".join(lines)


def _garbage(rng, data: bytes) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096)))


def _declared_huge(rng, data: bytes) -> bytes:
    return b"LUT_3D_SIZE 256\n" + b"0 0 0\n" * rng.randrange(0, 2000)


_CUBE_MUTATIONS = {
    "flip": _flip_bytes, "truncate": _truncate, "lines": _lines_op, "size": _size_value, "keyword": _keyword,
    "number": _number, "encoding": _encoding, "long-line": _long_line, "garbage": _garbage,
    "declared-huge": _declared_huge,
}


# --- image cases ------------------------------------------------------------------------------


def image_case(rng: random.Random, seeds: _Seeds, index: int) -> Case:
    """A mutated image given to ``infer`` (with an identity LUT), to ``enhance``, or to ``match`` as a reference."""
    kind = rng.choice(sorted(seeds.images))
    data = seeds.images[kind]
    suffix = ".png" if kind == "16.png" else kind
    mutation = rng.choice(sorted(_IMAGE_MUTATIONS))
    mutated, suffix = _IMAGE_MUTATIONS[mutation](rng, data, suffix)
    name = f"image/{mutation}/{kind}#{index}"
    photo = f"photo{suffix}"
    draw = rng.random()
    if draw < 0.65:
        argv = ["infer", "{dir}/identity.cube", f"{{dir}}/{photo}", "-o", "{dir}/out/graded.png"]
        return Case(name, argv, {"identity.cube": seeds.identity, photo: mutated})
    if draw < 0.85:
        return Case(name, ["enhance", f"{{dir}}/{photo}", "-o", "{dir}/out/graded.png"], {photo: mutated})
    argv = ["match", f"{{dir}}/ref/{photo}", "--image-folder", "{dir}/photos", "-o", "{dir}/out/look.cube"]
    return Case(name, argv, {f"ref/{photo}": mutated, "photos/a.png": seeds.images[".png"]})


def _image_flip(rng, data, suffix):
    return _flip_bytes(rng, data), suffix


def _image_truncate(rng, data, suffix):
    return data[: rng.randrange(len(data))], suffix


def _wrong_extension(rng, data, suffix):
    return data, rng.choice([".png", ".jpg", ".tif", ".webp"])


def _not_an_image(rng, data, suffix):
    return rng.choice([b"", b"hello, world\n", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00"]), suffix


def _png_fields(rng, data, suffix):
    """A PNG whose IHDR fields are changed and whose CRCs are fixed, so only the fields are wrong."""
    png = data if data.startswith(b"\x89PNG") else _png_of(data)
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", png[16:29])
    field_name = rng.choice(["width", "height", "depth", "colour", "interlace", "huge", "zero", "methods"])
    if field_name == "width":
        width = rng.choice([1, width + 1, width * 3, 2**31 - 1])
    elif field_name == "height":
        height = rng.choice([1, height - 1, height * 5, 2**31 - 1])
    elif field_name == "depth":
        depth = rng.choice([0, 1, 3, 7, 32, 255])
    elif field_name == "colour":
        colour = rng.choice([1, 5, 7, 255, 0, 3])
    elif field_name == "interlace":
        interlace = rng.choice([1, 2, 255])
    elif field_name == "huge":
        width, height = 50000, 50000
    elif field_name == "zero":
        width, height = rng.choice([(0, height), (width, 0), (0, 0)])
    else:
        compression, filtering = rng.randrange(1, 256), rng.randrange(256)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, compression, filtering, interlace)
    return png[:8] + _chunk(b"IHDR", ihdr) + png[33:], ".png"


def _png_idat(rng, data, suffix):
    """A PNG whose compressed pixel data is damaged, with the CRC fixed."""
    png = data if data.startswith(b"\x89PNG") else _png_of(data)
    chunks, position = [], 8
    while position + 8 <= len(png):
        length = struct.unpack(">I", png[position : position + 4])[0]
        kind = png[position + 4 : position + 8]
        payload = png[position + 8 : position + 8 + length]
        chunks.append((kind, payload))
        position += 12 + length
    out = b"\x89PNG\r\n\x1a\n"
    for kind, payload in chunks:
        if kind == b"IDAT" and payload:
            payload = _flip_bytes(rng, payload) if rng.random() < 0.7 else payload[: len(payload) // 2]
        out += _chunk(kind, payload)
    return out, ".png"


def _png_of(data: bytes) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


_IMAGE_MUTATIONS = {
    "flip": _image_flip, "truncate": _image_truncate, "wrong-extension": _wrong_extension,
    "not-an-image": _not_an_image, "png-fields": _png_fields, "png-idat": _png_idat,
}


# --- option values and model files --------------------------------------------------------------

_BAD_NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e308", "-1e308", "99999999999999999999", "abc", "", "1e-320", "3.5"]
_OPTIONS = {
    "infer": ["--strength", "--quality"],
    "enhance": ["--quality"],
    "optimize": ["--lut-size", "--steps", "--learning-rate", "--batch-size", "--log-interval", "--image-smoothness",
                 "--image-regularization", "--black-preservation", "--highlight-preservation", "--lut-smoothness",
                 "--seed", "--prompt-weight", "--negative-weight", "--reference-similarity", "--reference-colors",
                 "--pair-weight", "--representation"],
    "match": ["--lut-size", "--lut-smoothness", "--smoothness", "--strength", "--balance", "--max-pixels",
              "--iterations", "--seed", "--image-regularization", "--black-preservation", "--highlight-preservation"],
    "fit": ["--lut-size", "--lut-smoothness", "--smoothness", "--max-pixels", "--holdout", "--interpolation",
            "--image-regularization", "--black-preservation", "--highlight-preservation"],
    "train": ["--epochs", "--batch-size", "--learning-rate", "--max-side", "--n-vertices", "--n-ranks",
              "--generations", "--checkpoint-every", "--monotonicity-factor", "--smooth-factor", "--seed"],
}


def option_case(rng: random.Random, seeds: _Seeds, index: int) -> Case:
    """A command with one hostile option value; the rest of the command line is valid but cheap."""
    command = rng.choice(sorted(_OPTIONS))
    option = rng.choice(_OPTIONS[command])
    value = rng.choice(_BAD_NUMBERS)
    name = f"option/{command}/{option}={value}#{index}"
    files = {"photo.png": seeds.images[".png"], "identity.cube": seeds.identity}
    if command == "infer":
        argv = ["infer", "{dir}/identity.cube", "{dir}/photo.png", "-o", "{dir}/out/graded.png", option, value]
    elif command == "enhance":
        argv = ["enhance", "{dir}/photo.png", "-o", "{dir}/out/graded.png", option, value]
    elif command == "match":
        argv = ["match", "{dir}/photo.png", "--image-folder", "{dir}", "-o", "{dir}/out/look.cube", option, value]
    elif command == "fit":
        files = {"in/a.png": seeds.images[".png"], "tg/a.png": seeds.images[".png"]}
        argv = ["fit", "--input-dir", "{dir}/in", "--target-dir", "{dir}/tg", "-o", "{dir}/out/look.cube",
                option, value]
    elif command == "optimize":
        # A CLIP folder that does not exist: a valid command line ends quickly, in one sentence.
        argv = ["optimize", "--prompt", "warm", "--image-folder", "{dir}", "--clip-model", "local-dir:{dir}/no-clip",
                "--output-path", "{dir}/out/look.cube", "--log-interval", "0", "--device", "cpu", option, value]
    else:
        files = {"in/a.png": seeds.images[".png"]}
        argv = ["train", "--input-dir", "{dir}/in", "--target-dir", "{dir}/missing-targets",
                "-o", "{dir}/out/model.safetensors", "--device", "cpu", option, value]
    return Case(name, argv, files)


def model_case(rng: random.Random, seeds: _Seeds, index: int) -> Case:
    """``enhance --model`` with a damaged weights file."""
    data = seeds.weights
    header_length = struct.unpack("<Q", data[:8])[0]
    op = rng.choice(["flip-header", "flip-data", "truncate", "length", "garbage", "empty"])
    if op == "flip-header":
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[8 + rng.randrange(header_length)] = rng.randrange(32, 127)
        mutated = bytes(out)
    elif op == "flip-data":
        mutated = data[: 8 + header_length] + _flip_bytes(rng, data[8 + header_length :])
    elif op == "truncate":
        mutated = data[: rng.randrange(len(data))]
    elif op == "length":
        mutated = struct.pack("<Q", rng.choice([0, 1, 2**63, 2**40, header_length * 1000])) + data[8:]
    elif op == "garbage":
        mutated = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2048)))
    else:
        mutated = b""
    argv = ["enhance", "{dir}/photo.png", "-o", "{dir}/out/graded.png", "--model", "{dir}/model.safetensors"]
    return Case(f"model/{op}#{index}", argv, {"photo.png": seeds.images[".png"], "model.safetensors": mutated})


_OUTPUTS = {
    "the-input": ("{dir}/photo.png", {}),
    "a-folder": ("{dir}/out", {"out/keep.txt": b"x"}),
    "under-a-file": ("{dir}/notes.txt/graded.png", {"notes.txt": b"x"}),
    "unknown-extension": ("{dir}/out/graded.bmpx", {}),
    "no-extension": ("{dir}/out/graded", {}),
    "long-name": ("{dir}/out/" + "a" * 300 + ".png", {}),
    "link-to-input": ("{dir}/link.png", {}),
    "deep-new-folder": ("{dir}/out/a/b/c/graded.jpg", {}),
}


def output_case(rng: random.Random, seeds: _Seeds, index: int) -> Case:
    """A valid command whose output path is hostile: an input, a folder, a path under a file, ..."""
    kind = rng.choice(sorted(_OUTPUTS))
    target, extra = _OUTPUTS[kind]
    files = {"photo.png": seeds.images[".png"], "identity.cube": seeds.identity, **extra}
    links = {"link.png": "{dir}/photo.png"} if kind == "link-to-input" else {}
    command = rng.choice(["infer", "enhance", "optimize"])
    if command == "infer":
        argv = ["infer", "{dir}/identity.cube", "{dir}/photo.png", "-o", target]
    elif command == "enhance":
        argv = ["enhance", "{dir}/photo.png", "-o", target, *(["--export-cube"] if rng.random() < 0.5 else [])]
    else:
        target = target.replace(".png", ".cube").replace(".jpg", ".cube")
        argv = ["optimize", "--prompt", "warm", "--image-folder", "{dir}", "--clip-model", "local-dir:{dir}/no-clip",
                "--output-path", target, "--device", "cpu"]
    return Case(f"output/{kind}/{command}#{index}", argv, files, links)


def pairs_case(rng: random.Random, seeds: _Seeds, index: int) -> Case:
    """``evaluate`` or ``fit`` over before/after folders where one image is damaged, missing or a special file."""
    good = seeds.images[".png"]
    files = {"in/a.png": good, "in/b.png": good, "tg/a.png": good, "tg/b.png": good}
    links, fifos = {}, []
    op = rng.choice(["damaged", "truncated", "missing-target", "extra-target", "fifo", "dev-zero", "tiny", "empty"])
    if op == "damaged":
        files["tg/b.png"] = _png_fields(rng, good, ".png")[0]
    elif op == "truncated":
        files["in/a.png"] = good[: rng.randrange(len(good))]
    elif op == "missing-target":
        del files["tg/b.png"]
    elif op == "extra-target":
        files["tg/c.png"] = good
    elif op == "fifo":
        del files["tg/b.png"]
        fifos.append("tg/b.png")
    elif op == "dev-zero":
        del files["in/b.png"]
        links["in/b.png"] = "/dev/zero"
    elif op == "tiny":
        tiny = _png16(__import__("numpy").zeros((3, 4, 3), dtype="uint16"))
        files["in/a.png"] = files["tg/a.png"] = tiny
    else:
        files = {"in/x.txt": b"x", "tg/x.txt": b"x"}
    if rng.random() < 0.5:
        argv = ["evaluate", "--input-dir", "{dir}/in", "--target-dir", "{dir}/tg", "--csv", "{dir}/out/scores.csv"]
    else:
        argv = ["fit", "--input-dir", "{dir}/in", "--target-dir", "{dir}/tg", "-o", "{dir}/out/look.cube"]
    return Case(f"pairs/{op}/{argv[0]}#{index}", argv, files, links, fifos)


def special_file_cases(seeds: _Seeds) -> list[Case]:
    """FIFOs, endless devices, link loops, dangling links and folders where files are expected."""
    cases = []
    photo = {"photo.png": seeds.images[".png"]}
    cube = {"identity.cube": seeds.identity}
    specials = {
        "fifo": {"fifos": ["thing"]},
        "dev-zero": {"links": {"thing": "/dev/zero"}},
        "dev-urandom": {"links": {"thing": "/dev/urandom"}},
        "loop": {"links": {"thing": "{dir}/other", "other": "{dir}/thing"}},
        "dangling": {"links": {"thing": "{dir}/nowhere"}},
        "folder": {"files": {"thing/inside.txt": b"x"}},
    }
    for kind, spec in specials.items():
        def make(name, argv, files, suffix):
            links = {k.replace("thing", f"thing{suffix}"): v.replace("thing", f"thing{suffix}")
                     for k, v in spec.get("links", {}).items()}
            fifos = [f.replace("thing", f"thing{suffix}") for f in spec.get("fifos", [])]
            extra = {k.replace("thing", f"thing{suffix}"): v for k, v in spec.get("files", {}).items()}
            argv = [a.replace("THING", f"{{dir}}/thing{suffix}") for a in argv]
            cases.append(Case(f"special/{kind}/{name}", argv, {**files, **extra}, links, fifos))

        make("info", ["info", "THING"], {}, ".cube")
        make("infer-lut", ["infer", "THING", "{dir}/photo.png", "-o", "{dir}/out/graded.png"], photo, ".cube")
        make("infer-image", ["infer", "{dir}/identity.cube", "THING", "-o", "{dir}/out/graded.png"], cube, ".png")
        make("enhance-model", ["enhance", "{dir}/photo.png", "-o", "{dir}/out/graded.png", "--model", "THING"],
             photo, ".safetensors")
        make("optimize-test-image", ["optimize", "--prompt", "warm", "--image-folder", "{dir}",
                                     "--test-image", "THING", "--clip-model", "local-dir:{dir}/no-clip",
                                     "--output-path", "{dir}/out/look.cube", "--device", "cpu"], photo, ".png")
    return cases


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def run_cases(cases: list[Case], workers: int = 2, work_dir: Path | None = None,
              progress=None) -> list[Outcome]:
    """Run ``cases`` in ``workers`` worker processes; return one :class:`Outcome` per case, in order."""
    owned = work_dir is None
    work_dir = Path(tempfile.mkdtemp(prefix="lutgen-fuzz-")) if owned else work_dir
    try:
        shares = [list(range(k, len(cases), workers)) for k in range(workers)]
        pools = [_WorkerPool(cases, share, work_dir / f"worker{k}") for k, share in enumerate(shares)]
        outcomes: dict[int, Outcome] = {}
        while any(pool.busy for pool in pools):
            for pool in pools:
                for index, outcome in pool.poll():
                    outcomes[index] = outcome
                    if progress is not None:
                        progress(outcome)
            time.sleep(0.02)
        return [outcomes[i] for i in range(len(cases))]
    finally:
        if owned:
            shutil.rmtree(work_dir, ignore_errors=True)


class _WorkerPool:
    """One worker process at a time for a share of the cases; restarted after a hang or a crash."""

    def __init__(self, cases: list[Case], share: list[int], folder: Path):
        self.cases, self.todo, self.folder = cases, list(share), folder
        folder.mkdir(parents=True, exist_ok=True)
        self.process = None
        self.results = folder / "results.jsonl"
        self.read_lines = 0
        self.last_news = time.monotonic()
        self._start()

    @property
    def busy(self) -> bool:
        return bool(self.todo)

    def _start(self) -> None:
        if not self.todo:
            return
        (self.folder / "cases.pickle").write_bytes(pickle.dumps([self.cases[i] for i in self.todo]))
        self.results.write_text("")
        self.read_lines = 0
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(self.folder)], env=env, cwd=self.folder,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.folder / "worker.log", "w"),
        )
        self.last_news = time.monotonic()
        self.warm = False

    def _answers(self) -> list[str]:
        """The complete lines of the results file (the worker may be writing the last one right now)."""
        text = self.results.read_text()
        return text[: text.rfind("\n") + 1].splitlines()

    def poll(self) -> list[tuple[int, Outcome]]:
        done = []
        lines = self._answers()
        for line in lines[self.read_lines :]:
            record = json.loads(line)
            self.last_news = time.monotonic()
            if record.get("ready"):
                self.warm = True
                continue
            index = self.todo.pop(0)
            done.append((index, Outcome(**record)))
        self.read_lines = len(lines)
        limit = CASE_TIME_LIMIT_S + (5 if self.warm else 120)
        exited = self.process.poll() is not None
        if self.todo and (exited or time.monotonic() - self.last_news > limit):
            if not exited:
                self.process.kill()
                self.process.wait()
            lines = self._answers()
            if len(lines) > self.read_lines:  # answers that came in meanwhile
                return done + self.poll()
            index = self.todo.pop(0)
            case = self.cases[index]
            reason = "the command hung (no answer within the time limit)" if not exited else (
                f"the worker died (exit {self.process.returncode}) during this case")
            done.append((index, Outcome(case.name, case.argv, None, "", limit, 0.0, [reason])))
            self._start()
        return done


# --- the worker -------------------------------------------------------------------------------


class _CaseTimeout(BaseException):
    """Raised by the alarm that ends a case running past its time limit."""


def _on_alarm(signum, frame):
    raise _CaseTimeout()


def _worker(folder: Path) -> None:
    """Run the cases in ``folder/cases.pickle``, appending one JSON line per case to ``results.jsonl``."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_ADDRESS_LIMIT, WORKER_ADDRESS_LIMIT))
    cases = pickle.loads((folder / "cases.pickle").read_bytes())
    results = open(folder / "results.jsonl", "a", buffering=1)
    from lutgen.cli import main

    _warm_up(folder, main)
    results.write(json.dumps({"ready": True}) + "\n")
    for case in cases:
        outcome = _run_one(case, folder / "case", main)
        results.write(json.dumps(asdict(outcome)) + "\n")


def _warm_up(folder: Path, main) -> None:
    """Run each command once on valid input, so that one-time costs do not count as a case's."""
    seeds = _Seeds()
    warm = [
        Case("warm/info", ["info", "{dir}/identity.cube"], {"identity.cube": seeds.identity}),
        Case("warm/infer", ["infer", "{dir}/identity.cube", "{dir}/photo.png", "-o", "{dir}/out/a.png"],
             {"identity.cube": seeds.identity, "photo.png": seeds.images[".png"]}),
        Case("warm/enhance", ["enhance", "{dir}/photo.png", "-o", "{dir}/out/a.png"], {"photo.png": seeds.images[".png"]}),
        Case("warm/optimize", ["optimize", "--prompt", "x", "--image-folder", "{dir}", "--clip-model",
                               "local-dir:{dir}/none", "--output-path", "{dir}/out/a.cube", "--device", "cpu"],
             {"photo.png": seeds.images[".png"]}),
    ]
    for case in warm:
        _run_one(case, folder / "case", main, limit=300)


def _prepare(case: Case, where: Path) -> list[str]:
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    for name, data in case.files.items():
        (where / name).parent.mkdir(parents=True, exist_ok=True)
        (where / name).write_bytes(data)
    for name, target in case.links.items():
        os.symlink(target.replace("{dir}", str(where)), where / name)
    for name in case.fifos:
        os.mkfifo(where / name)
    return [a.replace("{dir}", str(where)) for a in case.argv]


def _snapshot(where: Path) -> dict[str, str]:
    """The digest of every regular file outside ``out/``: the inputs, which must not change."""
    digests = {}
    for path in where.rglob("*"):
        relative = path.relative_to(where)
        if relative.parts[0] == "out" or path.is_symlink() or not path.is_file():
            continue
        digests[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def _run_one(case: Case, where: Path, main, limit: float = CASE_TIME_LIMIT_S) -> Outcome:
    argv = _prepare(case, where)
    before = _snapshot(where)
    peak_before = _peak_megabytes()
    captured = {1: tempfile.TemporaryFile(), 2: tempfile.TemporaryFile()}
    saved = {fd: os.dup(fd) for fd in captured}
    sys.stdout.flush(), sys.stderr.flush()
    for fd, file in captured.items():
        os.dup2(file.fileno(), fd)
    exit_code, escaped = None, None
    start = time.monotonic()
    previous_alarm = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        sys.argv = ["lutgen", *argv]
        main()
        exit_code = 0
    except SystemExit as stop:
        exit_code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except _CaseTimeout:
        escaped = "timeout"
    except BaseException:  # noqa: BLE001 - anything that escapes main() is what we are looking for
        escaped = traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        seconds = time.monotonic() - start
        sys.stdout.flush(), sys.stderr.flush()
        for fd in captured:
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
    stderr = _read(captured[2])
    problems = _judge(exit_code, stderr, escaped)
    jump = _peak_megabytes() - peak_before
    if jump > MEMORY_JUMP_LIMIT_MB:
        problems.append(f"peak memory rose by {jump:.0f} MB")
    after = _snapshot(where)
    changed = sorted(name for name, digest in before.items() if after.get(name) != digest)
    if changed:
        problems.append(f"inputs changed or removed: {', '.join(changed)}")
    leftovers = sorted(str(p.relative_to(where)) for p in where.rglob("*.part*"))
    if leftovers:
        problems.append(f"half-written files left: {', '.join(leftovers)}")
    return Outcome(case.name, case.argv, exit_code, stderr, round(seconds, 3), round(jump, 1), problems)


def _peak_megabytes() -> float:
    """This process's peak resident size since it started, in MB.

    Linux's VmHWM, where there is one: ``ru_maxrss`` would also count the pages of the parent (the
    test process) that the forked worker held before it started Python.
    """
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _read(file) -> str:
    file.seek(0)
    return file.read().decode("utf-8", "replace")


_PROGRESS_BAR = re.compile(r"^(?:[^|]*?:)?\s*\d+%\|.*\|\s*\d+/\d+ \[")  # a tqdm line: "name:  50%|███  | 1/2 [..."


def _judge(exit_code: int | None, stderr: str, escaped: str | None) -> list[str]:
    """Why a finished command was not clean: see the module docstring."""
    if escaped == "timeout":
        return [f"no answer within {CASE_TIME_LIMIT_S:.0f} s"]
    if escaped is not None:
        return ["an exception escaped: " + escaped.strip().splitlines()[-1]]
    problems = []
    if "Traceback" in stderr:
        problems.append("a traceback was printed")
    lines = [line for line in stderr.replace("\r", "\n").splitlines()
             if line.strip() and not line.startswith("warning: ") and not _PROGRESS_BAR.match(line)]
    if exit_code == 0:
        if lines:
            problems.append(f"exit 0 but stderr has: {lines[0][:200]}")
    elif exit_code == 2:
        if len(lines) != 1 or not lines[0].startswith("error: "):
            problems.append(f"exit 2 needs exactly one 'error:' line, got {len(lines)}: {stderr[:300]!r}")
        elif "out of memory" in lines[0]:
            problems.append("ran out of memory")
    else:
        problems.append(f"exit code {exit_code}")
    return problems


def tally(outcomes: list[Outcome]) -> Counter:
    """How many cases of each family (the case name up to its second ``/``) passed and failed."""
    counts = Counter()
    for outcome in outcomes:
        family = "/".join(outcome.name.split("#")[0].split("/")[:2])
        counts[(family, "clean" if outcome.clean else "FAILED")] += 1
    return counts


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--worker":
    sys.path.insert(0, str(ROOT))
    import fuzzing  # the cases were pickled as fuzzing.Case, not __main__.Case

    fuzzing._worker(Path(sys.argv[2]))
