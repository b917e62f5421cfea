"""Figures of a fitted model, scanpy-style: ``vgfm_bayes.pl.<name>(model, ...)``.

Every function takes a fitted ``VGFM`` (``compare``: a dict of them) and the keywords

ax : an Axes to draw into (a sequence of Axes, one per panel, for several panels); default
    a new figure (made with pyplot, so it shows inline in notebooks like any other plot).
show : call ``pyplot.show()`` at the end (default False).
save : a file path: the figure is saved there (``Figure.savefig``, any format matplotlib
    knows by the suffix). A figure the function made itself is then closed in pyplot (it is
    still returned and can be saved again), so a script writing many files keeps no figures
    open; one drawn into a given ``ax`` is left to its owner.

and returns the ``matplotlib.figure.Figure`` drawn on (``ax.figure`` when ``ax`` is given).
In a notebook, end the line with ``;`` or assign the result, or Jupyter shows the figure a
second time as the returned value. No function sets or changes matplotlib's backend, and
matplotlib is imported only when a function is called.

``growth_calls`` is the table behind ``growth`` (it draws nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from ..data import DATASETS, TimeCourse
from ..posterior import (
    Trajectories,
    central_interval,
    direction_spread,
    prob_positive,
    sign_calls,
)
from . import axes as draw

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..estimator import VGFM

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- plumbing
def _axes(ax, n: int, figsize: tuple[float, float]) -> tuple[Figure, list[Axes], bool]:
    """The figure and ``n`` panels to draw on, and whether the figure is ours."""
    if ax is None:
        import matplotlib.pyplot as plt

        fig, grid = plt.subplots(1, n, figsize=figsize, squeeze=False, layout="constrained")
        return fig, list(grid[0]), True
    axs = (
        list(np.ravel(np.asarray(ax, dtype=object)))
        if isinstance(ax, Sequence | np.ndarray)
        else [ax]
    )
    if len(axs) != n:
        raise ValueError(f"this figure has {n} panel(s); pass ax as {n} Axes, got {len(axs)}")
    return axs[0].figure, axs, False


def _finish(fig: Figure, own: bool, show: bool, save) -> Figure:
    if save is not None:
        path = Path(save)
        fig.savefig(path, dpi=110)
        log.info("wrote %s", path)
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    elif own and save is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return fig


def _fitted(model: VGFM) -> TimeCourse:
    if not getattr(model, "is_fitted", False):
        raise ValueError("plot a fitted model: call fit() or VGFM.load(run) first")
    return model.data


def _reference(data: TimeCourse) -> dict | None:
    info = DATASETS.get(data.name)
    return info.reference if info is not None and info.reference else None


def _cells(
    data: TimeCourse, x, t: float | None, max_cells: int | None, seed: int
) -> list[tuple[np.ndarray, float]]:
    """(points, time) groups to evaluate the fields at.

    x given: those points at t (default the first time). Otherwise the observed cells: of the
    snapshot nearest t if t is given (at t), else of every snapshot at its own time; at most
    ``max_cells`` per snapshot (a fixed-seed subsample).
    """
    if x is not None:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != data.dim:
            raise ValueError(f"x must have shape (n, {data.dim}), got {x.shape}")
        return [(x, float(data.times[0] if t is None else t))]
    rng = np.random.default_rng(seed)
    ks = range(data.n_times) if t is None else [int(np.argmin(np.abs(data.times - t)))]
    groups = []
    for k in ks:
        xk = data.x[k]
        if max_cells is not None and len(xk) > max_cells:
            xk = xk[np.sort(rng.choice(len(xk), max_cells, replace=False))]
        groups.append((xk, float(data.times[k] if t is None else t)))
    return groups


# ---------------------------------------------------------------------------- tables
def growth_calls(
    model: VGFM,
    x=None,
    t: float | None = None,
    *,
    level: float = 0.9,
    samples: int = 200,
    max_cells: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Growth posterior per cell with a credible call of its sign.

    Points: ``x`` (n, D) at time ``t``; or, without x, the observed cells (of the snapshot
    nearest ``t`` if given, else of every snapshot at its own time; at most ``max_cells`` per
    snapshot). Columns: the coordinates (the data's names), t, mean, sd, p_positive (P(g > 0)),
    lower and upper (the central ``level`` interval; an ensemble's is the Student-t interval
    for one more member, last_layer's for one more mixture component) and call:
    "proliferating" (lower > 0), "dying" (upper < 0) or "undetermined". A point head's interval
    is its one value, so it calls every cell.
    """
    data = _fitted(model)
    post = model.posterior
    params = post.draw(samples)
    frames = []
    for xk, tk in _cells(data, x, t, max_cells, seed):
        g = model.growth_draws(xk, tk, params=params)  # (S, n)
        groups = post.draw_groups(g.shape[0])  # members, or last_layer's mixture components
        lo, hi = central_interval(g, level, groups=groups)
        frame = pd.DataFrame(xk, columns=list(data.var_names))
        frame["t"] = tk
        frame["mean"] = g.mean(0)
        frame["sd"] = g.std(0, ddof=1) if g.shape[0] > 1 else 0.0
        frame["p_positive"] = prob_positive(g, groups=groups)
        frame["lower"], frame["upper"] = lo, hi
        frame["call"] = sign_calls(lo, hi)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------- figures
