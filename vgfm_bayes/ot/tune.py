"""SROT settings chosen from the user's snapshots alone: a held-out-snapshot score (DESIGN 3.1).

For every interior snapshot k, SROT is solved between snapshots k-1 and k+1 and the plan's
displacement interpolation is pushed to t_k: a pair (i, j) sits at (1 - s) x_i + s y_j with
s = (t_k - t_{k-1}) / (t_{k+1} - t_{k-1}), and source cell i's mass grows as r_i^s (VGFM's
constant growth along the segment, gamma_i = log(r_i) / dt). The score of a setting (eps, tau)
is, summed over the held-out snapshots,

    W1(interpolated cloud, snapshot k) + |predicted mass - M_k| / M_k,

with W1 in standardised units (coordinates centred and divided by their pooled RMS spread), so
it needs no network training and reads the same on any data set.

The setting used is not simply the lowest score: where the score is flat, which setting comes
lowest is the held-out cells' sampling noise. Of the settings within one standard error of the
lowest (the Bayesian bootstrap below gives the standard error of each score's difference to the
lowest), the largest tau is used: the one-standard-error rule, with growth closer to uniform as
the simpler model. On the ground-truth simulators the lowest score sat at the grid's smallest
tau on 9 of 12 seeds; the rule's setting had growth targets within 0-17% of the best setting's
RMSE on 11 of 12, the lowest score's up to 74% worse (benchmarks/results/tune_check_cpu.md).

Weights over the grid (used by the heads to carry the choice of setting into the posterior)
are Bayesian-bootstrap probabilities of being the best setting: the W1 of each held-out
snapshot is a mean of per-cell transport costs, so a Dirichlet(1, ..., 1) reweighting of the
held-out cells gives a draw of every setting's score at no extra solve (the observed masses get
their counting noise, log M_k ~ N(log M_k, 1/n_k + 1/n_{k-1})). Settings whose scores differ by
less than the snapshots' own sampling noise share the weight, so a flat score (growth not
identifiable) gives spread weights. No temperature is involved.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data import Scaling, TimeCourse
from .srot import squared_cost
from .srot_batched import solve_srot_batched
from .w1 import EMD_MAX_ITER

log = logging.getLogger(__name__)

TAUS = tuple(float(t) for t in np.logspace(-1.5, 2, 8))  # 0.03 ... 100 on the normalised cost
EPSS = (0.003, 0.01, 0.03)
MAX_CELLS = 200  # cells per snapshot used by the score (random subsample beyond)
N_PAIRS = 300  # interpolated pairs drawn from each plan (common random numbers across settings)
# A score needs a good plan, not a fully converged one: a looser row check and fewer
# evaluations than the fit's SROT, and a setting whose plan fails them is scored as unusable
# rather than retried at length. The gradient rule is the fit's (1e-5): it is absolute, the
# row check relative, and at 1e-4 a plan whose smallest row sums are ~1e-3 (small tau) could
# stop and fail the check, so a setting flipped between usable and not with its warm start's
# last digits (dyngen's eps 0.01, tau 0.03 on fold 2).
SOLVE = dict(gtol=1e-5, row_tol=1e-2, max_evals=500)
N_BOOT = 2000


@dataclass
class TuneResult:
    """The score table and what it implies.

    rows : one dict per setting: eps, tau, score (sum over held-out snapshots), se (bootstrap
        sd of its difference to the lowest score), w1,
        mass_error and mass (predicted mass; lists, one per held-out snapshot), weight
        (bootstrap probability of being best), ok (False if SROT failed there; never wins).
    folds : the held-out (interior) snapshot indices.
    observed_mass : the observed relative mass of each held-out snapshot.
    best : {"eps", "tau", "normalize_cost"} of the setting used (:func:`one_standard_error`).
    fallback : True when there were too few snapshots to score (generic settings used).
    """

    rows: list[dict[str, Any]]
    folds: list[int]
    best: dict[str, Any]
    seconds: float = 0.0
    fallback: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    observed_mass: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "folds": self.folds,
            "best": self.best,
            "seconds": self.seconds,
            "fallback": self.fallback,
            "options": self.options,
            "observed_mass": self.observed_mass,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TuneResult:
        return cls(
            d["rows"],
            d["folds"],
            d["best"],
            d["seconds"],
            d["fallback"],
            d.get("options", {}),
            d.get("observed_mass", []),
        )

    def mixture(self, mass: float = 0.99, max_settings: int = 10) -> list[dict[str, Any]]:
        """The fewest highest-weight settings holding ``mass`` of the weight (renormalised):
        [{"eps", "tau", "normalize_cost", "weight"}, ...], best first."""
        ranked = sorted(
            (r for r in self.rows if r["ok"] and r["weight"] > 0), key=lambda r: -r["weight"]
        )
        out, total = [], 0.0
        for r in ranked[:max_settings]:
            out.append({"eps": r["eps"], "tau": r["tau"], "weight": r["weight"]})
            total += r["weight"]
            if total >= mass:
                break
        if not out:
            return [{**self.best, "weight": 1.0}]
        for r in out:
            r["weight"] /= total
            r["normalize_cost"] = self.best["normalize_cost"]
        return out

    def mass_discrepancy(self, mixture: list[dict[str, Any]] | None = None) -> dict | None:
        """How far held-out snapshots' masses sit from what their neighbours predict: the
        noise of an observed log total mass about the model's (DESIGN 3.1, item 5).

        r_k = sum_s w_s log(predicted mass_s,k) - log(observed M_k) over the held-out
        snapshots k, with the mixture's weights w_s (default ``self.mixture()``); under
        r_k ~ N(0, sigma^2) and a Jeffreys prior on sigma, a new residual is sd * t_n with
        sd^2 = mean r_k^2 and n = number of held-out snapshots. Returns {"sd", "dof",
        "residuals", "folds"}, or None when nothing was held out (or masses were not kept).
        """
        if self.fallback or not self.folds or not self.observed_mass:
            return None
        mixture = self.mixture() if mixture is None else mixture
        rows = {(r["eps"], r["tau"]): r for r in self.rows if r["ok"] and "mass" in r}
        parts = [(m["weight"], rows.get((m["eps"], m["tau"]))) for m in mixture]
        if not parts or any(r is None for _, r in parts):
            return None
        total = sum(w for w, _ in parts)
        log_pred = sum(w * np.log(np.asarray(r["mass"])) for w, r in parts) / total
        resid = log_pred - np.log(np.asarray(self.observed_mass))
        return {
            "sd": float(np.sqrt(np.mean(resid**2))),
            "dof": len(resid),
            "residuals": resid.tolist(),
            "folds": list(self.folds),
        }

    def table(self) -> str:
        """The score table as Markdown, lowest score first."""
        head = "| eps | tau | score | se | " + " | ".join(f"W1 k={k}" for k in self.folds)
        head += " | " + " | ".join(f"mass err k={k}" for k in self.folds) + " | weight |"
        lines = [head, "|" + "---|" * (5 + 2 * len(self.folds))]
        for r in sorted(self.rows, key=lambda r: r["score"]):
            cells = [f"{r['eps']:g}", f"{r['tau']:g}", f"{r['score']:.4f}"]
            cells.append(f"{r['se']:.4f}" if "se" in r else "-")  # runs before se was kept
            cells += [f"{v:.4f}" for v in r["w1"]] + [f"{v:.4f}" for v in r["mass_error"]]
            cells.append(f"{r['weight']:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def largest_remainder(weights, n: int) -> list[int]:
    """n items over len(weights) slots in proportion to the weights, rounding by largest
    remainders (ties to the earlier slot); the counts sum to n."""
    w = np.asarray(weights, dtype=np.float64)
    quota = n * w / w.sum()
    counts = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def allocate_members(mixture: list[dict[str, Any]], n_members: int) -> list[tuple[float, float]]:
    """(eps, tau) of each of ``n_members`` ensemble members, in proportion to the mixture's
    weights (largest remainders; best setting first), so the members carry the uncertainty
    about the setting as well as the bootstrap's."""
    counts = largest_remainder([m["weight"] for m in mixture], n_members)
    return [(m["eps"], m["tau"]) for m, n in zip(mixture, counts, strict=True) for _ in range(n)]


