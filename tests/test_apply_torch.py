"""lutgen.color.torch_ops against the float64 references, the CPU kernels and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import (
    apply_reference,
    nonlinear_lut,
    random_colours,
    random_shaper,
    shaper_reference,
    smooth_random_lut,
    tetrahedral_reference,
    trilinear_reference,
)

from lutgen.color import torch_ops
from lutgen.color.cpu import apply_lut_array
from lutgen.lut import LUT, grid

ODD_DOMAIN = np.array([[-0.5, -1.0, 0.2], [1.5, 0.5, 3.0]])
IDENTITY_SIZES = (2, 3, 16, 17, 33, 64, 65)


def _image(pixels: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    """``(..., H, W, 3)`` array -> ``(..., 3, H, W)`` tensor."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).to(dtype).movedim(-1, -3)


def _pixels(image: torch.Tensor) -> np.ndarray:
    """``(..., 3, H, W)`` tensor -> ``(..., H, W, 3)`` float64 array."""
    return image.detach().movedim(-3, -1).to(torch.float64).numpy()


def _colours(lut_domain, shape, seed, margin=0.25) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return random_colours(int(np.prod(shape)), rng, lut_domain, margin).reshape(*shape, 3)


LUTS = {
    "smooth-9": smooth_random_lut(9, np.random.default_rng(1)),
    "nonlinear-4-odd-domain": nonlinear_lut(4, np.random.default_rng(2), ODD_DOMAIN),
    "shaper+3d": LUT(
        nonlinear_lut(5, np.random.default_rng(3), [[-0.1] * 3, [1.1] * 3]).table,
        [[-0.1] * 3, [1.1] * 3],
        shaper=random_shaper(30, np.random.default_rng(4), [[-0.25, 0.0, 0.1], [2.0, 1.0, 1.5]], (-0.2, 1.2)),
    ),
    "1d-only": LUT(None, shaper=random_shaper(50, np.random.default_rng(5), [[-0.25, 0.0, 0.1], [2.0, 1.0, 1.5]])),
}


