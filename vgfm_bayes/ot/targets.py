"""Per-interval SROT plans, VGFM regression targets and pair sampling (DESIGN 2.1-2.2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data import TimeCourse
from .interval import IntervalTargets
from .minibatch import MiniBatchPlan, choose_srot_batch, minibatch_srot
from .srot import solve_srot_safe


@dataclass(frozen=True)
class IntervalPlan(IntervalTargets):
    """The SROT plan of one interval [t0, t1] and the targets it implies.

    Attributes
    ----------
    t0, t1 : interval ends in the user's time units.
    x0 : Tensor, shape (n, D) -- source cells at t0.
    x1 : Tensor, shape (m, D) -- target cells at t1.
    row_sums : Tensor, shape (n,) -- mass each source cell becomes (float64).
    cdf : Tensor, shape (n * m,) -- cumulative sum of the flattened plan (float64), so a pair
        (i, j) ~ pi_ij / sum(pi) is one binary search; same law as i ~ r_i, then j | i. (The
        plan itself is not kept: cdf.diff() gives it back.)
    potential : Tensor, shape (n,) -- SROT's source dual potential (float64), a warm start for
        nearby problems (bootstrap resamples, other tau).
    """

    t0: float
    t1: float
    x0: torch.Tensor
    x1: torch.Tensor
    row_sums: torch.Tensor
    cdf: torch.Tensor
    potential: torch.Tensor | None = None

    def sample_indices(
        self, size: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` pairs (i, j) ~ pi_ij / sum(pi), with replacement; each Tensor (size,), long."""
        m = self.x1.shape[0]
        draw = torch.rand(size, dtype=self.cdf.dtype, device=self.cdf.device, generator=generator)
        flat = torch.searchsorted(self.cdf, draw * self.cdf[-1]).clamp_max(self.cdf.numel() - 1)
        return flat // m, flat % m


@dataclass(frozen=True)
class PairBatch:
    """A regression batch; leading dims (...) are member / draw dims when present.

    x : Tensor, shape (..., B, D) -- interpolated positions x_s
    t : Tensor, shape (..., B) -- times t0 + s * dt (user units)
    u : Tensor, shape (..., B, D) -- velocity targets (y_j - x_i) / dt
    gamma : Tensor, shape (..., B) -- growth targets log(r_i) / dt
    """

    x: torch.Tensor
    t: torch.Tensor
    u: torch.Tensor
    gamma: torch.Tensor

    @property
    def size(self) -> int:
        return self.x.shape[-2]


