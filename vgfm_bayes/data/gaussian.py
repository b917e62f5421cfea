"""Gaussian-mixture growth benchmark at any dimension (the VGFM paper's 1000-D case).

Reproduces the structure of the DeepRUOT repository's ``gaussian_{10,20,50,100}d.csv`` (read off
those files: 2 time points labelled 0 and 1, n = 500 / 1,400, every cluster isotropic with
sd 0.0707 = sqrt(0.005) in every coordinate, centres in the first two coordinates only):

    time 0:  400 cells at (0, 0)                  100 cells at (0, 2.5)
    time 1:  200 at (-1, 0) and 200 at (1, 0)     1,000 cells at (0, 2.5)

so the lower population only moves (it splits into two branches, mass conserved) and the upper
one only grows (10-fold, no movement). Total mass 1 -> 2.8.

Here that picture is continued to any number of time points in between, at s = (t - t_0) /
(t_last - t_0) in [0, 1]: the branches sit at (-s, 0) and (s, 0) with mass 0.4 each, the upper
cluster at (0, 2.5) with mass 0.2 * fold**s. The true fields are known: growth rate
log(fold) / (t_last - t_0) in the upper cluster and 0 in the branches; velocity (+-1, 0, ...) /
(t_last - t_0) in the branches and 0 in the upper cluster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .timecourse import DataError, TimeCourse

SD = math.sqrt(0.005)  # per-coordinate sd of every cluster in the reference files
TOP = 2.5  # second coordinate of the growing cluster
BRANCH_MASS = 0.8  # share of the first snapshot in the splitting population


def _masses(s: np.ndarray, fold: float) -> np.ndarray:
    """Relative mass of (left, right, top) at rescaled times s, shape (len(s), 3)."""
    top = (1.0 - BRANCH_MASS) * fold**s
    half = np.full_like(s, BRANCH_MASS / 2)
    return np.stack([half, half, top], axis=1)


def _split(n: int, shares: np.ndarray) -> np.ndarray:
    """n cells over clusters in proportion to shares, exactly n in total (largest remainders)."""
    raw = n * shares / shares.sum()
    counts = np.floor(raw).astype(int)
    counts[np.argsort(raw - counts)[::-1][: n - counts.sum()]] += 1
    return counts


def gaussian_mixture(
    dim: int = 1000,
    n0: int = 500,
    times: Sequence[float] = (0.0, 1.0),
    *,
    cells_per_time: int | None = None,
    fold: float = 10.0,
    sd: float = SD,
    seed: int = 0,
    return_labels: bool = False,
) -> TimeCourse | tuple[TimeCourse, list[np.ndarray]]:
    """Simulate the Gaussian-mixture growth benchmark.

    Parameters
    ----------
    dim : number of coordinates (>= 2); the paper's hardest case is 1000.
    n0 : cells in the first snapshot. Later snapshots get round(n0 * mass) cells, so the cell
        counts carry the growth (n = 500 / 1,400 with the defaults, as in the reference files).
    times : observation times (strictly increasing, at least two).
    cells_per_time : if given, every snapshot has exactly this many cells and the growth is carried
        by explicit masses instead of counts (for scale benchmarks at a fixed size per time).
    fold : total growth factor of the upper cluster from the first to the last time.
    sd : per-coordinate standard deviation of every cluster.
    seed : seed of the generator.
    return_labels : also return each snapshot's cluster labels (0 left, 1 right, 2 top).

    Returns
    -------
    TimeCourse named ``gaussian_<dim>d`` (and, with ``return_labels``, a list of int arrays of
    shape (n_k,)).
    """
    if dim < 2:
        raise DataError(
            f"the Gaussian mixture needs dim >= 2 (clusters differ in x1, x2), got {dim}"
        )
    if n0 < 2 or (cells_per_time is not None and cells_per_time < 3):
        raise DataError("need n0 >= 2 cells (cells_per_time >= 3 when given)")
    if not fold > 0:
        raise DataError(f"fold must be positive, got {fold}")
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or len(t) < 2 or np.any(np.diff(t) <= 0):
        raise DataError(f"times must be at least two strictly increasing values, got {list(times)}")
    s = (t - t[0]) / (t[-1] - t[0])
    shares = _masses(s, fold)  # (K, 3)
    total = shares.sum(1)
    rng = np.random.default_rng(seed)
    xs, labels = [], []
    for k in range(len(t)):
        n = cells_per_time if cells_per_time is not None else int(round(n0 * total[k] / total[0]))
        counts = _split(n, shares[k])
        centres = np.zeros((3, dim))
        centres[0, 0], centres[1, 0], centres[2, 1] = -s[k], s[k], TOP
        lab = np.repeat(np.arange(3), counts)
        xs.append(centres[lab] + sd * rng.standard_normal((n, dim)))
        labels.append(lab)
    masses = None if cells_per_time is None else total / total[0]
    tc = TimeCourse(t, tuple(xs), masses, name=f"gaussian_{dim}d")
    return (tc, labels) if return_labels else tc


def gaussian_true_growth(x: np.ndarray, times: Sequence[float], fold: float = 10.0) -> np.ndarray:
    """True growth rate (per unit time) at points x, shape (n,): by the nearest cluster centre.

    The upper cluster (second coordinate nearer 2.5 than 0) grows at log(fold) / (t_last - t_0);
    the branches do not grow.
    """
    x = np.asarray(x, dtype=np.float64)
    span = float(times[-1]) - float(times[0])
    return np.where(x[:, 1] > TOP / 2, math.log(fold) / span, 0.0)
