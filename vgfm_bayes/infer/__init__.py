"""Stage 5: inference -- configuration, settings resolved from the data, the SVI loop and the
trainer around it (checkpoints, signals, the distributed gather), run folders."""

from .checkpoint import (
    CHECKPOINT_VERSION,
    CheckpointError,
    StopRequest,
    atomic_write,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    stop_on_signals,
)
from .config import ConfigError, FitConfig, read_config_file
from .run_folder import FORMAT_VERSION, RunError
from .svi import History, TrainingError, TrainingInterrupted, run_phase, train

__all__ = [
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "ConfigError",
    "FORMAT_VERSION",
    "FitConfig",
    "History",
    "RunError",
    "StopRequest",
    "TrainingError",
    "TrainingInterrupted",
    "atomic_write",
    "capture_rng",
    "load_checkpoint",
    "read_config_file",
    "restore_rng",
    "run_phase",
    "save_checkpoint",
    "stop_on_signals",
    "train",
]
