"""The adaptive-interval transform, its export to standard LUTs, and the AdaInt model with shipped weights.

References: an independent float64 NumPy transform and network (``adaint_reference.py``, published
layouts), lutgen's uniform trilinear apply, finite differences, colour-science's .cube reader.
"""

from __future__ import annotations

import math

import colour
import numpy as np
import pytest
import torch
from adaint_reference import (
    PUBLISHED_DIR,
    ROOT,
    SHIPPED_SRGB,
    read_published_tensors,
    reference_ailut,
    reference_network,
)

from lutgen.color import torch_ops
from lutgen.color.adaint import (
    SHAPER_SIZE,
    ailut_array,
    ailut_transform,
    checked_lut_arrays,
    interval_coordinates,
    psnr,
    resample_to_lut,
    to_lut,
)
from lutgen.color.cpu import apply_lut_array
from lutgen.errors import LutgenError
from lutgen.formats import read_lut, write_lut
from lutgen.imaging import load_image, load_rgb_float
from lutgen.lut import grid
from lutgen.models import load_weights
from lutgen.models.adaint import AiLUT, basis_regularisation, build_model, parameter_count
from lutgen.models.adaint_cpu import predict_lut, resize_input

PHOTO = ROOT / "images" / "coffee.jpg"


def random_vertices(rng: np.random.Generator, n: int, spread: float = 1.0) -> np.ndarray:
    """``(3, n)`` strictly increasing from 0 to 1 with uneven intervals."""
    intervals = rng.uniform(0.2, 0.2 + spread, size=(3, n - 1))
    intervals /= intervals.sum(axis=1, keepdims=True)
    return np.concatenate([np.zeros((3, 1)), np.cumsum(intervals, axis=1)], axis=1)


def random_table(rng: np.random.Generator, n: int, amplitude: float = 0.15) -> np.ndarray:
    """``(n, n, n, 3)`` ``[b, g, r, c]``: the identity plus a smooth colour twist plus noise."""
    g = grid(n)
    return g + amplitude * np.sin(4 * g[..., [1, 2, 0]]) + 0.02 * rng.standard_normal(g.shape)


def published_layout(table: np.ndarray) -> np.ndarray:
    """lutgen's ``[b, g, r, c]`` table as the published ``[o, b, g, r]``."""
    return np.ascontiguousarray(table.transpose(3, 0, 1, 2))


# ------------------------------------------------------------------------------------------------
# The transform
# ------------------------------------------------------------------------------------------------


def test_uniform_vertices_equal_the_trilinear_apply():
    rng = np.random.default_rng(0)
    n = 17
    table = torch.from_numpy(random_table(rng, n)).float()
    vertices = torch.linspace(0, 1, n).repeat(3, 1)
    image = torch.rand(2, 3, 20, 30, generator=torch.Generator().manual_seed(1))
    out = ailut_transform(image, table, vertices)
    assert out.shape == image.shape
    assert torch.allclose(out, torch_ops.apply_lut(image, table), rtol=0, atol=1e-6)
    # unbatched image, batch-of-one table and vertices
    single = ailut_transform(image[1], table[None], vertices[None])
    assert torch.allclose(single, out[1], rtol=0, atol=1e-6)


def test_transform_equals_the_float64_reference_with_uneven_vertices_and_out_of_range_inputs():
    rng = np.random.default_rng(2)
    n, batch = 9, 2
    tables = np.stack([random_table(rng, n) for _ in range(batch)])
    vertices = np.stack([random_vertices(rng, n, spread=3.0) for _ in range(batch)])
    pixels = rng.uniform(-0.3, 1.3, size=(batch, 3, 11, 13))
    pixels[0, :, 0, :n] = vertices[0][:, :, None].repeat(1, axis=2)[:, :n, 0]  # exactly on vertices
    out = ailut_transform(torch.from_numpy(pixels), torch.from_numpy(tables), torch.from_numpy(vertices))
    assert out.dtype == torch.float64
    for b in range(batch):
        colours = pixels[b].reshape(3, -1).T
        expected = reference_ailut(colours, published_layout(tables[b]), vertices[b])
        got = out[b].numpy().reshape(3, -1).T
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ailut_array(colours, tables[b], vertices[b]), expected, rtol=0, atol=1e-12)


