"""A fitted model's posterior outputs in the user's units: draws and summaries of the fields,
predictive trajectories, evaluation and ArviZ export.

:class:`PosteriorOutputs` is a mixin of ``VGFM`` (estimator.py), as scvi-tools' models gain
their outputs from mixins: it reads the fit's state (``model``, ``guide``, ``head``,
``scaling``, ``settings``, ``data``, ``hold_out``) and maps between user units and the internal
units the networks work in. The tensor-level work is in posterior/ (draws, trajectories,
intervals, ArviZ) and metrics/ (scores); the scverse outputs are in scverse.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .data import DataError, as_timecourse, read_time_map
from .metrics import score
from .posterior import Posterior, Trajectories, direction_spread, summarise, to_inference_data

if TYPE_CHECKING:
    import pandas as pd


class PosteriorOutputs:
    """Outputs of a fitted ``VGFM`` (see the module docstring)."""

    @property
    def posterior(self) -> Posterior:
        self._require_fitted()
        return Posterior(self.model, self.guide, deterministic=self.head.deterministic)

    def _tensor(self, x) -> torch.Tensor:
        """User-unit points (n, D) as an internal-unit tensor on the model's device."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.fields.dim:
            raise DataError(
                f"points must have shape (n, {self.fields.dim}) to match the fitted data, "
                f"got {x.shape}"
            )
        if self.scaling is not None and not self.scaling.is_identity:
            x = self.scaling.to_internal(x)
        return torch.tensor(x, dtype=torch.float32, device=self.device)

    def simulate(
        self,
        samples: int = 100,
        x0=None,
        times=None,
        step_size: float | None = None,
        *,
        params: dict | None = None,
    ) -> Trajectories:
        """Posterior predictive trajectories of x0 (default: all first-snapshot cells).

        Returns Trajectories with x of shape (S, T, N, D) (user units) and log_w of shape
        (S, T, N), S = 1 for the point estimate, at ``times`` (default: the observed times).
        params : weight draws from ``posterior.draw`` to reuse (default: ``samples`` new ones).
        """
        self._require_fitted()
        x0 = self.data.x[0] if x0 is None else x0
        times = self.data.times if times is None else np.asarray(times, dtype=np.float64)
        post = self.posterior
        traj = post.trajectories(
            post.draw(samples) if params is None else params,
            self._tensor(x0),
            torch.tensor(times, dtype=torch.float32, device=self.device),
            step_size or self.settings["step_size"],
        )
        disc = None if post.deterministic else self.settings.get("mass_discrepancy")
        noise = None if not disc or disc["sd"] <= 0 else (disc["sd"], disc["dof"])
        x = traj.x
        if self.scaling is not None and not self.scaling.is_identity:
            x = self.scaling.to_user(traj.x).astype(traj.x.dtype)
        return Trajectories(
            traj.times,
            x,
            traj.log_w,
            is_ensemble=traj.is_ensemble,
            mass_noise=noise,
            groups=traj.groups,
        )

    def growth_draws(
        self, x, t: float, samples: int = 200, *, params=None, dtype=np.float64
    ) -> np.ndarray:
        """Growth-rate draws (per unit time) at points x (n, D) in user units: shape (S, n)."""
        post = self.posterior
        params = post.draw(samples) if params is None else params
        g = post.growth_draws(params, self._tensor(x), float(t)).cpu().numpy()
        return g.astype(dtype, copy=False)

    def velocity_draws(self, x, t: float, samples: int = 200, *, params=None) -> np.ndarray:
        """Velocity draws at points x (n, D), in user units per unit time: shape (S, n, D)."""
        post = self.posterior
        params = post.draw(samples) if params is None else params
        v = post.velocity_draws(params, self._tensor(x), float(t)).cpu().numpy()
        if self.scaling is not None:
            v *= self.scaling.scale  # internal units per time -> user units per time (in place)
        return v

    def growth(self, x, t: float, samples: int = 200) -> pd.DataFrame:
        """Growth-rate posterior per point (per unit time): mean, sd, q05, q50, q95, p_positive."""
        draws = self.growth_draws(x, t, samples)
        groups = self.posterior.draw_groups(draws.shape[0])
        import pandas as pd  # on first use: 0.6 s of every command's start-up otherwise

        return pd.DataFrame(summarise(draws, groups=groups))

    def velocity(self, x, t: float, samples: int = 200) -> dict[str, np.ndarray]:
        """Velocity posterior per point: mean (N, D), sd (N, D), speed_sd (N,),
        direction_spread (N,) in radians."""
        v = self.velocity_draws(x, t, samples)
        speed = np.linalg.norm(v, axis=-1)
        return {
            "mean": v.mean(0),
            "sd": v.std(0, ddof=1) if v.shape[0] > 1 else np.zeros(v.shape[1:]),
            "speed_sd": speed.std(0, ddof=1) if v.shape[0] > 1 else np.zeros(v.shape[1]),
            "direction_spread": direction_spread(v),
        }

    def evaluate(
        self, data=None, samples: int = 20, *, time_key=None, rep=None, time_map=None
    ) -> dict:
        """Score simulated trajectories against every snapshot (DESIGN 4); never trains.

        data : defaults to the data the model was fitted on (held-out snapshot included);
            time_key, rep, time_map as for :meth:`fit`.
        """
        self._require_fitted()
        if data is not None:
            data, _ = as_timecourse(data, time_key, rep, time_map=read_time_map(time_map))
        data = self.data if data is None else data
        if data.dim != self.fields.dim:
            raise DataError(
                f"data have {data.dim} dims but the model was fitted on {self.fields.dim}"
            )
        traj = self.simulate(samples=samples, x0=data.x[0], times=data.times)
        out = score(traj, data, held_out=self.hold_out if data is self.data else None)
        out["model"] = self.config.head
        out["data"] = data.name
        return out

    def to_arviz(self, x=None, t: float | None = None, samples: int = 100, trajectories=True):
        """Posterior draws as ArviZ InferenceData (DataTree on arviz 1.x).

        posterior: growth (chain, draw, cell) and velocity (chain, draw, cell, dim) at points x
        (N, D) and time t (default: the first snapshot at its time); posterior_predictive:
        total mass (chain, draw, time), log_w and positions x of the simulated first snapshot.
        The draws are shared by both groups.
        """
        self._require_fitted()
        if x is None:
            x, t = self.data.x[0], float(self.data.times[0])
        elif t is None:
            raise ValueError("pass the time t at which the points x are evaluated")
        params = self.posterior.draw(samples)
        traj = self.simulate(params=params) if trajectories else None
        return to_inference_data(
            growth=self.growth_draws(x, t, params=params),
            velocity=self.velocity_draws(x, t, params=params),
            trajectories=traj,
            dim_names=list(self.data.var_names),
            attrs={"head": self.config.head, "data": self.data.name, "t": float(t)},
        )
