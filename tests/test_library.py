"""`lutgen library`: prompts files, three looks with library.json and index.html, looks together against a
look alone, an interrupted run resumed, two gloo processes against one, one-sentence errors."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cli_runner import ROOT, one_sentence_error, run_lutgen
from lutgen.errors import OptionError
from lutgen.formats import read_lut
from lutgen.lut import grid
from lutgen.tasks.library import LibraryInterrupted, LibraryOptions, library, look_seed, validate_library
from lutgen.tasks.library_prompts import read_prompts
from lutgen.tasks.optimize_plan import OptimizeOptions


def _defaults(tiny_clip_model, training_folder, **changes) -> OptimizeOptions:
    settings = dict(image_folder=training_folder, lut_size=5, steps=3, batch_size=2, seed=5, device="cpu",
                    clip_model=tiny_clip_model, clip_pretrained="openai", clip_precision="fp32")
    return OptimizeOptions(**{**settings, **changes})


def _quiet(text: str) -> None:
    pass


class _Page(HTMLParser):
    """The links, images and text of index.html."""

    def __init__(self):
        super().__init__()
        self.links, self.images, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.links.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs["src"])
        assert not (attrs.get("src") or attrs.get("href") or "").startswith(("http:", "https:", "//"))

    def handle_data(self, data):
        self.text.append(data)


# ------------------------------------------------------------------------------------------------
# The prompts file
# ------------------------------------------------------------------------------------------------

def test_prompts_files_text_and_csv(tmp_path):
    text = tmp_path / "looks.txt"
    text.write_text("# my pack\nwarm golden sunset\n\n  moody teal   night \n", encoding="utf-8")
    looks = read_prompts(text)
    assert [(look.name, look.prompt, look.line) for look in looks] == [
        ("warm_golden_sunset", "warm golden sunset", 2), ("moody_teal_night", "moody teal   night", 4)]
    table = tmp_path / "looks.csv"
    table.write_text('name,prompt,lut-size,Steps,learning_rate,monochrome,negative_prompt\n'
                     'teal,"teal, orange",9,40,0.01,no,green tint\n,faded film,,,,yes,\n', encoding="utf-8")
    teal, faded = read_prompts(table)
    assert (teal.name, teal.prompt, teal.line) == ("teal", "teal, orange", 2)
    assert teal.settings == {"lut_size": 9, "steps": 40, "learning_rate": 0.01, "monochrome": False,
                             "negative_prompt": "green tint"}
    assert (faded.name, faded.settings) == ("faded_film", {"monochrome": True})


@pytest.mark.parametrize("name, content, fragments", [
    ("empty.txt", "# nothing but comments\n\n", ["empty.txt holds no prompt"]),
    ("twice.txt", "warm\ncold\nwarm\n", ["twice.txt line 3", "'warm' is already used on line 1"]),
    ("case.csv", "name,prompt\nTeal,a\nteal,b\n", ["case.csv line 3", "'teal' is already used on line 2"]),
    ("value.csv", "prompt,steps\nwarm,many\n", ["value.csv line 2", "steps 'many' is not a whole number"]),
    ("column.csv", "prompt,colour\nwarm,red\n", ["column.csv line 1", "'colour' is not a setting"]),
    ("cells.csv", "prompt\nwarm,9\n", ["cells.csv line 2", "2 cells for the 1 columns"]),
    ("unnamed.csv", "name,prompt\n../x,warm\n", ["unnamed.csv line 2", "'../x' is not a plain file name"]),
    ("noprompt.csv", "name,prompt\nx,\n", ["noprompt.csv line 2", "the prompt is empty"]),
])
def test_bad_prompt_files_are_one_sentence(tmp_path, name, content, fragments):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(OptionError) as raised:
        read_prompts(path)
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_a_bad_setting_of_a_look_names_its_line(tmp_path, training_folder):
    path = tmp_path / "looks.csv"
    path.write_text("prompt,lut_size\nwarm,9\ncold,1\n", encoding="utf-8")
    options = LibraryOptions(path, tmp_path / "out", OptimizeOptions(image_folder=training_folder, seed=1))
    with pytest.raises(OptionError, match=r"looks.csv line 3: --lut-size must be between 2 and 128, not 1"):
        validate_library(options)


def test_the_command_line_refuses_bad_files_before_importing_torch(tmp_path):
    """Exit 2 and one sentence, with neither torch nor open_clip imported."""
    path = tmp_path / "dupes.txt"
    path.write_text("warm\nwarm\n", encoding="utf-8")
    probe = ("import sys; sys.argv = ['lutgen', 'library', *sys.argv[1:]]\nfrom lutgen.cli import main\n"
             "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
             "print('exit', code, 'heavy', sorted(m for m in ('torch', 'open_clip') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", probe, str(path), "-o", str(tmp_path / "out")], cwd=ROOT,
                            capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.stdout.strip() == "exit 2 heavy []", result.stderr
    assert result.stderr.strip() == f"error: {path} line 2: the name 'warm' is already used on line 1; give each " \
                                    "look its own name"
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    one_sentence_error(run_lutgen("library", empty, "-o", tmp_path / "out"), "empty.csv holds no prompt")


# ------------------------------------------------------------------------------------------------
# Three looks, the library's files, a rerun, looks together against a look alone
# ------------------------------------------------------------------------------------------------

def _tables(folder: Path, names) -> dict[str, np.ndarray]:
    return {name: read_lut(folder / f"{name}.cube").table for name in names}


def test_three_prompts_make_three_looks_a_json_and_an_index(tmp_path, tiny_clip_model, training_folder):
    prompts = tmp_path / "looks.txt"
    prompts.write_text("warm golden sunset\nmoody teal night\nfaded film\n", encoding="utf-8")
    out = tmp_path / "luts"
    options = LibraryOptions(prompts, out, _defaults(tiny_clip_model, training_folder), batch_looks=3)
    lines = []
    result = library(options, echo=lines.append, warn=lines.append)
    names = ["warm_golden_sunset", "moody_teal_night", "faded_film"]
    assert result.made == names and result.skipped == [] and result.stopped == []
    assert "Making 3 look(s), 3 at a time" in lines

    for name, table in _tables(out, names).items():
        assert table.shape == (5, 5, 5, 3) and np.all((table >= 0) & (table <= 1))
        assert np.abs(table - grid(5)).max() > 1e-4, name  # the look moved away from the identity
    cube = read_lut(out / "moody_teal_night.cube")
    comments = "\n".join(cube.comments)
    seed = look_seed(5, "moody_teal_night")
    for fragment in ('prompt "moody teal night" weight=1.0', f"seed={seed}", f"clip={tiny_clip_model}", "lutgen ",
                     "steps=3", "lut_size=5", "library look moody_teal_night of looks.txt line 2"):
        assert fragment in comments

    data = json.loads((out / "library.json").read_text(encoding="utf-8"))
    assert data["seed"] == 5 and data["pending"] == []
    assert [look["name"] for look in data["looks"]] == names
    teal = data["looks"][1]
    assert (teal["prompt"], teal["file"], teal["seed"], teal["steps_done"], teal["lut_size"]) == (
        "moody teal night", "moody_teal_night.cube", seed, 3, 5)
    assert teal["score_after"] != teal["score_before"]

    page = _Page()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    assert page.links == [f"{name}.cube" for name in names]
    assert len(page.images) == 3 * 2 * 3  # three looks, three photos, before and after
    assert all((out / src).is_file() for src in page.images)
    text = " ".join(page.text)
    assert all(look["prompt"] in text for look in data["looks"])

    # Together with two others, a look is the look optimize makes alone up to rounding: Adam divides by the
    # root of the squared gradients, so rounding in gradients near zero moves a node by a share of the
    # learning rate (1.6e-5 after 4 steps, measured), against moves of more than 0.1.
    alone = _alone(tmp_path, options.defaults, "moody teal night", seed)
    assert np.abs(cube.table - alone).max() <= 1e-4

    # A rerun keeps every finished look as it is.
    stamps = {name: (out / f"{name}.cube").stat().st_mtime_ns for name in names}
    again = library(options, echo=_quiet, warn=_quiet)
    assert again.made == [] and again.skipped == names
    assert stamps == {name: (out / f"{name}.cube").stat().st_mtime_ns for name in names}


def _alone(tmp_path, defaults: OptimizeOptions, prompt: str, seed: int) -> np.ndarray:
    """The table ``optimize`` makes for ``prompt`` alone with ``seed``."""
    from lutgen.tasks.optimize import optimize

    output = tmp_path / "alone.cube"
    optimize(dataclasses.replace(defaults, prompt=(prompt,), seed=seed, output_path=output, log_interval=0),
             echo=_quiet, warn=_quiet)
    return read_lut(output).table


def test_a_look_made_with_others_is_the_look_made_alone(tmp_path, tiny_clip_model, training_folder):
    """One look in the group: the same operations as optimize, so the same LUT exactly. Three looks in one
    CLIP batch: the same views, draws and Adam; only the batched matrix products may round differently."""
    prompts = tmp_path / "looks.txt"
    prompts.write_text("moody teal night\n", encoding="utf-8")
    defaults = _defaults(tiny_clip_model, training_folder, steps=4)
    library(LibraryOptions(prompts, tmp_path / "one", defaults, batch_looks=1), echo=_quiet, warn=_quiet)
    expected = _alone(tmp_path, defaults, "moody teal night", look_seed(5, "moody_teal_night"))
    assert np.array_equal(_tables(tmp_path / "one", ["moody_teal_night"])["moody_teal_night"], expected)
    assert np.abs(expected - grid(5)).max() > 0.1


# ------------------------------------------------------------------------------------------------
# Interrupted and resumed
# ------------------------------------------------------------------------------------------------

class _StopAfter:
    """A progress bar that raises KeyboardInterrupt (as Ctrl-C does) once ``count`` look-steps are done."""

    def __init__(self, count: int):
        self.count, self.done = count, 0

    def __call__(self, total: int):
        return self

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.done >= self.count:
            raise KeyboardInterrupt

    def set_postfix_str(self, text, refresh=True) -> None:
        pass

    def close(self) -> None:
        pass


def test_an_interrupted_library_resumes_without_redoing_finished_looks(tmp_path, tiny_clip_model, training_folder):
    """Looks a (2 steps), b and c (6 steps), two at a time: stopped after the group's fourth step, when a is
    written, b has taken 4 steps and c 2; --resume finishes b and c as an uninterrupted run does (c from the
    start: its checkpoint is damaged inside, which costs its progress, not the run)."""
    prompts = tmp_path / "looks.csv"
    prompts.write_text("name,prompt,steps\na,warm golden sunset,2\nb,moody teal night,6\nc,faded film,6\n",
                       encoding="utf-8")
    defaults = _defaults(tiny_clip_model, training_folder)
    out = tmp_path / "stopped"
    with pytest.raises(LibraryInterrupted) as raised:
        library(LibraryOptions(prompts, out, defaults, batch_looks=2), echo=_quiet, warn=_quiet,
                progress=_StopAfter(8))
    assert raised.value.message == (f"interrupted; the 1 look(s) finished in this run are written to {out}, and the "
                                    "progress of 2 other(s) is saved: rerun with --resume to continue")
    assert sorted(p.name for p in out.glob("*.cube")) == ["a.cube"]
    assert json.loads((out / "library.json").read_text())["pending"] == ["b", "c"]
    written = (out / "a.cube").stat().st_mtime_ns

    import torch

    damaged = out / ".lutgen-library" / "checkpoints" / "c.pt"  # loads, its settings match, its state does not fit
    saved = torch.load(damaged, weights_only=True)
    saved["state"]["optimizer"]["param_groups"] = []
    torch.save(saved, damaged)

    lines = []
    resumed = library(LibraryOptions(prompts, out, defaults, batch_looks=2, resume=True), echo=lines.append,
                      warn=lines.append)
    assert resumed.skipped == ["a"] and resumed.made == ["b", "c"]
    assert "b: continuing from step 4 of 6" in lines and "c: its saved progress cannot be used; starting over" in lines
    assert (out / "a.cube").stat().st_mtime_ns == written
    assert not list((out / ".lutgen-library" / "checkpoints").iterdir())

    whole = tmp_path / "whole"
    library(LibraryOptions(prompts, whole, defaults, batch_looks=2), echo=_quiet, warn=_quiet)
    for name, table in _tables(whole, "abc").items():
        assert np.array_equal(_tables(out, [name])[name], table), name


# ------------------------------------------------------------------------------------------------
# Two gloo processes, with the environment torchrun gives its processes
# ------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes(world: int, arguments: list, cwd: Path) -> list[subprocess.CompletedProcess]:
    """``lutgen ARGUMENTS`` in ``world`` processes with the environment torchrun gives its processes
    (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), one
    thread each, without torchrun's own launcher process (which would import torch once more)."""
    port = _free_port()
    children = []
    for rank in range(world):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "RANK": str(rank),
               "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        children.append(subprocess.Popen([sys.executable, str(ROOT / "main.py"), *map(str, arguments)], cwd=cwd,
                                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for child in children:
        try:
            out, err = child.communicate(timeout=300)
        finally:
            child.kill()
        results.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    return results


