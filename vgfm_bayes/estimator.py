"""The user-facing model: data in, fit, posterior outputs, evaluation, save / load.

Like scvi-tools' model classes this wraps the tensors-only Pyro module (``model.VGFMModel`` plus
its guide) with what users handle: time courses or AnnData, devices, seeds, run folders, and
summaries as numpy / pandas.
"""

from __future__ import annotations

import contextlib
import json
import logging
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

from .data import DATASETS, DataError, Scaling, TimeCourse, as_timecourse, read_time_map
from .data.datasets import GENERIC_OT
from .infer import (
    ConfigError,
    FitConfig,
    History,
    TrainingError,
    atomic_write,
    capture_rng,
    distributed,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    stop_on_signals,
    train,
)
from .metrics import score
from .model import DistributionFit, VGFMModel, get_head, vgfm_sigmas
from .nn import Fields
from .ot import member_plans, sample_pairs
from .ot.tune import allocate_members, tune_srot
from .posterior import Posterior, Trajectories, direction_spread, summarise, to_inference_data

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"
# an unfinished fit's run folder: what it was asked (FIT_FILE, data.npz) and where it is
FIT_FILE = "fit.json"
CHECKPOINT_FILE = "checkpoint.pt"


class RunError(RuntimeError):
    """A run folder that cannot be written or read."""


def _data_meta(data: TimeCourse) -> dict[str, Any]:
    return {
        "name": data.name,
        "times": data.times.tolist(),
        "masses": data.masses.tolist(),
        "counts": data.counts.tolist(),
        "var_names": list(data.var_names),
    }


def _write_data(path: Path, data: TimeCourse) -> None:
    arrays = {f"x{k}": x for k, x in enumerate(data.x)}
    atomic_write(
        path,
        lambda fh: np.savez_compressed(fh, times=data.times, masses=data.masses, **arrays),
    )


def _read_data(run: Path, meta: dict[str, Any]) -> TimeCourse:
    try:
        with np.load(run / "data.npz", allow_pickle=False) as z:
            n = len(z["times"])
            return TimeCourse(
                z["times"],
                tuple(z[f"x{k}"] for k in range(n)),
                z["masses"],
                tuple(meta["data"]["var_names"]),
                name=meta["data"]["name"],
            )
    except (OSError, KeyError, ValueError) as err:
        raise RunError(f"{run / 'data.npz'}: missing or unreadable ({err})") from err


