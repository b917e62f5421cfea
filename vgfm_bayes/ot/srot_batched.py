"""K independent SROT problems of one shape, solved at once (ensemble members; issue 13).

An ensemble solves SROT (srot.py) once per member and interval, each about 60 evaluations of
the dual from a warm start. Here all members' problems share one vectorised L-BFGS
(dual_lbfgs.py): one Python step serves K problems, each with its own history, line search and
stopping rule (max |gradient| <= gtol, as solve_srot), and a problem's result does not depend on
which others share the batch. Every problem's cost, checks and safe-mode fallback are
solve_srot's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from .dual_lbfgs import Duals, maximise_duals
from .srot import (
    SROTError,
    SROTResult,
    _checked,
    _cold_start,
    _problem,
    _warm_start,
    solve_srot_safe,
)

log = logging.getLogger(__name__)


def solve_srot_batched(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: Sequence[float] | torch.Tensor,
    tau: Sequence[float] | torch.Tensor,
    *,
    normalize_cost: bool = False,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    gtol: float = 1e-5,
    max_evals: int = 5000,
    marginal_tol: float = 1e-6,
    row_tol: float = 1e-3,
    f_init: torch.Tensor | Sequence[torch.Tensor | None] | None = None,
    labels: Sequence[str] | None = None,
    fallbacks: list[dict] | None = None,
    safe_mode: bool = True,
) -> list[SROTResult | None]:
    """Solve K independent SROT problems of one shape at once (see the module docstring).

    Parameters
    ----------
    x : Tensor, shape (K, n, d) -- source cells of each problem.
    y : Tensor, shape (K, m, d) -- target cells.
    eps, tau : shape (K,) -- each problem's SROT setting (see :func:`solve_srot`).
    normalize_cost : divide each problem's cost by its own maximum first.
    a : Tensor, shape (K, n), optional -- source masses, default 1 per cell.
    b : Tensor, shape (K, m), optional -- target masses, default 1 per cell.
    gtol, max_evals, marginal_tol, row_tol : as :func:`solve_srot`, for every problem.
    f_init : Tensor (K, n), or one Tensor (n,) or None per problem, optional -- warm starts;
        a problem without one is cold-started alone (eps annealing, as solve_srot), then
        joins the batch at the target eps.
    labels : one name per problem for the safe mode's log lines and records (default
        "SROT problem k").
    fallbacks : receives ``{"problem": k, **record}`` per problem whose plan needed the safe
        mode (record as :func:`solve_srot_safe` returns it).
    safe_mode : False: a problem whose batched solve fails its checks gives None (logged at
        info level) instead of the safe-mode retries (a score that treats it as unusable).

    Returns
    -------
    list of K SROTResult, each passing the checks of :func:`solve_srot`. A problem whose
    batched solve fails them is solved again alone by :func:`solve_srot_safe` (from its warm
    start, then the safe-mode ladder), which raises SROTError when no plan passes; with
    ``safe_mode`` False its entry is None instead.
    """
    n_prob = x.shape[0]
    eps = [float(e) for e in eps]
    tau = [float(t) for t in tau]
    if y.shape[0] != n_prob or len(eps) != n_prob or len(tau) != n_prob:
        raise ValueError(f"{n_prob} problems need as many y, eps and tau")
    labels = [f"SROT problem {k}" for k in range(n_prob)] if labels is None else list(labels)
    warm = [None] * n_prob if f_init is None else list(f_init)
    options = dict(normalize_cost=normalize_cost, gtol=gtol, marginal_tol=marginal_tol)
    options["row_tol"] = row_tol
    # per problem, as solve_srot: the same cost (bitwise) and input checks
    kernels, log_as, log_bs, starts, start_evals = [], [], [], [], []
    for k in range(n_prob):
        ak, bk = (None if a is None else a[k]), (None if b is None else b[k])
        if not (torch.isfinite(x[k]).all() and torch.isfinite(y[k]).all()):
            solve_srot_safe(x[k], y[k], eps[k], tau[k], label=labels[k])  # raises SROTError
        cost, log_a, log_b = _problem(x[k], y[k], eps[k], tau[k], normalize_cost, ak, bk)
        if warm[k] is None:
            f, used = _cold_start(cost, eps[k], tau[k], log_a, log_b)
        else:
            f, used = _warm_start(warm[k], cost.shape[0], cost), 0
        kernels.append(cost.div_(-eps[k]))  # in place; the values of -cost / eps
        log_as.append(log_a)
        log_bs.append(log_b)
        starts.append(f)
        start_evals.append(used)
    duals = Duals(kernels, eps, tau, log_as, log_bs)
    f, evals = maximise_duals(duals, torch.stack(starts), gtol, max_evals)
    out = []
    for k in range(n_prob):
        used = start_evals[k] + int(evals[k])
        args = (kernels[k], f[k], eps[k], tau[k], log_as[k], log_bs[k], used, marginal_tol, row_tol)
        try:  # the plan in the problem's anchored kernel array, no longer needed
            out.append(_checked(*args, out=duals.kernels[k]))
            continue
        except SROTError as err:
            if not safe_mode:
                log.info("%s: %s", labels[k], err)
                out.append(None)
                continue
            log.info("%s: batched solve failed its checks (%s); solving it alone", labels[k], err)
        ak, bk = (None if a is None else a[k]), (None if b is None else b[k])
        res, record = solve_srot_safe(
            x[k],
            y[k],
            eps[k],
            tau[k],
            label=labels[k],
            max_evals=max_evals,
            a=ak,
            b=bk,
            f_init=warm[k],
            **options,
        )
        if record is not None and fallbacks is not None:
            fallbacks.append({"problem": k, **record})
        out.append(res)
    return out
