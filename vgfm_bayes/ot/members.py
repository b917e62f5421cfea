"""Ensemble members' data: seeds, bootstrap resamples of the cells, per-member SROT plans and
vectorised pair sampling, and :class:`Members`, the one description of which plans and pair
streams a fit draws its regression batches from.

This is data preparation (stage 2), kept out of the model's heads: a head says which weights are
random and how they are fitted (model/heads.py); what its regression batches are drawn from is
decided here, from the head's member count and the config's ``bootstrap`` / ``tau_spread``:

- one network (``n_members == 1``): the training data's plans (:func:`interval_plans`), one pair
  generator seeded by the fit's seed, :func:`sample_pairs`;
- K members: member k's plans on its own bootstrap of the cells (and its own SROT setting when
  an auto fit's mixture or ``tau_spread`` spreads them), its own pair generator seeded by
  :func:`member_seed` (seed, k), all sampled at once by :func:`sample_member_pairs`. A member's
  data depend on (seed, k) only, so any slice of the members (one process's share) reproduces
  them bitwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data import TimeCourse
from .interval import IntervalTargets
from .minibatch import MiniBatchPlan
from .targets import (
    IntervalPlan,
    PairBatch,
    interpolant,
    interval_plans,
    member_interval_plans,
    sample_pairs,
)
from .tune import allocate_members


def member_seed(seed: int, member: int) -> int:
    """Seed of ensemble member ``member``'s random streams (bootstrap, init, pairs): a function
    of (seed, member) only, so a member is the same whether it is trained with all others, in a
    slice of them, or on another process."""
    return int(np.random.SeedSequence([seed, member]).generate_state(1)[0])


def bootstrap_cells(counts: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    """One bootstrap resample per time point: n_k cell indices drawn with replacement."""
    return [np.sort(rng.integers(0, int(n), int(n))) for n in counts]


def member_taus(tau: float, n_members: int, tau_spread: float) -> np.ndarray:
    """Members' tau spread evenly in log over [tau * exp(-s), tau * exp(s)]."""
    if n_members < 2 or tau_spread == 0:
        return np.full(n_members, float(tau))
    return tau * np.exp(np.linspace(-tau_spread, tau_spread, n_members))


def member_plans(
    data: TimeCourse,
    eps: float,
    tau: float,
    normalize_cost: bool,
    n_members: int,
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
    n_members : K, the ensemble's size (sets the members' taus).
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
    ids = list(range(n_members)) if member_ids is None else [int(m) for m in member_ids]
    if any(not 0 <= m < n_members for m in ids):
        raise ValueError(f"member ids must lie in [0, {n_members}), got {ids}")
    taus = member_taus(tau, n_members, tau_spread)
    epss = np.full(n_members, float(eps))
    if settings is not None:
        if len(settings) != n_members:
            raise ValueError(f"{n_members} members need as many settings, got {len(settings)}")
        epss = np.array([float(e) for e, _ in settings])
        taus = np.array([float(t) for _, t in settings])
    common = dict(device=device, dtype=dtype, fallbacks=fallbacks, **srot_options)
    if full is None:
        full = interval_plans(data, eps, tau, normalize_cost, **common)
    # members at the full data's setting without a resample have its plans; the others are
    # solved together, interval by interval (member_interval_plans)
    solve = [m for m in ids if bootstrap or taus[m] != tau or epss[m] != eps]
    cells = [
        bootstrap_cells(data.counts, np.random.default_rng(member_seed(seed, m)))
        if bootstrap
        else None
        for m in solve
    ]
    warm = [_warm_starts(full, c, taus[m] / tau) for m, c in zip(solve, cells, strict=True)]
    settings = [(float(epss[m]), float(taus[m])) for m in solve]
    solved = member_interval_plans(
        data, settings, normalize_cost, cells=cells, f_init=warm, **common
    )
    by_member = dict(zip(solve, solved, strict=True))
    return [by_member.get(m, full) for m in ids]


