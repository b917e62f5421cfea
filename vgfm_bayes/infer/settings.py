"""A fit's settings resolved from its data, before any training.

Every "auto" (None) value of a :class:`FitConfig` is filled in here from the training data and
the data set's name, and the result is what the fit (and its run folder) records as its
``resolved`` settings:

- SROT (eps, tau, normalize_cost): given, a bundled data set's own, or chosen by the
  held-out-snapshot score (ot/tune.py) with its table and the mixture of the best settings;
- the mass discrepancy of the Bayesian heads' mass intervals (ot/tune.py, also held out);
- n_effective (the pairs plate's size), the noise scales sigma_v / sigma_g (the
  VGFM-equivalent ones by default) and the Euler step size.

It also builds what follows from the config alone: the head (model/heads.py), which plans and
pair streams its batches come from (ot/members.py ``Members``), the coordinate scaling, and the
mini-batch SROT options.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ..data import DATASETS, Scaling, TimeCourse
from ..data.datasets import GENERIC_OT
from ..model import Head, get_head, vgfm_sigmas
from ..ot import Members
from ..ot.tune import tune_srot
from .config import ConfigError, FitConfig

log = logging.getLogger(__name__)

# what a fit produces (as opposed to the settings it resolves before training): saved apart
# from them since run format 2 (infer/run_folder.py), and split off when reading format 1
FIT_OUTPUTS = ("srot_fallbacks", "posterior_fit", "sigma_v_fitted", "sigma_g_fitted")


# heads kept for research but outside the model zoo (models/), and why
RESEARCH_HEADS = {
    "mean_field": "nothing in the data sets its temperature (kl_weight = {kl_weight:g}), so its "
    "intervals are not calibrated and its draws fit 2-5x worse than the point head's",
}


def check_config(config: FitConfig) -> None:
    """The config's own checks, and the head-dependent ones (before any work); a warning for a
    research head (``RESEARCH_HEADS``)."""
    config.validate()
    head_of(config)  # unknown head names and bad head options fail here
    if config.head in RESEARCH_HEADS:
        log.warning(
            "head %r is a research head, not in the model zoo: %s; for calibrated intervals "
            "use 'ensemble' or 'last_layer'",
            config.head,
            RESEARCH_HEADS[config.head].format(kl_weight=config.kl_weight),
        )
    if config.learn_sigmas and config.head == "ensemble":
        raise ConfigError("learn_sigmas is for single-network heads; the ensemble's are fixed")
    if config.members not in (None, 1) and config.head != "ensemble":
        raise ConfigError(
            f"members = {config.members} applies to the ensemble head only, not {config.head!r}"
        )


def head_of(config: FitConfig) -> Head:
    """The configured head (model.heads.Head) with its options from the config."""
    c = config
    options = {
        "n_members": c.members,
        "prior_scale": c.prior_scale,
        "init_scale": c.init_scale,
        "snapshot_conditioning": c.snapshot_conditioning,
    }
    return get_head(c.head, strict=False, **options)


def members_of(config: FitConfig, head: Head) -> Members:
    """Which plans and pair streams the head's regression batches come from (ot/members.py)."""
    return Members(head.n_members, bootstrap=config.bootstrap, tau_spread=config.tau_spread)


def srot_options(config: FitConfig, device: torch.device | str) -> dict[str, Any]:
    """Mini-batch SROT settings from the config (ot/minibatch.py), with a fresh generator for
    the partitions (seeded by seed + 2), so every solve that asks draws the same ones."""
    c = config
    return {
        "srot_batch": c.srot_batch,
        "srot_repeats": c.srot_repeats,
        "memory_mb": c.srot_memory_mb,
        "generator": torch.Generator(device=device).manual_seed(c.seed + 2),
    }