def one_standard_error(grid, score, se) -> int:
    """Index of the setting used: of those whose score lies within one standard error of the
    lowest (``se``: the bootstrap sd of each score's difference to the lowest), the largest
    tau, then the lowest score. A larger tau is the simpler model (growth closer to uniform), so
    the data must show, beyond their own sampling noise, that a smaller one predicts the held-out
    snapshots better (the one-standard-error rule of cross-validation; Hastie, Tibshirani and
    Friedman 2009, 7.10)."""
    score = np.asarray(score, dtype=np.float64)
    low = int(np.argmin(score))
    near = np.flatnonzero(np.isfinite(score) & (score - score[low] <= np.nan_to_num(se)))
    return int(max(near, key=lambda g: (grid[g][1], -score[g])))


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[np.sort(rng.choice(len(x), n, replace=False))]


def _fold_inputs(data: TimeCourse, xs: list[np.ndarray], k: int, max_cells: int, seed: int):
    rng = np.random.default_rng([seed, k])
    x, y, z = (_subsample(xs[i], max_cells, rng) for i in (k - 1, k + 1, k))
    t0, tk, t1 = (float(data.times[i]) for i in (k - 1, k, k + 1))
    m0, mk, m1 = (float(data.masses[i]) for i in (k - 1, k, k + 1))
    return x, y, z, (tk - t0) / (t1 - t0), m1 / m0 * len(x) / len(y), m0, mk


