"""The health of a LUT: what ``lutgen info`` reports after the file's description, and the checks ``invert`` needs.

Everything is measured on the LUT's node lattice (:func:`node_lattice`): the table's own nodes when it
has no shaper, else the whole LUT sampled at ``max(N, 33)``^3 nodes of its input domain. Outputs are
taken as 0..1 signals (sRGB-encoded for the colour difference). Work goes one blue plane at a time,
so a 256^3 table needs no second copy of itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lutgen.color.sampling import evaluate, fidelity, resample
from lutgen.lut import LUT, grid

NEAR_IDENTITY = 0.5 / 255
"""A LUT changes no colour by more than this (half an 8-bit code value) to count as near-identity."""

MONOTONIC_TOLERANCE = 1e-6
"""A fall of an output smaller than this between neighbouring nodes is rounding, not a reversal."""

SAMPLING_SIZES = (17, 33, 65)
"""Lattice sizes at which :func:`health` estimates the PSNR lost by resampling."""

SAMPLING_SAMPLES = 1 << 16
"""Colours of the dense sample on which each resampling's PSNR is measured."""

CHANNELS = ("red", "green", "blue")

# sRGB primaries and white (IEC 61966-2-1), from which the RGB -> XYZ matrix is derived.
_PRIMARIES = np.array([[0.64, 0.33], [0.30, 0.60], [0.15, 0.06]])
_WHITE = np.array([0.3127, 0.3290])


def _xyz(xy: np.ndarray) -> np.ndarray:
    return np.array([xy[0] / xy[1], 1.0, (1.0 - xy[0] - xy[1]) / xy[1]])


def _rgb_to_xyz_matrix() -> np.ndarray:
    primaries = np.stack([_xyz(p) for p in _PRIMARIES], axis=1)
    return primaries * np.linalg.solve(primaries, _xyz(_WHITE))[None, :]