def fit_scaling(config: FitConfig, data: TimeCourse, train_data: TimeCourse) -> Scaling:
    """User units -> internal units: standardised on the training data (default for user data),
    or the identity (default for a bundled data set, whose SROT settings are in its units)."""
    standardize = config.standardize
    if standardize is None:
        standardize = data.name not in DATASETS
    return Scaling.fit(train_data) if standardize else Scaling.identity(data.dim)


def resolve_settings(
    config: FitConfig,
    data: TimeCourse,
    name: str,
    *,
    deterministic: bool,
    scale: float = 1.0,
) -> dict[str, Any]:
    """Fill every 'auto' (None) setting from the training data ``data`` and the data set's
    ``name`` (a bundled data set brings its SROT settings unless "auto" is asked).

    deterministic : the head's draws are all the same (point): its mass interval needs no
        held-out mass discrepancy.
    scale : the fit's internal unit of length in ``data``'s units (``Scaling.scale``): a
        setting on the raw cost applies to the cost in those units.
    """
    c = config
    sigma_v, sigma_g = vgfm_sigmas(data.dim)
    return {
        **resolve_srot(config, data, name, deterministic=deterministic, scale=scale),
        "n_effective": c.n_effective or float(data.counts[:-1].sum()),
        "sigma_v": c.sigma_v or sigma_v,
        "sigma_g": c.sigma_g or sigma_g,
        "step_size": c.step_size or float(np.diff(data.times).min()) / 10,
    }


def resolve_srot(
    config: FitConfig,
    data: TimeCourse,
    name: str,
    *,
    deterministic: bool,
    scale: float = 1.0,
) -> dict[str, Any]:
    """eps, tau, normalize_cost: given, bundled, or chosen by the held-out-snapshot score
    (ot/tune.py) with its table and the mixture of the best settings; for Bayesian heads also
    the held-out mass discrepancy. ``scale``: the fit's internal unit of length in ``data``'s
    units (``Scaling.scale``), where a raw-cost setting applies."""
    c = config
    ds = DATASETS[name].ot if name in DATASETS else {}
    auto = [
        k for k in ("eps", "tau") if getattr(c, k) == "auto" or (getattr(c, k) is None and not ds)
    ]
    if not auto:
        fixed = {
            k: getattr(c, k) if getattr(c, k) is not None else ds.get(k, GENERIC_OT[k])
            for k in GENERIC_OT
        }
        if deterministic:
            return fixed
        return {**fixed, "mass_discrepancy": fixed_discrepancy(fixed, data, c.seed, scale)}
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
    if not deterministic:
        out["mass_discrepancy"] = result.mass_discrepancy()
    return out


def fixed_discrepancy(
    fixed: dict[str, Any], data: TimeCourse, seed: int, scale: float
) -> dict | None:
    """The held-out mass discrepancy of a fixed SROT setting: the score (ot/tune.py) at that
    setting alone (on the raw cost in the fit's units when ``normalize_cost`` is False), so
    the mass interval reflects the plans the fit uses. Should that setting give no plan on a
    held-out fold, the score's own mixture over its grid stands in for it. None with fewer
    than 3 snapshots (nothing to hold out)."""
    if data.n_times < 3:
        return None
    raw = None if fixed["normalize_cost"] else scale
    one = tune_srot(data, taus=(fixed["tau"],), epss=(fixed["eps"],), seed=seed, raw_cost_scale=raw)
    found = one.mass_discrepancy()
    if found is not None:
        return found
    log.warning(
        "SROT at eps=%g tau=%g gives no plan between every other snapshot; the mass "
        "interval's discrepancy comes from the held-out-snapshot score's best settings",
        fixed["eps"],
        fixed["tau"],
    )
    return tune_srot(data, seed=seed, generic=GENERIC_OT).mass_discrepancy()


def split_resolved(resolved: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings, fit outputs) of a run format 1 ``resolved`` record, which held both."""
    settings = {k: v for k, v in resolved.items() if k not in FIT_OUTPUTS}
    return settings, {k: v for k, v in resolved.items() if k in FIT_OUTPUTS}
