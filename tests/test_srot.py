import numpy as np
import ot
import pytest
import torch

from vgfm_bayes.ot import SROTError, interval_plans, sample_pairs, solve_srot, squared_cost
from vgfm_bayes.ot.targets import IntervalPlan


def _clouds(n=60, m=70, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)), rng.normal(size=(m, 2)) + 0.4


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")
@pytest.mark.parametrize("eps,tau", [(0.05, 1.0), (0.01, 5.0), (0.02, 0.5)])
def test_plan_matches_pot_where_pot_is_stable(eps, tau):
    x, y = _clouds()
    res = solve_srot(torch.tensor(x), torch.tensor(y), eps, tau, normalize_cost=True, gtol=1e-8)
    cost = ot.dist(x, y)
    cost /= cost.max()
    ref = ot.unbalanced.sinkhorn_unbalanced(
        np.ones(len(x)),
        np.ones(len(y)),
        cost,
        reg=eps,
        reg_m=(tau, np.inf),
        method="sinkhorn_translation_invariant",
        numItermax=100000,
        stopThr=1e-13,
    )
    np.testing.assert_allclose(res.plan.numpy(), ref, atol=1e-6)
    np.testing.assert_allclose(res.row_sums.numpy(), ref.sum(1), rtol=1e-5)


def test_hard_marginal_and_total_mass():
    x, y = _clouds()
    b = torch.full((len(y),), 1.3, dtype=torch.float64)
    res = solve_srot(torch.tensor(x), torch.tensor(y), 0.003, 10.0, b=b)
    np.testing.assert_allclose(res.plan.sum(0).numpy(), b.numpy(), rtol=1e-10)
    assert res.row_sums.sum().item() == pytest.approx(1.3 * len(y), rel=1e-10)


def test_single_target_closed_form():
    # With one target cell the optimality conditions give r_i = b softmax(-C_i / (eps + tau)).
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(25, 3)))
    y = torch.tensor(rng.normal(size=(1, 3)))
    eps, tau, b = 0.1, 2.0, 7.0
    res = solve_srot(x, y, eps, tau, b=torch.tensor([b]), gtol=1e-10)
    c = squared_cost(x, y)[:, 0]
    expected = b * torch.softmax(-c / (eps + tau), 0)
    np.testing.assert_allclose(res.row_sums.numpy(), expected.numpy(), rtol=1e-5)


def test_small_eps_unnormalised_cost_is_finite():
    # POT's scaling solvers return NaN here; the log-domain semi-dual must not.
    x, y = _clouds(120, 150)
    res = solve_srot(torch.tensor(x) * 3, torch.tensor(y) * 3, 0.003, 10.0)
    assert torch.isfinite(res.plan).all()
    assert res.row_residual < 1e-3


def test_unconverged_plan_is_rejected():
    x, y = _clouds()
    with pytest.raises(SROTError, match="did not converge"):
        solve_srot(torch.tensor(x), torch.tensor(y), 0.001, 10.0, max_evals=2)


def test_growth_targets_are_log_row_sums_over_dt(tiny):
    plans = interval_plans(tiny, eps=0.05, tau=1.0, normalize_cost=True)
    assert len(plans) == tiny.n_times - 1
    for k, p in enumerate(plans):
        assert p.dt == 1.0
        np.testing.assert_allclose(p.growth_targets.numpy(), np.log(p.row_sums.numpy()), rtol=1e-5)
        # counts as masses: b = 1 per target cell, so the source cells become m_k+1 cells
        assert p.row_sums.sum().item() == pytest.approx(tiny.counts[k + 1], rel=1e-8)
    # non-unit dt: targets scale with 1 / dt
    half = type(tiny)(tiny.times * 0.5, tiny.x, None, name="half")
    p2 = interval_plans(half, eps=0.05, tau=1.0, normalize_cost=True)[0]
    np.testing.assert_allclose(
        p2.growth_targets.numpy(), 2 * plans[0].growth_targets.numpy(), rtol=1e-5
    )


