"""``lutgen enhance VIDEO``: the model's LUT predicted for every frame, smoothed over time, reset at cuts.

A LUT predicted frame by frame flickers, since small changes of the picture move the prediction. The
table and the vertices are therefore smoothed by an exponential moving average,
``state = s * state + (1 - s) * prediction`` with ``s`` the temporal smoothing (0: every frame its own
LUT; the default 0.9 averages over about ten frames, 0.4 s at 25 fps). Averaging vertices that each rise
strictly from 0 to 1 gives vertices that do too, so every smoothed LUT is valid.

At a scene cut the average restarts from the new frame's own prediction, so one shot's grade never
bleeds into the next. A cut is detected on the model's own 256 x 256 input: the total-variation distance
between consecutive frames' colour histograms (32 bins per channel, averaged over R, G, B; 0 for the
same colours, 1 for disjoint ones) above :data:`DEFAULT_SCENE_CUT`. Motion within a shot moves pixels
but hardly the histogram, while a cut replaces it.

The network runs in NumPy and every frame is graded by the compiled CPU kernel at the source's depth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lutgen.models import DEFAULT_MODEL, Weights, load_weights
from lutgen.tasks.options import check_number
from lutgen.video.codecs import check_video_options

DEFAULT_SMOOTHING = 0.9
DEFAULT_SCENE_CUT = 0.35
HISTOGRAM_BINS = 32


def colour_histogram(small: np.ndarray) -> np.ndarray:
    """Per-channel histograms ``(3, HISTOGRAM_BINS)`` of a ``(3, H, W)`` float image in [0, 1], each summing to 1."""
    codes = np.clip((small * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1).reshape(3, -1)
    counts = np.stack([np.bincount(channel, minlength=HISTOGRAM_BINS) for channel in codes])
    return counts / codes.shape[1]


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance of two :func:`colour_histogram` results, averaged over channels: 0..1."""
    return float(0.5 * np.abs(a - b).sum(axis=1).mean())


@dataclass
class Smoothed:
    """One frame's LUT after smoothing: table ``(N, N, N, 3)``, vertices ``(3, N)``, and whether a cut reset it."""

    table: np.ndarray
    vertices: np.ndarray
    cut: bool


class TemporalSmoother:
    """The moving average of per-frame predictions, restarted at each scene cut (see the module)."""

    def __init__(self, smoothing: float = DEFAULT_SMOOTHING, scene_cut: float = DEFAULT_SCENE_CUT):
        self.smoothing = smoothing
        self.scene_cut = scene_cut
        self.state: Smoothed | None = None
        self.histogram: np.ndarray | None = None

    def __call__(self, small: np.ndarray, table: np.ndarray, vertices: np.ndarray) -> Smoothed:
        """Fold in the prediction ``table``, ``vertices`` of the frame whose model input is ``small`` (3, H, W)."""
        histogram = colour_histogram(small)
        cut = self.histogram is None or histogram_distance(histogram, self.histogram) > self.scene_cut
        self.histogram = histogram
        if cut or self.state is None:
            self.state = Smoothed(table, vertices, True)
        else:
            s = self.smoothing
            self.state = Smoothed(s * self.state.table + (1 - s) * table,
                                  s * self.state.vertices + (1 - s) * vertices, False)
        return self.state


class FrameEnhancer:
    """Grades frames ``(H, W, 3)`` uint8/uint16 one after the other with the smoothed model LUT."""

    def __init__(self, weights: Weights, smoothing: float = DEFAULT_SMOOTHING,
                 scene_cut: float = DEFAULT_SCENE_CUT):
        self.weights = weights
        self.smoother = TemporalSmoother(smoothing, scene_cut)
        self.cuts = 0

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        from lutgen.color.cpu import apply_lut_array
        from lutgen.models.adaint_cpu import predict_lut, resize_input
        from lutgen.tasks.enhance import model_lut

        small = resize_input(rgb)  # the model's own input; predicting from it gives the same LUT
        table, vertices = predict_lut(self.weights, np.ascontiguousarray(small.transpose(1, 2, 0)))
        smoothed = self.smoother(small, table, vertices)
        self.cuts += smoothed.cut
        return apply_lut_array(rgb, model_lut(smoothed.table, smoothed.vertices, self.weights.source))


def check_temporal_options(smoothing: float, scene_cut: float) -> None:
    """``--temporal-smoothing`` in [0, 1) and ``--scene-cut`` in (0, 1], or an :class:`OptionError`."""
    check_number("temporal-smoothing", smoothing, 0, 0.999)
    check_number("scene-cut", scene_cut, 0, 1, low_inclusive=False)


def enhance_video(source: Path, target: Path, *, model: str = DEFAULT_MODEL,
                  temporal_smoothing: float = DEFAULT_SMOOTHING, scene_cut: float = DEFAULT_SCENE_CUT,
                  codec: str | None = None, quality: int | None = None, progress: Callable | None = None):
    """Enhance every frame of the video ``source`` into ``target`` (written atomically).

    Returns the :class:`~lutgen.video.frames.VideoResult` and the number of scene cuts (the first frame
    counts as one). ``codec``, ``quality`` and ``progress`` as for :func:`lutgen.tasks.infer_video.infer_video`.
    """
    from lutgen.video.frames import grade_video

    check_temporal_options(temporal_smoothing, scene_cut)
    family = check_video_options(codec, quality)
    enhancer = FrameEnhancer(load_weights(model), temporal_smoothing, scene_cut)
    result = grade_video(Path(source), Path(target), enhancer, family=family, quality=quality, progress=progress)
    return result, enhancer.cuts

