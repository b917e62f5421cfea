"""Semi-relaxed unbalanced OT (SROT) between consecutive snapshots (DESIGN 2.1).

    pi = argmin_{pi >= 0} <C, pi> + eps * KL(pi | 1) + tau * KL(pi 1 | a)   s.t.  pi^T 1 = b

The target marginal b is hard and the source marginal is relaxed; the row sums r_i = (pi 1)_i say
how much mass source cell i becomes.

Why not plain Sinkhorn: scaling-domain solvers underflow at eps = 0.003 on an unnormalised cost
(POT returns NaN there), and log-domain Sinkhorn contracts only by tau / (tau + eps) per iteration
(0.9997 for the simulated-gene settings): tens of thousands of iterations. Here the hard constraint
is eliminated exactly (g is the soft c-transform of f), which leaves a smooth concave dual in the
source potential f alone,

    D(f) = -tau * sum_i a_i exp(-f_i / tau) - eps * sum_j b_j LSE_i((f_i - C_ij) / eps) + const,

whose gradient is a_i exp(-f_i / tau) - r_i(f). It is maximised with L-BFGS (dual_lbfgs.py) while
eps is annealed from the cost scale down to the target (warm starts), all in float64 on the fit's
device. The stopping rule is on the gradient, i.e. directly on the row-sum residual.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from .dual_lbfgs import Duals, maximise_duals

log = logging.getLogger(__name__)

# exp() of arguments below about -708 takes a slow path on CPUs (40x slower); terms smaller than
# exp(-60) relative to the largest are far below float64 resolution, so they are clamped.
_LOG_FLOOR = -60.0
# problems with more cells per side than twice this start from a coarse solve on a subsample
COARSE_CELLS = 1024


class SROTError(RuntimeError):
    """A transport plan that must not be used (NaN, or marginals off beyond tolerance)."""


@dataclass(frozen=True)
class SROTResult:
    """A checked plan.

    Attributes
    ----------
    plan : Tensor, shape (n, m), float64
    row_sums : Tensor, shape (n,) -- the mass each source cell becomes
    n_evals : int -- dual evaluations used (over all eps levels and any coarse solve)
    marginal_error : float -- max relative deviation of the column sums from b
    row_residual : float -- max |r_i - a_i exp(-f_i / tau)| / r_i, the optimality gap in rows
    f, g : Tensor, shapes (n,) and (m,), float64 -- dual potentials, plan_ij =
        exp((f_i + g_j - C_ij) / eps) with C the (normalised) cost; lets a caller rebuild rows
        of the plan on demand instead of keeping it (mini-batch SROT)
    """

    plan: torch.Tensor
    row_sums: torch.Tensor
    n_evals: int
    marginal_error: float
    row_residual: float
    f: torch.Tensor | None = None
    g: torch.Tensor | None = None


def squared_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean cost, shape (n, m), without cancellation for near points."""
    return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist").square()


def _logsumexp0(z: torch.Tensor) -> torch.Tensor:
    """log sum_i exp(z_ij) over dim 0, shape (m,), with the fast clamped exp."""
    top = torch.amax(z, 0)  # amax: max(0) also builds indices, 6x slower on a plan
    return top + torch.exp((z - top).clamp_min(_LOG_FLOOR)).sum(0).log()


def _column_potential(log_kernel: torch.Tensor, f: torch.Tensor, eps: float, log_b: torch.Tensor):
    """g_j such that the plan's column sums equal b exactly: the soft c-transform of f."""
    return eps * (log_b - _logsumexp0(log_kernel + (f / eps)[:, None]))


def _maximise_dual(
    cost: torch.Tensor,
    f: torch.Tensor,
    eps: float,
    tau: float,
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    gtol: float,
    max_evals: int,
) -> tuple[torch.Tensor, int]:
    """L-BFGS from f on the negated dual at (eps, tau) (dual_lbfgs.py, one problem): the source
    potential where every row's gradient |a_i exp(-f_i / tau) - r_i(f)| <= gtol, or where
    max_evals ran out, and the evaluations used."""
    duals = Duals([-cost / eps], [eps], [tau], [log_a], [log_b])
    out, evals = maximise_duals(duals, f[None], gtol, max_evals)
    return out[0], int(evals[0])


def _anneal(cost, eps, tau, log_a, log_b) -> tuple[torch.Tensor, int]:
    """A source potential near the optimum at eps: eps annealed from the cost scale down to
    3 eps (coarse solutions are cheap and well conditioned, and warm-start finer ones)."""
    f = torch.zeros(cost.shape[0], dtype=cost.dtype, device=cost.device)
    n_evals, level = 0, float(cost.max()) / 10
    while level > 3 * eps:
        f, used = _maximise_dual(cost, f, level, tau, log_a, log_b, gtol=1e-3, max_evals=200)
        n_evals, level = n_evals + used, level / 3
    return f, n_evals


