"""Credible / predictive intervals from posterior draws.

Variational heads give as many draws as asked, so their intervals are the draws' empirical
quantiles. An ensemble's K members are all the posterior there is, and the empirical 5-95%
quantiles of 10 members cover a new member only about 75% of the time (the range of 10 draws
covers 9/11 of the next one). For members the interval is therefore the Student-t prediction
interval for one more member: mean +- t_{K-1} * sd * sqrt(1 + 1/K).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

QUANTILES = (0.05, 0.5, 0.95)


def _member_scale(draws: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, int]:
    k = draws.shape[axis]
    if k < 2:
        raise ValueError(f"a member-based interval needs at least 2 members, got {k}")
    sd = draws.std(axis, ddof=1)
    return draws.mean(axis), sd * np.sqrt(1.0 + 1.0 / k), k - 1


def quantiles(draws, probs, axis: int = 0, members: bool = False) -> np.ndarray:
    """Quantiles ``probs`` over the draw axis, shape (len(probs), ...).

    members : the draws are a finite ensemble; quantiles of the Student-t predictive for a new
        member (location the mean, scale sd * sqrt(1 + 1/K), K - 1 degrees of freedom).
    """
    draws = np.asarray(draws, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    if not members:
        return np.quantile(draws, probs, axis=axis)
    loc, scale, dof = _member_scale(draws, axis)
    z = stats.t.ppf(probs, dof).reshape(-1, *([1] * loc.ndim))
    return loc[None] + z * scale[None]


def central_interval(draws, level: float = 0.9, axis: int = 0, members: bool = False):
    """(lower, upper) of the central ``level`` interval over the draw axis."""
    lo, hi = quantiles(draws, [(1 - level) / 2, (1 + level) / 2], axis, members)
    return lo, hi


def prob_positive(draws, axis: int = 0, members: bool = False) -> np.ndarray:
    """P(value > 0): the fraction of draws, or for members the Student-t predictive's."""
    draws = np.asarray(draws, dtype=np.float64)
    if not members:
        return (draws > 0).mean(axis)
    loc, scale, dof = _member_scale(draws, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(scale > 0, loc / np.where(scale > 0, scale, 1.0), np.sign(loc) * np.inf)
    return stats.t.cdf(z, dof)


def summarise(draws, axis: int = 0, members: bool = False) -> dict[str, np.ndarray]:
    """mean, sd, q05, q50, q95 and P(> 0) over the draw axis (see ``quantiles`` for members)."""
    draws = np.asarray(draws, dtype=np.float64)
    q = quantiles(draws, QUANTILES, axis, members)
    single = draws.shape[axis] < 2
    return {
        "mean": draws.mean(axis),
        "sd": np.zeros_like(draws.mean(axis)) if single else draws.std(axis, ddof=1),
        "q05": q[0],
        "q50": q[1],
        "q95": q[2],
        "p_positive": prob_positive(draws, axis, members),
    }