def _score_plan(plan, x, y, z, s, m0, mk, uniforms):
    """W1 of the interpolated cloud at s against z, its per-cell costs (m,), the mass error."""
    rows = plan.sum(1)
    flat = torch.searchsorted(plan.reshape(-1).cumsum(0), uniforms[0] * plan.sum())
    flat = flat.clamp_max(plan.numel() - 1).numpy()
    i, j = flat // plan.shape[1], flat % plan.shape[1]
    r = rows.numpy()
    pts = (1 - s) * x[i] + s * y[j]
    w = r[i] ** (s - 1.0)  # pair mass at t_k per unit of its mass at the end
    w = w / w.sum()
    import ot  # POT on first use (see w1.w1_exact)

    cost = ot.dist(pts, z, metric="euclidean")
    g = ot.emd(w, np.full(len(z), 1.0 / len(z)), cost, numItermax=EMD_MAX_ITER)
    per_cell = len(z) * (g * cost).sum(0)  # mean over cells = W1
    mass = m0 * float(np.mean(r**s))
    return float(per_cell.mean()), per_cell, abs(mass - mk) / mk, mass


def tune_srot(
    data: TimeCourse,
    taus: tuple[float, ...] = TAUS,
    epss: tuple[float, ...] = EPSS,
    *,
    max_cells: int = MAX_CELLS,
    n_pairs: int = N_PAIRS,
    n_boot: int = N_BOOT,
    seed: int = 0,
    generic: dict[str, Any] | None = None,
    raw_cost_scale: float | None = None,
) -> TuneResult:
    """Score every (eps, tau) of the grid on the held-out interior snapshots (module docstring).

    Parameters
    ----------
    data : the training snapshots (user units; standardised here for the score).
    taus, epss : the grid, on the max-normalised squared cost (``normalize_cost`` = True).
    max_cells : cells per snapshot used (subsampled beyond, seeded).
    n_pairs : interpolated pairs per plan; the same uniforms serve every setting.
    n_boot : Bayesian-bootstrap draws for the weights.
    generic : settings returned, with a warning, when fewer than 3 snapshots exist.
    raw_cost_scale : None: the grid is on the max-normalised cost. A number s: the grid is on
        the raw squared cost of the coordinates divided by s (a fixed setting with
        ``normalize_cost`` False, in the fit's internal units: s = ``Scaling.scale``). Each
        fold then solves the raw problem, as the normalised one at (eps, tau) / max cost of
        its pair (the same plan).
    """
    start = time.perf_counter()
    options = dict(max_cells=max_cells, n_pairs=n_pairs, n_boot=n_boot, seed=seed)
    if raw_cost_scale is not None:
        options["raw_cost_scale"] = float(raw_cost_scale)
    options.update(taus=list(taus), epss=list(epss))
    folds = list(range(1, data.n_times - 1))
    if not folds:
        best = dict(generic or {"eps": 0.01, "tau": 5.0, "normalize_cost": True})
        log.warning(
            "SROT tuning needs at least 3 snapshots (one held out between two others); "
            "%d given, so the generic settings eps=%g, tau=%g are used",
            data.n_times,
            best["eps"],
            best["tau"],
        )
        return TuneResult([], [], best, time.perf_counter() - start, True, options)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small dense problems: threads only add overhead (and contention)
    try:
        return _tune(data, taus, epss, folds, generic, start, options)
    finally:
        torch.set_num_threads(threads)


