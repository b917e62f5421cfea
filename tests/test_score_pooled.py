"""metrics.score: per-draw and pooled W1 of a posterior predictive, mass interval half-width."""

import numpy as np
import pytest

from vgfm_bayes.data import TimeCourse
from vgfm_bayes.metrics import score
from vgfm_bayes.ot import solve_in_threads, w1_exact, w1_exact_many
from vgfm_bayes.posterior import Trajectories


def _traj(x_t1: np.ndarray, log_w_t1: np.ndarray | None = None) -> Trajectories:
    """Draws (S, N, D) at t = 1 from a common start at t = 0."""
    s, n, d = x_t1.shape
    x = np.stack([np.zeros((s, n, d)), x_t1], axis=1)
    log_w = np.full((s, 2, n), -np.log(n))
    if log_w_t1 is not None:
        log_w[:, 1] = log_w_t1
    return Trajectories(np.array([0.0, 1.0]), x, log_w)


def _data(y: np.ndarray, n0: int) -> TimeCourse:
    return TimeCourse(np.array([0.0, 1.0]), (np.zeros((n0, y.shape[1])), y), None)


def test_identical_draws_pooled_equals_per_draw_equals_one_draw():
    rng = np.random.default_rng(0)
    one, y = rng.normal(size=(30, 2)), rng.normal(size=(40, 2)) + 0.3
    out = score(_traj(np.stack([one] * 4)), _data(y, 30))
    single = w1_exact(one, np.ones(30), y)
    assert out["w1_per_draw"] == pytest.approx([single])
    assert out["w1_pooled"] == pytest.approx([single])
    assert out["w1"] == out["w1_per_draw"] and out["w1_pooled_particles"] == [30]


def test_two_draws_shifted_symmetrically_pool_to_the_truth():
    """Cells half at -1, half at +1; draw A puts all mass at -1, draw B at +1: each draw moves
    half its mass by 2 (W1 = 1), the pooled predictive is the observed law (W1 = 0)."""
    y = np.array([[-1.0], [1.0]] * 10)
    draws = np.stack([np.full((10, 1), -1.0), np.full((10, 1), 1.0)])
    out = score(_traj(draws), _data(y, 10))
    assert out["w1_per_draw"] == pytest.approx([1.0])
    assert out["w1_pooled"] == pytest.approx([0.0], abs=1e-12)
    assert out["w1_pooled_mean"] < out["w1_per_draw_mean"]


def test_pooled_never_exceeds_per_draw_and_uses_each_draws_weights():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 25, 2)), rng.normal(size=(35, 2))
    log_w = rng.normal(size=(5, 25))
    out = score(_traj(x, log_w), _data(y, 25))
    assert out["w1_pooled"][0] <= out["w1_per_draw"][0] + 1e-12
    assert out["w1_pooled_particles"] == [25]  # every particle of every draw
    w = np.concatenate([np.exp(lw) / np.exp(lw).sum() for lw in log_w]) / 5
    assert out["w1_pooled"][0] == pytest.approx(w1_exact(x.reshape(-1, 2), w, y))
    # beyond the budget every draw gives an equal random subset: 50 particles in all
    few = score(_traj(x, log_w), _data(y, 25), pooled_max_pairs=50 * 35)
    assert few["w1_pooled_particles"] == [10]
    assert few["w1_pooled"][0] <= few["w1_per_draw"][0]
    # at least one draw's worth of particles, whatever the budget
    assert score(_traj(x, log_w), _data(y, 25), pooled_max_pairs=1)["w1_pooled_particles"] == [5]


def test_mass_half_width_relative_to_the_observed_mass():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 10, 1))
    log_w = np.log(np.linspace(0.5, 1.5, 50))[:, None] + np.full((50, 10), -np.log(10))
    y = rng.normal(size=(20, 1))
    out = score(_traj(x, log_w), _data(y, 10), held_out=1)  # observed mass 2.0
    lo, hi = out["mass_q05"][0], out["mass_q95"][0]
    assert out["mass_observed"] == [2.0]
    assert out["mass_halfwidth_rel"] == pytest.approx([(hi - lo) / 4])
    assert out["mass_halfwidth_rel_held_out"] == out["mass_halfwidth_rel"][0]
    assert out["w1_pooled_held_out"] == out["w1_pooled"][0]


def test_exact_emds_in_threads_are_the_sequential_ones_in_order():
    rng = np.random.default_rng(3)
    problems = [
        (rng.normal(size=(20 + i, 2)), rng.random(20 + i), rng.normal(size=(25, 2)) + i)
        for i in range(7)
    ]
    assert w1_exact_many(problems) == [w1_exact(*p) for p in problems]
    assert solve_in_threads(lambda i: i * i, range(9)) == [i * i for i in range(9)]
    assert w1_exact_many([]) == []


def test_score_per_draw_w1_is_each_draws_exact_w1_at_every_time():
    rng = np.random.default_rng(4)
    s, n = 5, 30
    x = rng.normal(size=(s, 3, n, 2))
    x[:, 0] = 0.0
    log_w = np.full((s, 3, n), -np.log(n))
    traj = Trajectories(np.array([0.0, 1.0, 2.0]), x, log_w)
    ys = (np.zeros((n, 2)), rng.normal(size=(40, 2)), rng.normal(size=(35, 2)) + 1)
    out = score(traj, TimeCourse(np.array([0.0, 1.0, 2.0]), ys, None))
    expected = [[w1_exact(x[d, k], np.ones(n), ys[k]) for k in (1, 2)] for d in range(s)]
    np.testing.assert_allclose(out["w1"], np.mean(expected, axis=0), rtol=0, atol=0)
