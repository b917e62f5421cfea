"""Posterior summaries behind the figures: credible sign calls, direction spread."""

from __future__ import annotations

import numpy as np
import pytest

from vgfm_bayes.posterior import direction_spread, sign_calls


def test_sign_calls():
    lo = np.array([0.1, -0.5, -0.2, 0.0, 2.0])
    hi = np.array([0.4, -0.1, 0.3, 0.0, 2.0])
    assert list(sign_calls(lo, hi)) == [
        "proliferating",
        "dying",
        "undetermined",
        "undetermined",
        "proliferating",
    ]
    with pytest.raises(ValueError, match="one shape"):
        sign_calls(lo, hi[:2])
    with pytest.raises(ValueError, match="lower bound"):
        sign_calls(hi, lo)


def test_direction_spread():
    a = np.radians(30.0)
    v = np.array([[[np.cos(a), np.sin(a)]], [[2 * np.cos(a), -2 * np.sin(a)]]])  # (2, 1, 2)
    assert np.allclose(np.degrees(direction_spread(v)), 30.0)
    one = np.random.default_rng(0).normal(size=(1, 50, 3)).astype(np.float32)
    assert np.all(direction_spread(one) == 0.0)  # a single draw: exactly no spread
