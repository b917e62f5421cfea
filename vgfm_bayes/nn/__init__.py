"""Stage 3: neural fields -- functional batched MLPs for velocity and growth."""

from .fields import Fields, default_hidden
from .mlp import MLPSpec, init_mlp, mlp_forward

__all__ = ["Fields", "MLPSpec", "default_hidden", "init_mlp", "mlp_forward"]