def test_a_shared_table_and_vertices_serve_the_whole_batch():
    rng = np.random.default_rng(3)
    n = 5
    table = torch.from_numpy(random_table(rng, n))
    vertices = torch.from_numpy(random_vertices(rng, n))
    images = torch.rand(3, 3, 4, 5, dtype=torch.float64)
    together = ailut_transform(images, table[None], vertices[None])
    for b in range(3):
        assert torch.equal(together[b], ailut_transform(images[b], table, vertices))


def test_out_of_range_inputs_are_extrapolated_from_the_edge_cells():
    vertices = np.array([[0.0, 0.1, 0.3, 0.6, 1.0]] * 3)
    axis = vertices[0]
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    # node j of each axis holds p_j: the transform is then the identity, extended beyond [0, 1]
    identity = np.stack([r, g, b], axis=-1)
    pixels = np.array([[-0.2, 0.05, 1.4], [0.0, 1.0, 2.0], [-1.0, 0.5, 1.0]])  # (P, 3)
    image = torch.from_numpy(pixels.T.reshape(3, 3, 1).copy())
    out = ailut_transform(image, torch.from_numpy(identity), torch.from_numpy(vertices))
    np.testing.assert_allclose(out.reshape(3, 3).T.numpy(), pixels, rtol=0, atol=1e-8)  # eps 1e-10
    # red output p_j^2 at red node j: below 0 the first cell's line continues, above 1 the last cell's
    squared = identity.copy()
    squared[..., 0] = squared[..., 0] ** 2
    red = ailut_transform(image, torch.from_numpy(squared), torch.from_numpy(vertices))[0, :, 0].numpy()
    first_slope = 0.1**2 / 0.1
    np.testing.assert_allclose(red, first_slope * pixels[:, 0], rtol=0, atol=1e-9)
    above = torch.tensor([1.4, 0.5, 0.5], dtype=torch.float64).reshape(3, 1, 1)
    last_slope = (1.0 - 0.6**2) / 0.4
    red_above = ailut_transform(above, torch.from_numpy(squared), torch.from_numpy(vertices))[0].item()
    assert red_above == pytest.approx(0.6**2 + last_slope * (1.4 - 0.6), abs=1e-9)


