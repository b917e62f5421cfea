"""Drawing onto one matplotlib Axes from arrays (no model, no files): the pieces that
``vgfm_bayes.pl`` assembles into figures. Nothing here imports matplotlib at module level or
picks a backend; an Axes is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..data import TimeCourse
from ..posterior import CALLS, Trajectories

if TYPE_CHECKING:
    from matplotlib.axes import Axes

CALL_COLOURS = {"proliferating": "#c0392b", "dying": "#2b6cb0", "undetermined": "0.7"}


def _xy(x: np.ndarray, dims: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The two plotted coordinates of points (n, D); a 1-D embedding is drawn at y = 0."""
    i, j = dims
    if x.shape[1] == 1:
        return x[:, 0], np.zeros(len(x))
    return x[:, i], x[:, j]


def label_dims(ax: Axes, var_names: Sequence[str], dims: tuple[int, int]) -> None:
    ax.set_xlabel(var_names[dims[0]])
    ax.set_ylabel(var_names[dims[1]] if len(var_names) > 1 else "")


def snapshots(ax: Axes, data: TimeCourse, dims=(0, 1), grey: bool = False, **kw) -> None:
    """Observed cells, one colour per time (viridis), or all light grey as a background."""
    import matplotlib as mpl

    cmap = mpl.colormaps["viridis"]
    span = max(float(data.times[-1] - data.times[0]), 1e-12)
    for k, xk in enumerate(data.x):
        c = "0.85" if grey else cmap((data.times[k] - data.times[0]) / span)
        label = None if grey else f"t={data.times[k]:g}"
        ax.scatter(
            *_xy(xk, dims),
            s=kw.get("s", 3),
            color=c,
            alpha=kw.get("alpha", 0.35),
            label=label,
            linewidths=0,
            rasterized=True,
        )


def mass_bands(
    ax: Axes,
    traj: Trajectories,
    *,
    level: float = 0.9,
    label: str = "model",
    color: str = "C0",
) -> None:
    """Mean total mass over draws, its credible band (the model's mass, when there is more than
    one draw) and its predictive band (an observed mass: the model's plus the held-out
    discrepancy, when the trajectories carry one)."""
    mass = traj.mass  # (S, T)
    pct = f"{100 * level:g}%"
    ax.plot(traj.times, mass.mean(0), "-", color=color, label=f"{label}: mean")
    if traj.mass_noise is not None:
        lo, hi = traj.mass_interval(level, observed=True)
        ax.fill_between(
            traj.times,
            lo,
            hi,
            color=color,
            alpha=0.12,
            lw=0,
            label=f"{label}: {pct} predictive (observation)",
        )
    if mass.shape[0] > 1:
        lo, hi = traj.mass_interval(level, observed=False)
        ax.fill_between(
            traj.times,
            lo,
            hi,
            color=color,
            alpha=0.3,
            lw=0,
            label=f"{label}: {pct} credible (model)",
        )


def observed_mass(ax: Axes, data: TimeCourse) -> None:
    ax.plot(data.times, data.masses, "o", color="k", ms=4, label="observed", zorder=5)


def mass_labels(ax: Axes) -> None:
    ax.set_xlabel("time")
    ax.set_ylabel("relative total mass")
    ax.set_title("Total mass")


def paths(
    ax: Axes,
    traj: Trajectories,
    *,
    draws: int = 4,
    n_paths: int = 60,
    dims=(0, 1),
    seed: int = 0,
) -> None:
    """Simulated paths of ``n_paths`` first-snapshot cells under each of the first ``draws``
    posterior draws (one colour per draw; the point head has one draw)."""
    rng = np.random.default_rng(seed)
    n = traj.x.shape[2]
    cells = rng.choice(n, size=min(n_paths, n), replace=False)
    i, j = dims if traj.x.shape[-1] > 1 else (0, 0)
    for s in range(min(draws, traj.x.shape[0])):
        for c, p in enumerate(cells):
            y = traj.x[s, :, p, j] if traj.x.shape[-1] > 1 else np.zeros(traj.x.shape[1])
            ax.plot(
                traj.x[s, :, p, i],
                y,
                "-",
                color=f"C{s % 10}",
                lw=0.6,
                alpha=0.6,
                label=f"draw {s}" if c == 0 else None,
            )


def w1_bars(
    ax: Axes,
    metrics: Mapping[str, dict],
    reference: dict | None = None,
    key: str = "w1",
) -> None:
    """Grouped bars of W1 (or RME: ``key="rme"``) per evaluated time, one colour per head,
    with the published numbers per time (markers) or their mean (a line) when known."""
    names = list(metrics)
    times = metrics[names[0]]["times"]
    pos = np.arange(len(times))
    width = 0.8 / max(len(names), 1)
    for h, name in enumerate(names):
        ax.bar(
            pos + (h - (len(names) - 1) / 2) * width,
            metrics[name][key],
            width,
            color=f"C{h}",
            label=name,
        )
    ax.set_xticks(pos, [f"{t:g}" for t in times])
    ref = (reference or {}).get(f"{key}_per_time")
    if ref is not None and len(ref) == len(times):
        ax.plot(pos, ref, "D", color="k", ms=5, label="published VGFM")
    elif reference and key in reference:
        ax.axhline(reference[key], color="k", ls="--", lw=1, label="published VGFM (mean)")
    ax.set_xlabel("time")
    ax.set_ylabel(key.upper())


def growth_mean(ax: Axes, x: np.ndarray, mean, p_positive, dims=(0, 1)):
    """Posterior-mean growth (colour, diverging at 0); marker size grows with the certainty of
    its sign, |2 P(g > 0) - 1| (0: a coin flip, 1: sure). Returns the mappable (colorbar)."""
    mean = np.asarray(mean, dtype=np.float64)
    certainty = np.abs(2 * np.asarray(p_positive, dtype=np.float64) - 1)
    lim = float(np.max(np.abs(mean))) if len(mean) else 1.0
    lim = lim or 1.0
    return ax.scatter(
        *_xy(x, dims),
        c=mean,
        cmap="coolwarm",
        vmin=-lim,
        vmax=lim,
        s=1 + 11 * certainty,
        linewidths=0,
        rasterized=True,
    )


def growth_calls(ax: Axes, x: np.ndarray, calls, dims=(0, 1)) -> None:
    """Cells coloured by their credible call, with the count of each call in the legend."""
    calls = np.asarray(calls)
    for name in (CALLS[2], CALLS[0], CALLS[1]):  # undetermined on top: where it is unsure
        sel = calls == name
        ax.scatter(
            *_xy(x[sel], dims),
            s=7 if name == CALLS[1] else 5,
            color=CALL_COLOURS[name],
            linewidths=0,
            label=f"{name} ({int(sel.sum())})",
            rasterized=True,
        )


def arrows(ax: Axes, x: np.ndarray, v: np.ndarray, colour, dims=(0, 1), cmap="viridis"):
    """Velocity arrows at points x (n, D) (projected on ``dims``) coloured by ``colour`` (n,).
    Returns the mappable (colorbar)."""
    px, py = _xy(x, dims)
    vx, vy = _xy(v, dims)
    return ax.quiver(
        px, py, vx, vy, np.asarray(colour, dtype=np.float64), cmap=cmap, angles="xy", width=0.004
    )