def _warm_starts(full, cells, scale: float) -> list[torch.Tensor | None]:
    """The full data's source potentials restricted to a resample and rescaled to its tau: at
    the optimum a_i exp(-f_i / tau) = r_i, so f scales with tau for similar row sums."""
    warm = []
    for k, p in enumerate(full):
        f = getattr(p, "potential", None)
        if f is not None and cells is not None:
            f = f[torch.as_tensor(cells[k], device=f.device)]
        warm.append(None if f is None else f * scale)
    return warm


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
    n_members = plans[0].x0.shape[0] if stacked else len(plans)
    if len(generators) != n_members:
        raise ValueError(f"{n_members} members need as many generators, got {len(generators)}")
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


@dataclass(frozen=True)
class Members:
    """Which plans and pair streams a fit's regression batches come from (see the module doc).

    Attributes
    ----------
    n_members : K networks trained as one vectorised batch (1: a single network on the data).
    bootstrap : members: each its own resample of every snapshot (False: the full data).
    tau_spread : members: tau log-evenly over [tau * exp(-s), tau * exp(s)] (0: all at tau).
    """

    n_members: int = 1
    bootstrap: bool = True
    tau_spread: float = 0.0

    @property
    def is_ensemble(self) -> bool:
        return self.n_members > 1

    def ids(self, rank: int = 0, world: int = 1) -> list[int]:
        """The members one of ``world`` processes trains: contiguous, sizes differing by <= 1."""
        lo, hi = rank * self.n_members // world, (rank + 1) * self.n_members // world
        return list(range(lo, hi))

    def plans(
        self,
        data: TimeCourse,
        settings: Mapping[str, Any],
        *,
        seed: int,
        device: torch.device | str = "cpu",
        fallbacks: list[dict] | None = None,
        srot_options: Mapping[str, Any] | None = None,
        member_ids: Sequence[int] | None = None,
    ) -> list:
        """SROT plans on the training data, solved once per fit.

        settings : the fit's resolved settings (eps, tau, normalize_cost; members are spread
            over ``srot_mixture`` when an auto fit chose one).
        fallbacks : receives a record per plan whose solve needed SROT's safe mode.
        srot_options : mini-batch SROT settings for ``interval_plans`` (srot_batch,
            srot_repeats, memory_mb, generator).
        member_ids : members: the ones to solve for (default all).

        Returns one network's plans (one per interval), or the members' plans stacked per
        interval (:func:`stack_member_plans`).
        """
        eps, tau, normalize = settings["eps"], settings["tau"], settings["normalize_cost"]
        options = dict(srot_options or {})
        if not self.is_ensemble:
            return interval_plans(
                data, eps, tau, normalize, device=device, fallbacks=fallbacks, **options
            )
        mixture = settings.get("srot_mixture")  # auto settings: members spread over them
        plans = member_plans(
            data,
            eps,
            tau,
            normalize,
            self.n_members,
            seed=seed,
            bootstrap=self.bootstrap,
            tau_spread=self.tau_spread,
            member_ids=member_ids,
            settings=None if not mixture else allocate_members(mixture, self.n_members),
            device=device,
            fallbacks=fallbacks,
            **options,
        )
        return stack_member_plans(plans)

    def generators(
        self, seed: int, device, member_ids: Sequence[int] | None = None
    ) -> dict[str, torch.Generator]:
        """The named generators the pair sampler draws from (checkpointed with the run)."""
        if not self.is_ensemble:
            return {"pairs": torch.Generator(device=device).manual_seed(seed)}
        ids = self.ids() if member_ids is None else member_ids
        return {
            f"pairs.{m}": torch.Generator(device=device).manual_seed(member_seed(seed, m))
            for m in ids
        }

    def sample(
        self,
        plans: list,
        batch_size: int,
        sigma: float,
        generators: Mapping[str, torch.Generator],
    ) -> PairBatch:
        """One regression batch drawn from ``plans`` with ``generators`` (see above)."""
        if not self.is_ensemble:
            return sample_pairs(plans, batch_size, sigma, generators["pairs"])
        return sample_member_pairs(plans, batch_size, sigma, list(generators.values()))

    def sampler(
        self, plans: list, batch_size: int, sigma: float, generators
    ) -> Callable[[], PairBatch]:
        """A zero-argument batch sampler (what the SVI loop calls each step)."""
        return lambda: self.sample(plans, batch_size, sigma, generators)

    def resample(self, counts: Sequence[int], seed: int, member: int) -> list[np.ndarray] | None:
        """Member ``member``'s cells per snapshot (indices, as its plans were solved on; None:
        every cell in order, i.e. no bootstrap)."""
        if not (self.is_ensemble and self.bootstrap):
            return None
        return bootstrap_cells(counts, np.random.default_rng(member_seed(seed, member)))

    def targets(
        self, plans: list, counts: Sequence[int], seed: int, member_ids: Sequence[int]
    ) -> dict[str, np.ndarray]:
        """Per-cell growth targets of ``plans`` as columns, one row per source cell, interval
        (and member): member (ensembles only), interval, t0, t1, cell (the source cell's row in
        its snapshot of the training data), row_sum (the mass it becomes at t1) and
        growth_target = log(row_sum) / dt (per unit time)."""
        if not self.is_ensemble:
            per_member = [(None, [_plan_rows(p) for p in plans])]
        elif isinstance(plans[0], StackedPlans):  # (K, n) per interval -> one list per member
            per_member = [(m, [_plan_rows(p, i) for p in plans]) for i, m in enumerate(member_ids)]
        else:
            per_member = [
                (m, [_plan_rows(p) for p in ps]) for m, ps in zip(member_ids, plans, strict=True)
            ]
        cols: dict[str, list] = {
            k: [] for k in ("member", "interval", "t0", "t1", "cell", "row_sum", "growth_target")
        }
        for m, member in per_member:
            cells = None if m is None else self.resample(counts, seed, m)
            for k, (row_sums, gamma, t0, t1) in enumerate(member):
                n = len(row_sums)
                cols["member"].append(np.full(n, -1 if m is None else m))
                cols["interval"].append(np.full(n, k))
                cols["t0"].append(np.full(n, t0))
                cols["t1"].append(np.full(n, t1))
                cols["cell"].append(np.arange(n) if cells is None else cells[k])
                cols["row_sum"].append(row_sums)
                cols["growth_target"].append(gamma)
        out = {k: np.concatenate(v) for k, v in cols.items()}
        if not self.is_ensemble:
            del out["member"]
        return out


