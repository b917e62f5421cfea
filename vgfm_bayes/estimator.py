"""The user-facing model: data in, prepare, fit, outputs out, save / load.

Like scvi-tools' model classes this wraps the tensors-only Pyro module (``model.VGFMModel``
plus its guide) with what users handle: time courses or AnnData, devices, seeds, run folders
and summaries as numpy / pandas. The work is done by the stages below it:

- settings resolved from the data, the head and its members' data: infer/settings.py;
- SROT plans and growth targets (one network's, or each member's on its own bootstrap):
  ot/members.py, solved by :meth:`VGFM.prepare` before any training;
- model building, the SVI phases with checkpoints and signals, the distributed gather:
  infer/trainer.py;
- run folders (atomic writes, format versions): infer/run_folder.py;
- posterior outputs in user units, evaluation, ArviZ: the ``PosteriorOutputs`` mixin
  (outputs.py); AnnData and CellRank: the ``ScverseOutputs`` mixin (scverse.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .data import Scaling, TimeCourse, as_timecourse, read_time_map
from .infer import ConfigError, FitConfig, History, load_checkpoint, trainer
from .infer import run_folder as runs
from .infer import settings as resolve
from .infer.run_folder import RunError
from .nn import Fields
from .outputs import PosteriorOutputs
from .scverse import ScverseOutputs

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["VGFM", "RunError"]


class VGFM(PosteriorOutputs, ScverseOutputs):
    """Joint velocity-growth flow matching with a head from the zoo.

    Parameters
    ----------
    config : FitConfig, dict, or None (defaults).
    **overrides : FitConfig fields, e.g. ``head="point"``, ``seed=1``, ``device="cuda"``.

    A fit has two stages: :meth:`prepare` (data in, settings resolved, SROT plans solved; see
    ``settings``, ``plans`` and :meth:`growth_targets`), then :meth:`fit` (training). ``fit``
    with data does both.

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
        resolve.check_config(self.config)  # unknown heads and bad settings fail before any work
        self.data: TimeCourse | None = None  # the full time course (held-out snapshot included)
        self.hold_out: int | None = None
        self.scaling: Scaling | None = None  # user units <-> internal (standardised) units
        # for AnnData input: {"time_key", "rep", "time_map", "labels"} (data.sources.as_timecourse)
        self.source: dict[str, Any] | None = None
        self.settings: dict[str, Any] = {}  # resolved before training (infer/settings.py)
        self.fit_info: dict[str, Any] = {}  # what the fit produced (SROT fallbacks, ...)
        self.model = None  # model.VGFMModel
        self.guide = None
        self.history: History | None = None
        self._prepared: trainer.Prepared | None = None  # plans waiting for fit()
        self._share = (0, 1)  # (rank, world): which slice of an ensemble's members this trains

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
    def head(self):
        """The configured head (model.heads.Head) with its options from the config."""
        return resolve.head_of(self.config)

    @property
    def _members(self):
        return resolve.members_of(self.config, self.head)

    @property
    def _member_ids(self) -> list[int]:
        return self._members.ids(*self._share)

    @property
    def fields(self) -> Fields | None:
        """The fitted networks' architecture (the model's own)."""
        return None if self.model is None else self.model.fields

    @property
    def resolved(self) -> dict[str, Any]:
        """Every resolved setting and fit record in one dict (a read-only view: ``settings``
        and ``fit_info`` merged, as run format 1 saved them)."""
        return {**self.settings, **self.fit_info}

    @property
    def plans(self) -> list | None:
        """The prepared SROT plans (internal units) until :meth:`fit` trains on them."""
        return None if self._prepared is None else self._prepared.plans

    @property
    def is_fitted(self) -> bool:
        return self.guide is not None

    @property
    def is_partial(self) -> bool:
        """True on the ranks > 0 of a distributed fit: they hold only their members."""
        return self._share != (0, 1)

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("the model is not fitted yet: call fit() or VGFM.load(run)")

    def _srot_options(self) -> dict[str, Any]:
        return resolve.srot_options(self.config, self.device)

    # ------------------------------------------------------------------ prepare and fit
    def prepare(
        self,
        data,
        hold_out: int | None = None,
        *,
        time_key: str | None = None,
        rep: str | None = None,
        masses=None,
        time_map: dict[str, float] | None = None,
    ) -> VGFM:
        """Read the data, resolve every setting and solve the SROT plans; no training.

        Arguments as for :meth:`fit`. Afterwards ``settings`` holds the resolved settings
        (eps, tau, normalize_cost, n_effective, sigma_v, sigma_g, step_size and, for auto or
        Bayesian fits, the tuning table, mixture and mass discrepancy), ``plans`` the SROT plans
        and :meth:`growth_targets` the per-cell growth targets; :meth:`fit` (without data) then
        trains on them, with the same result as ``fit(data)``. Discards an earlier fit.
        """
        data, source = as_timecourse(data, time_key, rep, masses, read_time_map(time_map))
        train_data = data if hold_out is None else data.without(hold_out)
        c = self.config
        trainer.seed_everything(c.seed)
        self.data, self.hold_out, self.source = data, hold_out, source
        self.model = self.guide = self.history = None
        self.scaling = resolve.fit_scaling(c, data, train_data)
        self.settings = resolve.resolve_settings(
            c,
            train_data,
            data.name,
            deterministic=self.head.deterministic,
            scale=self.scaling.scale,
        )
        self._solve(self.scaling.apply(train_data))
        return self

    def _solve(self, internal: TimeCourse) -> None:
        self._prepared = trainer.prepare_plans(
            self._members,
            internal,
            self.settings,
            seed=self.config.seed,
            device=self.device,
            srot_options=self._srot_options(),
            member_ids=self._member_ids,
        )
        self.fit_info = {"srot_fallbacks": self._prepared.fallbacks}

    def growth_targets(self) -> pd.DataFrame:
        """The prepared plans' per-cell growth targets, one row per source cell and interval
        (and member, for an ensemble: its bootstrap resample's cells): [member], interval, t0,
        t1 (user time), cell (the cell's row in its snapshot of the training data: ``data``
        without the held-out snapshot), row_sum (the mass it becomes at t1) and
        growth_target = log(row_sum) / dt, per unit time."""
        if self._prepared is None:
            raise RuntimeError(
                "no prepared plans (fit() releases them once trained on): call prepare(data)"
            )
        import pandas as pd  # pandas on first use: 0.6 s of every command's start-up otherwise

        p = self._prepared
        cols = self._members.targets(p.plans, p.internal.counts, self.config.seed, p.member_ids)
        return pd.DataFrame(cols)

    def fit(
        self,
        data=None,
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
        """Fit on a TimeCourse, AnnData, CSV / .h5ad path or bundled data set name (or, with
        data None, on what :meth:`prepare` made).

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
            self._share = trainer.distributed_share(self.head, run_dir)
        run = None if run_dir is None else Path(run_dir)
        if run is not None:
            runs.check_new(run)
        if data is not None:
            self.prepare(
                data, hold_out, time_key=time_key, rep=rep, masses=masses, time_map=time_map
            )
        elif self._prepared is None:
            raise RuntimeError("fit() needs data, or call prepare(data) first")
        elif (hold_out is not None and hold_out != self.hold_out) or any(
            a is not None for a in (time_key, rep, masses, time_map)
        ):
            raise ValueError(
                "hold_out, time_key, rep, masses and time_map are prepare()'s: pass them there, "
                "or pass the data here"
            )
        elif self._prepared.member_ids != self._member_ids:  # made for another share
            self._solve(self._prepared.internal)
        if run is not None:
            run.mkdir(parents=True, exist_ok=True)
            runs.write_fit_record(run, self._meta(), self.data)
        internal = self._prepared.internal
        self._train(run, progress=progress)
        if self._share[1] > 1:
            mine = trainer.Fitted(self.model, self.guide, self.history, self.fit_info)
            whole = trainer.gather_members(
                self.config, self.head, self.settings, internal, self.device, mine
            )
            if whole is not None:
                self._share = (0, 1)
                self._adopt(whole)
        return self

    def _train(self, run: Path | None, *, progress: bool, state=None) -> VGFM:
        """Train on the prepared plans, which are released afterwards (as memory)."""
        prepared, self._prepared = self._prepared, None
        fitted = trainer.train_fit(
            self.config,
            self.head,
            self._members,
            self.settings,
            prepared,
            device=self.device,
            member_ids=self._member_ids,
            srot_options=self._srot_options,
            run=run,
            progress=progress,
            state=state,
        )
        self._adopt(fitted)
        return self

    def _adopt(self, fitted: trainer.Fitted) -> None:
        self.model, self.guide, self.history = fitted.model, fitted.guide, fitted.history
        self.fit_info = {**self.fit_info, **fitted.fit_info}

    @classmethod
    def _restore(cls, run: Path, meta: dict, device: str | None) -> tuple[VGFM, TimeCourse]:
        """A model with the config, data, hold-out, settings and scaling of a run folder's
        metadata (fit.json or config.json); returns it and its training data (user units)."""
        config = FitConfig.from_dict(meta["config"])
        if device is not None:
            config = config.updated(device=device)
        self = cls(config)
        self.data = runs.read_data(run, meta)
        self.hold_out = meta["hold_out"]
        self.settings = dict(meta["resolved"])
        self.fit_info = dict(meta.get("fit_info") or {})
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
        self, train_data = cls._restore(run, runs.unfinished_meta(run), device)
        state = None
        if (run / runs.CHECKPOINT_FILE).is_file():
            state = load_checkpoint(run / runs.CHECKPOINT_FILE, map_location=self.device)
        self._solve(self.scaling.apply(train_data))
        return self._train(run, progress=progress, state=state)

    # ------------------------------------------------------------------ persistence
    def _meta(self) -> dict[str, Any]:
        """The run folder's metadata (infer/run_folder.py), format version added there."""
        meta = {
            "config": self.config.to_dict(),
            "resolved": self.settings,
            "fit_info": self.fit_info,
            "hold_out": self.hold_out,
            "scaling": self.scaling.to_dict() if self.scaling else None,
            "data": runs.data_meta(self.data),
            "anndata": self.source,
        }
        if self.fields is not None:
            f = self.fields
            meta["fields"] = {
                "dim": f.dim,
                "velocity_hidden": list(f.velocity.hidden),
                "growth_hidden": list(f.growth.hidden),
                "t_start": f.t_start,
                "t_span": f.t_span,
            }
        return meta

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
        return runs.write_run(
            Path(run),
            self._meta(),
            self.guide.state_dict(),
            self.history,
            self.data,
            extra=extra,
            overwrite=overwrite,
        )

    @classmethod
    def load(cls, run: str | Path, device: str | None = None) -> VGFM:
        """Load a run folder written by :meth:`save` (weights read with weights_only=True);
        run format 1 folders (vgfm-bayes before the estimator split) load too."""
        run = Path(run)
        self, train_data = cls._restore(run, runs.finished_meta(run), device)
        internal = self.scaling.apply(train_data)
        self.model, self.guide = trainer.build(
            self.config, self.head, internal, self.settings, self.device, self._member_ids
        )
        state = runs.read_weights(run, self.device)
        try:
            self.guide.load_state_dict(state)
        except RuntimeError as err:  # e.g. a head whose posterior format changed since
            raise RunError(
                f"{run / runs.WEIGHTS_FILE}: the weights do not fit the {self.config.head!r} "
                f"head of this vgfm-bayes (saved by another version?); refit the run ({err})"
            ) from err
        self.history = runs.read_history(run)
        return self

    def __repr__(self) -> str:
        state = f"fitted on {self.data!r}" if self.is_fitted and self.data else "not fitted"
        return f"VGFM(head={self.config.head!r}, {state})"
