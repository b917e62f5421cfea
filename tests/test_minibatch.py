"""Mini-batch SROT (ot/minibatch.py): targets agree with the full plan, memory stays bounded."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vgfm_bayes.data import gaussian_mixture
from vgfm_bayes.infer import ConfigError, FitConfig
from vgfm_bayes.ot import (
    IntervalPlan,
    MiniBatchPlan,
    choose_srot_batch,
    interval_plans,
    minibatch_srot,
    sample_pairs,
    solve_srot,
)
from vgfm_bayes.ot import minibatch as mb

EPS, TAU = 0.01, 0.1  # tau small enough that row sums carry the growth on this data


@pytest.fixture(scope="module")
def mixture():
    """Data, labels, the full plan and a mini-batch plan (blocks of 100 sources, 2 repeats)."""
    tc, labels = gaussian_mixture(dim=2, n0=400, seed=0, return_labels=True)
    full = interval_plans(tc, EPS, TAU, True)[0]
    gen = torch.Generator().manual_seed(0)
    mini = interval_plans(tc, EPS, TAU, True, srot_batch=100, srot_repeats=2, generator=gen)[0]
    return tc, labels, full, mini


def test_choose_srot_batch():
    assert choose_srot_batch(1000, 1000, None, memory_mb=1e6) is None  # fits: full plan
    auto = choose_srot_batch(100_000, 120_000, None, memory_mb=2048)
    assert auto == mb.AUTO_BATCH
    tiny = choose_srot_batch(100_000, 100_000, None, memory_mb=1)
    assert 2 <= tiny < mb.AUTO_BATCH and mb.dense_bytes(tiny, tiny) <= 2**20
    assert choose_srot_batch(500, 600, 100, memory_mb=1e6) == 100  # explicit
    assert choose_srot_batch(500, 600, 500, memory_mb=1) is None  # explicit >= n: full
    with pytest.raises(ValueError):
        choose_srot_batch(500, 600, 1, memory_mb=1)


@pytest.mark.parametrize(
    "n, m, dim, shift",
    [(300, 200, 3, 1.0), (1, 40, 2, 0.0), (2000, 1500, 30, 0.5), (4000, 3000, 2, 3.0)],
)
def test_max_sq_distance_matches_dense(n, m, dim, shift):
    # the cluster-pair branch and bound must return the brute-force maximum, in low and high
    # dimension, with row chunks smaller than a cluster (chunk_bytes) and with a lone source
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    y = 0.5 * torch.randn(m, dim, generator=g, dtype=torch.float64) + shift
    dense = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist").square().max().item()
    assert mb.max_sq_distance(x, y) == pytest.approx(dense, rel=1e-12)
    assert mb.max_sq_distance(x, y, chunk_bytes=8 * 200 * 7) == pytest.approx(dense, rel=1e-12)


def test_max_sq_distance_of_a_single_point_is_zero():
    x = torch.ones(50, 2, dtype=torch.float64)
    assert mb.max_sq_distance(x, x) == 0.0


def test_growth_targets_agree_with_full_plan(mixture):
    tc, labels, full, mini = mixture
    top = labels[0] == 2
    assert isinstance(full, IntervalPlan) and isinstance(mini, MiniBatchPlan)
    gf, gm = full.growth_targets.numpy(), mini.growth_targets.numpy()
    # the full plan recovers the truth (log 10 in the growing cluster, 0 in the branches) ...
    assert gf[top].mean() == pytest.approx(math.log(10), abs=0.05)
    assert gf[~top].mean() == pytest.approx(0.0, abs=0.05)
    # ... and the mini-batch targets agree with it per cluster
    assert gm[top].mean() == pytest.approx(gf[top].mean(), abs=0.05)
    assert gm[~top].mean() == pytest.approx(gf[~top].mean(), abs=0.05)
    # rescaled to the full masses: total row mass = n * M1 / M0 exactly (hard target marginal)
    assert mini.row_sums.sum().item() == pytest.approx(400 * tc.masses[1], rel=1e-6)


def test_pairs_agree_with_full_plan(mixture):
    tc, labels, full, mini = mixture
    stats = []
    for plan in (full, mini):
        i, j = plan.sample_indices(20_000, torch.Generator().manual_seed(2))
        src = labels[0][i.numpy()]
        dst = labels[1][j.numpy()]
        u = (plan.x1[j] - plan.x0[i]).numpy()
        stats.append(
            (
                np.mean(src == 2),  # share of pairs starting in the growing cluster
                np.mean((src == 2) == (dst == 2)),  # pairs staying in their population
                np.abs(u[src < 2, 0]).mean(),  # branch displacement, 1 in truth
            )
        )
    np.testing.assert_allclose(stats[1], stats[0], atol=0.03)
    assert stats[1][1] > 0.97 and stats[1][2] == pytest.approx(1.0, abs=0.1)


def test_sampling_law_is_the_block_plan():
    """Pairs follow pi_ij / sum(pi) of the block plans exactly (checked by re-solving them)."""
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(6, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(8, 2, generator=g, dtype=torch.float64) * 0.7 + 0.3
    plan = minibatch_srot(x0, x1, 0.5, 1.0, 1.5, 3, generator=torch.Generator().manual_seed(0))
    expected = np.zeros((6, 8))
    for b in range(plan.block_targets.shape[1]):
        si = (plan.block_of[0] == b).nonzero().squeeze(1)
        tj = plan.block_targets[0, b, : plan.block_size[0, b]]
        mass = torch.full((len(tj),), len(si) * 1.5 / len(tj), dtype=torch.float64)
        res = solve_srot(x0[si], x1[tj], 0.5, 1.0, b=mass)
        expected[np.ix_(si.numpy(), tj.numpy())] = res.plan.numpy()
    expected /= expected.sum()
    i, j = plan.sample_indices(400_000, torch.Generator().manual_seed(1))
    freq = np.zeros((6, 8))
    np.add.at(freq, (i.numpy(), j.numpy()), 1.0)
    freq /= freq.sum()
    assert np.abs(freq - expected).max() < 0.004
    assert expected.max() > 0.02  # the check above is not vacuous


def test_memory_stays_bounded(monkeypatch):
    """Every SROT solve is one small block, and the plan keeps O(n + m) numbers, not n x m."""
    shapes = []
    real = mb.solve_srot

    def spy(x, y, *a, **kw):
        shapes.append((x.shape[0], y.shape[0]))
        return real(x, y, *a, **kw)

    monkeypatch.setattr(mb, "solve_srot", spy)
    tc = gaussian_mixture(dim=2, times=[0, 1], cells_per_time=1500, seed=2)
    plans = interval_plans(tc, 0.05, TAU, True, memory_mb=2.0)  # 1500 x 1500 needs ~100 MB
    plan = plans[0]
    assert isinstance(plan, MiniBatchPlan)
    assert max(s[0] for s in shapes) <= plan.batch and len(shapes) >= 1500 // plan.batch
    assert max(mb.dense_bytes(*s) for s in shapes) <= 2.0 * 2**20
    stored = sum(t.numel() for t in vars(plan).values() if isinstance(t, torch.Tensor))
    assert stored < 12 * (1500 + 1500)  # versus 2,250,000 entries for the dense plan
    batch = sample_pairs(plans, 64, 0.1, torch.Generator().manual_seed(0))
    assert batch.x.shape == (64, 2) and torch.isfinite(batch.gamma).all()


def test_config_keys():
    c = FitConfig(srot_batch=512, srot_repeats=2, srot_memory_mb=100.0, fit_w1="sinkhorn")
    c.validate()
    for bad in ({"srot_batch": 1}, {"srot_repeats": 0}, {"fit_w1": "l2"}):
        with pytest.raises(ConfigError):
            FitConfig(**bad).validate()


def test_warm_started_blocks_equal_cold_solves(monkeypatch):
    """Every block after the first starts from the previous block's g (through the optimality
    conditions, ot.srot.source_potential); its row sums must be the cold solve's, to the
    solver's tolerance, and the warm starts must save dual evaluations. (A warm start whose
    plan fails the checks is re-solved cold; it does not happen here.)"""
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(1200, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(1300, 2, generator=g, dtype=torch.float64) * 0.8 + 0.4
    evals, warm = [], []  # of the solves that passed their checks
    solve = mb.solve_srot

    def counting(*args, f_init=None, **kwargs):
        res = solve(*args, f_init=f_init, **kwargs)
        evals.append(res.n_evals)
        warm.append(f_init is not None)
        return res

    monkeypatch.setattr(mb, "solve_srot", counting)
    plan = minibatch_srot(x0, x1, 0.05, 1.0, 1.4, 300, generator=torch.Generator().manual_seed(0))
    assert warm == [False, True, True, True]  # 4 blocks: the first cold, the others warm
    cold_evals = 0
    for b in range(plan.block_targets.shape[1]):
        si = (plan.block_of[0] == b).nonzero().squeeze(1)
        tj = plan.block_targets[0, b, : plan.block_size[0, b]]
        mass = torch.full((len(tj),), len(si) * 1.4 / len(tj), dtype=torch.float64)
        cold = solve(x0[si], x1[tj], 0.05, 1.0, b=mass)
        torch.testing.assert_close(
            plan.row_sums[si], cold.row_sums, rtol=1e-4, atol=2e-5
        )  # gtol 1e-5 each
        cold_evals += cold.n_evals
    assert sum(evals) < 0.85 * cold_evals
