"""Functional, batch-aware MLPs: weights are plain tensors so Pyro can sample them.

A weight of shape (*batch, fan_in, fan_out) applies to inputs of shape (*batch, N, fan_in) with one
broadcasting matmul. batch = () is a single network, (K,) an ensemble of K members or K posterior
draws: members and draws share one code path and run as one vectorised batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class MLPSpec:
    """Layer sizes of a LeakyReLU MLP: in_dim -> hidden... -> out_dim."""

    in_dim: int
    out_dim: int
    hidden: tuple[int, ...]
    negative_slope: float = 0.01

    @property
    def sizes(self) -> list[int]:
        return [self.in_dim, *self.hidden, self.out_dim]

    @property
    def n_layers(self) -> int:
        return len(self.hidden) + 1

    def shapes(self, prefix: str = "") -> dict[str, tuple[int, ...]]:
        """Parameter names and shapes, e.g. {"l0.weight": (in, h0), "l0.bias": (h0,), ...}."""
        out: dict[str, tuple[int, ...]] = {}
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            out[f"{prefix}l{i}.weight"] = (fan_in, fan_out)
            out[f"{prefix}l{i}.bias"] = (fan_out,)
        return out

    def fan_in(self, name: str) -> int:
        """Fan-in of the layer a parameter belongs to (for prior and init scales)."""
        layer = int(name.rsplit(".", 2)[-2][1:])
        return self.sizes[layer]

    def last_layer(self, prefix: str = "") -> tuple[str, str]:
        i = self.n_layers - 1
        return f"{prefix}l{i}.weight", f"{prefix}l{i}.bias"


def init_mlp(
    spec: MLPSpec,
    prefix: str = "",
    batch_shape: tuple[int, ...] = (),
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Initial weights as torch.nn.Linear draws them: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    params = {}
    for name, shape in spec.shapes(prefix).items():
        bound = 1.0 / math.sqrt(spec.fan_in(name))
        u = torch.rand(*batch_shape, *shape, generator=generator, dtype=dtype)
        params[name] = ((2 * u - 1) * bound).to(device)
    return params


def mlp_forward(
    spec: MLPSpec, params: Mapping[str, torch.Tensor], x: torch.Tensor, prefix: str = ""
) -> torch.Tensor:
    """Apply the MLP.

    Parameters
    ----------
    x : Tensor, shape (*batch, N, in_dim), batch matching the weights' leading dims
        (or broadcastable to them).

    Returns
    -------
    Tensor, shape (*batch, N, out_dim)
    """
    h = x
    last = spec.n_layers - 1
    for i in range(spec.n_layers):
        w = params[f"{prefix}l{i}.weight"]
        b = params[f"{prefix}l{i}.bias"]
        h = torch.matmul(h, w) + b.unsqueeze(-2)
        if i < last:
            h = F.leaky_relu(h, spec.negative_slope)
    return h
