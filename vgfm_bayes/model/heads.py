"""Heads of the zoo: which weights are random, their priors, and the guide that fits them.

A head adds only what differs from the point head (the base class):

========== ============================================ ===============================
head       weights                                      guide
========== ============================================ ===============================
point      one block, flat prior                        AutoDelta (maximum likelihood)
ensemble   one block per member, flat prior; each       AutoDelta with a member dim
           member its own init (its own bootstrap of
           cells for SROT: ot/members.py)
last_layer every weight flat (the point head's fit);   AutoDelta, then the exact
           then a Gaussian on the last layer of v and   Gaussian of the last layer given
           g, mixed over bootstrap x SROT-setting       the body's features (laplace.py)
           components
mean_field every weight Normal                          AutoNormal (mean field)
========== ============================================ ===============================

What a head's regression batches are drawn from (one network's plans, or each member's plans
on its own bootstrap of the cells, with its own pair stream) is data preparation, decided in
ot/members.py (``Members``) from the head's ``n_members``; a head never touches the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from pyro import poutine
from pyro.distributions.transforms import AffineTransform, ComposeTransform, ExpTransform
from pyro.infer.autoguide import AutoDelta, AutoGuideList, AutoNormal
from pyro.infer.autoguide.initialization import InitMessenger, init_to_value
from torch.distributions import biject_to, transform_to

from ..nn import Fields
from ..ot import member_seed
from .laplace import LaplaceGuide, set_mixture
from .snapshot_information import condition_on_snapshots
from .vgfm import Block, Prior, VGFMModel, vgfm_sigmas


class _FastPositive(torch.distributions.constraints._GreaterThan):
    """Positive, reached through exp(rate * u): an optimiser step of size lr in u moves
    log(scale) by rate * lr, so guide scales started far from their optimum get there within a
    normal run (with softplus and lr 1e-3, moving a scale by a factor 10 takes ~2,300 steps)."""

    def __init__(self, rate: float) -> None:
        super().__init__(0.0)
        self.rate = rate


@biject_to.register(_FastPositive)
@transform_to.register(_FastPositive)
def _fast_positive_transform(constraint: _FastPositive):
    return ComposeTransform([AffineTransform(0.0, constraint.rate), ExpTransform()])


class ScaledAutoNormal(AutoNormal):
    """AutoNormal whose scales move ``SCALE_RATE`` times faster under the optimiser."""

    SCALE_RATE = 10.0
    scale_constraint = _FastPositive(SCALE_RATE)


@dataclass(frozen=True)
class Head:
    """A head = blocks of weights with their priors + a guide family (+ a post-fit step).

    The base class is the point head (deterministic VGFM): one block of all weights with a flat
    prior and an AutoDelta guide, so the fit is maximum likelihood. Other heads override only
    ``blocks``, ``build_guide``, ``finalize`` and, for ensembles, ``init_weights``.

    Attributes
    ----------
    n_members : K independent networks trained as one vectorised batch (1: a single network).
    prior_scale : prior sd of a Normal block is prior_scale / sqrt(fan_in).
    deterministic : every posterior draw is the same (no need for S > 1).
    mixture_components : posterior components from bootstrap resamples x SROT settings (0:
        none; see ``finalize``).
    """

    name: str = "point"
    n_members: int = 1
    prior_scale: float = 1.0
    deterministic: bool = True
    mixture_components: int = 0

    @property
    def is_ensemble(self) -> bool:
        """The posterior's draws are the members (intervals: posterior/intervals.py)."""
        return self.n_members > 1

    def init_weights(
        self, fields: Fields, seed: int, device, member_ids: list[int] | None = None
    ) -> dict[str, torch.Tensor]:
        """Initial weights (torch.nn.Linear's law) from ``seed``."""
        return fields.init((), generator=torch.Generator().manual_seed(seed), device=device)

    def blocks(self, fields: Fields) -> dict[str, Block]:
        return {"weights": Block(tuple(fields.shapes()), Prior("flat"))}

    def build_guide(self, model: VGFMModel, init: Mapping[str, torch.Tensor]):
        """AutoDelta started at the network's initial weights (flat priors cannot be sampled)."""
        return AutoDelta(model, init_loc_fn=init_to_value(values=model.initial_values(init)))

    def finalize(self, model: VGFMModel, guide, sample, settings=None, fit=None) -> dict | None:
        """Post-fit step once training has finished (not after an interrupted phase).

        sample : zero-argument callable returning one regression batch of the trained setting.
        settings : for heads with ``mixture_components``: [(weight, sampler or None), ...], one
            per component (bootstrap resample x SROT setting; None: the trained plans, i.e.
            ``sample``), or None.
        fit : the joint phase's DistributionFit (None without joint steps).
        Returns a JSON-able record for the run's resolved settings, or None (nothing to do).
        """
        return None


