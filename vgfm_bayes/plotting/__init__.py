"""Stage 8: plotting -- report figures (files only, Agg backend)."""

from .report import plot_growth, plot_mass, plot_trajectories, plot_w1

__all__ = ["plot_growth", "plot_mass", "plot_trajectories", "plot_w1"]
