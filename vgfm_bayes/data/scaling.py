"""Internal standardisation of coordinates, so that extreme scales train like the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .timecourse import DataError, TimeCourse


@dataclass(frozen=True)
class Scaling:
    """An isotropic affine map x -> (x - center) / scale between user and internal units.

    One scalar scale (not one per dimension) keeps the geometry of the transport cost: the
    internal problem is the user's problem seen in other units. Velocities scale by ``scale``,
    growth rates (per unit time) and log-weights do not change.

    Attributes
    ----------
    center : ndarray, shape (D,)
    scale : float (> 0)
    """

    center: np.ndarray
    scale: float

    @classmethod
    def identity(cls, dim: int) -> Scaling:
        return cls(np.zeros(dim), 1.0)

    @classmethod
    def fit(cls, data: TimeCourse) -> Scaling:
        """Pooled mean and root-mean-square spread of all cells at all times."""
        x = np.concatenate(data.x)
        center = x.mean(0)
        scale = float(np.sqrt(np.mean((x - center) ** 2)))
        if not (np.isfinite(scale) and scale > 0):
            raise DataError("all cells have the same coordinates: there is nothing to transport")
        if scale < np.abs(center).max(initial=0.0) * 1e-12:
            raise DataError(
                "the spread of the cells is below float64 resolution of their position; "
                "centre the coordinates first"
            )
        return cls(center, scale)

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and not np.any(self.center)

    def to_internal(self, x: np.ndarray) -> np.ndarray:
        """x : ndarray, shape (..., D) in user units."""
        return (np.asarray(x, dtype=np.float64) - self.center) / self.scale

    def to_user(self, x: np.ndarray) -> np.ndarray:
        """x : ndarray, shape (..., D) in internal units."""
        return np.asarray(x) * self.scale + self.center

    def apply(self, data: TimeCourse) -> TimeCourse:
        """The time course in internal units (times and masses unchanged)."""
        if self.is_identity:
            return data
        return TimeCourse(
            data.times,
            tuple(self.to_internal(x) for x in data.x),
            data.masses,
            data.var_names,
            name=data.name,
        )

    def to_dict(self) -> dict:
        return {"center": self.center.tolist(), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict | None, dim: int) -> Scaling:
        if not d:
            return cls.identity(dim)
        return cls(np.asarray(d["center"], dtype=np.float64), float(d["scale"]))
