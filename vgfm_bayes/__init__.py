"""vgfm-bayes: uncertainty-aware single-cell dynamics with Bayesian joint velocity-growth flow
matching (VGFM).

Stages, each a sub-package, data flowing one way:
data -> ot -> nn -> model -> infer -> posterior -> metrics -> plotting -> cli.
"""

from . import datasets, pl, zoo
from .data import DataError, TimeCourse, from_anndata, load_data
from .estimator import VGFM, RunError
from .infer import ConfigError, FitConfig

__version__ = "0.1.0"

__all__ = [
    "VGFM",
    "ConfigError",
    "DataError",
    "FitConfig",
    "RunError",
    "TimeCourse",
    "__version__",
    "datasets",
    "pl",
    "zoo",
    "from_anndata",
    "load_data",
]
