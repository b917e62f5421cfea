"""What every interval plan (dense or mini-batch) derives from its ends and row sums."""

from __future__ import annotations

import torch


class IntervalTargets:
    """Mixin for plans with fields t0, t1 (user time), x0 (n, D) and row_sums (n,)."""

    t0: float
    t1: float
    x0: torch.Tensor
    row_sums: torch.Tensor

    @property
    def dt(self) -> float:
        return self.t1 - self.t0

    @property
    def growth_targets(self) -> torch.Tensor:
        """gamma_i = log(r_i) / dt, shape (n,): constant growth that turns mass 1 into r_i."""
        return (self.row_sums.log() / self.dt).to(self.x0.dtype)
