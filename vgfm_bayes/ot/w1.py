"""Wasserstein-1 between weighted predictions and observed cells (DESIGN 2.4 and 4)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch

_T = TypeVar("_T")
_R = TypeVar("_R")

EMD_MAX_ITER = 10_000_000  # network simplex needs ~1e6 iterations for 2,000 x 2,000 problems


def w1_exact(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> float:
    """Exact W1 (EMD, Euclidean cost) between sum_i w_i delta_{x_i} / sum(w) and uniform y.

    Parameters
    ----------
    x : ndarray, shape (n, D) -- predicted particles.
    w : ndarray, shape (n,) -- their non-negative weights (normalised here).
    y : ndarray, shape (m, D) -- observed cells, uniform weights.
    """
    import ot  # POT on first use: half a second of every command's start-up otherwise

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    a = np.asarray(w, dtype=np.float64)
    a = a / a.sum()
    b = np.full(len(y), 1.0 / len(y))
    cost = ot.dist(x, y, metric="euclidean")
    return float(ot.emd2(a, b, cost, numItermax=EMD_MAX_ITER))


def solve_in_threads(fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``[fn(item) for item in items]``, in order, on up to one thread per CPU core.

    For independent exact transport problems: POT's network simplex (and torch's kernels)
    release the GIL, so on 2 cores two EMDs run at once. ``fn`` must not draw random numbers
    (threads would reorder them); the results are the sequential ones, bitwise.
    """
    items = list(items)
    workers = min(len(items), os.cpu_count() or 1)
    if workers < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def w1_exact_many(problems: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[float]:
    """:func:`w1_exact` of every (x, w, y) triple, solved in threads (:func:`solve_in_threads`)."""
    return solve_in_threads(lambda p: w1_exact(*p), problems)


def sampling_floor(y: np.ndarray, splits: int = 5, rng: np.random.Generator | None = None) -> float:
    """W1 between two random halves of one snapshot, averaged over ``splits`` splits: the
    distance its own sampling noise puts between two draws of the same population. A model's
    W1 to a snapshot it did not see cannot be expected to go much below it; an in-sample W1
    below it fits the snapshot's noise (DESIGN 3.1). Exact EMD between the halves.

    Parameters
    ----------
    y : ndarray, shape (n, D) -- the snapshot's cells (n >= 2).
    """
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 2:
        raise ValueError(f"a sampling floor needs at least 2 cells, got {len(y)}")
    rng = np.random.default_rng(0) if rng is None else rng
    out = []
    for _ in range(splits):
        perm = rng.permutation(len(y))
        a, b = y[perm[: len(y) // 2]], y[perm[len(y) // 2 :]]
        out.append(w1_exact(a, np.ones(len(a)), b))
    return float(np.mean(out))


def w1_inputs(
    x: torch.Tensor, log_w: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights a = softmax(log_w), shape (n,), and Euclidean cost, shape (n, m), in float64."""
    a = torch.softmax(log_w.to(torch.float64), dim=0)
    cost = torch.cdist(x.to(torch.float64), y.to(torch.float64))
    return a, cost


def emd_solution(a: torch.Tensor, cost: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Optimal plan, shape (n, m), and source potential, shape (n,), against uniform targets.

    Pure numpy on detached copies (POT's network simplex releases the GIL), so several can be
    solved in threads while the autograd graph is still built on one thread, in a fixed order.
    """
    import ot  # on first use (see w1_exact)

    a_np = a.detach().cpu().numpy()
    a_np = a_np / a_np.sum()
    m = cost.shape[1]
    plan, log = ot.emd(
        a_np, np.full(m, 1.0 / m), cost.detach().cpu().numpy(), numItermax=EMD_MAX_ITER, log=True
    )
    return plan, log["u"]


def w1_from_solution(
    a: torch.Tensor, cost: torch.Tensor, plan: np.ndarray, u: np.ndarray
) -> torch.Tensor:
    """<plan, cost> with the envelope-theorem gradients: d/dcost = plan, d/da = u - mean(u)."""
    plan_t = torch.as_tensor(plan, dtype=cost.dtype, device=cost.device)
    u_t = torch.as_tensor(u, dtype=a.dtype, device=a.device)
    u_t = u_t - u_t.mean()
    return (plan_t * cost).sum() + (u_t * (a - a.detach())).sum()


def w1_loss(x: torch.Tensor, log_w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Differentiable W1 for training: gradients reach positions (through the cost) and weights.

    The optimal plan is d/dcost and the dual potential d/da (envelope theorem, as POT's emd2
    on torch tensors); with a = softmax(log_w) the potential's free constant cancels, so the
    growth network gets a well-defined gradient (the reference code's detached plan gives it
    none).

    Parameters
    ----------
    x : Tensor, shape (n, D); log_w : Tensor, shape (n,); y : Tensor, shape (m, D).
    """
    a, cost = w1_inputs(x, log_w, y)
    return w1_from_solution(a, cost, *emd_solution(a, cost)).to(x.dtype)
