"""The AdaInt image-adaptive LUT model (AiLUT) in torch: backbone, interval module, LUT generator, losses.

For an image ``x`` (``(B, 3, H, W)`` in ``[0, 1]``):

1. **backbone f** (the 5-layer CNN "tpami"): ``x`` is resized to 256 x 256 (bilinear,
   ``align_corners=False``, no antialiasing), then 5 blocks of [3 x 3 convolution, stride 2, padding 1
   -> LeakyReLU(0.2) (-> InstanceNorm with affine parameters in blocks 1-4)] with 16, 32, 64, 128, 128
   channels, Dropout(0.5), and (with AdaInt) an adaptive average pooling to 2 x 2: a 512-d feature
   (without AdaInt there is no pooling: 128 x 8 x 8 = 8192-d);
2. **LUT generator h**: ``w = h0(feature)`` (``M`` weights, linear with bias), the image's LUT
   ``T = sum_m w_m B_m`` (``h1``, a bias-free linear layer whose columns are the ``M`` basis LUTs);
3. **AdaInt g**: a linear layer to ``3 (N - 1)`` logits; per channel a softmax gives ``N - 1``
   positive intervals summing to 1, whose cumulative sums after a leading 0 are the vertices;
4. the output is :func:`lutgen.color.adaint.ailut_transform` of ``x`` with ``T`` and the vertices.

Parameter names are those of the published checkpoints (see :mod:`lutgen.models`), so their state
dicts load as they are. The published code holds ``T`` as ``(B, 3, N, N, N)`` indexed
``[channel, b, g, r]``; :meth:`AiLUT.predict` returns it in lutgen's ``(B, N, N, N, 3)`` ``[b, g, r, c]``.

Losses: MSE + ``sparse_factor * mean(w^2)`` (:func:`sample_loss`, per image) + ``smooth_factor * TV`` +
``monotonicity_factor * Mono`` (:func:`regularisation_loss`, TV and Mono taken on the basis LUTs).
The default factors are the published FiveK settings (:data:`lutgen.models.FIVEK_LOSS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lutgen.color.adaint import ailut_transform
from lutgen.color.torch_ops import identity_table
from lutgen.models import BACKBONE_CHANNELS, FIVEK_LOSS, NORMED_BLOCKS, AdaIntLossWeights, ModelConfig, Weights

INPUT_SIZE = 256
LEAKY_SLOPE = 0.2
DROPOUT = 0.5


class ConvBlock(nn.Sequential):
    """3 x 3 convolution (stride 2, padding 1) -> LeakyReLU(0.2) [-> InstanceNorm(affine)]."""

    def __init__(self, in_channels: int, out_channels: int, norm: bool):
        layers = [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), nn.LeakyReLU(LEAKY_SLOPE)]
        if norm:
            layers.append(nn.InstanceNorm2d(out_channels, affine=True))
        super().__init__(*layers)


class Backbone(nn.Sequential):
    """The 5-layer CNN: ``(B, 3, H, W)`` -> feature ``(B, 512)`` (pooled) or ``(B, 8192)``."""

    def __init__(self, pooled: bool = True, input_size: int = INPUT_SIZE):
        blocks = []
        previous = 3
        for i, channels in enumerate(BACKBONE_CHANNELS):
            blocks.append(ConvBlock(previous, channels, norm=i < NORMED_BLOCKS))
            previous = channels
        blocks.append(nn.Dropout(DROPOUT))
        if pooled:
            blocks.append(nn.AdaptiveAvgPool2d(2))
        super().__init__(*blocks)
        self.input_size = input_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(images, size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        return super().forward(small).flatten(1)


class LUTGenerator(nn.Module):
    """Mapping h: feature ``(B, F)`` -> weights ``(B, M)`` and the image's table ``(B, N, N, N, 3)``."""

    def __init__(self, n_features: int, n_vertices: int, n_ranks: int):
        super().__init__()
        self.n_vertices = n_vertices
        self.n_ranks = n_ranks
        self.weights_generator = nn.Linear(n_features, n_ranks)
        self.basis_luts_bank = nn.Linear(n_ranks, 3 * n_vertices**3, bias=False)

    def reset_parameters(self) -> None:
        """Bias of h0 = 1; basis LUT 0 = identity, the others 0."""
        nn.init.ones_(self.weights_generator.bias)
        n = self.n_vertices
        bank = torch.zeros(3 * n**3, self.n_ranks)
        bank[:, 0] = identity_table(n).permute(3, 0, 1, 2).reshape(-1)
        with torch.no_grad():
            self.basis_luts_bank.weight.copy_(bank)

    def basis_luts(self) -> torch.Tensor:
        """The basis LUTs as published, ``(M, 3, N, N, N)`` indexed ``[m, channel, b, g, r]``."""
        n = self.n_vertices
        return self.basis_luts_bank.weight.t().reshape(self.n_ranks, 3, n, n, n)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.weights_generator(features)
        n = self.n_vertices
        published = self.basis_luts_bank(weights).reshape(-1, 3, n, n, n)
        return weights, published.permute(0, 2, 3, 4, 1)


