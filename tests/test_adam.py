"""lutgen's Adam against torch.optim.Adam: the same steps bit for bit, and state dicts that load either way."""

import pytest
import torch

from lutgen.optim.adam import Adam


def make_params(seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator).requires_grad_(True) for shape in ((5, 3), (7,), (2, 2, 3))]


def groups_of(params: list[torch.Tensor]) -> list[dict]:
    """Three groups as lutgen's representations make them: two with their own learning rate, one without."""
    return [{"params": [params[0]], "lr": 0.05}, {"params": [params[1]]}, {"params": [params[2]], "lr": 0.3}]


def loss_of(params: list[torch.Tensor], step: int) -> torch.Tensor:
    """A loss whose gradients change sign and scale from step to step (so the moments matter)."""
    total = torch.zeros(())
    for i, p in enumerate(params):
        total = total + ((p - 0.1 * step) ** 2 * (i + 1)).sum() + torch.sin(3 * p + step).sum() * 10 ** -i
    return total


def take_steps(optimizer, params: list[torch.Tensor], first: int, count: int, skip_second_at: int | None = None):
    for step in range(first, first + count):
        optimizer.zero_grad(set_to_none=True)
        loss_of(params, step).backward()
        if step == skip_second_at:
            params[1].grad = None  # a parameter without a gradient this step is left alone
        optimizer.step()


def test_every_step_equals_torch_adam_bit_for_bit():
    ours, theirs = make_params(), make_params()
    mine = Adam(groups_of(ours), lr=0.01)
    reference = torch.optim.Adam(groups_of(theirs), lr=0.01)
    for step in range(40):
        take_steps(mine, ours, step, 1, skip_second_at=7)
        take_steps(reference, theirs, step, 1, skip_second_at=7)
        for a, b in zip(ours, theirs):
            assert torch.equal(a, b), f"step {step}: differs by {(a - b).abs().max().item()}"
    start = make_params()
    assert all((a - s).abs().max() > 0.05 for a, s in zip(ours, start))  # the parameters did move


def test_zero_grad_sets_every_gradient_to_none():
    params = make_params()
    optimizer = Adam(groups_of(params), lr=0.01)
    loss_of(params, 0).backward()
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("direction", ["torch to lutgen", "lutgen to torch"])
def test_a_state_dict_from_either_continues_in_the_other_exactly(direction):
    """Five steps in one optimiser, its state dict loaded into the other, five more: the same as ten in torch's."""
    first_kind, second_kind = (torch.optim.Adam, Adam) if direction == "torch to lutgen" else (Adam, torch.optim.Adam)
    params = make_params()
    first = first_kind(groups_of(params), lr=0.01)
    take_steps(first, params, 0, 5)
    second = second_kind(groups_of(params), lr=0.5)  # its own settings are replaced by the saved ones
    second.load_state_dict(first.state_dict())
    take_steps(second, params, 5, 5)

    reference_params = make_params()
    reference = torch.optim.Adam(groups_of(reference_params), lr=0.01)
    take_steps(reference, reference_params, 0, 10)
    for a, b in zip(params, reference_params):
        assert torch.equal(a, b)


def test_the_state_dict_has_torchs_layout():
    params = make_params()
    optimizer = Adam(groups_of(params), lr=0.01)
    take_steps(optimizer, params, 0, 3)
    state = optimizer.state_dict()
    assert [g["params"] for g in state["param_groups"]] == [[0], [1], [2]]
    assert [g["lr"] for g in state["param_groups"]] == [0.05, 0.01, 0.3]
    assert set(state["state"]) == {0, 1, 2}
    assert state["state"][1]["step"].dtype == torch.float32 and state["state"][1]["step"].item() == 3
    assert state["state"][2]["exp_avg_sq"].shape == (2, 2, 3)


def test_loading_a_state_of_other_groups_or_settings_is_refused():
    params = make_params()
    optimizer = Adam(groups_of(params), lr=0.01)
    other = Adam([{"params": params}], lr=0.01).state_dict()
    with pytest.raises(ValueError, match="other parameter groups"):
        optimizer.load_state_dict(other)
    decayed = torch.optim.Adam(groups_of(make_params()), lr=0.01, weight_decay=0.1).state_dict()
    with pytest.raises(ValueError, match="weight decay"):
        optimizer.load_state_dict(decayed)
