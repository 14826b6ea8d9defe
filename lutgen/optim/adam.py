"""Adam for the trainable LUTs of ``optimize`` and ``library``, without ``torch.optim``.

``torch.optim``'s optimisers import torch's compiler (``torch._dynamo``, and Triton through it: about
150 MB resident on a CPU-only machine) the first time a parameter group is added or a step is taken,
to keep the compiler out of their own code. lutgen never compiles anything, and ``optimize`` must fit
in 1.2 GB, so its optimiser is this one.

:class:`Adam` computes what ``torch.optim.Adam`` computes with its defaults (no weight decay, no
AMSGrad), bit for bit: the same operations in the same order, with the bias corrections in Python
floats from the step count. Its :meth:`~Adam.state_dict` has ``torch.optim``'s layout, so a library
checkpoint written by either loads in the other. AdaInt's ``train`` keeps ``torch.optim`` (weight
decay, learning-rate schedules).
"""

from __future__ import annotations

import torch


class Adam:
    """Adam over parameter groups (dicts with ``"params"`` and, optionally, their own ``"lr"``).

    Args:
        param_groups: the groups, every parameter a leaf tensor in exactly one group.
        lr: learning rate of groups that do not give their own.
        betas: decay rates of the first and second moment estimates.
        eps: added to the root of the second moment, for stability.
    """

    def __init__(self, param_groups: list[dict], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.param_groups = [
            {"lr": float(group.get("lr", lr)), "betas": tuple(map(float, betas)), "eps": float(eps),
             "params": list(group["params"])}
            for group in param_groups
        ]
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (always set to ``None``; the argument is torch's)."""
        for group in self.param_groups:
            for param in group["params"]:
                param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state.get(param)
                if state is None:
                    state = self.state[param] = {
                        "step": torch.tensor(0.0),
                        "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
                    }
                _update(param, param.grad, state, group["lr"], beta1, beta2, group["eps"])

    def state_dict(self) -> dict:
        """``{"state": {index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [...]}``, as ``torch.optim``
        writes it: parameters numbered in group order, the step a float32 scalar tensor."""
        index: dict[torch.Tensor, int] = {}
        groups = []
        for group in self.param_groups:
            numbers = [index.setdefault(param, len(index)) for param in group["params"]]
            groups.append({"lr": group["lr"], "betas": group["betas"], "eps": group["eps"], "weight_decay": 0.0,
                           "amsgrad": False, "maximize": False, "params": numbers})
        state = {index[param]: dict(moments) for param, moments in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict) -> None:
        """Continue from :meth:`state_dict` (or ``torch.optim.Adam``'s): its moments, steps and group settings.

        Raises:
            ValueError: the groups or their sizes are not this optimiser's, or a setting Adam here cannot
                follow (weight decay, AMSGrad) is on.
        """
        groups = saved["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(mine["params"]) for g, mine in zip(groups, self.param_groups)):
            raise ValueError("the saved optimiser state has other parameter groups than this LUT")
        if any(g.get("weight_decay", 0) or g.get("amsgrad", False) or g.get("maximize", False) for g in groups):
            raise ValueError("the saved optimiser state uses weight decay, AMSGrad or maximize")
        self.state = {}
        for g, mine in zip(groups, self.param_groups):
            mine.update(lr=float(g["lr"]), betas=tuple(map(float, g["betas"])), eps=float(g["eps"]))
            for number, param in zip(g["params"], mine["params"]):
                moments = saved["state"].get(number)
                if moments is None:
                    continue
                self.state[param] = {
                    "step": torch.as_tensor(moments["step"], dtype=torch.float32).detach().clone(),
                    "exp_avg": moments["exp_avg"].to(device=param.device, dtype=param.dtype, copy=True),
                    "exp_avg_sq": moments["exp_avg_sq"].to(device=param.device, dtype=param.dtype, copy=True),
                }


def _update(param: torch.Tensor, grad: torch.Tensor, state: dict, lr: float, beta1: float, beta2: float,
            eps: float) -> None:
    """One Adam step of ``param`` in place, as ``torch.optim.Adam`` takes it (single-tensor or foreach: the
    same operations)."""
    state["step"] += 1
    step = state["step"].item()
    state["exp_avg"].lerp_(grad, 1 - beta1)
    state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    denom = (state["exp_avg_sq"].sqrt() / bias_correction2_sqrt).add_(eps)
    param.addcdiv_(state["exp_avg"], denom, value=-(lr / bias_correction1))