def test_two_gloo_processes_make_the_looks_of_one_and_another_world_size_resumes(
        tmp_path, tiny_clip_model, training_folder):
    """Process 0 makes looks 1 and 3, process 1 look 2, and only process 0 writes library.json and index.html;
    with one look per CLIP pass the LUTs equal a one-process run's bit for bit (batched, they differ by the
    rounding of CLIP batches of other sizes, as test_three_prompts_make_three_looks_a_json_and_an_index shows). A
    one-process rerun with a fourth prompt makes only it."""
    prompts = tmp_path / "looks.txt"
    prompts.write_text("warm golden sunset\nmoody teal night\nfaded film\n", encoding="utf-8")
    out = tmp_path / "two"
    arguments = ["library", prompts, "-o", out, "--image-folder", training_folder, "--lut-size", "5", "--steps", "3",
                 "--batch-size", "2", "--seed", "5", "--device", "cpu", "--clip-model", tiny_clip_model,
                 "--clip-precision", "fp32", "--batch-looks", "1"]
    first, second = _processes(2, arguments, tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr[-2000:] + second.stderr[-2000:]
    assert "wrote warm_golden_sunset.cube" in first.stdout and "wrote faded_film.cube" in first.stdout
    assert "wrote moody_teal_night.cube" in second.stdout and "moody_teal_night" not in first.stdout
    assert "(2 process(es)); browse" in first.stdout and "browse" not in second.stdout  # only the first reports
    defaults = _defaults(tiny_clip_model, training_folder)

    names = ["warm_golden_sunset", "moody_teal_night", "faded_film"]
    one = tmp_path / "one"
    library(LibraryOptions(prompts, one, defaults, batch_looks=1), echo=_quiet, warn=_quiet)
    two_tables, one_tables = _tables(out, names), _tables(one, names)
    for name in names:
        assert np.array_equal(two_tables[name], one_tables[name]), name
    assert [look["name"] for look in json.loads((out / "library.json").read_text())["looks"]] == names

    prompts.write_text("warm golden sunset\nmoody teal night\nfaded film\nsilver screen\n", encoding="utf-8")
    rerun = library(LibraryOptions(prompts, out, defaults, batch_looks=2), echo=_quiet, warn=_quiet)
    assert rerun.made == ["silver_screen"] and rerun.skipped == names
    data = json.loads((out / "library.json").read_text())
    assert [look["name"] for look in data["looks"]] == [*names, "silver_screen"] and data["pending"] == []
