"""Tiny data and configs shared by the tests (import as ``from tests.tiny import ...``)."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np

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

# the heads' tests train a little longer so that posterior spreads settle
HEADS_TINY = {**TINY, "warmup_steps": 30}


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


def load_script(name: str) -> ModuleType:
    """A script of benchmarks/ (not a package) imported as a module, e.g. "write_cards"."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_csv(tc: TimeCourse, path):
    """Write a 2-D time course as the benchmark CSV format (samples,x1,x2); returns path."""
    rows = ["samples,x1,x2"]
    rows += [f"{t},{a},{b}" for t, x in zip(tc.times, tc.x, strict=True) for a, b in x]
    path.write_text("\n".join(rows) + "\n")
    return path


def guide_state(model) -> dict:
    """A fitted model's guide weights, detached copies (to compare fits bitwise)."""
    return {k: v.detach().clone() for k, v in model.guide.state_dict().items()}


@contextlib.contextmanager
def kept_checkpoints() -> Iterator[list[bytes]]:
    """Every checkpoint fits write inside the block, as bytes, in order."""
    from vgfm_bayes.infer import trainer

    snapshots: list[bytes] = []
    real = trainer.save_checkpoint

    def keep(path, state):
        real(path, state)
        snapshots.append(path.read_bytes())

    trainer.save_checkpoint = keep
    try:
        yield snapshots
    finally:
        trainer.save_checkpoint = real


def crashed_run(full: Path, checkpoint: bytes, run: Path) -> Path:
    """A run folder as a crash would leave it: ``full``'s inputs and one of its checkpoints."""
    run.mkdir()
    for name in ("fit.json", "data.npz"):
        shutil.copy(full / name, run / name)
    (run / "checkpoint.pt").write_bytes(checkpoint)
    return run
