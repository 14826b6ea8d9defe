"""Academy/SMPTE Common LUT Format (``.clf``, XML) files, read and written.

A file is a ``ProcessList`` of process nodes applied in order; lutgen reads ``LUT1D``, ``LUT3D``,
``Range`` and ``Matrix`` nodes (:mod:`lutgen.formats.clf_nodes` says how each is normalised, as the
specification and OpenColorIO define it) and refuses any other node, naming it. ``Description``,
``InputDescriptor``, ``OutputDescriptor`` and ``Info`` are kept as comments or skipped.

Which chains are held exactly (the same numbers, no resampling):

- ``[domain] [LUT1D] LUT3D`` and ``[domain] LUT1D``, where ``domain`` is a ``Range`` whose outputs
  are 0..1 (or a diagonal ``Matrix`` with offsets mapping onto 0..1): the ``LUT1D`` becomes the
  :class:`~lutgen.lut.Shaper` (over the domain), the ``LUT3D`` the table (with no ``LUT1D``, the
  domain is the table's).

Anything else is evaluated (float64) and sampled over 0..1 (inputs outside are clamped):

- other per-channel nodes before a ``LUT3D`` become a shaper of :data:`SHAPER_SAMPLES` even steps;
- nodes after a ``LUT3D`` are sampled, together with it, at its nodes of a lattice of
  ``max(N, BAKE_SIZE)`` (:data:`BAKE_SIZE` is 65);
- a chain without a ``LUT3D``: a 1D-only LUT of :data:`SHAPER_SAMPLES` steps when every node is
  per-channel, else a 65^3 table.

A ``LUT3D``'s ``interpolation="tetrahedral"`` is kept as a comment ``interpolation: tetrahedral``
(the LUT type has no field for it) and used when the chain is sampled.

Safety: the file must be at most :data:`MAX_FILE_BYTES`; a ``DOCTYPE`` or entity declaration is
refused (no entity expansion, no external resources); at most :data:`MAX_ELEMENTS` elements nested
at most :data:`MAX_DEPTH` deep; array sizes are checked before they are allocated. Every error is
one sentence naming the file, the line and the element.

Writing: a ``ProcessList`` (``compCLFversion="3.0"``) with, in order, a ``Range`` (same domain on all
channels) or a diagonal ``Matrix`` (per channel) when the input domain is not 0..1, a ``LUT1D`` for the
shaper (its values rescaled from the table's domain onto 0..1), and a ``LUT3D``; all ``32f`` in and
out (no integer scaling), values with ``decimals`` digits after the point (6: within 5e-7).
"""

from __future__ import annotations

import xml.parsers.expat
from pathlib import Path

import numpy as np

from lutgen.errors import LutgenError
from lutgen.formats.clf_nodes import Element, Lut1D, Lut3D, Matrix, NodeError, Range, parse_node, per_channel
from lutgen.formats.cube_lines import megabytes, open_regular_file
from lutgen.formats.cube_write import format_rows
from lutgen.formats.spi import check_decimals, check_finite, write_text
from lutgen.lut import LUT, UNIT_DOMAIN, Shaper, grid

MAX_FILE_BYTES = 128 * 2**20
"""The largest ``.clf`` file read (a 129^3 LUT3D with 9-digit values takes about 80 MB)."""
MAX_ELEMENTS = 100_000
MAX_DEPTH = 64
BAKE_SIZE = 65
"""The lattice size a chain that is not held exactly is sampled at (at least the LUT3D's own)."""
SHAPER_SAMPLES = 65536
"""The even steps a per-channel chain that is not held exactly is sampled at."""
NODES = ("LUT1D", "LUT3D", "Range", "Matrix")
SKIPPED = ("Description", "InputDescriptor", "OutputDescriptor", "Info", "Id")
KNOWN_OTHERS = ("ASC_CDL", "Log", "Exponent", "ExposureContrast", "FixedFunction", "GradingPrimary",
                "GradingRGBCurve", "GradingTone", "InverseLUT1D", "InverseLUT3D", "Gamma", "CDL", "Reference")
INTERPOLATION_COMMENT = "interpolation: "


def _error(path: Path, message: str) -> LutgenError:
    return LutgenError(f"{path}, {message}")


# --- reading -------------------------------------------------------------------------------------


def read(path: Path) -> LUT:
    """The LUT of a ``.clf`` file (see the module docstring for which chains are exact)."""
    path = Path(path)
    root = parse_xml(path, _read_bytes(path))
    if root.tag != "ProcessList":
        raise _error(path, f"line {root.line}, <{root.tag}>: a CLF file's root element is ProcessList")
    nodes, comments = [], []
    try:
        for child in root.children:
            if child.tag in NODES:
                nodes.append(parse_node(child))
            elif child.tag == "Description":
                comments.append(" ".join(child.content.split()))
            elif child.tag not in SKIPPED:
                known = "is not supported by lutgen" if child.tag in KNOWN_OTHERS else "is not a CLF process node"
                raise NodeError(child, f"{child.tag} {known} (lutgen reads {', '.join(NODES)})")
    except NodeError as error:
        raise _error(path, str(error)) from None
    if not nodes:
        raise _error(path, f"line {root.line}, <ProcessList>: the list holds no process node")
    name = root.attrib.get("name")
    try:
        return chain_lut(nodes, name.strip() if name else None, tuple(comments))
    except ValueError as error:
        raise _error(path, f"line {root.line}, <ProcessList>: {error}") from None


