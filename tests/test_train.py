"""`lutgen train`: pairing, augmentation, learning, checkpoints and Ctrl-C, Born-Again, two gloo processes.

The training pairs are made here: small bundled photos with random exposure and colour casts, and
as targets the same photos through an image-dependent global retouch (grey-world white balance, then
a gamma that brings the mean to 0.45), so that one fixed LUT cannot fit them all.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pairs_fixture import write_pairs
from PIL import Image

from lutgen.errors import ImageError, LutgenError, OptionError
from lutgen.imaging import load_image
from lutgen.tasks.enhance import enhance
from lutgen.tasks.evaluate import evaluate, psnr
from lutgen.tasks.infer import infer
from lutgen.tasks.pairs import pair_images
from lutgen.tasks.checkpoints import CHECKPOINT_NAME, save_checkpoint, save_weights
from lutgen.tasks.train import TrainOptions, default_checkpoint_dir, train, validate
from lutgen.tasks.train_data import augment, batch_indices
from lutgen.tasks.train_processes import start_processes

PHOTOS = ("astronaut", "chelsea_cat", "coffee", "china", "flower", "mate_dune", "mate_garden", "rocket")


def retouch(x: np.ndarray) -> np.ndarray:
    """An image-dependent global transform: grey-world balance, then a gamma taking the mean grey to 0.45."""
    mean = x.reshape(-1, 3).mean(axis=0)
    grey = mean.mean()
    balanced = np.clip(x * (grey / np.maximum(mean, 1e-3)), 0, 1)
    gamma = np.clip(np.log(0.45) / np.log(np.clip(grey, 1e-3, 0.999)), 0.4, 2.5)
    return balanced**gamma


def exposed_and_retouched(photo: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Input: the photo with a random exposure (gamma) and colour cast; target: that input retouched."""
    x = np.clip(photo ** rng.uniform(0.6, 1.8) * rng.uniform(0.7, 1.1, 3), 0, 1)
    return x, retouch(x)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> tuple[Path, Path]:
    return write_pairs(tmp_path_factory.mktemp("pairs"), PHOTOS, 64, exposed_and_retouched)


def options(pairs, output: Path, **changes) -> TrainOptions:
    """Small, fast settings: no augmentation, 9 vertices, AdaInt learning from the start, lr 1e-3."""
    values = dict(input_dir=pairs[0], target_dir=pairs[1], output_path=output, epochs=2, learning_rate=1e-3,
                  n_vertices=9, adaint_frozen_epochs=0, augment=False, seed=3, device="cpu", max_side=64)
    values.update(changes)
    return TrainOptions(**values)


@pytest.fixture(scope="module")
def trained(pairs, tmp_path_factory):
    """320 steps (40 epochs of the 8 pairs, batch 1) with 17 vertices."""
    folder = tmp_path_factory.mktemp("trained")
    result = train(options(pairs, folder / "model.safetensors", epochs=40, n_vertices=17, seed=2), echo=lambda _: None)
    return result


# ------------------------------------------------------------------------------------------------
# Pairs, options, batches, augmentation
# ------------------------------------------------------------------------------------------------


def _png(path: Path, width: int = 20, height: int = 10) -> None:
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(path)


def test_pairs_are_matched_by_name_with_clear_errors(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for name in ("x", "y"):
        _png(a / f"{name}.png")
    _png(b / "x.png")
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(b / "y.jpg")  # another format, same name
    found = pair_images(a, b)
    assert [(p.name, p.target.name, p.size) for p in found] == [("x", "x.png", (20, 10)), ("y", "y.jpg", (20, 10))]

    _png(a / "z.png")
    with pytest.raises(ImageError, match=r"1 input image\(s\) have no target .*: z.png"):
        pair_images(a, b)
    (a / "z.png").unlink()
    _png(b / "w.png")
    with pytest.raises(ImageError, match=r"1 target image\(s\) have no input .*: w.png"):
        pair_images(a, b)
    (b / "w.png").unlink()
    _png(b / "x.png", width=21)
    with pytest.raises(ImageError, match=r"x.png is 20x10 but its target .* is 21x10"):
        pair_images(a, b)
    _png(a / "x.jpg")
    with pytest.raises(ImageError, match="two images named x"):
        pair_images(a, b)
    with pytest.raises(ImageError, match="does not exist"):
        pair_images(tmp_path / "absent", b)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match="has no images"):
        pair_images(empty, b)


