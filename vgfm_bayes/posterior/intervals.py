"""Credible / predictive intervals from posterior draws.

Variational heads give as many draws as asked, so their intervals are the draws' empirical
quantiles. An ensemble's K members are all the posterior there is, and the empirical 5-95%
quantiles of K members cover a new member only about 62% (K = 5) or 76% (K = 10) of the time
(the range of K draws covers (K - 1) / (K + 1) of the next one). For members the interval is
therefore the Student-t prediction interval for one more member:
mean +- t_{K-1} * sd * sqrt(1 + 1/K).

The same holds for a posterior mixed over K finite components (last_layer: K bootstrap x
SROT-setting components, each a Gaussian): its draws come in ``groups`` of consecutive draws,
one group per component, and the components' spread is again a sample of K. Its interval is the
prediction interval for one more component: location the mean of the component means, scale
sqrt(var(means) (1 + 1/K) + within), within the draws' pooled variance about their component's
mean, and the Welch-Satterthwaite degrees of freedom of that sum of two variances (K - 1 when the
between part dominates, as for members, whose groups are one draw each and within = 0; the
within part's own sum(n_k - 1) when it does).

A total mass is positive and grows multiplicatively, so its intervals are taken on log mass
(for members, a Student-t on log mass, never a negative bound). An observed mass also differs
from the model's by what no fit explains (counting noise, a snapshot that sits off the curve):
``mass_interval`` adds that discrepancy, estimated from held-out snapshots (ot/tune.py), as a
scaled Student-t on log mass, to give the predictive interval of an observation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

QUANTILES = (0.05, 0.5, 0.95)


def _member_scale(draws: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, int]:
    k = draws.shape[axis]
    if k < 2:
        raise ValueError(f"a member-based interval needs at least 2 members, got {k}")
    sd = draws.std(axis, ddof=1)
    return draws.mean(axis), sd * np.sqrt(1.0 + 1.0 / k), k - 1


def _group_scale(draws: np.ndarray, axis: int, groups: Sequence[int]) -> tuple:
    """(location, scale, dof) of the prediction interval for one more group (module doc)."""
    counts = np.asarray(groups, dtype=int)
    if counts.ndim != 1 or np.any(counts < 0) or counts.sum() != draws.shape[axis]:
        raise ValueError(
            f"groups must be non-negative sizes summing to the {draws.shape[axis]} draws, "
            f"got {list(counts)}"
        )
    if np.all(counts[counts > 0] == 1):
        return _member_scale(draws, axis)
    parts = [p for p in np.split(np.moveaxis(draws, axis, 0), np.cumsum(counts)[:-1]) if len(p)]
    k = len(parts)
    if k < 2:
        raise ValueError(f"a group-based interval needs at least 2 non-empty groups, got {k}")
    means = np.stack([p.mean(0) for p in parts])
    dof_within = sum(len(p) - 1 for p in parts)
    within = sum(((p - p.mean(0)) ** 2).sum(0) for p in parts) / max(dof_within, 1)
    between = means.var(0, ddof=1) * (1.0 + 1.0 / k)
    total = between + within
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = total**2 / (between**2 / (k - 1) + within**2 / max(dof_within, 1))
    dof = np.where(total > 0, dof, k - 1)  # no spread at all: any dof gives the same interval
    return means.mean(0), np.sqrt(total), dof


def _finite(is_ensemble: bool, groups: Sequence[int] | None, n: int) -> Sequence[int] | None:
    """The draws' groups: ``groups``, one per draw for members, or None (plain draws)."""
    if groups is not None:
        return groups
    return (1,) * n if is_ensemble else None


