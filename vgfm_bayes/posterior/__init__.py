"""Stage 6: posterior -- draws, field summaries with uncertainty, predictive trajectories,
ArviZ export, AnnData write-back (batched per-cell summaries) and CellRank kernels."""

from .anndata_io import GROWTH_COLUMNS, write_posterior
from .arviz_export import to_inference_data
from .cellrank import real_time_kernel, srot_couplings
from .cells import batch_cells, cell_summaries
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
    "GROWTH_COLUMNS",
    "QUANTILES",
    "Posterior",
    "Trajectories",
    "batch_cells",
    "cell_summaries",
    "central_interval",
    "direction_spread",
    "mass_interval",
    "prob_positive",
    "quantiles",
    "real_time_kernel",
    "sign_calls",
    "srot_couplings",
    "summarise",
    "to_inference_data",
    "write_posterior",
]