RGB_TO_XYZ = _rgb_to_xyz_matrix()
WHITE_XYZ = RGB_TO_XYZ.sum(axis=1)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65 white) of sRGB-encoded colours ``(..., 3)``, float64.

    The sRGB decoding is mirrored for negative values, so out-of-range colours have a Lab value too.
    """
    v = np.asarray(rgb, dtype=np.float64)
    a = np.abs(v)
    linear = np.sign(v) * np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)
    t = (linear @ RGB_TO_XYZ.T) / WHITE_XYZ
    delta = 6.0 / 29.0
    f = np.where(t > delta**3, np.cbrt(t), t / (3 * delta**2) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


class LatticeInputs:
    """The input colours of an ``n``^3 lattice over ``domain``, computed when asked, never all at once.

    Indexed like the ``(N, N, N, 3)`` array of :func:`lutgen.lut.grid`: ``inputs[b]`` is a blue plane
    ``(N, N, 3)``, ``inputs[b, g, r]`` one colour ``(3,)``.
    """

    def __init__(self, n: int, domain: np.ndarray):
        self.n = n
        self.domain = np.asarray(domain, dtype=np.float64)
        self.shape = (n, n, n, 3)
        self._axes = [np.linspace(self.domain[0, c], self.domain[1, c], n) for c in range(3)]

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 3:
            b, g, r = (int(k) % self.n for k in key)
            return np.array([self._axes[0][r], self._axes[1][g], self._axes[2][b]])
        b = int(key) % self.n
        red, green = np.meshgrid(self._axes[0], self._axes[1])  # [g, r]
        return np.stack([red, green, np.full_like(red, self._axes[2][b])], axis=-1)


def node_lattice(lut: LUT) -> tuple[LatticeInputs, np.ndarray]:
    """The ``(inputs, outputs)`` of the lattice the checks run on, ``outputs`` ``(N, N, N, 3)`` ``[b, g, r, c]``.

    A LUT without shaper: its table's nodes (``outputs`` is the table itself, not a copy). Otherwise the
    whole LUT sampled at ``max(N, 33)`` nodes per axis over its input domain.
    """
    if lut.shaper is None and lut.table is not None:
        return LatticeInputs(lut.size, lut.domain), lut.table
    n = max(lut.size or 0, 33)
    return LatticeInputs(n, lut.input_domain), evaluate(lut, grid(n, lut.input_domain))


def _node_text(inputs: np.ndarray, index) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in inputs[tuple(index)]) + ")"


def neutral_reversal(inputs: np.ndarray, outputs: np.ndarray, tolerance: float = MONOTONIC_TOLERANCE) -> str | None:
    """Where an output channel falls by more than ``tolerance`` along the grey diagonal, or ``None``."""
    n = outputs.shape[0]
    diagonal = outputs[np.arange(n), np.arange(n), np.arange(n)]  # (N, 3)
    falls = np.diff(diagonal, axis=0) < -tolerance
    if not falls.any():
        return None
    i, c = np.argwhere(falls)[0]
    return (f"its {CHANNELS[c]} output falls from {diagonal[i, c]:.6g} to {diagonal[i + 1, c]:.6g} "
            f"between the greys {_node_text(inputs, (i, i, i))} and {_node_text(inputs, (i + 1,) * 3)}")


def channel_reversal(inputs: np.ndarray, outputs: np.ndarray, tolerance: float = MONOTONIC_TOLERANCE) -> str | None:
    """Where an output channel falls by more than ``tolerance`` as its own input rises (red along red, ...)."""
    for c in range(3):
        axis = 2 - c  # red varies along the last lattice axis, blue along the first
        falls = np.diff(outputs[..., c], axis=axis) < -tolerance
        if falls.any():
            node = np.argwhere(falls)[0]
            after = node.copy()
            after[axis] += 1
            return (f"its {CHANNELS[c]} output falls from {outputs[tuple(node) + (c,)]:.6g} to "
                    f"{outputs[tuple(after) + (c,)]:.6g} between {_node_text(inputs, node)} and "
                    f"{_node_text(inputs, after)}")
    return None


def cell_determinants(inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """The Jacobian determinant of the trilinear map at the centre of each cell, ``(N-1, N-1, N-1)``.

    Derivatives are in output units per input unit, so the identity gives 1 everywhere; near 0 means
    the cell collapses colours together, negative means it folds them over.
    """
    n = outputs.shape[0]
    step = (inputs[-1, -1, -1] - inputs[0, 0, 0]) / (n - 1)  # r, g, b
    det = np.empty((n - 1,) * 3)
    for b in range(n - 1):
        slab = outputs[b:b + 2]  # (2, N, N, 3)
        dr = (slab[:, :, 1:] - slab[:, :, :-1]).mean(axis=0)
        dr = 0.5 * (dr[:-1] + dr[1:]) / step[0]
        dg = (slab[:, 1:] - slab[:, :-1]).mean(axis=0)
        dg = 0.5 * (dg[:, :-1] + dg[:, 1:]) / step[1]
        db = slab[1] - slab[0]
        db = 0.25 * (db[:-1, :-1] + db[1:, :-1] + db[:-1, 1:] + db[1:, 1:]) / step[2]
        det[b] = np.linalg.det(np.stack([dr, dg, db], axis=-1))
    return det


@dataclass
class _Extremes:
    """Running maxima over the blue planes of a lattice: the value and the node where it is."""

    value: float = 0.0
    at: tuple = (0, 0, 0)

    def update(self, plane_values: np.ndarray, b: int, offset=(0, 0)) -> None:
        if plane_values.size == 0:
            return
        plane_values = np.where(np.isnan(plane_values), np.inf, plane_values)  # overflowed: as bad as can be
        k = np.unravel_index(int(np.argmax(plane_values)), plane_values.shape)
        if plane_values[k] > self.value:
            self.value = float(plane_values[k])
            self.at = (b, int(k[0]) + offset[0], int(k[1]) + offset[1])


def _roughness_in_plane(outputs: np.ndarray, b: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Largest |second difference| at each node of blue plane ``b`` (along r, g and, inside, b) ``(N-2, N-2)``."""
    plane = outputs[b]
    rough = np.zeros(tuple(max(s - 2, 0) for s in plane.shape[:2]))
    along_r = np.abs(plane[1:-1, 2:] - 2 * plane[1:-1, 1:-1] + plane[1:-1, :-2]).max(axis=-1)
    along_g = np.abs(plane[2:, 1:-1] - 2 * plane[1:-1, 1:-1] + plane[:-2, 1:-1]).max(axis=-1)
    rough = np.maximum(np.maximum(rough, along_r), along_g)
    if 0 < b < outputs.shape[0] - 1:
        along_b = np.abs(outputs[b + 1] - 2 * plane + outputs[b - 1]).max(axis=-1)[1:-1, 1:-1]
        rough = np.maximum(rough, along_b)
    return rough, (1, 1)


def health(lut: LUT) -> dict:
    """The health report of ``lut`` as a JSON-ready dict (see :func:`health_rows` for the printed form).

    Keys: ``monotonic_neutral`` and ``monotonic_channels`` (``{"ok", "where"}``), ``clipped_share``
    (nodes with an output channel at or beyond 0 or 1 where that channel's input is inside),
    ``out_of_range`` (values below 0 or above 1: count, share, min, max), ``max_delta_e`` (CIE76 from
    the identity, sRGB to Lab, and the input colour where it is), ``roughness`` (largest second
    difference between neighbouring nodes along any axis, and where), ``near_identity`` (largest
    change against :data:`NEAR_IDENTITY`), ``sampling_psnr_db`` (PSNR of the LUT resampled at 17, 33
    and 65 nodes against itself; ``None`` when lossless). Non-finite numbers (from huge values) are ``None``.
    """
    with np.errstate(all="ignore"):
        return jsonable(_health(lut))