def test_interpolant_is_forward_from_source_to_target():
    x0 = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    x1 = torch.tensor([[1.0, 2.0], [11.0, 12.0]])
    plan = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    p = IntervalPlan(2.0, 4.0, x0, x1, row_sums=plan.sum(1), cdf=plan.reshape(-1).cumsum(0))
    b = sample_pairs([p], 200, sigma=0.0, generator=torch.Generator().manual_seed(0))
    s = (b.t - 2.0) / 2.0
    assert ((s >= 0) & (s <= 1)).all()
    second = b.x[:, 0] > 5
    assert 0.3 < second.float().mean() < 0.7  # both pairs drawn, about equally often
    src = torch.where((b.x[:, :1] > 5), x0[1], x0[0])
    dst = torch.where((b.x[:, :1] > 5), x1[1], x1[0])
    np.testing.assert_allclose(b.x.numpy(), (src + s[:, None] * (dst - src)).numpy(), atol=1e-5)
    np.testing.assert_allclose(b.u.numpy(), ((dst - src) / 2.0).numpy(), atol=1e-6)


def test_pairs_are_sampled_in_proportion_to_the_plan():
    plan = torch.tensor([[0.5, 0.1], [0.0, 1.4]], dtype=torch.float64)
    x0 = torch.tensor([[0.0], [1.0]])
    x1 = torch.tensor([[10.0], [20.0]])
    p = IntervalPlan(0.0, 1.0, x0, x1, row_sums=plan.sum(1), cdf=plan.reshape(-1).cumsum(0))
    b = sample_pairs([p], 40000, sigma=0.0, generator=torch.Generator().manual_seed(1))
    u = b.u[:, 0].numpy()
    freq = [np.mean(np.isclose(u, d)) for d in (10.0, 20.0, 19.0)]  # (0,0), (0,1), (1,1)
    np.testing.assert_allclose(freq, [0.25, 0.05, 0.70], atol=0.01)
    # the growth target follows the source cell: log(0.6) for cell 0, log(1.4) for cell 1
    g = b.gamma.numpy()
    np.testing.assert_allclose(np.unique(np.round(g, 5)), np.round(np.log([0.6, 1.4]), 5))


def test_warm_start_gives_the_cold_plan_with_fewer_evaluations():
    """A potential from a nearby problem (here: the same cells at another tau, rescaled) is a
    valid start: the plan matches the cold-started, eps-annealed one."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 2, generator=gen), torch.randn(80, 2, generator=gen) + 0.5
    cold = solve_srot(x, y, 0.05, 2.0)
    near = solve_srot(x, y, 0.05, 2.5)
    warm = solve_srot(x, y, 0.05, 2.0, f_init=near.f * (2.0 / 2.5))
    torch.testing.assert_close(warm.plan, cold.plan, rtol=0, atol=5e-5)  # both within gtol 1e-5
    assert warm.n_evals < cold.n_evals
    with pytest.raises(ValueError, match="f_init"):
        solve_srot(x, y, 0.05, 2.0, f_init=torch.zeros(3))


def test_coarse_start_gives_the_annealed_plan(monkeypatch):
    """Large problems start from a solve on a subsample, extended to every cell by the
    optimality conditions; the dual is strictly concave, so the plan must be the annealed one
    (here the subsample threshold is lowered so a small problem takes that path)."""
    import vgfm_bayes.ot.srot as srot

    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(300, 2, generator=gen), torch.randn(420, 2, generator=gen) + 0.5
    b = torch.full((420,), 1.7, dtype=torch.float64)
    annealed = solve_srot(x, y, 0.01, 3.0, normalize_cost=True, b=b, gtol=1e-8)
    calls = []
    anneal = srot._anneal
    monkeypatch.setattr(srot, "COARSE_CELLS", 64)
    monkeypatch.setattr(srot, "_anneal", lambda c, *a: calls.append(c.shape) or anneal(c, *a))
    coarse = solve_srot(x, y, 0.01, 3.0, normalize_cost=True, b=b, gtol=1e-8)
    assert calls == [(64, 64)]  # the eps ladder ran on the subsample only
    torch.testing.assert_close(coarse.plan, annealed.plan, rtol=0, atol=2e-6)
    torch.testing.assert_close(coarse.row_sums, annealed.row_sums, rtol=1e-5, atol=0)
    # the extended start itself is near the optimum: its row sums a exp(-f / tau) within 4%
    cost = squared_cost(x.double(), y.double())
    cost = cost / cost.max()
    zeros = torch.zeros(300, dtype=torch.float64)
    start, _ = srot._cold_start(cost, 0.01, 3.0, zeros, b.log())
    assert (start - annealed.f).abs().max().item() / 3.0 < 0.04
