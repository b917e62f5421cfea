"""Stage 7: metrics -- W1, relative mass error, coverage, calibration against a known truth."""

from ..ot import sampling_floor
from .calibration import (
    crps,
    growth_calibration,
    interval_coverage,
    mass_interval_covers,
    spearman,
    srot_target_quality,
)
from .distribution import relative_mass_error, score, w1_minibatch

__all__ = [
    "crps",
    "growth_calibration",
    "interval_coverage",
    "mass_interval_covers",
    "relative_mass_error",
    "sampling_floor",
    "score",
    "spearman",
    "srot_target_quality",
    "w1_minibatch",
]
