"""Fixtures for the heads' tests: seeding, a clean param store, tiny data and configs."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from vgfm_bayes import TimeCourse

TINY = {
    "warmup_steps": 30,
    "joint_steps": 2,
    "velocity_hidden": [16, 16],
    "growth_hidden": [16, 16],
    "batch_size": 32,
    "joint_particles": 32,
    "joint_targets": 32,
}


@pytest.fixture(autouse=True)
def _seed_and_clean_heads():
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    torch.manual_seed(0)
    yield
    pyro.clear_param_store()


def make_small(seed: int = 0, counts=(30, 36, 45), dim: int = 2) -> TimeCourse:
    """Two drifting clusters, the second growing."""
    rng = np.random.default_rng(seed)
    xs = []
    for k, n in enumerate(counts):
        n_grow = n // 2 + k * 3
        a = rng.normal(0.0, 0.1, (n - n_grow, dim)) + np.r_[0.5 * k, np.zeros(dim - 1)]
        b = rng.normal(0.0, 0.1, (n_grow, dim)) + np.r_[np.zeros(dim - 1), 1.0 + 0.5 * k]
        xs.append(np.vstack([a, b]))
    return TimeCourse(np.arange(len(counts), dtype=float), tuple(xs), None, name="small")


@pytest.fixture
def small() -> TimeCourse:
    return make_small()
