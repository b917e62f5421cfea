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
