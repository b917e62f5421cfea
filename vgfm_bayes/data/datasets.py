"""Bundled benchmark data sets with the SROT settings the VGFM authors used for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

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


def load(name: str) -> TimeCourse:
    """Load a bundled data set: one of ``DATASETS`` ("simulation_gene", "dyngen", ...)."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; bundled: {', '.join(DATASETS)}")
    info = DATASETS[name]
    with resources.as_file(resources.files(__package__) / "files" / info.file) as path:
        tc = read_csv(path)
    return TimeCourse(tc.times, tc.x, tc.masses, tc.var_names, name=name)
