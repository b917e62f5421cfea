"""Bundled benchmark data sets with the SROT settings the VGFM authors used for them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from .gaussian import gaussian_mixture
from .io import read_csv
from .timecourse import DataError, TimeCourse


@dataclass(frozen=True)
class DatasetInfo:
    file: str
    description: str
    ot: dict = field(default_factory=dict)  # SROT settings: eps, tau, normalize_cost
    # published VGFM numbers (DESIGN 5, data/SOURCES.txt): mean "w1" / "rme" over the evaluated
    # time points and, where the authors' logs give them, "w1_per_time" / "rme_per_time"
    reference: dict = field(default_factory=dict)


# The package's generic SROT settings (infer/settings.py uses them for data without any): the
# VGFM authors state none for the Gaussian-mixture files, so those get exactly these.
GENERIC_OT = {"eps": 0.01, "tau": 5.0, "normalize_cost": True}


def _gaussian_file(dim: int) -> DatasetInfo:
    return DatasetInfo(
        f"gaussian_{dim}d.csv.gz",
        f"{dim}-D Gaussian-mixture growth benchmark (DeepRUOT repository, shipped gzip'd, "
        "byte-identical once decompressed); 2 time points, 1,900 cells (500 / 1,400). SROT: "
        "the package's generic settings (eps 0.01 on the max-normalised cost, tau 5); the VGFM "
        "authors state none for these files",
        ot=dict(GENERIC_OT),
    )


DATASETS: dict[str, DatasetInfo] = {
    "simulation_gene": DatasetInfo(
        "simulation_gene_data.csv",
        "2-D gene-regulatory simulation with proliferation and death; 5 time points, 3,031 cells",
        ot={"eps": 0.003, "tau": 10.0, "normalize_cost": False},
        reference={
            "w1": 0.046,
            "rme": 0.006,
            "w1_per_time": [0.0459, 0.0568, 0.0444, 0.0463],
            "rme_per_time": [0.0059, 0.0067, 0.0083, 0.0137],
        },
    ),
    "dyngen": DatasetInfo(
        "dygen.csv",
        "5-D Dyngen simulation; 5 time points, 728 cells",
        ot={"eps": 0.03, "tau": 5.0, "normalize_cost": False},
        reference={
            "w1": 0.420,
            "rme": 0.053,
            "w1_per_time": [0.2925, 0.3622, 0.6528, 0.4889],
            "rme_per_time": [0.036, 0.049, 0.062, 0.023],
        },
    ),
    "mouse_hematopoiesis": DatasetInfo(
        "mouse_hematopoiesis.csv",
        "2-D embedding of Weinreb et al. lineage-traced hematopoiesis; 3 time points, 10,998 cells",
        ot={"eps": 0.03, "tau": 10.0, "normalize_cost": False},
        reference={
            "w1": 0.106,
            "rme": 0.046,
            "w1_per_time": [0.1052, 0.1066],
            "rme_per_time": [0.0555, 0.037],
        },
    ),
    **{f"gaussian_{d}d": _gaussian_file(d) for d in (10, 20, 50, 100)},
}


# Generated data sets: "gaussian_<D>d" for any other D >= 2 is the Gaussian-mixture growth
# benchmark (data/gaussian.py, seed 0, n = 500 / 1,400), the same kind as the shipped files.
GAUSSIAN_PATTERN = re.compile(r"gaussian_(\d+)d")
GENERATED_REFERENCE: dict[str, dict] = {
    "gaussian_1000d": {"w1": 3.010, "rme": 0.037},  # VGFM paper (DESIGN 5)
}


@dataclass(frozen=True)
class GrowthShape:
    """A data set's true growth rate, known up to an affine map: scored by the Pearson
    correlation of the learned growth with ``shape(x)`` at the observed cells."""

    formula: str
    shape: Callable[[np.ndarray], np.ndarray]


# The gene simulation's growth is proportional to x2^2 / (1 + x2^2) (DESIGN 5; WFR-FM reports
# its learned growth's correlation with it).
GROWTH_SHAPES: dict[str, GrowthShape] = {
    "simulation_gene": GrowthShape(
        "x2^2 / (1 + x2^2)", lambda x: x[:, 1] ** 2 / (1 + x[:, 1] ** 2)
    ),
}


def growth_shape(name: str) -> GrowthShape | None:
    """The known growth shape of a bundled data set, by its name or by its shipped file's name
    (the same data given as a file, e.g. "simulation_gene_data"), else None."""
    for key, info in DATASETS.items():
        if name in (key, info.file.split(".")[0]) and key in GROWTH_SHAPES:
            return GROWTH_SHAPES[key]
    return None


def reference(name: str) -> dict:
    """Published VGFM numbers for a data set name ({} where there are none)."""
    return DATASETS[name].reference if name in DATASETS else GENERATED_REFERENCE.get(name, {})


def is_bundled(name: str) -> bool:
    """Whether :func:`load` knows ``name`` (shipped, or generated "gaussian_<D>d")."""
    return name in DATASETS or GAUSSIAN_PATTERN.fullmatch(name) is not None


def load(name: str) -> TimeCourse:
    """Load a bundled data set: one of ``DATASETS`` ("simulation_gene", "dyngen",
    "gaussian_10d", ...), or a generated one: ``"gaussian_<D>d"`` for a D not shipped (e.g.
    "gaussian_1000d", the VGFM paper's 1000-D case)."""
    match = GAUSSIAN_PATTERN.fullmatch(name)
    if match and name not in DATASETS:
        return gaussian_mixture(dim=int(match.group(1)), seed=0)
    if name not in DATASETS:
        raise DataError(
            f"unknown data set {name!r}; bundled: {', '.join(DATASETS)}; generated: "
            "gaussian_<D>d (any other D >= 2)"
        )
    info = DATASETS[name]
    with resources.as_file(resources.files(__package__) / "files" / info.file) as path:
        tc = read_csv(path)
    return TimeCourse(tc.times, tc.x, tc.masses, tc.var_names, name=name)
