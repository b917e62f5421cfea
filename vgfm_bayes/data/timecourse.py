"""The time course: unpaired snapshots of cells with their times and relative masses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


class DataError(ValueError):
    """Input data that cannot be used, with a message naming the problem and the fix."""


@dataclass(frozen=True)
class TimeCourse:
    """Snapshots X_0, ..., X_{K-1} of cells at increasing times.

    Parameters
    ----------
    times : ndarray, shape (K,)
        Observation times in the user's units (e.g. days), strictly increasing.
    x : tuple of ndarray, each shape (n_k, D)
        Cell coordinates (PCA / latent embedding) per time point.
    masses : ndarray, shape (K,)
        Relative total mass per time point, normalised so masses[0] == 1. Defaults to the
        cell-count ratio n_k / n_0.
    var_names : tuple of str
        Names of the D coordinates.
    name : str
        A label for reports.

    Notes
    -----
    Arrays are copied on construction (float64, read-only), so nothing the caller passed in is
    ever mutated and the object can be shared safely.
    """

    times: np.ndarray
    x: tuple[np.ndarray, ...]
    masses: np.ndarray
    var_names: tuple[str, ...] = field(default=())
    name: str = "data"

    def __post_init__(self) -> None:
        times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        if len(self.x) != len(times):
            raise DataError(f"got {len(times)} times but {len(self.x)} snapshots")
        if len(times) < 2:
            raise DataError(
                f"need at least two time points, found {len(times)}: a time course needs a "
                "start and an end"
            )
        if not np.all(np.isfinite(times)):
            raise DataError("time values must be finite numbers")
        if np.any(np.diff(times) <= 0):
            raise DataError(f"time points must be strictly increasing, got {times.tolist()}")
        xs = []
        dim = None
        for k, xk in enumerate(self.x):
            a = np.array(xk, dtype=np.float64, copy=True)
            if a.ndim != 2:
                raise DataError(f"snapshot at time {times[k]:g} must be a 2-D array (cells x dims)")
            if a.shape[0] < 2:
                raise DataError(
                    f"time point {times[k]:g} has {a.shape[0]} cell(s); each time point needs "
                    "at least two cells"
                )
            if dim is None:
                dim = a.shape[1]
            elif a.shape[1] != dim:
                raise DataError(
                    f"snapshot at time {times[k]:g} has {a.shape[1]} dims, expected {dim}"
                )
            if not np.all(np.isfinite(a)):
                bad = int((~np.isfinite(a)).any(axis=1).sum())
                raise DataError(
                    f"time point {times[k]:g} has {bad} cell(s) with NaN or infinite coordinates; "
                    "remove or impute them first"
                )
            a.setflags(write=False)
            xs.append(a)
        if dim is None or dim < 1:
            raise DataError("cells need at least one coordinate column")
        counts = np.array([a.shape[0] for a in xs], dtype=np.float64)
        masses = counts / counts[0] if self.masses is None else np.asarray(self.masses, np.float64)
        masses = masses.reshape(-1)
        if masses.shape != times.shape:
            raise DataError(f"got {masses.size} masses for {times.size} time points")
        if not np.all(np.isfinite(masses)) or np.any(masses <= 0):
            raise DataError(f"masses must be positive and finite, got {masses.tolist()}")
        masses = masses / masses[0]
        var_names = tuple(self.var_names) or tuple(f"x{i + 1}" for i in range(dim))
        if len(var_names) != dim:
            raise DataError(f"got {len(var_names)} variable names for {dim} dims")
        times.setflags(write=False)
        masses.setflags(write=False)
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "x", tuple(xs))
        object.__setattr__(self, "masses", masses)
        object.__setattr__(self, "var_names", var_names)

    @classmethod
    def from_arrays(
        cls,
        x: np.ndarray,
        time: Sequence[float] | np.ndarray,
        masses: Sequence[float] | np.ndarray | None = None,
        var_names: Sequence[str] = (),
        name: str = "data",
    ) -> TimeCourse:
        """Build from one cell matrix and a per-cell time vector.

        Parameters
        ----------
        x : ndarray, shape (n, D)
        time : array, shape (n,)
            Numeric time of each cell; unique values become the time points, sorted.
        masses : array, shape (K,), optional
            Relative masses per sorted time point; default cell counts.
        """
        x = np.asarray(x)
        time = np.asarray(time)
        if x.ndim != 2:
            raise DataError(f"expected a cells x dims matrix, got shape {x.shape}")
        if time.shape != (x.shape[0],):
            raise DataError(f"time has {time.size} entries for {x.shape[0]} cells")
        try:
            time = time.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(
                "time labels must be numeric (e.g. days); map them to numbers first"
            ) from err
        if not np.all(np.isfinite(time)):
            raise DataError("time labels must be finite numbers (found NaN or inf)")
        uniq = np.unique(time)
        return cls(
            times=uniq,
            x=tuple(x[time == t] for t in uniq),
            masses=None if masses is None else np.asarray(masses, dtype=np.float64),
            var_names=tuple(var_names),
            name=name,
        )

    @property
    def n_times(self) -> int:
        return len(self.times)

    @property
    def dim(self) -> int:
        return self.x[0].shape[1]

    @property
    def counts(self) -> np.ndarray:
        """Cells per time point, shape (K,)."""
        return np.array([a.shape[0] for a in self.x])

    def without(self, k: int) -> TimeCourse:
        """The time course with snapshot k removed (leave-one-out training data)."""
        if not 1 <= k < self.n_times:
            raise DataError(
                f"--hold-out {k} is out of range: choose a time index from 1 to {self.n_times - 1} "
                "(the first time point is where simulation starts and cannot be held out)"
            )
        if self.n_times < 3:
            raise DataError("holding out a time point needs at least three time points")
        keep = [i for i in range(self.n_times) if i != k]
        return TimeCourse(
            times=self.times[keep],
            x=tuple(self.x[i] for i in keep),
            masses=self.masses[keep],
            var_names=self.var_names,
            name=f"{self.name} (without t={self.times[k]:g})",
        )

    def __repr__(self) -> str:
        counts = "/".join(str(c) for c in self.counts)
        return (
            f"TimeCourse({self.name!r}: {self.n_times} time points {self.times.tolist()}, "
            f"{self.dim}-D, cells {counts})"
        )
