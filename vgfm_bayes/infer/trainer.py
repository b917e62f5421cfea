"""Training a fit: the model and guide built from the prepared data, the SVI phases (svi.py)
with checkpoints and stop signals (checkpoint.py), the head's post-fit step, and the gather of
a distributed ensemble's members (distributed.py).

Everything here works in internal units on tensors; the user-facing ``VGFM`` (estimator.py)
owns data in, outputs out and run folders, and calls :func:`prepare_plans`, :func:`train_fit`,
:func:`build` and :func:`gather_members`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

from ..data import TimeCourse
from ..model import DistributionFit, Head, VGFMModel
from ..nn import Fields
from ..ot import Members, PairBatch, component_plans, sample_pairs
from . import distributed
from .adam import Adam
from .checkpoint import capture_rng, restore_rng, save_checkpoint, stop_on_signals
from .config import ConfigError, FitConfig
from .run_folder import CHECKPOINT_FILE
from .svi import History, TrainingError, run_phase, train

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed torch's, Python's and NumPy's global generators (Pyro's samplers draw from them)."""
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)


@dataclass
class Prepared:
    """The SROT plans of a fit's training data, solved before any training.

    internal : the training data in internal units (what the plans were solved on).
    plans : one network's plans (ot/targets.py, one per interval) or the members' plans
        (ot/members.py, stacked per interval when dense).
    member_ids : the members they were solved for (ensembles: one process's share).
    seconds : wall time of the solves.
    fallbacks : a record per plan whose solve needed SROT's safe mode.
    """

    internal: TimeCourse
    plans: list
    member_ids: list[int]
    seconds: float
    fallbacks: list[dict] = field(default_factory=list)


@dataclass
class Fitted:
    """A trained guide with its model, loss history and what the fit produced besides
    (``fit_info``: a head's post-fit record, fitted noise scales)."""

    model: VGFMModel
    guide: Any
    history: History
    fit_info: dict[str, Any] = field(default_factory=dict)


def prepare_plans(
    members: Members,
    internal: TimeCourse,
    settings: Mapping[str, Any],
    *,
    seed: int,
    device: torch.device | str,
    srot_options: Mapping[str, Any],
    member_ids: Sequence[int],
) -> Prepared:
    """Solve the SROT plans the regression batches are drawn from (ot/members.py)."""
    t = time.perf_counter()
    fallbacks: list[dict] = []
    plans = members.plans(
        internal,
        settings,
        seed=seed,
        device=device,
        fallbacks=fallbacks,
        srot_options=srot_options,
        member_ids=member_ids,
    )
    return Prepared(internal, plans, list(member_ids), time.perf_counter() - t, fallbacks)


def build(
    config: FitConfig,
    head: Head,
    internal: TimeCourse,
    settings: Mapping[str, Any],
    device: torch.device,
    member_ids: Sequence[int],
    init: Mapping[str, torch.Tensor] | None = None,
) -> tuple[VGFMModel, Any]:
    """The Pyro model on the training data's time span and the head's guide, started at
    ``init`` (named weights), by default the head's initial weights of ``member_ids`` (an
    ensemble's share; all members by default)."""
    c = config
    t0, t1 = float(internal.times[0]), float(internal.times[-1])
    fields = Fields.build(
        internal.dim,
        t0,
        t1 - t0,
        c.velocity_hidden and tuple(c.velocity_hidden),
        c.growth_hidden and tuple(c.growth_hidden),
    )
    ids = list(member_ids)
    member_shape = (len(ids),) if head.is_ensemble else ()
    if init is None:
        init = head.init_weights(fields, c.seed, device, ids)
    with pyro.settings.context(module_local_params=True):
        model = VGFMModel(
            fields,
            head.blocks(fields),
            settings["sigma_v"],
            settings["sigma_g"],
            settings["n_effective"],
            member_shape,
            kl_weight=c.kl_weight,
            learn_sigmas=c.learn_sigmas,
        )
        guide = head.build_guide(model, init)
        guide(None)  # autoguides create their parameters on the first call
    guide.to(device)
    return model, guide


def _distribution_fit(config, model, internal, settings, device, generator):
    """The joint phase's simulated W1 + mass term (None without joint steps)."""
    c = config
    if c.joint_steps <= 0:
        return None
    tensors = [torch.tensor(x, dtype=torch.float32, device=device) for x in internal.x]
    return DistributionFit(
        model.fields,
        tensors[0],
        tensors[1:],
        torch.tensor(internal.times, dtype=torch.float32, device=device),
        torch.tensor(np.log(internal.masses), dtype=torch.float32, device=device),
        lambda_ot=c.lambda_ot,
        lambda_mass=c.lambda_mass,
        step_size=settings["step_size"],
        n_particles=c.joint_particles,
        n_targets=c.joint_targets,
        detach_intervals=c.detach_intervals,
        member_shape=model.member_shape,
        generator=generator,
        w1=c.fit_w1,
        blur=c.fit_blur,
    )


