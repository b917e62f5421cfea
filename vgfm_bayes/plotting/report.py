"""Report figures: mass curve with credible band, trajectories, growth map, W1 per time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..data import TimeCourse  # noqa: E402
from ..posterior import Trajectories  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_mass(traj: Trajectories, data: TimeCourse, path: Path, label: str = "model") -> Path:
    """Predicted total mass (mean and 90% band over draws) against the observed masses."""
    mass = traj.mass  # (S, T)
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    ax.plot(traj.times, mass.mean(0), "-", color="C0", label=f"{label} (mean)")
    if traj.mass_noise is not None:
        lo, hi = traj.mass_interval(0.9)
        ax.fill_between(
            traj.times, lo, hi, color="C0", alpha=0.12, label="90% predictive (observation)"
        )
    if mass.shape[0] > 1:
        lo, hi = traj.mass_interval(0.9, observed=False)
        ax.fill_between(traj.times, lo, hi, color="C0", alpha=0.3, label="90% credible (model)")
    ax.plot(data.times, data.masses, "o", color="k", label="observed")
    ax.set_xlabel("time")
    ax.set_ylabel("relative total mass")
    ax.set_title("Total mass")
    ax.legend(frameon=False)
    return _save(fig, path)


def plot_trajectories(
    traj: Trajectories, data: TimeCourse, path: Path, n_paths: int = 150, dims=(0, 1)
) -> Path:
    """Observed snapshots with simulated paths of a subset of first-snapshot cells (draw 0)."""
    i, j = dims if data.dim > 1 else (0, 0)
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    cmap = plt.get_cmap("viridis")
    span = max(float(data.times[-1] - data.times[0]), 1e-12)
    for k, xk in enumerate(data.x):
        c = cmap((data.times[k] - data.times[0]) / span)
        ax.scatter(xk[:, i], xk[:, j], s=3, color=c, alpha=0.35, label=f"t={data.times[k]:g}")
    rng = np.random.default_rng(0)
    n = traj.x.shape[2]
    for p in rng.choice(n, size=min(n_paths, n), replace=False):
        ax.plot(traj.x[0, :, p, i], traj.x[0, :, p, j], "-", color="0.2", lw=0.5, alpha=0.5)
    ax.set_xlabel(data.var_names[i])
    ax.set_ylabel(data.var_names[j])
    ax.set_title("Simulated trajectories over observed cells")
    ax.legend(markerscale=4, frameon=False, fontsize=7, loc="best")
    return _save(fig, path)


def plot_growth(
    x: np.ndarray,
    growth_mean: np.ndarray,
    growth_sd: np.ndarray,
    path: Path,
    var_names=("x1", "x2"),
    t: float = 0.0,
) -> Path:
    """Growth-rate map: posterior mean (colour, diverging at 0) and sd (second panel if > 0)."""
    two = bool(np.any(growth_sd > 0))
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(9 if two else 4.8, 3.8), squeeze=False)
    lim = float(np.max(np.abs(growth_mean))) or 1.0
    y = x[:, 1] if x.shape[1] > 1 else np.zeros(len(x))
    sc = axes[0, 0].scatter(x[:, 0], y, c=growth_mean, cmap="coolwarm", vmin=-lim, vmax=lim, s=6)
    fig.colorbar(sc, ax=axes[0, 0], label="growth rate (mean, per time unit)")
    axes[0, 0].set_title(f"Growth at t={t:g}")
    if two:
        sc2 = axes[0, 1].scatter(x[:, 0], y, c=growth_sd, cmap="magma", s=6)
        fig.colorbar(sc2, ax=axes[0, 1], label="growth rate (posterior sd)")
        axes[0, 1].set_title("Growth uncertainty")
    for ax in axes[0]:
        ax.set_xlabel(var_names[0])
        ax.set_ylabel(var_names[1] if len(var_names) > 1 else "")
    return _save(fig, path)


def plot_w1(metrics: dict, path: Path, reference: dict | None = None) -> Path:
    """W1 per evaluated time, with the published VGFM mean as a line when known."""
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    pos = np.arange(len(metrics["times"]))
    ax.bar(pos, metrics["w1"], color="C0", label="this fit")
    ax.set_xticks(pos, [f"{t:g}" for t in metrics["times"]])
    if reference and "w1" in reference:
        ax.axhline(reference["w1"], color="C3", ls="--", label="published VGFM (mean)")
    ax.set_xlabel("time")
    ax.set_ylabel("W1")
    ax.set_title("Distribution fit per time point")
    ax.legend(frameon=False)
    return _save(fig, path)