def _read_json(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"{path}: unreadable ({err})") from err
    if meta.get("format_version") != FORMAT_VERSION:
        raise RunError(
            f"{path.parent}: run format version {meta.get('format_version')!r} is not supported "
            f"(this vgfm-bayes reads version {FORMAT_VERSION})"
        )
    return meta


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
        if self.config.learn_sigmas and self.config.head == "ensemble":
            raise ConfigError("learn_sigmas is for single-network heads; the ensemble's are fixed")
        if self.config.members not in (None, 1) and self.config.head != "ensemble":
            raise ConfigError(
                f"members = {self.config.members} applies to the ensemble head only, not "
                f"{self.config.head!r}"
            )
        self.data: TimeCourse | None = None  # the full time course (held-out snapshot included)
        self.hold_out: int | None = None
        self.history: History | None = None
        self.fields: Fields | None = None
        self.model: VGFMModel | None = None
        self.guide = None
        self.resolved: dict[str, Any] = {}
        self.scaling: Scaling | None = None  # user units <-> internal (standardised) units
        # for AnnData input: {"time_key", "rep", "time_map", "labels"} (data.load.as_timecourse)
        self.source: dict[str, Any] | None = None
        self._internal: TimeCourse | None = None  # the training data in internal units
        self._share = (0, 1)  # (rank, world): which slice of an ensemble's members this trains

    @property
    def _member_ids(self) -> list[int]:
        return self.head.member_ids(*self._share)

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

    def _resolve(self, data: TimeCourse, name: str) -> dict[str, Any]:
        """Fill every 'auto' (None) setting from the training data and the data set's name (a
        bundled data set brings its SROT settings unless "auto" is asked); the result is saved
        with the run."""
        c = self.config
        sigma_v, sigma_g = vgfm_sigmas(data.dim)
        return {
            **self._resolve_srot(data, name),
            "n_effective": c.n_effective or float(data.counts[:-1].sum()),
            "sigma_v": c.sigma_v or sigma_v,
            "sigma_g": c.sigma_g or sigma_g,
            "step_size": c.step_size or float(np.diff(data.times).min()) / 10,
        }

    def _resolve_srot(self, data: TimeCourse, name: str) -> dict[str, Any]:
        """eps, tau, normalize_cost: given, bundled, or chosen by the held-out-snapshot score
        (ot/tune.py) with its table and the mixture of the best settings."""
        c = self.config
        ds = DATASETS[name].ot if name in DATASETS else {}
        auto = [
            k
            for k in ("eps", "tau")
            if getattr(c, k) == "auto" or (getattr(c, k) is None and not ds)
        ]
        if not auto:
            fixed = {
                k: getattr(c, k) if getattr(c, k) is not None else ds.get(k, GENERIC_OT[k])
                for k in GENERIC_OT
            }
            if self.head.deterministic:
                return fixed
            # the heads' mass intervals need the held-out discrepancy; the score's own
            # choice of setting stands in for the fixed one (the residuals barely depend on it)
            result = tune_srot(data, seed=c.seed, generic=GENERIC_OT)
            return {**fixed, "mass_discrepancy": result.mass_discrepancy()}
        if c.normalize_cost is False:
            raise ConfigError(
                "auto SROT settings are chosen on the max-normalised cost: set normalize_cost "
                "true, or give eps and tau"
            )
        grid = {}  # a given value fixes that axis of the grid
        if "eps" not in auto:
            grid["epss"] = (float(c.eps if c.eps is not None else ds["eps"]),)
        if "tau" not in auto:
            grid["taus"] = (float(c.tau if c.tau is not None else ds["tau"]),)
        result = tune_srot(data, seed=c.seed, generic=GENERIC_OT, **grid)
        out = {
            **result.best,
            "srot_auto": auto,
            "srot_mixture": result.mixture(),
            "srot_tuning": result.to_dict(),
        }
        if not self.head.deterministic:
            out["mass_discrepancy"] = result.mass_discrepancy()
        return out

    @property
    def srot_options(self) -> dict[str, Any]:
        """Mini-batch SROT settings from the config (ot/minibatch.py)."""
        c = self.config
        return {
            "srot_batch": c.srot_batch,
            "srot_repeats": c.srot_repeats,
            "memory_mb": c.srot_memory_mb,
            "generator": torch.Generator(device=self.device).manual_seed(c.seed + 2),
        }

    @property
    def head(self):
        """The configured head (model.heads.Head) with its options from the config."""
        c = self.config
        options = {
            "members": c.members,
            "prior_scale": c.prior_scale,
            "bootstrap": c.bootstrap,
            "tau_spread": c.tau_spread,
            "init_scale": c.init_scale,
        }
        return get_head(c.head, strict=False, **options)

    def _build(self, train_data: TimeCourse, resolved: dict[str, Any]) -> None:
        c = self.config
        head = self.head
        t0, t1 = float(train_data.times[0]), float(train_data.times[-1])
        self.fields = Fields.build(
            train_data.dim,
            t0,
            t1 - t0,
            c.velocity_hidden and tuple(c.velocity_hidden),
            c.growth_hidden and tuple(c.growth_hidden),
        )
        ids = self._member_ids
        members = (len(ids),) if head.members > 1 else ()
        init = head.init_weights(self.fields, c.seed, self.device, ids)
        with pyro.settings.context(module_local_params=True):
            self.model = VGFMModel(
                self.fields,
                head.blocks(self.fields),
                resolved["sigma_v"],
                resolved["sigma_g"],
                resolved["n_effective"],
                members,
                kl_weight=self.config.kl_weight,
                learn_sigmas=self.config.learn_sigmas,
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
        rep: str | None = None,
        masses=None,
        progress: bool = True,
        run_dir: str | Path | None = None,
        distributed: bool = False,
        time_map: dict[str, float] | None = None,
    ) -> VGFM:
        """Fit on a TimeCourse, AnnData, CSV / .h5ad path or bundled data set name.

        Parameters
        ----------
        hold_out : index of a snapshot to leave out of training (leave-one-out); it is kept for
            evaluation.
        time_key, rep : for AnnData / .h5ad input: the obs time column (numbers, labels such as
            "day2" / "E7.5", or an ordered categorical; data/timelabels.py) and the obsm key
            (or "X", dense or sparse); rep None: "X_pca" when present.
        time_map : label -> time for AnnData input, overriding how labels are read.
        masses : array, shape (K,), optional -- relative population size per time point
            (default: cell counts).
        run_dir : folder to checkpoint into while training (created when training starts;
            must not exist or be empty). SIGINT / SIGTERM then stop after the current step with
            a checkpoint, and :meth:`resume` continues. Finish with ``save(run_dir)``.
        distributed : spread an ensemble's members over the torch.distributed process group
            (processes started by torchrun; see infer/distributed.py). Each rank trains its
            contiguous share; rank 0 then holds the whole ensemble, equal to a one-process fit
            with the same seed (members are seeded by (seed, k)), the other ranks their share
            only (``is_partial``; they must not save). No checkpoints are written meanwhile.
        """
        if distributed:
            self._share = self._distributed_share(run_dir)
        data, self.source = as_timecourse(data, time_key, rep, masses, read_time_map(time_map))
        train_data = data if hold_out is None else data.without(hold_out)
        run = None if run_dir is None else Path(run_dir)
        if run is not None and run.exists() and (not run.is_dir() or any(run.iterdir())):
            raise RunError(f"{run} already exists and is not an empty folder; choose a new one")
        c = self.config
        torch.manual_seed(c.seed)
        pyro.set_rng_seed(c.seed)
        self.data, self.hold_out = data, hold_out
        standardize = c.standardize if c.standardize is not None else data.name not in DATASETS
        self.scaling = Scaling.fit(train_data) if standardize else Scaling.identity(data.dim)
        self.resolved = self._resolve(train_data, data.name)
        plans, srot_seconds = self._prepare(train_data)
        if run is not None:
            run.mkdir(parents=True, exist_ok=True)
            self._write_fit_record(run)
        self._train(plans, srot_seconds, run, progress=progress)
        if self._share[1] > 1:
            self._gather_members()
        return self

    def _distributed_share(self, run_dir) -> tuple[int, int]:
        """(rank, world) of this process in the launched process group (checked)."""
        world = distributed.world_size()
        if world == 1:
            return (0, 1)
        members = self.head.members
        if members < 2:
            raise ConfigError(
                f"head {self.config.head!r} trains one network: only an ensemble's members are "
                "spread over processes; run it without torchrun"
            )
        if members < world:
            raise ConfigError(f"{members} members cannot be spread over {world} processes")
        if run_dir is not None:
            raise ConfigError("a distributed fit writes no checkpoints: pass run_dir=None")
        return (distributed.rank(), world)

    @property
    def is_partial(self) -> bool:
        """True on the ranks > 0 of a distributed fit: they hold only their members."""
        return self._share != (0, 1)

    def _gather_members(self) -> None:
        """Rank 0 collects every rank's members (in rank order, i.e. member order) and
        becomes the whole ensemble; losses are summed over ranks, phase times the slowest."""
        state = {k: v.detach().cpu() for k, v in self.guide.state_dict().items()}
        parts = distributed.gather_to_rank0((state, self.history.to_dict()))
        if parts is None:
            return
        merged = {k: torch.cat([p[0][k] for p in parts]) for k in state}
        hists = [p[1] for p in parts]
        self._share = (0, 1)
        self._build(self._internal, self.resolved)
        self.guide.load_state_dict({k: v.to(self.device) for k, v in merged.items()})
        self.history = History(
            [float(sum(v)) for v in zip(*(h["warmup"] for h in hists), strict=True)],
            [float(sum(v)) for v in zip(*(h["joint"] for h in hists), strict=True)],
            {k: max(h["seconds"][k] for h in hists) for k in hists[0]["seconds"]},
        )

    @classmethod
    def _restore(cls, run: Path, meta: dict, device: str | None) -> tuple[VGFM, TimeCourse]:
        """A model with the config, data, hold-out, resolved settings and scaling of a run
        folder's metadata (fit.json or config.json); returns it and its training data."""
        config = FitConfig.from_dict(meta["config"])
        if device is not None:
            config = config.updated(device=device)
        self = cls(config)
        self.data = _read_data(run, meta)
        self.hold_out = meta["hold_out"]
        self.resolved = meta["resolved"]
        self.scaling = Scaling.from_dict(meta.get("scaling"), self.data.dim)
        self.source = meta.get("anndata")
        train_data = self.data if self.hold_out is None else self.data.without(self.hold_out)
        return self, train_data

    @classmethod
    def resume(cls, run: str | Path, *, progress: bool = True, device: str | None = None) -> VGFM:
        """Continue an unfinished fit from its run folder's last checkpoint.

        With the same seed and device the result is the same as an uninterrupted fit: the
        checkpoint holds the optimiser state, the phase and step, and every random state.
        """
        run = Path(run)
        if (run / "config.json").is_file():
            raise RunError(f"{run}: this run is finished; there is nothing to resume")
        if not (run / FIT_FILE).is_file():
            raise RunError(f"{run}: not an unfinished run folder (no {FIT_FILE})")
        meta = _read_json(run / FIT_FILE)
        self, train_data = cls._restore(run, meta, device)
        state = None
        if (run / CHECKPOINT_FILE).is_file():
            state = load_checkpoint(run / CHECKPOINT_FILE, map_location=self.device)
        plans, srot_seconds = self._prepare(train_data)
        return self._train(plans, srot_seconds, run, progress=progress, state=state)

    def _prepare(self, train_data: TimeCourse):
        """SROT plans (with safe-mode retries recorded in ``resolved``) and the networks, all in
        internal units."""
        internal = self.scaling.apply(train_data)
        r = self.resolved
        t = time.perf_counter()
        fallbacks: list[dict] = []
        plans = self.head.plans(
            internal,
            r,
            seed=self.config.seed,
            device=self.device,
            fallbacks=fallbacks,
            srot_options=self.srot_options,
            member_ids=self._member_ids,
        )
        r["srot_fallbacks"] = fallbacks
        srot_seconds = time.perf_counter() - t
        self._build(internal, r)
        self._internal = internal
        return plans, srot_seconds

    def _write_fit_record(self, run: Path) -> None:
        meta = {
            "format_version": FORMAT_VERSION,
            "status": "unfinished: continue with vgfm-bayes fit --resume RUN",
            "config": self.config.to_dict(),
            "resolved": self.resolved,
            "hold_out": self.hold_out,
            "scaling": self.scaling.to_dict(),
            "data": _data_meta(self.data),
            "anndata": self.source,
        }
        _write_data(run / "data.npz", self.data)
        text = json.dumps(meta, indent=2).encode()
        atomic_write(run / FIT_FILE, lambda fh: fh.write(text))

    def _train(self, plans, srot_seconds: float, run: Path | None, *, progress, state=None):
        c = self.config
        dev = self.device
        internal = self._internal
        head = self.head
        pair_gens = head.generators(c.seed, dev, self._member_ids)

        def sampler():
            return head.sample(plans, c.batch_size, c.sigma, pair_gens)

        fit_loss = None
        fit_gen = torch.Generator(device=dev).manual_seed(c.seed + 1)
        if c.joint_steps > 0:
            tensors = [torch.tensor(x, dtype=torch.float32, device=dev) for x in internal.x]
            fit_loss = DistributionFit(
                self.fields,
                tensors[0],
                tensors[1:],
                torch.tensor(internal.times, dtype=torch.float32, device=dev),
                torch.tensor(np.log(internal.masses), dtype=torch.float32, device=dev),
                lambda_ot=c.lambda_ot,
                lambda_mass=c.lambda_mass,
                step_size=self.resolved["step_size"],
                n_particles=c.joint_particles,
                n_targets=c.joint_targets,
                detach_intervals=c.detach_intervals,
                member_shape=self.model.member_shape,
                generator=fit_gen,
                w1=c.fit_w1,
                blur=c.fit_blur,
            )
        generators = {**pair_gens, "fit": fit_gen}
        history, resume_phase, optim_state = None, None, None
        if state is not None:
            self.guide.load_state_dict(state["guide"])
            restore_rng(state["rng"], generators)
            h = state["history"]
            history = History(list(h["warmup"]), list(h["joint"]), dict(h["seconds"]))
            resume_phase, optim_state = state["phase"], state["optimizer"]
            log.info("resuming %s from %s step %d", run, resume_phase, len(h[state["phase_key"]]))

        def checkpoint(phase: str, optim: torch.optim.Optimizer, hist: History) -> None:
            blob = {
                "phase": phase,
                "phase_key": "warmup" if phase == "warm-up" else "joint",
                "history": {"warmup": hist.warmup, "joint": hist.joint, "seconds": hist.seconds},
                "optimizer": optim.state_dict(),
                "guide": {k: v.detach() for k, v in self.guide.state_dict().items()},
                "rng": capture_rng(generators),
            }
            save_checkpoint(run / CHECKPOINT_FILE, blob)

        stop_ctx = stop_on_signals() if run is not None else contextlib.nullcontext()
        try:
            with stop_ctx as stop, pyro.settings.context(module_local_params=True):
                self.history = train(
                    self.model,
                    self.guide,
                    sampler,
                    fit_loss,
                    warmup_steps=c.warmup_steps,
                    lr_warmup=c.lr_warmup,
                    joint_steps=c.joint_steps,
                    lr_joint=c.lr_joint,
                    progress=progress,
                    history=history,
                    resume_phase=resume_phase,
                    optimizer_state=optim_state,
                    checkpoint=checkpoint if run is not None else None,
                    checkpoint_every=c.checkpoint_every,
                    stop=stop,
                    explode_ratio=c.explode_ratio,
                )
        except TrainingError as err:
            if run is None:
                raise
            if (run / CHECKPOINT_FILE).is_file():
                raise TrainingError(
                    f"{err}; the last good checkpoint is kept in {run / CHECKPOINT_FILE} "
                    "(lower the learning rates or check the data)"
                ) from err
            shutil.rmtree(run, ignore_errors=True)  # nothing worth keeping: no half-written run
            raise TrainingError(f"{err}; no checkpoint had been written, {run} removed") from err
        seconds = dict(self.history.seconds)
        t = time.perf_counter()
        post_gens = head.generators(c.seed + 3, dev, self._member_ids)
        with pyro.settings.context(module_local_params=True):
            post = head.finalize(
                self.model,
                self.guide,
                lambda: head.sample(plans, c.batch_size, c.sigma, post_gens),
                self._component_samplers(head, post_gens, plans),
            )
        if post is not None:  # the head's post-fit posterior (e.g. last_layer's Laplace)
            self.resolved["posterior_fit"] = post
            seconds["posterior_fit"] = time.perf_counter() - t
        self.history.seconds = {"srot": srot_seconds, **seconds}
        if self.model.learn_sigmas:  # internal units, as sigma_v / sigma_g
            sv, sg = self.model.noise_scales(self.guide)
            self.resolved.update(sigma_v_fitted=sv, sigma_g_fitted=sg)
        return self

    def _component_samplers(self, head, generators, plans) -> list[tuple[float, Any]] | None:
        """(weight, batch sampler) of the posterior components of heads that mix over them
        (``head.mixture_components`` > 0), None for the others: one per bootstrap resample of
        the cells, each resample's SROT at a setting allocated in proportion to the held-out-
        snapshot weights of an auto fit (the fit's own setting otherwise), as the ensemble's
        members are, so the components carry the cells' sampling noise and the choice of tau.
        ``plans`` are the fit's own, which warm-start the resamples' solves (not solved again)."""
        k = head.mixture_components
        if k == 0:
            return None
        r, c = self.resolved, self.config
        mixture = r.get("srot_mixture") or [{"eps": r["eps"], "tau": r["tau"], "weight": 1.0}]
        components = member_plans(
            self._internal,
            r["eps"],
            r["tau"],
            r["normalize_cost"],
            k,
            seed=c.seed + 5,  # not the ensemble's resamples: another head, its own draws
            bootstrap=True,
            settings=allocate_members(mixture, k),
            full=plans,
            device=self.device,
            **self.srot_options,
        )
        gen = next(iter(generators.values()))
        return [
            (1.0 / k, lambda p=p: sample_pairs(p, c.batch_size, c.sigma, gen)) for p in components
        ]

    # ------------------------------------------------------------------ posterior outputs
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
            step_size or self.resolved["step_size"],
        )
        disc = None if post.deterministic else self.resolved.get("mass_discrepancy")
        noise = None if not disc or disc["sd"] <= 0 else (disc["sd"], disc["dof"])
        x = traj.x
        if self.scaling is not None and not self.scaling.is_identity:
            x = self.scaling.to_user(traj.x).astype(traj.x.dtype)
        return Trajectories(traj.times, x, traj.log_w, members=traj.members, mass_noise=noise)

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
        return pd.DataFrame(summarise(draws, members=self.posterior.members))

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

    def to_anndata(
        self,
        adata,
        time_key: str | None = None,
        rep: str | None = None,
        samples: int = 200,
        key_added: str | None = None,
        inplace: bool = False,
        *,
        time_map: dict[str, float] | None = None,
        batch_size: int | None = None,
    ):
        """Write growth and velocity posteriors of every cell, at its own time, into AnnData.

        obsm["velocity_<basis>"] (+ "_sd") and uns["velocity_params"] (scVelo draws the
        stream plot from them as they are), layers["velocity"] in gene space for rep "X_pca"
        with varm["PCs"], obs growth_mean / sd / q05 / q50 / q95 / p_positive (moscot's growth
        vocabulary) and velocity_direction_spread, uns["vgfm_bayes"]; all keys prefixed by
        ``key_added + "_"`` when given (see posterior/anndata_io.py). Rows follow
        adata.obs_names. Works on a copy (returned) unless inplace=True.

        time_key, rep, time_map : default to what the fit recorded for AnnData input, else
            rep "X_pca" (see :meth:`fit`).
        batch_size : cells whose draws are held at once (default: a memory budget, at most
            4096); the draws are float32 and reduced to summaries per batch, so memory does not
            grow with samples x n_obs.
        """
        from .scverse import to_anndata

        return to_anndata(
            self,
            adata,
            time_key,
            rep,
            samples,
            key_added,
            inplace,
            time_map=read_time_map(time_map),
            batch_size=batch_size,
        )

    def posterior_growth_rates(
        self,
        adata,
        time_key: str | None = None,
        rep: str | None = None,
        samples: int = 200,
        *,
        time_map: dict[str, float] | None = None,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """Growth-rate posterior of every cell at its own time, per unit time, as a DataFrame
        indexed by adata.obs_names with columns growth_mean, growth_sd, growth_q05, growth_q50,
        growth_q95, growth_p_positive (the obs columns of :meth:`to_anndata`)."""
        from .scverse import growth_rates

        return growth_rates(
            self,
            adata,
            time_key,
            rep,
            samples,
            time_map=read_time_map(time_map),
            batch_size=batch_size,
        )

    def to_cellrank(
        self,
        adata,
        time_key: str | None = None,
        rep: str | None = None,
        *,
        time_map: dict[str, float] | None = None,
        inplace: bool = False,
        **kernel_options: Any,
    ):
        """A CellRank ``RealTimeKernel`` whose transition matrix comes from this fit.

        Its couplings between consecutive snapshots are the SROT plans that the fit trains on,
        recomputed on ``adata``'s cells at the fit's resolved settings (eps, tau, cost
        normalisation, internal units, the fitted masses when the times agree) and
        row-normalised: pi_ij / sum_j pi_ij is where cell i at t_k goes among the cells at
        t_{k+1}. Why the plans and not simulated trajectories: the plan couples observed cells
        to observed cells, which is what a RealTimeKernel holds (as moscot's and WOT's
        couplings); the fields' regression targets are drawn from it; it is deterministic, and
        simulated end points would first have to be snapped onto observed cells (a kNN choice
        of its own). It carries the fit's couplings, not the posterior spread of the fields.
        Memory: one dense n_k x n_{k+1} float64 plan per interval.

        The kernel works on a copy of ``adata`` (``kernel.adata``; CellRank estimators write
        there) unless inplace=True, with the numeric times as the ordered categorical
        obs["vgfm_time"] (CellRank needs a categorical it can sort). ``kernel_options`` go to
        ``RealTimeKernel.compute_transition_matrix``: threshold ("auto"), self_transitions
        ("connectivities": a kNN graph on ``rep`` for the last time point), conn_weight,
        conn_kwargs. Needs ``pip install vgfm-bayes[scverse]``.
        """
        from .scverse import to_cellrank

        return to_cellrank(
            self,
            adata,
            time_key,
            rep,
            time_map=read_time_map(time_map),
            inplace=inplace,
            **kernel_options,
        )

    # ------------------------------------------------------------------ persistence
    def save(
        self, run: str | Path, overwrite: bool = False, extra: dict[str, str] | None = None
    ) -> Path:
        """Write a run folder: config.json, weights.pt, history.json, data.npz (+ ``extra``
        text files by name, e.g. metrics.json).

        The folder is written under a temporary name and renamed into place, so a failed save
        never leaves a half-written run. The unfinished run folder this model was fitted into
        (``fit(run_dir=...)``) is replaced without ``overwrite``.
        """
        self._require_fitted()
        if self.is_partial:
            raise RunError(
                "this process holds only its share of a distributed ensemble; save on rank 0"
            )
        run = Path(run)
        if run.exists() and not run.is_dir():
            raise RunError(f"{run} exists and is a file; choose a folder name for the run")
        own = (
            (
                (run / FIT_FILE).is_file()
                and not (run / "config.json").exists()
                and {p.name for p in run.iterdir()} <= {FIT_FILE, CHECKPOINT_FILE, "data.npz"}
            )
            if run.is_dir()
            else False
        )
        if run.exists() and any(run.iterdir()) and not (overwrite or own):
            raise RunError(f"{run} already holds files; choose a new folder or pass overwrite")
        run.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run.name}.", dir=run.parent))
        try:
            meta = {
                "format_version": FORMAT_VERSION,
                "config": self.config.to_dict(),
                "resolved": self.resolved,
                "hold_out": self.hold_out,
                "scaling": self.scaling.to_dict() if self.scaling else None,
                "data": _data_meta(self.data),
                "anndata": self.source,
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
            _write_data(tmp / "data.npz", self.data)
            for name, text in (extra or {}).items():
                (tmp / name).write_text(text)
            if run.exists():
                # swap by renames: the old folder is only deleted once the new one is in place
                old = Path(tempfile.mkdtemp(prefix=f".{run.name}.old.", dir=run.parent))
                os.replace(run, old)
                os.replace(tmp, run)
                shutil.rmtree(old, ignore_errors=True)
            else:
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
            if (run / FIT_FILE).is_file():
                raise RunError(
                    f"{run}: an unfinished fit (interrupted or stopped); continue it with "
                    f"vgfm-bayes fit --resume {run}"
                )
            raise RunError(f"{run}: not a run folder (no config.json)")
        meta = _read_json(cfg_file)
        self, train_data = cls._restore(run, meta, device)
        self._build(self.scaling.apply(train_data), self.resolved)
        try:
            blob = torch.load(run / WEIGHTS_FILE, map_location=self.device, weights_only=True)
        except Exception as err:  # pickle / zip errors come in many types
            raise RunError(f"{run / WEIGHTS_FILE}: unreadable weights ({err})") from err
        if not isinstance(blob, dict) or blob.get("format_version") != FORMAT_VERSION:
            raise RunError(f"{run / WEIGHTS_FILE}: unknown weights format")
        try:
            self.guide.load_state_dict(blob["guide"])
        except RuntimeError as err:  # e.g. a head whose posterior format changed since
            raise RunError(
                f"{run / WEIGHTS_FILE}: the weights do not fit the {self.config.head!r} head of "
                f"this vgfm-bayes (saved by another version?); refit the run ({err})"
            ) from err
        hist = json.loads((run / "history.json").read_text())
        self.history = History(hist["warmup"], hist["joint"], hist["seconds"])
        return self

    def __repr__(self) -> str:
        state = f"fitted on {self.data!r}" if self.is_fitted and self.data else "not fitted"
        return f"VGFM(head={self.config.head!r}, {state})"
