from __future__ import annotations

import os

# figures in tests are files only; a user's MPLBACKEND is kept (the package never sets one)
os.environ.setdefault("MPLBACKEND", "Agg")

import pyro  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tests.tiny import TINY, make_tiny, write_csv  # noqa: E402


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


@pytest.fixture
def tiny():
    return make_tiny()


@pytest.fixture
def tiny_csv(tmp_path, tiny):
    return write_csv(tiny, tmp_path / "tiny.csv")


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    body = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in TINY.items())
    path.write_text(body + "\n")
    return path