def interval_plans(
    data: TimeCourse,
    eps: float,
    tau: float,
    normalize_cost: bool = False,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    cells: list[np.ndarray] | None = None,
    fallbacks: list[dict] | None = None,
    srot_batch: int | None = None,
    srot_repeats: int = 1,
    memory_mb: float = 2048.0,
    generator: torch.Generator | None = None,
    f_init: Sequence[torch.Tensor | None] | None = None,
) -> list[IntervalPlan | MiniBatchPlan]:
    """Solve SROT for every consecutive pair of snapshots, once, on ``device``.

    Source masses are 1 per cell and target masses b_j = (M_{k+1} / M_k) * n_k / n_{k+1}, so
    sum(pi) = n_k * M_{k+1} / M_k: with masses from cell counts b = 1, as in DESIGN 2.1.

    Parameters
    ----------
    cells : optional per-time index arrays selecting cells (e.g. a bootstrap resample).
    fallbacks : optional list that receives a record per interval whose plan needed the safe
        mode (see :func:`solve_srot_safe`); each retry is also logged as a warning.
    srot_batch, srot_repeats, memory_mb : mini-batch SROT (ot/minibatch.py) when an interval's
        dense plan would exceed ``memory_mb`` (srot_batch None, auto) or when srot_batch is
        smaller than the interval's source cells; such intervals get a MiniBatchPlan (same
        sampling interface, no dense ``plan`` / ``cdf``).
    generator : for the mini-batch partitions; default the global RNG.
    f_init : optional per-interval source potentials to warm-start SROT from (None entries:
        cold start); see :func:`solve_srot`.
    """
    xs = [data.x[k] if cells is None else data.x[k][cells[k]] for k in range(data.n_times)]
    plans = []
    for k in range(data.n_times - 1):
        x0 = torch.tensor(xs[k], dtype=torch.float64, device=device)
        x1 = torch.tensor(xs[k + 1], dtype=torch.float64, device=device)
        batch = choose_srot_batch(len(xs[k]), len(xs[k + 1]), srot_batch, memory_mb)
        if batch is not None:
            plans.append(
                minibatch_srot(
                    x0,
                    x1,
                    eps,
                    tau,
                    float(data.masses[k + 1] / data.masses[k]),
                    batch,
                    normalize_cost=normalize_cost,
                    repeats=srot_repeats,
                    generator=generator,
                    t0=float(data.times[k]),
                    t1=float(data.times[k + 1]),
                    dtype=dtype,
                )
            )
            continue
        ratio = data.masses[k + 1] / data.masses[k] * len(xs[k]) / len(xs[k + 1])
        b = torch.full((len(xs[k + 1]),), ratio, dtype=torch.float64, device=device)
        label = f"SROT interval {k} (t={data.times[k]:g} -> {data.times[k + 1]:g})"
        warm = None if f_init is None else f_init[k]
        res, fallback = solve_srot_safe(
            x0, x1, eps, tau, label=label, normalize_cost=normalize_cost, b=b, f_init=warm
        )
        if fallback is not None and fallbacks is not None:
            fallbacks.append({"interval": k, **fallback})
        plans.append(
            IntervalPlan(
                t0=float(data.times[k]),
                t1=float(data.times[k + 1]),
                x0=x0.to(dtype),
                x1=x1.to(dtype),
                row_sums=res.row_sums,
                cdf=res.plan.reshape(-1).cumsum(0),
                potential=res.f,
            )
        )
    return plans


def interpolant(xi, yj, s, noise, t0: float, dt: float):
    """The VGFM regression point of pairs (x_i at t0, y_j at t0 + dt) at fraction s of the way:
    x_s = (1 - s) x_i + s y_j + noise (forward: from source to target; the authors' code had
    it reversed), its time t0 + s dt and the velocity target (y_j - x_i) / dt.

    xi, yj : Tensor, shape (..., B, D); s : Tensor, shape (..., B, 1); noise : like xi.
    Returns (x, t, u) with t of shape (..., B). The one place the formula is written: the
    dense, the mini-batch and the members' samplers all call it.
    """
    return (1 - s) * xi + s * yj + noise, t0 + s.squeeze(-1) * dt, (yj - xi) / dt


def sample_pairs(
    plans: list[IntervalPlan | MiniBatchPlan],
    batch_size: int,
    sigma: float,
    generator: torch.Generator | None = None,
) -> PairBatch:
    """Sample ``batch_size`` pairs per interval from the plans, with replacement (DESIGN 2.2).

    i ~ r_i / sum(r), then j | i ~ pi_ij / r_i; s ~ U(0, 1) and the forward interpolant
    x_s = (1 - s) x_i + s y_j + sigma * N(0, I) at time t0 + s * dt.

    Returns
    -------
    PairBatch with B = batch_size * len(plans) pairs, intervals concatenated in order.
    """
    xs, ts, us, gs = [], [], [], []
    for p in plans:
        dev = p.x0.device
        i, j = p.sample_indices(batch_size, generator)
        s = torch.rand(batch_size, 1, device=dev, dtype=p.x0.dtype, generator=generator)
        xi, yj = p.x0[i], p.x1[j]
        noise = torch.randn(xi.shape, device=dev, dtype=xi.dtype, generator=generator)
        x, t, u = interpolant(xi, yj, s, sigma * noise, p.t0, p.dt)
        xs.append(x)
        ts.append(t)
        us.append(u)
        gs.append(p.growth_targets[i])
    return PairBatch(torch.cat(xs), torch.cat(ts), torch.cat(us), torch.cat(gs))


def member_seed(seed: int, member: int) -> int:
    """Seed of ensemble member ``member``'s random streams (bootstrap, init, pairs): a function
    of (seed, member) only, so a member is the same whether it is trained with all others, in a
    slice of them, or on another process."""
    return int(np.random.SeedSequence([seed, member]).generate_state(1)[0])