def _cold_start(cost, eps, tau, log_a, log_b) -> tuple[torch.Tensor, int]:
    """A starting source potential without f_init, and the dual evaluations it used.

    Small problems anneal eps on the full cost. Large ones are solved first on a subsample
    of COARSE_CELLS cells per side (its masses scaled up to the full totals) at the target
    eps, and that solution is extended to every cell by the optimality conditions: g on all
    targets is the soft c-transform of the coarse f (column sums b_j, the subsample standing
    for all sources), then f on every source from that g (:func:`source_potential`). The full
    problem then skips the eps ladder.
    """
    n, m = cost.shape
    if min(n, m) < 2 * COARSE_CELLS:
        return _anneal(cost, eps, tau, log_a, log_b)
    gen = torch.Generator().manual_seed(0)  # a fixed subsample: the solve stays deterministic
    rows = torch.randperm(n, generator=gen)[:COARSE_CELLS].to(cost.device)
    cols = torch.randperm(m, generator=gen)[:COARSE_CELLS].to(cost.device)
    scale_a, scale_b = math.log(n / COARSE_CELLS), math.log(m / COARSE_CELLS)
    coarse = cost[rows][:, cols]
    f_s, used = _anneal(coarse, eps, tau, log_a[rows] + scale_a, log_b[cols] + scale_b)
    f_s, more = _maximise_dual(
        coarse, f_s, eps, tau, log_a[rows] + scale_a, log_b[cols] + scale_b, 1e-4, 500
    )
    g = _column_potential(-cost[rows] / eps, f_s, eps, log_b - scale_a)
    return source_potential(cost, g, eps, tau, log_a), used + more


def source_potential(cost, g, eps: float, tau: float, log_a) -> torch.Tensor:
    """The source potential that the column potential g implies (shape (n,)): at SROT's optimum
    row i's sum exp(f_i / eps) sum_j exp((g_j - C_ij) / eps) equals a_i exp(-f_i / tau), so
    f_i = eps tau / (eps + tau) * (log a_i - LSE_j((g_j - C_ij) / eps)). With g from a nearby
    problem (a coarse solve, another block of the same snapshots) it is a warm start."""
    return (log_a - _logsumexp0((g[:, None] - cost.T) / eps)) * (eps * tau / (eps + tau))


def solve_srot(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    tau: float,
    *,
    normalize_cost: bool = False,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    gtol: float = 1e-5,
    max_evals: int = 5000,
    marginal_tol: float = 1e-6,
    row_tol: float = 1e-3,
    f_init: torch.Tensor | None = None,
) -> SROTResult:
    """Solve SROT between source cells x and target cells y.

    Parameters
    ----------
    x : Tensor, shape (n, d) -- source cells.
    y : Tensor, shape (m, d) -- target cells.
    eps : entropic regularisation (> 0), in units of the (possibly normalised) cost.
    tau : KL weight on the relaxed source marginal (> 0); small tau lets rows deviate more.
    normalize_cost : divide the cost by its maximum first.
    a : Tensor, shape (n,), optional -- source masses, default 1 per cell.
    b : Tensor, shape (m,), optional -- target masses, default 1 per cell.
    gtol : stop when every row's residual |r_i - a_i exp(-f_i / tau)| is below this.
    max_evals : dual evaluations allowed at the target eps.
    marginal_tol, row_tol : largest accepted relative error of the column sums (hard) and of
        the row optimality condition; beyond either the plan is rejected with SROTError.
    f_init : Tensor, shape (n,), optional -- a source potential close to the solution (e.g. of
        a nearby problem: a bootstrap resample, another tau); L-BFGS starts there at the target
        eps and the eps annealing is skipped.

    Returns
    -------
    SROTResult; raises SROTError if the plan has NaN or fails its checks.
    """
    cost, log_a, log_b = _problem(x, y, eps, tau, normalize_cost, a, b)
    n = cost.shape[0]
    if f_init is None:
        f, n_evals = _cold_start(cost, eps, tau, log_a, log_b)
    else:
        f, n_evals = _warm_start(f_init, n, cost), 0
    f, used = _maximise_dual(cost, f, eps, tau, log_a, log_b, gtol=gtol, max_evals=max_evals)
    args = (f, eps, tau, log_a, log_b, n_evals + used, marginal_tol, row_tol)
    return _checked(-cost / eps, *args)


