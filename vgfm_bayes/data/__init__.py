"""Stage 1: load and validate time-course data (CSV, AnnData), bundled data sets."""

from .datasets import DATASETS, DatasetInfo, is_bundled, load, reference
from .gaussian import gaussian_mixture, gaussian_true_growth
from .io import from_anndata, load_data, read_csv, read_h5ad, read_masses
from .scaling import Scaling
from .simulate import (
    SIMULATOR_KINDS,
    GroundTruth,
    simulate,
    simulate_populations,
    simulate_reweighting,
)
from .timecourse import DataError, TimeCourse

__all__ = [
    "DATASETS",
    "SIMULATOR_KINDS",
    "DataError",
    "DatasetInfo",
    "GroundTruth",
    "Scaling",
    "TimeCourse",
    "from_anndata",
    "gaussian_mixture",
    "gaussian_true_growth",
    "is_bundled",
    "load",
    "load_data",
    "read_csv",
    "read_h5ad",
    "read_masses",
    "reference",
    "simulate",
    "simulate_populations",
    "simulate_reweighting",
]
