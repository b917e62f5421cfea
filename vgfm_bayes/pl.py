"""Figures of fitted models, scanpy-style: ``import vgfm_bayes as vb; vb.pl.mass(model)``.

The functions live in ``vgfm_bayes.plotting.pl`` (see there for the shared keywords ``ax``,
``show``, ``save`` and the returned Figure).
"""

from .plotting.pl import (
    compare,
    growth,
    growth_calls,
    mass,
    trajectories,
    velocity_uncertainty,
)

__all__ = [
    "compare",
    "growth",
    "growth_calls",
    "mass",
    "trajectories",
    "velocity_uncertainty",
]
