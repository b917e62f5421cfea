"""A ground-truth simulator: populations drifting with known velocities and growth rates.

Population p (p = 0..P-1) is a Gaussian blob whose centre moves with constant velocity v_p and
whose mass grows as w_p(t) = w_p(0) exp(g_p t). The total mass is M(t) = sum_p w_p(t) with
M(0) = 1. Snapshot k holds n_k = round(n_0 M(t_k)) cells (counts follow the total mass), each
cell's population drawn with probability w_p(t_k) / M(t_k) and its position from the blob at
t_k. The true velocity field and growth rate of a cell are those of its population, so every
cell has a known v and g; with well-separated blobs both are functions of position,
v(x, t) and g(x, t), that a model can recover.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .timecourse import DataError, TimeCourse


@dataclass(frozen=True)
class GroundTruth:
    """A simulated time course with the truth behind it.

    Attributes
    ----------
    data : TimeCourse -- the snapshots (masses from the cell counts).
    growth : tuple of ndarray, each (n_k,) -- true growth rate of every cell.
    velocity : tuple of ndarray, each (n_k, D) -- true velocity of every cell.
    population : tuple of ndarray, each (n_k,) -- population index of every cell.
    rates : ndarray, shape (P,) -- growth rate per population (per unit time).
    velocities : ndarray, shape (P, D) -- drift velocity per population.
    centres : ndarray, shape (P, D) -- population centres at t = 0.
    masses : ndarray, shape (K,) -- the exact total mass M(t_k) (counts are its rounding).
    """

    data: TimeCourse
    growth: tuple[np.ndarray, ...]
    velocity: tuple[np.ndarray, ...]
    population: tuple[np.ndarray, ...]
    rates: np.ndarray
    velocities: np.ndarray
    centres: np.ndarray
    masses: np.ndarray

    def growth_at(self, x: np.ndarray, t: float) -> np.ndarray:
        """True g(x, t), shape (n,): the rate of the population whose centre is nearest."""
        return self.rates[self._nearest(x, t)]

    def velocity_at(self, x: np.ndarray, t: float) -> np.ndarray:
        """True v(x, t), shape (n, D)."""
        return self.velocities[self._nearest(x, t)]

    def _nearest(self, x: np.ndarray, t: float) -> np.ndarray:
        centres = self.centres + t * self.velocities
        d = ((np.asarray(x)[:, None, :] - centres[None]) ** 2).sum(-1)
        return d.argmin(1)


def simulate_populations(
    n_populations: int = 4,
    times: np.ndarray | list[float] = (0.0, 1.0, 2.0, 3.0),
    n0: int = 200,
    dim: int = 2,
    rates: np.ndarray | list[float] | None = None,
    speed: float = 0.6,
    radius: float = 2.0,
    spread: float = 0.25,
    seed: int = 0,
) -> GroundTruth:
    """Simulate P populations drifting outwards from a circle, each growing at its own rate.

    Parameters
    ----------
    n_populations : P.
    times : observation times (user units), increasing, times[0] = start.
    n0 : cells observed at times[0]; later counts follow the total mass.
    dim : D >= 2; populations start on a circle in the first two coordinates.
    rates : growth rate per population; default evenly spaced in [-0.4, 0.6].
    speed : drift speed (outwards, radially) of every population.
    radius : distance of the initial centres from the origin.
    spread : sd of the blobs (keep it well below the centres' distance, or growth is not
        identifiable from positions).
    seed : numpy seed.
    """
    if n_populations < 1 or dim < 2 or n0 < 2:
        raise DataError("need n_populations >= 1, dim >= 2 and n0 >= 2")
    times = np.asarray(times, dtype=np.float64)
    rates = (
        np.linspace(-0.4, 0.6, n_populations)
        if rates is None
        else np.asarray(rates, dtype=np.float64)
    )
    if rates.shape != (n_populations,):
        raise DataError(f"got {rates.size} growth rates for {n_populations} populations")
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(n_populations) / n_populations
    directions = np.zeros((n_populations, dim))
    directions[:, 0], directions[:, 1] = np.cos(angles), np.sin(angles)
    centres = radius * directions
    velocities = speed * directions
    w0 = np.full(n_populations, 1.0 / n_populations)
    xs, gs, vs, pops, masses = [], [], [], [], []
    for t in times:
        w = w0 * np.exp(rates * (t - times[0]))
        mass = w.sum()
        n = max(2, int(round(n0 * mass)))
        pop = np.sort(rng.choice(n_populations, size=n, p=w / mass))
        x = centres[pop] + t * velocities[pop] + spread * rng.standard_normal((n, dim))
        xs.append(x)
        gs.append(rates[pop])
        vs.append(velocities[pop])
        pops.append(pop)
        masses.append(mass)
    data = TimeCourse(times, tuple(xs), None, name=f"populations_seed{seed}")
    return GroundTruth(
        data, tuple(gs), tuple(vs), tuple(pops), rates, velocities, centres, np.array(masses)
    )
