"""Independent float64 references for AdaInt: the transform and the published network.

Written from the equations of the AdaInt paper (Yang et al., CVPR 2022: the adaptive-interval
lookup and the network) and the layouts of its published code, without lutgen's code:

- the LUT is ``(3, N, N, N)`` indexed ``[o, k_b, k_g, k_r]``;
- the cell of ``x`` on vertices ``p`` is found like ``std::lower_bound``: ``k = clamp(#{p_j < x} - 1, 0, N - 2)``
  (counted here, not searched);
- the network is a chain of ``torch.nn.functional`` calls on the checkpoint's tensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_DIR = ROOT.parent / "shared" / "models" / "adaint"
SHIPPED_SRGB = ROOT / "lutgen" / "models" / "weights" / "fivek_srgb.safetensors"
EPS = 1e-10


def reference_cell(x: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell index and fraction of every value of ``x`` ``(P,)`` on the vertices ``p`` ``(N,)``."""
    n = len(p)
    below = (p[None, :] < x[:, None]).sum(axis=1)
    k = np.minimum(np.maximum(below - 1, 0), n - 2)
    return k, (x - p[k]) / (p[k + 1] - p[k] + EPS)


def reference_ailut(pixels: np.ndarray, lut: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """The AiLUT transform of colours ``pixels`` ``(P, 3)`` with ``lut`` ``(3, N, N, N)`` ``[o, b, g, r]``
    and ``vertices`` ``(3, N)``: the sum over the 8 corners of weight times node value."""
    x = np.asarray(pixels, dtype=np.float64)
    (kr, tr), (kg, tg), (kb, tb) = (reference_cell(x[:, c], vertices[c]) for c in range(3))
    out = np.zeros_like(x)
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                weight = (tr if dr else 1 - tr) * (tg if dg else 1 - tg) * (tb if db else 1 - tb)
                for o in range(3):
                    out[:, o] += weight * lut[o, kb + db, kg + dg, kr + dr]
    return out


def read_published_tensors(path: Path):
    """The tensors of a ``.pth`` (``torch.load(weights_only=True)``) or ``.safetensors`` file, as float64 torch."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {key: value.to(torch.float64) for key, value in state.items()}


def reference_network(tensors, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The published AiLUT (tpami backbone, AdaInt on) in float64 on ``image`` ``(H, W, 3)`` in [0, 1].

    Returns ``(lut (3, N, N, N) [o, b, g, r], vertices (3, N), output (H, W, 3))``.
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float64)).permute(2, 0, 1)[None]
    y = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
    for i in range(5):
        y = F.conv2d(y, tensors[f"backbone.{i}.0.weight"], tensors[f"backbone.{i}.0.bias"], stride=2, padding=1)
        y = F.leaky_relu(y, 0.2)
        if i < 4:
            y = F.instance_norm(y, weight=tensors[f"backbone.{i}.2.weight"], bias=tensors[f"backbone.{i}.2.bias"],
                                eps=1e-5)
    feature = F.adaptive_avg_pool2d(y, 2).reshape(1, -1)
    mix = F.linear(feature, tensors["lut_generator.weights_generator.weight"],
                   tensors["lut_generator.weights_generator.bias"])
    bank = tensors["lut_generator.basis_luts_bank.weight"]
    n = round((bank.shape[0] / 3) ** (1 / 3))
    lut = F.linear(mix, bank).reshape(3, n, n, n)
    logits = F.linear(feature, tensors["adaint.intervals_generator.weight"],
                      tensors["adaint.intervals_generator.bias"]).reshape(3, n - 1)
    vertices = torch.cat([torch.zeros(3, 1, dtype=torch.float64), logits.softmax(-1).cumsum(-1)], dim=1)
    lut, vertices = lut.numpy(), vertices.numpy()
    output = reference_ailut(image.reshape(-1, 3), lut, vertices).reshape(image.shape)
    return lut, vertices, output
