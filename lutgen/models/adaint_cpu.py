"""AdaInt inference in NumPy: an image's own LUT and vertices, without importing torch.

The same computation as :class:`lutgen.models.adaint.AiLUT` (``predict``), in float32, for the CPU
path of ``lutgen enhance``: importing torch costs seconds, while this whole network (about 75 million
multiply-adds on a 256 x 256 input) takes milliseconds in NumPy. The tests check that both give the
same LUT and vertices.

Only the pixels that the 256 x 256 bilinear resize reads are converted to float, so an image of any
size costs the same.
"""

from __future__ import annotations

import numpy as np

from lutgen.models import NORMED_BLOCKS, Weights

INPUT_SIZE = 256
LEAKY_SLOPE = np.float32(0.2)
NORM_EPS = np.float32(1e-5)


def _source_positions(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear ``align_corners=False`` sampling along one axis: lower index, upper index, upper weight.

    The output pixel ``i`` reads the input at ``(i + 0.5) * in / out - 0.5``, clamped below at 0 (as
    torch's ``interpolate`` does, in float32).
    """
    scale = np.float32(in_size / out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    lower = np.minimum(src.astype(np.int64), in_size - 1)
    upper = np.minimum(lower + 1, in_size - 1)
    return lower, upper, (src - lower).astype(np.float32)


def resize_input(rgb: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """``rgb`` ``(H, W, 3)`` (uint8, uint16 or float) resized to ``(3, size, size)`` float32 in ``[0, 1]``.

    Bilinear with ``align_corners=False`` and no antialiasing, as the published model resizes its input.
    """
    height, width = rgb.shape[:2]
    top, bottom, wy = _source_positions(height, size)
    left, right, wx = _source_positions(width, size)
    scale = np.float32(1.0 / np.iinfo(rgb.dtype).max) if np.issubdtype(rgb.dtype, np.integer) else np.float32(1.0)

    def rows(index):
        picked = rgb[index]  # (size, W, 3)
        a = picked[:, left].astype(np.float32) * scale
        b = picked[:, right].astype(np.float32) * scale
        w = wx[None, :, None]
        return (np.float32(1.0) - w) * a + w * b

    upper_rows, lower_rows = rows(top), rows(bottom)
    w = wy[:, None, None]
    small = (np.float32(1.0) - w) * upper_rows + w * lower_rows
    return np.ascontiguousarray(small.transpose(2, 0, 1), dtype=np.float32)


def _conv3x3_stride2(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """3 x 3 convolution, stride 2, zero padding 1: ``(C, H, W)`` -> ``(O, ceil(H/2), ceil(W/2))``."""
    channels, height, width = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    out_h, out_w = (height + 1) // 2, (width + 1) // 2
    s_c, s_h, s_w = padded.strides
    windows = np.lib.stride_tricks.as_strided(
        padded, shape=(channels, 3, 3, out_h, out_w), strides=(s_c, s_h, s_w, 2 * s_h, 2 * s_w), writeable=False
    )
    columns = windows.reshape(channels * 9, out_h * out_w)
    out = weight.reshape(weight.shape[0], -1) @ columns
    out += bias[:, None]
    return out.reshape(weight.shape[0], out_h, out_w)


def _leaky_relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, x * LEAKY_SLOPE)


def _instance_norm(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = np.square(x - mean).mean(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(var + NORM_EPS) * scale[:, None, None] + shift[:, None, None]


def features(weights: Weights, small: np.ndarray) -> np.ndarray:
    """The backbone's feature vector ``(F,)`` for a resized input ``(3, 256, 256)``."""
    t = weights.tensors
    x = small
    for i in range(5):
        x = _leaky_relu(_conv3x3_stride2(x, t[f"backbone.{i}.0.weight"], t[f"backbone.{i}.0.bias"]))
        if i < NORMED_BLOCKS:
            x = _instance_norm(x, t[f"backbone.{i}.2.weight"], t[f"backbone.{i}.2.bias"])
    if weights.config.adaptive:  # adaptive average pooling to 2 x 2 (the map is 8 x 8 for 256 inputs)
        channels, height, width = x.shape
        x = x.reshape(channels, 2, height // 2, 2, width // 2).mean(axis=(2, 4))
    return x.reshape(-1)


def predict_lut(weights: Weights, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image's own LUT: ``table`` ``(N, N, N, 3)`` ``[b, g, r, c]`` and ``vertices`` ``(3, N)``, float64.

    ``rgb`` is ``(H, W, 3)`` uint8, uint16 (normalised by 255 or 65535) or float in ``[0, 1]``.
    """
    t = weights.tensors
    n = weights.config.n_vertices
    feature = features(weights, resize_input(rgb))
    mix = t["lut_generator.weights_generator.weight"] @ feature + t["lut_generator.weights_generator.bias"]
    published = (t["lut_generator.basis_luts_bank.weight"] @ mix).reshape(3, n, n, n)
    table = published.transpose(1, 2, 3, 0).astype(np.float64)
    if weights.config.adaptive:
        logits = t["adaint.intervals_generator.weight"] @ feature + t["adaint.intervals_generator.bias"]
        logits = logits.reshape(3, n - 1)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        intervals = exp / exp.sum(axis=1, keepdims=True)
        vertices = np.concatenate([np.zeros((3, 1), np.float32), np.cumsum(intervals, axis=1)], axis=1)
    else:
        vertices = np.tile(np.linspace(0.0, 1.0, n, dtype=np.float32), (3, 1))
    return table, vertices.astype(np.float64)