def mass(
    model: VGFM,
    *,
    traj: Trajectories | None = None,
    samples: int = 100,
    level: float = 0.9,
    label: str | None = None,
    color: str = "C0",
    observed: bool = True,
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Figure:
    """Total mass over time: the posterior mean, the ``level`` credible band of the model's
    mass, the predictive band of an observed mass (Bayesian heads: the model's plus the
    held-out discrepancy), and the observed masses (``observed=False``: leave them out, e.g.
    when a second model is drawn into the same ``ax``).

    traj : trajectories to use (``model.simulate(samples)`` by default).
    """
    data = _fitted(model)
    traj = model.simulate(samples) if traj is None else traj
    fig, (a,), own = _axes(ax, 1, (5.0, 3.6))
    draw.mass_bands(a, traj, level=level, label=label or model.config.head, color=color)
    if observed:
        draw.observed_mass(a, data)
    draw.mass_labels(a)
    a.legend(frameon=False, fontsize=7)
    return _finish(fig, own, show, save)


def trajectories(
    model: VGFM,
    *,
    traj: Trajectories | None = None,
    samples: int = 100,
    n_times: int = 41,
    draws: int = 4,
    n_paths: int = 60,
    dims: tuple[int, int] = (0, 1),
    seed: int = 0,
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Figure:
    """Observed snapshots with the simulated paths of ``n_paths`` first-snapshot cells under
    each of ``draws`` posterior draws (one colour per draw): where the draws part, the path is
    uncertain.

    traj : trajectories to draw; by default ``draws`` draws simulated at ``n_times`` times
        evenly spaced over the observed range (smooth paths, not only the snapshots' times).
    """
    data = _fitted(model)
    if traj is None:
        grid = np.linspace(data.times[0], data.times[-1], max(n_times, 2))
        traj = model.simulate(min(samples, draws), times=grid)
    fig, (a,), own = _axes(ax, 1, (5.4, 4.4))
    draw.snapshots(a, data, dims)
    draw.paths(a, traj, draws=draws, n_paths=n_paths, dims=dims, seed=seed)
    draw.label_dims(a, data.var_names, dims)
    n = min(draws, traj.x.shape[0])
    a.set_title(f"{model.config.head}: paths of {n} posterior draw{'s' * (n > 1)}")
    a.legend(markerscale=4, frameon=False, fontsize=7, loc="best")
    return _finish(fig, own, show, save)


def growth(
    model: VGFM,
    x=None,
    t: float | None = None,
    *,
    table: pd.DataFrame | None = None,
    level: float = 0.9,
    samples: int = 200,
    max_cells: int | None = None,
    panels: Sequence[Literal["mean", "calls", "sd"]] = ("mean", "calls"),
    dims: tuple[int, int] = (0, 1),
    ax: Axes | Sequence[Axes] | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Figure:
    """Growth map with its uncertainty, one panel each of ``panels``:

    "mean": posterior-mean growth rate (colour, diverging at 0; per time unit), marker size the
        certainty of its sign |2 P(g > 0) - 1|;
    "calls": the credible calls from the central ``level`` interval (proliferating / dying /
        undetermined), with their counts;
    "sd": the posterior sd.

    Points as ``growth_calls`` (default: every observed cell at its own time); ``table``: its
    output, to plot without recomputing.
    """
    data = _fitted(model)
    panels = list(panels)
    bad = set(panels) - {"mean", "calls", "sd"}
    if bad or not panels:
        raise ValueError(f"panels are 'mean', 'calls' and 'sd', got {panels}")
    if table is None:
        table = growth_calls(model, x, t, level=level, samples=samples, max_cells=max_cells)
    pts = table[list(data.var_names)].to_numpy()
    fig, axs, own = _axes(ax, len(panels), (4.6 * len(panels), 3.9))
    pct = f"{100 * level:g}%"
    when = "at each snapshot's time" if table["t"].nunique() > 1 else f"at t={table['t'][0]:g}"
    for a, panel in zip(axs, panels, strict=True):
        if panel == "mean":
            sc = draw.growth_mean(a, pts, table["mean"], table["p_positive"], dims)
            fig.colorbar(sc, ax=a, label="growth rate, posterior mean")
            a.set_title(f"Growth {when}\n(size: certainty of sign, |2P(g>0)-1|)", fontsize=9)
        elif panel == "calls":
            draw.growth_calls(a, pts, table["call"], dims)
            a.set_title(f"Credible calls ({pct} interval)", fontsize=9)
            a.legend(markerscale=2.5, frameon=False, fontsize=7, loc="best")
        else:
            sc = a.scatter(*draw._xy(pts, dims), c=table["sd"], cmap="magma", s=5, linewidths=0)
            fig.colorbar(sc, ax=a, label="growth rate, posterior sd")
            a.set_title("Growth uncertainty (sd)", fontsize=9)
        draw.label_dims(a, data.var_names, dims)
    return _finish(fig, own, show, save)


def velocity_uncertainty(
    model: VGFM,
    x=None,
    t: float | None = None,
    *,
    color_by: Literal["direction_spread", "speed_sd"] = "direction_spread",
    samples: int = 200,
    max_cells: int | None = 60,
    dims: tuple[int, int] = (0, 1),
    seed: int = 0,
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Figure:
    """Posterior-mean velocity arrows over the observed cells, coloured by the velocity's
    uncertainty: ``direction_spread`` (mean angle between a draw's direction and the mean
    direction, degrees) or ``speed_sd`` (sd of the speed over draws, per time unit).

    Points: ``x`` at ``t``, or the observed cells (as ``growth_calls``; by default at most
    ``max_cells`` per snapshot, each snapshot at its own time). With D > 2 the arrows are
    projected on ``dims``.
    """
    data = _fitted(model)
    if color_by not in ("direction_spread", "speed_sd"):
        raise ValueError(f"color_by is 'direction_spread' or 'speed_sd', got {color_by!r}")
    params = model.posterior.draw(samples)
    pts, mean_v, colour = [], [], []
    for xk, tk in _cells(data, x, t, max_cells, seed):
        v = model.velocity_draws(xk, tk, params=params)  # (S, n, D)
        pts.append(xk)
        mean_v.append(v.mean(0))
        if color_by == "direction_spread":
            colour.append(np.degrees(direction_spread(v)))
        else:
            speed = np.linalg.norm(v, axis=-1)
            colour.append(speed.std(0, ddof=1) if v.shape[0] > 1 else np.zeros(v.shape[1]))
    pts, mean_v, colour = np.vstack(pts), np.vstack(mean_v), np.concatenate(colour)
    fig, (a,), own = _axes(ax, 1, (5.6, 4.4))
    draw.snapshots(a, data, dims, grey=True)
    q = draw.arrows(a, pts, mean_v, colour, dims)
    unit = "direction spread (degrees)" if color_by == "direction_spread" else "speed sd"
    fig.colorbar(q, ax=a, label=unit)
    draw.label_dims(a, data.var_names, dims)
    a.set_title(f"{model.config.head}: posterior-mean velocity, coloured by {unit}", fontsize=9)
    return _finish(fig, own, show, save)


def compare(
    models: Mapping[str, VGFM],
    *,
    metrics: Mapping[str, dict] | None = None,
    trajs: Mapping[str, Trajectories] | None = None,
    samples: int = 100,
    level: float = 0.9,
    panels: Sequence[Literal["w1", "rme", "mass"]] = ("w1", "mass"),
    ax: Axes | Sequence[Axes] | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Figure:
    """Heads side by side, one panel each of ``panels``: "w1" / "rme" per evaluated time
    (grouped bars, the published VGFM numbers beside for a bundled data set) and "mass" (each
    head's mean, credible and predictive bands, with the observed masses).

    models : name -> fitted VGFM, all fitted on the same data.
    metrics : name -> ``model.evaluate()`` output (computed when missing).
    trajs : name -> ``model.simulate(samples)`` (computed when missing; "mass" only).
    """
    if not models:
        raise ValueError("compare needs at least one model")
    panels = list(panels)
    bad = set(panels) - {"w1", "rme", "mass"}
    if bad or not panels:
        raise ValueError(f"panels are 'w1', 'rme' and 'mass', got {panels}")
    datas = {name: _fitted(m) for name, m in models.items()}
    data = next(iter(datas.values()))
    metrics = dict(metrics or {})
    if {"w1", "rme"} & set(panels):
        for name, m in models.items():
            if name not in metrics:
                metrics[name] = m.evaluate()
    trajs = dict(trajs or {})
    fig, axs, own = _axes(ax, len(panels), (4.8 * len(panels), 3.7))
    for a, panel in zip(axs, panels, strict=True):
        if panel in ("w1", "rme"):
            draw.w1_bars(a, {n: metrics[n] for n in models}, _reference(data), key=panel)
            a.set_title(f"{panel.upper()} per time point")
        else:
            for h, (name, m) in enumerate(models.items()):
                traj = trajs.get(name)
                traj = m.simulate(samples) if traj is None else traj
                draw.mass_bands(a, traj, level=level, label=name, color=f"C{h}")
            draw.observed_mass(a, data)
            draw.mass_labels(a)
        a.legend(frameon=False, fontsize=7)
    return _finish(fig, own, show, save)


__all__ = [
    "compare",
    "growth",
    "growth_calls",
    "mass",
    "trajectories",
    "velocity_uncertainty",
]
