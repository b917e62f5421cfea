"""The Gaussian-mixture growth generator (data/gaussian.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vgfm_bayes.data import DataError, gaussian_mixture, gaussian_true_growth, load


def test_reference_structure_two_times():
    tc, labels = gaussian_mixture(dim=10, seed=0, return_labels=True)
    assert tc.counts.tolist() == [500, 1400]
    assert tc.times.tolist() == [0.0, 1.0]
    np.testing.assert_allclose(tc.masses, [1.0, 2.8])
    assert np.bincount(labels[0]).tolist() == [200, 200, 100]  # 400 in the branches at t0
    assert np.bincount(labels[1]).tolist() == [200, 200, 1000]
    x0, x1 = tc.x
    # branches start together at the origin and end at (-1, 0) and (1, 0)
    np.testing.assert_allclose(x0[labels[0] < 2, :2].mean(0), [0, 0], atol=0.02)
    np.testing.assert_allclose(x1[labels[1] == 0, :2].mean(0), [-1, 0], atol=0.02)
    np.testing.assert_allclose(x1[labels[1] == 1, :2].mean(0), [1, 0], atol=0.02)
    np.testing.assert_allclose(x1[labels[1] == 2, :2].mean(0), [0, 2.5], atol=0.02)
    # isotropic clusters with sd sqrt(0.005) in every coordinate
    resid = x1[labels[1] == 2] - x1[labels[1] == 2].mean(0)
    assert resid.std() == pytest.approx(math.sqrt(0.005), rel=0.03)


def test_many_times_and_equal_counts():
    tc, labels = gaussian_mixture(
        dim=3, times=[0, 1, 2, 3], cells_per_time=900, seed=1, return_labels=True
    )
    assert tc.counts.tolist() == [900] * 4
    s = np.array([0, 1, 2, 3]) / 3
    expected = 0.8 + 0.2 * 10**s
    np.testing.assert_allclose(tc.masses, expected / expected[0])
    share_top = [np.mean(lab == 2) for lab in labels]
    np.testing.assert_allclose(share_top, 0.2 * 10**s / expected, atol=2e-3)


def test_seeded_and_named():
    a, b = gaussian_mixture(dim=4, seed=3), gaussian_mixture(dim=4, seed=3)
    np.testing.assert_array_equal(a.x[1], b.x[1])
    assert not np.array_equal(a.x[1], gaussian_mixture(dim=4, seed=4).x[1])
    tc = load("gaussian_20d")
    assert tc.dim == 20 and tc.name == "gaussian_20d" and tc.counts.tolist() == [500, 1400]


def test_true_growth_and_errors():
    tc, labels = gaussian_mixture(dim=2, times=[0.0, 2.0], return_labels=True)
    g = gaussian_true_growth(tc.x[1], tc.times)
    np.testing.assert_allclose(g[labels[1] == 2], math.log(10) / 2)
    np.testing.assert_allclose(g[labels[1] < 2], 0.0)
    with pytest.raises(DataError, match="dim >= 2"):
        gaussian_mixture(dim=1)
    with pytest.raises(DataError, match="increasing"):
        gaussian_mixture(dim=2, times=[1.0, 0.0])
