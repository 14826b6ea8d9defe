"""The recipe of a LUT: how it was made, written as the comments of the ``.cube`` file.

Every command that makes a LUT (``optimize``, ``fit``, ``match``) records the same things, so a look
can be reproduced and audited from the file alone:

- ``lutgen VERSION COMMAND``: the tool, its version and the command;
- ``settings: name=value ...``: every setting that changes the result (sizes, weights, seed, model);
- one line per piece of evidence: a prompt with its weight, a reference photo or a before/after
  pair with the SHA-256 of each file (the first 12 hexadecimal digits, see
  :func:`~lutgen.fileio.file_hash`).

Lines are plain text; the ``.cube`` writer prefixes each with ``#``. Floats are written in the
shortest form that reads back as the same number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from lutgen import __version__
from lutgen.fileio import file_hash


def setting_value(value: object) -> str:
    """One setting as text: floats in the shortest form that reads back the same, paths by name."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def header_line(command: str, method: str = "") -> str:
    """``lutgen 0.1.0 fit: METHOD``."""
    return f"lutgen {__version__} {command}" + (f": {method}" if method else "")


def settings_line(settings: Mapping[str, object]) -> str:
    """``settings: name=value name=value ...`` in the order given."""
    return "settings: " + " ".join(f"{name}={setting_value(value)}" for name, value in settings.items())


def file_line(role: str, path: Path) -> str:
    """``ROLE NAME sha256:0123456789ab`` for one evidence file."""
    path = Path(path)
    return f"{role} {path.name} sha256:{file_hash(path)}"


def pair_line(role: str, name: str, before: Path, after: Path) -> str:
    """``ROLE NAME: BEFORE sha256:... -> AFTER sha256:...`` for one before/after pair."""
    before, after = Path(before), Path(after)
    return (f"{role} {name}: {before.name} sha256:{file_hash(before)} -> "
            f"{after.name} sha256:{file_hash(after)}")


def text_line(role: str, text: str, weight: float | None = None) -> str:
    """``ROLE "TEXT"`` with `` weight=W`` when a weight is given (quotes inside the text doubled)."""
    quoted = '"' + text.replace('"', '""') + '"'
    return f"{role} {quoted}" + (f" weight={setting_value(float(weight))}" if weight is not None else "")


def recipe(command: str, method: str, settings: Mapping[str, object], evidence: Iterable[str] = ()) -> tuple[str, ...]:
    """All the recipe lines of one LUT: the header, the settings and the evidence lines."""
    return (header_line(command, method), settings_line(settings), *evidence)