@dataclass(frozen=True)
class EnsembleHead(Head):
    """K point networks, trained as one batch: weights (K, ...), pairs (K, B, D); the
    posterior's draws are the members. They start from their own initial weights, or with the
    config's ``shared_warmup`` from one network trained on all of them (infer/trainer.py).

    Each member also sees its own bootstrap of the cells for its SROT plans (and, with the
    config's ``tau_spread`` or an auto fit's mixture, its own tau): ot/members.py.
    """

    name: str = "ensemble"
    n_members: int = 5
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.n_members < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {self.n_members}")

    def init_weights(self, fields, seed, device, member_ids=None):
        """Member k's weights from its own seed (:func:`member_seed`), whoever trains it."""
        ids = range(self.n_members) if member_ids is None else member_ids
        inits = [
            fields.init((), generator=torch.Generator().manual_seed(member_seed(seed, m)))
            for m in ids
        ]
        return {name: torch.stack([i[name] for i in inits]).to(device) for name in inits[0]}


@dataclass(frozen=True)
class LastLayerHead(Head):
    """Bayesian last layer of both networks: exact Gaussian given the MAP body's features.

    Training is the point head's (AutoDelta over every site, flat priors; ``map_prior`` puts a
    Normal prior, sd = prior_scale / sqrt(fan_in), on the last layers instead). Then
    :meth:`finalize` fixes the body and, per output, computes the Gaussian posterior of the
    last layer's (weights, bias) given the last hidden layer's features at ``laplace_batches``
    regression batches of the SROT plans: covariance (alpha I + beta (n_effective / N)
    Phi^T Phi)^{-1}, alpha and beta maximising the evidence, mean the fitted weights
    (model/laplace.py); exact, since the model is linear-Gaussian in the last layer (checked
    against NUTS in the tests), mixed over ``mixture_components`` bootstrap x SROT-setting
    components (see :meth:`finalize`).

    laplace_batches : regression batches for the features. 32 batches at batch size 256 are
        8,192 pairs per interval (32,768 on simulation_gene's four), i.e. hundreds of pairs per
        feature (128 hidden + bias): the Gram matrix's sampling error is ~1%, and the cost is a
        few forward passes.
    """

    name: str = "last_layer"
    deterministic: bool = False
    laplace_batches: int = 32
    mixture_components: int = 10
    # multiply the posterior by the distribution-fit factor's Gauss-Newton approximation
    # (model/snapshot_information.py). Off by default: at the model's factor weight it makes
    # the growth intervals over-confident (90% coverage 0.13 on the reweighting simulator, 0.21
    # on tests/heads/test_heads_learn.py's), while the draws' W1 improves (per draw, dyngen
    # 0.91 -> 0.44, simulation_gene 0.091 -> 0.055; see models/last_layer/about.md)
    snapshot_conditioning: bool = False
    # the last layers' prior while training: False = flat, so the fit is the point head's own
    # (maximum likelihood) and the Gaussian's prior precision comes from the evidence alone;
    # True = Normal(0, prior_scale / sqrt(fan_in)) (a fixed weight decay that, against the
    # VGFM-equivalent sigma_v = sqrt(D/2), shrinks the last layer ~1000x harder than the
    # evidence does: W1 0.049 vs the point head's 0.036 on simulation_gene)
    map_prior: bool = False

    def blocks(self, fields: Fields) -> dict[str, Block]:
        last = tuple(fields.last_layer_names())
        body = tuple(n for n in fields.shapes() if n not in last)
        prior = Prior("normal", self.prior_scale) if self.map_prior else Prior("flat")
        return {"body": Block(body, Prior("flat")), "last": Block(last, prior)}

    def build_guide(self, model: VGFMModel, init: Mapping[str, torch.Tensor]):
        """AutoDelta (MAP) over every site, carrying the last layers' Gaussian buffers."""
        return LaplaceGuide(model, init_loc_fn=init_to_value(values=model.initial_values(init)))

    def finalize(self, model: VGFMModel, guide, sample, settings=None, fit=None) -> dict:
        """The Gaussian posterior, mixed over ``settings``' components: component s is the same
        Gaussian shifted by the change of the last layers' regression solution between the
        trained plans' targets and component s's (a bootstrap resample of the cells, its SROT
        at a setting drawn by the held-out-snapshot weights; model/laplace.py), so the draws
        carry the cells' sampling noise and what the choice of tau does, as an ensemble's
        members do, while the body stays the point fit's."""
        batches = [sample() for _ in range(self.laplace_batches)]
        record = guide.fit_laplace(batches)
        if settings:
            components = [
                (w, batches if s is None else [s() for _ in range(self.laplace_batches)])
                for w, s in settings
            ]
            set_mixture(guide, batches, components)
            record["mixture_components"] = len(components)
        if fit is not None and self.snapshot_conditioning:
            record.update(condition_on_snapshots(guide, fit, vgfm_sigmas(model.fields.dim)))
        return record


