"""Exact Gaussian posterior of the last layers given the body's features (the last_layer head).

Given the trained body, each network is linear in its last layer: for output j,
    y_j = phi(x, t)^T w_j + noise,    phi = (last hidden layer, 1),   w_j = (W[:, j], b_j),
with y the velocity targets u (one regression per dimension) or the growth targets gamma. The
likelihood counts every pair n_effective / N times (the model's plate), so with a Normal prior of
precision alpha_j and noise precision beta_j the posterior of w_j is exactly Gaussian:

    A_j = alpha_j I + beta_j G,   G = (n_effective / N) Phi^T Phi,   covariance A_j^{-1},

with alpha_j and beta_j maximising the evidence (MacKay's fixed-point updates, sample size
n_effective). The Gaussian is centred on the trained weights (the point head's fit, flat priors,
which the joint phase has also tuned to the snapshots), so draws fit as the point head does. A
mixture (bootstrap resamples x SROT settings) shifts the mean per component by the difference of
ridge solutions (:func:`mixture_offsets`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyro
import torch
import torch.nn.functional as F
from pyro.infer.autoguide import AutoDelta

from ..nn import Fields
from ..nn.mlp import MLPSpec
from ..ot import PairBatch
from ..ot.tune import largest_remainder

NETS = ("v", "g")


def _spec(fields: Fields, net: str) -> MLPSpec:
    return fields.velocity if net == "v" else fields.growth


def features(fields: Fields, params: Mapping[str, torch.Tensor], x: torch.Tensor, t, net: str):
    """Last hidden layer and a 1 of ``net`` at (x (B, D), t), in x's dtype: shape (B, H + 1)."""
    spec = _spec(fields, net)
    h = fields._inputs(x, t)
    for i in range(spec.n_layers - 1):
        h = torch.matmul(h, params[f"{net}.l{i}.weight"]) + params[f"{net}.l{i}.bias"]
        h = F.leaky_relu(h, spec.negative_slope)
    return torch.cat([h, h.new_ones(*h.shape[:-1], 1)], dim=-1)


def design(fields: Fields, params: Mapping[str, torch.Tensor], batch: PairBatch, net: str):
    """Features of the last layer at a batch of pairs (x (B, D), t (B,)): :func:`features` in
    float64, shape (B, H + 1). params : named weights of one network (no draw dim)."""
    return features(fields, params, batch.x, batch.t, net).double()


def regression(fields: Fields, params, batches: Sequence[PairBatch], net: str):
    """(Phi (N, P), Y (N, out)) of ``net`` over ``batches``, float64."""
    phi = torch.cat([design(fields, params, b, net) for b in batches])
    if net == "v":
        y = torch.cat([b.u for b in batches])
    else:
        y = torch.cat([b.gamma for b in batches]).unsqueeze(-1)
    return phi, y.double()


def coefficients(fields: Fields, params: Mapping[str, torch.Tensor], net: str) -> torch.Tensor:
    """Last-layer weights as per-output coefficients, shape (*batch, out, H + 1)."""
    w_name, b_name = _spec(fields, net).last_layer(f"{net}.")
    w, b = params[w_name], params[b_name]
    return torch.cat([w.transpose(-1, -2), b.unsqueeze(-1)], dim=-1)


def _sufficient(phi: torch.Tensor, y: torch.Tensor, n_effective: float):
    """Scaled statistics: G (P, P), b (out, P), yy (out,)."""
    c = n_effective / phi.shape[0]
    return c * phi.T @ phi, c * (y.T @ phi), c * (y * y).sum(0)


def ridge(phi, y, alpha, beta, n_effective: float) -> torch.Tensor:
    """Posterior mean beta A^{-1} b per output, shape (out, P) (alpha, beta: (out,))."""
    gram, b, _ = _sufficient(phi, y, n_effective)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    a = alpha[:, None, None] * eye + beta[:, None, None] * gram
    return beta[:, None] * torch.linalg.solve(a, b.unsqueeze(-1)).squeeze(-1)


