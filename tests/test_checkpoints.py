"""`lutgen train --resume` from damaged checkpoints, and what an interrupted `train` writes and says.

A real checkpoint is made by a tiny training run (4 pairs of 32-pixel photos, 9 vertices, 4 steps), then
damaged one way at a time; each damaged file must be refused in one sentence naming it, before training.
Where a damage leaves the checksum intact (it is recomputed), the check for that very damage is what
refuses it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import ROOT, one_sentence_error, run_lutgen
from pairs_fixture import write_pairs

from lutgen.errors import LutgenError, OptionError, Terminated
from lutgen.tasks.checkpoints import CHECKPOINT_NAME, state_digest
from lutgen.tasks.train import TrainOptions, default_checkpoint_dir, train


def brighter(photo: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = np.clip(photo * rng.uniform(0.5, 0.9), 0, 1)
    return x, np.sqrt(x)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> tuple[Path, Path]:
    return write_pairs(tmp_path_factory.mktemp("pairs"), ("astronaut", "coffee", "flower", "rocket"), 32, brighter)


def options(pairs, output: Path, **changes) -> TrainOptions:
    values = dict(input_dir=pairs[0], target_dir=pairs[1], output_path=output, epochs=1, learning_rate=1e-3,
                  n_vertices=9, adaint_frozen_epochs=0, augment=False, seed=5, device="cpu", max_side=32)
    values.update(changes)
    return TrainOptions(**values)


@pytest.fixture(scope="module")
def made(pairs, tmp_path_factory) -> Path:
    """The checkpoint of a finished one-epoch run (4 steps)."""
    output = tmp_path_factory.mktemp("made") / "model.safetensors"
    train(options(pairs, output), echo=lambda _: None)
    return default_checkpoint_dir(output) / CHECKPOINT_NAME


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _save(state: dict, path: Path, redigest: bool = True) -> None:
    if redigest:
        state["digest"] = state_digest(state)
    torch.save(state, path)


def _damage(made: Path, folder: Path, name: str, change) -> Path:
    """A copy of the checkpoint in ``folder/name_checkpoints/last.pt``, changed by ``change(state)``."""
    path = folder / f"{name}_checkpoints" / CHECKPOINT_NAME
    path.parent.mkdir(parents=True)
    state = _load(made)
    change(state)
    _save(state, path)
    return path


def _flip_tensor_byte(made: Path, path: Path) -> None:
    """Flip one byte inside the stored basis LUTs: torch still reads the file, with one wrong value."""
    data = bytearray(made.read_bytes())
    bank = _load(made)["model"]["lut_generator.basis_luts_bank.weight"]
    needle = bank.contiguous().numpy().tobytes()[400:432]
    at = data.find(needle)
    assert at > 0 and data.find(needle, at + 1) < 0
    data[at + 5] ^= 0x10
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(data))
    assert not torch.equal(_load(path)["model"]["lut_generator.basis_luts_bank.weight"], bank)


def _set_moment(state: dict) -> None:
    first = next(iter(state["optimizer"]["state"]))
    state["optimizer"]["state"][first]["exp_avg"] = torch.zeros(3)


def _nan_weight(state: dict) -> None:
    state["model"]["backbone.0.0.bias"] = state["model"]["backbone.0.0.bias"].clone()
    state["model"]["backbone.0.0.bias"][0] = float("nan")


DAMAGES = {
    "no_optimizer": (lambda s: s.pop("optimizer"), "it is damaged: it lacks 'optimizer'"),
    "no_model_key": (lambda s: s["model"].pop("backbone.3.2.bias"), "its model lacks 'backbone.3.2.bias'"),
    "extra_model_key": (lambda s: s["model"].__setitem__("extra", torch.zeros(1)), "unexpected tensor 'extra'"),
    "wrong_shape": (lambda s: s["model"].__setitem__("backbone.0.0.bias", torch.zeros(15)),
                    "'backbone.0.0.bias' is torch.float32 (15,), not torch.float32 (16,)"),
    "nan_weight": (_nan_weight, "'backbone.0.0.bias' is not finite"),
    "bad_history": (lambda s: s.__setitem__("history", [[0, "four", 1.0]]), "its epoch history is not a list"),
    "generation_99": (lambda s: s.__setitem__("generation", 99), "it is at generation 99, but this run trains "
                                                                   "generations 0 to 0"),
    "step_beyond": (lambda s: s.__setitem__("step", 5000), "it is at step 5000, but a generation of this run has 4"),
    "step_text": (lambda s: s.__setitem__("step", "4"), "it is at step '4'"),
    "settings_list": (lambda s: s.__setitem__("settings", [1, 2]), "its settings are not a table"),
    "seed_negative": (lambda s: s.__setitem__("seed", -3), "its seed -3 is not a seed lutgen makes"),
    "moment_shape": (_set_moment, "its optimiser moment exp_avg does not fit its parameter"),
    "optimizer_lr": (lambda s: s["optimizer"]["param_groups"][0].__setitem__("lr", float("nan")),
                     "its optimiser setting lr is nan, not 0.001"),
    "optimizer_groups": (lambda s: s["optimizer"]["param_groups"].pop(), "has 1 parameter groups, not 2"),
    "optimizer_text": (lambda s: s.__setitem__("optimizer", "adam"), "its optimiser state is not Adam's"),
    "optimizer_params": (lambda s: s["optimizer"]["param_groups"][0].__setitem__("params", 7),
                         "groups do not match the model's parameters"),
    "optimizer_step": (lambda s: next(iter(s["optimizer"]["state"].values())).__setitem__("step", torch.tensor(-1.5)),
                       "step count tensor(-1.5000) is not a count"),
}


@pytest.mark.parametrize("name", DAMAGES)
def test_a_damaged_checkpoint_is_refused_in_one_sentence_naming_it(name, made, pairs, tmp_path):
    change, fragment = DAMAGES[name]
    path = _damage(made, tmp_path, name, change)
    before = path.read_bytes()
    with pytest.raises(LutgenError) as caught:
        train(options(pairs, tmp_path / f"{name}.safetensors", resume=True), echo=lambda _: None)
    message = str(caught.value)
    assert message.startswith(f"cannot resume from {path}: "), message
    assert fragment in message, message
    assert path.read_bytes() == before and not (tmp_path / f"{name}.safetensors").exists()


def test_byte_flips_truncation_and_a_stale_checksum_are_refused(made, pairs, tmp_path):
    flipped = tmp_path / "flipped_checkpoints" / CHECKPOINT_NAME
    _flip_tensor_byte(made, flipped)
    with pytest.raises(LutgenError, match=r"flipped_checkpoints/last.pt: it is damaged: its contents do not match "
                                          "the checksum"):
        train(options(pairs, tmp_path / "flipped.safetensors", resume=True))
    truncated = tmp_path / "truncated_checkpoints" / CHECKPOINT_NAME
    truncated.parent.mkdir()
    truncated.write_bytes(made.read_bytes()[:5000])
    with pytest.raises(LutgenError, match=r"truncated_checkpoints/last.pt: it is damaged or not a lutgen training "
                                          r"checkpoint \(torch cannot read it\)"):
        train(options(pairs, tmp_path / "truncated.safetensors", resume=True))
    stale = tmp_path / "stale_checkpoints" / CHECKPOINT_NAME
    stale.parent.mkdir()
    state = _load(made)
    state["step"] = 2
    _save(state, stale, redigest=False)
    with pytest.raises(LutgenError, match="do not match the checksum"):
        train(options(pairs, tmp_path / "stale.safetensors", resume=True))


def test_a_checkpoint_without_checksum_is_still_checked_and_resumes(made, pairs, tmp_path):
    """Checkpoints written before the checksum existed resume, after every other check."""
    old = tmp_path / "old_checkpoints" / CHECKPOINT_NAME
    old.parent.mkdir()
    state = _load(made)
    del state["digest"]
    state["step"] = 2
    _save(state, old, redigest=False)
    result = train(options(pairs, tmp_path / "old.safetensors", resume=True), echo=lambda _: None)
    assert not result.interrupted and (tmp_path / "old.safetensors").is_file()


def test_a_later_generation_needs_the_previous_generations_weights(made, pairs, tmp_path):
    def second_generation(state: dict) -> None:
        state["generation"] = 1
        state["settings"]["generations"] = 2

    path = _damage(made, tmp_path, "second", second_generation)
    with pytest.raises(LutgenError) as caught:
        train(options(pairs, tmp_path / "second.safetensors", resume=True, generations=2))
    assert str(caught.value) == f"cannot read {path.parent / 'generation_0.safetensors'}: no such file"


def test_the_command_line_refuses_damaged_checkpoints_and_fifos_in_one_sentence(made, pairs, tmp_path):
    path = _damage(made, tmp_path, "cli", DAMAGES["generation_99"][0])
    common = ["train", "--input-dir", pairs[0], "--target-dir", pairs[1], "--epochs", "1", "--n-vertices", "9",
              "--max-side", "32", "--device", "cpu", "--learning-rate", "1e-3", "--adaint-frozen-epochs", "0",
              "--no-augment", "--seed", "5", "--resume"]
    result = run_lutgen(*common, "-o", tmp_path / "cli.safetensors", timeout=120)
    one_sentence_error(result, f"cannot resume from {path}: it is at generation 99")
    fifo = tmp_path / "fifo_checkpoints" / CHECKPOINT_NAME
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    result = run_lutgen(*common, "-o", tmp_path / "fifo.safetensors", timeout=60)
    one_sentence_error(result, f"cannot read {fifo}: it is a FIFO (named pipe), not a regular checkpoint")


# ------------------------------------------------------------------------------------------------
# Interruptions: what is written and what is said
# ------------------------------------------------------------------------------------------------


class _InterruptAt:
    """A progress bar that raises ``error`` when ``stop_at`` steps (over all generations) are done."""

    def __init__(self, stop_at: int, error: type[KeyboardInterrupt] = KeyboardInterrupt):
        self.stop_at, self.error = stop_at, error

    def __call__(self, total: int, initial: int):
        self.done = initial
        return self

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.done == self.stop_at:
            raise self.error()

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def test_an_interruption_after_a_finished_generation_writes_it_to_the_output_and_says_so(pairs, tmp_path):
    output = tmp_path / "born.safetensors"
    lines = []
    result = train(options(pairs, output, generations=2, checkpoint_every=1), echo=lines.append,
                   progress=_InterruptAt(6, Terminated))
    folder = default_checkpoint_dir(output)
    assert result.interrupted and result.exit_code == 143
    assert output.read_bytes() == (folder / "generation_0.safetensors").read_bytes()
    assert not (folder / "generation_1.safetensors").exists()
    assert _load(folder / CHECKPOINT_NAME)["generation"] == 1 and _load(folder / CHECKPOINT_NAME)["step"] == 2
    assert result.summary == (
        f"interrupted in generation 1 after step 2 of 4; the checkpoint {folder / CHECKPOINT_NAME} holds generation 1 "
        f"at step 2 (continue with --resume); finished generation(s): generation_0.safetensors in {folder}; "
        f"wrote {output} from generation 0, the last finished one (--resume trains the rest and replaces it)")
    assert sorted(p.name for p in folder.iterdir()) == ["generation_0.safetensors", CHECKPOINT_NAME]
    resumed = train(options(pairs, output, generations=2, checkpoint_every=1, resume=True), echo=lambda _: None)
    assert output.read_bytes() == resumed.generation_paths[1].read_bytes()


def test_an_interruption_before_the_first_checkpoint_says_nothing_was_saved(pairs, tmp_path):
    output = tmp_path / "early.safetensors"
    lines = []
    result = train(options(pairs, output, checkpoint_every=3), echo=lines.append, progress=_InterruptAt(1))
    assert result.exit_code == 130 and not output.exists()
    assert "after step 1 of 4; the checkpoint" in result.summary  # the step done is saved on the way out
    assert _load(default_checkpoint_dir(output) / CHECKPOINT_NAME)["step"] == 1


def _popen_train(pairs, output: Path) -> subprocess.Popen:
    """``lutgen train`` long enough to be interrupted, with SIGINT's default action restored in the child."""
    command = [sys.executable, str(ROOT / "main.py"), "train", "--input-dir", str(pairs[0]), "--target-dir",
               str(pairs[1]), "-o", str(output), "--epochs", "10000", "--n-vertices", "9", "--max-side", "32",
               "--device", "cpu", "--checkpoint-every", "1", "--no-augment", "--seed", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_keeps_the_checkpoint_removes_temporaries_and_sets_the_exit_code(signum, code, pairs, tmp_path):
    output = tmp_path / "signalled.safetensors"
    checkpoint = default_checkpoint_dir(output) / CHECKPOINT_NAME
    child = _popen_train(pairs, output)
    try:
        deadline = time.monotonic() + 90
        while not checkpoint.exists() and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert checkpoint.exists(), child.communicate(timeout=5)
        child.send_signal(signum)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == code, stderr
    assert "Traceback" not in stderr
    last = stderr.replace("\r", "\n").strip().splitlines()[-1]  # after the progress bar: one sentence
    assert last.startswith("error: interrupted in generation 0 after step") and "(continue with --resume)" in last
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == [CHECKPOINT_NAME]  # no temporary files
    assert not output.exists()
    state = _load(checkpoint)
    assert state["step"] >= 1 and state["digest"] == state_digest(state)
    shutil.rmtree(checkpoint.parent)


def test_absurd_numbers_are_refused_before_training(pairs, tmp_path):
    cases = {
        "learning_rate": (1e308, "--learning-rate must be"),
        "distill_weight": (float("inf"), "--distill-weight must be a finite number"),
        "sparse_factor": (float("nan"), "--sparse-factor must be a finite number"),
        "monotonicity_factor": (-1.0, "--monotonicity-factor must be between 0 and 1000000, not -1.0"),
        "epochs": (0, "--epochs must be between 1 and 1000000, not 0"),
        "generations": (10**9, "--generations must be between 1 and"),
        "batch_size": (10**9, "--batch-size 1000000000 is larger than the 4 photo pairs"),
        "adaint_lr_factor": (1e300, "--adaint-lr-factor must be between"),
    }
    for name, (value, fragment) in cases.items():
        with pytest.raises(OptionError) as caught:
            train(options(pairs, tmp_path / "m.safetensors", **{name: value}))
        assert fragment in str(caught.value), (name, str(caught.value))
    assert list(tmp_path.iterdir()) == []
    result = run_lutgen("train", "--input-dir", pairs[0], "--target-dir", pairs[0], "-o", tmp_path / "m.safetensors",
                        timeout=60)
    one_sentence_error(result, "--target-dir", "is the --input-dir folder")


def test_a_loss_that_stops_being_finite_stops_training_in_one_sentence(made, pairs, tmp_path):
    """Weights that are finite but so large that the network overflows: the first step's loss is not finite."""
    def enormous(state: dict) -> None:
        state["model"]["lut_generator.basis_luts_bank.weight"] = torch.full_like(
            state["model"]["lut_generator.basis_luts_bank.weight"], 3e38)
        state["step"] = 2

    path = _damage(made, tmp_path, "huge", enormous)
    before = path.read_bytes()
    with pytest.raises(LutgenError) as caught:
        train(options(pairs, tmp_path / "huge.safetensors", resume=True), echo=lambda _: None)
    assert str(caught.value) == (f"training diverged in generation 0 at step 3: the loss is not finite; the checkpoint "
                                 f"{path} keeps generation 0 at step 2; try a lower --learning-rate or smaller loss "
                                 "factors")
    assert path.read_bytes() == before and not (tmp_path / "huge.safetensors").exists()