def _problem(x, y, eps, tau, normalize_cost, a, b):
    """The (normalised) float64 cost and log masses of one problem, its inputs checked."""
    if not (eps > 0 and tau > 0):
        raise ValueError(f"SROT needs eps > 0 and tau > 0, got eps={eps}, tau={tau}")
    x64, y64 = x.detach().to(torch.float64), y.detach().to(torch.float64)
    n, m = x64.shape[0], y64.shape[0]
    if not (torch.isfinite(x64).all() and torch.isfinite(y64).all()):
        raise SROTError("SROT input has NaN/inf coordinates; no plan can be computed")
    cost = squared_cost(x64, y64)
    if normalize_cost:
        cost = cost.div_(cost.max().clamp_min(torch.finfo(torch.float64).tiny))
    opts = dict(dtype=torch.float64, device=cost.device)
    log_a = torch.zeros(n, **opts) if a is None else torch.as_tensor(a, **opts).log()
    log_b = torch.zeros(m, **opts) if b is None else torch.as_tensor(b, **opts).log()
    return cost, log_a, log_b


def _warm_start(f_init, n: int, cost: torch.Tensor) -> torch.Tensor:
    f = torch.as_tensor(f_init, dtype=torch.float64, device=cost.device).clone()
    if f.shape != (n,) or not torch.isfinite(f).all():
        raise ValueError(f"f_init must be finite with shape ({n},), got {tuple(f.shape)}")
    return f


def _checked(
    log_kernel, f, eps, tau, log_a, log_b, n_evals, marginal_tol, row_tol, out=None
) -> SROTResult:
    """The plan of source potential f, or SROTError when it fails the checks of solve_srot.

    g is _column_potential's value and the plan exp(log_kernel + (f_i + g_j) / eps), both
    computed in place in the one n x m array that becomes the plan: ``out`` if given, else
    a fresh one (each fresh array costs its page faults).
    """
    fe = (f / eps)[:, None]
    z = torch.add(log_kernel, fe, out=out)
    top = torch.amax(z, 0)
    g = eps * (log_b - (top + z.sub_(top).clamp_(min=_LOG_FLOOR).exp_().sum(0).log()))
    plan = torch.add(log_kernel, fe, out=z).add_((g / eps)[None, :]).clamp_(min=-745.0).exp_()
    b_vec = log_b.exp()
    col_err = torch.max(torch.abs(plan.sum(0) - b_vec) / b_vec).item()
    rows = plan.sum(1)
    row_err = torch.max(torch.abs(rows - log_a.exp() * torch.exp(-f / tau)) / rows).item()
    # entries are exp() >= 0 or NaN, so finite row sums mean a finite plan (one pass fewer)
    if not torch.isfinite(rows).all() or not (math.isfinite(col_err) and math.isfinite(row_err)):
        raise SROTError(f"SROT plan has NaN/inf (eps={eps}, tau={tau}); try a larger eps")
    if col_err > marginal_tol or row_err > row_tol:
        raise SROTError(
            f"SROT did not converge (eps={eps}, tau={tau}): target marginal error {col_err:.1e}, "
            f"row residual {row_err:.1e} after {n_evals} evaluations; raise eps or max_evals"
        )
    return SROTResult(plan, rows, n_evals, col_err, row_err, f=f, g=g)


def solve_srot_safe(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    tau: float,
    *,
    label: str = "SROT",
    max_evals: int = 5000,
    **options,
) -> tuple[SROTResult, dict | None]:
    """:func:`solve_srot`, retried in a safe mode when the plan fails its checks.

    The ladder: the settings as given; then 5x the dual evaluations; then eps x 3 and eps x 10
    (with the larger budget). Every retry is logged as a warning naming what changed; the plan's
    checks are never relaxed, so a plan that still fails raises SROTError.

    Returns
    -------
    (result, fallback) where fallback is None when the first attempt passed, else a record
    {"label", "eps", "max_evals", "reason"} of the settings that produced the plan.
    """
    attempts = [
        (eps, max_evals, None),
        (eps, 5 * max_evals, f"dual evaluations {max_evals} -> {5 * max_evals}"),
        (3 * eps, 5 * max_evals, f"eps {eps:g} -> {3 * eps:g} (3x larger), {5 * max_evals} evals"),
        (
            10 * eps,
            5 * max_evals,
            f"eps {eps:g} -> {10 * eps:g} (10x larger), {5 * max_evals} evals",
        ),
    ]
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise SROTError(f"{label}: NaN/inf coordinates; no safe mode can help, fix the data")
    reasons = []
    for e, evals, change in attempts:
        if change is not None:
            log.warning("%s: %s; retrying in safe mode with %s", label, reasons[-1], change)
            options.pop("f_init", None)  # retries start cold: the warm start may be the problem
        try:
            res = solve_srot(x, y, e, tau, max_evals=evals, **options)
        except SROTError as err:
            reasons.append(str(err))
            continue
        if change is None:
            return res, None
        log.warning("%s: safe mode succeeded with %s; the plan passed its checks", label, change)
        return res, {"label": label, "eps": e, "max_evals": evals, "reason": reasons[0]}
    raise SROTError(
        f"{label}: no usable plan after {len(attempts)} attempts (up to eps {10 * eps:g}); "
        f"last: {reasons[-1]}. Standardise or subsample the data, or set a larger eps"
    )