@pytest.mark.parametrize("wrt", ["image", "table", "vertices"])
def test_gradients_match_finite_differences(wrt):
    rng = np.random.default_rng(4)
    n = 4
    vertices = random_vertices(rng, n, spread=2.0)
    image = rng.uniform(-0.1, 1.1, size=(2, 3, 3, 4))
    for c in range(3):  # keep inputs away from the vertices, where the cell index changes
        for p in vertices[c]:
            close = np.abs(image[:, c] - p) < 0.02
            image[:, c][close] += 0.05
    args = {
        "image": torch.from_numpy(image),
        "table": torch.from_numpy(random_table(rng, n))[None].expand(2, n, n, n, 3).clone(),
        "vertices": torch.from_numpy(vertices)[None].expand(2, 3, n).clone(),
    }
    args[wrt].requires_grad_(True)

    def transform(tensor):
        values = dict(args, **{wrt: tensor})
        return ailut_transform(values["image"], values["table"], values["vertices"])

    assert torch.autograd.gradcheck(transform, (args[wrt],), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_vertex_gradient_follows_the_published_formulas():
    """dL/dp_k = sum_o g_o A_oc (-(1 - t)/D), dL/dp_{k+1} = sum_o g_o A_oc (-t/D), accumulated per pixel."""
    rng = np.random.default_rng(5)
    n = 5
    table = random_table(rng, n)
    vertices = random_vertices(rng, n, spread=2.0)
    pixels = rng.uniform(0, 1, size=(6, 3))
    upstream = rng.standard_normal((6, 3))
    v = torch.from_numpy(vertices).requires_grad_(True)
    out = ailut_transform(torch.from_numpy(pixels.T.reshape(3, 6, 1).copy()), torch.from_numpy(table), v)
    (out.reshape(3, 6).T * torch.from_numpy(upstream)).sum().backward()

    lut = published_layout(table)
    expected = np.zeros_like(vertices)
    for x, g in zip(pixels, upstream):
        cells = [np.searchsorted(vertices[c], x[c]) - 1 for c in range(3)]
        k = [min(max(cell, 0), n - 2) for cell in cells]
        delta = [vertices[c, k[c] + 1] - vertices[c, k[c]] + 1e-10 for c in range(3)]
        t = [(x[c] - vertices[c, k[c]]) / delta[c] for c in range(3)]
        for c in range(3):
            a = np.zeros(3)  # A_{o,c} = dy_o / dt_c
            for corner in np.ndindex(2, 2, 2):  # (dr, dg, db)
                w = 1.0
                for c2 in range(3):
                    if c2 != c:
                        w *= t[c2] if corner[c2] else 1 - t[c2]
                sign = 1 if corner[c] else -1
                a += sign * w * lut[:, k[2] + corner[2], k[1] + corner[1], k[0] + corner[0]]
            expected[c, k[c]] += (g @ a) * -(1 - t[c]) / delta[c]
            expected[c, k[c] + 1] += (g @ a) * -t[c] / delta[c]
    np.testing.assert_allclose(v.grad.numpy(), expected, rtol=1e-9, atol=1e-12)


ACCELERATORS = [
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")),
    pytest.param("mps", marks=pytest.mark.skipif(not torch.backends.mps.is_available(), reason="no MPS")),
]


@pytest.mark.parametrize("device", ACCELERATORS)
def test_same_numbers_and_gradients_on_an_accelerator(device):
    rng = np.random.default_rng(11)
    n = 33
    table = torch.from_numpy(random_table(rng, n)).float()
    vertices = torch.from_numpy(random_vertices(rng, n, spread=3.0)).float()
    image = torch.from_numpy(rng.uniform(-0.1, 1.1, size=(2, 3, 40, 50))).float()
    results = {}
    for where in ("cpu", device):
        args = [t.to(where).requires_grad_(True) for t in (image, table, vertices)]
        out = ailut_transform(*args)
        out.square().sum().backward()
        results[where] = [out.detach().cpu()] + [a.grad.cpu() for a in args]
    for cpu, accelerated in zip(results["cpu"], results[device]):
        torch.testing.assert_close(accelerated, cpu, rtol=1e-3, atol=1e-3)  # float32 sums in another order


def test_bad_shapes_are_refused():
    table = torch.zeros(5, 5, 5, 3)
    with pytest.raises(ValueError, match="vertices"):
        ailut_transform(torch.zeros(3, 2, 2), table, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="table"):
        ailut_transform(torch.zeros(3, 2, 2), torch.zeros(5, 5, 4, 3), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="batch"):
        ailut_transform(torch.zeros(2, 3, 2, 2), torch.zeros(3, 5, 5, 5, 3), torch.zeros(1, 3, 5))


# ------------------------------------------------------------------------------------------------
# Export
# ------------------------------------------------------------------------------------------------


def every_code_and_random_colours(depth: int, count: int = 200_000) -> np.ndarray:
    """Every grey/primary ramp code value plus random colours, ``(P, 3)`` of the integer dtype."""
    top = 255 if depth == 8 else 65535
    rng = np.random.default_rng(depth)
    ramp = np.arange(top + 1)
    ramps = np.concatenate([np.stack([ramp, ramp, ramp], 1), np.stack([ramp, 0 * ramp, top - ramp], 1)])
    colours = np.concatenate([ramps, rng.integers(0, top + 1, size=(count, 3))])
    return colours.astype(np.uint8 if depth == 8 else np.uint16)


@pytest.fixture(scope="module")
def uneven_lut():
    rng = np.random.default_rng(6)
    n = 33
    return random_table(rng, n, amplitude=0.2), random_vertices(rng, n, spread=3.0)


@pytest.mark.parametrize("depth", [8, 16])
def test_shaper_export_is_exact_at_every_code_value(uneven_lut, depth):
    table, vertices = uneven_lut
    lut = to_lut(table, vertices, decimals=None)
    assert lut.shaper.size == SHAPER_SIZE and lut.size == 33
    codes = every_code_and_random_colours(depth, 50_000)
    top = float(np.iinfo(codes.dtype).max)
    expected = reference_ailut(codes / top, published_layout(table), vertices)
    got = apply_lut_array(codes.astype(np.float64) / top, lut)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_smaller_shapers_are_close_but_not_exact(uneven_lut):
    """The error of a shaper whose nodes miss the vertices, on 8-bit codes, in code values."""
    table, vertices = uneven_lut
    codes = every_code_and_random_colours(8, 50_000).astype(np.float64) / 255
    expected = reference_ailut(codes, published_layout(table), vertices) * 255
    errors = {}
    for size in (1024, 4096, 65536):
        got = apply_lut_array(codes, to_lut(table, vertices, shaper_size=size, decimals=None)) * 255
        errors[size] = np.abs(got - expected).max()
    # measured: 1024 -> 0.44, 4096 -> 0.056, 65536 -> 2e-13 code values (this LUT is far more uneven
    # than the shipped model's, where 1024 and 4096 nodes give 0.01 and 0.001)
    assert errors[65536] < 1e-9
    assert 1e-3 < errors[4096] < 0.1 and errors[4096] < errors[1024] < 0.5


def test_written_cube_reads_back_through_lutgen_and_colour_science(uneven_lut, tmp_path):
    table, vertices = uneven_lut
    lut = to_lut(table, vertices)
    path = tmp_path / "adaptive.cube"
    write_lut(lut, path, style="resolve")
    back = read_lut(path)
    assert np.array_equal(back.table, lut.table) and np.array_equal(back.shaper.table, lut.shaper.table)

    codes = every_code_and_random_colours(8, 20_000)
    expected = reference_ailut(codes / 255.0, published_layout(table), vertices) * 255
    ours = apply_lut_array(codes, back).astype(np.float64)
    sequence = colour.read_LUT(str(path))
    theirs = sequence.apply(codes / 255.0) * 255
    for output in (ours, np.clip(np.round(theirs), 0, 255)):
        assert np.abs(output - np.clip(expected, 0, 255)).max() <= 0.5 + 2e-3
    assert np.abs(theirs - expected).max() < 2e-3  # inside [0, 1] the clamping reader agrees


def test_interval_coordinates_are_the_piecewise_linear_shaper(uneven_lut):
    _, vertices = uneven_lut
    n = vertices.shape[1]
    knots = interval_coordinates(vertices.T, vertices)
    np.testing.assert_allclose(knots, np.repeat(np.linspace(0, 1, n)[:, None], 3, 1), atol=1e-9)
    x = np.random.default_rng(7).uniform(0, 1, size=(1000, 3))
    for c in range(3):
        np.testing.assert_allclose(interval_coordinates(x, vertices)[:, c],
                                   np.interp(x[:, c], vertices[c], np.linspace(0, 1, n)), atol=1e-9)


def test_resampled_lut_holds_the_transform_at_its_nodes_and_improves_with_size(uneven_lut):
    table, vertices = uneven_lut
    colours = np.random.default_rng(8).uniform(0, 1, size=(100_000, 3))
    exact = reference_ailut(colours, published_layout(table), vertices)
    fidelity = []
    for size in (17, 33, 65):
        plain = resample_to_lut(table, vertices, size, decimals=None)
        assert plain.shaper is None and plain.size == size
        nodes = grid(size).reshape(-1, 3)
        expected = reference_ailut(nodes, published_layout(table), vertices)
        np.testing.assert_allclose(plain.table.reshape(-1, 3), expected, atol=1e-12)
        fidelity.append(psnr(apply_lut_array(colours, plain), exact))
    assert 30 < fidelity[0] < fidelity[1] < fidelity[2]
    # with uniform vertices, resampling at the table's own size gives the table back
    uniform = np.tile(np.linspace(0, 1, 33), (3, 1))
    np.testing.assert_allclose(resample_to_lut(table, uniform, 33, decimals=None).table, table, atol=1e-8)  # eps


def test_psnr():
    a = np.zeros(100)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 0.1) == pytest.approx(20.0)


