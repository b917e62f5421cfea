"""The Bayesian VGFM model (DESIGN 3): a Pyro model whose likelihood is centred on SROT targets.

    theta, omega ~ prior                        (weights of v_theta and g_omega)
    for each sampled pair (plate "pairs", size n_effective, subsampled and scaled):
        u     ~ Normal(v_theta(x_s, t), sigma_v)   per dimension
        gamma ~ Normal(g_omega(x_s, t), sigma_g)
    joint phase:  factor(-n_effective * (lambda_ot * sum_k W1_k + lambda_mass * sum_k mass_k))

With flat priors, fixed sigma_v = sqrt(D / 2) and sigma_g = 1 / sqrt(2), and an AutoDelta guide,
-ELBO = n_effective * (mean_b [mean_d (v - u)^2 + (g - gamma)^2] + lambda terms) + const: exactly
the authors' VGFM loss times n_effective. The distribution-fit factor carries the same factor
n_effective, so lambda_ot and lambda_mass weigh it against the per-pair regression loss as in
"L_VGFM + lambda * L_OT".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Literal

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from ..nn import Fields
from ..ot import PairBatch, sinkhorn_divergence, w1_loss
from ..ot.w1 import emd_solution, solve_in_threads, w1_from_solution, w1_inputs
from .dynamics import simulate


@dataclass(frozen=True)
class Prior:
    """Prior of a block of weights: flat (improper) or Normal(0, scale / sqrt(fan_in)) each."""

    kind: Literal["flat", "normal"] = "flat"
    scale: float = 1.0


@dataclass(frozen=True)
class Block:
    """A group of weight tensors sampled as one flat Pyro site (few sites = little overhead)."""

    names: tuple[str, ...]
    prior: Prior = Prior()


NOISE_SITES = ("noise_v", "noise_g")
NOISE_RATE = 10.0  # log sigma = NOISE_RATE * site value (fast-moving under Adam)
NOISE_PRIOR_SD = 3.0  # prior sd of log sigma around its starting value


def vgfm_sigmas(dim: int) -> tuple[float, float]:
    """Fixed noise scales under which the likelihood is the authors' MSE loss (DESIGN 3)."""
    return math.sqrt(dim / 2.0), 1.0 / math.sqrt(2.0)


