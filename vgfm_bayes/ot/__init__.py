"""Stage 2: optimal transport -- SROT plans, VGFM targets, pair sampling, W1."""

from .minibatch import MiniBatchPlan, choose_srot_batch, minibatch_srot
from .sinkhorn import sinkhorn_divergence
from .srot import SROTError, SROTResult, solve_srot, squared_cost
from .targets import IntervalPlan, PairBatch, interval_plans, sample_pairs
from .w1 import w1_exact, w1_loss

__all__ = [
    "IntervalPlan",
    "MiniBatchPlan",
    "PairBatch",
    "SROTError",
    "SROTResult",
    "choose_srot_batch",
    "interval_plans",
    "minibatch_srot",
    "sample_pairs",
    "sinkhorn_divergence",
    "solve_srot",
    "squared_cost",
    "w1_exact",
    "w1_loss",
]
