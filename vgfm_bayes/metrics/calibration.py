"""Calibration of posteriors against a known truth (DESIGN 4, uncertainty quality).

Draws come first: ``draws`` has shape (S, N) (S posterior draws of N quantities) and ``truth``
shape (N,).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data import Scaling
from ..ot import interval_plans
from ..posterior import central_interval


def _check(draws: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    draws = np.asarray(draws, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if draws.ndim != 2 or truth.shape != draws.shape[1:]:
        raise ValueError(f"draws must be (S, N) and truth (N,), got {draws.shape}, {truth.shape}")
    return draws, truth


def interval_coverage(
    draws: np.ndarray,
    truth: np.ndarray,
    level: float = 0.9,
    is_ensemble: bool = False,
    groups: Sequence[int] | None = None,
) -> float:
    """Fraction of quantities whose truth lies in the central ``level`` interval of the draws
    (is_ensemble: the draws are an ensemble's; groups: they come in a finite mixture's groups
    of these sizes; see posterior/intervals.py)."""
    draws, truth = _check(draws, truth)
    lo, hi = central_interval(draws, level, axis=0, is_ensemble=is_ensemble, groups=groups)
    return float(np.mean((lo <= truth) & (truth <= hi)))


def crps(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Continuous ranked probability score per quantity, shape (N,) (lower is better).

    The sample (energy) form E|X - y| - E|X - X'| / 2 over the draws, computed exactly from
    sorted draws in O(S log S); for S = 1 it is the absolute error.
    """
    draws, truth = _check(draws, truth)
    s = draws.shape[0]
    first = np.abs(draws - truth).mean(0)
    x = np.sort(draws, axis=0)
    # sum_{i,j} |x_i - x_j| = 2 sum_i (2i - s + 1) x_(i) for sorted x, i = 0..s-1
    weights = (2 * np.arange(s) - s + 1)[:, None]
    spread = 2 * (weights * x).sum(0) / s**2
    return first - spread / 2


def spearman(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Spearman rank correlation (ties averaged); NaN when either side is constant."""
    estimate = np.asarray(estimate, dtype=np.float64).ravel()
    truth = np.asarray(truth, dtype=np.float64).ravel()
    if estimate.shape != truth.shape:
        raise ValueError(f"shapes differ: {estimate.shape} vs {truth.shape}")
    if np.ptp(estimate) == 0 or np.ptp(truth) == 0:
        return float("nan")
    return float(np.corrcoef(_ranks(estimate), _ranks(truth))[0, 1])


def _ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]


def mass_interval_covers(
    mass_draws: np.ndarray,
    observed: float,
    level: float = 0.9,
    is_ensemble: bool = False,
    groups: Sequence[int] | None = None,
) -> bool:
    """Whether the central ``level`` predictive interval of the total mass covers ``observed``.

    mass_draws : ndarray, shape (S,) -- predicted total mass at one time, per draw (e.g. at a
        held-out time point, from ``Trajectories.mass[:, k]``).
    """
    m = np.asarray(mass_draws, dtype=np.float64).ravel()
    lo, hi = central_interval(m, level, is_ensemble=is_ensemble, groups=groups)
    return bool(lo <= observed <= hi)


def growth_calibration(
    draws: np.ndarray,
    truth: np.ndarray,
    level: float = 0.9,
    is_ensemble: bool = False,
    groups: Sequence[int] | None = None,
) -> dict:
    """Summary of a growth posterior against the true growth: coverage, CRPS, Spearman, width."""
    draws, truth = _check(draws, truth)
    lo, hi = central_interval(draws, level, axis=0, is_ensemble=is_ensemble, groups=groups)
    return {
        "coverage": interval_coverage(draws, truth, level, is_ensemble, groups),
        "crps": float(crps(draws, truth).mean()),
        "spearman": spearman(draws.mean(0), truth),
        "mean_width": float((hi - lo).mean()),
        "rmse": float(np.sqrt(((draws.mean(0) - truth) ** 2).mean())),
    }


def srot_target_quality(data, growth, eps: float, tau: float) -> dict[str, float]:
    """How good one SROT setting's growth targets are against a known truth (no network trained).

    Parameters
    ----------
    data : TimeCourse -- the snapshots, in user units (standardised here, as the tuning score
        and auto fits see them: the setting is on the max-normalised cost).
    growth : sequence of ndarray, each (n_k,) -- the true growth rate of every cell.
    eps, tau : the SROT setting.

    Returns
    -------
    dict: "rmse" and "spearman" of gamma_i = log(r_i) / dt against the true growth of the source
    cells of every interval.
    """
    plans = interval_plans(Scaling.fit(data).apply(data), eps, tau, True)
    gam = np.concatenate([p.growth_targets.double().cpu().numpy() for p in plans])
    truth = np.concatenate([np.asarray(g, dtype=np.float64) for g in growth[:-1]])
    if gam.shape != truth.shape:
        raise ValueError(f"growth has {truth.size} source cells, the data {gam.size}")
    return {"rmse": float(np.sqrt(np.mean((gam - truth) ** 2))), "spearman": spearman(gam, truth)}
