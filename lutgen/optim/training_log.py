"""The log folder of ``lutgen optimize``: before|after pictures and .cube files of the steps,
``losses.csv``, the loss plot and a contact sheet.

The log is a by-product: a file that cannot be written (disk full, folder removed, a folder where a
file should be) is reported once as a warning and the run goes on. The folder is made at the first
write, so a run stopped before its first step leaves nothing behind. Every file is written
atomically (a fresh file renamed into place), except that ``losses.csv``, once written whole, is
extended by appending the new rows, so that a long run does not rewrite it at every snapshot.

Importing this module is cheap; torch is imported when a log is made.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lutgen.errors import LutgenError
from lutgen.formats import write_lut
from lutgen.imaging import ImageData, load_rgb_float, save_image

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_IMAGES = PROJECT_ROOT / "images"
CONTACT_SHEET_IMAGES = (
    "mate_greenmeadow.jpg",
    "chelsea_cat.jpg",
    "coffee.jpg",
    "mate_dune.jpg",
    "astronaut.jpg",
    "mate_yellowflower.jpg",
)
PREVIEW_WIDTH = 768  # the whole before|after picture
CONTACT_SIDE = 440
STEP_DIGITS = 5
LOG_FILE_NAMES = re.compile(r"step_\d{%d,}\.(png|cube)|losses\.csv|loss_plot\.png|contact_sheet\.png" % STEP_DIGITS)
"""The names of the files a training log writes in its folder."""


def is_log_file_name(name: str) -> bool:
    """Whether a training log may write a file called ``name`` in its folder."""
    return LOG_FILE_NAMES.fullmatch(name) is not None


def contact_images(training: list[Path]) -> list[Path]:
    """The images of the contact sheet: the bundled ones, or up to six spread over ``training``."""
    bundled = [BUNDLED_IMAGES / name for name in CONTACT_SHEET_IMAGES if (BUNDLED_IMAGES / name).is_file()]
    if bundled:
        return bundled
    count = min(len(CONTACT_SHEET_IMAGES), len(training))
    return [training[round(i * (len(training) - 1) / max(1, count - 1))] for i in range(count)]


class TrainingLog:
    """Writes the files of the log folder (see the module docstring).

    Args:
        log_dir: the folder (made at the first write).
        prompt: the title of the .cube snapshots.
        test_pixels: ``(H, W, 3)`` float image shown before|after, at most :data:`PREVIEW_WIDTH` wide.
        device: torch device of the LUT.
        warn: prints a warning line (called once, for the first failure).
    """

    def __init__(self, log_dir: Path, prompt: str, test_pixels: np.ndarray, device, warn: Callable[[str], None]):
        import torch

        from lutgen.optim import report

        self.dir = Path(log_dir)
        self.prompt = prompt
        self.warn = warn
        self.failed = False
        self.report = report
        self.half = (PREVIEW_WIDTH - report.GAP) // 2
        self.before = report.fit_width(report.to_uint8(test_pixels), self.half)
        self.test = torch.from_numpy(test_pixels).permute(2, 0, 1).contiguous().to(device)
        self.rows_written = 0  # step records already in losses.csv

    def _graded(self, pixels, table) -> np.ndarray:
        import torch

        from lutgen.color.torch_ops import apply_lut

        with torch.no_grad():
            graded = apply_lut(pixels, table).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        return self.report.to_uint8(graded)

    def _write(self, write: Callable[..., None], *args) -> bool:
        """``write(*args)`` in the (made if missing) folder; a failure becomes one warning (the first only)
        instead of ending the run. Returns whether it worked."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            write(*args)
            return True
        except (OSError, LutgenError) as error:
            if not self.failed:
                self.failed = True
                self.warn(f"could not write to the training log in {self.dir} ({_reason(error)}); the run goes on, "
                          "further log failures are not reported, and the LUT will still be saved")
            return False

    def _save_png(self, pixels: np.ndarray, name: str) -> None:
        image = ImageData(rgb=np.ascontiguousarray(pixels), format="PNG")
        self._write(save_image, image, self.dir / name)

    def snapshot(self, step: int, lut_module, records) -> None:
        """The before|after picture and the .cube of ``step``, and the losses so far."""
        table = lut_module.table().detach()
        after = self.report.fit_width(self._graded(self.test, table), self.half)
        name = f"step_{step:0{STEP_DIGITS}d}"
        self._save_png(self.report.side_by_side(self.before, after), f"{name}.png")
        lut = lut_module.to_lut(title=self.prompt, comments=(f"step {step}",))
        self._write(write_lut, lut, self.dir / f"{name}.cube")
        self.losses(records)

    def losses(self, records) -> None:
        """``losses.csv`` with every record: written whole the first time, then extended."""
        new = records[self.rows_written:]
        if not new:
            return
        path = self.dir / "losses.csv"
        if self.rows_written == 0:
            written = self._write(self.report.write_losses_csv, new, path)
        else:
            written = self._write(self.report.append_losses_csv, new, path)
        if written:
            self.rows_written = len(records)

    def finish(self, lut_module, records, training: list[Path]) -> None:
        """The losses, the loss plot and the contact sheet of the finished run."""
        import torch

        self.losses(records)
        if records:
            self._save_png(self.report.loss_plot(records), "loss_plot.png")
        table = lut_module.table().detach()
        pairs, labels = [], []
        for path in contact_images(training):
            try:
                pixels = load_rgb_float(path, max_side=CONTACT_SIDE)
            except LutgenError as error:
                self.warn(f"left {path} out of the contact sheet: {error}")
                continue
            tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous().to(table.device)
            pairs.append((self.report.to_uint8(pixels), self._graded(tensor, table)))
            labels.append(path.name)
        if pairs:
            self._save_png(self.report.contact_sheet(pairs, labels), "contact_sheet.png")


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error)