@pytest.mark.parametrize(
    "vertices, message",
    [
        (np.tile([0.0, 0.5, 0.5, 1.0], (3, 1)), "strictly increasing"),
        (np.tile([0.1, 0.4, 0.6, 1.0], (3, 1)), "start at 0"),
        (np.tile([0.0, 0.4, 0.6, 0.9], (3, 1)), "end at 1"),
        (np.zeros((2, 4)), r"shape \(3, 4\)"),
    ],
)
def test_export_refuses_bad_vertices(vertices, message):
    with pytest.raises(ValueError, match=message):
        checked_lut_arrays(grid(4), vertices)


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------


def test_architecture_sizes_and_initialisation():
    torch.manual_seed(0)
    model = AiLUT()
    assert parameter_count(model) == 619_724
    assert parameter_count(AiLUT(adaptive=False)) == 593_516
    _, table, vertices = model.eval().predict(torch.rand(2, 3, 64, 48))
    assert table.shape == (2, 33, 33, 33, 3) and vertices.shape == (2, 3, 33)
    torch.testing.assert_close(vertices, torch.linspace(0, 1, 33).expand(2, 3, 33), rtol=0, atol=1e-6)
    basis = model.lut_generator.basis_luts()
    torch.testing.assert_close(basis[0].permute(1, 2, 3, 0), torch_ops.identity_table(33), rtol=0, atol=0)
    assert torch.count_nonzero(basis[1:]) == 0
    assert torch.all(model.lut_generator.weights_generator.bias == 1)