def test_option_errors(pairs, tmp_path, monkeypatch):
    with pytest.raises(OptionError, match="must end in .safetensors"):
        validate(options(pairs, tmp_path / "model.pt"))
    with pytest.raises(OptionError, match="--epochs"):
        validate(options(pairs, tmp_path / "m.safetensors", epochs=0))
    with pytest.raises(OptionError, match="larger than the 8 photo pairs"):
        validate(options(pairs, tmp_path / "m.safetensors", batch_size=9))
    with pytest.raises(OptionError, match="no checkpoint"):
        validate(options(pairs, tmp_path / "m.safetensors", resume=True))
    with pytest.raises(OptionError, match="--precision"):
        validate(options(pairs, tmp_path / "m.safetensors", precision="half"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(OptionError, match="multiple of the 2 processes"):
        validate(options(pairs, tmp_path / "m.safetensors", batch_size=3))
    assert default_checkpoint_dir(Path("out/model.safetensors")) == Path("out/model_checkpoints")


def test_outputs_that_cannot_be_written_are_refused_before_training(pairs, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OptionError, match=r"--output-path .* cannot be created: .*blocker is a file"):
        train(options(pairs, blocker / "sub" / "m.safetensors"))
    with pytest.raises(OptionError, match=r"--checkpoint-dir .*blocker cannot be created: .*blocker is a file"):
        train(options(pairs, tmp_path / "m.safetensors", checkpoint_dir=blocker))
    (tmp_path / "checkpoints" / CHECKPOINT_NAME).mkdir(parents=True)
    with pytest.raises(OptionError, match=f"{CHECKPOINT_NAME} is a folder"):
        train(options(pairs, tmp_path / "m.safetensors", checkpoint_dir=tmp_path / "checkpoints"))
    made = {"blocker", "checkpoints"}
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        made.add("locked")
        with pytest.raises(OptionError, match="is not writable"):
            train(options(pairs, locked / "new" / "m.safetensors"))
    assert {path.name for path in tmp_path.iterdir()} == made  # the refusals made no folders
    plan = validate(options(pairs, tmp_path / "new" / "deeper" / "m.safetensors"))  # folders to be made are fine
    assert plan.checkpoint_dir == tmp_path / "new" / "deeper" / "m_checkpoints" and not plan.checkpoint_dir.exists()


@contextlib.contextmanager
def file_size_limit(limit: int):
    """Writes that would make a file larger than ``limit`` bytes fail (EFBIG), as on a full disk."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_failed_write_is_one_sentence_and_keeps_the_last_checkpoint(pairs, tmp_path):
    from lutgen.models.adaint import AiLUT

    model = AiLUT(n_vertices=9)  # about 1 MB of weights
    optimizer = torch.optim.Adam(model.parameters())
    settings = options(pairs, tmp_path / "m.safetensors")
    checkpoint = tmp_path / "checkpoints" / CHECKPOINT_NAME
    save_checkpoint(checkpoint, settings, 3, 0, 1, model, optimizer, [])
    saved = checkpoint.read_bytes()
    with file_size_limit(64 << 10):
        with pytest.raises(LutgenError, match=r"^cannot write the checkpoint .*last.pt: writing failed \(is the disk"):
            save_checkpoint(checkpoint, settings, 3, 0, 2, model, optimizer, [])
        with pytest.raises(LutgenError, match=r"^cannot write .*w.safetensors: writing failed"):
            save_weights(model, tmp_path / "w.safetensors", {})
    assert checkpoint.read_bytes() == saved and _state(checkpoint)["step"] == 1
    assert [path.name for path in checkpoint.parent.iterdir()] == [CHECKPOINT_NAME]  # no partial files left
    assert not (tmp_path / "w.safetensors").exists()


def test_devices_under_torchrun(monkeypatch):
    """Checked before the process group is joined, so one process can see every refusal."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(OptionError, match="--device mps cannot be used under torchrun"):
        start_processes("mps")
    with pytest.raises(OptionError, match="--device cuda:1 names one GPU, but torchrun started 2 processes"):
        start_processes("CUDA:1")
    with pytest.raises(OptionError, match="--device must be one of"):
        start_processes("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(OptionError, match="no CUDA GPU"):
            start_processes("cuda")
    elif torch.cuda.device_count() < 2:
        with pytest.raises(OptionError, match="torchrun started 2 processes on this machine, but it has 1 CUDA"):
            start_processes("cuda")


def test_importing_and_validating_the_options_does_not_import_torch(pairs, tmp_path):
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from lutgen.tasks.train import TrainOptions, validate\n"
        "plan = validate(TrainOptions(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), device='cuda:0'))\n"
        "print(len(plan.pairs), 'torch' in sys.modules)\n"
    )
    arguments = [str(pairs[0]), str(pairs[1]), str(tmp_path / "m.safetensors")]
    result = subprocess.run([sys.executable, "-c", script, *arguments], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["8", "False"]


def test_every_epoch_is_a_permutation_of_the_pairs():
    seen = np.concatenate([batch_indices(7, 0, step, 5, 10, 2) for step in range(5)])
    assert sorted(seen) == list(range(10))
    next_epoch = np.concatenate([batch_indices(7, 0, step, 5, 10, 2) for step in range(5, 10)])
    assert sorted(next_epoch) == list(range(10)) and not np.array_equal(seen, next_epoch)
    assert np.array_equal(batch_indices(7, 0, 3, 5, 10, 2), batch_indices(7, 0, 3, 5, 10, 2))
    assert not np.array_equal(seen, np.concatenate([batch_indices(7, 1, s, 5, 10, 2) for s in range(5)]))


def test_augmentation_crops_and_flips_both_and_jitters_only_the_input():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(50, 80, 3)).astype(np.float32)
    y = rng.uniform(0, 1, size=(50, 80, 3)).astype(np.float32)
    sizes = set()
    for seed in range(40):
        ax, ay = augment(x, y, np.random.default_rng(seed))
        again = augment(x, y, np.random.default_rng(seed))
        assert np.array_equal(ax, again[0]) and np.array_equal(ay, again[1])
        h, w = ay.shape[:2]
        assert 0.6 * 50 - 1 <= h <= 50 and 0.6 * 80 - 1 <= w <= 80 and ax.shape == ay.shape
        sizes.add((h, w))
        # the target is an exact (possibly mirrored) window of y; the input the same window of x, jittered
        found = [(t, l, flip) for flip in (False, True) for t in range(50 - h + 1) for l in range(80 - w + 1)
                 if np.array_equal(ay, (y[t:t + h, l:l + w, :][:, ::-1] if flip else y[t:t + h, l:l + w]))]
        assert len(found) == 1
        t, l, flip = found[0]
        window = x[t:t + h, l:l + w][:, ::-1] if flip else x[t:t + h, l:l + w]
        assert 0 <= ax.min() and ax.max() <= 1
        assert np.corrcoef(ax.ravel(), window.ravel())[0, 1] > 0.8
    assert len(sizes) > 20


# ------------------------------------------------------------------------------------------------
# Learning, and consistency with evaluate / enhance / infer
# ------------------------------------------------------------------------------------------------


def test_a_few_hundred_steps_raise_psnr_well_above_the_identity(trained, pairs, tmp_path):
    assert trained.output_path.is_file() and not trained.interrupted
    assert trained.steps_per_generation == 320 and len(trained.history) == 40
    csv_path = tmp_path / "scores.csv"
    scores = evaluate(str(trained.output_path), pairs[0], pairs[1], csv_path)
    gain = scores.mean_output.psnr - scores.mean_input.psnr
    assert gain > 5.0, (scores.mean_output, scores.mean_input)
    assert scores.mean_output.delta_e < scores.mean_input.delta_e
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("image,psnr,ssim,delta_e") and lines[-1].startswith("mean,") and len(lines) == 10


def test_train_evaluate_enhance_export_infer_agree(trained, pairs, tmp_path):
    scores = evaluate(str(trained.output_path), pairs[0], pairs[1], None)
    row = next(r for r in scores.rows if r.name == "coffee")
    enhanced = tmp_path / "coffee.png"
    enhance([pairs[0] / "coffee.png"], model=str(trained.output_path), output_path=enhanced, export_cube=True)
    target = load_image(pairs[1] / "coffee.png").rgb / 255.0
    assert psnr(load_image(enhanced).rgb / 255.0, target) == pytest.approx(row.output.psnr, abs=1e-9)
    inferred = tmp_path / "inferred.png"
    infer(tmp_path / "coffee.cube", [pairs[0] / "coffee.png"], output_path=inferred)
    assert np.array_equal(load_image(inferred).rgb, load_image(enhanced).rgb)
    # the checkpoint of the run is itself a model file
    checkpoint = trained.checkpoint_path
    enhance([pairs[0] / "coffee.png"], model=str(checkpoint), output_path=tmp_path / "from_checkpoint.png")
    assert np.array_equal(load_image(tmp_path / "from_checkpoint.png").rgb, load_image(enhanced).rgb)


# ------------------------------------------------------------------------------------------------
# Checkpoints, Ctrl-C, resume
# ------------------------------------------------------------------------------------------------


class _InterruptAt:
    """A progress bar that presses Ctrl-C when ``stop_at`` steps are done."""

    def __init__(self, stop_at: int):
        self.stop_at = stop_at

    def __call__(self, total: int, initial: int):
        self.done = initial
        return self

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.done == self.stop_at:
            raise KeyboardInterrupt

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_ctrl_c_keeps_a_checkpoint_and_resume_trains_the_same_model(pairs, tmp_path):
    settings = dict(epochs=2, checkpoint_every=4, adaint_frozen_epochs=1)
    straight = train(options(pairs, tmp_path / "straight.safetensors", **settings), echo=lambda _: None)

    interrupted_path = tmp_path / "interrupted.safetensors"
    lines = []
    stopped = train(options(pairs, interrupted_path, **settings), echo=lines.append, progress=_InterruptAt(6))
    assert stopped.interrupted and stopped.step == 6 and stopped.output_path is None
    assert not interrupted_path.exists()
    assert "continue with --resume" in stopped.summary
    checkpoint = default_checkpoint_dir(interrupted_path) / CHECKPOINT_NAME
    assert _state(checkpoint)["step"] == 6

    with pytest.raises(OptionError, match="--learning-rate"):
        train(options(pairs, interrupted_path, resume=True, **dict(settings, learning_rate=2e-3)))
    resumed = train(options(pairs, interrupted_path, resume=True, **settings), echo=lambda _: None)
    assert not resumed.interrupted and resumed.output_path == interrupted_path
    a = _state(straight.checkpoint_path)["model"]
    b = _state(resumed.checkpoint_path)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert len(resumed.history) == len(straight.history) == 2


def test_born_again_trains_a_student_per_generation(pairs, tmp_path):
    from lutgen.models import load_weights

    result = train(options(pairs, tmp_path / "student.safetensors", epochs=1, generations=2, distill_weight=0.5),
                   echo=lambda _: None)
    assert [p.name for p in result.generation_paths] == ["generation_0.safetensors", "generation_1.safetensors"]
    teacher, student = (load_weights(p) for p in result.generation_paths)
    assert (tmp_path / "student.safetensors").read_bytes() == result.generation_paths[1].read_bytes()
    assert student.metadata["generation"] == "1"
    assert not np.array_equal(teacher.tensors["lut_generator.basis_luts_bank.weight"],
                              student.tensors["lut_generator.basis_luts_bank.weight"])


def test_the_distillation_term_of_the_loss():
    from lutgen.models import AdaIntLossWeights
    from lutgen.models.adaint import AiLUTOutput, sample_loss

    rng = torch.Generator().manual_seed(0)
    image, target, teacher = (torch.rand(1, 3, 4, 5, generator=rng, dtype=torch.float64) for _ in range(3))
    weights = torch.rand(1, 3, generator=rng, dtype=torch.float64)
    output = AiLUTOutput(image, weights, torch.zeros(1), torch.zeros(1))
    factors = AdaIntLossWeights(sparse_factor=0.01)
    expected = ((image - target) ** 2).mean() + 0.01 * (weights**2).mean() + 0.3 * ((image - teacher) ** 2).mean()
    assert sample_loss(output, target, factors, teacher, 0.3).item() == pytest.approx(expected.item(), rel=1e-12)
    assert sample_loss(output, target, factors).item() == pytest.approx(
        (((image - target) ** 2).mean() + 0.01 * (weights**2).mean()).item(), rel=1e-12)


# ------------------------------------------------------------------------------------------------
# Two gloo processes under torchrun
# ------------------------------------------------------------------------------------------------

PROBE = """
import sys
sys.argv = ['lutgen', *sys.argv[1:]]
from lutgen.cli import main
main()
"""


def test_two_gloo_processes_train_the_same_model_as_one(pairs, tmp_path):
    """float64, so that the only differences are rounding: same total batch of 2, 8 steps, AdaInt frozen
    for the first epoch, augmentation on (crops, flips and jitter follow the sample, not the process).
    The seed is given (7), so that the comparison is the same at every run."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    output = tmp_path / "two.safetensors"
    arguments = [
        "train", "--input-dir", pairs[0], "--target-dir", pairs[1], "-o", output, "--epochs", "2",
        "--batch-size", "2", "--learning-rate", "1e-3", "--n-vertices", "9", "--adaint-frozen-epochs", "1",
        "--device", "cpu", "--max-side", "64", "--precision", "float64", "--seed", "7",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(probe)]
    result = subprocess.run([*command, *map(str, arguments)], capture_output=True, text=True, env=env,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count(f"wrote {output}") == 1  # only the first process reports
    assert "2 process(es)" in result.stderr + result.stdout
    seed = int(re.search(rf"wrote {re.escape(str(output))} \(seed (\d+)\)", result.stdout).group(1))

    # The one-process run is a fresh process too, so that nothing an earlier test did to this process's
    # torch or NumPy state can tell the two apart.
    single_output = tmp_path / "single.safetensors"
    assert seed == 7
    single_arguments = [*arguments[:6], single_output, *arguments[7:]]
    single = subprocess.run([sys.executable, str(probe), *map(str, single_arguments)], capture_output=True,
                            text=True, env=env, timeout=300, cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]

    one = _state(default_checkpoint_dir(single_output) / CHECKPOINT_NAME)
    two = _state(default_checkpoint_dir(output) / CHECKPOINT_NAME)
    assert one["step"] == two["step"] == 8
    for key, value in one["model"].items():
        assert value.dtype == torch.float64
        # The two processes' gradients are summed in another order than one process's batch: the models
        # differed by 2e-11 to 9e-9 over seeds 1-10 (measured; 2e-9 for seed 7), so 1e-6, still 100 times
        # below what training moves (asserted below).
        difference = (two["model"][key] - value).abs().max().item()
        assert difference <= 1e-6, f"{key} differs by {difference:.3g}"
    changed = max((value - _initial(key, value)).abs().max().item() for key, value in one["model"].items()
                  if key == "lut_generator.basis_luts_bank.weight")
    assert changed > 1e-4  # the models did train


def _initial(key: str, value: torch.Tensor) -> torch.Tensor:
    """The identity-initialised basis bank, to show that training moved it."""
    from lutgen.models.adaint import AiLUT

    model = AiLUT(n_vertices=9)
    return model.state_dict()[key].to(value.dtype)
