"""Evaluation (DESIGN 4): exact W1 and relative mass error per observed time."""

from __future__ import annotations

import numpy as np

from ..data import TimeCourse
from ..ot import w1_exact
from ..posterior import Trajectories


def relative_mass_error(predicted: np.ndarray | float, observed: np.ndarray | float):
    """RME = |predicted - observed| / observed."""
    return np.abs(np.asarray(predicted) - observed) / np.asarray(observed)


def score(traj: Trajectories, data: TimeCourse, held_out: int | None = None) -> dict:
    """W1 and RME of simulated trajectories against every snapshot after the first.

    W1 per time is the exact EMD (Euclidean cost) between each draw's weight-normalised particles
    and the observed cells, averaged over draws; RME uses the mean predicted mass over draws.
    The 90% predictive interval of the total mass (5% and 95% quantiles over draws) and whether
    it covers the observed mass are reported too (degenerate for a point estimate).

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
    w1_draws = np.array(
        [[w1_exact(traj.x[s, k], w[s, k], data.x[k]) for k in ks] for s in range(w.shape[0])]
    )
    w1 = w1_draws.mean(0)
    mass_mean = mass[:, ks].mean(0)
    observed = data.masses[ks]
    rme = relative_mass_error(mass_mean, observed)
    lo, hi = np.quantile(mass[:, ks], [0.05, 0.95], axis=0)
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
        "w1_sd": w1_draws.std(0).tolist(),
        "samples": int(w.shape[0]),
    }
    if held_out is not None:
        i = ks.index(held_out)
        out["w1_held_out"] = float(w1[i])
        out["rme_held_out"] = float(rme[i])
        out["mass_covered_held_out"] = bool(out["mass_covered"][i])
    return out
