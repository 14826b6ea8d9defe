"""The prompts file of ``lutgen library``: one look per line of text, or per row of a CSV with settings.

Two forms, told apart by the extension:

- ``.txt`` (any other extension): one prompt a line; blank lines and lines starting with ``#`` are
  skipped. Each look is named after its prompt (:func:`~lutgen.tasks.optimize_plan.prompt_slug`).
- ``.csv``: a header row, then one look a row. The column ``prompt`` is required; ``name`` is
  optional (the prompt's slug when empty); every other column is a setting of that look, named as
  the ``optimize`` option with or without its dashes (``lut-size`` or ``lut_size``), from
  :data:`LOOK_SETTINGS`. An empty cell takes the library-wide value. ``negative-prompt`` and
  ``prompt-weight`` hold one value (the look's own negative prompt and the weight of its prompt).

Every problem is one sentence naming the file and its line (:class:`~lutgen.errors.OptionError`):
an empty file, an unknown column, a value of the wrong kind, a name that is not a safe file name,
two looks with the same name (compared without case, as macOS and Windows file systems do).
No torch here.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from lutgen.errors import OptionError
from lutgen.fileio import check_regular_file
from lutgen.tasks.optimize_plan import prompt_slug

MAX_LOOKS = 10_000
MAX_PROMPTS_FILE_BYTES = 16 << 20

INT_SETTINGS = ("lut_size", "steps", "seed", "batch_size")
FLOAT_SETTINGS = ("learning_rate", "prompt_weight", "negative_weight", "image_smoothness", "image_regularization",
                  "black_preservation", "lut_smoothness", "highlight_preservation", "reference_similarity",
                  "reference_colors", "pair_weight")
TEXT_SETTINGS = ("negative_prompt", "source_prompt", "representation")
BOOL_SETTINGS = ("monochrome",)
LOOK_SETTINGS = (*INT_SETTINGS, *FLOAT_SETTINGS, *TEXT_SETTINGS, *BOOL_SETTINGS)
"""The settings a CSV row may give a look (as :class:`~lutgen.tasks.optimize_plan.OptimizeOptions` fields).
The CLIP model, device, image folder, reference photos and pairs are library-wide: every look of a
batch shares one CLIP model and one set of decoded images."""
TRUE_WORDS = ("1", "yes", "true", "y")
FALSE_WORDS = ("0", "no", "false", "n")


@dataclass(frozen=True)
class LookSpec:
    """One look of the prompts file.

    Attributes:
        name: the look's name, a safe file name (its LUT is ``NAME.cube``).
        prompt: its prompt (as written; checked later with every other setting).
        line: the line of the file it comes from (1-based), for messages.
        settings: the CSV's settings for this look (``OptimizeOptions`` field -> value).
    """

    name: str
    prompt: str
    line: int
    settings: dict = field(default_factory=dict)

    def where(self, path: Path) -> str:
        """``FILE line N``, for messages."""
        return f"{path} line {self.line}"


def read_prompts(path: str | Path) -> list[LookSpec]:
    """The looks of a prompts file (see the module docstring), in the file's order.

    Raises:
        OptionError: one sentence naming the file (and the line) for every problem.
    """
    path = Path(path)
    check_regular_file(path, "prompts file", OptionError)
    if path.stat().st_size > MAX_PROMPTS_FILE_BYTES:
        raise OptionError(f"the prompts file {path} is larger than {MAX_PROMPTS_FILE_BYTES >> 20} MB")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise OptionError(f"the prompts file {path} is not UTF-8 text (byte {error.start} cannot be read)") from None
    except OSError as error:
        raise OptionError(f"cannot read the prompts file {path}: {error.strerror or error}") from None
    looks = _read_csv(path, text) if path.suffix.lower() == ".csv" else _read_text(text)
    if not looks:
        raise OptionError(f"the prompts file {path} holds no prompt; write one prompt a line (# starts a comment)")
    if len(looks) > MAX_LOOKS:
        raise OptionError(f"the prompts file {path} holds {len(looks)} looks; at most {MAX_LOOKS} are allowed")
    _check_names(path, looks)
    return looks


def _read_text(text: str) -> list[LookSpec]:
    looks = []
    for number, line in enumerate(text.splitlines(), start=1):
        prompt = line.strip()
        if prompt and not prompt.startswith("#"):
            looks.append(LookSpec(prompt_slug(prompt), prompt, number))
    return looks


def _column(header: str) -> str:
    return header.strip().lower().replace("-", "_")


def _read_csv(path: Path, text: str) -> list[LookSpec]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error as error:
        raise OptionError(f"{path} line {reader.line_num}: not valid CSV ({error})") from None
    numbered = [(number, row) for number, row in enumerate(rows, start=1)
                if any(cell.strip() for cell in row) and not row[0].lstrip().startswith("#")]
    if not numbered:
        return []
    header_line, header = numbered[0]
    columns = [_column(cell) for cell in header]
    _check_header(path, header_line, header, columns)
    looks = []
    for number, row in numbered[1:]:
        if len(row) > len(columns):
            raise OptionError(f"{path} line {number}: {len(row)} cells for the {len(columns)} columns of the header")
        cells = {column: value.strip() for column, value in zip(columns, row)}
        prompt = cells.get("prompt", "")
        if not prompt:
            raise OptionError(f"{path} line {number}: the prompt is empty; every row needs a prompt")
        name = cells.get("name", "") or prompt_slug(prompt)
        settings = {column: _value(path, number, column, value) for column, value in cells.items()
                    if column not in ("prompt", "name") and value}
        looks.append(LookSpec(name, prompt, number, settings))
    return looks


def _check_header(path: Path, line: int, header: list[str], columns: list[str]) -> None:
    if "prompt" not in columns:
        raise OptionError(f"{path} line {line}: the header has no prompt column; the first row must name the "
                          f"columns, e.g. name,prompt,steps")
    for raw, column in zip(header, columns):
        if column not in ("prompt", "name", *LOOK_SETTINGS):
            raise OptionError(f"{path} line {line}: the column {raw.strip()!r} is not a setting of a look; use "
                              f"prompt, name or {', '.join(s.replace('_', '-') for s in LOOK_SETTINGS)}")
    repeated = next((c for i, c in enumerate(columns) if c in columns[:i]), None)
    if repeated is not None:
        raise OptionError(f"{path} line {line}: the column {repeated.replace('_', '-')} is named twice")


def _value(path: Path, line: int, column: str, text: str):
    """The cell ``text`` of ``column`` as the setting's type; one sentence when it is not one."""
    option = column.replace("_", "-")
    if column in INT_SETTINGS:
        try:
            return int(text)
        except ValueError:
            raise OptionError(f"{path} line {line}: {option} {text!r} is not a whole number") from None
    if column in FLOAT_SETTINGS:
        try:
            return float(text)
        except ValueError:
            raise OptionError(f"{path} line {line}: {option} {text!r} is not a number") from None
    if column in BOOL_SETTINGS:
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise OptionError(f"{path} line {line}: {option} {text!r} is not yes or no")
    return text


def _check_names(path: Path, looks: list[LookSpec]) -> None:
    """Every name a safe file name, and no two alike (case ignored)."""
    seen: dict[str, LookSpec] = {}
    for look in looks:
        if prompt_slug(look.name) != look.name:
            raise OptionError(f"{look.where(path)}: the name {look.name!r} is not a plain file name; use letters, "
                              f"digits, _ - and ., at most 100 bytes, not starting with - or .")
        key = look.name.casefold()
        if key in seen:
            raise OptionError(f"{look.where(path)}: the name {look.name!r} is already used on line "
                              f"{seen[key].line}; give each look its own name")
        seen[key] = look
