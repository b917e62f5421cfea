"""Stage 6: posterior -- draws, field summaries with uncertainty, predictive trajectories,
ArviZ export and AnnData write-back."""

from .anndata_io import write_posterior
from .arviz_export import to_inference_data
from .intervals import (
    CALLS,
    QUANTILES,
    central_interval,
    mass_interval,
    prob_positive,
    quantiles,
    sign_calls,
    summarise,
)
from .predictive import Posterior, Trajectories, direction_spread

__all__ = [
    "CALLS",
    "QUANTILES",
    "Posterior",
    "Trajectories",
    "central_interval",
    "direction_spread",
    "mass_interval",
    "prob_positive",
    "quantiles",
    "sign_calls",
    "summarise",
    "to_inference_data",
    "write_posterior",
]
