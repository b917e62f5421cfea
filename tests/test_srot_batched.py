"""K SROT problems solved at once (ot/srot_batched.py, ot/dual_lbfgs.py): the plans against an
independent solver (torch's strong-Wolfe L-BFGS on the same dual), members independent of their
batch, the safe-mode fallback, and its use by the ensemble's plans."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import vgfm_bayes.ot.dual_lbfgs as dl
import vgfm_bayes.ot.srot_batched as sb
import vgfm_bayes.ot.targets as targets
from vgfm_bayes.ot import (
    MiniBatchPlan,
    interval_plans,
    member_plans,
    solve_srot,
    solve_srot_batched,
)
from vgfm_bayes.ot.members import bootstrap_cells, member_seed
from vgfm_bayes.ot.srot import _anneal, _problem, squared_cost

EPS = [0.05, 0.01, 0.02, 0.03, 0.01, 0.02]
TAU = [1.0, 5.0, 0.5, 2.0, 10.0, 1.0]


def _problems(k=6, n=60, m=70, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(k, n, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(k, m, 2, generator=gen, dtype=torch.float64) + 0.4
    b = torch.rand(k, m, generator=gen, dtype=torch.float64) + 0.5
    return x, y, b


def _assert_same_results(got, want):
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g.plan, w.plan) and torch.equal(g.f, w.f) and g.n_evals == w.n_evals


def _strong_wolfe_reference(x, y, eps, tau, b, f_start, gtol):
    """SROT's source potential by torch.optim.LBFGS with a strong-Wolfe search on the same
    negated dual (the solver solve_srot used before dual_lbfgs.py), from f_start; and its
    evaluations. An independent check: another line search, another L-BFGS."""
    cost, log_a, log_b = _problem(x, y, eps, tau, True, None, b)
    log_kernel, a = -cost / eps, log_a.exp()
    f = f_start.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [f],
        lr=1.0,
        max_iter=5000,
        max_eval=5000,
        history_size=20,
        tolerance_grad=gtol,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )
    evals = 0

    def closure():
        nonlocal evals
        evals += 1
        with torch.no_grad():
            z = log_kernel + (f / eps)[:, None]
            lse = torch.logsumexp(z, 0)
            rows = torch.exp(z - lse) @ b
            target = a * torch.exp(-f / tau)
            f.grad = rows - target
            return tau * target.sum() + eps * (b * lse).sum()

    opt.step(closure)
    return f.detach(), evals


def _plan(x, y, eps, tau, b, f):
    """The plan of source potential f on the max-normalised cost (columns summing to b)."""
    cost = squared_cost(x, y)
    z = -cost / cost.max() / eps + (f / eps)[:, None]
    return torch.exp(z - torch.logsumexp(z, 0)) * b


@pytest.mark.parametrize("warm", [False, True])
def test_batched_plans_match_an_independent_solver(warm):
    """Mixed eps / tau per member, cold (eps annealing) and warm starts (a nearby problem's
    potential: 1.25 tau, rescaled, as the ensemble's members get), against torch's strong-Wolfe
    L-BFGS on the same dual from the same start. Tolerance: at gtol 1e-8 both stop on
    |r_i - a_i exp(-f_i / tau)| <= 1e-8, but the strong-Wolfe search can stop earlier on a zero
    step; on these problems its plan is up to 6e-7 from a gtol-1e-12 solve, the batched one
    within 3e-9, hence atol 1e-6 on entries of size up to 1 (and rtol 1e-5 on row sums)."""
    x, y, b = _problems()
    opts = dict(normalize_cost=True, gtol=1e-8)
    near = [solve_srot(x[k], y[k], EPS[k], 1.25 * TAU[k], b=b[k]).f / 1.25 for k in range(6)]
    start = near if warm else [None] * 6
    got = solve_srot_batched(x, y, EPS, TAU, b=b, f_init=start, **opts)
    ref_evals = 0
    for k, g in enumerate(got):
        if warm:
            f0 = near[k]
        else:  # the same eps ladder as the batched cold start, its evaluations counted
            cost, log_a, log_b = _problem(x[k], y[k], EPS[k], TAU[k], True, None, b[k])
            f0, ladder = _anneal(cost, EPS[k], TAU[k], log_a, log_b)
            ref_evals += ladder
        f_ref, used = _strong_wolfe_reference(x[k], y[k], EPS[k], TAU[k], b[k], f0, 1e-8)
        ref_evals += used
        ref = _plan(x[k], y[k], EPS[k], TAU[k], b[k], f_ref)
        torch.testing.assert_close(g.plan, ref, rtol=0, atol=1e-6)
        torch.testing.assert_close(g.row_sums, ref.sum(1), rtol=1e-5, atol=0)
        # solve_srot's own checks, passed
        assert torch.isfinite(g.plan).all() and g.marginal_error <= 1e-6 and g.row_residual <= 1e-3
        torch.testing.assert_close(g.plan.sum(0), b[k], rtol=1e-6, atol=0)  # hard marginal
        # solve_srot is the same solver on one problem: bitwise the batched member
        alone = solve_srot(x[k], y[k], EPS[k], TAU[k], b=b[k], f_init=start[k], **opts)
        assert torch.equal(alone.plan, g.plan) and alone.n_evals == g.n_evals
    # the backtracking search needs about as many evaluations as the strong-Wolfe one
    assert sum(g.n_evals for g in got) <= 1.1 * ref_evals


def test_members_do_not_depend_on_their_batch():
    """Member k's result is bitwise the same alone, in any subset, in any order: a batch that
    coupled or mixed up the members (a shared line search or history, a wrong index after a
    member stops) fails this."""
    x, y, b = _problems()
    eps, tau = torch.tensor(EPS), torch.tensor(TAU)
    opts = dict(normalize_cost=True, gtol=1e-7)
    every = solve_srot_batched(x, y, eps, tau, b=b, **opts)
    perm = [4, 1, 5, 0, 3, 2]
    shuffled = solve_srot_batched(x[perm], y[perm], eps[perm], tau[perm], b=b[perm], **opts)
    _assert_same_results(shuffled, [every[k] for k in perm])
    part = [5, 1, 2]
    _assert_same_results(
        solve_srot_batched(x[part], y[part], eps[part], tau[part], b=b[part], **opts),
        [every[k] for k in part],
    )
    alone = solve_srot_batched(x[4:5], y[4:5], eps[4:5], tau[4:5], b=b[4:5], **opts)
    _assert_same_results(alone, [every[4]])
    # the members stop at different evaluations (so stopped members left the batch midway)
    assert len({r.n_evals for r in every}) > 2


def _one_at_optimum_one_starved(**options):
    """Two problems batched: member 0 starts at its optimum, member 1 far off with a budget of
    3 evaluations (it fails its checks). Returns (b, results)."""
    x, y, b = _problems(k=2)
    f_opt = solve_srot(x[0], y[0], EPS[0], TAU[0], b=b[0], normalize_cost=True, gtol=1e-9).f
    got = solve_srot_batched(
        x,
        y,
        EPS[:2],
        TAU[:2],
        b=b,
        normalize_cost=True,
        max_evals=3,
        f_init=[f_opt, torch.zeros(60, dtype=torch.float64)],
        labels=["member 0", "member 1"],
        **options,
    )
    return b, got


def test_a_member_failing_its_checks_falls_back_alone(monkeypatch, caplog):
    """Member 0 starts at its optimum (converges at once); member 1 starts far off with a
    budget of 3 evaluations and fails its checks in the batch: it alone is solved again by
    solve_srot_safe, whose ladder records the fallback."""
    calls = []
    safe = sb.solve_srot_safe
    monkeypatch.setattr(sb, "solve_srot_safe", lambda *a, **kw: calls.append(kw) or safe(*a, **kw))
    records: list[dict] = []
    with caplog.at_level(logging.INFO, logger="vgfm_bayes.ot"):
        b, got = _one_at_optimum_one_starved(fallbacks=records)
    assert [c["label"] for c in calls] == ["member 1"]
    assert got[0].n_evals == 1  # the batched result, unchanged
    (record,) = records
    assert record["problem"] == 1 and record["label"] == "member 1"
    assert "did not converge" in record["reason"] and record["max_evals"] == 15
    assert (
        "batched solve failed its checks" in caplog.text and "retrying in safe mode" in caplog.text
    )
    for g, k in zip(got, range(2), strict=True):
        assert torch.isfinite(g.plan).all()
        torch.testing.assert_close(g.plan.sum(0), b[k], rtol=1e-6, atol=0)


def test_without_safe_mode_a_failing_member_gives_none(monkeypatch, caplog):
    """safe_mode=False (the tuning grid's score): the member that fails its checks is None,
    logged under its label, with no retry; the other keeps its batched result."""
    monkeypatch.setattr(sb, "solve_srot_safe", lambda *a, **kw: pytest.fail("no retry wanted"))
    with caplog.at_level(logging.INFO, logger="vgfm_bayes.ot"):
        _, got = _one_at_optimum_one_starved(safe_mode=False)
    assert got[1] is None and got[0] is not None and got[0].n_evals == 1
    assert "member 1: SROT did not converge" in caplog.text


def test_compact_direction_is_the_two_loop_recursion():
    """_direction's compact form (Byrd-Nocedal-Schnabel) against the textbook two-loop
    recursion, with histories of different lengths in one batch and the Gram matrices kept up
    to date by _push as the solver does."""
    gen = torch.Generator().manual_seed(0)
    k, n = 4, 30
    h = dl.HISTORY
    a = torch.randn(k, n, n, generator=gen, dtype=torch.float64)
    a = a @ a.transpose(1, 2) + torch.eye(n, dtype=torch.float64)  # convex: s.y > 0
    s_hist, y_hist = (
        torch.zeros(k, h, n, dtype=torch.float64),
        torch.zeros(k, h, n, dtype=torch.float64),
    )
    sty, yty = torch.zeros(k, h, h, dtype=torch.float64), torch.zeros(k, h, h, dtype=torch.float64)
    n_hist = torch.zeros(k, dtype=torch.long)
    for it in range(h + 5):
        step = torch.randn(k, n, generator=gen, dtype=torch.float64)
        dy = torch.einsum("kij,kj->ki", a, step)
        update = torch.tensor([True, it < 7, it < 1, False])
        u3 = update[:, None, None]
        s_y, y_s = (
            torch.linalg.vecdot(step[:, None], y_hist),
            torch.linalg.vecdot(s_hist, dy[:, None]),
        )
        y_y = torch.linalg.vecdot(dy[:, None], y_hist)
        sty = torch.where(u3, dl._push(sty, (step * dy).sum(1), s_y, y_s), sty)
        yty = torch.where(u3, dl._push(yty, (dy * dy).sum(1), y_y, y_y), yty)
        s_hist = torch.where(u3, torch.cat([step[:, None], s_hist[:, :-1]], 1), s_hist)
        y_hist = torch.where(u3, torch.cat([dy[:, None], y_hist[:, :-1]], 1), y_hist)
        n_hist = torch.where(update, (n_hist + 1).clamp(max=h), n_hist)
    assert n_hist.tolist() == [h, 7, 1, 0]
    torch.testing.assert_close(sty, s_hist @ y_hist.transpose(1, 2))
    torch.testing.assert_close(yty, y_hist @ y_hist.transpose(1, 2))
    grad = torch.randn(k, n, generator=gen, dtype=torch.float64)
    gamma = torch.rand(k, generator=gen, dtype=torch.float64) + 0.1
    got = dl._direction(grad, s_hist, y_hist, sty, yty, n_hist, gamma)
    for p in range(k):  # two-loop recursion, one problem at a time
        q, alphas = -grad[p].clone(), []
        for j in range(int(n_hist[p])):
            alphas.append(torch.dot(s_hist[p, j], q) / torch.dot(s_hist[p, j], y_hist[p, j]))
            q = q - alphas[j] * y_hist[p, j]
        d = gamma[p] * q
        for j in reversed(range(int(n_hist[p]))):
            beta = torch.dot(y_hist[p, j], d) / torch.dot(s_hist[p, j], y_hist[p, j])
            d = d + (alphas[j] - beta) * s_hist[p, j]
        torch.testing.assert_close(got[p], d, rtol=1e-10, atol=1e-12)
        alone = dl._direction(
            grad[p : p + 1],
            s_hist[p : p + 1],
            y_hist[p : p + 1],
            sty[p : p + 1],
            yty[p : p + 1],
            n_hist[p : p + 1],
            gamma[p : p + 1],
        )
        assert torch.equal(alone[0], got[p])  # the same bits in any batch


def test_anchored_evaluations_match_full_ones():
    """Duals' anchored evaluation (two matrix-vector products) gives the full evaluation's
    dual and gradient, and re-anchors once the potential has moved too far."""
    x, y, b = _problems(k=1)
    cost = torch.cdist(x[0], y[0]).square()
    cost = cost / cost.max()
    eps, tau = 0.01, 2.0
    zeros = torch.zeros(60, dtype=torch.float64)

    def duals():
        return dl.Duals([-cost / eps], [eps], [tau], [zeros], [b[0].log()])

    which = torch.tensor([0])
    anchored = duals()
    f0 = solve_srot(x[0], y[0], eps, tau, b=b[0], normalize_cost=True).f
    anchored(which, f0[None])
    gen = torch.Generator().manual_seed(1)
    for scale in (1.0, 30.0):  # a spread of about 4 and 120 eps since the anchor
        f = f0 + scale * eps * torch.rand(60, generator=gen, dtype=torch.float64)
        loss, grad = anchored(which, f[None])
        ref_loss, ref_grad = duals()(which, f[None])
        torch.testing.assert_close(loss, ref_loss, rtol=1e-13, atol=0)
        torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-12)
    assert anchored.full_evals == 1
    anchored(which, (f0 + 300 * eps * torch.linspace(0, 1, 60, dtype=torch.float64))[None])
    assert anchored.full_evals == 2


def test_member_plans_solve_each_dense_interval_once_for_all_members(tiny, monkeypatch):
    """One batched solve per dense interval for all members; mini-batch intervals stay per
    member, drawing their partitions in member order as before; the point head never takes
    the batched path."""
    calls = []
    batched = sb.solve_srot_batched
    monkeypatch.setattr(
        targets,
        "solve_srot_batched",
        lambda x, *a, **kw: calls.append(x.shape) or batched(x, *a, **kw),
    )
    interval_plans(tiny, 0.05, 5.0, True)
    assert calls == []
    # interval 0 (30 sources) dense, interval 1 (36 sources) in mini-batches of 32
    options = dict(srot_batch=32, srot_repeats=1)
    full = interval_plans(
        tiny, 0.05, 5.0, True, generator=torch.Generator().manual_seed(9), **options
    )
    plans = member_plans(
        tiny,
        0.05,
        5.0,
        True,
        3,
        seed=4,
        tau_spread=0.5,
        full=full,
        generator=torch.Generator().manual_seed(7),
        **options,
    )
    assert calls == [(3, 30, 2)]
    # the mini-batch intervals as one interval_plans call per member would draw them
    gen = torch.Generator().manual_seed(7)
    taus = 5.0 * np.exp(np.linspace(-0.5, 0.5, 3))
    for m, member in enumerate(plans):
        cells = bootstrap_cells(tiny.counts, np.random.default_rng(member_seed(4, m)))
        warm = [
            p.potential[torch.as_tensor(c)] * (taus[m] / 5.0)
            for p, c in zip(full[:1], cells[:1], strict=True)
        ]
        alone = interval_plans(
            tiny,
            0.05,
            float(taus[m]),
            True,
            cells=cells,
            f_init=warm + [None],
            generator=gen,
            **options,
        )
        assert isinstance(member[1], MiniBatchPlan)
        assert torch.equal(member[1].row_sums, alone[1].row_sums)
        torch.testing.assert_close(member[0].cdf, alone[0].cdf, rtol=0, atol=1e-5)
