"""The SVI loop: warm-up on the regression likelihood, then joint SVI with the simulated fit."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from pyro.infer import Trace_ELBO
from tqdm.auto import tqdm

from ..model import VGFMModel
from ..ot import PairBatch
from .adam import Adam
from .checkpoint import StopRequest

# the first steps of a phase set the level an exploding loss is measured against
_REFERENCE_STEPS = 10


class TrainingError(RuntimeError):
    """Training diverged (NaN or exploding loss)."""


class TrainingInterrupted(RuntimeError):
    """Training stopped on SIGINT / SIGTERM after saving a checkpoint."""

    def __init__(self, message: str, signum: int | None = None) -> None:
        super().__init__(message)
        self.signum = signum


@dataclass
class History:
    """Per-step loss (-ELBO / n_effective) per phase, and wall time per phase in seconds."""

    warmup: list[float] = field(default_factory=list)
    joint: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"warmup": self.warmup, "joint": self.joint, "seconds": self.seconds}


def guide_parameters(guide, model: VGFMModel) -> list[torch.nn.Parameter]:
    """The guide's parameters, created first if the guide has none yet (autoguides build them
    lazily). A guide that has them is not called, so no random numbers are drawn here and a
    resumed phase draws exactly what an uninterrupted one draws."""
    params = list(guide.parameters())
    if not params:
        guide(None)
        params = list(guide.parameters())
    return params


def _non_finite(params: list[torch.Tensor], batch: PairBatch) -> str | None:
    """What is not finite: the weights or the regression batch (None when all are)."""
    with torch.no_grad():
        if not all(torch.isfinite(p).all() for p in params):
            return "non-finite weights"
        if not all(torch.isfinite(v).all() for v in (batch.x, batch.t, batch.u, batch.gamma)):
            return "non-finite regression targets"
    return None


def run_phase(
    name: str,
    model: VGFMModel,
    guide,
    sampler: Callable[[], PairBatch],
    steps: int,
    lr: float,
    fit_loss: Callable | None = None,
    history: list[float] | None = None,
    progress: bool = True,
    *,
    optimizer_state: dict | None = None,
    checkpoint: Callable[[str, Adam], None] | None = None,
    checkpoint_every: int = 0,
    stop: StopRequest | None = None,
    explode_ratio: float | None = None,
) -> list[float]:
    """Run SVI steps with Adam on the guide's parameters until ``history`` holds ``steps``.

    The -ELBO is taken with Trace_ELBO.differentiable_loss and torch's Adam update (infer/adam.py:
    torch.optim.Adam's steps without torch.optim's start-up cost), so parameters stay inside the
    guide module (no global param store).

    Resuming: pass the phase's ``history`` so far and its ``optimizer_state``; the loop goes on
    from step len(history). ``checkpoint(name, optimizer)`` is called after every
    ``checkpoint_every``-th step, after the phase's last step, and when ``stop`` is requested
    (then TrainingInterrupted is raised). A non-finite loss or gradient, or a loss above
    ``explode_ratio`` times the phase's starting level, raises TrainingError before the
    optimiser step, so nothing after the last good step is ever saved.
    """
    history = [] if history is None else history
    if steps <= 0 or len(history) >= steps:
        return history
    elbo = Trace_ELBO()
    params = guide_parameters(guide, model)
    optim = Adam(params, lr=lr)
    if optimizer_state is not None:
        optim.load_state_dict(optimizer_state)
    scale = 1.0 / model.n_effective
    bar = tqdm(
        range(len(history), steps),
        desc=name,
        disable=not progress,
        leave=False,
        mininterval=0.5,
        initial=len(history),
        total=steps,
    )
    for step in bar:
        batch = sampler()
        try:
            loss = elbo.differentiable_loss(model, guide, batch, fit_loss) * scale
        except ValueError as err:  # Pyro's validation rejects NaN parameters / observations
            bad = _non_finite(params, batch)
            if bad is None:
                raise
            raise TrainingError(f"{name}: loss became nan at step {step} ({bad})") from err
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingError(f"{name}: loss became {value} at step {step}")
        if explode_ratio is not None and len(history) >= _REFERENCE_STEPS:
            ref = max(1.0, statistics.median(abs(v) for v in history[:_REFERENCE_STEPS]))
            if abs(value) > explode_ratio * ref:
                raise TrainingError(
                    f"{name}: loss exploded to {value:.4g} at step {step} (over {explode_ratio:g} "
                    f"x its starting level {ref:.4g})"
                )
        optim.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad.sum() for p in params if p.grad is not None]
        if grads and not math.isfinite(torch.stack(grads).sum().item()):
            raise TrainingError(f"{name}: non-finite gradient at step {step}")
        optim.step()
        history.append(value)
        if progress and len(history) % 50 == 0:
            bar.set_postfix(loss=f"{value:.4f}")
        stopping = stop is not None and stop.requested
        periodic = checkpoint_every > 0 and len(history) % checkpoint_every == 0
        if checkpoint is not None and (stopping or periodic or len(history) == steps):
            checkpoint(name, optim)
        if stopping:
            raise TrainingInterrupted(
                f"stopped by {stop.name} after {name} step {len(history)}", stop.signum
            )
    return history


def train(
    model: VGFMModel,
    guide,
    sampler: Callable[[], PairBatch],
    fit_loss: Callable | None,
    *,
    warmup_steps: int,
    lr_warmup: float,
    joint_steps: int,
    lr_joint: float,
    progress: bool = True,
    history: History | None = None,
    resume_phase: str | None = None,
    optimizer_state: dict | None = None,
    checkpoint: Callable[[str, Adam, History], None] | None = None,
    checkpoint_every: int = 0,
    stop: StopRequest | None = None,
    explode_ratio: float | None = None,
) -> History:
    """Warm-up (regression only) then joint (regression + distribution-fit factor).

    To resume, pass the checkpoint's ``history``, ``resume_phase`` ("warm-up" or "joint") and
    that phase's ``optimizer_state``; the random states must be restored by the caller.
    ``checkpoint(phase, optimizer, history)`` saves the loop's state (see :func:`run_phase`).
    """
    hist = History() if history is None else history
    spent = dict(hist.seconds)
    save = None if checkpoint is None else (lambda name, optim: checkpoint(name, optim, hist))
    common = dict(checkpoint=save, checkpoint_every=checkpoint_every, stop=stop)
    common["explode_ratio"] = explode_ratio
    t0 = time.perf_counter()
    run_phase(
        "warm-up",
        model,
        guide,
        sampler,
        warmup_steps,
        lr_warmup,
        None,
        hist.warmup,
        progress,
        optimizer_state=optimizer_state if resume_phase == "warm-up" else None,
        **common,
    )
    t1 = time.perf_counter()
    hist.seconds["warmup"] = spent.get("warmup", 0.0) + t1 - t0
    if fit_loss is not None:
        run_phase(
            "joint",
            model,
            guide,
            sampler,
            joint_steps,
            lr_joint,
            fit_loss,
            hist.joint,
            progress,
            optimizer_state=optimizer_state if resume_phase == "joint" else None,
            **common,
        )
    t2 = time.perf_counter()
    hist.seconds["joint"] = spent.get("joint", 0.0) + t2 - t1
    return hist
