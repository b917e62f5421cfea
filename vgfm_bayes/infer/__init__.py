"""Stage 5: inference -- configuration and the SVI loop."""

from .config import ConfigError, FitConfig, read_config_file
from .svi import History, TrainingError, run_phase, train

__all__ = [
    "ConfigError",
    "FitConfig",
    "History",
    "TrainingError",
    "read_config_file",
    "run_phase",
    "train",
]