class AdaIntModule(nn.Module):
    """Mapping g: feature ``(B, F)`` -> vertices ``(B, 3, N)``, each row from 0 to 1, increasing."""

    def __init__(self, n_features: int, n_vertices: int):
        super().__init__()
        self.n_vertices = n_vertices
        self.intervals_generator = nn.Linear(n_features, 3 * (n_vertices - 1))

    def reset_parameters(self) -> None:
        """W = 0, b = 1: uniform intervals."""
        nn.init.zeros_(self.intervals_generator.weight)
        nn.init.ones_(self.intervals_generator.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.intervals_generator(features).reshape(-1, 3, self.n_vertices - 1)
        return F.pad(logits.softmax(-1).cumsum(-1), (1, 0), value=0.0)


@dataclass
class AiLUTOutput:
    """What the model computes for a batch."""

    image: torch.Tensor  # (B, 3, H, W) the enhanced images (not clamped)
    weights: torch.Tensor  # (B, M) the basis-LUT weights
    table: torch.Tensor  # (B, N, N, N, 3) [b, g, r, c]
    vertices: torch.Tensor  # (B, 3, N), or (1, 3, N) uniform ones without AdaInt


class AiLUT(nn.Module):
    """Backbone + LUT generator + AdaInt (or a uniform grid): an image-adaptive 3D LUT per image."""

    def __init__(self, n_vertices: int = 33, n_ranks: int = 3, adaptive: bool = True):
        super().__init__()
        self.config = ModelConfig(n_vertices, n_ranks, adaptive)
        self.backbone = Backbone(pooled=adaptive)
        self.lut_generator = LUTGenerator(self.config.n_features, n_vertices, n_ranks)
        if adaptive:
            self.adaint = AdaIntModule(self.config.n_features, n_vertices)
        else:
            self.adaint = None
            uniform = torch.linspace(0.0, 1.0, n_vertices).repeat(1, 3, 1)
            self.register_buffer("uniform_vertices", uniform, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The published initialisation: Xavier-normal convolutions, instance-norm scale ~ N(1, 0.02) and
        bias 0, identity basis LUT, uniform intervals. Draws from torch's global generator."""
        for module in self.backbone.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_normal_(module.weight)
            elif isinstance(module, nn.InstanceNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)
        self.lut_generator.reset_parameters()
        if self.adaint is not None:
            self.adaint.reset_parameters()

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(weights (B, M), table (B, N, N, N, 3), vertices (B, 3, N))`` for images ``(B, 3, H, W)``."""
        features = self.backbone(images)
        weights, table = self.lut_generator(features)
        if self.adaint is not None:
            vertices = self.adaint(features)
        else:
            vertices = self.uniform_vertices.expand(images.shape[0], 3, self.config.n_vertices)
        return weights, table, vertices

    def forward(self, images: torch.Tensor) -> AiLUTOutput:
        weights, table, vertices = self.predict(images)
        return AiLUTOutput(ailut_transform(images, table, vertices), weights, table, vertices)

    def regularisation(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(TV, Mono)`` of the basis LUTs (see :func:`basis_regularisation`)."""
        return basis_regularisation(self.lut_generator.basis_luts())

    def adaint_parameters(self) -> list[nn.Parameter]:
        return [] if self.adaint is None else list(self.adaint.parameters())

    def other_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.adaint_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]


def basis_regularisation(basis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Smoothness (TV) and monotonicity penalties of basis LUTs ``(M, 3, N, N, N)`` ``[m, c, b, g, r]``.

    Along each lattice axis, ``D = B[k] - B[k+1]`` (a decrease is positive):
    ``TV = sum_axes mean(sum_m D^2)`` and ``Mono = sum_axes mean(sum_m ReLU(D))``.
    """
    tv = basis.new_zeros(())
    mono = basis.new_zeros(())
    for axis in (2, 3, 4):
        n = basis.shape[axis]
        decrease = basis.narrow(axis, 0, n - 1) - basis.narrow(axis, 1, n - 1)
        tv = tv + decrease.square().sum(0).mean()
        mono = mono + F.relu(decrease).sum(0).mean()
    return tv, mono


def sample_loss(output: AiLUTOutput, target: torch.Tensor, factors: AdaIntLossWeights = FIVEK_LOSS,
                teacher: torch.Tensor | None = None, distill_weight: float = 0.0) -> torch.Tensor:
    """The per-image part of the loss: ``MSE(out, target) + sparse_factor * mean(w^2)``, plus
    ``distill_weight * MSE(out, teacher)`` when a teacher's output is given (Born-Again training)."""
    loss = F.mse_loss(output.image, target)
    if factors.sparse_factor:
        loss = loss + factors.sparse_factor * output.weights.square().mean()
    if teacher is not None and distill_weight:
        loss = loss + distill_weight * F.mse_loss(output.image, teacher)
    return loss


def regularisation_loss(model: AiLUT, factors: AdaIntLossWeights = FIVEK_LOSS) -> torch.Tensor:
    """The per-model part of the loss: ``smooth_factor * TV + monotonicity_factor * Mono`` of the basis LUTs."""
    if not (factors.smooth_factor or factors.monotonicity_factor):
        return next(model.parameters()).new_zeros(())
    tv, mono = model.regularisation()
    return factors.smooth_factor * tv + factors.monotonicity_factor * mono


def build_model(weights: Weights) -> AiLUT:
    """An :class:`AiLUT` holding ``weights`` (float32, CPU, in eval mode)."""
    config = weights.config
    model = AiLUT(config.n_vertices, config.n_ranks, config.adaptive)
    state = {key: torch.from_numpy(value.copy()) for key, value in weights.tensors.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
