"""L-BFGS on SROT's semi-dual, for one problem or K independent ones at once (srot.py).

SROT's dual in the source potential f alone (srot.py) is smooth and concave; its negation is
minimised here:

- The L-BFGS is vectorised over the K problems, each with its own history of (s, y) pairs
  and quasi-Newton direction (compact form, :func:`_direction`), its own backtracking line
  search and step sizes, its own stopping rule (max |gradient| <= gtol): one Python step
  serves K problems. A problem that stops is dropped from the batch, so its potential no
  longer changes. (One L-BFGS over the K concatenated duals is no answer: its shared
  quasi-Newton model converges at the worst member's pace, about 6x the evaluations.)
- An evaluation costs two matrix-vector products on a kernel anchored at an earlier potential
  instead of an exp of all n x m entries (see :class:`Duals`); the exp was most of the time.

The dense work runs problem by problem: stacked (K, n, m) passes are memory-bound on a CPU and
cost more per problem than K passes on arrays that stay in the cache. It also keeps a problem's
arithmetic its own: its result does not depend on which other problems share the batch (an
ensemble trained in slices, one per process, reproduces every member bitwise); everything else
is elementwise or a reduction along one problem's own row (tests/test_srot_batched.py). A single
problem (solve_srot, K = 1) is therefore solved exactly as it would be inside a batch.

The line search backtracks from the L-BFGS step (1, or min(1, 1 / |g|_1) on a first step, as
torch's) by safeguarded quadratic interpolation until Armijo's condition holds. The negated dual
is convex, so every (s, y) pair has s.y >= 0 and no curvature condition is needed. Near the
optimum the dual's change falls below its float64 rounding while the gradient is still accurate,
so a step is also accepted when the dual has not risen beyond rounding and the directional
derivative at the step is at most 0.8 |phi'(0)| (Hager and Zhang's approximate Wolfe condition).

Why not torch.optim.LBFGS: it was the single-problem solver once, with a strong-Wolfe search.
This one needs about as many evaluations (within 10% on tests/test_srot_batched.py's problems),
its anchored evaluations made the mouse data's 3,781 x 5,788 solve about 1.9x faster, and every
torch.optim optimiser imports torch._dynamo when built (1.5 s of every command's start-up on
2 cores).
"""

from __future__ import annotations

import torch

HISTORY = 20  # (s, y) pairs per problem (as torch.optim.LBFGS's default history_size)
MAX_LS = 25  # line-search trials per iteration before a member gives up (torch: max_ls 25)
ARMIJO = 1e-4  # sufficient decrease
APPROX_WOLFE = 0.8  # |phi'(t)| <= 0.8 |phi'(0)|: 1 - 2 delta with Hager-Zhang's delta = 0.1
LOSS_ROUNDING = 1e-10  # relative rise of the dual attributed to rounding
# anchored kernels (Duals): entries below exp(-300) of their column's largest are clamped
# (exp() is slow below about exp(-708)), and re-anchored when the potential's spread since the
# anchor exceeds 200 eps; products stay above exp(-500), far from float64's underflow
ANCHOR_FLOOR = -300.0
ANCHOR_SPREAD = 200.0


