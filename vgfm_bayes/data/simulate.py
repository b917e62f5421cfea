"""Ground-truth simulators: cells drifting with known velocities and growth rates.

Two kinds (``SIMULATOR_KINDS``, chosen with :func:`simulate`'s ``kind``):

separated (:func:`simulate_populations`)
    Population p (p = 0..P-1) is a Gaussian blob whose centre moves with constant velocity v_p
    and whose mass grows as w_p(t) = w_p(0) exp(g_p t). The total mass is M(t) = sum_p w_p(t)
    with M(0) = 1. Snapshot k holds n_k = round(n_0 M(t_k)) cells (counts follow the total
    mass), each cell's population drawn with probability w_p(t_k) / M(t_k) and its position
    from the blob at t_k. The true velocity field and growth rate of a cell are those of its
    population; with well-separated blobs both are functions of position, v(x, t) and g(x, t),
    that a model can recover.
reweight (:func:`simulate_reweighting`)
    One Gaussian blob translating rigidly with velocity v; growth only reweights cells inside
    it: g(x, t) = a (x - c(t)) . u / spread, with c(t) the blob's centre and u a unit direction
    orthogonal to v. Mass moves within the blob, and a cheap transport (a faster drift towards
    u and a uniform growth) explains the same snapshots, so growth is not identifiable from
    them (DESIGN 3): honest intervals must be wide.
"""

from __future__ import annotations

