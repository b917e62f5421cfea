"""One posterior interface for every head: weight draws, fields with uncertainty, trajectories."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyro
import torch

from ..model import VGFMModel, simulate
from .intervals import mass_interval


@dataclass(frozen=True)
class Trajectories:
    """Posterior predictive trajectories of the first snapshot's cells.

    times : ndarray, shape (T,) -- user time units
    x : ndarray, shape (S, T, N, D) -- positions per draw, time and particle
    log_w : ndarray, shape (S, T, N) -- log-weights; logsumexp(log_w[s, 0]) = 0
    is_ensemble : the draws are an ensemble's members (intervals: posterior/intervals.py)
    groups : sizes of the consecutive groups the draws come in, one per component of a finite
        mixture (last_layer), or None (intervals: posterior/intervals.py)
    mass_noise : (sd, dof) of an observed log total mass about the model's, estimated from
        held-out snapshots (ot/tune.py ``mass_discrepancy``); None: no such term (point head)
    """

    times: np.ndarray
    x: np.ndarray
    log_w: np.ndarray
    is_ensemble: bool = False
    mass_noise: tuple[float, float] | None = None
    groups: tuple[int, ...] | None = None

    @property
    def mass(self) -> np.ndarray:
        """Total mass per draw and time, shape (S, T)."""
        return np.exp(self.log_w).sum(-1)

    def mass_interval(self, level: float = 0.9, observed: bool = True):
        """(lower, upper) per time of the central ``level`` interval of the total mass.

        observed : the predictive interval of an observed mass (the model's mass and the
            held-out discrepancy ``mass_noise``); False: of the model's mass alone.
        """
        sd, dof = self.mass_noise if (observed and self.mass_noise) else (0.0, np.inf)
        return mass_interval(self.mass, level, self.is_ensemble, sd, dof, self.groups)


class Posterior:
    """Draws of the network weights from a fitted guide, and what follows from them.

    For a point estimate every draw is the same, so one draw is used whatever S is asked.
    With members (ensemble) each member is one draw.
    """

    def __init__(self, model: VGFMModel, guide, deterministic: bool) -> None:
        self.model = model
        self.guide = guide
        self.deterministic = deterministic

    @property
    def is_ensemble(self) -> bool:
        """The draws are an ensemble's members: intervals use the Student-t prediction interval
        for one more member (posterior/intervals.py), not the members' empirical quantiles."""
        return bool(self.model.member_shape)

    def draw_groups(self, n: int) -> tuple[int, ...] | None:
        """Sizes of the consecutive groups ``n`` draws come in: one per member for an ensemble,
        one per mixture component where the guide mixes over a few (last_layer), None for plain
        posterior draws. Intervals over grouped draws are the prediction interval for one more
        group (posterior/intervals.py), as a finite sample of components calls for."""
        if self.model.member_shape:
            return (1,) * n
        groups = getattr(self.guide, "draw_groups", None)
        return None if groups is None or self.deterministic else groups(n)

    def n_draws(self, samples: int) -> int:
        if self.model.member_shape:
            return self.model.member_shape[0]
        return 1 if self.deterministic else samples

    @torch.no_grad()
    def draw(self, samples: int = 100) -> dict[str, torch.Tensor]:
        """Weights with one leading draw dim, shape (S, *shape) per name."""
        with pyro.settings.context(module_local_params=True):
            if hasattr(self.guide, "draw_params"):  # a guide with its own sampler (last_layer)
                return self.guide.draw_params(self.n_draws(samples))
            if self.model.member_shape:
                return self.model.unpack(self.guide())
            n = self.n_draws(samples)
            stacked: dict[str, torch.Tensor] = {}
            for i in range(n):  # filled in place: a list of draws and its stack would be 2x
                for k, v in self.guide().items():
                    if k not in stacked:
                        stacked[k] = torch.empty((n, *v.shape), dtype=v.dtype, device=v.device)
                    stacked[k][i] = v
        return self.model.unpack(stacked)

    @torch.no_grad()
    def growth_draws(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, t: float):
        """g at (x, t) per draw, shape (S, N); x : Tensor, shape (N, D)."""
        s = next(iter(params.values())).shape[0]
        return self.model.fields.g(params, x.expand(s, *x.shape), t)

    @torch.no_grad()
    def velocity_draws(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, t: float):
        """v at (x, t) per draw, shape (S, N, D)."""
        s = next(iter(params.values())).shape[0]
        return self.model.fields.v(params, x.expand(s, *x.shape), t)

    @torch.no_grad()
    def trajectories(
        self,
        params: Mapping[str, torch.Tensor],
        x0: torch.Tensor,
        times: torch.Tensor,
        step_size: float,
        chunk: int = 16,
    ) -> Trajectories:
        """Simulate every draw from x0 (N, D) with weights 1/N, in chunks of draws."""
        s = next(iter(params.values())).shape[0]
        xs, lws = [], []
        for lo in range(0, s, chunk):
            p = {k: v[lo : lo + chunk] for k, v in params.items()}
            c = next(iter(p.values())).shape[0]
            x = x0.expand(c, *x0.shape)
            lw = torch.full(x.shape[:-1], -math.log(x0.shape[0]), dtype=x0.dtype, device=x0.device)
            xt, lwt = simulate(self.model.fields, p, x, lw, times, step_size)
            xs.append(xt.transpose(0, 1).cpu())
            lws.append(lwt.transpose(0, 1).cpu())
        return Trajectories(
            times.cpu().numpy().astype(np.float64),
            torch.cat(xs).numpy(),
            torch.cat(lws).numpy(),
            is_ensemble=self.is_ensemble,
            groups=self.draw_groups(s),
        )


def direction_spread(v: np.ndarray) -> np.ndarray:
    """Angular spread of velocity draws, in radians, shape (N,).

    v : ndarray, shape (S, N, D). The mean angle between each draw's direction and the mean
    direction; 0 when all draws agree (or S = 1). The angle between unit vectors u and m is
    2 arcsin(|u - m| / 2), which unlike arccos(u . m) keeps its precision for small angles
    (also for float32 draws).
    """
    v = np.asarray(v, dtype=np.float64)
    if v.shape[0] < 2:  # exactly 0, not arccos's rounding of a float32 cosine near 1
        return np.zeros(v.shape[1])
    unit = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    mean_dir = unit.mean(0)
    mean_dir = mean_dir / np.maximum(np.linalg.norm(mean_dir, axis=-1, keepdims=True), 1e-12)
    half_chord = np.linalg.norm(unit - mean_dir[None], axis=-1) / 2
    return (2 * np.arcsin(np.clip(half_chord, 0.0, 1.0))).mean(0, dtype=np.float64)
