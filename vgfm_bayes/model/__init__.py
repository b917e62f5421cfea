"""Stage 4: the Pyro model -- priors, likelihood on SROT targets, simulated fit, heads."""

from .dynamics import simulate
from .heads import HEADS, Head, get_head
from .vgfm import Block, DistributionFit, Prior, VGFMModel, vgfm_sigmas

__all__ = [
    "Block",
    "HEADS",
    "DistributionFit",
    "Head",
    "Prior",
    "VGFMModel",
    "get_head",
    "simulate",
    "vgfm_sigmas",
]
