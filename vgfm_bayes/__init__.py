"""vgfm-bayes: uncertainty-aware single-cell dynamics with Bayesian joint velocity-growth flow
matching (VGFM).

Stages, each a sub-package, data flowing one way:
data -> ot -> nn -> model -> infer -> posterior -> metrics -> plotting -> cli.

The public names are imported on first use (PEP 562), so that `vgfm-bayes --help` and
`import vgfm_bayes` do not pay for torch, Pyro and POT until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the submodule that defines it
_NAMES = {
    "VGFM": "estimator",
    "RunError": "estimator",
    "DataError": "data",
    "TimeCourse": "data",
    "from_anndata": "data",
    "load_data": "data",
    "ConfigError": "infer",
    "FitConfig": "infer",
}
_SUBMODULES = ("datasets", "pl", "zoo")

__all__ = [
    "VGFM",
    "ConfigError",
    "DataError",
    "FitConfig",
    "RunError",
    "TimeCourse",
    "__version__",
    "datasets",
    "from_anndata",
    "load_data",
    "pl",
    "zoo",
]

if TYPE_CHECKING:  # for type checkers and IDEs; never run
    from . import datasets, pl, zoo
    from .data import DataError, TimeCourse, from_anndata, load_data
    from .estimator import VGFM, RunError
    from .infer import ConfigError, FitConfig


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