def _health(lut: LUT) -> dict:
    inputs, outputs = node_lattice(lut)
    n = outputs.shape[0]
    delta_e, rough, change = _Extremes(), _Extremes(), _Extremes()
    clipped = below = above = 0
    low, high = np.inf, -np.inf
    for b in range(n):
        x, y = inputs[b], outputs[b]
        inside = (x > 0) & (x < 1)
        clipped += int(np.any(inside & ((y <= 0) | (y >= 1)), axis=-1).sum())
        below += int((y < 0).sum())
        above += int((y > 1).sum())
        low, high = min(low, float(y.min())), max(high, float(y.max()))
        delta_e.update(np.linalg.norm(srgb_to_lab(y) - srgb_to_lab(x), axis=-1), b)
        change.update(np.abs(y - x).max(axis=-1), b)
        plane_rough, offset = _roughness_in_plane(outputs, b)
        rough.update(plane_rough, b, offset)
    neutral = neutral_reversal(inputs, outputs)
    channels = channel_reversal(inputs, outputs)
    values = outputs.size
    return {
        "monotonic_neutral": {"ok": neutral is None, "where": neutral},
        "monotonic_channels": {"ok": channels is None, "where": channels},
        "clipped_share": clipped / n**3,
        "out_of_range": {"count": below + above, "share": (below + above) / values, "min": low, "max": high},
        "max_delta_e": {"value": delta_e.value, "at": inputs[delta_e.at].tolist()},
        "roughness": {"value": rough.value, "at": inputs[rough.at].tolist()},
        "near_identity": {"ok": change.value < NEAR_IDENTITY, "max_change": change.value,
                          "threshold": NEAR_IDENTITY},
        "sampling_psnr_db": {str(size): _finite_or_none(fidelity(lut, resample(lut, size), SAMPLING_SAMPLES))
                             for size in SAMPLING_SIZES},
    }


def _finite_or_none(value: float) -> float | str | None:
    """A PSNR for JSON: ``None`` when lossless (infinite), ``"undefined"`` when values overflow (NaN)."""
    if np.isnan(value) or value == -np.inf:
        return "undefined"
    return None if np.isinf(value) else value


def jsonable(value):
    """``value`` (a report) with every non-finite float replaced by ``None``, so strict JSON holds it."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _num(value, spec: str, scale: float = 1.0) -> str:
    """``value * scale`` formatted with ``spec``, or ``n/a`` where it overflowed (``None``)."""
    return "n/a" if value is None else format(value * scale, spec)


def _colour(values) -> str:
    return "(" + ", ".join(_num(v, ".4g") for v in values) + ")"


def _yes_or_where(check: dict) -> str:
    return "yes" if check["ok"] else f"no: {check['where']}"


def _psnr_text(value) -> str:
    if value is None:
        return "lossless"
    return value if isinstance(value, str) else f"{value:.1f} dB"


def health_rows(report: dict) -> list[tuple[str, str]]:
    """The :func:`health` report as label/value pairs for ``lutgen info``."""
    out = report["out_of_range"]
    psnr = ", ".join(f"{size}: {_psnr_text(v)}" for size, v in report["sampling_psnr_db"].items())
    near, delta_e, rough = report["near_identity"], report["max_delta_e"], report["roughness"]
    return [
        ("monotonic (grey axis)", _yes_or_where(report["monotonic_neutral"])),
        ("monotonic (channels)", _yes_or_where(report["monotonic_channels"])),
        ("clipped nodes", f"{_num(report['clipped_share'], '.2f', 100)}%"),
        ("out of 0..1", (f"{out['count']} values ({_num(out['share'], '.2f', 100)}%), "
                         f"min {_num(out['min'], '.6g')}, max {_num(out['max'], '.6g')}")),
        ("largest deltaE", f"{_num(delta_e['value'], '.2f')} (CIE76) at input {_colour(delta_e['at'])}"),
        ("roughness", f"{_num(rough['value'], '.4g')} (largest second difference) at input {_colour(rough['at'])}"),
        ("near identity", (f"{'yes' if near['ok'] else 'no'} (largest change "
                           f"{_num(near['max_change'], '.3g', 255)} 8-bit code values)")),
        ("resampling PSNR", psnr),
    ]