def _tune(data, taus, epss, folds, generic, start, options):
    max_cells, n_pairs, n_boot, seed = (
        options[k] for k in ("max_cells", "n_pairs", "n_boot", "seed")
    )
    scaling = Scaling.fit(data)
    xs = list(scaling.apply(data).x)  # W1 in standardised units
    gen = torch.Generator().manual_seed(seed)
    grid = [(e, t) for e in epss for t in taus]
    w1 = np.full((len(grid), len(folds)), np.inf)
    merr = np.full((len(grid), len(folds)), np.inf)
    mass = np.full((len(grid), len(folds)), np.nan)  # predicted mass at each held-out time
    per_cell: dict[tuple[int, int], np.ndarray] = {}
    inputs = [_fold_inputs(data, xs, k, max_cells, seed) for k in folds]
    raw = options.get("raw_cost_scale")
    # per fold, what the grid's eps and tau are multiplied by on its max-normalised cost
    per_fold = [
        1.0 if raw is None else 1.0 / _max_cost(x, y, (scaling.scale / raw) ** 2)
        for x, y, *_ in inputs
    ]
    uniforms = [torch.rand(1, n_pairs, dtype=torch.float64, generator=gen) for _ in folds]
    potentials: list[dict[tuple[float, float], torch.Tensor]] = [{} for _ in folds]
    # Warm starts: the largest eps walks tau downwards (each solve from the next larger tau);
    # every smaller eps starts from the next larger eps at its tau. So after the first chain,
    # all taus of one eps (and every fold) are one batch of independent solves (srot_batched).
    eps_desc, tau_desc = sorted(epss, reverse=True), sorted(taus, reverse=True)
    stages = [[(eps_desc[0], t)] for t in tau_desc] + [
        [(e, t) for t in tau_desc] for e in eps_desc[1:]
    ]
    for stage in stages:
        for (e, t, f), res in _solve_batch(inputs, stage, potentials, folds, per_fold).items():
            x, y, z, s, _, m0, mk = inputs[f]
            g = grid.index((e, t))
            w1[g, f], per_cell[g, f], merr[g, f], mass[g, f] = _score_plan(
                res.plan, x, y, z, s, m0, mk, uniforms[f]
            )
    ok = np.isfinite(w1).all(1) & np.isfinite(merr).all(1)
    score = np.where(ok, w1.sum(1) + merr.sum(1), np.inf)
    weights = np.zeros(len(grid))
    se = np.full(len(grid), np.nan)
    if ok.any():
        boot = _bootstrap_scores(data, folds, per_cell, mass, ok, n_boot, seed)
        weights = np.bincount(boot.argmin(1), minlength=len(grid)) / n_boot
        low = int(np.argmin(score))
        se[ok] = (boot[:, ok] - boot[:, [low]]).std(0)
    rows = [
        {
            "eps": e,
            "tau": t,
            "score": float(score[g]),
            "se": float(se[g]),
            "w1": w1[g].tolist(),
            "mass_error": merr[g].tolist(),
            "mass": mass[g].tolist(),
            "weight": float(weights[g]),
            "ok": bool(ok[g]),
        }
        for g, (e, t) in enumerate(grid)
    ]
    if not ok.any():
        best = dict(generic or {"eps": 0.01, "tau": 5.0, "normalize_cost": True})
        log.warning("SROT tuning: no setting of the grid gave a plan; generic settings used")
        return TuneResult(rows, folds, best, time.perf_counter() - start, True, options)
    g = one_standard_error(grid, score, se)
    best = {"eps": grid[g][0], "tau": grid[g][1], "normalize_cost": raw is None}
    log.info(
        "SROT tuning: eps=%g tau=%g (score %.4f; lowest %.4f)",
        best["eps"],
        best["tau"],
        score[g],
        score.min(),
    )
    observed = [float(data.masses[k]) for k in folds]
    return TuneResult(rows, folds, best, time.perf_counter() - start, False, options, observed)


