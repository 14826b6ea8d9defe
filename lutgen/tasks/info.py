"""Describe a LUT file: the work behind ``lutgen info``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lutgen.formats import read_lut
from lutgen.lut import LUT


def _triple(values: np.ndarray) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def describe(lut: LUT) -> list[tuple[str, str]]:
    """Label/value pairs: title, size, domain, shaper, value range, identity.

    Works in place on the table (no copy) and never warns, whatever finite values it holds.
    """
    with np.errstate(all="ignore"):
        return _describe(lut)


def _describe(lut: LUT) -> list[tuple[str, str]]:
    rows = [("title", lut.title or "(none)")]
    if lut.table is not None:
        rows.append(("3D size", f"{lut.size} ({lut.size ** 3} nodes)"))
        rows.append(("3D domain", f"min {_triple(lut.domain[0])}, max {_triple(lut.domain[1])}"))
        flat = lut.table.reshape(-1, 3)
        rows.append(("3D values", f"min {_triple(flat.min(axis=0))}, max {_triple(flat.max(axis=0))}"))
    else:
        rows.append(("3D size", "(none: a 1D LUT)"))
    if lut.shaper is not None:
        s = lut.shaper
        rows.append(("1D size", str(s.size)))
        rows.append(("1D domain", f"min {_triple(s.domain[0])}, max {_triple(s.domain[1])}"))
        rows.append(("1D values", f"min {_triple(s.table.min(axis=0))}, max {_triple(s.table.max(axis=0))}"))
    else:
        rows.append(("1D shaper", "(none)"))
    rows.append(("identity", "yes" if lut.is_identity() else "no"))
    if lut.comments:
        rows.append(("comments", str(len(lut.comments))))
    return rows


def info(path: Path) -> list[tuple[str, str]]:
    """The rows ``lutgen info`` prints for the LUT file at ``path``: its name, then :func:`describe`."""
    return [("file", str(path))] + describe(read_lut(path))


def info_and_health(path: Path) -> tuple[list[tuple[str, str]], dict]:
    """The rows of :func:`info` and the :func:`lutgen.tasks.health.health` report, reading the file once."""
    from lutgen.tasks.health import health

    lut = read_lut(path)
    return [("file", str(path))] + describe(lut), health(lut)