def quantiles(
    draws, probs, axis: int = 0, is_ensemble: bool = False, groups: Sequence[int] | None = None
) -> np.ndarray:
    """Quantiles ``probs`` over the draw axis, shape (len(probs), ...).

    is_ensemble : the draws are a finite ensemble; quantiles of the Student-t predictive for a new
        member (location the mean, scale sd * sqrt(1 + 1/K), K - 1 degrees of freedom).
    groups : sizes of consecutive groups of draws, one per component of a finite mixture; the
        Student-t predictive for a new component (module doc). Overrides ``is_ensemble``.
    """
    draws = np.asarray(draws, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    groups = _finite(is_ensemble, groups, draws.shape[axis])
    if groups is None:
        return np.quantile(draws, probs, axis=axis)
    loc, scale, dof = _group_scale(draws, axis, groups)
    z = stats.t.ppf(probs.reshape(-1, *([1] * loc.ndim)), dof)  # dof: scalar or per quantity
    return loc[None] + z * scale[None]


def central_interval(
    draws,
    level: float = 0.9,
    axis: int = 0,
    is_ensemble: bool = False,
    groups: Sequence[int] | None = None,
):
    """(lower, upper) of the central ``level`` interval over the draw axis (``quantiles``)."""
    lo, hi = quantiles(draws, [(1 - level) / 2, (1 + level) / 2], axis, is_ensemble, groups)
    return lo, hi


NOISE_DRAWS = 4000  # Monte Carlo draws per time for the discrepancy convolution


def _standard_t(rng: np.random.Generator, dof: float, size) -> np.ndarray:
    return rng.standard_normal(size) if np.isinf(dof) else rng.standard_t(dof, size)


def mass_interval(
    mass_draws,
    level: float = 0.9,
    is_ensemble: bool = False,
    noise_sd: float = 0.0,
    noise_dof: float = np.inf,
    groups: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the central ``level`` interval of the total mass, shape (T,) each.

    mass_draws : ndarray, shape (S, T) -- total mass per draw and time (> 0).
    is_ensemble, groups : the draws are an ensemble's members or come in a finite mixture's
        groups (Student-t on log mass, as ``quantiles``).
    noise_sd, noise_dof : discrepancy of an observed log mass, sd * t_dof; 0 gives the
        interval of the model's own mass, otherwise the predictive interval of an observation.
        The convolution is a fixed-seed Monte Carlo, so the interval is reproducible.
    """
    log_m = np.log(np.asarray(mass_draws, dtype=np.float64))
    probs = [(1 - level) / 2, (1 + level) / 2]
    groups = _finite(is_ensemble, groups, log_m.shape[0])
    if noise_sd <= 0:
        lo, hi = quantiles(log_m, probs, axis=0, groups=groups)
        return np.exp(lo), np.exp(hi)
    rng = np.random.default_rng(0)
    if groups is not None:
        loc, scale, dof = _group_scale(log_m, 0, groups)
        if np.ndim(dof):  # a mixture's dof per time
            z = rng.standard_t(np.asarray(dof)[:, None], (len(loc), NOISE_DRAWS))
        else:
            z = _standard_t(rng, dof, NOISE_DRAWS)
        model = loc[:, None] + scale[:, None] * z
        draws = model + noise_sd * _standard_t(rng, noise_dof, NOISE_DRAWS)[None]  # (T, M)
    else:  # each draw with its own noise draws (the same across times)
        per = -(-NOISE_DRAWS // log_m.shape[0])
        noise = noise_sd * _standard_t(rng, noise_dof, (log_m.shape[0], per))
        draws = (log_m.T[:, :, None] + noise[None]).reshape(log_m.shape[1], -1)
    lo, hi = np.quantile(draws, probs, axis=1)
    return np.exp(lo), np.exp(hi)


def prob_positive(
    draws, axis: int = 0, is_ensemble: bool = False, groups: Sequence[int] | None = None
) -> np.ndarray:
    """P(value > 0): the fraction of draws, or for members / groups the Student-t predictive's."""
    draws = np.asarray(draws, dtype=np.float64)
    groups = _finite(is_ensemble, groups, draws.shape[axis])
    if groups is None:
        return (draws > 0).mean(axis)
    loc, scale, dof = _group_scale(draws, axis, groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(scale > 0, loc / np.where(scale > 0, scale, 1.0), np.sign(loc) * np.inf)
    return stats.t.cdf(z, dof)


def summarise(
    draws, axis: int = 0, is_ensemble: bool = False, groups: Sequence[int] | None = None
) -> dict[str, np.ndarray]:
    """mean, sd, q05, q50, q95 and P(> 0) over the draw axis (see ``quantiles`` for members
    and groups)."""
    draws = np.asarray(draws, dtype=np.float64)
    q = quantiles(draws, QUANTILES, axis, is_ensemble, groups)
    single = draws.shape[axis] < 2
    return {
        "mean": draws.mean(axis),
        "sd": np.zeros_like(draws.mean(axis)) if single else draws.std(axis, ddof=1),
        "q05": q[0],
        "q50": q[1],
        "q95": q[2],
        "p_positive": prob_positive(draws, axis, is_ensemble, groups),
    }


CALLS = ("dying", "undetermined", "proliferating")


def sign_calls(lower, upper) -> np.ndarray:
    """Credible calls of a rate's sign from its interval: "proliferating" where the whole
    interval is above 0, "dying" where it is below 0, "undetermined" where it holds 0.

    lower, upper : array-like, same shape -- e.g. q05 and q95, the central 90% interval.
    A point estimate's interval is one value, so it is never "undetermined" (unless exactly 0).
    """
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    if lower.shape != upper.shape:
        raise ValueError(f"lower {lower.shape} and upper {upper.shape} must have one shape")
    if np.any(lower > upper):
        raise ValueError("every lower bound must be <= its upper bound")
    return np.where(lower > 0, CALLS[2], np.where(upper < 0, CALLS[0], CALLS[1]))
