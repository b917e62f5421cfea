"""The two time-conditioned fields of VGFM: velocity v(x, t) and growth g(x, t)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .mlp import MLPSpec, init_mlp, mlp_forward


def default_hidden(dim: int) -> tuple[int, ...]:
    """Reference sizes (DESIGN 2): 128 x 3 for D <= 10, 256 x 5 above. (64 x 3 halves the
    training time in 2-D and fits the simulated gene data as well, but not the mouse
    hematopoiesis data: W1 0.111 vs 0.083.)"""
    return (128, 128, 128) if dim <= 10 else (256,) * 5


@dataclass(frozen=True)
class Fields:
    """v_theta and g_omega as pure functions of a parameter dict.

    Parameter names are prefixed "v." (velocity, D outputs) and "g." (growth, 1 output). Both
    networks take concat(x, s) with s = (t - t_start) / t_span, the time rescaled to [0, 1] so the
    networks see the same input range whatever the user's units; outputs are in user units.
    """

    dim: int
    velocity: MLPSpec
    growth: MLPSpec
    t_start: float = 0.0
    t_span: float = 1.0

    @classmethod
    def build(
        cls,
        dim: int,
        t_start: float,
        t_span: float,
        velocity_hidden: tuple[int, ...] | None = None,
        growth_hidden: tuple[int, ...] | None = None,
    ) -> Fields:
        vh = tuple(velocity_hidden) if velocity_hidden else default_hidden(dim)
        gh = tuple(growth_hidden) if growth_hidden else default_hidden(dim)
        return cls(dim, MLPSpec(dim + 1, dim, vh), MLPSpec(dim + 1, 1, gh), t_start, t_span)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {**self.velocity.shapes("v."), **self.growth.shapes("g.")}

    def spec_of(self, name: str) -> MLPSpec:
        return self.velocity if name.startswith("v.") else self.growth

    def last_layer_names(self) -> list[str]:
        return [*self.velocity.last_layer("v."), *self.growth.last_layer("g.")]

    def init(
        self,
        batch_shape: tuple[int, ...] = (),
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> dict[str, torch.Tensor]:
        kw = dict(batch_shape=batch_shape, generator=generator, dtype=dtype, device=device)
        return {**init_mlp(self.velocity, "v.", **kw), **init_mlp(self.growth, "g.", **kw)}

    def _inputs(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        s = (torch.as_tensor(t, dtype=x.dtype, device=x.device) - self.t_start) / self.t_span
        s = s.expand(x.shape[:-1]).unsqueeze(-1)
        return torch.cat([x, s], dim=-1)

    def v(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, t) -> torch.Tensor:
        """Velocity, shape (*batch, N, D); x : (*batch, N, D), t : scalar or (*batch, N)."""
        return mlp_forward(self.velocity, params, self._inputs(x, t), "v.")

    def g(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, t) -> torch.Tensor:
        """Growth rate, shape (*batch, N), per unit of the user's time."""
        return mlp_forward(self.growth, params, self._inputs(x, t), "g.").squeeze(-1)
