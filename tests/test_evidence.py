"""The evidence loss terms (lutgen.optim.evidence) and the torch Oklab (lutgen.color.oklab_torch).

Values against independent float64 NumPy computations, gradients against finite differences
(``torch.autograd.gradcheck`` in float64), and the behaviour each term exists for: the margin of
the negative term is reached and then holds, gradient steps on the colour term reach the
reference's colours (blacks included), and Adam on the pair term recovers a known table.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference import smooth_random_lut, trilinear_reference

from lutgen.color import oklab
from lutgen.color.oklab_torch import CBRT_KNEE, safe_cbrt, srgb_to_oklab
from lutgen.color.torch_ops import apply_lut, identity_table
from lutgen.lut import UNIT_DOMAIN
from lutgen.optim import evidence as ev
from lutgen.optim.losses import clip_loss

F64 = torch.float64


@pytest.fixture
def one_thread():
    """Optimisation loops on tiny tensors: one thread is fastest (and steady on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _unit(rows: int, dims: int, seed: int, dtype=F64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(rows, dims, generator=generator, dtype=F64), dim=-1).to(dtype)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(F64).numpy()


def _np_unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------------------
# Oklab in torch
# ------------------------------------------------------------------------------------------------


def _dense_grid() -> np.ndarray:
    """A 33^3 grid of sRGB over [0, 1] (0 and 1 included), every 8-bit grey, and the darkest codes."""
    axis = np.linspace(0.0, 1.0, 33)
    cube = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    greys = np.repeat(np.arange(256)[:, None] / 255.0, 3, axis=1)
    dark = np.stack(np.meshgrid(*[np.arange(4) / 255.0] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    return np.concatenate([cube, greys, dark])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_oklab_matches_numpy_on_a_dense_grid(dtype):
    rgb = _dense_grid()
    got = srgb_to_oklab(torch.from_numpy(rgb).to(dtype))
    assert got.dtype == dtype and got.shape == rgb.shape
    np.testing.assert_allclose(_np(got), oklab.srgb_to_oklab(rgb), rtol=0, atol=1e-6)


def test_oklab_within_its_bound_below_the_cube_root_knee():
    """Colours so dark that their cone responses fall below the knee, where the root is a line."""
    rng = np.random.default_rng(0)
    rgb = 10.0 ** rng.uniform(-22, -14, size=(2000, 3))
    rgb[:10] = 0.0
    got = srgb_to_oklab(torch.from_numpy(rgb))
    np.testing.assert_allclose(_np(got), oklab.srgb_to_oklab(rgb), rtol=0, atol=1e-6)
    x = torch.logspace(-24, -12, 5000, dtype=F64)
    error = (safe_cbrt(x) - x ** (1 / 3)).abs()
    assert error.max() <= 0.385 * CBRT_KNEE ** (1 / 3) * (1 + 1e-9)
    above = x >= CBRT_KNEE
    np.testing.assert_allclose(_np(safe_cbrt(x[above])), _np(x[above] ** (1 / 3)), rtol=1e-15, atol=0)
    assert torch.equal(safe_cbrt(-x), -safe_cbrt(x))


def test_oklab_gradient_at_black_is_the_documented_finite_slope():
    rgb = torch.zeros(3, dtype=F64, requires_grad=True)
    jacobian = torch.autograd.functional.jacobian(srgb_to_oklab, rgb)
    expected = oklab.LMS_TO_OKLAB @ (CBRT_KNEE ** (-2 / 3) * oklab.LINEAR_SRGB_TO_LMS) / 12.92
    np.testing.assert_allclose(jacobian.numpy(), expected, rtol=1e-12)
    for dtype in (torch.float32, torch.float64):
        edges = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.04045, 0.0, 1.0], [0.0, 0.5, 0.0]], dtype=dtype)
        edges.requires_grad_(True)
        srgb_to_oklab(edges).sum().backward()
        assert torch.isfinite(edges.grad).all()


