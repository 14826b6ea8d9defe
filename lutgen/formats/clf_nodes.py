"""The process nodes of a Common LUT Format file: ``LUT1D``, ``LUT3D``, ``Range`` and ``Matrix``.

Each node is read from its XML element (:class:`Element`) into normalised form, the way the
Academy/SMPTE specification (S-2014-006, ST 2136-1) and OpenColorIO define it: a node's values are
in its ``inBitDepth``/``outBitDepth`` code values, whose full scale is 255 (``8i``), 1023 (``10i``),
4095 (``12i``), 65535 (``16i``) or 1 (``16f``, ``32f``); lutgen divides them out, so that every node
maps normalised colours to normalised colours (float64 arrays of shape ``(P, 3)``):

- ``LUT1D`` (``Array dim="M 1"`` or ``"M 3"``): table values divided by the output scale; inputs
  clamped to 0..1 and interpolated linearly between ``M`` even steps.
- ``LUT3D`` (``Array dim="N N N 3"``, blue fastest): values divided by the output scale; inputs
  clamped to 0..1; ``interpolation`` ``trilinear`` (default) or ``tetrahedral``.
- ``Range``: ``minInValue``/``maxInValue`` divided by the input scale, ``minOutValue``/``maxOutValue``
  by the output scale; with all four, ``out = (in - minIn) * (maxOut - minOut) / (maxIn - minIn) + minOut``,
  clamped to the output range unless ``style="noClamp"``; with one pair only, a clamp at that bound
  (its in and out values must then be equal).
- ``Matrix`` (``Array dim="3 3"``, ``"3 4"``, or the older ``"3 3 3"``/``"3 4 3"``): coefficients times
  the input scale over the output scale, offsets (4th column) over the output scale.

Refused, each in one sentence naming the element and its line: ``halfDomain`` and ``rawHalfs``
1D tables, ``IndexMap``, interpolations other than these, and arrays whose size does not match
``dim``. Array sizes are checked against limits before anything is allocated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from lutgen.formats.cube_numbers import fast_rows
from lutgen.lut import LUT, MAX_1D_SIZE

MAX_LUT3D_SIZE = 129
"""The largest LUT3D lattice read (OpenColorIO's limit)."""

BIT_DEPTHS = {"8i": 255.0, "10i": 1023.0, "12i": 4095.0, "16i": 65535.0, "16f": 1.0, "32f": 1.0}
"""Full scale of each CLF bit depth: the code value that stands for 1.0."""
_CHUNK_ROWS = 65536
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


@dataclass
class Element:
    """One XML element: its tag, attributes, text (character data, comments dropped) and children."""

    tag: str
    attrib: dict[str, str]
    line: int
    text: list[str] = field(default_factory=list)
    children: list[Element] = field(default_factory=list)

    def find(self, tag: str) -> Element | None:
        return next((child for child in self.children if child.tag == tag), None)

    @property
    def content(self) -> str:
        return "".join(self.text)


class NodeError(Exception):
    """A problem with one element; the reader adds the file."""

    def __init__(self, element: Element, message: str):
        super().__init__(f"line {element.line}, <{element.tag}>: {message}")


# --- nodes ---------------------------------------------------------------------------------------


@dataclass
class Lut1D:
    """A per-channel 1D table ``(M, 3)`` over 0..1 (normalised)."""

    table: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        positions = np.linspace(0.0, 1.0, self.table.shape[0])
        return np.stack([np.interp(np.clip(x[:, c], 0, 1), positions, self.table[:, c]) for c in range(3)], axis=1)


@dataclass
class Lut3D:
    """A 3D table ``(N, N, N, 3)`` in lutgen's ``[b, g, r, c]`` order over 0..1, with its interpolation."""

    table: np.ndarray
    interpolation: str = "trilinear"

    def apply(self, x: np.ndarray) -> np.ndarray:
        from lutgen.color.cpu import apply_lut_array

        return apply_lut_array(np.clip(x, 0, 1), LUT(self.table), self.interpolation)


@dataclass
class Range:
    """``out = in * scale + offset`` (per the spec's formula), clamped to ``[low, high]`` (either may be None)."""

    scale: float
    offset: float
    low: float | None
    high: float | None
    min_in: float | None = None
    max_in: float | None = None
    min_out: float | None = None
    max_out: float | None = None

    def apply(self, x: np.ndarray) -> np.ndarray:
        y = x * self.scale + self.offset
        if self.low is not None:
            y = np.maximum(y, self.low)
        if self.high is not None:
            y = np.minimum(y, self.high)
        return y

    def unit_domain(self) -> tuple[float, float] | None:
        """``(a, b)`` when this Range maps ``[a, b]`` onto exactly 0..1 (scale and offset), else ``None``."""
        if self.min_in is not None and self.min_out == 0.0 and self.max_out == 1.0:
            return self.min_in, self.max_in
        return None


@dataclass
class Matrix:
    """``out = matrix @ in + offset``: ``matrix (3, 3)``, ``offset (3,)``."""

    matrix: np.ndarray
    offset: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        return x @ self.matrix.T + self.offset

    def unit_domain(self) -> np.ndarray | None:
        """The ``(2, 3)`` domain this diagonal matrix maps onto 0..1, or ``None`` if it is not one."""
        diagonal = np.diag(self.matrix)
        if np.any(self.matrix - np.diag(diagonal)) or not np.all(diagonal > 0):
            return None
        return np.array([-self.offset / diagonal, (1.0 - self.offset) / diagonal])


PER_CHANNEL = (Lut1D, Range)


def per_channel(node) -> bool:
    """Whether ``node`` maps each channel on its own (no crosstalk)."""
    return isinstance(node, PER_CHANNEL) or (isinstance(node, Matrix) and not np.any(node.matrix - np.diag(np.diag(node.matrix))))


# --- reading nodes from elements -----------------------------------------------------------------


def parse_node(element: Element):
    """The node of a ``LUT1D``, ``LUT3D``, ``Range`` or ``Matrix`` element, normalised."""
    scale_in, scale_out = _bit_depth(element, "inBitDepth"), _bit_depth(element, "outBitDepth")
    for child in element.children:
        if child.tag == "IndexMap":
            raise NodeError(child, "IndexMap is not supported by lutgen")
    if element.tag == "LUT1D":
        return _lut1d(element, scale_out)
    if element.tag == "LUT3D":
        return _lut3d(element, scale_out)
    if element.tag == "Range":
        return _range(element, scale_in, scale_out)
    return _matrix(element, scale_in, scale_out)


def _bit_depth(element: Element, name: str) -> float:
    value = element.attrib.get(name)
    if value is None:
        raise NodeError(element, f"the '{name}' attribute is missing")
    if value.strip() not in BIT_DEPTHS:
        raise NodeError(element, f"{name}='{value[:20]}' is not one of {', '.join(BIT_DEPTHS)}")
    return BIT_DEPTHS[value.strip()]


def _array(element: Element, shapes: str, valid) -> tuple[np.ndarray, tuple[int, ...]]:
    """The ``Array`` child's values (float64, flat) and its ``dim``; ``valid(dims)`` checks the sizes first."""
    array = element.find("Array")
    if array is None:
        raise NodeError(element, "the Array element is missing")
    text = array.attrib.get("dim")
    if text is None:
        raise NodeError(array, "the 'dim' attribute is missing")
    parts = text.split()
    if not parts or len(parts) > 4 or not all(p.isdigit() and len(p) <= 7 for p in parts):
        raise NodeError(array, f"dim='{text[:40]}' is not a {shapes} array size")
    dims = tuple(int(p) for p in parts)
    problem = valid(dims)
    if problem:
        raise NodeError(array, problem)
    count = int(np.prod(dims[:-1] if len(dims) == 3 and element.tag == "Matrix" else dims))
    return _numbers(array, count), dims


def _numbers(array: Element, count: int) -> np.ndarray:
    """Exactly ``count`` finite numbers from the element's text (any whitespace separates them)."""
    fast = _fast_numbers(array.content, count)
    if fast is not None:
        return fast
    tokens = array.content.split()
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        values = None
    if values is None or not np.all(np.isfinite(values)):
        for token in tokens:
            if not _NUMBER.match(token) or not np.isfinite(float(token)):
                raise NodeError(array, f"'{token[:40]}' is not a finite number")
    if len(tokens) != count:
        raise NodeError(array, f"the array's dim calls for {count} values but it holds {len(tokens)}")
    return values


def _fast_numbers(text: str, count: int) -> np.ndarray | None:
    """The numbers of ``text`` through the ``.cube`` number parser (exact like ``float()``), three to a
    line, when ``count`` is a multiple of 3 and ``text`` plainly holds ``count`` of them; else ``None``."""
    if count % 3 or not text.isascii():
        return None
    data = np.frombuffer(bytearray(text.encode("ascii")), dtype=np.uint8)
    data[(data == 9) | (data == 10) | (data == 13)] = 32
    solid = data > 32
    starts = np.flatnonzero(solid & ~np.concatenate([[False], solid[:-1]]))
    if starts.size != count:
        return None
    data[starts[3::3] - 1] = 10
    cuts = [*starts[:: 3 * _CHUNK_ROWS].tolist(), data.size]
    del solid, starts
    parts = []
    for begin, end in zip(cuts[:-1], cuts[1:]):  # a few MB of the parser's work arrays at a time
        rows = fast_rows(data[begin:end].tobytes())
        if rows is None:
            return None
        parts.append(rows.reshape(-1))
    return np.concatenate(parts)


def _lut1d(element: Element, scale_out: float) -> Lut1D:
    for name in ("halfDomain", "rawHalfs"):
        if element.attrib.get(name, "false").strip().lower() not in ("false", "0"):
            raise NodeError(element, f"{name} 1D tables are not supported by lutgen")
    interpolation = element.attrib.get("interpolation", "linear").strip()
    if interpolation not in ("linear", "default"):
        raise NodeError(element, f"interpolation='{interpolation[:20]}' is not supported; lutgen reads 'linear'")

    def valid(dims):
        if len(dims) != 2 or dims[1] not in (1, 3):
            return "a LUT1D array has dim='M 1' or dim='M 3'"
        if not 2 <= dims[0] <= MAX_1D_SIZE:
            return f"a LUT1D has from 2 to {MAX_1D_SIZE} entries, not {dims[0]}"
        return None

    values, dims = _array(element, "LUT1D", valid)
    table = values.reshape(dims) / scale_out
    return Lut1D(np.repeat(table, 3, axis=1) if dims[1] == 1 else table)


def _lut3d(element: Element, scale_out: float) -> Lut3D:
    interpolation = element.attrib.get("interpolation", "trilinear").strip()
    if interpolation == "default":
        interpolation = "trilinear"
    if interpolation not in ("trilinear", "tetrahedral"):
        raise NodeError(element, f"interpolation='{interpolation[:20]}' is not 'trilinear' or 'tetrahedral'")

    def valid(dims):
        if len(dims) != 4 or dims[3] != 3:
            return "a LUT3D array has dim='N N N 3'"
        if not dims[0] == dims[1] == dims[2]:
            return f"a LUT3D has the same size on every axis, not {dims[0]}x{dims[1]}x{dims[2]}"
        if not 2 <= dims[0] <= MAX_LUT3D_SIZE:
            return f"a LUT3D's size is from 2 to {MAX_LUT3D_SIZE}, not {dims[0]}"
        return None

    values, dims = _array(element, "LUT3D", valid)
    n = dims[0]
    table = values.reshape(n, n, n, 3).transpose(2, 1, 0, 3) / scale_out  # file [r, g, b] -> [b, g, r]
    return Lut3D(np.ascontiguousarray(table), interpolation)


def _range(element: Element, scale_in: float, scale_out: float) -> Range:
    values = {}
    for name, scale in (("minInValue", scale_in), ("maxInValue", scale_in), ("minOutValue", scale_out),
                        ("maxOutValue", scale_out)):
        child = element.find(name)
        if child is not None:
            try:
                value = float(child.content.strip())
            except ValueError:
                value = float("nan")
            if not np.isfinite(value):
                raise NodeError(child, f"'{child.content.strip()[:40]}' is not a finite number")
            values[name] = value / scale
    style = element.attrib.get("style", "clamp").strip().lower()
    if style not in ("clamp", "noclamp"):
        raise NodeError(element, f"style='{style[:20]}' is not 'Clamp' or 'noClamp'")
    has_min = ("minInValue" in values, "minOutValue" in values)
    has_max = ("maxInValue" in values, "maxOutValue" in values)
    if has_min[0] != has_min[1] or has_max[0] != has_max[1]:
        raise NodeError(element, "minInValue and minOutValue (and maxInValue and maxOutValue) come in pairs")
    if not any(has_min) and not any(has_max):
        raise NodeError(element, "a Range needs minimum or maximum values")
    if all(has_min) and all(has_max):
        lo_in, hi_in, lo_out, hi_out = (values[k] for k in ("minInValue", "maxInValue", "minOutValue", "maxOutValue"))
        if not (hi_in > lo_in and hi_out >= lo_out):
            raise NodeError(element, "a Range's maximum values must exceed its minimum values")
        scale = (hi_out - lo_out) / (hi_in - lo_in)
        clamp = style == "clamp"
        low, high = (lo_out, hi_out) if clamp else (None, None)
        return Range(scale, lo_out - scale * lo_in, low, high, lo_in, hi_in, lo_out, hi_out)
    key = "min" if all(has_min) else "max"
    bound_in, bound_out = values[f"{key}InValue"], values[f"{key}OutValue"]
    if abs(bound_in - bound_out) > 1e-6 * max(1.0, abs(bound_in)):
        raise NodeError(element, f"a one-sided Range needs equal {key}InValue and {key}OutValue (after bit depths)")
    return Range(1.0, 0.0, bound_out if key == "min" else None, bound_out if key == "max" else None)


def _matrix(element: Element, scale_in: float, scale_out: float) -> Matrix:
    def valid(dims):
        if dims[:2] not in ((3, 3), (3, 4)) or len(dims) not in (2, 3) or (len(dims) == 3 and dims[2] != 3):
            return "a Matrix array has dim='3 3' or dim='3 4' (RGB only)"
        return None

    values, dims = _array(element, "Matrix", valid)
    rows = values.reshape(3, dims[1])
    offset = rows[:, 3] / scale_out if dims[1] == 4 else np.zeros(3)
    return Matrix(rows[:, :3] * (scale_in / scale_out), offset)