def test_regularisation_of_basis_luts():
    """TV and monotonicity against the published definition: diff of the LUT flipped along each axis."""
    rng = np.random.default_rng(9)
    n, m = 6, 3
    basis = torch.from_numpy(rng.standard_normal((m, 3, n, n, n)))
    tv, mono = basis_regularisation(basis)
    expected_tv = expected_mono = 0.0
    for axis in (2, 3, 4):
        diff = torch.diff(basis.flip(axis), dim=axis)
        expected_tv += diff.square().sum(0).mean().item()
        expected_mono += torch.relu(diff).sum(0).mean().item()
    assert tv.item() == pytest.approx(expected_tv, rel=1e-12)
    assert mono.item() == pytest.approx(expected_mono, rel=1e-12)
    identity = torch_ops.identity_table(n, dtype=torch.float64).permute(3, 0, 1, 2)[None]
    tv_id, mono_id = basis_regularisation(identity)
    assert mono_id.item() == 0 and tv_id.item() == pytest.approx(1 / (n - 1) ** 2)
    assert basis_regularisation(identity.flip(2, 3, 4))[1].item() == pytest.approx(1 / (n - 1))


@pytest.fixture(scope="module")
def shipped():
    return load_weights("fivek-srgb")


def test_the_tone_mapping_weights_are_shipped_too():
    xyz = load_weights("fivek-xyz")
    assert "AiLUT-FiveK-XYZ.pth" in xyz.metadata["source"] and sum(v.size for v in xyz.tensors.values()) == 619_724
    published = PUBLISHED_DIR / "AiLUT-FiveK-XYZ.pth"
    if published.is_file():
        for key, value in read_published_tensors(published).items():
            assert np.array_equal(value.float().numpy(), xyz.tensors[key]), key


