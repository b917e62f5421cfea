"""Heads of the zoo: which weights are random, their priors, and the guide that fits them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from pyro.infer.autoguide import AutoDelta
from pyro.infer.autoguide.initialization import init_to_value

from ..nn import Fields
from .vgfm import Block, Prior, VGFMModel


@dataclass(frozen=True)
class Head:
    """A head = blocks of weights with their priors + a guide family.

    The base class is the point head (deterministic VGFM): one block of all weights with a flat
    prior and an AutoDelta guide, so the fit is maximum likelihood. Other heads override only
    ``blocks`` and ``build_guide``.
    """

    name: str = "point"
    members: int = 1
    prior_scale: float = 1.0
    deterministic: bool = True  # every posterior draw is the same (no need for S > 1)

    def blocks(self, fields: Fields) -> dict[str, Block]:
        return {"weights": Block(tuple(fields.shapes()), Prior("flat"))}

    def build_guide(self, model: VGFMModel, init: Mapping[str, torch.Tensor]):
        """AutoDelta started at the network's initial weights (flat priors cannot be sampled)."""
        return AutoDelta(model, init_loc_fn=init_to_value(values=model.pack(init)))


HEADS: dict[str, type[Head]] = {"point": Head}


def get_head(name: str, **options) -> Head:
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; available: {', '.join(HEADS)}")
    return HEADS[name](name=name, **options)