def _plan_rows(plan, member: int | None = None):
    """(row sums, growth targets, t0, t1) of a plan (of member row ``member`` of a stacked
    plan), as numpy arrays."""
    row_sums, gamma = plan.row_sums, plan.growth_targets
    if member is not None:
        row_sums, gamma = row_sums[member], gamma[member]
    return row_sums.cpu().numpy(), gamma.cpu().numpy(), plan.t0, plan.t1


def component_plans(
    data: TimeCourse,
    settings: Mapping[str, Any],
    n_components: int,
    *,
    seed: int,
    full: list,
    device: torch.device | str = "cpu",
    srot_options: Mapping[str, Any] | None = None,
) -> list[list[IntervalPlan | MiniBatchPlan]]:
    """Plans of a posterior mixture's components (model/heads.py ``mixture_components``): one
    per bootstrap resample of the cells, each resample's SROT at a setting allocated in
    proportion to the held-out-snapshot weights of an auto fit (the fit's own setting
    otherwise), as an ensemble's members are, so the components carry the cells' sampling noise
    and the choice of tau. ``full`` are the fit's own plans, which warm-start the resamples'
    solves (not solved again)."""
    r = settings
    mixture = r.get("srot_mixture") or [{"eps": r["eps"], "tau": r["tau"], "weight": 1.0}]
    return member_plans(
        data,
        r["eps"],
        r["tau"],
        r["normalize_cost"],
        n_components,
        seed=seed,
        bootstrap=True,
        settings=allocate_members(mixture, n_components),
        full=full,
        device=device,
        **(srot_options or {}),
    )