def evidence(
    phi: torch.Tensor,
    y: torch.Tensor,
    n_effective: float,
    *,
    iters: int = 1000,
    tol: float = 1e-10,
) -> dict[str, torch.Tensor]:
    """Type-II maximum likelihood of (alpha, beta) per output (MacKay's fixed point).

    Parameters
    ----------
    phi : Tensor, shape (N, P) -- features.
    y : Tensor, shape (N, out) -- targets.
    n_effective : the sample size the N pairs stand for (each counted n_effective / N times).

    Returns
    -------
    dict with alpha, beta, gamma (effective number of parameters), each (out,); mean (out, P),
    the posterior mean under them; eigval (P,), eigvec (P, P) of G.
    """
    phi, y = phi.double(), y.double()
    gram, b, yy = _sufficient(phi, y, n_effective)
    lam, vec = torch.linalg.eigh(gram)
    lam = lam.clamp_min(0.0)
    bp = b @ vec  # (out, P): b in G's eigenbasis
    out = y.shape[1]
    alpha = torch.ones(out, dtype=phi.dtype, device=phi.device)
    # A target that never moves has no noise: beta would diverge too. Keep sigma at least 1e-6
    # of the targets' overall scale (the net's outputs together) so float32 storage stays finite.
    beta_max = 1e12 / (yy.mean() / n_effective).clamp_min(1e-12)
    beta = (1.0 / y.var(0).clamp_min(1e-12)).clamp_max(beta_max)
    for _ in range(iters):
        d = alpha[:, None] + beta[:, None] * lam
        m = beta[:, None] * bp / d
        gamma = (beta[:, None] * lam / d).sum(-1)
        resid = (yy - 2 * (m * bp).sum(-1) + (lam * m * m).sum(-1)).clamp_min(1e-300)
        # An output the features cannot explain drives alpha to infinity (MacKay's fixed point
        # diverges); cap it where the weights' prior sd is 1e-4 of what the data alone give, so
        # the covariance and the mixture's ridge solves stay finite (weights then fixed at MAP).
        alpha_max = 1e8 * (1.0 + beta * lam[-1])
        new_alpha = torch.minimum(gamma / (m * m).sum(-1).clamp_min(1e-300), alpha_max)
        new_beta = ((n_effective - gamma).clamp_min(1e-6) / resid).clamp_max(beta_max)
        done = torch.all((new_alpha - alpha).abs() <= tol * alpha) and torch.all(
            (new_beta - beta).abs() <= tol * beta
        )
        alpha, beta = new_alpha, new_beta
        if done:
            break
    d = alpha[:, None] + beta[:, None] * lam
    m = beta[:, None] * bp / d
    return {
        "alpha": alpha,
        "beta": beta,
        "gamma": (beta[:, None] * lam / d).sum(-1),
        "mean": m @ vec.T,
        "eigval": lam,
        "eigvec": vec,
    }


def covariance_factor(eigval, eigvec, alpha, beta) -> torch.Tensor:
    """Lower Cholesky factors of A_j^{-1} = V diag(1 / (alpha_j + beta_j lam)) V^T, (out, P, P)."""
    d = 1.0 / (alpha[:, None] + beta[:, None] * eigval)
    cov = (eigvec * d[:, None, :]) @ eigvec.T
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    return torch.linalg.cholesky(cov)


def allocate(weights: torch.Tensor, samples: int) -> list[int]:
    """Draws per component, in proportion to ``weights`` (largest remainders), summing to S."""
    return largest_remainder(weights.double().cpu().numpy(), samples)


