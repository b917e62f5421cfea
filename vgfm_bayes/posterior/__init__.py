"""Stage 6: posterior -- draws, field summaries with uncertainty, predictive trajectories,
ArviZ export and AnnData write-back."""

from .anndata_io import write_posterior
from .arviz_export import to_inference_data
from .predictive import QUANTILES, Posterior, Trajectories, direction_spread, summarise

__all__ = [
    "QUANTILES",
    "Posterior",
    "Trajectories",
    "direction_spread",
    "summarise",
    "to_inference_data",
    "write_posterior",
]
