"""The user-facing model: data in, fit, posterior outputs, evaluation, save / load.

Like scvi-tools' model classes this wraps the tensors-only Pyro module (``model.VGFMModel`` plus
its guide) with what users handle: time courses or AnnData, devices, seeds, run folders, and
summaries as numpy / pandas.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyro
import torch

from .data import DATASETS, DataError, TimeCourse, from_anndata, load_data
from .infer import ConfigError, FitConfig, History, train
from .metrics import score
from .model import DistributionFit, VGFMModel, get_head, vgfm_sigmas
from .nn import Fields
from .ot import interval_plans, sample_pairs
from .posterior import Posterior, Trajectories, direction_spread, summarise

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"


class RunError(RuntimeError):
    """A run folder that cannot be written or read."""


def _as_timecourse(data, time_key: str | None, rep: str) -> TimeCourse:
    if isinstance(data, TimeCourse):
        return data
    if hasattr(data, "obs") and hasattr(data, "obsm"):
        if time_key is None:
            raise DataError("AnnData input needs time_key (the obs column with each cell's time)")
        return from_anndata(data, time_key=time_key, rep=rep)
    return load_data(data, time_key=time_key, rep=rep)


class VGFM:
    """Joint velocity-growth flow matching with a head from the zoo.

    Parameters
    ----------
    config : FitConfig, dict, or None (defaults).
    **overrides : FitConfig fields, e.g. ``head="point"``, ``seed=1``, ``device="cuda"``.

    Examples
    --------
    >>> from vgfm_bayes import VGFM, datasets
    >>> model = VGFM.from_zoo("point").fit(datasets.load("simulation_gene"))
    >>> model.evaluate()["w1_mean"]
    """

    def __init__(self, config: FitConfig | dict | None = None, **overrides: Any) -> None:
        if config is None:
            config = FitConfig()
        elif isinstance(config, dict):
            config = FitConfig.from_dict(config)
        self.config = config.updated(**overrides)
        self.config.validate()
        get_head(self.config.head)  # unknown head names fail here, before any work
        self.data: TimeCourse | None = None  # the full time course (held-out snapshot included)
        self.hold_out: int | None = None
        self.history: History | None = None
        self.fields: Fields | None = None
        self.model: VGFMModel | None = None
        self.guide = None
        self.resolved: dict[str, Any] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_zoo(cls, name: str = "point", **overrides: Any) -> VGFM:
        """A model configured by the zoo entry ``models/<name>/config.toml``."""
        from . import zoo

        return cls(FitConfig.from_dict(zoo.zoo_config(name)), **overrides)

    @property
    def device(self) -> torch.device:
        dev = torch.device(self.config.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device cuda requested but torch sees no GPU; use --device cpu")
        return dev

    @property
    def is_fitted(self) -> bool:
        return self.guide is not None

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("the model is not fitted yet: call fit() or VGFM.load(run)")

    def _resolve(self, data: TimeCourse) -> dict[str, Any]:
        """Fill every 'auto' (None) setting from the data; the result is saved with the run."""
        c = self.config
        ds = DATASETS[data.name].ot if data.name in DATASETS else {}
        generic = {"eps": 0.01, "tau": 5.0, "normalize_cost": True}
        srot = {k: getattr(c, k) if getattr(c, k) is not None else ds.get(k, generic[k]) for k in generic}
        sigma_v, sigma_g = vgfm_sigmas(data.dim)
        return {
            **srot,
            "n_effective": c.n_effective or float(data.counts[:-1].sum()),
            "sigma_v": c.sigma_v or sigma_v,
            "sigma_g": c.sigma_g or sigma_g,
            "step_size": c.step_size or float(np.diff(data.times).min()) / 10,
        }

    def _build(self, train_data: TimeCourse, resolved: dict[str, Any]) -> None:
        c = self.config
        head = get_head(c.head, members=c.members, prior_scale=c.prior_scale)
        t0, t1 = float(train_data.times[0]), float(train_data.times[-1])
        self.fields = Fields.build(
            train_data.dim, t0, t1 - t0, c.velocity_hidden and tuple(c.velocity_hidden),
            c.growth_hidden and tuple(c.growth_hidden),
        )
        members = (head.members,) if head.members > 1 else ()
        gen = torch.Generator().manual_seed(c.seed)
        init = self.fields.init(members, generator=gen, device=self.device)
        with pyro.settings.context(module_local_params=True):
            self.model = VGFMModel(
                self.fields, head.blocks(self.fields), resolved["sigma_v"], resolved["sigma_g"],
                resolved["n_effective"], members,
            )
            self.guide = head.build_guide(self.model, init)
            self.guide(None)  # autoguides create their parameters on the first call
        self.guide.to(self.device)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        data,
        hold_out: int | None = None,
        *,
        time_key: str | None = None,
        rep: str = "X",
        progress: bool = True,
    ) -> VGFM:
        """Fit on a TimeCourse, AnnData, CSV / .h5ad path or bundled data set name.

        Parameters
        ----------
        hold_out : index of a snapshot to leave out of training (leave-one-out); it is kept for
            evaluation.
        time_key, rep : for AnnData / .h5ad input: the obs time column and the obsm key (or X).
        """
        data = _as_timecourse(data, time_key, rep)
        train_data = data if hold_out is None else data.without(hold_out)
        c = self.config
        torch.manual_seed(c.seed)
        pyro.set_rng_seed(c.seed)
        dev = self.device
        resolved = self._resolve(train_data)
        timings: dict[str, float] = {}

        t = time.perf_counter()
        plans = interval_plans(
            train_data, resolved["eps"], resolved["tau"], resolved["normalize_cost"], device=dev,
            srot_batch=c.srot_batch, srot_repeats=c.srot_repeats, memory_mb=c.srot_memory_mb,
        )
        timings["srot"] = time.perf_counter() - t
        self._build(train_data, resolved)
        gen = torch.Generator(device=dev).manual_seed(c.seed)

        def sampler():
            return sample_pairs(plans, c.batch_size, c.sigma, gen)

        fit_loss = None
        if c.joint_steps > 0:
            tensors = [torch.tensor(x, dtype=torch.float32, device=dev) for x in train_data.x]
            fit_loss = DistributionFit(
                self.fields, tensors[0], tensors[1:],
                torch.tensor(train_data.times, dtype=torch.float32, device=dev),
                torch.tensor(np.log(train_data.masses), dtype=torch.float32, device=dev),
                lambda_ot=c.lambda_ot, lambda_mass=c.lambda_mass,
                step_size=resolved["step_size"], n_particles=c.joint_particles,
                n_targets=c.joint_targets, detach_intervals=c.detach_intervals,
                member_shape=self.model.member_shape,
                generator=torch.Generator(device=dev).manual_seed(c.seed + 1),
                w1=c.fit_w1, blur=c.fit_blur,
            )
        with pyro.settings.context(module_local_params=True):
            self.history = train(
                self.model, self.guide, sampler, fit_loss,
                warmup_steps=c.warmup_steps, lr_warmup=c.lr_warmup,
                joint_steps=c.joint_steps, lr_joint=c.lr_joint, progress=progress,
            )
        self.history.seconds = {**timings, **self.history.seconds}
        self.data = data
        self.hold_out = hold_out
        self.resolved = resolved
        return self

    # ------------------------------------------------------------------ posterior outputs
    @property
    def posterior(self) -> Posterior:
        self._require_fitted()
        return Posterior(self.model, self.guide, deterministic=get_head(self.config.head).deterministic)

    def _tensor(self, x) -> torch.Tensor:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.fields.dim:
            raise DataError(
                f"points must have shape (n, {self.fields.dim}) to match the fitted data, "
                f"got {x.shape}"
            )
        return torch.tensor(x, device=self.device)

    def simulate(
        self, samples: int = 100, x0=None, times=None, step_size: float | None = None
    ) -> Trajectories:
        """Posterior predictive trajectories of x0 (default: all first-snapshot cells).

        Returns Trajectories with x of shape (S, T, N, D) and log_w of shape (S, T, N),
        S = 1 for the point estimate, at ``times`` (default: the observed times).
        """
        self._require_fitted()
        x0 = self.data.x[0] if x0 is None else x0
        times = self.data.times if times is None else np.asarray(times, dtype=np.float64)
        post = self.posterior
        params = post.draw(samples)
        return post.trajectories(
            params, self._tensor(x0), torch.tensor(times, dtype=torch.float32, device=self.device),
            step_size or self.resolved["step_size"],
        )

    def growth(self, x, t: float, samples: int = 200) -> pd.DataFrame:
        """Growth-rate posterior per point (per unit time): mean, sd, q05, q50, q95, p_positive."""
        post = self.posterior
        g = post.growth_draws(post.draw(samples), self._tensor(x), float(t)).cpu().numpy()
        return pd.DataFrame(summarise(g.astype(np.float64)))

    def velocity(self, x, t: float, samples: int = 200) -> dict[str, np.ndarray]:
        """Velocity posterior per point: mean (N, D), sd (N, D), speed_sd (N,),
        direction_spread (N,) in radians."""
        post = self.posterior
        v = post.velocity_draws(post.draw(samples), self._tensor(x), float(t)).cpu().numpy()
        speed = np.linalg.norm(v, axis=-1)
        return {
            "mean": v.mean(0),
            "sd": v.std(0, ddof=1) if v.shape[0] > 1 else np.zeros(v.shape[1:]),
            "speed_sd": speed.std(0, ddof=1) if v.shape[0] > 1 else np.zeros(v.shape[1]),
            "direction_spread": direction_spread(v),
        }

    def evaluate(self, data=None, samples: int = 20, *, time_key=None, rep="X") -> dict:
        """Score simulated trajectories against every snapshot (DESIGN 4); never trains.

        data : defaults to the data the model was fitted on (held-out snapshot included).
        """
        self._require_fitted()
        data = self.data if data is None else _as_timecourse(data, time_key, rep)
        if data.dim != self.fields.dim:
            raise DataError(f"data have {data.dim} dims but the model was fitted on {self.fields.dim}")
        traj = self.simulate(samples=samples, x0=data.x[0], times=data.times)
        out = score(traj, data, held_out=self.hold_out if data is self.data else None)
        out["model"] = self.config.head
        out["data"] = data.name
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, run: str | Path, overwrite: bool = False) -> Path:
        """Write a run folder: config.json, weights.pt, history.json, data.npz.

        The folder is written under a temporary name and renamed into place, so a failed save
        never leaves a half-written run.
        """
        self._require_fitted()
        run = Path(run)
        if run.exists() and not run.is_dir():
            raise RunError(f"{run} exists and is a file; choose a folder name for the run")
        if run.exists() and any(run.iterdir()) and not overwrite:
            raise RunError(f"{run} already holds files; choose a new folder or pass overwrite")
        run.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run.name}.", dir=run.parent))
        try:
            meta = {
                "format_version": FORMAT_VERSION,
                "config": self.config.to_dict(),
                "resolved": self.resolved,
                "hold_out": self.hold_out,
                "data": {
                    "name": self.data.name,
                    "times": self.data.times.tolist(),
                    "masses": self.data.masses.tolist(),
                    "counts": self.data.counts.tolist(),
                    "var_names": list(self.data.var_names),
                },
                "fields": {
                    "dim": self.fields.dim,
                    "velocity_hidden": list(self.fields.velocity.hidden),
                    "growth_hidden": list(self.fields.growth.hidden),
                    "t_start": self.fields.t_start,
                    "t_span": self.fields.t_span,
                },
            }
            (tmp / "config.json").write_text(json.dumps(meta, indent=2))
            state = {k: v.detach().cpu() for k, v in self.guide.state_dict().items()}
            torch.save({"format_version": FORMAT_VERSION, "guide": state}, tmp / WEIGHTS_FILE)
            (tmp / "history.json").write_text(json.dumps(self.history.to_dict()))
            arrays = {f"x{k}": x for k, x in enumerate(self.data.x)}
            np.savez_compressed(tmp / "data.npz", times=self.data.times, masses=self.data.masses, **arrays)
            if run.exists():
                shutil.rmtree(run)
            os.replace(tmp, run)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("saved run to %s", run)
        return run

    @classmethod
    def load(cls, run: str | Path, device: str | None = None) -> VGFM:
        """Load a run folder written by :meth:`save` (weights read with weights_only=True)."""
        run = Path(run)
        cfg_file = run / "config.json"
        if not cfg_file.is_file():
            raise RunError(f"{run}: not a run folder (no config.json)")
        try:
            meta = json.loads(cfg_file.read_text())
        except json.JSONDecodeError as err:
            raise RunError(f"{cfg_file}: unreadable ({err})") from err
        if meta.get("format_version") != FORMAT_VERSION:
            raise RunError(
                f"{run}: run format version {meta.get('format_version')!r} is not supported "
                f"(this vgfm-bayes reads version {FORMAT_VERSION})"
            )
        config = FitConfig.from_dict(meta["config"])
        if device is not None:
            config = config.updated(device=device)
        self = cls(config)
        with np.load(run / "data.npz", allow_pickle=False) as z:
            n = len(z["times"])
            self.data = TimeCourse(
                z["times"], tuple(z[f"x{k}"] for k in range(n)), z["masses"],
                tuple(meta["data"]["var_names"]), name=meta["data"]["name"],
            )
        self.hold_out = meta["hold_out"]
        self.resolved = meta["resolved"]
        train_data = self.data if self.hold_out is None else self.data.without(self.hold_out)
        self._build(train_data, self.resolved)
        try:
            blob = torch.load(run / WEIGHTS_FILE, map_location=self.device, weights_only=True)
        except Exception as err:  # pickle / zip errors come in many types
            raise RunError(f"{run / WEIGHTS_FILE}: unreadable weights ({err})") from err
        if not isinstance(blob, dict) or blob.get("format_version") != FORMAT_VERSION:
            raise RunError(f"{run / WEIGHTS_FILE}: unknown weights format")
        self.guide.load_state_dict(blob["guide"])
        hist = json.loads((run / "history.json").read_text())
        self.history = History(hist["warmup"], hist["joint"], hist["seconds"])
        return self

    def __repr__(self) -> str:
        state = f"fitted on {self.data!r}" if self.is_fitted and self.data else "not fitted"
        return f"VGFM(head={self.config.head!r}, {state})"