class LastLayerLaplace(torch.nn.Module):
    """The stored Gaussian posterior of both last layers (buffers: saved with the guide).

    Buffers per net ("v": out = D, "g": out = 1; P = last hidden width + 1):
    ``<net>_scale_tril`` (out, P, P) -- Cholesky factor of each output's covariance;
    ``<net>_alpha``, ``<net>_beta`` (out,) -- evidence-maximised prior and noise precision;
    ``<net>_offsets`` (C, out, P) -- mixture components' shifts of the mean (C = 1: zero);
    ``mix_weights`` (C,); ``fitted`` () -- 1 once :meth:`fit` has run;
    ``joint_scale_tril`` (Pt, Pt), Pt = D P_v + P_g -- once ``snapshot_information.condition`` has
    run, the Cholesky factor of the joint covariance of all last-layer coefficients (outputs
    in order v_0 .. v_{D-1}, g), which replaces the per-output factors; (0, 0) before.
    A state dict with another number of components C resizes the mixture buffers on load.
    """

    _RESIZABLE = ("mix_weights", "v_offsets", "g_offsets", "joint_scale_tril")

    def __init__(self, fields: Fields) -> None:
        super().__init__()
        self.fields = fields
        for net in NETS:
            spec = _spec(fields, net)
            out, p = spec.out_dim, spec.sizes[-2] + 1
            eye = torch.eye(p).expand(out, p, p).clone()
            self.register_buffer(f"{net}_scale_tril", eye)
            self.register_buffer(f"{net}_alpha", torch.ones(out))
            self.register_buffer(f"{net}_beta", torch.ones(out))
            self.register_buffer(f"{net}_offsets", torch.zeros(1, out, p))
        self.register_buffer("mix_weights", torch.ones(1))
        self.register_buffer("fitted", torch.zeros(()))
        self.register_buffer("joint_scale_tril", torch.zeros(0, 0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in self._RESIZABLE:
            key = prefix + name
            if key in state_dict and state_dict[key].shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(state_dict[key], device=self.fitted.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted.item())

    @torch.no_grad()
    def fit(
        self,
        params: Mapping[str, torch.Tensor],
        batches: Sequence[PairBatch],
        n_effective: float,
        fixed: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> dict:
        """Evidence-maximised precisions and covariance factors from the body's features.

        Parameters
        ----------
        params : the trained (MAP) named weights, no draw dim.
        batches : regression pairs from the trained setting's SROT plans.
        n_effective : the model's plate size.
        fixed : per net, (alpha, beta) each (out,) to use instead of the evidence's (checks).

        Returns
        -------
        dict (JSON-able): sigma_v (D,), sigma_g, alpha_v (D,), alpha_g, gamma_v, gamma_g
        (effective parameter counts), map_rmse_v (D,), map_rmse_g (residual sd of the MAP
        weights), n_pairs.
        """
        info: dict = {"n_pairs": int(sum(b.size for b in batches))}
        for net in NETS:
            phi, y = regression(self.fields, params, batches, net)
            ev = evidence(phi, y, n_effective)
            if fixed is not None and net in fixed:
                ev["alpha"], ev["beta"] = (torch.as_tensor(a).to(phi) for a in fixed[net])
                d = ev["beta"][:, None] * ev["eigval"]
                ev["gamma"] = (d / (ev["alpha"][:, None] + d)).sum(-1)
            tril = covariance_factor(ev["eigval"], ev["eigvec"], ev["alpha"], ev["beta"])
            getattr(self, f"{net}_scale_tril").copy_(tril)
            getattr(self, f"{net}_alpha").copy_(ev["alpha"])
            getattr(self, f"{net}_beta").copy_(ev["beta"])
            coef = coefficients(self.fields, params, net).double()
            rmse = ((y - phi @ coef.T) ** 2).mean(0).sqrt()
            one = net == "g"
            for key, val in (
                ("sigma", ev["beta"].rsqrt()),
                ("alpha", ev["alpha"]),
                ("gamma", ev["gamma"]),
                ("map_rmse", rmse),
            ):
                vals = val.cpu().tolist()
                info[f"{key}_{net}"] = vals[0] if one else vals
        self.set_mixture(torch.ones(1), {net: None for net in NETS})
        self.joint_scale_tril = torch.zeros(0, 0, device=self.fitted.device)
        self.fitted.fill_(1.0)
        return info

    def _flat_offsets(self) -> torch.Tensor:
        """Mixture shifts as (C, Pt), outputs in order v_0 .. v_{D-1}, g."""
        return torch.cat([getattr(self, f"{n}_offsets").flatten(1) for n in NETS], dim=1)

    def _unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """(S, Pt) coefficients -> per net (S, out, P), the inverse of :meth:`_flat_offsets`."""
        sizes = [(_spec(self.fields, n).out_dim, _spec(self.fields, n).sizes[-2] + 1) for n in NETS]
        parts = flat.split([o * p for o, p in sizes], dim=-1)
        return {n: x.reshape(len(x), o, p) for n, x, (o, p) in zip(NETS, parts, sizes, strict=True)}

    def _as_weights(self, coefs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per net (S, out, P) coefficients -> the last layers' named weights and biases."""
        out = {}
        for net, coef in coefs.items():
            w_name, b_name = _spec(self.fields, net).last_layer(f"{net}.")
            out[w_name] = coef[..., :-1].transpose(-1, -2).contiguous()
            out[b_name] = coef[..., -1].contiguous()
        return out

    def set_mixture(self, weights: torch.Tensor, offsets: Mapping[str, torch.Tensor | None]):
        """Mixture weights (C,) and per-net mean shifts (C, out, P); None: zeros."""
        dev = self.fitted.device
        self.mix_weights = weights.to(dev, torch.float32)
        for net in NETS:
            off = offsets[net]
            if off is None:
                spec = _spec(self.fields, net)
                off = torch.zeros(len(weights), spec.out_dim, spec.sizes[-2] + 1)
            setattr(self, f"{net}_offsets", off.to(dev, torch.float32))

    @torch.no_grad()
    def draw(self, params: Mapping[str, torch.Tensor], samples: int) -> dict[str, torch.Tensor]:
        """``samples`` draws of the last layers around the MAP ``params``.

        Returns
        -------
        dict name -> Tensor (S, *shape) for the last-layer weights and biases of v and g; the
        draws are grouped by mixture component (counts from :func:`allocate`).
        """
        if not self.is_fitted:
            raise RuntimeError("the last-layer posterior is not computed yet (finish the fit)")
        counts = allocate(self.mix_weights, samples)
        if self.joint_scale_tril.numel():
            return self._draw_joint(params, counts)
        coefs = {}
        for net in NETS:
            tril = getattr(self, f"{net}_scale_tril")
            mean = coefficients(self.fields, params, net)  # (out, P)
            shift = getattr(self, f"{net}_offsets")
            centre = torch.cat(
                [(mean + shift[c]).expand(n, *mean.shape) for c, n in enumerate(counts) if n]
            )  # (S, out, P)
            z = torch.randn(centre.shape, dtype=tril.dtype, device=tril.device)
            coefs[net] = centre + torch.einsum("opq,soq->sop", tril, z)
        return self._as_weights(coefs)

    def _draw_joint(self, params, counts) -> dict[str, torch.Tensor]:
        """Draws from the joint Gaussian of all last-layer coefficients (see draw)."""
        mean = torch.cat([coefficients(self.fields, params, n).flatten() for n in NETS])
        shift = self._flat_offsets()
        centre = torch.cat(
            [(mean + shift[c]).expand(n, -1) for c, n in enumerate(counts) if n]
        )  # (S, Pt)
        tril = self.joint_scale_tril
        z = torch.randn(centre.shape, dtype=tril.dtype, device=tril.device)
        return self._as_weights(self._unflatten(centre + z @ tril.T))


@torch.no_grad()
def mixture_offsets(
    laplace: LastLayerLaplace,
    params: Mapping[str, torch.Tensor],
    reference: Sequence[PairBatch],
    components: Sequence[tuple[float, Sequence[PairBatch]]],
    n_effective: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mixture over SROT settings: component s's mean is MAP + ridge_s - ridge_ref.

    Ridge solutions use the fitted alpha, beta of ``laplace`` on each setting's own features and
    targets; every component keeps the fitted covariance.

    Parameters
    ----------
    params : the trained (MAP) named weights.
    reference : regression batches of the trained setting.
    components : (weight w_s, batches of setting s) per component; weights need not sum to 1.

    Returns
    -------
    weights (C,) normalised, and per net the offsets (C, out, P) for :meth:`set_mixture`.
    """
    weights = torch.tensor([float(w) for w, _ in components], dtype=torch.float64)
    if len(components) == 0 or torch.any(weights < 0) or weights.sum() <= 0:
        raise ValueError("components need non-negative weights with a positive sum")
    offsets = {}
    for net in NETS:
        alpha = getattr(laplace, f"{net}_alpha").double()
        beta = getattr(laplace, f"{net}_beta").double()

        def solve(batches, net=net, alpha=alpha, beta=beta):
            phi, y = regression(laplace.fields, params, batches, net)
            return ridge(phi, y, alpha.to(phi.device), beta.to(phi.device), n_effective)

        ref = solve(reference)
        offsets[net] = torch.stack(
            [
                torch.zeros_like(ref) if batches is reference else solve(batches) - ref
                for _, batches in components
            ]
        )
    return weights / weights.sum(), offsets


def set_mixture(
    guide: LaplaceGuide,
    reference: Sequence[PairBatch],
    components: Sequence[tuple[float, Sequence[PairBatch]]],
) -> None:
    """Make a fitted guide's posterior the SROT-setting mixture of :func:`mixture_offsets`."""
    params = guide.map_params()
    model = guide.vgfm_model
    weights, offsets = mixture_offsets(
        guide.laplace, params, reference, components, model.n_effective
    )
    guide.laplace.set_mixture(weights, offsets)


class LaplaceGuide(AutoDelta):
    """AutoDelta over every site (MAP fit) + the last layers' Gaussian posterior for draws.

    model : the VGFMModel (blocks "body" and "last"); init_loc_fn : as for AutoDelta.
    """

    def __init__(self, model, init_loc_fn) -> None:
        super().__init__(model, init_loc_fn=init_loc_fn)
        self.laplace = LastLayerLaplace(model.fields)
        self._vgfm = (model,)  # not a module: kept out of the state dict

    @property
    def vgfm_model(self):
        return self._vgfm[0]

    def map_params(self) -> dict[str, torch.Tensor]:
        """The fitted (MAP) named weights, no draw dim: this guide's own, even outside Pyro's
        module-local params (where the global param store would give an earlier fit's)."""
        with pyro.settings.context(module_local_params=True):
            return self.vgfm_model.unpack(self.median())

    @torch.no_grad()
    def fit_laplace(self, batches: Sequence[PairBatch]) -> dict:
        """Compute the last layers' posterior from ``batches`` (see LastLayerLaplace.fit)."""
        return self.laplace.fit(self.map_params(), batches, self.vgfm_model.n_effective)

    def draw_groups(self, samples: int) -> tuple[int, ...] | None:
        """Draws per mixture component of ``draw_params(samples)`` (consecutive), or None when
        fewer than 2 components get a draw (then the draws are plain posterior draws)."""
        counts = tuple(allocate(self.laplace.mix_weights, samples))
        return counts if sum(c > 0 for c in counts) >= 2 else None

    @torch.no_grad()
    def draw_params(self, samples: int) -> dict[str, torch.Tensor]:
        """Named weights (S, *shape): the body at MAP, the last layers Gaussian draws."""
        params = self.map_params()
        last = self.laplace.draw(params, samples)
        body = {k: v.expand(samples, *v.shape) for k, v in params.items() if k not in last}
        return {**body, **last}
