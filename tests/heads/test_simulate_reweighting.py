"""The second ground-truth simulator kind: growth that only reweights cells inside one blob."""

from __future__ import annotations

import numpy as np
import pytest

from vgfm_bayes.data import DataError, simulate, simulate_populations, simulate_reweighting

TIMES = [0.0, 1.0, 2.0, 3.0]


def test_masses_and_counts_follow_the_truth():
    gt = simulate_reweighting(times=TIMES, n0=400, strength=0.4, seed=0)
    tau = np.asarray(TIMES)
    np.testing.assert_allclose(gt.masses, np.exp(0.5 * (0.4 * tau) ** 2))
    assert np.allclose(gt.data.counts, np.round(400 * gt.masses))
    assert np.allclose(gt.data.masses, gt.data.counts / gt.data.counts[0])
    assert gt.kind == "reweight" and gt.data.name == "reweighting_seed0"


def test_per_cell_truth_is_the_field_at_the_cells():
    gt = simulate_reweighting(times=TIMES, n0=100, dim=3, seed=2)
    for k, t in enumerate(gt.data.times):
        x = gt.data.x[k]
        assert gt.growth[k].shape == (len(x),) and gt.velocity[k].shape == x.shape
        np.testing.assert_array_equal(gt.growth[k], gt.growth_at(x, t))
        np.testing.assert_array_equal(gt.velocity[k], gt.velocity_at(x, t))
        assert np.all(gt.population[k] == 0)
    # growth varies inside the blob (both signs) and is linear across it
    g = gt.growth_at(np.array([[0.0, -0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.5, 9.0]]), 0.0)
    np.testing.assert_allclose(g, [-0.4, 0.0, 0.4])  # strength 0.4, spread 0.5


def test_fields_carry_the_first_snapshot_onto_the_later_ones():
    """Transport t_0 cells by the true v and reweight them by the true g (Euler): the weights
    sum to the true mass and the weighted cells match the observed snapshots' moments."""
    gt = simulate_reweighting(times=TIMES, n0=20_000, seed=1)
    x = gt.data.x[0].copy()
    log_w = np.zeros(len(x))
    dt, t = 0.01, 0.0
    for k in range(1, len(TIMES)):
        while t < TIMES[k] - 1e-9:
            log_w += dt * gt.growth_at(x, t)
            x += dt * gt.velocity_at(x, t)
            t += dt
        w = np.exp(log_w) / len(x)
        assert w.sum() == pytest.approx(gt.masses[k], rel=0.03)
        mean = (w[:, None] * x).sum(0) / w.sum()
        np.testing.assert_allclose(mean, gt.data.x[k].mean(0), atol=0.03)


def test_seeds_differ_and_repeat_and_kinds_are_selected_by_name():
    a, b = simulate_reweighting(seed=0), simulate_reweighting(seed=1)
    assert not np.array_equal(a.data.x[0], b.data.x[0])
    np.testing.assert_array_equal(simulate("reweight", seed=0).data.x[2], a.data.x[2])
    np.testing.assert_array_equal(
        simulate("separated", seed=3).data.x[1], simulate_populations(seed=3).data.x[1]
    )
    with pytest.raises(DataError, match="unknown simulator kind"):
        simulate("blobs")


def test_separated_kind_keeps_its_truth_through_the_fields():
    gt = simulate_populations(seed=0)
    assert gt.kind == "separated"
    for k, t in enumerate(gt.data.times):
        np.testing.assert_array_equal(gt.growth_at(gt.data.x[k], t), gt.growth[k])