def test_shipped_weights_are_the_published_checkpoint(shipped):
    assert shipped.config.n_vertices == 33 and shipped.config.n_ranks == 3 and shipped.config.adaptive
    assert sum(v.size for v in shipped.tensors.values()) == 619_724
    assert "5678851339dff90becb09c3dec41e7214207ccbc" in shipped.metadata["source"]
    assert "Apache License" in (SHIPPED_SRGB.parent / "LICENSE").read_text()
    assert "5678851339dff90becb09c3dec41e7214207ccbc" in (SHIPPED_SRGB.parent / "README.md").read_text()
    published = PUBLISHED_DIR / "AiLUT-FiveK-sRGB.pth"
    if not published.is_file():
        pytest.skip(f"{published} is not available")
    original = read_published_tensors(published)
    assert set(original) == set(shipped.tensors)
    for key, value in original.items():
        assert np.array_equal(value.float().numpy(), shipped.tensors[key]), key


def test_shipped_model_matches_an_independent_float64_computation(shipped):
    """Per-image LUT, vertices and output of the shipped model on a bundled photo vs the published
    architecture computed with functional calls in float64 from the weights file."""
    image = load_rgb_float(PHOTO).astype(np.float64)
    lut_ref, vertices_ref, output_ref = reference_network(read_published_tensors(SHIPPED_SRGB), image)

    model = build_model(shipped)
    with torch.no_grad():
        out = model(torch.from_numpy(image).float().permute(2, 0, 1)[None])
    np.testing.assert_allclose(out.table[0].numpy(), lut_ref.transpose(1, 2, 3, 0), rtol=0, atol=1e-4)
    np.testing.assert_allclose(out.vertices[0].numpy(), vertices_ref, rtol=0, atol=1e-4)
    np.testing.assert_allclose(out.image[0].permute(1, 2, 0).numpy(), output_ref, rtol=0, atol=1e-4)

    table, vertices = predict_lut(shipped, load_image(PHOTO).rgb)  # the NumPy path, from the uint8 pixels
    np.testing.assert_allclose(table, lut_ref.transpose(1, 2, 3, 0), rtol=0, atol=1e-4)
    np.testing.assert_allclose(vertices, vertices_ref, rtol=0, atol=1e-4)