from collections.abc import Callable
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
    population : tuple of ndarray, each (n_k,) -- population index of every cell (all 0 for
        the reweight kind).
    masses : ndarray, shape (K,) -- the exact total mass M(t_k) (counts are its rounding).
    growth_field : callable (x (n, D), t) -> (n,) -- the true g(x, t) at any point.
    velocity_field : callable (x (n, D), t) -> (n, D) -- the true v(x, t) at any point.
    kind : "separated" or "reweight" (``SIMULATOR_KINDS``).
    rates : ndarray, shape (P,) -- growth rate per population (separated; None otherwise).
    velocities : ndarray, shape (P, D) -- drift velocity per population (the reweight kind:
        its one blob's).
    centres : ndarray, shape (P, D) -- population centres at t = 0.
    """

    data: TimeCourse
    growth: tuple[np.ndarray, ...]
    velocity: tuple[np.ndarray, ...]
    population: tuple[np.ndarray, ...]
    masses: np.ndarray
    growth_field: Callable[[np.ndarray, float], np.ndarray]
    velocity_field: Callable[[np.ndarray, float], np.ndarray]
    kind: str = "separated"
    rates: np.ndarray | None = None
    velocities: np.ndarray | None = None
    centres: np.ndarray | None = None

    def growth_at(self, x: np.ndarray, t: float) -> np.ndarray:
        """True g(x, t), shape (n,), at points x (n, D) at time t (user units)."""
        return np.asarray(self.growth_field(np.asarray(x, dtype=np.float64), float(t)))

    def velocity_at(self, x: np.ndarray, t: float) -> np.ndarray:
        """True v(x, t), shape (n, D)."""
        return np.asarray(self.velocity_field(np.asarray(x, dtype=np.float64), float(t)))


def _nearest_population(centres: np.ndarray, velocities: np.ndarray, t0: float):
    """The index of the population whose centre at t is nearest to each point (separated)."""

    def nearest(x: np.ndarray, t: float) -> np.ndarray:
        at = centres + (t - t0) * velocities
        return ((x[:, None, :] - at[None]) ** 2).sum(-1).argmin(1)

    return nearest


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
    nearest = _nearest_population(centres, velocities, 0.0)  # positions use t, as above
    return GroundTruth(
        data,
        tuple(gs),
        tuple(vs),
        tuple(pops),
        np.array(masses),
        growth_field=lambda x, t: rates[nearest(x, t)],
        velocity_field=lambda x, t: velocities[nearest(x, t)],
        kind="separated",
        rates=rates,
        velocities=velocities,
        centres=centres,
    )


def simulate_reweighting(
    times: np.ndarray | list[float] = (0.0, 1.0, 2.0, 3.0),
    n0: int = 200,
    dim: int = 2,
    strength: float = 0.4,
    speed: float = 0.6,
    spread: float = 0.5,
    seed: int = 0,
) -> GroundTruth:
    """Simulate one Gaussian blob drifting at constant velocity, growth reweighting inside it.

    The blob starts as N(0, spread^2 I) and every cell moves with v = speed e_1, so a cell
    keeps its offset z = x - c(t) from the drifting centre c(t) = (t - t_0) v. Its growth rate
    is g(x, t) = strength * z_2 / spread (u = e_2 is orthogonal to the drift): cells on one
    side grow, on the other shrink. The weighted density at time t is then again Gaussian,
    N(c(t) + strength * spread * (t - t_0) u, spread^2 I), with total mass
    M(t) = exp(strength^2 (t - t_0)^2 / 2); snapshots sample it exactly. The same snapshots
    follow from a uniform drift of speed strength * spread along u (no reweighting) plus
    uniform growth at rate strength^2 (t - t_0), so growth cannot be identified from them.

    Parameters
    ----------
    times : observation times (user units), increasing, times[0] = start.
    n0 : cells observed at times[0]; later counts follow the total mass.
    dim : D >= 2.
    strength : a, the growth rate (per unit time) one spread away from the centre along u.
    speed : drift speed along e_1.
    spread : sd of the blob.
    seed : numpy seed.
    """
    if dim < 2 or n0 < 2 or not spread > 0:
        raise DataError("need dim >= 2, n0 >= 2 and spread > 0")
    times = np.asarray(times, dtype=np.float64)
    t0 = float(times[0])
    velocity = np.zeros(dim)
    velocity[0] = speed
    u = np.zeros(dim)
    u[1] = 1.0

    def growth_field(x: np.ndarray, t: float) -> np.ndarray:
        return strength * ((x - (t - t0) * velocity) @ u) / spread

    def velocity_field(x: np.ndarray, t: float) -> np.ndarray:
        return np.broadcast_to(velocity, x.shape).copy()

    rng = np.random.default_rng(seed)
    xs, gs, vs, pops, masses = [], [], [], [], []
    for t in times:
        mass = float(np.exp(0.5 * (strength * (t - t0)) ** 2))
        n = max(2, int(round(n0 * mass)))
        mean = (t - t0) * velocity + strength * spread * (t - t0) * u
        x = mean + spread * rng.standard_normal((n, dim))
        xs.append(x)
        gs.append(growth_field(x, t))
        vs.append(velocity_field(x, t))
        pops.append(np.zeros(n, dtype=np.int64))
        masses.append(mass)
    data = TimeCourse(times, tuple(xs), None, name=f"reweighting_seed{seed}")
    return GroundTruth(
        data,
        tuple(gs),
        tuple(vs),
        tuple(pops),
        np.array(masses),
        growth_field=growth_field,
        velocity_field=velocity_field,
        kind="reweight",
        velocities=velocity[None],
        centres=np.zeros((1, dim)),
    )


SIMULATOR_KINDS = {"separated": simulate_populations, "reweight": simulate_reweighting}


def simulate(kind: str = "separated", seed: int = 0, **options) -> GroundTruth:
    """The ground-truth simulator of ``kind`` ("separated" or "reweight"; ``SIMULATOR_KINDS``).

    options : passed to :func:`simulate_populations` or :func:`simulate_reweighting`.
    """
    if kind not in SIMULATOR_KINDS:
        known = ", ".join(SIMULATOR_KINDS)
        raise DataError(f"unknown simulator kind {kind!r}; available: {known}")
    return SIMULATOR_KINDS[kind](seed=seed, **options)
