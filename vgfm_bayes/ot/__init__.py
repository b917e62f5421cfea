"""Stage 2: optimal transport -- SROT plans, VGFM targets, pair sampling, ensemble members'
resamples and plans, SROT settings from held-out snapshots (tune), W1."""

from .members import (
    Members,
    StackedPlans,
    bootstrap_cells,
    component_plans,
    member_plans,
    member_seed,
    member_taus,
    sample_member_pairs,
    stack_member_plans,
)
from .minibatch import MiniBatchPlan, choose_srot_batch, minibatch_srot
from .sinkhorn import sinkhorn_divergence
from .srot import SROTError, SROTResult, solve_srot, solve_srot_safe, squared_cost
from .srot_batched import solve_srot_batched
from .targets import IntervalPlan, PairBatch, interval_plans, sample_pairs
from .w1 import sampling_floor, solve_in_threads, w1_exact, w1_exact_many, w1_loss

__all__ = [
    "IntervalPlan",
    "Members",
    "MiniBatchPlan",
    "PairBatch",
    "StackedPlans",
    "SROTError",
    "SROTResult",
    "bootstrap_cells",
    "choose_srot_batch",
    "component_plans",
    "interval_plans",
    "member_plans",
    "member_seed",
    "member_taus",
    "minibatch_srot",
    "sample_member_pairs",
    "sample_pairs",
    "sampling_floor",
    "stack_member_plans",
    "sinkhorn_divergence",
    "solve_srot",
    "solve_srot_batched",
    "solve_srot_safe",
    "squared_cost",
    "solve_in_threads",
    "w1_exact",
    "w1_exact_many",
    "w1_loss",
]