def test_numpy_path_equals_the_torch_model_on_8_and_16_bit_pixels(shipped):
    model = build_model(shipped)
    rng = np.random.default_rng(10)
    for rgb in (load_image(ROOT / "images" / "chelsea_cat.jpg").rgb,
                rng.integers(0, 65536, size=(97, 301, 3)).astype(np.uint16)):
        x = torch.from_numpy(rgb.astype(np.float32) / np.iinfo(rgb.dtype).max).permute(2, 0, 1)[None]
        small = torch.nn.functional.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
        np.testing.assert_allclose(resize_input(rgb), small[0].numpy(), rtol=0, atol=1e-6)
        with torch.no_grad():
            _, table, vertices = model.predict(x)
        got_table, got_vertices = predict_lut(shipped, rgb)
        np.testing.assert_allclose(got_table, table[0].numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(got_vertices, vertices[0].numpy(), rtol=0, atol=1e-6)


def test_shipped_model_brightens_a_dark_photo_with_a_sensible_lut(shipped):
    """An underexposed photo comes out brighter and more contrasty, and the LUT keeps colours in place
    (each output channel follows its own input channel: the layout is right)."""
    rgb = load_image(ROOT / "images" / "mate_garden.jpg").rgb
    dark = np.round(255 * (rgb / 255.0) ** 1.6 * 0.7).astype(np.uint8)
    table, vertices = predict_lut(shipped, dark)
    graded = apply_lut_array(dark, to_lut(table, vertices)) / 255.0
    assert graded.mean() > dark.mean() / 255 + 0.08
    assert graded.std() > 1.15 * (dark / 255.0).std()
    g = grid(33).reshape(-1, 3)
    flat = table.reshape(-1, 3)
    for c in range(3):
        correlations = [np.corrcoef(flat[:, c], g[:, d])[0, 1] for d in range(3)]
        assert np.argmax(correlations) == c and correlations[c] > 0.9
    intervals = np.diff(vertices, axis=1)
    assert intervals.min() > 0.005 and intervals.max() < 0.1  # learned, uneven, and sane


def test_invalid_weights_are_one_sentence_errors(shipped, tmp_path):
    from safetensors.numpy import save_file

    missing = dict(shipped.tensors)
    del missing["adaint.intervals_generator.bias"]
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(LutgenError, match="does not hold AdaInt weights .*intervals_generator.bias"):
        load_weights(tmp_path / "missing.safetensors")
    wrong = dict(shipped.tensors, **{"backbone.0.0.bias": np.zeros(15, np.float32)})
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(LutgenError, match=r"shape \(15,\)"):
        load_weights(tmp_path / "wrong.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(LutgenError, match="not a readable PyTorch checkpoint"):
        load_weights(tmp_path / "junk.pth")
    with pytest.raises(LutgenError, match="unknown model"):
        load_weights("fivek-rgb")
    with pytest.raises(LutgenError, match="absent.safetensors: no such file"):
        load_weights(tmp_path / "absent.safetensors")


def test_a_state_dict_saved_by_torch_loads_as_a_model(tmp_path):
    torch.manual_seed(3)
    model = AiLUT(n_vertices=9, n_ranks=2)
    torch.save({"model": model.state_dict(), "step": 7}, tmp_path / "checkpoint.pt")
    loaded = build_model(load_weights(tmp_path / "checkpoint.pt"))
    assert loaded.config == model.config
    image = torch.rand(1, 3, 32, 40)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(image).image, model(image).image, rtol=0, atol=0)


def test_export_accepts_tensors_with_a_batch_of_one(uneven_lut):
    table, vertices = uneven_lut
    from_arrays = to_lut(table, vertices)
    from_tensors = to_lut(torch.from_numpy(table)[None].requires_grad_(True), torch.from_numpy(vertices)[None])
    assert np.array_equal(from_arrays.table, from_tensors.table)
    assert np.array_equal(from_arrays.shaper.table, from_tensors.shaper.table)


def test_learned_vertices_beat_a_uniform_grid_on_a_strongly_nonlinear_curve():
    """Fitting y = x^(1/3) per channel with a 5-node LUT: learning the vertices (softmax intervals, as AdaInt
    does) as well as the table puts nodes where the curve bends and leaves a much smaller error."""
    torch.manual_seed(0)
    n = 5
    train_x, test_x = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 64, 64)

    def curve(x):
        return x ** (1 / 3)

    def fit(adaptive: bool):
        table = torch_ops.identity_table(n).requires_grad_(True)
        logits = torch.zeros(3, n - 1, requires_grad=adaptive)
        optimiser = torch.optim.Adam([table, logits] if adaptive else [table], lr=0.05)

        def vertices():
            return torch.nn.functional.pad(logits.softmax(-1).cumsum(-1), (1, 0))

        for _ in range(150):
            loss = (ailut_transform(train_x, table, vertices()) - curve(train_x)).square().mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            return (ailut_transform(test_x, table, vertices()) - curve(test_x)).square().mean().item(), vertices()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest
    try:
        uniform_error, uniform_vertices = fit(adaptive=False)
        adaptive_error, adaptive_vertices = fit(adaptive=True)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(uniform_vertices, torch.linspace(0, 1, n).expand(3, n))
    assert adaptive_error < 0.6 * uniform_error  # measured: 2.2e-4 against 5.1e-4
    assert torch.all(adaptive_vertices[:, 1] < 0.2)  # the first interval shrank where the curve is steepest
