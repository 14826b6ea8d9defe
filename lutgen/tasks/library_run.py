"""The looks of one process of ``lutgen library``: images, CLIP and texts set up once, looks made K at a time.

See :mod:`lutgen.tasks.library` for the whole command. :class:`LibraryRun` reuses ``optimize``'s own
pieces for everything a single look needs (decoding the images, the trainable LUT, the evidence as
tensors, the recipe) and :class:`~lutgen.optim.looks.LookGroup` to step the looks together.
"""

from __future__ import annotations

from pathlib import Path

from lutgen.errors import LutgenError
from lutgen.tasks import library_records as records
from lutgen.tasks.library_index import thumbnail_pixels, write_before_thumbnails, write_index, write_look_thumbnails
from lutgen.tasks.options import NoProgressBar

SCORE_PHOTOS = 8
"""Photos the CLIP score before/after is measured on: the first ones of the image folder."""


class _EmbeddedTexts:
    """The CLIP guide as ``optimize``'s evidence code sees it, with every text embedded beforehand: each
    prompt of the library goes through the text tower once, however many looks use it."""

    def __init__(self, guide, embeddings: dict):
        self._guide = guide
        self._embeddings = embeddings

    def embed_text(self, text: str):
        return self._embeddings[text]

    def release_text_tower(self) -> int:
        return 0  # released by the run once every text is embedded

    def __getattr__(self, name: str):
        return getattr(self._guide, name)