def _read_bytes(path: Path) -> bytes:
    stream, size = open_regular_file(path, ".clf file")
    with stream:
        if size > MAX_FILE_BYTES:
            raise _error(path, f"the file has {megabytes(size)}, more than the {megabytes(MAX_FILE_BYTES)} "
                         "lutgen reads from a .clf file")
        try:
            data = stream.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            raise LutgenError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _error(path, f"the file grew beyond {megabytes(MAX_FILE_BYTES)} while being read")
    return data


def parse_xml(path: Path, data: bytes) -> Element:
    """The element tree of ``data`` (expat, no DTD, no entities), each element with its line."""
    parser = xml.parsers.expat.ParserCreate()
    parser.buffer_text = True  # one text piece per run of character data, not one per line
    parser.buffer_size = 2**20
    stack: list[Element] = []
    roots: list[Element] = []
    count = [0]

    def refuse(what: str):
        def handler(*_):
            raise _error(path, f"line {parser.CurrentLineNumber}: {what} is refused in a .clf file "
                         "(no entities or document types)")
        return handler

    def start(tag, attrib):
        count[0] += 1
        if count[0] > MAX_ELEMENTS or len(stack) >= MAX_DEPTH:
            raise _error(path, f"line {parser.CurrentLineNumber}, <{tag}>: the file has more elements "
                         f"(or deeper nesting) than lutgen reads ({MAX_ELEMENTS}, {MAX_DEPTH} deep)")
        element = Element(tag, attrib, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(element)
        stack.append(element)

    def end(_tag):
        stack.pop()

    def text(data):
        if stack:
            stack[-1].text.append(data)

    parser.StartDoctypeDeclHandler = refuse("a DOCTYPE declaration")
    parser.EntityDeclHandler = refuse("an ENTITY declaration")
    parser.ExternalEntityRefHandler = refuse("an external entity")
    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, text
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as error:
        where = f"line {error.lineno}"
        inside = f", inside <{stack[-1].tag}> of line {stack[-1].line}" if stack else ""
        reason = xml.parsers.expat.ErrorString(error.code)
        raise _error(path, f"{where}{inside}: the file is not well-formed XML ({reason})") from None
    if not roots:
        raise _error(path, "line 1: the file holds no XML element")
    return roots[0]


# --- the chain as a LUT --------------------------------------------------------------------------


def chain_lut(nodes: list, title: str | None = None, comments: tuple[str, ...] = ()) -> LUT:
    """The LUT of a chain of nodes: exact for the chains named in the module docstring, else sampled."""
    cubes = [i for i, node in enumerate(nodes) if isinstance(node, Lut3D)]
    extra = tuple(f"{INTERPOLATION_COMMENT}{nodes[i].interpolation}" for i in cubes[:1]
                  if nodes[i].interpolation != "trilinear")
    meta = {"title": title, "comments": comments + extra}
    if not cubes:
        if not all(per_channel(node) for node in nodes):
            return LUT(_evaluate(nodes, grid(BAKE_SIZE)), **meta)
        shaper = _exact_shaper(nodes) or _sampled_shaper(nodes)
        return LUT(None, shaper=shaper, **meta)
    first = cubes[0]
    prefix, cube, suffix = nodes[:first], nodes[first], nodes[first + 1 :]
    if not all(per_channel(node) for node in prefix):
        size = max(BAKE_SIZE, cube.table.shape[0])
        return LUT(_evaluate(nodes, grid(size)), **meta)
    table = cube.table
    if suffix:
        size = max(BAKE_SIZE, cube.table.shape[0])
        table = _evaluate([cube, *suffix], grid(size))
    if not prefix:
        return LUT(table, **meta)
    domain = _domain_of(prefix[0]) if len(prefix) == 1 else None
    if domain is not None:
        return LUT(table, domain, **meta)
    return LUT(table, shaper=_exact_shaper(prefix) or _sampled_shaper(prefix), **meta)


def _domain_of(node) -> np.ndarray | None:
    """The ``(2, 3)`` input domain a Range or diagonal Matrix maps onto 0..1, or ``None``."""
    if isinstance(node, Range):
        pair = node.unit_domain()
        return None if pair is None else np.array([[pair[0]] * 3, [pair[1]] * 3])
    if isinstance(node, Matrix):
        domain = node.unit_domain()
        if domain is not None and np.all(domain[1] > domain[0]):
            return domain
    return None


def _exact_shaper(nodes: list) -> Shaper | None:
    """``[domain] LUT1D`` as a shaper over the domain (or 0..1), or ``None`` for any other chain."""
    if not nodes or not isinstance(nodes[-1], Lut1D) or len(nodes) > 2:
        return None
    domain = UNIT_DOMAIN if len(nodes) == 1 else _domain_of(nodes[0])
    return None if domain is None else Shaper(nodes[-1].table, domain)


def _sampled_shaper(nodes: list) -> Shaper:
    """A per-channel chain sampled at :data:`SHAPER_SAMPLES` even steps over 0..1."""
    steps = np.repeat(np.linspace(0.0, 1.0, SHAPER_SAMPLES)[:, None], 3, axis=1)
    return Shaper(_evaluate(nodes, steps))


def _evaluate(nodes: list, x: np.ndarray) -> np.ndarray:
    """The chain applied to colours ``x`` of shape ``(..., 3)`` (float64), same shape."""
    shape = x.shape
    y = x.reshape(-1, 3)
    for node in nodes:
        y = node.apply(y)
    if not np.all(np.isfinite(y)):
        raise ValueError("the chain of process nodes gives values that are not finite numbers")
    return y.reshape(shape)


# --- writing -------------------------------------------------------------------------------------


def write(lut: LUT, path: Path, *, decimals: int = 6, interpolation: str | None = None) -> None:
    """Write ``lut`` as a CLF ``ProcessList`` (see the module docstring), atomically.

    ``interpolation`` of the ``LUT3D``: ``"trilinear"`` or ``"tetrahedral"``; by default the one a
    comment ``interpolation: ...`` of the LUT names, else trilinear.
    """
    path = Path(path)
    decimals = check_decimals(decimals)
    interpolation = interpolation or _interpolation_of(lut)
    if interpolation not in ("trilinear", "tetrahedral"):
        raise LutgenError(f"interpolation must be trilinear or tetrahedral, not {interpolation!r}")
    name = f' name="{_escape(lut.title)}"' if lut.title else ""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<ProcessList id="lutgen" compCLFversion="3.0" xmlns="urn:AMPAS:CLF:v3.0"{name}>']
    parts += [f"    <Description>{_escape(c)}</Description>" for c in lut.comments
              if not c.startswith(INTERPOLATION_COMMENT)]
    table_domain = lut.domain if lut.table is not None else UNIT_DOMAIN
    parts += _domain_node(lut.input_domain, decimals)
    if lut.shaper is not None:
        values = (lut.shaper.table - table_domain[0]) / (table_domain[1] - table_domain[0])
        parts += _array_node("LUT1D", 'interpolation="linear"', f"{lut.shaper.size} 3", check_finite(values, path),
                             decimals)
    if lut.table is not None:
        n = lut.size
        values = check_finite(lut.table.transpose(2, 1, 0, 3).reshape(-1, 3), path)  # blue fastest
        parts += _array_node("LUT3D", f'interpolation="{interpolation}"', f"{n} {n} {n} 3", values, decimals)
    parts.append("</ProcessList>")
    write_text(path, "\n".join(parts) + "\n")


def _interpolation_of(lut: LUT) -> str:
    named = [c[len(INTERPOLATION_COMMENT):].strip() for c in lut.comments if c.startswith(INTERPOLATION_COMMENT)]
    return named[0] if named else "trilinear"


def _domain_node(domain: np.ndarray, decimals: int) -> list[str]:
    """A Range (one domain for all channels) or diagonal Matrix mapping ``domain`` onto 0..1; none for 0..1."""
    if np.array_equal(domain, UNIT_DOMAIN):
        return []
    depths = 'inBitDepth="32f" outBitDepth="32f"'
    if np.all(domain == domain[:, :1]):
        low, high = float(domain[0, 0]), float(domain[1, 0])
        return [f'    <Range {depths} style="noClamp">',
                f"        <minInValue>{low!r}</minInValue>", f"        <maxInValue>{high!r}</maxInValue>",
                "        <minOutValue>0</minOutValue>", "        <maxOutValue>1</maxOutValue>", "    </Range>"]
    scale = 1.0 / (domain[1] - domain[0])
    rows = [[scale[c] if j == c else 0.0 for j in range(3)] + [-domain[0, c] * scale[c]] for c in range(3)]
    body = ["            " + " ".join(repr(float(v)) for v in row) for row in rows]
    return [f"    <Matrix {depths}>", '        <Array dim="3 4">', *body, "        </Array>", "    </Matrix>"]


def _array_node(tag: str, attributes: str, dim: str, values: np.ndarray, decimals: int) -> list[str]:
    rows = format_rows(values, decimals).decode("ascii")
    return [f'    <{tag} inBitDepth="32f" outBitDepth="32f" {attributes}>', f'        <Array dim="{dim}">',
            rows.rstrip("\n"), "        </Array>", f"    </{tag}>"]


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("\n", " "))
