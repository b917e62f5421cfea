"""Particle dynamics dx/dt = v(x, t), d log w/dt = g(x, t), integrated with torchdiffeq."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torchdiffeq import odeint

from ..nn import Fields


def simulate(
    fields: Fields,
    params: Mapping[str, torch.Tensor],
    x0: torch.Tensor,
    log_w0: torch.Tensor,
    times: torch.Tensor,
    step_size: float,
    method: str = "euler",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Carry particles and their log-weights through the fields.

    Parameters
    ----------
    x0 : Tensor, shape (*batch, N, D) -- starting positions (batch = members / draws).
    log_w0 : Tensor, shape (*batch, N) -- starting log-weights.
    times : Tensor, shape (T,) -- output times in user units, times[0] the start.
    step_size : fixed solver step in user time units.

    Returns
    -------
    x : Tensor, shape (T, *batch, N, D); log_w : Tensor, shape (T, *batch, N)
    """

    def rhs(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        x, _ = state
        return fields.v(params, x, t), fields.g(params, x, t)

    options = {"step_size": step_size} if method in ("euler", "midpoint", "rk4") else None
    x, log_w = odeint(rhs, (x0, log_w0), times.to(x0.dtype), method=method, options=options)
    return x, log_w