class LibraryRun:
    """One process's share of a library.

    Args:
        plan: the checked library (:class:`~lutgen.tasks.library.LibraryPlan`).
        processes: this process's place (:class:`~lutgen.tasks.train_processes.Processes`).
        echo, warn: print a line, a warning.
    """

    def __init__(self, plan, processes, echo, warn):
        self.plan = plan
        self.processes = processes
        self.echo = echo
        self.warn = warn
        self.output_dir = plan.output_dir
        first = plan.looks[0].plan
        self.images, self.folder = first.images, first.folder
        self._thumbnails = None
        self.guide = None

    # -- set-up, once per process -------------------------------------------------------------

    def _prepare(self, looks) -> None:
        """Resolve and load CLIP, decode the images once, embed every text of ``looks`` once."""
        import torch

        from lutgen.guidance.clip import expected_image_size, load_clip, resolve_weights
        from lutgen.guidance.scoring import photo_views
        from lutgen.optim.views import stored_image, working_side
        from lutgen.tasks.optimize import decode_images, make_reproducible

        o = self.plan.options.defaults
        self.device = device = self.processes.device
        source = resolve_weights(o.clip_model, o.clip_pretrained)
        self.weights_label = source.label
        self.side = working_side((expected_image_size(source),) * 2)
        decoded, _ = decode_images(self.images, self.folder, self.side, self.warn,
                                    lambda pixels: stored_image(pixels, device))
        self.tensors = [image for _, image in decoded]
        make_reproducible(device, self.plan.seed)
        self.guide = load_clip(device=device, precision=o.clip_precision, source=source)
        precision = "bfloat16" if self.guide.amp_dtype == torch.bfloat16 else "float32"
        if self.processes.leader:
            self.echo(f"Loaded {len(self.tensors)} images from {self.folder}; CLIP {source.label} in {precision} "
                      f"on {device}; {self.processes.world} process(es)")
        self.texts = _EmbeddedTexts(self.guide, self._embed_texts(looks))
        self.score_views = photo_views(self.tensors[:SCORE_PHOTOS], self.guide)
        with torch.inference_mode():
            self.before_embeddings = self.guide.embed_images(self.score_views)

    def _embed_texts(self, looks) -> dict:
        """Every prompt, negative and source prompt of ``looks``, embedded once; then the text tower goes."""
        embeddings = {}
        for look in looks:
            for text in look.plan.evidence.texts():
                if text in embeddings:
                    continue
                overflow = self.guide.text_limit(text)
                if overflow is not None:
                    self.warn(f"{look.spec.where(self.plan.options.prompts_file)}: the prompt {text[:40]!r} is "
                              f"{overflow[0]} tokens long and CLIP reads {overflow[1]}; its end is ignored")
                embeddings[text] = self.guide.embed_text(text)
        self.guide.release_text_tower()
        return embeddings

    def _start(self, planned, resume: bool):
        """The :class:`~lutgen.optim.looks.Look` of ``planned`` at step 0, or where its checkpoint stopped."""
        from lutgen.optim.looks import Look
        from lutgen.optim.losses import LossWeights
        from lutgen.optim.objective import Objective
        from lutgen.optim.views import ViewSampler
        from lutgen.tasks.optimize import evidence_tensors, trainable_lut

        o, seed = planned.options, planned.plan.seed
        evidence = evidence_tensors(o, planned.plan, self.texts, self.device, self.side, lambda text: None)
        sampler = ViewSampler(self.tensors, self.guide.image_size, o.batch_size, seed, self.guide.interpolation)
        weights = LossWeights(o.image_smoothness, o.image_regularization, o.black_preservation, o.lut_smoothness,
                              o.highlight_preservation)
        objective = Objective(self.guide, evidence, weights, seed)
        def fresh() -> Look:
            return Look.create(planned.name, trainable_lut(o, self.device), sampler, objective, o.learning_rate,
                               o.steps)

        look = fresh()
        state = records.load_checkpoint(self.output_dir, planned.name, planned.fingerprint) if resume else None
        if state is None:
            return look
        try:
            look.restore(state)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError):
            # damaged inside although it loads and its settings match: as an unreadable one, the look starts over
            self.echo(f"{planned.name}: its saved progress cannot be used; starting over")
            return fresh()
        self.echo(f"{planned.name}: continuing from step {look.steps_done} of {look.steps}")
        return look

    # -- the looks --------------------------------------------------------------------------------

    def make(self, looks, progress) -> tuple[list[str], list[str]]:
        """Make ``looks`` (this process's share), ``K`` at a time; returns the names made and those stopped
        early (a loss or gradient that was not finite: the last finite LUT is written)."""
        if not looks:
            return [], []
        import torch

        from lutgen.optim.looks import LookGroup
        from lutgen.tasks.library import LibraryInterrupted, batch_looks

        self._prepare(looks)
        o = self.plan.options
        k = batch_looks(o.batch_looks, self.device, max(look.options.batch_size for look in looks), self.side // 3,
                        len(looks))
        by_name = {look.name: look for look in looks}
        queue, group = list(looks), LookGroup(self.guide)
        made, stopped = [], []
        bar = progress(sum(look.options.steps for look in looks)) if progress is not None else NoProgressBar()
        try:
            if self.processes.leader:
                self.echo(f"Making {len(looks)} look(s), {k} at a time")
            while queue or group.looks:
                while queue and len(group.looks) < k:
                    look = self._start(queue.pop(0), o.resume)
                    bar.update(look.steps_done)
                    group.add(look)
                self._finish_done(group, by_name, made)
                if not group.looks:
                    continue
                stepped, halted = group.step()
                for name, (record, what) in halted.items():
                    look = next(item for item in group.looks if item.name == name)
                    self._write(look, by_name[name], f"stopped after step {look.steps_done} of {look.steps}: the "
                                f"next {what} was not finite")
                    group.remove(look)
                    stopped.append(name)
                self._finish_done(group, by_name, made)
                bar.update(len(stepped))
        except KeyboardInterrupt as stop:
            raise LibraryInterrupted(self._interrupted(group.looks, made), stop) from None
        except torch.OutOfMemoryError:
            saved = self._save_progress(group.looks)
            raise LutgenError(
                f"the {self.device.type} device ran out of memory with {k} looks together; {len(made)} looks are "
                f"written and the progress of {saved} others is saved: rerun with a smaller --batch-looks and --resume"
            ) from None
        finally:
            bar.close()
        return made, stopped

    def _finish_done(self, group, by_name: dict, made: list) -> None:
        for look in [look for look in group.looks if look.finished]:
            self._write(look, by_name[look.name])
            group.remove(look)
            made.append(look.name)

    def _write(self, look, planned, note: str | None = None) -> None:
        """Write a look's ``.cube`` (atomically), its thumbnails and its record, and drop its checkpoint."""
        from lutgen.formats import write_lut
        from lutgen.guidance.scoring import score_luts, target_from_embeddings
        from lutgen.tasks.optimize import recipe_lines

        o, plan, spec = planned.options, planned.plan, planned.spec
        comments = [*recipe_lines(o, plan, self.weights_label),
                    f"library look {spec.name} of {Path(self.plan.options.prompts_file).name} line {spec.line}"]
        if note is not None:
            comments.append(note)
        lut = look.lut.to_lut(title=plan.title, comments=tuple(comments))
        write_lut(lut, records.cube_path(self.output_dir, spec.name))
        e = look.objective.evidence
        target = target_from_embeddings(e.prompts, e.prompt_weights, e.negatives, e.negative_weights)
        before = float((self.before_embeddings @ target.vector).mean())
        after = score_luts(self.guide, self.score_views, [lut], target)[0]
        thumbnails = write_look_thumbnails(self.output_dir, spec.name, lut, self.thumbnail_pixels())
        records.write_record(self.output_dir, {
            "name": spec.name, "prompt": spec.prompt, "file": records.cube_path(self.output_dir, spec.name).name,
            "line": spec.line, "seed": plan.seed, "steps": o.steps, "steps_done": look.steps_done,
            "lut_size": o.lut_size, "settings": dict(spec.settings), "clip": self.weights_label,
            "score_before": before, "score_after": after, "thumbnails": thumbnails, "stopped": note,
            "fingerprint": planned.fingerprint,
        })
        records.remove_checkpoint(self.output_dir, spec.name)
        if self.processes.leader:
            records.write_library_json(self.output_dir, self.library_data())
        if note is not None:
            self.warn(f"{spec.name}: {note}; the last finite LUT is written to {spec.name}.cube")
        self.echo(f"wrote {spec.name}.cube (CLIP score {before:.4f} -> {after:.4f})")

    def _save_progress(self, looks) -> int:
        """Checkpoint every look in progress; returns how many were saved (a second interruption stops it)."""
        saved = 0
        try:
            for look in looks:
                if look.steps_done > 0:
                    planned = next(item for item in self.plan.looks if item.name == look.name)
                    records.save_checkpoint(self.output_dir, look.name, planned.fingerprint, look.state())
                    saved += 1
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: what is saved is saved, each checkpoint whole or absent
        return saved

    def _interrupted(self, looks, made: list[str]) -> str:
        saved = self._save_progress(looks)
        kept = f"interrupted; the {len(made)} look(s) finished in this run are written to {self.output_dir}"
        if saved:
            return f"{kept}, and the progress of {saved} other(s) is saved: rerun with --resume to continue"
        return f"{kept}; rerun the same command to make the others"

    # -- the library's files ------------------------------------------------------------------------

    def thumbnail_pixels(self):
        if self._thumbnails is None:
            self._thumbnails = thumbnail_pixels(self.images)
        return self._thumbnails

    def library_data(self) -> dict:
        return records.library_data(self.output_dir, Path(self.plan.options.prompts_file), self.plan.seed,
                                    [(look.name, look.fingerprint) for look in self.plan.looks])

    def write_index(self) -> tuple[Path, Path]:
        """``library.json`` and ``index.html`` for every look of the prompts file (by the first process)."""
        data = self.library_data()
        before = write_before_thumbnails(self.output_dir, self.thumbnail_pixels())
        return records.write_library_json(self.output_dir, data), write_index(self.output_dir, data, before)
