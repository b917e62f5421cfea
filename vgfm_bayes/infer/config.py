"""Fit configuration: one flat, serialisable record of every setting a run used."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value or file that cannot be used."""


@dataclass
class FitConfig:
    """Settings of one fit. ``None`` means "choose from the data" (infer/settings.py).

    SROT (DESIGN 2.1): eps, tau, normalize_cost. "auto" chooses them from the data by the
    held-out-snapshot score (ot/tune.py) on the max-normalised cost; None means "auto" for user
    data and the authors' values for a bundled data set. Ensemble members are then spread over
    the best settings in proportion to their weights. At scale: srot_batch (source
    cells per mini-batch block; None = the full plan while it fits srot_memory_mb, else blocks),
    srot_repeats (random partitions averaged); see ot/minibatch.py for the approximation.
    Joint phase: fit_w1 = "emd" (exact W1 of the subsamples) or "sinkhorn" (debiased Sinkhorn
    divergence, stays on the device), fit_blur its eps as a fraction of the data's diameter.
    Networks: velocity_hidden / growth_hidden widths (default 128 x 3 for D <= 10, else 256 x 5).
    Likelihood: n_effective, the pairs plate's full size (default: source cells over all
    intervals); sigma_v / sigma_g fixed noise (default the VGFM-equivalent sqrt(D/2), 1/sqrt(2)),
    or with ``learn_sigmas`` their starting values, then fitted by MAP (Bayesian heads).
    ``snapshot_conditioning`` (last_layer): multiply the last layers' posterior by the
    snapshots' distribution-fit factor (model/snapshot_information.py); off by default.
    Training: warm-up SVI on the regression alone, then joint SVI with the simulated W1 and mass
    factor. ``shared_warmup`` (ensemble): the fraction of the warm-up's steps trained first as one
    network on every member's plans, whose weights then start every member (0: each member from
    its own initial weights; infer/trainer.py). step_size is the Euler step in user time units
    (default a tenth of the shortest interval).
    Reliability: with ``standardize`` the coordinates are centred and divided by their pooled
    root-mean-square spread before anything else; eps (on an unnormalised cost) and sigma are
    then in those standardised units, and every output is mapped back to the user's units.
    ``checkpoint_every`` steps between atomic checkpoints (0: only on a stop signal);
    ``explode_ratio`` how far the loss may rise above its starting level before training stops.
    """

    head: str = "point"
    members: int | None = None  # None: the head's default (1; ensemble 10)
    # SROT
    eps: float | str | None = None  # a number, "auto", or None (see above)
    tau: float | str | None = None
    normalize_cost: bool | None = None
    # SROT at scale (ot/minibatch.py): source cells per mini-batch block, None = auto (full plan
    # while it fits srot_memory_mb, else blocks); independent partitions averaged
    srot_batch: int | None = None
    srot_repeats: int = 1
    srot_memory_mb: float = 2048.0
    # networks
    velocity_hidden: list[int] | None = None
    growth_hidden: list[int] | None = None
    # likelihood
    n_effective: float | None = None
    sigma_v: float | None = None
    sigma_g: float | None = None
    prior_scale: float = 1.0
    kl_weight: float = 1.0  # tempered posterior (VGFMModel): < 1 lets the data outweigh the prior
    learn_sigmas: bool = False  # sigma_v, sigma_g fitted (MAP) from their starting values
    # last_layer: multiply the posterior by the snapshots' factor (model/snapshot_information.py)
    snapshot_conditioning: bool = False
    # head options (used by the heads that have them)
    bootstrap: bool = True  # ensemble: each member its own bootstrap of cells for SROT
    tau_spread: float = 0.0  # ensemble: members' tau log-uniform in tau * exp([-s, s])
    shared_warmup: float = 0.0  # ensemble: fraction of the warm-up trained as one shared network
    init_scale: float = 1e-2  # mean_field: initial sd of the AutoNormal guide
    # regression (warm-up)
    batch_size: int = 256
    sigma: float = 0.1
    warmup_steps: int = 2000
    lr_warmup: float = 1e-3
    # distribution fit (joint)
    joint_steps: int = 100
    lr_joint: float = 1e-4
    lambda_ot: float = 1.0
    lambda_mass: float = 1.0
    joint_particles: int = 1024
    joint_targets: int = 1024
    detach_intervals: bool = True
    step_size: float | None = None
    # reliability
    standardize: bool | None = None  # None: yes for user data, no for bundled benchmark data
    checkpoint_every: int = 500  # steps between checkpoints when fitting into a run folder
    explode_ratio: float = 1e6  # stop when |loss| exceeds this times the phase's first level
    fit_w1: str = "emd"  # training W1 on the subsamples: "emd" (exact, CPU) or "sinkhorn"
    fit_blur: float = 0.005  # Sinkhorn blur as a fraction of the data's diameter
    # run
    seed: int = 0
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FitConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown config key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> FitConfig:
        return cls.from_dict(read_config_file(path))

    def updated(self, **changes: Any) -> FitConfig:
        values = self.to_dict()
        values.update({k: v for k, v in changes.items() if v is not None})
        return FitConfig.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        positive = ["batch_size", "warmup_steps", "lr_warmup", "lr_joint", "prior_scale", "members"]
        positive += ["init_scale", "kl_weight"]
        for name in positive:
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ConfigError(f"config {name} must be positive, got {getattr(self, name)}")
        for name in [
            "joint_steps",
            "lambda_ot",
            "lambda_mass",
            "sigma",
            "checkpoint_every",
            "tau_spread",
        ]:
            if getattr(self, name) < 0:
                raise ConfigError(f"config {name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.shared_warmup < 1:
            raise ConfigError(f"config shared_warmup must be in [0, 1), got {self.shared_warmup}")
        if self.shared_warmup > 0 and self.head != "ensemble":
            raise ConfigError(f"config shared_warmup is an ensemble option, not {self.head!r}'s")
        if self.snapshot_conditioning and self.head != "last_layer":
            raise ConfigError(
                f"config snapshot_conditioning is a last_layer option, not {self.head!r}'s"
            )
        for name in ["eps", "tau"]:
            v = getattr(self, name)
            if isinstance(v, str):
                if v != "auto":
                    raise ConfigError(
                        f"config {name} must be a positive number or 'auto', got {v!r}"
                    )
            elif v is not None and not v > 0:
                raise ConfigError(f"config {name} must be positive or 'auto', got {v}")
        for name in ["n_effective", "sigma_v", "sigma_g", "step_size"]:
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ConfigError(f"config {name} must be positive, got {v}")
        if not self.explode_ratio > 1:
            raise ConfigError(f"config explode_ratio must be > 1, got {self.explode_ratio}")
        if self.srot_batch is not None and self.srot_batch < 2:
            raise ConfigError(f"config srot_batch must be >= 2 or unset, got {self.srot_batch}")
        for name in ["srot_repeats", "srot_memory_mb", "fit_blur"]:
            if not getattr(self, name) > 0:
                raise ConfigError(f"config {name} must be positive, got {getattr(self, name)}")
        if self.fit_w1 not in ("emd", "sinkhorn"):
            raise ConfigError(f"config fit_w1 must be 'emd' or 'sinkhorn', got {self.fit_w1!r}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be cpu or cuda[:N], got {self.device!r}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a .toml or .json config; TOML tables are flattened ([ot] eps = ... -> eps)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        if path.suffix == ".json":
            raw = json.loads(path.read_text())
        else:
            raw = tomllib.loads(path.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not a valid config file ({err})") from err
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict) and key != "extra":
            flat.update(value)
        else:
            flat[key] = value
    return flat
