"""The SVI loop: warm-up on the regression likelihood, then joint SVI with the simulated fit."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from pyro.infer import Trace_ELBO
from tqdm.auto import tqdm

from ..model import VGFMModel
from ..ot import PairBatch


class TrainingError(RuntimeError):
    """Training diverged (NaN or exploding loss)."""


@dataclass
class History:
    """Per-step loss (-ELBO / n_effective) per phase, and wall time per phase in seconds."""

    warmup: list[float] = field(default_factory=list)
    joint: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"warmup": self.warmup, "joint": self.joint, "seconds": self.seconds}


def guide_parameters(guide, model: VGFMModel) -> list[torch.nn.Parameter]:
    """Create the guide's parameters (autoguides build them lazily) and return them."""
    guide(None)
    return list(guide.parameters())


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
) -> list[float]:
    """Run ``steps`` SVI steps with Adam on the guide's parameters.

    The -ELBO is taken with Trace_ELBO.differentiable_loss and a torch optimiser, so parameters
    stay inside the guide module (no global param store).
    """
    history = [] if history is None else history
    if steps <= 0:
        return history
    elbo = Trace_ELBO()
    params = guide_parameters(guide, model)
    optim = torch.optim.Adam(params, lr=lr)
    scale = 1.0 / model.n_effective
    bar = tqdm(range(steps), desc=name, disable=not progress, leave=False, mininterval=0.5)
    for _ in bar:
        batch = sampler()
        loss = elbo.differentiable_loss(model, guide, batch, fit_loss) * scale
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingError(f"{name}: loss became {value} at step {len(history)}")
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        history.append(value)
        if progress and len(history) % 50 == 0:
            bar.set_postfix(loss=f"{value:.4f}")
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
) -> History:
    """Warm-up (regression only) then joint (regression + distribution-fit factor)."""
    hist = History()
    t0 = time.perf_counter()
    run_phase(
        "warm-up", model, guide, sampler, warmup_steps, lr_warmup, None, hist.warmup, progress
    )
    t1 = time.perf_counter()
    if fit_loss is not None:
        run_phase(
            "joint", model, guide, sampler, joint_steps, lr_joint, fit_loss, hist.joint, progress
        )
    t2 = time.perf_counter()
    hist.seconds = {"warmup": t1 - t0, "joint": t2 - t1}
    return hist
