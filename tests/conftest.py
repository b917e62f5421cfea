from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from vgfm_bayes import TimeCourse

TINY = {
    "warmup_steps": 20,
    "joint_steps": 2,
    "velocity_hidden": [16, 16],
    "growth_hidden": [16, 16],
    "batch_size": 32,
    "joint_particles": 32,
    "joint_targets": 32,
}


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_and_clean():
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    torch.manual_seed(0)
    yield
    pyro.clear_param_store()


def make_tiny(seed: int = 0, counts=(30, 36, 45), dim: int = 2) -> TimeCourse:
    """Two drifting clusters, the second growing: a small time course with known direction."""
    rng = np.random.default_rng(seed)
    xs = []
    for k, n in enumerate(counts):
        n_grow = n // 2 + k * 3
        a = rng.normal(0.0, 0.1, (n - n_grow, dim)) + np.r_[0.5 * k, np.zeros(dim - 1)]
        b = rng.normal(0.0, 0.1, (n_grow, dim)) + np.r_[np.zeros(dim - 1), 1.0 + 0.5 * k]
        xs.append(np.vstack([a, b]))
    return TimeCourse(np.arange(len(counts), dtype=float), tuple(xs), None, name="tiny")


@pytest.fixture
def tiny() -> TimeCourse:
    return make_tiny()


@pytest.fixture
def tiny_csv(tmp_path, tiny):
    path = tmp_path / "tiny.csv"
    lines = ["samples,x1,x2"]
    for t, x in zip(tiny.times, tiny.x, strict=True):
        lines += [f"{t},{a},{b}" for a, b in x]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    body = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in TINY.items())
    path.write_text(body + "\n")
    return path
