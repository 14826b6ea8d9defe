"""The trainable LUT representations: BoundedLUT, StructuredLUT, MonochromeLUT and their tone curves.

References are independent float64 computations: the identity grid of :mod:`lutgen.lut`, Rec.709
luma by hand, curves by ``np.interp`` over knots built with NumPy, CIE Lab (D65) written out below.
The claim tests fit looks computed in float64 from the colours themselves, with Adam on a plain
pixel loss, at one learning rate for every representation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import apply_reference

from lutgen.color.torch_ops import apply_lut, identity_table
from lutgen.lut import LUT, grid
from lutgen.optim.curves import MonotoneCurves, knot_positions, monotone_knots, piecewise_linear
from lutgen.optim.losses import lut_smoothness
from lutgen.optim.parameterisation import (
    LINEAR_SHARE,
    RESIDUAL_MAX_SIZE,
    BoundedLUT,
    MonochromeLUT,
    StructuredLUT,
    soft_share,
    soft_step,
)

LUMA = np.array([0.2126, 0.7152, 0.0722])


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomise(module: torch.nn.Module, scale: float, seed: int = 0) -> None:
    """Every parameter of ``module`` drawn from ``N(0, scale^2)``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype) * scale)


# ----------------------------------------------------------------------------------------------
# Tone curves


@pytest.mark.parametrize("knots", [2, 3, 5, 10, 17, 33, 100])
def test_curves_start_as_the_exact_identity(knots):
    curves = MonotoneCurves(3, knots)
    u = torch.cat([torch.rand(20000, 3, generator=torch.Generator().manual_seed(knots)),
                   torch.linspace(0, 1, 1001).unsqueeze(1).expand(-1, 3)])
    assert torch.equal(curves(u), u)
    assert torch.equal(curves.double()(u.double()), u.double())