class VGFMModel:
    """Tensors-only Pyro model: knows the fields, priors and likelihood; not data files or devices.

    Parameters
    ----------
    fields : the velocity and growth networks.
    blocks : site name -> Block; every weight tensor of ``fields`` in exactly one block. Each block
        is one sample site holding its tensors flattened and concatenated, shape
        (*member_shape, size).
    sigma_v, sigma_g : fixed observation noise of velocity (per dim) and growth targets.
    n_effective : the pairs plate's full size -- how many independent pairs the data are worth;
        it sets how sharp the posterior is (default: number of source cells over all intervals).
    kl_weight : beta of a tempered posterior, prior x likelihood^(1 / beta): the ELBO's KL term
        weighs beta relative to the likelihood. Implemented exactly by counting every pair (and
        the distribution-fit factor) 1 / beta times: the plate's size is n_effective / beta.
        1 is the plain posterior; < 1 lets the data outweigh a large network's prior.
    learn_sigmas : sigma_v (per dimension) and sigma_g become sample sites (``NOISE_SITES``) with
        a weak prior, log sigma ~ Normal(log of the given value, 3), fitted by MAP; sigma_v and
        sigma_g are then their starting values. The fixed VGFM-equivalent scales weigh the
        squared errors as the authors' loss does but say nothing about the data's noise, and a
        posterior's width is set by the noise: on the simulated gene data the velocity
        residuals are ~0.1 against sigma_v = 1. Single-network heads only.
    member_shape : () for one network, (K,) for K independent members (ensemble); every weight
        then has K leading rows and every batch tensor a leading K dim.
    """

    def __init__(
        self,
        fields: Fields,
        blocks: Mapping[str, Block],
        sigma_v: float,
        sigma_g: float,
        n_effective: float,
        member_shape: tuple[int, ...] = (),
        kl_weight: float = 1.0,
        learn_sigmas: bool = False,
    ) -> None:
        self.fields = fields
        self.blocks = dict(blocks)
        self.sigma_v = float(sigma_v)
        self.sigma_g = float(sigma_g)
        if not kl_weight > 0:
            raise ValueError(f"kl_weight must be positive, got {kl_weight}")
        self.kl_weight = float(kl_weight)
        self.n_effective = float(n_effective) / self.kl_weight
        self.member_shape = tuple(member_shape)
        if learn_sigmas and self.member_shape:
            raise ValueError("learned noise scales are for single-network heads, not members")
        self.learn_sigmas = bool(learn_sigmas)
        shapes = fields.shapes()
        covered = sorted(n for b in self.blocks.values() for n in b.names)
        if covered != sorted(shapes):
            raise ValueError("blocks must cover every weight tensor exactly once")
        self.shapes = shapes
        self.sizes = {
            site: sum(math.prod(shapes[n]) for n in b.names) for site, b in self.blocks.items()
        }

    def pack(self, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named tensors (*batch, *shape) -> flat block values (*batch, size)."""
        out = {}
        for site, block in self.blocks.items():
            parts = []
            for n in block.names:
                t = params[n]
                parts.append(t.reshape(*t.shape[: t.dim() - len(self.shapes[n])], -1))
            out[site] = torch.cat(parts, dim=-1)
        return out

    def unpack(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Flat block values (*batch, size) -> named tensors (*batch, *shape), as views.

        One split per block: its backward is one concatenation, where a slice per tensor would
        make autograd zero-fill and add a full-size gradient for every tensor of the block."""
        params = {}
        for site, block in self.blocks.items():
            flat = values[site]
            sizes = [math.prod(self.shapes[n]) for n in block.names]
            for n, part in zip(block.names, flat.split(sizes, dim=-1), strict=True):
                params[n] = part.reshape(*flat.shape[:-1], *self.shapes[n])
        return params

    def prior_scales(self, site: str, device=None, dtype=torch.float32) -> torch.Tensor:
        """Per-element prior sd of a normal block: scale / sqrt(fan_in), shape (size,)."""
        block = self.blocks[site]
        parts = [
            torch.full(
                (math.prod(self.shapes[n]),),
                block.prior.scale / math.sqrt(self.fields.spec_of(n).fan_in(n)),
                device=device,
                dtype=dtype,
            )
            for n in block.names
        ]
        return torch.cat(parts)

    def prior(self, site: str, device: torch.device, dtype: torch.dtype) -> dist.Distribution:
        shape = (*self.member_shape, self.sizes[site])
        block = self.blocks[site]
        if block.prior.kind == "flat":
            return dist.ImproperUniform(constraints.real, (), shape)
        sd = self.prior_scales(site, device, dtype).expand(shape)
        return dist.Normal(torch.zeros_like(sd), sd).to_event(len(shape))

    @property
    def noise_sites(self) -> list[str]:
        """Sample sites of the learned noise scales (none when they are fixed)."""
        return list(NOISE_SITES) if self.learn_sigmas else []

    def initial_values(self, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every site's starting value: the weights ``params`` packed into blocks, and the noise
        sites (if learned) at the given sigma_v, sigma_g."""
        values = self.pack(params)
        if self.learn_sigmas:
            dev = next(iter(values.values())).device
            values["noise_v"] = torch.full(
                (self.fields.dim,), math.log(self.sigma_v) / NOISE_RATE, device=dev
            )
            values["noise_g"] = torch.tensor(math.log(self.sigma_g) / NOISE_RATE, device=dev)
        return values

    def noise_scales(self, guide) -> tuple[list[float], float]:
        """The fitted (sigma_v per dim, sigma_g): the guide's values, else the fixed ones."""
        if not self.learn_sigmas:
            return [self.sigma_v] * self.fields.dim, self.sigma_g
        # the guide's own values: outside module-local params Pyro reads the global param
        # store, which holds an earlier fit's by the same name
        with pyro.settings.context(module_local_params=True), torch.no_grad():
            med = guide.median()
        sv = torch.exp(NOISE_RATE * med["noise_v"]).cpu().tolist()
        return sv, float(torch.exp(NOISE_RATE * med["noise_g"]))

    def noise(self, device, dtype) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """(sigma_v, sigma_g): fixed floats, or drawn from their sites. A site holds
        z = log(sigma) / NOISE_RATE, so an optimiser step of size lr moves log sigma by
        NOISE_RATE * lr and the scales reach the data's within a warm-up."""
        if not self.learn_sigmas:
            return self.sigma_v, self.sigma_g
        out = []
        for site, s0, shape in (
            ("noise_v", self.sigma_v, (self.fields.dim,)),
            ("noise_g", self.sigma_g, ()),
        ):
            loc = torch.full(shape, math.log(s0) / NOISE_RATE, device=device, dtype=dtype)
            prior = dist.Normal(loc, NOISE_PRIOR_SD / NOISE_RATE).to_event(len(shape))
            out.append(torch.exp(NOISE_RATE * pyro.sample(site, prior)))
        return out[0], out[1]

    def fit_scale(self, sigma_v, sigma_g) -> torch.Tensor | float:
        """How much sharper the regression is than the VGFM-equivalent one, so that lambda_ot
        and lambda_mass keep their meaning when the noise scales are learned: the mean over
        the D + 1 outputs of (sigma_vgfm / sigma)^2 (detached: the distribution fit must not
        pull the noise scales). 1 for fixed VGFM-equivalent scales."""
        if not self.learn_sigmas:
            return 1.0
        sv0, sg0 = vgfm_sigmas(self.fields.dim)
        sv = torch.as_tensor(sigma_v).detach().expand(self.fields.dim)
        ratio = torch.cat(
            [(sv0 / sv) ** 2, (sg0 / torch.as_tensor(sigma_g).detach()).reshape(1) ** 2]
        )
        return ratio.mean()

    def sample_params(
        self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> dict[str, torch.Tensor]:
        dev = torch.device(device)
        values = {site: pyro.sample(site, self.prior(site, dev, dtype)) for site in self.blocks}
        return self.unpack(values)

    def __call__(
        self,
        batch: PairBatch | None = None,
        fit_loss: Callable[[Mapping[str, torch.Tensor]], torch.Tensor] | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> dict[str, torch.Tensor]:
        """Run the model; batch=None samples the weights only (used to set up guides)."""
        if batch is not None:
            device, dtype = batch.x.device, batch.x.dtype
        params = self.sample_params(device, dtype)
        sigma_v, sigma_g = self.noise(device, dtype)
        if batch is not None:
            v = self.fields.v(params, batch.x, batch.t)
            g = self.fields.g(params, batch.x, batch.t)
            with ExitStack() as stack:
                if self.member_shape:
                    stack.enter_context(pyro.plate("members", self.member_shape[0], dim=-2))
                subsample = torch.arange(batch.size, device=device)
                stack.enter_context(
                    pyro.plate("pairs", int(self.n_effective), subsample=subsample, dim=-1)
                )
                pyro.sample("u", dist.Normal(v, sigma_v).to_event(1), obs=batch.u)
                pyro.sample("gamma", dist.Normal(g, sigma_g), obs=batch.gamma)
        if fit_loss is not None:
            scale = self.fit_scale(sigma_v, sigma_g)
            pyro.factor("fit", -self.n_effective * scale * fit_loss(params))
        return params


class DistributionFit:
    """The joint phase's simulated loss (DESIGN 2.4): W1 to each snapshot plus a mass term.

    Particles start at (a subsample of) the first snapshot with weights 1/n and are integrated
    interval by interval; with ``detach_intervals`` each interval restarts from the detached end
    state of the previous one (as the reference), which keeps gradients short and stable.

    Parameters
    ----------
    x0 : Tensor, shape (n0, D) -- first snapshot.
    snapshots : list of Tensor, each (m_k, D) -- later snapshots.
    times : Tensor, shape (K,) -- all observed times.
    log_masses : Tensor, shape (K,) -- log relative masses, log_masses[0] = 0.
    w1 : "emd" -- exact W1 of the subsamples (POT's network simplex; runs on the CPU, so on a GPU
        each call copies the n_particles x n_targets cost to the host and back), or "sinkhorn" --
        the debiased Sinkhorn divergence with W1 cost (ot/sinkhorn.py), computed on the device.
    blur : for "sinkhorn", the final eps as a fraction of the data's diameter (bounding-box
        diagonal of all snapshots).

    Cost per call is set by n_particles and n_targets, not by the snapshot sizes: the subsample
    indices are drawn with ``generator`` on its own device (pass a generator on the data's device
    to keep the hot loop free of host copies).
    """

    def __init__(
        self,
        fields: Fields,
        x0: torch.Tensor,
        snapshots: list[torch.Tensor],
        times: torch.Tensor,
        log_masses: torch.Tensor,
        *,
        lambda_ot: float,
        lambda_mass: float,
        step_size: float,
        n_particles: int,
        n_targets: int,
        detach_intervals: bool = True,
        member_shape: tuple[int, ...] = (),
        generator: torch.Generator | None = None,
        w1: Literal["emd", "sinkhorn"] = "emd",
        blur: float = 0.005,
    ) -> None:
        self.fields = fields
        self.x0 = x0
        self.snapshots = snapshots
        self.times = times
        self.log_masses = log_masses
        self.lambda_ot = lambda_ot
        self.lambda_mass = lambda_mass
        self.step_size = step_size
        self.n_particles = n_particles
        self.n_targets = n_targets
        self.detach_intervals = detach_intervals
        self.member_shape = member_shape
        self.generator = generator
        if w1 not in ("emd", "sinkhorn"):
            raise ValueError(f"w1 must be 'emd' or 'sinkhorn', got {w1!r}")
        self.w1 = w1
        cells = torch.cat([x0, *snapshots])
        self.diameter = float((cells.max(0).values - cells.min(0).values).norm())
        self.blur = blur * self.diameter

    def _subsample(self, x: torch.Tensor, n: int) -> torch.Tensor:
        if n <= 0 or x.shape[0] <= n:
            return x
        dev = self.generator.device if self.generator is not None else x.device
        idx = torch.randperm(x.shape[0], generator=self.generator, device=dev)[:n]
        return x[idx.to(x.device)]

    def _distance(self, x: torch.Tensor, log_w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.w1 == "sinkhorn":
            return sinkhorn_divergence(x, log_w, y, self.blur, diameter=2 * self.diameter)
        return w1_loss(x, log_w, y)

    def _distances(self, pairs: list[tuple]) -> list[torch.Tensor]:
        """W1 of every (particles, log-weights, cells) triple. The exact EMDs are solved in
        threads (ot.solve_in_threads); the autograd graph is built here, in order, so results
        stay bitwise those of one-by-one w1_loss calls."""
        if self.w1 != "emd":
            return [self._distance(*p) for p in pairs]
        inputs = [w1_inputs(*p) for p in pairs]
        solutions = solve_in_threads(lambda ac: emd_solution(*ac), inputs)
        return [
            w1_from_solution(a, cost, *sol).to(x.dtype)
            for (a, cost), sol, (x, _, _) in zip(inputs, solutions, pairs, strict=True)
        ]

    def __call__(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = self._subsample(self.x0, self.n_particles)
        x = x.expand(*self.member_shape, *x.shape)
        log_w = torch.full(x.shape[:-1], -math.log(x.shape[-2]), dtype=x.dtype, device=x.device)
        pairs, mass = [], x.new_zeros(())
        for k in range(1, len(self.times)):
            if self.detach_intervals:
                x, log_w = x.detach(), log_w.detach()
            xs, lws = simulate(
                self.fields, params, x, log_w, self.times[k - 1 : k + 1], self.step_size
            )
            x, log_w = xs[-1], lws[-1]
            y = self._subsample(self.snapshots[k - 1], self.n_targets)
            flat_x = x.reshape(-1, *x.shape[-2:])
            flat_w = log_w.reshape(-1, x.shape[-2])
            pairs += [(xm, wm, y) for xm, wm in zip(flat_x, flat_w, strict=True)]
            mass = mass + ((torch.logsumexp(flat_w, dim=-1) - self.log_masses[k]) ** 2).sum()
        w1 = torch.stack(self._distances(pairs)).sum()
        return self.lambda_ot * w1 + self.lambda_mass * mass
