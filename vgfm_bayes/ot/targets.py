"""Per-interval SROT plans, VGFM regression targets and pair sampling (DESIGN 2.1-2.2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data import TimeCourse
from .interval import IntervalTargets
from .minibatch import MiniBatchPlan, choose_srot_batch, dense_bytes, minibatch_srot
from .srot import solve_srot_safe
from .srot_batched import solve_srot_batched


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
    plans = member_interval_plans(
        data,
        [(eps, tau)],
        normalize_cost,
        cells=[cells],
        f_init=[f_init],
        batched=False,
        device=device,
        dtype=dtype,
        fallbacks=fallbacks,
        srot_batch=srot_batch,
        srot_repeats=srot_repeats,
        memory_mb=memory_mb,
        generator=generator,
    )
    return plans[0]


def member_interval_plans(
    data: TimeCourse,
    settings: Sequence[tuple[float, float]],
    normalize_cost: bool,
    *,
    cells: Sequence[list[np.ndarray] | None],
    f_init: Sequence[Sequence[torch.Tensor | None] | None],
    batched: bool = True,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    fallbacks: list[dict] | None = None,
    srot_batch: int | None = None,
    srot_repeats: int = 1,
    memory_mb: float = 2048.0,
    generator: torch.Generator | None = None,
) -> list[list[IntervalPlan | MiniBatchPlan]]:
    """:func:`interval_plans` for several sets of problems at once (ensemble members).

    Member i solves at ``settings[i]`` = (eps, tau) on its resample ``cells[i]`` (None: all
    cells) from its warm starts ``f_init[i]`` (None: cold). With ``batched``, every interval
    whose plans are dense and whose members' snapshots agree in size (bootstrap resamples keep
    every snapshot's size) is solved for all members in one :func:`solve_srot_batched` call
    (in groups of as many members as ``memory_mb`` holds); other intervals are solved member by
    member, as interval_plans does. Plans, fallback records and the mini-batch partitions'
    draws from ``generator`` come in member-major order, as from one interval_plans call per
    member. A member's batched plans do not depend on the other members (srot_batched.py).

    Returns
    -------
    list (one per member) of lists (one per interval) of IntervalPlan or MiniBatchPlan.
    """
    xs = [[data.x[k] if c is None else data.x[k][c[k]] for k in range(data.n_times)] for c in cells]
    batch_solved = {}  # (member, interval) -> (IntervalPlan, fallback record)
    for k in range(data.n_times - 1) if batched else ():
        sizes = {(len(x[k]), len(x[k + 1])) for x in xs}
        if len(sizes) != 1 or choose_srot_batch(*min(sizes), srot_batch, memory_mb) is not None:
            continue
        group = max(1, int(memory_mb * 2**20 // dense_bytes(*min(sizes))))
        for lo in range(0, len(xs), group):
            ids = range(lo, min(lo + group, len(xs)))
            x0 = [_cells(xs[i][k], device) for i in ids]
            x1 = [_cells(xs[i][k + 1], device) for i in ids]
            records = []
            results = solve_srot_batched(
                torch.stack(x0),
                torch.stack(x1),
                [settings[i][0] for i in ids],
                [settings[i][1] for i in ids],
                normalize_cost=normalize_cost,
                b=torch.stack([_target_masses(data, k, xs[i], device) for i in ids]),
                f_init=[None if f_init[i] is None else f_init[i][k] for i in ids],
                labels=[_label(data, k)] * len(ids),
                fallbacks=records,
            )
            record = {r.pop("problem"): r for r in records}
            for j, i in enumerate(ids):
                plan = _dense_plan(data, k, x0[j], x1[j], results[j], dtype)
                batch_solved[i, k] = plan, record.get(j)
    alone = dict(normalize_cost=normalize_cost, device=device, dtype=dtype, srot_batch=srot_batch)
    alone.update(repeats=srot_repeats, memory_mb=memory_mb, generator=generator)
    out = []
    for i, (eps, tau) in enumerate(settings):
        plans = []
        for k in range(data.n_times - 1):
            if (i, k) in batch_solved:
                plan, fallback = batch_solved.pop((i, k))
            else:
                warm = None if f_init[i] is None else f_init[i][k]
                plan, fallback = _interval_plan(data, k, xs[i], eps, tau, warm, **alone)
            if fallback is not None and fallbacks is not None:
                fallbacks.append({"interval": k, **fallback})
            plans.append(plan)
        out.append(plans)
    return out


def _cells(x: np.ndarray, device) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, device=device)


def _target_masses(data: TimeCourse, k: int, xs: list[np.ndarray], device) -> torch.Tensor:
    """b_j = (M_{k+1} / M_k) * n_k / n_{k+1} on every target cell of interval k."""
    ratio = data.masses[k + 1] / data.masses[k] * len(xs[k]) / len(xs[k + 1])
    return torch.full((len(xs[k + 1]),), ratio, dtype=torch.float64, device=device)


def _label(data: TimeCourse, k: int) -> str:
    return f"SROT interval {k} (t={data.times[k]:g} -> {data.times[k + 1]:g})"


def _dense_plan(data, k, x0, x1, res, dtype) -> IntervalPlan:
    """Interval k's IntervalPlan from its checked SROT result."""
    return IntervalPlan(
        t0=float(data.times[k]),
        t1=float(data.times[k + 1]),
        x0=x0.to(dtype),
        x1=x1.to(dtype),
        row_sums=res.row_sums,
        cdf=res.plan.reshape(-1).cumsum(0),
        potential=res.f,
    )


def _interval_plan(
    data,
    k,
    xs,
    eps,
    tau,
    f_init,
    *,
    normalize_cost,
    device,
    dtype,
    srot_batch,
    repeats,
    memory_mb,
    generator,
):
    """One interval's plan solved alone (dense or mini-batch) and its fallback record."""
    x0, x1 = _cells(xs[k], device), _cells(xs[k + 1], device)
    batch = choose_srot_batch(len(xs[k]), len(xs[k + 1]), srot_batch, memory_mb)
    if batch is not None:
        plan = minibatch_srot(
            x0,
            x1,
            eps,
            tau,
            float(data.masses[k + 1] / data.masses[k]),
            batch,
            normalize_cost=normalize_cost,
            repeats=repeats,
            generator=generator,
            t0=float(data.times[k]),
            t1=float(data.times[k + 1]),
            dtype=dtype,
        )
        return plan, None
    res, fallback = solve_srot_safe(
        x0,
        x1,
        eps,
        tau,
        label=_label(data, k),
        normalize_cost=normalize_cost,
        b=_target_masses(data, k, xs, device),
        f_init=f_init,
    )
    return _dense_plan(data, k, x0, x1, res, dtype), fallback


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
