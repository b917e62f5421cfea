"""Bundled benchmark data sets with the SROT settings the VGFM authors used for them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

from .gaussian import gaussian_mixture
from .io import read_csv
from .timecourse import DataError, TimeCourse


@dataclass(frozen=True)
class DatasetInfo:
    file: str
    description: str
    ot: dict = field(default_factory=dict)  # SROT settings: eps, tau, normalize_cost
    reference: dict = field(default_factory=dict)  # published VGFM mean W1 / RME (DESIGN 5)


DATASETS: dict[str, DatasetInfo] = {
    "simulation_gene": DatasetInfo(
        "simulation_gene_data.csv",
        "2-D gene-regulatory simulation with proliferation and death; 5 time points, 3,031 cells",
        ot={"eps": 0.003, "tau": 10.0, "normalize_cost": False},
        reference={"w1": 0.046, "rme": 0.006},
    ),
    "dyngen": DatasetInfo(
        "dygen.csv",
        "5-D Dyngen simulation; 5 time points, 728 cells",
        ot={"eps": 0.03, "tau": 5.0, "normalize_cost": False},
        reference={"w1": 0.420, "rme": 0.053},
    ),
    "mouse_hematopoiesis": DatasetInfo(
        "mouse_hematopoiesis.csv",
        "2-D embedding of Weinreb et al. lineage-traced hematopoiesis; 3 time points, 10,998 cells",
        ot={"eps": 0.03, "tau": 10.0, "normalize_cost": False},
        reference={"w1": 0.106, "rme": 0.046},
    ),
}


# Generated (not shipped) data sets: "gaussian_<D>d" for any D >= 2 is the Gaussian-mixture growth
# benchmark (data/gaussian.py, seed 0, n = 500 / 1,400), the same kind as the DeepRUOT files.
GAUSSIAN_PATTERN = re.compile(r"gaussian_(\d+)d")
GENERATED_REFERENCE: dict[str, dict] = {
    "gaussian_1000d": {"w1": 3.010, "rme": 0.037},  # VGFM paper (DESIGN 5)
}


def load(name: str) -> TimeCourse:
    """Load a bundled data set: one of ``DATASETS`` ("simulation_gene", "dyngen", ...), or a
    generated one: ``"gaussian_<D>d"`` (e.g. "gaussian_1000d", the VGFM paper's 1000-D case)."""
    match = GAUSSIAN_PATTERN.fullmatch(name)
    if match:
        return gaussian_mixture(dim=int(match.group(1)), seed=0)
    if name not in DATASETS:
        raise DataError(
            f"unknown data set {name!r}; bundled: {', '.join(DATASETS)}; generated: "
            "gaussian_<D>d (any D >= 2)"
        )
    info = DATASETS[name]
    with resources.as_file(resources.files(__package__) / "files" / info.file) as path:
        tc = read_csv(path)
    return TimeCourse(tc.times, tc.x, tc.masses, tc.var_names, name=name)
