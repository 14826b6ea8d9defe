"""Many looks in one run: the work behind ``lutgen library PROMPTS --output-dir OUT``.

Order of work:

1. :func:`validate_library` reads the prompts file (:mod:`lutgen.tasks.library_prompts`) and checks
   every look as ``optimize`` checks its options (:func:`~lutgen.tasks.optimize_plan.validate` on the
   library-wide options with the look's own settings), without importing torch; a bad look is one
   sentence naming the file and line (exit 2). Looks already finished with the same prompt and
   settings are found (:mod:`lutgen.tasks.library_records`) and skipped.
2. Under ``torchrun`` the processes join (NCCL on GPUs, gloo on CPUs, as ``lutgen train`` does) and
   the looks not finished are shared out: process ``r`` of ``w`` takes the ``r``-th, ``r + w``-th, ...
   of them in the file's order. A look's result depends only on its own settings and seed, never on
   the process or the number of processes, so a rerun with another number of processes resumes
   correctly (checkpoints are found by name, in the shared output folder).
3. Each process decodes the images once, loads CLIP once, embeds every text of its looks once, then
   optimises its looks ``K`` at a time (``--batch-looks``, :func:`batch_looks`) with
   :class:`~lutgen.optim.looks.LookGroup`: one CLIP forward and backward pass per step for the views
   of all ``K`` looks. When a look is finished its slot takes the next look.
4. A finished look is written at once: ``NAME.cube`` (atomically, its recipe in the comments: prompt,
   seed, model, every setting, lutgen's version), its thumbnails and its record, with the CLIP score
   of the photos before and after (:mod:`lutgen.guidance.scoring`); the first process rewrites
   ``library.json`` after each of its looks.
5. At the end (after every process is done) the first process writes ``library.json`` and
   ``index.html`` (:mod:`lutgen.tasks.library_index`).

Ctrl-C or SIGTERM keep every finished look; the looks in progress are checkpointed, and
:class:`LibraryInterrupted` says how many; ``--resume`` continues them where they stopped (the same
LUT as a run that was never interrupted, given the same looks side by side).

Seeds: a look's seed is its CSV ``seed``, else derived from the library's seed and the look's name
(:func:`look_seed`); the library's seed is ``--seed``, else the one a previous run in this folder
chose, else a fresh one (recorded).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lutgen.errors import LutgenError, OptionError
from lutgen.fileio import check_folder_writable
from lutgen.tasks import library_records as records
from lutgen.tasks.library_prompts import LookSpec, read_prompts
from lutgen.tasks.optimize_plan import OptimizeOptions, Plan, validate
from lutgen.tasks.options import MAX_SEED, check_number, choose_seed

MAX_BATCH_LOOKS = 256
CPU_BATCH_LOOKS = 8
"""``--batch-looks`` on a CPU when not given: the bench's best on 2 cores was reached by 4 to 16."""
VIEW_BYTES = 28e6
"""Memory of one view through ViT-B-32 (224 px) kept for the backward pass, float32 (measured for
``optimize``); a view of a ``S``-pixel model takes about ``(S / 224)^2`` times as much."""
GPU_MEMORY_SHARE = 0.6
"""Share of the GPU's free memory the batched views may take when ``--batch-looks`` is chosen."""


@dataclass
class LibraryOptions:
    """The options of ``lutgen library``.

    Attributes:
        prompts_file: the ``.txt`` or ``.csv`` of looks.
        output_dir: where the looks, ``library.json`` and ``index.html`` go.
        defaults: every ``optimize`` option, the library-wide default of each look (``prompt``,
            ``output_path``, ``log_interval``, ``log_dir`` and ``test_image`` are not used: each look
            has its prompt and file, and the library's log is ``library.json`` and ``index.html``).
        batch_looks: looks optimised together (``K``); 0 chooses (see :func:`batch_looks`).
        resume: continue looks from their checkpoints (finished looks are skipped either way).
    """

    prompts_file: Path
    output_dir: Path = Path("luts")
    defaults: OptimizeOptions = field(default_factory=OptimizeOptions)
    batch_looks: int = 0
    resume: bool = False