def reference_curve(logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Float64 curve: knots from a hand softmax and cumulative sum, ``np.interp`` between them."""
    k = logits.shape[-1] + 1
    positions = np.linspace(0.0, 1.0, k)
    out = np.empty_like(u)
    for c, row in enumerate(logits):
        p = np.exp(row - row.max())
        values = np.concatenate([[0.0], np.cumsum(p) / p.sum()])
        out[:, c] = np.interp(u[:, c], positions, values)
    return out


def test_curves_match_a_float64_reference_and_are_monotone_onto_the_unit_range():
    curves = MonotoneCurves(3, 9)
    randomise(curves, 2.0)
    u = torch.rand(5000, 3, generator=torch.Generator().manual_seed(1))
    expected = reference_curve(curves.logits.detach().double().numpy(), u.double().numpy())
    np.testing.assert_allclose(curves(u).detach().numpy(), expected, rtol=0, atol=1e-6)
    ramp = torch.linspace(0, 1, 4001).unsqueeze(1).expand(-1, 3)
    randomise(curves, 30.0)  # extreme logits: increments underflow to 0, the curve is still monotone
    out = curves(ramp).detach()
    assert (out.diff(dim=0) >= 0).all()
    assert torch.equal(out[0], torch.zeros(3)) and torch.equal(out[-1], torch.ones(3))
    assert torch.equal(curves.values()[:, 0], torch.zeros(3)) and torch.equal(curves.values()[:, -1], torch.ones(3))


def test_curve_gradient_matches_finite_differences():
    logits = torch.randn(2, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    u = torch.rand(40, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def curve(lg, x):
        return piecewise_linear(x, knot_positions(6, lg), monotone_knots(lg))

    assert torch.autograd.gradcheck(curve, (logits.requires_grad_(True), u.requires_grad_(True)))


def test_curves_refuse_fewer_than_two_knots():
    with pytest.raises(ValueError, match="at least 2 knots"):
        MonotoneCurves(3, 1)


# ----------------------------------------------------------------------------------------------
# The soft clamp of the matrix stage


def test_soft_step_is_the_plain_step_while_linear_and_bounded_beyond():
    values = torch.rand(20000, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    step = torch.randn(20000, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 0.5
    room = torch.where(step >= 0, 1 - values, values)
    out = soft_step(values, step)
    linear = step.abs() <= LINEAR_SHARE * room
    assert linear.any() and (~linear).any()
    np.testing.assert_allclose(out[linear].numpy(), (values + step)[linear].numpy(), rtol=0, atol=1e-15)
    assert (out >= 0).all() and (out <= 1).all()
    moved = out - values  # past the linear part: less than the step, more than the linear share
    assert (moved[~linear].abs() < step[~linear].abs()).all()
    assert (moved[~linear].abs() > LINEAR_SHARE * room[~linear]).all()
    huge = soft_step(values.float(), torch.full((20000,), 1e30)).float()
    assert (huge <= 1).all() and torch.equal(soft_step(values, torch.zeros_like(values)), values)
    edges = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    assert torch.equal(soft_step(edges, torch.tensor([-3.0, 3.0, 0.5, -0.25], dtype=torch.float64)),
                       torch.tensor([0.0, 1.0, 0.5, 0.75], dtype=torch.float64))


def test_soft_step_gradient_matches_finite_differences_across_the_knee():
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)  # steps of 0.1: none exactly on the knee at 0.5
    x = x[(x.abs() - LINEAR_SHARE).abs() > 1e-3]
    assert torch.autograd.gradcheck(soft_share, (x.requires_grad_(True),))
    values = torch.rand(50, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    step = torch.randn(50, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: soft_step(values, s), (step.requires_grad_(True),))


# ----------------------------------------------------------------------------------------------
# StructuredLUT


@pytest.mark.parametrize("size,knots", [(2, 2), (9, 5), (17, 17), (33, 10)])
def test_structured_lut_starts_as_the_exact_identity(size, knots):
    lut = StructuredLUT(size, curve_knots=knots)
    assert lut.size == size
    assert torch.equal(lut.table(), identity_table(size))
    assert torch.equal(lut.change(), torch.zeros(size, size, size, 3))
    assert torch.equal(lut(), lut.table())
    np.testing.assert_allclose(lut.to_lut().table, grid(size), rtol=0, atol=6e-8)  # float32 nodes


def test_structured_lut_starting_gradients_are_finite_and_reach_every_parameter():
    lut = StructuredLUT(9)
    target = torch.rand(9, 9, 9, 3, generator=torch.Generator().manual_seed(8))
    (lut.table() - target).square().mean().backward()
    for name, parameter in lut.named_parameters():
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().max() > 0, name


@pytest.mark.parametrize("scale", [0.3, 3.0, 1000.0])
def test_structured_lut_stays_in_range_with_finite_gradients_for_any_parameters(scale):
    lut = StructuredLUT(9)
    randomise(lut, scale)
    table = lut.table()
    assert table.min().item() >= 0.0 and table.max().item() <= 1.0
    table.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in lut.parameters())
    before = table.detach().clone()
    lut.keep_in_range()
    assert torch.equal(lut.table().detach(), before)
    lut_file = lut.to_lut(title="look", comments=("a comment",))
    assert lut_file.table.dtype == np.float64 and lut_file.title == "look"
    assert np.array_equal(lut_file.table, before.double().numpy())
    assert torch.equal(lut.change().detach(), before - lut.identity)


def test_structured_lut_gradient_matches_finite_differences():
    lut = StructuredLUT(3, curve_knots=4).double()
    randomise(lut, 0.4, seed=9)
    names = [name for name, _ in lut.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in lut.parameters())

    def table(*values):
        return torch.func.functional_call(lut, dict(zip(names, values, strict=True)), ())

    assert torch.autograd.gradcheck(table, params)


def test_structured_lut_matrix_stage_is_the_affine_grade_where_it_stays_linear():
    lut = StructuredLUT(5)
    matrix = torch.tensor([[0.9, 0.05, 0.0], [0.0, 0.8, 0.1], [0.05, 0.0, 0.85]])
    offset = torch.tensor([0.02, 0.05, 0.04])
    with torch.no_grad():
        lut.matrix.copy_(matrix - torch.eye(3))
        lut.offset.copy_(offset)
    g = grid(5)
    expected = g @ matrix.double().numpy().T + offset.double().numpy()
    room = np.where(expected >= g, 1 - g, g)
    linear = np.abs(expected - g) <= LINEAR_SHARE * room
    assert linear.mean() > 0.9
    np.testing.assert_allclose(lut.table().detach().double().numpy()[linear], expected[linear], rtol=0, atol=1e-6)


def test_structured_lut_keep_in_range_moves_inert_residuals_to_the_acting_side():
    lut = StructuredLUT(5)
    with torch.no_grad():
        lut.residual.fill_(-1.0)
        lut.residual[..., 0].fill_(1.0)
    before = lut.table().detach().clone()
    lut.keep_in_range()
    assert torch.equal(lut.table().detach(), before)
    base = lut.base().detach()
    assert (lut.residual[base == 0] >= 0).all() and (lut.residual[base == 1] <= 0).all()
    assert (lut.residual == 0).sum() == 3 * 25  # red's face at 1, green's and blue's faces at 0
    assert (lut.residual[(base > 0) & (base < 1)].abs() == 1).all()


# ----------------------------------------------------------------------------------------------
# MonochromeLUT


def test_monochrome_lut_starts_as_rec709_luma_with_black_and_white_kept():
    lut = MonochromeLUT(17)
    table = lut.table().detach()
    expected = grid(17) @ LUMA
    np.testing.assert_allclose(table.double().numpy(), np.repeat(expected[..., None], 3, axis=-1), rtol=0, atol=1e-6)
    assert torch.equal(table[0, 0, 0], torch.zeros(3)) and torch.equal(table[-1, -1, -1], torch.ones(3))
    np.testing.assert_allclose(lut.weights().detach().double().numpy(), LUMA, rtol=0, atol=1e-7)
    black, white = lut.output_levels()
    assert black.item() == 0.0 and white.item() == 1.0


@pytest.mark.parametrize("scale", [0.5, 5.0, 1000.0])
def test_monochrome_lut_is_neutral_and_in_range_for_any_parameters(scale):
    lut = MonochromeLUT(9)
    randomise(lut, scale, seed=10)  # levels negative too, before keep_in_range
    table = lut.table()
    assert torch.equal(table[..., 0], table[..., 1]) and torch.equal(table[..., 1], table[..., 2])
    assert table.min().item() >= 0.0 and table.max().item() <= 1.0
    assert np.array_equal(lut.to_lut().table, table.detach().double().numpy())
    assert torch.equal(lut.change().detach(), table.detach() - lut.identity)
    table.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in lut.parameters())
    lut.keep_in_range()
    assert torch.equal(lut.table().detach(), table.detach()) and (lut.levels >= 0).all()


def test_monochrome_lut_gradient_matches_finite_differences():
    lut = MonochromeLUT(3, curve_knots=4).double()
    randomise(lut, 0.4, seed=11)
    with torch.no_grad():
        lut.levels.abs_()  # away from the switch at 0
    names = [name for name, _ in lut.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in lut.parameters())

    def table(*values):
        return torch.func.functional_call(lut, dict(zip(names, values, strict=True)), ())

    assert torch.autograd.gradcheck(table, params)


# ----------------------------------------------------------------------------------------------
# The shared interface


@pytest.mark.parametrize("make", [lambda: BoundedLUT(5), lambda: StructuredLUT(5), lambda: MonochromeLUT(5)])
def test_param_groups_cover_every_parameter_exactly_once(make):
    lut = make()
    groups = lut.param_groups(0.01)
    grouped = [id(p) for group in groups for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in lut.parameters())
    assert all(group["lr"] > 0 for group in groups)
    assert lut.device == torch.device("cpu") and lut.size == 5
    torch.optim.Adam(groups)  # Adam accepts them as they are


def test_param_group_rates_are_the_documented_multiples():
    assert [g["lr"] for g in BoundedLUT(3).param_groups(0.01)] == [0.01]
    assert [g["lr"] for g in StructuredLUT(3).param_groups(0.01)] == [0.02, 0.01, 0.01]
    assert [g["lr"] for g in MonochromeLUT(3).param_groups(0.01)] == pytest.approx([0.03, 0.05, 0.01], abs=1e-15)


# ----------------------------------------------------------------------------------------------
# What the structured representations are for: large global changes, reached fast and smoothly


def desaturated(colours: np.ndarray) -> np.ndarray:
    """80% of the way to each colour's Rec.709 luma (float64)."""
    luma = colours @ LUMA
    return colours + 0.8 * (luma[:, None] - colours)


def white_balanced(colours: np.ndarray) -> np.ndarray:
    """A strong warm white balance: red times 1.25, blue times 0.75, clipped to 1 (float64)."""
    return np.minimum(colours * np.array([1.25, 1.0, 0.75]), 1.0)


BW_MIX, BW_GAMMA = np.array([0.5, 0.3, 0.2]), 1.4


def black_and_white(colours: np.ndarray) -> np.ndarray:
    """A black-and-white look unlike the starting luma: the mix (0.5, 0.3, 0.2), then a gamma of 1.4."""
    grey = (colours @ BW_MIX) ** BW_GAMMA
    return np.repeat(grey[:, None], 3, axis=1)


def fit(lut, look, steps: int = 200, learning_rate: float = 0.01, samples: int = 1024) -> None:
    """Adam on ``lut.param_groups(learning_rate)``: the mean squared error between random colours graded
    as the trainer grades them (``x + trilinear(x, change)``) and ``look`` of them."""
    rng = np.random.default_rng(0)
    optimizer = torch.optim.Adam(lut.param_groups(learning_rate))
    for _ in range(steps):
        colours = rng.random((samples, 3))
        x = torch.from_numpy(colours.T.reshape(1, 3, samples, 1)).float()
        target = torch.from_numpy(look(colours).T.reshape(1, 3, samples, 1)).float()
        loss = (x + apply_lut(x, lut.change()) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        lut.keep_in_range()


def written_lut_error(lut, look) -> tuple[np.ndarray, np.ndarray]:
    """The written LUT applied in float64 (the reference applier) to fresh colours, and ``look`` of them."""
    colours = np.random.default_rng(1).random((20000, 3))
    return apply_reference(colours, lut.to_lut()), look(colours)


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def written_smoothness(lut) -> float:
    """``lut_smoothness`` of the written table's change, in float64."""
    written = lut.to_lut().table
    return lut_smoothness(torch.from_numpy(written - grid(lut.size))).item()


def srgb_to_lab(colours: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65 white) of sRGB colours ``(P, 3)`` in ``[0, 1]``, float64, written out from the
    definitions: the sRGB decoding curve, the sRGB-to-XYZ matrix (IEC 61966-2-1 primaries, D65), CIE 1976 Lab."""
    linear = np.where(colours <= 0.04045, colours / 12.92, ((colours + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ])
    xyz = linear @ to_xyz.T / to_xyz.sum(axis=1)  # relative to the white, whose XYZ are the row sums
    epsilon, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > epsilon, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def test_srgb_to_lab_reference_values():
    lab = srgb_to_lab(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]))
    np.testing.assert_allclose(lab[:2], [[100, 0, 0], [0, 0, 0]], atol=1e-9)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.02)  # sRGB red, the published value
    np.testing.assert_allclose(lab[3], [53.39, 0, 0], atol=0.01)  # sRGB mid grey


@pytest.mark.parametrize(
    "look, structured_rms, structured_roughness",
    [
        (desaturated, 0.003, 4e-5),  # measured 0.0015 and 2.1e-5 (the look itself: 0)
        (white_balanced, 0.006, 4e-5),  # measured 0.0038 and 2.9e-5 (the look itself: 3.6e-5, its clip)
    ],
)
def test_structured_lut_reaches_a_large_global_change_that_bounded_lut_cannot(
    look, structured_rms, structured_roughness
):
    structured, bounded = StructuredLUT(9), BoundedLUT(9)
    fit(structured, look)
    fit(bounded, look)
    error = rms(*written_lut_error(structured, look))
    assert error < structured_rms
    assert written_smoothness(structured) < structured_roughness
    # BoundedLUT, at the same learning rate and steps, ends 40 and 7.7 times farther (measured 0.062
    # and 0.029) and over 50 times rougher (6.6e-3 and 1.6e-3)
    assert rms(*written_lut_error(bounded, look)) > 5 * error
    assert written_smoothness(bounded) > 1e-3


def test_monochrome_lut_reaches_a_black_and_white_look_that_bounded_lut_misses():
    lut = MonochromeLUT(9)
    fit(lut, black_and_white)
    graded, expected = written_lut_error(lut, black_and_white)
    np.testing.assert_allclose(graded, np.repeat(graded[:, :1], 3, axis=1), rtol=0, atol=1e-12)
    delta_e = np.linalg.norm(srgb_to_lab(np.clip(graded, 0, 1)) - srgb_to_lab(expected), axis=1)
    assert delta_e.mean() < 0.25  # CIE76; measured 0.074 (95th percentile 0.26)
    np.testing.assert_allclose(lut.weights().detach().double().numpy(), BW_MIX, rtol=0, atol=0.01)
    bounded = BoundedLUT(9)  # the same fit moves each node by itself and stays far off (measured 12.8)
    fit(bounded, black_and_white)
    graded, expected = written_lut_error(bounded, black_and_white)
    assert np.linalg.norm(srgb_to_lab(np.clip(graded, 0, 1)) - srgb_to_lab(expected), axis=1).mean() > 5.0


def test_a_large_structured_table_upsamples_its_residual_trilinearly():
    """Above RESIDUAL_MAX_SIZE nodes the residual is a coarse lattice interpolated to every node: its logits
    at the 64^3 nodes are the float64 trilinear interpolation of the coarse table there, the table starts
    as the identity exactly, and the residual alone (global stage at the identity) stays smooth."""
    lut = StructuredLUT(64)
    assert lut.residual.shape == (RESIDUAL_MAX_SIZE,) * 3 + (3,)
    assert torch.equal(lut.table(), lut.identity)
    with torch.no_grad():
        lut.residual.copy_(torch.randn(lut.residual.shape, generator=torch.Generator().manual_seed(3)))
    coarse = LUT(lut.residual.detach().double().numpy())
    nodes = grid(64).reshape(-1, 3)
    expected = apply_reference(nodes, coarse).reshape(64, 64, 64, 3)
    assert np.abs(lut.residual_logits().detach().double().numpy() - expected).max() < 1e-5
    assert StructuredLUT(RESIDUAL_MAX_SIZE).residual.shape == (RESIDUAL_MAX_SIZE,) * 3 + (3,)
    assert StructuredLUT(9).residual.shape == (9, 9, 9, 3)
