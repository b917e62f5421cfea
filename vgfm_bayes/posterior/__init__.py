"""Stage 6: posterior -- draws, field summaries with uncertainty, predictive trajectories."""

from .predictive import QUANTILES, Posterior, Trajectories, direction_spread, summarise

__all__ = ["QUANTILES", "Posterior", "Trajectories", "direction_spread", "summarise"]