@dataclass
class PlannedLook:
    """One look, checked: its line of the prompts file, its ``optimize`` options, plan and fingerprint."""

    spec: LookSpec
    options: OptimizeOptions
    plan: Plan
    fingerprint: list[str]
    record: dict | None = None  # the record when the look is already finished

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class LibraryPlan:
    """What :func:`validate_library` found."""

    options: LibraryOptions
    looks: list[PlannedLook]
    seed: int

    @property
    def output_dir(self) -> Path:
        return Path(self.options.output_dir)

    @property
    def pending(self) -> list[PlannedLook]:
        return [look for look in self.looks if look.record is None]


@dataclass
class LibraryResult:
    """What this process did: looks made, skipped as finished, stopped early; where the index is."""

    made: list[str]
    skipped: list[str]
    stopped: list[str]
    library_json: Path | None
    index_html: Path | None
    processes: int = 1


class LibraryInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped ``library``: :attr:`message` says what was kept, :attr:`cause` is the
    original ``KeyboardInterrupt`` (a :class:`~lutgen.errors.Terminated` for SIGTERM)."""

    def __init__(self, message: str, cause: KeyboardInterrupt):
        super().__init__(message)
        self.message = message
        self.cause = cause


def look_seed(library_seed: int, name: str) -> int:
    """The seed of the look ``name`` in a library of seed ``library_seed``: the same for a name in every
    run, process and number of processes, different between names."""
    digest = hashlib.sha256(f"{library_seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (MAX_SEED + 1)


def _look_options(defaults: OptimizeOptions, spec: LookSpec, output_dir: Path, seed: int) -> OptimizeOptions:
    """The ``optimize`` options of one look: the library's, then the look's own settings."""
    settings = dict(spec.settings)
    for single in ("negative_prompt", "prompt_weight", "negative_weight"):
        if single in settings:
            settings[single] = (settings[single],)
    settings.setdefault("seed", seed)
    return dataclasses.replace(defaults, prompt=(spec.prompt,), output_path=records.cube_path(output_dir, spec.name),
                               log_interval=0, log_dir=None, verbose=False, **settings)


def fingerprint(options: OptimizeOptions, plan: Plan) -> list[str]:
    """What makes a look what it is: its recipe (:func:`~lutgen.tasks.optimize.recipe_lines`) without the
    version line, the CLIP model named as given."""
    from lutgen.tasks.optimize import recipe_lines

    return list(recipe_lines(options, plan, f"{options.clip_model} {options.clip_pretrained}")[1:])


def _check_options(o: LibraryOptions) -> None:
    check_number("batch-looks", o.batch_looks, 0, MAX_BATCH_LOOKS)
    if o.defaults.prompt:
        raise OptionError("library takes its prompts from the prompts file, not --prompt")
    output_dir = Path(o.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OptionError(f"--output-dir {output_dir} is a file; give a folder for the looks")
    check_folder_writable(output_dir, f"--output-dir {output_dir}")


def validate_library(o: LibraryOptions) -> LibraryPlan:
    """Check every option and every look, and find the finished looks, without importing torch.

    Raises:
        OptionError, ImageError: one sentence; a look's problem names the prompts file and line.
    """
    _check_options(o)
    specs = read_prompts(o.prompts_file)
    output_dir = Path(o.output_dir)
    library_seed = o.defaults.seed if o.defaults.seed is not None else records.read_seed(output_dir)
    library_seed = choose_seed(library_seed)
    return LibraryPlan(o, _plan_looks(o, specs, library_seed), library_seed)


def _plan_looks(o: LibraryOptions, specs: list[LookSpec], library_seed: int) -> list[PlannedLook]:
    """Every look checked: the first one as ``optimize`` checks its options (images found, test image
    read), the others for what their own settings change (:func:`_validate_settings`)."""
    looks, shared = [], None
    for spec in specs:
        options = _look_options(o.defaults, spec, Path(o.output_dir), look_seed(library_seed, spec.name))
        try:
            plan = validate(options) if shared is None else _validate_settings(options, shared)
        except LutgenError as error:
            raise type(error)(f"{spec.where(Path(o.prompts_file))}: {error}") from None
        shared = shared or plan
        planned = PlannedLook(spec, options, plan, fingerprint(options, plan))
        planned.record = records.finished_record(Path(o.output_dir), spec.name, planned.fingerprint)
        looks.append(planned)
    return looks


def _validate_settings(options: OptimizeOptions, shared: Plan) -> Plan:
    """What :func:`~lutgen.tasks.optimize_plan.validate` checks that a look's own settings can change (the
    numbers, choices, output file and evidence), with the images and test image of ``shared`` (another
    look's plan: the image folder, reference photos and pairs are library-wide)."""
    from lutgen.tasks.optimize_evidence import check_evidence
    from lutgen.tasks.optimize_evidence import inputs as evidence_inputs
    from lutgen.tasks.optimize_plan import _check_choices, _check_nothing_overwritten, _check_numbers, _check_output

    _check_numbers(options)
    seed = choose_seed(options.seed)
    _check_choices(options)
    _check_output(Path(options.output_path))
    evidence = check_evidence(options)
    inputs = [*shared.images, shared.test_image, *evidence_inputs(evidence)]
    _check_nothing_overwritten(Path(options.output_path), None, shared.folder, inputs)
    return dataclasses.replace(shared, evidence=evidence, seed=seed)


def reseeded(plan: LibraryPlan, library_seed: int) -> LibraryPlan:
    """``plan`` with another library seed (the first process's, under torchrun)."""
    if library_seed == plan.seed:
        return plan
    return LibraryPlan(plan.options, _plan_looks(plan.options, [look.spec for look in plan.looks], library_seed),
                       library_seed)


def batch_looks(requested: int, device, batch_size: int, view_side: int, pending: int) -> int:
    """How many looks to optimise together (``K``).

    ``requested`` when given (> 0). Else, on a GPU: as many looks as fit their views in
    :data:`GPU_MEMORY_SHARE` of the free memory, at :data:`VIEW_BYTES` per view scaled by the model's
    input size (an estimate for ViT-B-32-sized towers; give ``--batch-looks`` for larger models); on
    other devices :data:`CPU_BATCH_LOOKS`. Never more than the looks to make, nor
    :data:`MAX_BATCH_LOOKS`.
    """
    if requested > 0:
        chosen = requested
    elif device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        per_look = batch_size * VIEW_BYTES * (view_side / 224) ** 2
        chosen = int(free * GPU_MEMORY_SHARE // per_look)
    else:
        chosen = CPU_BATCH_LOOKS
    return max(1, min(chosen, MAX_BATCH_LOOKS, max(1, pending)))


def library(options: LibraryOptions, echo: Callable[[str], None] = print, warn: Callable[[str], None] = print,
            progress: Callable[[int], object] | None = None) -> LibraryResult:
    """Run ``lutgen library`` (see the module docstring) in this process (one of several under torchrun).

    Args:
        options: the command's options.
        echo: prints a line for the user (must not break a progress bar, e.g. ``tqdm.write``).
        warn: prints a warning line.
        progress: makes a progress bar for ``total`` look-steps (``tqdm``-like); ``None`` for none.

    Raises:
        LutgenError: bad options, prompts file or inputs; unusable CLIP weights; unwritable output.
        LibraryInterrupted: Ctrl-C or SIGTERM, saying what was kept.
    """
    from lutgen.tasks.library_run import LibraryRun
    from lutgen.tasks.train_processes import start_processes

    plan = validate_library(options)
    try:
        processes = start_processes(options.defaults.device)
    except KeyboardInterrupt as stop:
        raise LibraryInterrupted("interrupted before the first look started; nothing was written", stop) from None
    try:
        plan = reseeded(plan, processes.shared(plan.seed))
        if processes.leader:
            records.write_seed(plan.output_dir, plan.seed)
        mine = plan.pending[processes.rank::processes.world]
        skipped = [look.name for look in plan.looks if look.record is not None]
        if skipped and processes.leader:
            echo(f"{len(skipped)} of {len(plan.looks)} looks are finished already in {plan.output_dir}; "
                 "they are kept")
        run = LibraryRun(plan, processes, echo, warn)
        made, stopped = run.make(mine, progress if processes.leader else None)
        try:
            processes.barrier()
            library_json = index = None
            if processes.leader:
                library_json, index = run.write_index()
        except KeyboardInterrupt as stop:
            raise LibraryInterrupted(f"interrupted while writing library.json and index.html; every look is written "
                                     f"to {plan.output_dir}: rerun the same command to write them", stop) from None
        return LibraryResult(made, skipped, stopped, library_json, index, processes.world)
    finally:
        processes.close()

