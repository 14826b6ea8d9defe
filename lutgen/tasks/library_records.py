"""What ``lutgen library`` keeps in its output folder so that a run can stop and go on: no torch at import.

Layout of the output folder ``OUT``:

- ``OUT/NAME.cube``: each finished look (written atomically, once the look is finished);
- ``OUT/library.json``: every finished look of the prompts file, in the file's order, with its
  prompt, seed, settings and CLIP scores, and the names of the looks not finished yet (rewritten
  atomically after each look by the first process, and at the end);
- ``OUT/index.html`` and ``OUT/thumbnails/``: the page to browse the looks
  (:mod:`lutgen.tasks.library_index`);
- ``OUT/.lutgen-library/looks/NAME.json``: the record of each finished look, written by the process
  that made it, right after its ``.cube``; a look counts as finished when its record and its
  ``.cube`` are there and the record's fingerprint (its recipe without the version line) is that of
  the look now asked for, so a look whose prompt or settings changed is made again;
- ``OUT/.lutgen-library/checkpoints/NAME.pt``: the progress of an unfinished look (its LUT, Adam's
  state, the view sampler's and the objective's random state), saved on Ctrl-C or SIGTERM; ``--resume``
  continues from it, in any process of any number of processes;
- ``OUT/.lutgen-library/seed.json``: the library's seed, so that a rerun without ``--seed`` derives the
  same seed for every look.
"""

from __future__ import annotations

import json
from pathlib import Path

from lutgen import __version__
from lutgen.fileio import atomic_path, atomic_write_bytes

STATE_FOLDER = ".lutgen-library"
LIBRARY_JSON = "library.json"


def state_dir(output_dir: Path) -> Path:
    return Path(output_dir) / STATE_FOLDER


def cube_path(output_dir: Path, name: str) -> Path:
    return Path(output_dir) / f"{name}.cube"


def record_path(output_dir: Path, name: str) -> Path:
    return state_dir(output_dir) / "looks" / f"{name}.json"


def checkpoint_path(output_dir: Path, name: str) -> Path:
    return state_dir(output_dir) / "checkpoints" / f"{name}.pt"


def _read_json(path: Path):
    """The JSON in ``path``, or ``None`` when it is missing or not valid (then it is made again)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(path: Path, data) -> None:
    """``data`` as indented JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read_record(output_dir: Path, name: str) -> dict | None:
    record = _read_json(record_path(output_dir, name))
    return record if isinstance(record, dict) else None


def finished_record(output_dir: Path, name: str, fingerprint: list[str]) -> dict | None:
    """The record of the look ``name`` when it is finished with this ``fingerprint`` and its ``.cube`` is there."""
    record = read_record(output_dir, name)
    if record is None or record.get("fingerprint") != list(fingerprint):
        return None
    return record if cube_path(output_dir, name).is_file() else None


def write_record(output_dir: Path, record: dict) -> None:
    write_json(record_path(output_dir, record["name"]), record)


def read_seed(output_dir: Path) -> int | None:
    """The library seed a previous run chose, or ``None``."""
    data = _read_json(state_dir(output_dir) / "seed.json")
    seed = data.get("seed") if isinstance(data, dict) else None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else None


def write_seed(output_dir: Path, seed: int) -> None:
    write_json(state_dir(output_dir) / "seed.json", {"seed": seed})


def library_data(output_dir: Path, prompts_file: Path, seed: int, looks: list[tuple[str, list[str]]]) -> dict:
    """The content of ``library.json``: the finished looks of ``looks`` (``(name, fingerprint)`` in the
    prompts file's order) and the names of those not finished."""
    finished, pending = [], []
    for name, fingerprint in looks:
        record = finished_record(output_dir, name, fingerprint)
        if record is None:
            pending.append(name)
        else:
            finished.append({key: value for key, value in record.items() if key != "fingerprint"})
    return {"lutgen": __version__, "prompts_file": str(prompts_file), "seed": seed, "looks": finished,
            "pending": pending}


def write_library_json(output_dir: Path, data: dict) -> Path:
    path = Path(output_dir) / LIBRARY_JSON
    write_json(path, data)
    return path


def save_checkpoint(output_dir: Path, name: str, fingerprint: list[str], state: dict) -> None:
    """The progress of an unfinished look, atomically (``torch.save``)."""
    import torch

    path = checkpoint_path(output_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        torch.save({"fingerprint": list(fingerprint), "state": state}, temporary)


def load_checkpoint(output_dir: Path, name: str, fingerprint: list[str]) -> dict | None:
    """The saved progress of ``name`` for this ``fingerprint``, or ``None`` (missing, unreadable, other settings)."""
    import torch

    path = checkpoint_path(output_dir, name)
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged checkpoint is not worth failing for: the look starts over
        return None
    if not isinstance(saved, dict) or saved.get("fingerprint") != list(fingerprint):
        return None
    return saved.get("state")


def remove_checkpoint(output_dir: Path, name: str) -> None:
    checkpoint_path(output_dir, name).unlink(missing_ok=True)