def bootstrap_cells(counts: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    """One bootstrap resample per time point: n_k cell indices drawn with replacement."""
    return [np.sort(rng.integers(0, int(n), int(n))) for n in counts]


def member_taus(tau: float, members: int, tau_spread: float) -> np.ndarray:
    """Members' tau spread evenly in log over [tau * exp(-s), tau * exp(s)]."""
    if members < 2 or tau_spread == 0:
        return np.full(members, float(tau))
    return tau * np.exp(np.linspace(-tau_spread, tau_spread, members))


def member_plans(
    data: TimeCourse,
    eps: float,
    tau: float,
    normalize_cost: bool,
    members: int,
    *,
    seed: int = 0,
    bootstrap: bool = True,
    tau_spread: float = 0.0,
    member_ids: Sequence[int] | None = None,
    settings: Sequence[tuple[float, float]] | None = None,
    full: list[IntervalPlan | MiniBatchPlan] | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    fallbacks: list[dict] | None = None,
    **srot_options,
) -> list[list[IntervalPlan | MiniBatchPlan]]:
    """Per-member SROT plans for an ensemble: each member its own bootstrap of cells.

    The full data's plans are solved first; every member's solve starts from their potentials
    (restricted to its resample, rescaled to its tau), which skips SROT's eps annealing.

    Parameters
    ----------
    members : K, the ensemble's size (sets the members' taus).
    seed : with the member's index, seeds its bootstrap resample (see :func:`member_seed`).
    bootstrap : resample the cells of every snapshot with replacement per member; False gives
        every member the full data (then members differ only by initialisation and tau).
    tau_spread : members' tau spread log-evenly over [tau * exp(-s), tau * exp(s)] (0: all use
        tau), so the ensemble also carries the uncertainty from the choice of tau.
    member_ids : which members to solve (default all K), e.g. one process's share.
    settings : (eps, tau) of each of the K members (e.g. ``ot.tune.allocate_members``: spread
        over the settings the held-out-snapshot score supports); overrides eps / tau_spread.
    full : the full data's plans at (eps, tau), if already solved (they warm-start the members).
    fallbacks : receives a record per plan that needed SROT's safe mode.
    srot_options : mini-batch SROT settings, passed to ``interval_plans``.

    Returns
    -------
    list of lists of IntervalPlan (or MiniBatchPlan), one list per member in ``member_ids``,
    one plan per interval.
    """
    ids = list(range(members)) if member_ids is None else [int(m) for m in member_ids]
    if any(not 0 <= m < members for m in ids):
        raise ValueError(f"member ids must lie in [0, {members}), got {ids}")
    taus = member_taus(tau, members, tau_spread)
    epss = np.full(members, float(eps))
    if settings is not None:
        if len(settings) != members:
            raise ValueError(f"{members} members need as many settings, got {len(settings)}")
        epss = np.array([float(e) for e, _ in settings])
        taus = np.array([float(t) for _, t in settings])
    common = dict(device=device, dtype=dtype, fallbacks=fallbacks, **srot_options)
    if full is None:
        full = interval_plans(data, eps, tau, normalize_cost, **common)
    out = []
    for m in ids:
        if not bootstrap and taus[m] == tau and epss[m] == eps:
            out.append(full)
            continue
        cells = bootstrap_cells(data.counts, np.random.default_rng(member_seed(seed, m)))
        cells = cells if bootstrap else None
        # at the optimum a_i exp(-f_i / tau) = r_i, so f scales with tau for similar row sums
        warm = []
        for k, p in enumerate(full):
            f = getattr(p, "potential", None)
            if f is not None and cells is not None:
                f = f[torch.as_tensor(cells[k], device=f.device)]
            warm.append(None if f is None else f * (taus[m] / tau))
        out.append(
            interval_plans(
                data,
                float(epss[m]),
                float(taus[m]),
                normalize_cost,
                cells=cells,
                f_init=warm,
                **common,
            )
        )
    return out


@dataclass(frozen=True)
class StackedPlans(IntervalTargets):
    """K members' dense plans of one interval, stacked so one call samples for all members.

    Bootstrap resamples keep every snapshot's size, so the members' plans share one shape.
    x0 (K, n, D), x1 (K, m, D), row_sums (K, n), cdf (K, n * m) as in IntervalPlan.
    """

    t0: float
    t1: float
    x0: torch.Tensor
    x1: torch.Tensor
    row_sums: torch.Tensor
    cdf: torch.Tensor

    @classmethod
    def stack(cls, plans: Sequence[IntervalPlan]) -> StackedPlans:
        p0 = plans[0]
        return cls(
            p0.t0,
            p0.t1,
            torch.stack([p.x0 for p in plans]),
            torch.stack([p.x1 for p in plans]),
            torch.stack([p.row_sums for p in plans]),
            torch.stack([p.cdf for p in plans]),
        )


def stack_member_plans(
    plans: list[list[IntervalPlan | MiniBatchPlan]],
) -> list[StackedPlans] | list[list[IntervalPlan | MiniBatchPlan]]:
    """Stack members' plans per interval when all are dense (else return them unchanged)."""
    if all(isinstance(p, IntervalPlan) for member in plans for p in member):
        return [StackedPlans.stack(list(ps)) for ps in zip(*plans, strict=True)]
    return plans


def sample_member_pairs(
    plans: list[StackedPlans] | list[list[IntervalPlan | MiniBatchPlan]],
    batch_size: int,
    sigma: float,
    generators: Sequence[torch.Generator | None],
) -> PairBatch:
    """Pairs for K members at once, member k drawing only from ``generators[k]``.

    Each member's draws depend on its own generator alone, so a member's batches are the same
    whether it is trained with all others or in a slice of them (another process). With
    :class:`StackedPlans` the sampling is vectorised over members; per-member plan lists (some
    interval mini-batch SROT) are sampled member by member with ``sample_pairs``.

    Returns
    -------
    PairBatch with a leading member dim: x (K, B, D), t (K, B), u (K, B, D), gamma (K, B),
    B = batch_size * n_intervals.
    """
    stacked = isinstance(plans[0], StackedPlans)
    members = plans[0].x0.shape[0] if stacked else len(plans)
    if len(generators) != members:
        raise ValueError(f"{members} members need as many generators, got {len(generators)}")
    if not stacked:
        batches = [
            sample_pairs(p, batch_size, sigma, g) for p, g in zip(plans, generators, strict=True)
        ]
        return PairBatch(
            *(torch.stack([getattr(b, f) for b in batches]) for f in ("x", "t", "u", "gamma"))
        )
    n_int, dim = len(plans), plans[0].x0.shape[-1]
    p0 = plans[0]
    dev, dtype = p0.x0.device, p0.x0.dtype
    # two calls per member and step: uniforms (pair index, s) and the interpolant noise
    uni = torch.stack(
        [
            torch.rand(n_int, 2, batch_size, device=dev, dtype=torch.float64, generator=g)
            for g in generators
        ]
    )
    noise = torch.stack(
        [
            torch.randn(n_int, batch_size, dim, device=dev, dtype=dtype, generator=g)
            for g in generators
        ]
    )
    xs, ts, us, gs = [], [], [], []
    for k, p in enumerate(plans):
        m = p.x1.shape[-2]
        gamma = p.growth_targets  # (K, n), from the IntervalTargets mixin
        cdf = p.cdf
        flat = torch.searchsorted(cdf, uni[:, k, 0] * cdf[:, -1:]).clamp_max(cdf.shape[-1] - 1)
        i, j = flat // m, flat % m
        s = uni[:, k, 1].to(dtype).unsqueeze(-1)
        xi = torch.take_along_dim(p.x0, i.unsqueeze(-1), dim=1)
        yj = torch.take_along_dim(p.x1, j.unsqueeze(-1), dim=1)
        x, t, u = interpolant(xi, yj, s, sigma * noise[:, k], p.t0, p.dt)
        xs.append(x)
        ts.append(t)
        us.append(u)
        gs.append(torch.take_along_dim(gamma, i, dim=1))
    return PairBatch(torch.cat(xs, 1), torch.cat(ts, 1), torch.cat(us, 1), torch.cat(gs, 1))
