"""Pictures and tables of a training run: before|after pictures, a contact sheet, the loss plot, losses.csv.

Pure numpy/Pillow (no torch, no plotting library). Pictures are ``(H, W, 3)`` uint8 arrays.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lutgen.fileio import atomic_write_bytes

BACKGROUND = (24, 24, 24)
GAP = 8

_COLOURS = {
    "total": (20, 20, 20),
    "clip": (31, 119, 180),
    "smooth": (255, 127, 14),
    "reg": (44, 160, 44),
    "black": (214, 39, 40),
    "lut_smooth": (148, 103, 189),
    "highlight": (188, 189, 34),
}
_LABELS = {
    "total": "total",
    "clip": "CLIP",
    "smooth": "image smoothness",
    "reg": "image regularisation",
    "black": "black preservation",
    "lut_smooth": "LUT smoothness",
    "highlight": "highlight preservation",
}


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float ``(H, W, 3)`` in ``[0, 1]`` to uint8, rounded to nearest and clipped."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = GAP) -> np.ndarray:
    """Two pictures of the same height next to each other, ``gap`` pixels apart."""
    height = max(left.shape[0], right.shape[0])
    out = np.empty((height, left.shape[1] + gap + right.shape[1], 3), np.uint8)
    out[:] = BACKGROUND
    out[: left.shape[0], : left.shape[1]] = left
    out[: right.shape[0], left.shape[1] + gap :] = right
    return out


def fit_width(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` shrunk (never enlarged) to at most ``width`` pixels wide (Lanczos)."""
    if image.shape[1] <= width:
        return image
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))


def contact_sheet(pairs: Sequence[tuple[np.ndarray, np.ndarray]], labels: Sequence[str],
                  columns: int = 2, tile_height: int = 220) -> np.ndarray:
    """A grid of before|after pairs, each scaled to ``tile_height`` and captioned with its label."""
    font = ImageFont.load_default()
    tiles = []
    for (before, after), label in zip(pairs, labels, strict=True):
        scale = tile_height / before.shape[0]
        size = (max(1, round(before.shape[1] * scale)), tile_height)
        b = np.asarray(Image.fromarray(before).resize(size, Image.Resampling.LANCZOS))
        a = np.asarray(Image.fromarray(after).resize(size, Image.Resampling.LANCZOS))
        pair = side_by_side(b, a)
        caption = Image.new("RGB", (pair.shape[1], 18), BACKGROUND)
        ImageDraw.Draw(caption).text((4, 3), f"{label}: before | after", fill=(220, 220, 220), font=font)
        tiles.append(np.concatenate([np.asarray(caption), pair]))
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    cell_w = max(t.shape[1] for t in tiles)
    cell_h = max(t.shape[0] for t in tiles)
    sheet = np.empty((rows * cell_h + (rows + 1) * GAP, columns * cell_w + (columns + 1) * GAP, 3), np.uint8)
    sheet[:] = BACKGROUND
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        top, left = GAP + r * (cell_h + GAP), GAP + c * (cell_w + GAP)
        sheet[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return sheet


def losses_csv_text(records: Sequence, header: bool = True) -> str:
    """Step records (objects with ``FIELDS``) as CSV lines, with the header line first if ``header``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fields = type(records[0]).FIELDS if records else ("step",)
    if header:
        writer.writerow(fields)
    for record in records:
        writer.writerow([record.step] + [f"{getattr(record, name):.6g}" for name in fields[1:]])
    return buffer.getvalue()


def write_losses_csv(records: Sequence, path: str | Path) -> None:
    """All step records as CSV, written atomically."""
    atomic_write_bytes(path, losses_csv_text(records).encode("utf-8"))


def append_losses_csv(records: Sequence, path: str | Path) -> None:
    """Append step records (no header) to a CSV file :func:`write_losses_csv` started."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(losses_csv_text(records, header=False))


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = high - low
    if span <= 0:
        return [low]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], steps: list[int],
           series: dict[str, list[float]], title: str, font) -> None:
    left, top, right, bottom = box
    draw.rectangle(box, outline=(120, 120, 120))
    draw.text((left, top - 16), title, fill=(0, 0, 0), font=font)
    values = [v for vs in series.values() for v in vs if math.isfinite(v)]
    if not values or not steps:
        return
    low, high = min(values), max(values)
    pad = (high - low) * 0.05 or max(abs(high) * 0.05, 1e-6)
    low, high = low - pad, high + pad
    first, last = steps[0], max(steps[-1], steps[0] + 1)

    def xy(step: int, value: float) -> tuple[float, float]:
        x = left + (step - first) / (last - first) * (right - left)
        y = bottom - (value - low) / (high - low) * (bottom - top)
        return x, y

    for tick in _nice_ticks(low, high):
        _, y = xy(first, tick)
        draw.line([(left, y), (right, y)], fill=(225, 225, 225))
        draw.text((4, y - 6), f"{tick:.4g}", fill=(60, 60, 60), font=font)
    for tick in _nice_ticks(first, last):
        x, _ = xy(int(tick), low)
        draw.text((x - 8, bottom + 4), f"{int(tick)}", fill=(60, 60, 60), font=font)
    legend_y = top + 4
    for name, vs in series.items():
        colour = _COLOURS[name]
        if len(vs) > 1:
            draw.line([xy(s, v) for s, v in zip(steps, vs, strict=True)], fill=colour, width=2)
        else:
            x, y = xy(steps[0], vs[0])
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.line([(right - 150, legend_y + 6), (right - 130, legend_y + 6)], fill=colour, width=3)
        draw.text((right - 125, legend_y), _LABELS[name], fill=(0, 0, 0), font=font)
        legend_y += 14


def loss_plot(records: Sequence, width: int = 900, height: int = 600) -> np.ndarray:
    """The loss curves: total and CLIP on top, the four weighted auxiliary terms below."""
    font = ImageFont.load_default()
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    steps = [r.step for r in records]
    margin_left, margin_right = 70, 20
    half = height // 2
    main = {name: [getattr(r, name) for r in records] for name in ("total", "clip")}
    aux = {name: [getattr(r, name) for r in records] for name in ("smooth", "reg", "black", "highlight", "lut_smooth")}
    _panel(draw, (margin_left, 30, width - margin_right, half - 30), steps, main, "loss (total, CLIP)", font)
    _panel(draw, (margin_left, half + 30, width - margin_right, height - 30), steps, aux,
           "weighted auxiliary losses", font)
    draw.text((width // 2 - 15, height - 16), "step", fill=(0, 0, 0), font=font)
    return np.asarray(canvas)