# ------------------------------------------------------------------------------------------------
# Against the references
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_shape", [(), (2,)], ids=["unbatched", "batched"])
@pytest.mark.parametrize("name", ["smooth-9", "nonlinear-4-odd-domain"])
def test_apply_lut_matches_reference(name, batch_shape):
    lut = LUTS[name]
    x = _colours(lut.domain, (*batch_shape, 7, 11), seed=6)
    table = torch.from_numpy(lut.table)
    out = torch_ops.apply_lut(_image(x), table, torch.from_numpy(lut.domain))
    assert out.shape == (*batch_shape, 3, 7, 11) and out.dtype == torch.float64
    expected = trilinear_reference(x.reshape(-1, 3), lut.table, lut.domain).reshape(x.shape)
    np.testing.assert_allclose(_pixels(out), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("batch_shape", [(), (3,)], ids=["unbatched", "batched"])
@pytest.mark.parametrize("name", ["smooth-9", "nonlinear-4-odd-domain"])
def test_apply_lut_tetrahedral_matches_reference_and_cpu(name, batch_shape):
    lut = LUTS[name]
    x = _colours(lut.domain, (*batch_shape, 6, 9), seed=7)
    out = _pixels(torch_ops.apply_lut_tetrahedral(_image(x), torch.from_numpy(lut.table), lut.domain))
    expected = tetrahedral_reference(x.reshape(-1, 3), lut.table, lut.domain).reshape(x.shape)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(out, apply_lut_array(x, lut, "tetrahedral"), rtol=0, atol=1e-12)


def test_apply_shaper_matches_reference():
    shaper = LUTS["shaper+3d"].shaper
    x = _colours(shaper.domain, (2, 5, 8), seed=8)
    out = torch_ops.apply_shaper(_image(x), torch.from_numpy(shaper.table), torch.from_numpy(shaper.domain))
    expected = shaper_reference(x.reshape(-1, 3), shaper.table, shaper.domain).reshape(x.shape)
    np.testing.assert_allclose(_pixels(out), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("strength", [1.0, 0.3])
@pytest.mark.parametrize("interpolation", ["trilinear", "tetrahedral"])
@pytest.mark.parametrize("name", LUTS)
def test_apply_whole_lut_equals_cpu(name, interpolation, strength):
    lut = LUTS[name]
    x = _colours(lut.input_domain, (2, 6, 7), seed=9)
    out = torch_ops.apply(_image(x), lut, interpolation, strength)
    cpu = apply_lut_array(x, lut, interpolation, strength)
    np.testing.assert_allclose(_pixels(out), cpu, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cpu, apply_reference(x, lut, interpolation, strength), rtol=0, atol=1e-9)


def test_apply_keeps_dtype_and_accepts_float32_tables():
    lut = LUTS["shaper+3d"]
    x = _colours(lut.input_domain, (4, 5), seed=10)
    out = torch_ops.apply(_image(x, torch.float32), lut)
    assert out.dtype == torch.float32 and out.shape == (3, 4, 5)
    np.testing.assert_allclose(_pixels(out), apply_lut_array(x, lut), rtol=0, atol=2e-6)
    half = torch_ops.apply(_image(x, torch.bfloat16), lut, "tetrahedral")
    assert half.dtype == torch.bfloat16
    np.testing.assert_allclose(_pixels(half), apply_lut_array(x, lut, "tetrahedral"), rtol=0, atol=0.05)


# ------------------------------------------------------------------------------------------------
# Identity
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", IDENTITY_SIZES)
def test_identity_table(size):
    table = torch_ops.identity_table(size, dtype=torch.float64)
    assert table.shape == (size, size, size, 3)
    np.testing.assert_allclose(table.numpy(), grid(size), rtol=0, atol=1e-15)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(size))
    table32 = torch_ops.identity_table(size)
    assert table32.dtype == torch.float32
    for function in (torch_ops.apply_lut, torch_ops.apply_lut_tetrahedral):
        out = function(x, table32)
        assert out.dtype == torch.float32
        np.testing.assert_allclose(out.numpy(), x.numpy(), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Gradients
# ------------------------------------------------------------------------------------------------


def _gradcheck_inputs(domain, size, seed, batch=2):
    rng = np.random.default_rng(seed)
    x = _colours(domain, (batch, 2, 3), seed, margin=0.1)  # some pixels outside the domain: zero gradient
    table = nonlinear_lut(size, rng, domain).table
    image = _image(x).requires_grad_()
    return image, torch.from_numpy(table).requires_grad_()


@pytest.mark.parametrize("function", [torch_ops.apply_lut, torch_ops.apply_lut_tetrahedral])
def test_gradients_match_finite_differences(function):
    image, table = _gradcheck_inputs(ODD_DOMAIN, 3, seed=11)
    domain = torch.from_numpy(ODD_DOMAIN)
    assert torch.autograd.gradcheck(lambda i, t: function(i, t, domain), (image, table), eps=1e-6, atol=1e-5)
    unbatched = image.detach()[0].requires_grad_()
    assert torch.autograd.gradcheck(lambda i, t: function(i, t, domain), (unbatched, table), eps=1e-6, atol=1e-5)


def test_shaper_gradients_match_finite_differences():
    shaper = random_shaper(6, np.random.default_rng(12), ODD_DOMAIN, out_range=(-0.3, 1.4))
    image = _image(_colours(ODD_DOMAIN, (2, 2, 3), seed=12, margin=0.1)).requires_grad_()
    table = torch.from_numpy(shaper.table).requires_grad_()
    domain = torch.from_numpy(ODD_DOMAIN)
    assert torch.autograd.gradcheck(lambda i, t: torch_ops.apply_shaper(i, t, domain), (image, table), eps=1e-6,
                                    atol=1e-5)


def test_gradient_of_whole_lut_reaches_the_image():
    lut = LUTS["shaper+3d"]
    image = _image(_colours(lut.input_domain, (2, 3), seed=13, margin=0.0)).requires_grad_()
    assert torch.autograd.gradcheck(lambda i: torch_ops.apply(i, lut, "trilinear", 0.7), (image,), eps=1e-6,
                                    atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch_shape", [(), (2,)], ids=["unbatched", "batched"])
def test_apply_lut_gather_equals_apply_lut_in_values_and_table_gradients(batch_shape, dtype):
    lut = LUTS["smooth-9"]
    x = _colours(lut.domain, (*batch_shape, 9, 13), seed=15, margin=0.2)  # some pixels outside [0, 1]
    x.reshape(-1, 3)[:4] = [[0.0, 1.0, 1.0], [1.0, 0.0, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]  # corners, faces
    image = _image(x, dtype)
    weights = torch.linspace(-1, 1, image.numel(), dtype=dtype).reshape(image.shape)
    outputs, grads = [], []
    for function in (torch_ops.apply_lut, torch_ops.apply_lut_gather):
        table = torch.from_numpy(lut.table).to(dtype).requires_grad_()
        out = function(image, table)
        (grad,) = torch.autograd.grad((out * weights).sum(), table)
        outputs.append(out.detach())
        grads.append(grad)
    assert outputs[1].shape == image.shape and outputs[1].dtype == dtype
    atol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=atol)
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=atol * 10)  # sums of many terms
    expected = trilinear_reference(x.reshape(-1, 3), lut.table, lut.domain).reshape(x.shape)
    np.testing.assert_allclose(_pixels(outputs[1]), expected, rtol=0, atol=1e-9 if dtype == torch.float64 else 2e-6)


def test_gradient_is_zero_outside_the_domain():
    table = torch.from_numpy(nonlinear_lut(3, np.random.default_rng(14)).table)
    image = torch.tensor([[[1.5]], [[-0.2]], [[2.0]]], dtype=torch.float64, requires_grad=True)
    for function in (torch_ops.apply_lut, torch_ops.apply_lut_tetrahedral):
        (grad,) = torch.autograd.grad(function(image, table).sum(), image)
        assert torch.all(grad == 0)


# ------------------------------------------------------------------------------------------------
# Bad arguments
# ------------------------------------------------------------------------------------------------


def test_bad_shapes():
    table = torch_ops.identity_table(3)
    with pytest.raises(ValueError):
        torch_ops.apply_lut(torch.zeros(4, 5, 5), table)
    with pytest.raises(ValueError):
        torch_ops.apply_lut(torch.zeros(3, 5, 5), table[:2])
    with pytest.raises(ValueError):
        torch_ops.apply_lut(torch.zeros(3, 5, 5), table, torch.zeros(3))
    with pytest.raises(ValueError):
        torch_ops.apply_shaper(torch.zeros(3, 5, 5), torch.zeros(5, 2))
    with pytest.raises(ValueError):
        torch_ops.apply(torch.zeros(3, 5, 5), LUT.identity(2), "cubic")


def test_codes_round_trip_through_an_image():
    from lutgen.color.torch_ops import codes_to_image, image_to_codes

    rng = np.random.default_rng(0)
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        codes = rng.integers(0, top + 1, size=(5, 7, 3)).astype(dtype)
        codes.flags.writeable = False  # as Pillow hands them out
        image = codes_to_image(codes, "cpu")
        assert image.shape == (3, 5, 7) and image.dtype == torch.float32
        torch.testing.assert_close(image[:, 2, 3].double(), torch.tensor(codes[2, 3] / top), rtol=0, atol=1e-7)
        back = image_to_codes(image, dtype)
        assert back.dtype == dtype and np.array_equal(back, codes)