@dataclass(frozen=True)
class MeanFieldHead(Head):
    """Every weight Bayesian: Normal priors (sd = prior_scale / sqrt(fan_in)), AutoNormal guide.

    One block per network (velocity, growth) keeps the model to two sample sites.
    """

    name: str = "mean_field"
    deterministic: bool = False
    init_scale: float = 1e-2

    def blocks(self, fields: Fields) -> dict[str, Block]:
        names = list(fields.shapes())
        prior = Prior("normal", self.prior_scale)
        return {
            "velocity": Block(tuple(n for n in names if n.startswith("v.")), prior),
            "growth": Block(tuple(n for n in names if n.startswith("g.")), prior),
        }

    def build_guide(self, model: VGFMModel, init: Mapping[str, torch.Tensor]):
        init = init_to_value(values=model.initial_values(init))
        if not model.noise_sites:
            return ScaledAutoNormal(model, init_loc_fn=init, init_scale=self.init_scale)
        started = InitMessenger(init)(model)
        guide = AutoGuideList(started)
        noise = model.noise_sites  # learned noise scales: MAP
        guide.append(AutoDelta(poutine.block(started, expose=noise), init_loc_fn=init))
        guide.append(
            ScaledAutoNormal(
                poutine.block(started, hide=noise), init_loc_fn=init, init_scale=self.init_scale
            )
        )
        return guide


HEADS: dict[str, type[Head]] = {
    "point": Head,
    "ensemble": EnsembleHead,
    "last_layer": LastLayerHead,
    "mean_field": MeanFieldHead,
}


def get_head(name: str, strict: bool = True, **options) -> Head:
    """The head ``name`` with ``options`` (its dataclass fields); None keeps a default.

    strict=False drops options the head does not have (a config carries every head's options).
    """
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; available: {', '.join(HEADS)}")
    cls = HEADS[name]
    known = set(cls.__dataclass_fields__) - {"name"}
    unknown = sorted(set(options) - known)
    if unknown and strict:
        raise ValueError(f"head {name!r} has no option(s) {', '.join(unknown)}")
    kept = {k: v for k, v in options.items() if k in known and v is not None}
    return cls(name=name, **kept)
