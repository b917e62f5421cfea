"""The ground-truth simulator and the calibration metrics."""

from __future__ import annotations

import numpy as np
import pytest

from vgfm_bayes.data import simulate_populations
from vgfm_bayes.metrics import (
    crps,
    growth_calibration,
    interval_coverage,
    mass_interval_covers,
    spearman,
)
from vgfm_bayes.posterior import mass_interval, summarise


def test_simulator_truth():
    gt = simulate_populations(n_populations=3, times=[0.0, 1.0, 2.0], n0=300, seed=1)
    d = gt.data
    assert d.n_times == 3 and d.dim == 2
    # counts follow the exact total mass M(t) = mean_p exp(g_p t)
    exact = np.exp(np.outer([0.0, 1.0, 2.0], gt.rates)).mean(1)
    assert np.allclose(gt.masses, exact)
    assert np.allclose(d.counts, np.round(300 * exact))
    assert np.allclose(d.masses, d.counts / d.counts[0])
    for k in range(3):
        assert gt.growth[k].shape == (d.counts[k],)
        assert np.array_equal(gt.growth[k], gt.rates[gt.population[k]])
        # the blobs are well separated: g(x, t) recovered from positions alone
        assert np.mean(gt.growth_at(d.x[k], d.times[k]) == gt.growth[k]) > 0.99
        assert np.allclose(gt.velocity_at(d.x[k], d.times[k])[:5], gt.velocity[k][:5])
    # populations are sampled in proportion to their weights: the fastest grows in share
    share = [np.mean(p == 2) for p in gt.population]
    assert share[0] < share[1] < share[2]
    # seeded
    again = simulate_populations(n_populations=3, times=[0.0, 1.0, 2.0], n0=300, seed=1)
    assert np.array_equal(again.data.x[2], d.x[2])


def test_coverage_and_crps_against_closed_forms():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=2000)
    draws = rng.normal(size=(400, 2000))  # calibrated: truth and draws share N(0, 1)
    assert interval_coverage(draws, truth, 0.9) == pytest.approx(0.9, abs=0.03)
    assert interval_coverage(draws * 0.2, truth, 0.9) < 0.3  # overconfident
    # CRPS of N(0, 1) at y: y (2 Phi(y) - 1) + 2 phi(y) - 1 / sqrt(pi); at y = 0 that is 0.2337
    at_zero = crps(rng.normal(size=(4000, 1)), np.zeros(1))
    assert at_zero[0] == pytest.approx(2 / np.sqrt(2 * np.pi) - 1 / np.sqrt(np.pi), abs=0.02)
    point = crps(np.array([[1.0, 2.0]]), np.array([0.0, 0.5]))
    assert np.allclose(point, [1.0, 1.5])  # one draw: absolute error


def test_spearman_and_mass_cover():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 2], [1, 2, 3, 4]) == pytest.approx(0.8944, abs=1e-3)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert mass_interval_covers(np.linspace(1.0, 2.0, 101), 1.5)
    assert not mass_interval_covers(np.linspace(1.0, 2.0, 101), 1.99)
    out = growth_calibration(np.random.default_rng(0).normal(size=(50, 30)), np.zeros(30))
    assert set(out) == {"coverage", "crps", "spearman", "mean_width", "rmse"}


def test_member_interval_covers_a_new_member_at_its_level():
    """Closed form: for K Gaussian members the Student-t prediction interval covers one more
    member with probability exactly `level`; the members' empirical quantiles fall short."""
    rng = np.random.default_rng(0)
    members, new = rng.normal(size=(10, 40_000)), rng.normal(size=40_000)
    assert interval_coverage(members, new, 0.9, is_ensemble=True) == pytest.approx(0.9, abs=0.006)
    assert interval_coverage(members, new, 0.9) < 0.8  # quantiles of 10 draws: ~0.75
    s = summarise(members[:, :3], is_ensemble=True)
    np.testing.assert_allclose(s["q50"], members[:, :3].mean(0))
    assert np.all(s["q05"] < s["q50"]) and np.all(s["q50"] < s["q95"])
    # P(> 0) of a member predictive centred at 0 is 1/2; sd 0 gives the sign
    centred = np.array([[-1.0, 2.0], [1.0, 2.0]])
    np.testing.assert_allclose(summarise(centred, is_ensemble=True)["p_positive"], [0.5, 1.0])
    with pytest.raises(ValueError, match="at least 2 members"):
        summarise(members[:1], is_ensemble=True)


def _mixture(rng, k, per, n, between=1.0, within=0.3):
    """k components (means ~ N(0, between^2)) with ``per`` draws each (N(mean, within^2)), and
    one draw of a new component, for n quantities."""
    means = between * rng.normal(size=(k, 1, n))
    draws = (means + within * rng.normal(size=(k, per, n))).reshape(k * per, n)
    new = between * rng.normal(size=n) + within * rng.normal(size=n)
    return draws, new


def test_group_interval_covers_a_new_component_at_its_level():
    """A posterior mixed over K finite components (last_layer's bootstrap components): the
    prediction interval for one more component covers a draw of a new one at about its level
    (Welch-Satterthwaite degrees of freedom); the draws' empirical quantiles, which treat the
    K components as the whole posterior, fall short."""
    rng = np.random.default_rng(1)
    draws, new = _mixture(rng, k=10, per=10, n=40_000)
    groups = (10,) * 10
    got = interval_coverage(draws, new, 0.9, groups=groups)
    assert 0.89 <= got <= 0.915, got
    assert interval_coverage(draws, new, 0.9) < 0.85  # ~0.83: over-confident
    # a large within part: still about the level (then nearly Normal, many degrees of freedom)
    draws, new = _mixture(rng, k=10, per=10, n=40_000, between=0.3, within=1.0)
    assert 0.89 <= interval_coverage(draws, new, 0.9, groups=groups) <= 0.925


def test_group_interval_reduces_to_members_and_checks_its_groups():
    rng = np.random.default_rng(2)
    members = rng.normal(size=(6, 50))
    one_each = summarise(members, groups=(1,) * 6)
    as_members = summarise(members, is_ensemble=True)
    for key in ("q05", "q50", "q95", "p_positive"):
        np.testing.assert_array_equal(one_each[key], as_members[key])
    # empty groups (components that got no draw) are skipped
    draws, _ = _mixture(rng, k=3, per=4, n=20)
    a = summarise(draws, groups=(4, 0, 4, 4))
    b = summarise(draws, groups=(4, 4, 4))
    np.testing.assert_allclose(a["q95"], b["q95"])
    # location: the mean of the component means; the interval widens with the between spread
    np.testing.assert_allclose(b["q50"], draws.reshape(3, 4, 20).mean((0, 1)))
    with pytest.raises(ValueError, match="summing to the 12 draws"):
        summarise(draws, groups=(4, 4))
    with pytest.raises(ValueError, match="at least 2 non-empty groups"):
        summarise(draws, groups=(12, 0))
    # mass intervals: the same rule on log mass, with and without the observation noise
    mass = np.exp(draws[:, :3] / 10)
    lo, hi = mass_interval(mass, 0.9, groups=(4, 4, 4))
    lo_q, hi_q = mass_interval(mass, 0.9)
    assert np.all(lo < lo_q) and np.all(hi > hi_q)
    lo_n, hi_n = mass_interval(mass, 0.9, noise_sd=0.2, groups=(4, 4, 4))
    assert np.all(lo_n < lo) and np.all(hi_n > hi)
