"""Stage 1: load and validate time-course data (CSV, AnnData), bundled data sets."""

from .datasets import DATASETS, DatasetInfo, GrowthShape, growth_shape, is_bundled, load, reference
from .gaussian import gaussian_mixture, gaussian_true_growth
from .io import (
    anndata_times,
    from_anndata,
    open_h5ad,
    read_csv,
    read_h5ad,
    read_masses,
    rep_rows,
    resolve_rep,
)
from .scaling import Scaling
from .simulate import (
    SIMULATOR_KINDS,
    GroundTruth,
    simulate,
    simulate_populations,
    simulate_reweighting,
)
from .sources import as_timecourse, load_data
from .timecourse import DataError, TimeCourse
from .timelabels import label_number, read_time_map, time_values

__all__ = [
    "DATASETS",
    "SIMULATOR_KINDS",
    "DataError",
    "DatasetInfo",
    "GroundTruth",
    "GrowthShape",
    "Scaling",
    "TimeCourse",
    "anndata_times",
    "as_timecourse",
    "from_anndata",
    "gaussian_mixture",
    "gaussian_true_growth",
    "growth_shape",
    "is_bundled",
    "label_number",
    "load",
    "load_data",
    "open_h5ad",
    "read_csv",
    "read_h5ad",
    "read_masses",
    "read_time_map",
    "reference",
    "rep_rows",
    "resolve_rep",
    "simulate",
    "simulate_populations",
    "simulate_reweighting",
    "time_values",
]