def train_fit(
    config: FitConfig,
    head: Head,
    members: Members,
    settings: Mapping[str, Any],
    prepared: Prepared,
    *,
    device: torch.device,
    member_ids: Sequence[int],
    srot_options: Callable[[], Mapping[str, Any]],
    run: Path | None = None,
    progress: bool = True,
    state: Mapping[str, Any] | None = None,
) -> Fitted:
    """Build the model and guide and train them on ``prepared``'s plans (warm-up, then joint),
    then run the head's post-fit step.

    run : an unfinished run folder to checkpoint into; SIGINT / SIGTERM then stop after the
        current step with a checkpoint (TrainingInterrupted). A diverged fit keeps its last
        good checkpoint, or removes the folder when none was written.
    state : a checkpoint to continue from (its weights, optimiser, phase and random states).
    srot_options : a fresh set of mini-batch SROT options (settings.srot_options) per call.
    """
    c = config
    seed_everything(c.seed)  # training starts from the seed, however the plans were made
    shared = shared_steps(c, head)
    start, history = None, None
    if shared and state is None:
        try:
            start, seconds = shared_start(
                c, head, members, settings, prepared, device, member_ids, shared, progress
            )
        except TrainingError as err:
            if run is not None:  # nothing worth keeping yet: no half-written run
                shutil.rmtree(run, ignore_errors=True)
            raise TrainingError(f"{err} (the ensemble's shared warm-up)") from err
        history = History(seconds={"warmup": seconds})
    c = dataclasses.replace(c, warmup_steps=c.warmup_steps - shared)  # the members' own steps
    model, guide = build(c, head, prepared.internal, settings, device, member_ids, start)
    pair_gens = members.generators(c.seed, device, member_ids)
    sampler = members.sampler(prepared.plans, c.batch_size, c.sigma, pair_gens)
    fit_gen = torch.Generator(device=device).manual_seed(c.seed + 1)
    fit_loss = _distribution_fit(c, model, prepared.internal, settings, device, fit_gen)
    generators = {**pair_gens, "fit": fit_gen}
    resume_phase, optim_state = None, None
    if state is not None:
        guide.load_state_dict(state["guide"])
        restore_rng(state["rng"], generators)
        h = state["history"]
        history = History(list(h["warmup"]), list(h["joint"]), dict(h["seconds"]))
        resume_phase, optim_state = state["phase"], state["optimizer"]
        log.info("resuming %s from %s step %d", run, resume_phase, len(h[state["phase_key"]]))

    def checkpoint(phase: str, optim: Adam, hist: History) -> None:
        blob = {
            "phase": phase,
            "phase_key": "warmup" if phase == "warm-up" else "joint",
            "history": {"warmup": hist.warmup, "joint": hist.joint, "seconds": hist.seconds},
            "optimizer": optim.state_dict(),
            "guide": {k: v.detach() for k, v in guide.state_dict().items()},
            "rng": capture_rng(generators),
        }
        save_checkpoint(run / CHECKPOINT_FILE, blob)

    stop_ctx = stop_on_signals() if run is not None else contextlib.nullcontext()
    try:
        with stop_ctx as stop, pyro.settings.context(module_local_params=True):
            history = train(
                model,
                guide,
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
    fitted = Fitted(model, guide, history)
    seconds = dict(history.seconds)
    t = time.perf_counter()
    post_gens = members.generators(c.seed + 3, device, member_ids)
    with pyro.settings.context(module_local_params=True):
        post = head.finalize(
            model,
            guide,
            members.sampler(prepared.plans, c.batch_size, c.sigma, post_gens),
            _component_samplers(c, head, settings, prepared, post_gens, device, srot_options),
            fit_loss,
        )
    if post is not None:  # the head's post-fit posterior (e.g. last_layer's Laplace)
        fitted.fit_info["posterior_fit"] = post
        seconds["posterior_fit"] = time.perf_counter() - t
    history.seconds = {"srot": prepared.seconds, **seconds}
    if model.learn_sigmas:  # internal units, as sigma_v / sigma_g
        sv, sg = model.noise_scales(guide)
        fitted.fit_info.update(sigma_v_fitted=sv, sigma_g_fitted=sg)
    return fitted


def shared_steps(config: FitConfig, head: Head) -> int:
    """Warm-up steps an ensemble trains as one shared network first (``shared_warmup``; 0 for
    single networks). The members' own warm-up is the rest."""
    c = config
    if not head.is_ensemble or c.shared_warmup <= 0:
        return 0
    return min(round(c.shared_warmup * c.warmup_steps), c.warmup_steps - 1)


def shared_start(config, head, members, settings, prepared, device, member_ids, steps, progress):
    """The members' common start: one network trained for ``steps`` warm-up steps on every
    member's plans (each step batch_size pairs per interval in all, drawn evenly from the
    members' own bootstraps and settings), its weights copied to every member of
    ``member_ids``. Returns those weights, shape (len(member_ids), ...), and the seconds taken.

    Why: a step of K members costs K networks' matmuls; the shared steps cost one network's.
    The members' spread comes from their own plans in the rest of the warm-up (measured: the
    same growth coverage and per-draw W1 as independent starts, benchmarks/results/speed_cpu.md).
    A distributed ensemble gathers every rank's members' pairs each step, in member order, so
    every rank trains the same network as one process does.
    """
    c = config
    t = time.perf_counter()
    trunk, guide = build(c, Head(), prepared.internal, settings, device, [0])
    gens = members.generators(c.seed + 9, device, member_ids)  # not the members' own streams
    per_member = max(1, c.batch_size // head.n_members)

    def sample() -> PairBatch:
        b = members.sample(prepared.plans, per_member, c.sigma, gens)
        own = (b.x, b.t, b.u, b.gamma)  # (K, B, ...) each: flattened in member order below
        if distributed.world_size() == 1:
            return PairBatch(*(f.reshape(-1, *f.shape[2:]) for f in own))
        parts = distributed.all_gather((list(member_ids), [f.cpu() for f in own]))
        where = {m: (r, i) for r, (ids, _) in enumerate(parts) for i, m in enumerate(ids)}
        rows = [where[m] for m in sorted(where)]  # member order, whichever rank holds whom
        return PairBatch(
            *(torch.cat([parts[r][1][f][i] for r, i in rows]).to(device) for f in range(4))
        )

    with pyro.settings.context(module_local_params=True):
        run_phase(
            "shared warm-up",
            trunk,
            guide,
            sample,
            steps,
            c.lr_warmup,
            progress=progress,
            explode_ratio=c.explode_ratio,
        )
        weights = trunk.unpack(guide.median())
    k = len(member_ids)
    start = {n: w.detach().expand(k, *w.shape).clone() for n, w in weights.items()}
    return start, time.perf_counter() - t


def _component_samplers(config, head, settings, prepared, generators, device, srot_options):
    """(weight, batch sampler) of the posterior components of heads that mix over them
    (``head.mixture_components`` > 0; ot/members.py ``component_plans``), None for the others.
    The components draw from the first post-fit generator."""
    k = head.mixture_components
    if k == 0:
        return None
    c = config
    components = component_plans(
        prepared.internal,
        settings,
        k,
        seed=c.seed + 5,  # not the ensemble's resamples: another head, its own draws
        full=prepared.plans,
        device=device,
        srot_options=srot_options(),
    )
    gen = next(iter(generators.values()))
    return [(1.0 / k, lambda p=p: sample_pairs(p, c.batch_size, c.sigma, gen)) for p in components]


def distributed_share(head: Head, run_dir) -> tuple[int, int]:
    """(rank, world) of this process in the launched process group (checked)."""
    world = distributed.world_size()
    if world == 1:
        return (0, 1)
    if not head.is_ensemble:
        raise ConfigError(
            f"head {head.name!r} trains one network: only an ensemble's members are "
            "spread over processes; run it without torchrun"
        )
    if head.n_members < world:
        raise ConfigError(f"{head.n_members} members cannot be spread over {world} processes")
    if run_dir is not None:
        raise ConfigError("a distributed fit writes no checkpoints: pass run_dir=None")
    return (distributed.rank(), world)


def gather_members(
    config: FitConfig,
    head: Head,
    settings: Mapping[str, Any],
    internal: TimeCourse,
    device: torch.device,
    fitted: Fitted,
) -> Fitted | None:
    """Rank 0 collects every rank's members (in rank order, i.e. member order) and returns the
    whole ensemble; losses are summed over ranks, phase times the slowest. None on the other
    ranks (they keep their share)."""
    state = {k: v.detach().cpu() for k, v in fitted.guide.state_dict().items()}
    parts = distributed.gather_to_rank0((state, fitted.history.to_dict()))
    if parts is None:
        return None
    merged = {k: torch.cat([p[0][k] for p in parts]) for k in state}
    hists = [p[1] for p in parts]
    model, guide = build(config, head, internal, settings, device, range(head.n_members))
    guide.load_state_dict({k: v.to(device) for k, v in merged.items()})
    history = History(
        [float(sum(v)) for v in zip(*(h["warmup"] for h in hists), strict=True)],
        [float(sum(v)) for v in zip(*(h["joint"] for h in hists), strict=True)],
        {k: max(h["seconds"][k] for h in hists) for k in hists[0]["seconds"]},
    )
    return Fitted(model, guide, history, fitted.fit_info)
