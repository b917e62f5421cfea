"""Evaluation (DESIGN 4): exact W1 and relative mass error per observed time."""

from __future__ import annotations

import numpy as np

from ..data import TimeCourse
from ..ot import w1_exact, w1_exact_many
from ..posterior import Trajectories


def relative_mass_error(predicted: np.ndarray | float, observed: np.ndarray | float):
    """RME = |predicted - observed| / observed."""
    return np.abs(np.asarray(predicted) - observed) / np.asarray(observed)


# Exact W1 up to this many particle x cell pairs (a 4,000 x 4,000 network simplex, a few seconds
# and 128 MB of cost); beyond it a mini-batch estimate (stated in the output as "w1_method").
EXACT_MAX_PAIRS = 16_000_000
MINIBATCH_SIZE = 2000
MINIBATCH_REPEATS = 5
# The pooled predictive (all draws' particles together) is scored exactly on at most this many
# pooled particle x cell pairs (a 2,000 x 2,000 simplex), or on one draw's worth of particles
# where that is more: beyond it every draw gives an equal random subset of its particles.
POOLED_MAX_PAIRS = 4_000_000


def w1_minibatch(
    x: np.ndarray,
    w: np.ndarray,
    y: np.ndarray,
    size: int = MINIBATCH_SIZE,
    repeats: int = MINIBATCH_REPEATS,
    rng: np.random.Generator | None = None,
) -> float:
    """Mini-batch estimate of W1: mean exact W1 over ``repeats`` random subsamples.

    Each repeat draws ``size`` particles (keeping their weights, renormalised) and ``size`` cells
    uniformly without replacement. It estimates E[W1(subsample, subsample)], which is ABOVE the
    full W1 (sampling noise adds transport), the more so in high dimension: compare it only with
    numbers computed the same way (same size), never with exact W1.

    Parameters
    ----------
    x : ndarray, shape (n, D); w : ndarray, shape (n,); y : ndarray, shape (m, D).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    out = []
    for _ in range(repeats):
        i = rng.choice(len(x), size=min(size, len(x)), replace=False)
        j = rng.choice(len(y), size=min(size, len(y)), replace=False)
        out.append(w1_exact(x[i], w[i], y[j]))
    return float(np.mean(out))


def score(
    traj: Trajectories,
    data: TimeCourse,
    held_out: int | None = None,
    *,
    exact_max_pairs: int = EXACT_MAX_PAIRS,
    minibatch_size: int = MINIBATCH_SIZE,
    minibatch_repeats: int = MINIBATCH_REPEATS,
    pooled_max_pairs: int = POOLED_MAX_PAIRS,
) -> dict:
    """W1 and RME of simulated trajectories against every snapshot after the first.

    W1 per time is the exact EMD (Euclidean cost) between each draw's weight-normalised particles
    and the observed cells, averaged over draws; RME uses the mean predicted mass over draws.
    Where particles x cells exceed ``exact_max_pairs`` the exact EMD does not fit, and W1 is the
    mini-batch estimate of ``w1_minibatch`` instead: "w1_method" says, per time, "exact" or
    "minibatch" (with "w1_minibatch": {"size", "repeats"}); such values are biased upwards and
    are not comparable with exact W1.
    The 90% predictive interval of the observed total mass ("mass_q05", "mass_q95": on log
    mass, quantiles over draws or for an ensemble the Student-t interval for a new member,
    widened by the trajectories' held-out discrepancy ``mass_noise`` where there is one;
    posterior/intervals.py), whether it covers the observed mass and its half-width relative
    to the observed mass ("mass_halfwidth_rel") are reported too (degenerate for a point
    estimate). With a discrepancy, "mass_credible_q05/q95" is the model's mass alone.

    Two W1 per time describe a posterior predictive: "w1_per_draw" (= "w1", each draw scored on
    its own, then averaged) and "w1_pooled" (all draws' particles pooled, weights divided by S:
    the W1 of the predictive distribution itself). W1 is convex in the predicted measure, so
    pooled <= per-draw; they are equal for identical draws. The pooled set has S x N
    particles: where S N n_k exceeds ``pooled_max_pairs``, every draw contributes the same
    number of its particles, a random subset (weights renormalised within the draw), so that
    the pooled set holds max(pooled_max_pairs // n_k, N) particles ("w1_pooled_particles" per
    time: particles per draw, N when all are used); where one draw is already scored by
    mini-batches, so is the pooled set.

    Parameters
    ----------
    traj : trajectories at exactly ``data.times``.
    data : the full time course, held-out snapshot included.
    held_out : index of the snapshot left out of training, if any.
    """
    if not np.allclose(traj.times, data.times):
        raise ValueError("trajectories must be simulated at the data's observed times")
    w = np.exp(traj.log_w)  # (S, T, N)
    mass = w.sum(-1)  # (S, T)
    ks = list(range(1, data.n_times))
    n_particles = traj.x.shape[2]
    exact = [n_particles * len(data.x[k]) <= exact_max_pairs for k in ks]
    rng = np.random.default_rng(0)

    # exact EMDs are solved together in threads; mini-batch estimates stay in their sequential
    # order, so they draw the same random numbers as a one-by-one loop would
    n_draws = w.shape[0]
    w1_draws = np.zeros((n_draws, len(ks)))
    exact_jobs: list[tuple[int, int]] = []
    for s in range(n_draws):
        for i, k in enumerate(ks):
            if exact[i]:
                exact_jobs.append((s, i))
            else:
                w1_draws[s, i] = w1_minibatch(
                    traj.x[s, k], w[s, k], data.x[k], minibatch_size, minibatch_repeats, rng
                )
    solved = w1_exact_many((traj.x[s, ks[i]], w[s, ks[i]], data.x[ks[i]]) for s, i in exact_jobs)
    for (s, i), value in zip(exact_jobs, solved, strict=True):
        w1_draws[s, i] = value
    w1 = w1_draws.mean(0)
    pooled: list[float] = [0.0] * len(ks)
    pooled_particles = []
    pooled_jobs: list[tuple[int, tuple]] = []
    for i, k in enumerate(ks):
        budget = max(pooled_max_pairs // len(data.x[k]), n_particles)
        each = n_particles if not exact[i] else min(n_particles, max(1, budget // n_draws))
        pooled_particles.append(int(each))
        if n_draws == 1:  # the pooled predictive is the one draw
            pooled[i] = float(w1[i])
            continue
        if each == n_particles:
            keep = np.broadcast_to(np.arange(n_particles), (n_draws, n_particles))
        else:
            keep = np.stack([rng.choice(n_particles, each, replace=False) for _ in range(n_draws)])
        rows = np.arange(n_draws)[:, None]
        x_pool = traj.x[rows, k, keep].reshape(-1, traj.x.shape[-1])
        w_keep = w[rows, k, keep]
        w_pool = (w_keep / w_keep.sum(-1, keepdims=True)).reshape(-1) / n_draws
        if exact[i]:
            pooled_jobs.append((i, (x_pool, w_pool, data.x[k])))
        else:
            pooled[i] = w1_minibatch(
                x_pool, w_pool, data.x[k], minibatch_size, minibatch_repeats, rng
            )
    for (i, _), value in zip(pooled_jobs, w1_exact_many(p for _, p in pooled_jobs), strict=True):
        pooled[i] = value
    mass_mean = mass[:, ks].mean(0)
    observed = data.masses[ks]
    rme = relative_mass_error(mass_mean, observed)
    lo, hi = (b[ks] for b in traj.mass_interval(0.9))
    out = {
        "times": [float(data.times[k]) for k in ks],
        "w1": w1.tolist(),
        "rme": rme.tolist(),
        "w1_mean": float(w1.mean()),
        "rme_mean": float(rme.mean()),
        "held_out": held_out,
        "mass_predicted": mass_mean.tolist(),
        "mass_observed": observed.tolist(),
        "mass_q05": lo.tolist(),
        "mass_q95": hi.tolist(),
        "mass_covered": ((lo <= observed) & (observed <= hi)).tolist(),
        "mass_halfwidth_rel": ((hi - lo) / 2 / observed).tolist(),
        "mass_noise": None if traj.mass_noise is None else list(traj.mass_noise),
        "w1_per_draw": w1.tolist(),
        "w1_per_draw_mean": float(w1.mean()),
        "w1_pooled": pooled,
        "w1_pooled_mean": float(np.mean(pooled)),
        "w1_pooled_particles": pooled_particles,
        "w1_sd": w1_draws.std(0).tolist(),
        "samples": int(w.shape[0]),
        "w1_method": ["exact" if e else "minibatch" for e in exact],
    }
    if traj.mass_noise is not None:  # the model's own mass, without the discrepancy
        c_lo, c_hi = (b[ks] for b in traj.mass_interval(0.9, observed=False))
        out["mass_credible_q05"], out["mass_credible_q95"] = c_lo.tolist(), c_hi.tolist()
    if not all(exact):
        out["w1_minibatch"] = {"size": minibatch_size, "repeats": minibatch_repeats}
    if held_out is not None:
        i = ks.index(held_out)
        out["w1_held_out"] = float(w1[i])
        out["rme_held_out"] = float(rme[i])
        out["mass_covered_held_out"] = bool(out["mass_covered"][i])
        out["mass_halfwidth_rel_held_out"] = out["mass_halfwidth_rel"][i]
        out["w1_pooled_held_out"] = pooled[i]
    return out