class Duals:
    """The K problems' negated duals and their gradients, problem by problem.

    Each problem keeps a kernel anchored at a potential f0 it was last evaluated at in full,
    K_ij = exp(max(z0_ij - top0_j, ANCHOR_FLOOR)) with z0_ij = (f0_i - C_ij) / eps and top0_j
    = max_i z0_ij (solve_srot's shifted kernel, kept). At f with d_i = (f_i - f0_i) / eps and
    s = max_i d_i, u_i = exp(d_i - s) gives

        LSE_j = top0_j + s + log col_j,  col_j = sum_i K_ij u_i,  r_i = u_i sum_j K_ij b_j / col_j:

    two matrix-vector products instead of an exp of every entry (the exp is most of an
    evaluation). This is Sinkhorn's scaling form with the large scalings absorbed into the
    kernel (Schmitzer, SIAM J. Sci. Comput. 2019): while the spread of d stays within
    ANCHOR_SPREAD, no entry over- or underflows (col_j >= exp(-ANCHOR_SPREAD)) and an entry
    clamped at the anchor stays below exp(ANCHOR_FLOOR + ANCHOR_SPREAD) = exp(-100) of its
    column's largest, far below float64 resolution. Beyond that spread the evaluation is
    solve_srot's (in the problem's kernel array) and anchors there.

    Every problem has its own arrays and its own anchor, so its arithmetic is the same
    whichever problems share the batch (and stays in the CPU's cache while it is processed:
    stacked (K, n, m) passes are memory-bound and cost more per problem than separate ones).
    """

    def __init__(self, log_kernels, eps, tau, log_a, log_b):
        self.log_kernels, self.eps = log_kernels, eps
        opts = dict(dtype=torch.float64, device=log_kernels[0].device)
        self.eps_t, self.tau_t = torch.tensor(eps, **opts), torch.tensor(tau, **opts)
        self.a, self.b = torch.stack(log_a).exp(), torch.stack(log_b).exp()
        self.kernels = [torch.empty_like(lk) for lk in log_kernels]
        self.anchors: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(eps)
        self.full_evals = 0  # evaluations that (re-)anchored, for tests and profiling

    def __call__(self, which: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Negated duals (L,) and gradients (L, n) of problems ``which`` (L,) at f (L, n)."""
        rows = torch.empty_like(f)
        lse = torch.empty(len(which), self.b.shape[1], dtype=f.dtype, device=f.device)
        for i, k in enumerate(which.tolist()):
            fe, kernel, b = f[i] / self.eps[k], self.kernels[k], self.b[k]
            if self.anchors[k] is not None:
                f0e, top0 = self.anchors[k]
                d = fe - f0e
                shift = d.max()
                if float(shift - d.min()) <= ANCHOR_SPREAD:
                    u = torch.exp(d - shift)
                    col = u @ kernel
                    lse[i] = top0 + shift + col.log()
                    rows[i] = u * (kernel @ (b / col))
                    continue
            self.full_evals += 1
            z = torch.add(self.log_kernels[k], fe[:, None], out=kernel)
            top = torch.amax(z, 0)
            e = z.sub_(top).clamp_(min=ANCHOR_FLOOR).exp_()
            col = e.sum(0)
            lse[i] = top + col.log()
            rows[i] = e @ (b / col)
            self.anchors[k] = fe, top
        eps, tau, a, b = (v[which] for v in (self.eps_t, self.tau_t, self.a, self.b))
        target = a * torch.exp(-f / tau[:, None])
        return tau * target.sum(1) + eps * (b * lse).sum(1), rows - target


def _direction(grad, s_hist, y_hist, sty, yty, n_hist, h_diag) -> torch.Tensor:
    """The L-BFGS direction -H g per problem, in the compact form of Byrd, Nocedal and Schnabel
    (1994, eq. 3.1) rather than the two-loop recursion: a fixed handful of operations instead
    of 4 per stored pair, whose Python overhead dominated small solves (the tuning grid).

    History newest first: S, Y (L, H, n); sty = S Y^T and yty = Y Y^T (L, H, H), kept up to
    date pair by pair (:func:`_push`); n_hist (L,) pairs in use, the rest zero. With R the part
    of S Y^T where s is not newer than y (lower triangular here), D its diagonal, a = S g,
    c = Y g and q = R^-1 a:
        H g = gamma g + S^T R^-T (D q + gamma Y Y^T q - gamma c) - gamma Y^T q.
    Unused slots get a unit diagonal in R and contribute nothing. Every product is a reduction
    along one problem's own vectors, so the direction does not depend on the batch.
    """
    gamma = h_diag[:, None]
    if int(n_hist.max()) == 0:
        return -gamma * grad
    # all HISTORY slots, used or not: a shape that depends on the batch's longest history
    # would change the reductions' rounding (zero slots are exact no-ops)
    s, y, g = s_hist, y_hist, grad[:, None]
    unused = torch.arange(s.shape[1])[None] >= n_hist[:, None]
    r = torch.tril(sty) + torch.diag_embed(unused.to(sty))
    a, c = torch.linalg.vecdot(s, g), torch.linalg.vecdot(y, g)  # (L, H)
    q = torch.linalg.solve_triangular(r, a[..., None], upper=False)[..., 0]
    inner = sty.diagonal(dim1=1, dim2=2) * q + gamma * ((yty * q[:, None]).sum(-1) - c)
    top = torch.linalg.solve_triangular(r.transpose(1, 2), inner[..., None], upper=True)[..., 0]
    return -(gamma * grad + (s * top[..., None]).sum(1) - gamma * (y * q[..., None]).sum(1))


def _push(m: torch.Tensor, new_diag, new_row, new_col) -> torch.Tensor:
    """A history's Gram-type matrix (L, H, H) after a new pair enters at index 0: entry (0, 0)
    new_diag (L,), row 0 new_row (L, H) and column 0 new_col (L, H) against the old pairs."""
    row = torch.cat([new_diag[:, None], new_row[:, :-1]], 1)
    rest = torch.cat([new_col[:, :-1, None], m[:, :-1, :-1]], 2)
    return torch.cat([row[:, None], rest], 1)


def _line_search(duals, live, f, loss, grad, gtd, d, t):
    """Backtracking per problem from step t (L,); returns the accepted (f, loss, grad), which
    problems accepted, and the evaluations each used."""
    new_f, new_loss, new_grad = f.clone(), loss.clone(), grad.clone()
    searching = torch.ones_like(loss, dtype=torch.bool)
    evals = torch.zeros_like(loss, dtype=torch.long)
    for _ in range(MAX_LS):
        idx = searching.nonzero()[:, 0]
        ft = f[idx] + t[idx, None] * d[idx]
        lt, gt = duals(live[idx.cpu()], ft)
        evals[idx] += 1
        l0, g0, ti = loss[idx], gtd[idx], t[idx]
        armijo = lt <= l0 + ARMIJO * ti * g0
        flat = lt <= l0 + LOSS_ROUNDING * l0.abs()
        approx = flat & ((gt * d[idx]).sum(1) <= -APPROX_WOLFE * g0)
        ok = torch.isfinite(lt) & (armijo | approx)
        done = idx[ok]
        new_f[done], new_loss[done], new_grad[done] = ft[ok], lt[ok], gt[ok]
        searching[done] = False
        if not searching.any():
            break
        # the minimiser of the quadratic through phi(0), phi'(0), phi(t), kept in [0.1 t, 0.5 t]
        curv = lt - l0 - g0 * ti
        tq = torch.where(curv > 0, -g0 * ti * ti / (2 * curv), 0.5 * ti)
        tq = torch.where(torch.isfinite(tq), tq, 0.5 * ti)
        t = t.clone()
        t[idx] = torch.minimum(torch.maximum(tq, 0.1 * ti), 0.5 * ti)
    return new_f, new_loss, new_grad, ~searching, evals


def maximise_duals(duals: Duals, f: torch.Tensor, gtol: float, max_evals: int):
    """Per-problem L-BFGS on the negated duals of K problems from f (K, n) (see the module
    docstring). Returns the source potentials (K, n) and the evaluations each used (K,)."""
    k_all, n = f.shape
    out_f, out_evals = f.clone(), torch.zeros(k_all, dtype=torch.long)
    live = torch.arange(k_all)  # the problems still running (CPU indices)
    loss, grad = duals(live, f)
    evals = torch.ones(k_all, dtype=torch.long)
    opts = dict(dtype=f.dtype, device=f.device)
    s_hist, y_hist = torch.zeros(k_all, HISTORY, n, **opts), torch.zeros(k_all, HISTORY, n, **opts)
    sty, yty = (
        torch.zeros(k_all, HISTORY, HISTORY, **opts),
        torch.zeros(k_all, HISTORY, HISTORY, **opts),
    )
    h_diag = torch.ones(k_all, **opts)
    n_hist = torch.zeros(k_all, dtype=torch.long)
    first = torch.ones(k_all, dtype=torch.bool)
    stuck = torch.zeros(k_all, dtype=torch.bool)
    while True:
        stop = (grad.abs().amax(1) <= gtol).cpu() | (evals >= max_evals) | stuck
        if stop.any():
            sd = stop.to(f.device)
            out_f[live[stop].to(f.device)] = f[sd]
            out_evals[live[stop]] = evals[stop]
            if stop.all():
                return out_f, out_evals
            # drop the stopped problems: the rest run on as they would have alone
            keep, kd = ~stop, ~sd
            live, evals, n_hist, first = live[keep], evals[keep], n_hist[keep], first[keep]
            f, loss, grad, s_hist, y_hist = f[kd], loss[kd], grad[kd], s_hist[kd], y_hist[kd]
            sty, yty, h_diag = sty[kd], yty[kd], h_diag[kd]
        d = _direction(grad, s_hist, y_hist, sty, yty, n_hist, h_diag)
        gtd = (grad * d).sum(1)
        restart = ~(gtd < 0)  # not a descent direction: steepest descent, history cleared
        if restart.any():
            rc = restart.cpu()
            d[restart] = -grad[restart]
            gtd = torch.where(restart, (grad * d).sum(1), gtd)
            s_hist[restart], y_hist[restart], h_diag[restart] = 0.0, 0.0, 1.0
            sty[restart], yty[restart] = 0.0, 0.0
            n_hist[rc], first[rc] = 0, True
        first_step = (1.0 / grad.abs().sum(1)).clamp(max=1.0)  # torch's first step
        t = torch.where(first.to(f.device), first_step, torch.ones_like(first_step))
        new_f, new_loss, new_grad, accepted, used = _line_search(
            duals, live, f, loss, grad, gtd, d, t
        )
        evals += used.cpu()
        step, dy = new_f - f, new_grad - grad
        ys, yy = (dy * step).sum(1), (dy * dy).sum(1)
        # s.y > 0 holds in exact math (convex); a pair is skipped only when rounding may have
        # spoilt it. Relative, not torch's s.y > 1e-10: late pairs of a small-gradient problem
        # are below that, and L-BFGS then crawls on a stale model.
        update = accepted & (ys > 1e-10 * (yy * (step * step).sum(1)).sqrt())
        if update.any():
            u3 = update[:, None, None]
            s_y = torch.linalg.vecdot(step[:, None], y_hist)  # new s against the old y's
            y_s = torch.linalg.vecdot(s_hist, dy[:, None])  # the old s's against the new y
            y_y = torch.linalg.vecdot(dy[:, None], y_hist)
            sty = torch.where(u3, _push(sty, ys, s_y, y_s), sty)
            yty = torch.where(u3, _push(yty, yy, y_y, y_y), yty)
            s_hist = torch.where(u3, torch.cat([step[:, None], s_hist[:, :-1]], 1), s_hist)
            y_hist = torch.where(u3, torch.cat([dy[:, None], y_hist[:, :-1]], 1), y_hist)
            h_diag = torch.where(update, ys / yy, h_diag)
            n_hist = torch.where(update.cpu(), (n_hist + 1).clamp(max=HISTORY), n_hist)
        acc = accepted.cpu()
        first = first & ~acc
        # a failed line search, or a step that moves nothing, ends that problem's run
        stuck = ~acc | (step.abs().amax(1) == 0).cpu()
        f, loss, grad = new_f, new_loss, new_grad
