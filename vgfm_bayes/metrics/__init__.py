"""Stage 7: metrics -- W1, relative mass error, coverage."""

from .distribution import relative_mass_error, score, w1_minibatch

__all__ = ["relative_mass_error", "score", "w1_minibatch"]