def test_oklab_gradcheck():
    rng = np.random.default_rng(1)
    rgb = np.concatenate([rng.uniform(0.01, 0.99, (6, 3)), [[0.03, 0.05, 0.5], [0.9, 0.02, 0.04]]])
    x = torch.tensor(rgb, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(srgb_to_oklab, (x,))


def test_oklab_half_precision_is_computed_in_float32():
    rgb = torch.tensor([[0.0, 0.0, 0.0], [0.25, 0.5, 0.75], [1.0, 1.0, 1.0]], dtype=torch.float16)
    got = srgb_to_oklab(rgb)
    assert got.dtype == torch.float16
    np.testing.assert_allclose(_np(got), oklab.srgb_to_oklab(_np(rgb)), atol=2e-3)


def test_oklab_refuses_integers_and_wrong_shapes():
    with pytest.raises(ValueError, match="float"):
        srgb_to_oklab(torch.zeros(2, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        srgb_to_oklab(torch.zeros(3, 2))


# ------------------------------------------------------------------------------------------------
# Prompts, directions, negatives, references (CLIP embeddings)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_one_prompt_of_weight_one_is_exactly_the_clip_loss(dtype):
    graded, target = _unit(5, 16, 0, dtype), _unit(1, 16, 1, dtype)
    got = ev.prompt_loss(graded, target, torch.ones(1, dtype=dtype))
    assert torch.equal(got, clip_loss(graded, target))


def test_prompt_loss_by_hand():
    graded, targets = _unit(4, 8, 2), _unit(3, 8, 3)
    weights = torch.tensor([1.0, 0.5, 2.0], dtype=F64)
    g, t, w = _np(graded), _np(targets), _np(weights)
    expected = sum(w[i] * np.mean([1 - g[b] @ t[i] for b in range(4)]) for i in range(3))
    assert ev.prompt_loss(graded, targets, weights).item() == pytest.approx(expected, rel=1e-14)


def test_text_directions_are_unit_differences_and_refuse_the_source_itself():
    targets, source = _unit(3, 8, 4), _unit(1, 8, 5)
    got = ev.text_directions(targets, source)
    np.testing.assert_allclose(_np(got), _np_unit(_np(targets) - _np(source)), rtol=1e-14)
    with pytest.raises(ValueError, match="prompt 2 has the same text embedding as the source prompt"):
        ev.text_directions(torch.cat([targets[:1], source, targets[2:]]), source)


def _directional_reference(g, o, d, w, eps):
    total = 0.0
    for i in range(len(d)):
        terms = [1 - (g[b] - o[b]) @ d[i] / np.sqrt(np.sum((g[b] - o[b]) ** 2) + eps**2) for b in range(len(g))]
        total += w[i] * np.mean(terms)
    return total


def test_directional_loss_by_hand_and_close_to_the_true_cosine_for_visible_changes():
    original = _unit(4, 8, 6)
    graded = F.normalize(original + 0.3 * _unit(4, 8, 7), dim=-1)  # |change| about 0.3, a visible grade
    directions, weights = _unit(2, 8, 8), torch.tensor([1.0, 0.25], dtype=F64)
    got = ev.directional_loss(graded, original, directions, weights).item()
    args = (_np(graded), _np(original), _np(directions), _np(weights))
    assert got == pytest.approx(_directional_reference(*args, ev.DIRECTION_EPS), rel=1e-13)
    exact = _directional_reference(*args, 0.0)
    assert abs(got - exact) < 0.01 * sum(_np(weights))


def test_directional_loss_at_the_identity_is_finite_and_pushes_along_the_direction():
    original, directions = _unit(3, 8, 9), _unit(2, 8, 10)
    weights = torch.tensor([1.0, 3.0], dtype=F64)
    graded = original.clone().requires_grad_(True)
    loss = ev.directional_loss(graded, original, directions, weights)
    assert loss.item() == 4.0  # sum of the weights: every cosine is 0
    loss.backward()
    expected = -(weights[:, None] * directions).sum(0) / (3 * ev.DIRECTION_EPS)
    np.testing.assert_allclose(_np(graded.grad), _np(expected.expand(3, 8)), rtol=1e-14, atol=0)
    assert torch.autograd.gradcheck(lambda g: ev.directional_loss(g, original, directions, weights),
                                    (original.clone().requires_grad_(True),))


def test_directional_loss_gradcheck():
    original = _unit(3, 6, 11)
    graded = (original + 0.05 * _unit(3, 6, 12)).requires_grad_(True)
    directions, weights = _unit(2, 6, 13), torch.tensor([0.7, 1.3], dtype=F64)
    assert torch.autograd.gradcheck(lambda g: ev.directional_loss(g, original, directions, weights), (graded,))


def test_negative_loss_by_hand():
    original, negatives = _unit(4, 8, 14), _unit(2, 8, 15)
    graded = F.normalize(original + 0.2 * _unit(4, 8, 16), dim=-1)
    weights = torch.tensor([1.0, 2.0], dtype=F64)
    g, o, n, w = map(_np, (graded, original, negatives, weights))
    excess = g @ n.T - o @ n.T + 0.03
    assert (excess > 0).any() and (excess < 0).any()  # some views past the margin, some not
    expected = np.sum(w * np.maximum(excess, 0).mean(axis=0))
    got = ev.negative_loss(graded, original, negatives, weights, margin=0.03)
    assert got.item() == pytest.approx(expected, rel=1e-14)


def test_negative_loss_at_the_identity_pushes_away_from_the_negative():
    original, negatives = _unit(4, 8, 17), _unit(2, 8, 18)
    weights = torch.tensor([1.0, 0.5], dtype=F64)
    graded = original.clone().requires_grad_(True)
    loss = ev.negative_loss(graded, original, negatives, weights)
    assert loss.item() == pytest.approx(ev.NEGATIVE_MARGIN * 1.5, rel=1e-15)
    loss.backward()
    expected = (weights[:, None] * negatives).sum(0) / 4
    np.testing.assert_allclose(_np(graded.grad), _np(expected.expand(4, 8)), rtol=1e-14, atol=0)
    stepped = F.normalize(original - 0.01 * graded.grad, dim=-1)
    assert ((stepped - original) @ negatives.T @ weights < 0).all()  # every view moves away from the negatives
    single = original.clone().requires_grad_(True)
    ev.negative_loss(single, original, negatives[:1], weights[:1]).backward()
    stepped = F.normalize(original - 0.01 * single.grad, dim=-1)
    assert (stepped @ negatives[0] < original @ negatives[0]).all()


def test_negative_loss_stops_once_the_margin_is_reached():
    original, negative = _unit(2, 8, 19), _unit(1, 8, 20)
    weight = torch.ones(1, dtype=F64)
    raw = original.clone().requires_grad_(True)
    for _ in range(300):  # plain gradient descent
        loss = ev.negative_loss(F.normalize(raw, dim=-1), original, negative, weight)
        if loss.item() == 0.0:
            break
        (gradient,) = torch.autograd.grad(loss, raw)
        with torch.no_grad():
            raw -= 0.05 * gradient
    assert loss.item() == 0.0
    drop = _np(original @ negative.T - F.normalize(raw.detach(), dim=-1) @ negative.T)
    assert (drop >= ev.NEGATIVE_MARGIN).all() and (drop < ev.NEGATIVE_MARGIN + 0.01).all()  # and no further
    raw.grad = None
    ev.negative_loss(F.normalize(raw, dim=-1), original, negative, weight).backward()
    assert torch.count_nonzero(raw.grad) == 0


def test_reference_embedding_loss_by_hand():
    graded, references = _unit(3, 8, 21), _unit(4, 8, 22)
    r = _np_unit(_np(references).mean(axis=0))
    expected = np.mean(1 - _np(graded) @ r)
    assert ev.reference_embedding_loss(graded, references).item() == pytest.approx(expected, rel=1e-14)
    assert ev.reference_embedding_loss(graded[:1], graded[:1]).item() == pytest.approx(0.0, abs=1e-15)


# ------------------------------------------------------------------------------------------------
# Sampling
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count, total", [(30, 50), (5, 1000)], ids=["permutation", "rejection"])
def test_sample_rows_distinct_uniform_and_seeded(count, total):
    first = ev.sample_rows(count, total, torch.Generator().manual_seed(3))
    assert first.dtype == torch.long and len(first) == count and len(first.unique()) == count
    assert 0 <= first.min() and first.max() < total
    assert torch.equal(first, ev.sample_rows(count, total, torch.Generator().manual_seed(3)))
    generator = torch.Generator().manual_seed(4)
    draws = 2000
    hits = torch.zeros(total)
    for _ in range(draws):
        hits[ev.sample_rows(count, total, generator)] += 1
    p = count / total
    sigma = np.sqrt(draws * p * (1 - p))
    assert (hits - draws * p).abs().max() < 5.5 * sigma  # each row as likely as any other


def test_sample_rows_takes_every_row_when_asked_for_as_many():
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(ev.sample_rows(7, 7, generator), torch.arange(7))
    assert torch.equal(ev.sample_rows(100, 7, generator), torch.arange(7))


def test_random_directions_are_seeded_unit_vectors():
    got = ev.random_directions(50, torch.Generator().manual_seed(1), "cpu", F64)
    assert got.shape == (50, 3) and got.dtype == F64
    np.testing.assert_allclose(_np(got.norm(dim=-1)), np.ones(50), rtol=1e-15, atol=0)
    again = ev.random_directions(50, torch.Generator().manual_seed(1), "cpu", torch.float32)
    np.testing.assert_allclose(_np(again), _np(got), rtol=0, atol=1e-6)
    assert (got.mean(0).abs() < 0.35).all()  # not all in one half-space


# ------------------------------------------------------------------------------------------------
# Colour distribution
# ------------------------------------------------------------------------------------------------


def _views(b, h, w, seed, low=0.0, high=1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(b, 3, h, w, generator=generator, dtype=F64)


def _pixels(views: torch.Tensor) -> torch.Tensor:
    """``(B*h*w, 3)`` in the order of :func:`ev.view_pixels`."""
    return views.permute(0, 2, 3, 1).reshape(-1, 3)


def test_view_pixels_reads_the_flat_pixel_order():
    views = _views(2, 3, 4, 0)
    rows = torch.tensor([0, 5, 11, 12, 23])
    assert torch.equal(ev.view_pixels(views, rows), _pixels(views)[rows])


def test_colour_loss_is_zero_when_the_pixels_are_the_reference():
    views = _views(2, 4, 5, 1)
    pixels = _pixels(views)
    reference = srgb_to_oklab(pixels[torch.randperm(40, generator=torch.Generator().manual_seed(0))])
    directions = ev.random_directions(8, torch.Generator().manual_seed(2), "cpu", F64)
    loss = ev.colour_distribution_loss(views, reference, directions, 100, torch.Generator().manual_seed(5))
    assert loss.item() < 1e-30
    drawn = pixels[ev.sample_rows(16, 40, torch.Generator().manual_seed(6))]  # the same draw as the loss makes
    loss = ev.colour_distribution_loss(views, srgb_to_oklab(drawn), directions, 16, torch.Generator().manual_seed(6))
    assert loss.item() < 1e-30
    assert ev.colour_distribution_loss(views, reference + 0.01, directions, 100, torch.Generator()).item() > 1e-5


@pytest.mark.parametrize("m, count", [(7, 7), (5, 12), (12, 5), (1, 4), (9, 1)])
def test_interpolated_quantiles_are_numpy_interp_at_the_midpoint_quantiles(m, count):
    values = np.sort(np.random.default_rng(m * count).normal(size=(2, m)), axis=-1)
    got = ev.interpolated_quantiles(torch.from_numpy(values), count)
    expected = [np.interp((np.arange(count) + 0.5) / count, (np.arange(m) + 0.5) / m, row) for row in values]
    np.testing.assert_allclose(_np(got), np.array(expected), rtol=1e-14, atol=1e-15)
    if m == count:
        assert torch.equal(got, torch.from_numpy(values))


def _sliced_reference(colours: np.ndarray, reference: np.ndarray, directions: np.ndarray) -> float:
    """The squared sliced W2 of float64 Oklab colours against reference colours, with np.interp quantiles."""
    s, m = len(colours), len(reference)
    total = 0.0
    for d in directions:
        mine = np.sort(colours @ d)
        theirs = np.interp((np.arange(s) + 0.5) / s, (np.arange(m) + 0.5) / m, np.sort(reference @ d))
        total += np.mean((mine - theirs) ** 2)
    return total / len(directions)


@pytest.mark.parametrize("samples, m", [(50, 30), (50, 50), (84, 200), (200, 33)],
                         ids=["fewer-reference", "equal", "more-reference", "all-pixels"])
def test_colour_loss_matches_a_float64_numpy_computation(samples, m):
    views = _views(2, 6, 7, 7)  # 84 pixels
    rng = np.random.default_rng(8)
    reference_rgb = rng.uniform(0.1, 0.9, (m, 3))
    reference = torch.from_numpy(oklab.srgb_to_oklab(reference_rgb))
    directions = ev.random_directions(6, torch.Generator().manual_seed(9), "cpu", F64)
    got = ev.colour_distribution_loss(views, reference, directions, samples, torch.Generator().manual_seed(10))
    generator = torch.Generator().manual_seed(10)  # the draws the loss makes, in its order
    rows = ev.sample_rows(samples, 84, generator)
    reference_rows = ev.sample_rows(samples, m, generator)
    colours = oklab.srgb_to_oklab(_np(_pixels(views)[rows]))
    expected = _sliced_reference(colours, _np(reference)[_np(reference_rows).astype(int)], _np(directions))
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_colour_loss_gradient_steps_reach_the_reference_colours(one_thread):
    """A global colour offset, learned through the loss, undoes the shift between views and reference."""
    views = _views(2, 10, 15, 11, 0.2, 0.8)
    reference = srgb_to_oklab(_pixels(views))
    shift = torch.tensor([0.08, -0.05, 0.03], dtype=F64)
    shifted = views + shift.view(1, 3, 1, 1)
    directions = ev.random_directions(12, torch.Generator().manual_seed(12), "cpu", F64)
    offset = torch.zeros(3, dtype=F64, requires_grad=True)
    optimizer = torch.optim.Adam([offset], lr=0.005)
    losses = []
    for _ in range(80):
        optimizer.zero_grad()
        loss = ev.colour_distribution_loss(shifted + offset.view(1, 3, 1, 1), reference, directions, 300,
                                           torch.Generator())
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[10] < 0.5 * losses[0] and losses[-1] < 1e-3 * losses[0]
    np.testing.assert_allclose(_np(offset), -_np(shift), rtol=0, atol=2e-3)



def test_oklab_for_loss_has_exact_values_and_takes_black_gradients_at_the_floor():
    rgb = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.25, 0.75], [0.0, 0.6, 0.3]], dtype=F64, requires_grad=True)
    assert torch.equal(ev.oklab_for_loss(rgb), srgb_to_oklab(rgb.detach()))
    jacobian = torch.autograd.functional.jacobian(ev.oklab_for_loss, rgb)  # (3, 3, 3, 3)
    floored = rgb.detach().clamp(min=ev.OKLAB_GRADIENT_FLOOR)
    expected = torch.autograd.functional.jacobian(srgb_to_oklab, floored)
    np.testing.assert_allclose(_np(jacobian), _np(expected), rtol=1e-13, atol=0)
    assert jacobian[0, :, 0].abs().max() < 10  # not the ~1e11 slope of Oklab at black


def test_colour_loss_lifts_black_to_a_matte_reference(one_thread):
    """Views with exact-black pixels and a reference whose blacks sit at 0.08 (the views through the affine
    look ``0.08 + 0.9 x``, which a 3^3 table reproduces): Adam on the table change lifts the black corner there."""
    views = _views(1, 24, 24, 24)
    views = torch.where(_views(1, 24, 24, 25)[:, :1] < 0.3, torch.zeros_like(views), views)
    reference = srgb_to_oklab(_pixels(0.08 + 0.9 * views))
    change = torch.zeros(3, 3, 3, 3, dtype=F64, requires_grad=True)
    optimizer = torch.optim.Adam([change], lr=0.005)
    generator = torch.Generator().manual_seed(26)
    for _ in range(150):
        graded = views + apply_lut(views, change)
        directions = ev.random_directions(ev.COLOUR_DIRECTIONS, generator, "cpu", F64)
        optimizer.zero_grad()
        ev.colour_distribution_loss(graded, reference, directions, 1000, generator).backward()
        optimizer.step()
    np.testing.assert_allclose(_np(change[0, 0, 0]), [0.08] * 3, atol=0.01)

@pytest.mark.parametrize("m", [4, 9], ids=["all-reference", "drawn-reference"])
def test_colour_loss_gradcheck(m):
    views = _views(1, 2, 3, 13, 0.05, 0.95).requires_grad_(True)
    reference = srgb_to_oklab(torch.from_numpy(np.random.default_rng(14).uniform(0.1, 0.9, (m, 3))))
    directions = ev.random_directions(2, torch.Generator().manual_seed(15), "cpu", F64)

    def loss(v):
        return ev.colour_distribution_loss(v, reference, directions, 6, torch.Generator().manual_seed(16))

    assert torch.autograd.gradcheck(loss, (views,))


def test_colour_loss_refuses_views_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\(B, 3, h, w\)"):
        ev.colour_distribution_loss(torch.rand(3, 4, 4), torch.rand(5, 3), torch.rand(2, 3), 4, torch.Generator())


# ------------------------------------------------------------------------------------------------
# Before/after pairs
# ------------------------------------------------------------------------------------------------


def test_charbonnier_by_hand():
    r = torch.tensor([0.0, 1e-9, -0.004, 0.01, 0.3, -2.0], dtype=F64)
    expected = np.sqrt(_np(r) ** 2 + 0.01**2) - 0.01
    np.testing.assert_allclose(_np(ev.charbonnier(r, 0.01)), expected, rtol=1e-9, atol=1e-18)
    assert ev.charbonnier(r, 0.01)[0].item() == 0.0
    assert ev.charbonnier(r, 0.01)[1].item() == pytest.approx(1e-18 / 0.02, rel=1e-12)  # no cancellation


def _known_look(size: int, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    """A smooth table built from sines, and its change from the identity as a float64 tensor."""
    table = smooth_random_lut(size, np.random.default_rng(seed)).table
    return table, torch.from_numpy(table) - identity_table(size, dtype=F64)


def test_pair_loss_is_zero_at_the_true_look_and_charbonnier_off_it():
    table, change = _known_look(5, 17)
    before = np.random.default_rng(18).uniform(0, 1, (500, 3))
    after = trilinear_reference(before, table, UNIT_DOMAIN)
    b, a = torch.from_numpy(before), torch.from_numpy(after)
    assert ev.pair_loss(change, b, a).item() < 1e-28  # only rounding of the two interpolations differs
    zero_change = torch.zeros_like(change)
    expected = np.mean(np.sqrt((before - after) ** 2 + ev.PAIR_DELTA**2) - ev.PAIR_DELTA)
    assert ev.pair_loss(zero_change, b, a).item() == pytest.approx(expected, rel=1e-12)


def test_pair_loss_gradcheck():
    _, change = _known_look(3, 19)
    rng = np.random.default_rng(20)
    before = torch.from_numpy(rng.uniform(0, 1, (20, 3)))
    after = before + torch.from_numpy(rng.normal(0, 0.02, (20, 3)))
    table_change = (0.5 * change).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: ev.pair_loss(t, before, after), (table_change,))


def test_adam_on_the_pair_loss_recovers_a_known_table(one_thread):
    """From zero, 200 Adam steps in float32 on 500 of 4,000 random pixel pairs a step recover a smooth
    5^3 look (changes up to 0.17) to 5e-4 at every node."""
    table, change = _known_look(5, 21)
    rng = np.random.default_rng(22)
    before = rng.uniform(0, 1, (4000, 3))
    b = torch.from_numpy(before).float()
    a = torch.from_numpy(trilinear_reference(before, table, UNIT_DOMAIN)).float()
    learned = torch.zeros(change.shape, requires_grad=True)
    optimizer = torch.optim.Adam([learned], lr=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 200)
    generator = torch.Generator().manual_seed(23)
    for _ in range(200):
        rows = ev.sample_rows(500, len(b), generator)
        optimizer.zero_grad()
        ev.pair_loss(learned, b[rows], a[rows]).backward()
        optimizer.step()
        schedule.step()
    assert (learned.detach().double() - change).abs().max() < 5e-4