def _warm_init(potentials, eps, tau):
    """The start of SROT at (eps, tau) from the nearest solved setting of one fold: the next
    larger eps at this tau, else this eps at the next larger tau (f rescaled by the tau ratio:
    a_i exp(-f_i/tau) = r_i at the optimum); None (a cold start) when neither is solved."""
    larger_eps = [e for (e, t) in potentials if t == tau and e > eps]
    larger_tau = [t for (e, t) in potentials if e == eps and t > tau]
    if larger_eps:
        return potentials[min(larger_eps), tau]
    if larger_tau:
        t0 = min(larger_tau)
        return potentials[eps, t0] * (tau / t0)
    return None


def _max_cost(x: np.ndarray, y: np.ndarray, unit: float) -> float:
    """The normaliser ``normalize_cost`` divides this pair's cost by, times ``unit``."""
    return float(squared_cost(torch.tensor(x), torch.tensor(y)).max()) * unit


def _solve_batch(inputs, settings, potentials, folds, per_fold) -> dict:
    """SROT at every (eps, tau) of ``settings`` for every fold, as batches of one shape;
    {(eps, tau, fold): result} for the plans that pass the checks (a failure marks the setting
    unusable on that fold, no retry). Each solved potential is stored in its fold's
    ``potentials`` for the next settings. ``per_fold``: each fold's factor on eps and tau (its
    normalised cost's units; 1 for a grid on the normalised cost)."""
    groups: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
    for f, (x, y, *_) in enumerate(inputs):
        groups.setdefault((len(x), len(y)), []).extend((e, t, f) for e, t in settings)
    out = {}
    for (_, m), jobs in groups.items():
        ratios = torch.tensor([inputs[f][4] for *_, f in jobs], dtype=torch.float64)
        results = solve_srot_batched(
            torch.stack([torch.tensor(inputs[f][0]) for *_, f in jobs]),  # copies: read-only
            torch.stack([torch.tensor(inputs[f][1]) for *_, f in jobs]),
            [e * per_fold[f] for e, _, f in jobs],
            [t * per_fold[f] for _, t, f in jobs],
            normalize_cost=True,
            b=ratios[:, None].expand(-1, m).contiguous(),  # every target cell: the mass ratio
            f_init=[_warm_init(potentials[f], e, t) for e, t, f in jobs],
            labels=[
                f"tuning: no plan at eps={e:g} tau={t:g} (fold {folds[f]})" for e, t, f in jobs
            ],
            safe_mode=False,
            **SOLVE,
        )
        for (e, t, f), res in zip(jobs, results, strict=True):
            if res is not None:
                potentials[f][e, t] = res.f
                out[e, t, f] = res
    return out


def _bootstrap_scores(data, folds, per_cell, mass, ok, n_boot, seed) -> np.ndarray:
    """Scores under a Bayesian bootstrap of the held-out cells and the observed masses'
    counting noise, shape (n_boot, S); inf where a setting is unusable (at least one usable)."""
    rng = np.random.default_rng([seed, 7])
    valid = np.flatnonzero(ok)
    total = np.zeros((n_boot, len(ok)))
    for f, k in enumerate(folds):
        costs = np.stack([per_cell[g, f] for g in valid])  # (S_ok, m)
        total[:, valid] += rng.dirichlet(np.ones(costs.shape[1]), size=n_boot) @ costs.T
        sd = math.sqrt(1 / data.counts[k] + 1 / data.counts[k - 1])
        observed = float(data.masses[k]) * np.exp(sd * rng.standard_normal(n_boot))[:, None]
        total[:, valid] += np.abs(mass[valid, f][None] - observed) / observed
    total[:, ~ok] = np.inf
    return total
