"""Adam for the SVI loop: torch's own update, without torch.optim.Optimizer.

Every torch.optim optimiser imports torch._dynamo the first time one of its methods runs
(``Optimizer.add_param_group`` and ``step`` are wrapped to disable compilation): 1.5 s of every
fit's start-up on 2 cores, for a compiler this project never uses. :class:`Adam` keeps the
parameters' state itself and calls torch's functional update, ``torch.optim.adam.adam``, with
torch.optim.Adam's defaults, so its steps are bitwise torch.optim.Adam's and its
``state_dict`` has the same format: checkpoints written by either load into the other
(tests/test_adam.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.adam import adam as adam_update


def _scalar_dtype() -> torch.dtype:
    """The dtype torch.optim keeps Adam's step counter in (torch.optim.optimizer)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class Adam:
    """Adam (Kingma and Ba 2015) on ``params`` with learning rate ``lr``: the subset of
    torch.optim.Adam's interface the training loop uses (``step``, ``zero_grad``,
    ``state_dict``, ``load_state_dict``, ``param_groups``)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        # torch.optim.Adam's group record, so a state_dict reads the same
        group = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=0.0, amsgrad=False)
        group.update(maximize=False, foreach=None, capturable=False, differentiable=False)
        group.update(fused=None, decoupled_weight_decay=False)
        self.param_groups = [group]
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step on the parameters that have a gradient (state created on first use,
        as torch's ``_init_group`` does)."""
        group = self.param_groups[0]
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for p, state in zip(self.params, self.state, strict=True):
            if p.grad is None:
                continue
            if not state:
                state["step"] = torch.tensor(0.0, dtype=_scalar_dtype())
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        if not params:
            return
        beta1, beta2 = group["betas"]
        adam_update(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )

    def state_dict(self) -> dict[str, Any]:
        """torch.optim.Adam's format: {"state": {index: {...}}, "param_groups": [{..., params}]}."""
        state = {i: dict(s) for i, s in enumerate(self.state) if s}
        return {
            "state": state,
            "param_groups": [{**self.param_groups[0], "params": list(range(len(self.params)))}],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (this class's or torch.optim.Adam's, one group): the
        moments on each parameter's device and dtype, the step counter as saved."""
        (group,) = state_dict["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(
                f"optimizer state holds {len(group['params'])} parameters, this one "
                f"{len(self.params)}"
            )
        for key in ("amsgrad", "maximize", "capturable", "differentiable"):
            if group.get(key):
                raise ValueError(f"optimizer state uses Adam option {key}, which this one lacks")
        for key in ("lr", "eps", "weight_decay"):
            self.param_groups[0][key] = group[key]
        self.param_groups[0]["betas"] = tuple(group["betas"])
        saved = state_dict["state"]
        self.state = [{} for _ in self.params]
        for slot, index in enumerate(group["params"]):
            s = saved.get(index, saved.get(str(index)))
            if not s:
                continue
            p = self.params[slot]
            self.state[slot] = {
                "step": torch.as_tensor(s["step"], dtype=_scalar_dtype()).clone(),
                "exp_avg": s["exp_avg"].to(device=p.device, dtype=p.dtype).clone(),
                "exp_avg_sq": s["exp_avg_sq"].to(device=p.device, dtype=p.dtype).clone(),
            }
