"""What the snapshots' distribution-fit factor knows about the last layers (last_layer head).

The last_layer head's Gaussian is the posterior of the last layers given the regression targets
alone. The model's joint phase adds the factor exp(-w F), F = lambda_ot sum_k W1_k + lambda_mass
sum_k (log M_k - log m_k)^2 (model/vgfm.py), and a posterior that ignores it lets draws move the
simulated snapshots freely: its bootstrap x SROT-setting components fit the snapshots ~2.5x
worse than the MAP on simulation_gene. This module gives the factor's Gauss-Newton precision
about the last-layer coefficients theta at the MAP, so the posterior becomes

    precision  A + w H,     component mean  MAP + (A + w H)^{-1} A delta_s,

which removes only what the snapshots see: shifts that leave the simulated snapshots in place
keep their width.

H comes from the particles' forward sensitivities along the simulation (Euler, as the fit):
S_i = dx_i/dtheta and R_i = dlog w_i/dtheta obey
    dS/dt = (dv/dx) S + dv/dtheta,     dR/dt = (dg/dx) S + dg/dtheta,
with dv/dtheta the last hidden layer's features (the fields are linear in theta). At each
snapshot time:
- W1: moving the particles coherently by d_i adds to a fitted residual W1_k in quadrature,
  W1_k(theta) ~ sqrt(W1_k^2 + sum_i a_i |d_i|^2), so its curvature is
  sum_i a_i S_i^T S_i / W1_k (the sensitivities are checked against finite differences of the
  simulation in the tests; the quadrature is a model of W1, not exact). W1_k is floored at
  the snapshot's sampling floor (W1 between two random halves of it): a fit closer than its
  target's own noise fits that noise, and must not make the factor sharper;
- mass: the Gauss-Newton term 2 r r^T, r = dlog M_k/dtheta = sum_i a_i R_i.
- reweighting: growth that keeps the mass but moves it between cells changes the distribution
  too. Linearised optimal transport turns the weights' change nu into the displacement
  grad psi that changes the distribution alike (:func:`reweighting_displacement`; its size
  is nu^T M nu, the H^-1 norm, :func:`reweighting_metric`), and the quadrature sees the net
  move S_i + dgrad psi_i/dtheta: directions where velocity and growth trade off (growth the
  snapshots cannot identify) keep their width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from ..nn import Fields
from ..ot.w1 import sampling_floor, w1_exact
from .laplace import NETS, LaplaceGuide, LastLayerLaplace, coefficients, features

MAX_PARAMETERS = 2500  # theta's size beyond which H (P^2) and the sensitivities are not built


def _knn_graph(x: torch.Tensor, a: torch.Tensor, k: int):
    """The k nearest neighbours of every particle (N, k) and the pseudo-inverse M (N, N) of the
    kNN-graph Laplacian whose Dirichlet form is sum_i a_i (D / k) sum_{j in N(i)} (phi_j -
    phi_i)^2 / r_ij^2 ~ int |grad phi|^2 dmu (a neighbour's direction sees 1/D of it)."""
    n, dim = x.shape
    k = max(1, min(k, n - 1))
    dist = torch.cdist(x, x)
    r, idx = torch.topk(dist, k + 1, largest=False)  # nearest first: column 0 is the point
    r, idx = r[:, 1:], idx[:, 1:]
    floor = 1e-6 * float(dist.max().clamp_min(1e-12))
    c = torch.zeros(n, n, dtype=x.dtype)
    c.scatter_(1, idx, a[:, None] * dim / (k * r.clamp_min(floor) ** 2))
    sym = 0.5 * (c + c.T)
    lap = 2.0 * (torch.diag(sym.sum(1)) - sym)
    return idx, torch.linalg.pinv(lap, hermitian=True)


def reweighting_metric(x: torch.Tensor, a: torch.Tensor, k: int = 20) -> torch.Tensor:
    """M (N, N) with nu^T M nu ~ W2^2(mu, mu + nu) for a mass-preserving change nu of the
    weights a of the particles x: the dual (H^-1(mu)) norm, linearised optimal transport.

    sup_phi 2 <nu, phi> - int |grad phi|^2 dmu, with the integral discretised on the
    k-nearest-neighbour graph (:func:`_knn_graph`), is nu^T L^+ nu for the graph Laplacian L.
    Within a factor 1.5 of the exact W2^2 of smooth reweightings of uniform samples in 1-D and
    2-D (tests); a scale, not an exact distance.
    """
    return _knn_graph(x.double(), a.double(), k)[1]


def reweighting_displacement(
    x: torch.Tensor, a: torch.Tensor, nu: torch.Tensor, k: int = 20
) -> torch.Tensor:
    """(N, D, P): for each column of the weights' changes nu (N, P), the displacement of the
    particles that changes the distribution in the same way to first order.

    Against any test function phi, sum_i nu_i phi_i = phi^T L psi ~ sum_i a_i grad phi . grad
    psi with L psi = nu, which is what moving particle i by grad psi(x_i) does. So d_i + grad
    psi_i is the net first-order change of a move d together with a reweighting nu, and
    sum_i a_i |d_i + grad psi_i|^2 its size: a move that a reweighting undoes (growth that the
    snapshots cannot tell from velocity) costs nothing, where adding the two sizes would count
    it twice. psi = M nu on the kNN graph, gradients by local least squares over the same
    neighbours (minimum-norm when k < D).
    """
    x = x.double()
    idx, metric = _knn_graph(x, a.double(), k)
    psi = metric @ nu.double()  # (N, P)
    dx = x[idx] - x[:, None]  # (N, k, D)
    dpsi = psi[idx] - psi[:, None]  # (N, k, P)
    return torch.linalg.pinv(dx) @ dpsi


def parameter_count(fields: Fields) -> int:
    """Size of theta: (H_v + 1) per velocity dimension, then H_g + 1 for growth."""
    return fields.dim * (fields.velocity.sizes[-2] + 1) + fields.growth.sizes[-2] + 1


def factor_information(
    fields: Fields,
    params: Mapping[str, torch.Tensor],
    coefs: Mapping[str, torch.Tensor],
    x0: torch.Tensor,
    snapshots: list[torch.Tensor],
    times: torch.Tensor,
    *,
    lambda_ot: float,
    lambda_mass: float,
    step_size: float,
    n_particles: int = 512,
    n_targets: int = 1024,
    seed: int = 0,
) -> dict:
    """Gauss-Newton precision H of F about theta at the MAP, float64.

    Parameters
    ----------
    params : the MAP's named weights (no draw dim).
    coefs : per net the last layers as coefficients (out, P) (laplace.coefficients).
    x0, snapshots, times : as the DistributionFit's (internal units); Gauss-Newton needs no
        residuals, so the masses do not enter.
    n_particles, n_targets : subsamples of the first snapshot (particles) and of each later one
        (for W1_k); the particles' weights are 1 / n as in the fit.

    Returns
    -------
    dict: H (P, P); w1 (K - 1,) the MAP's W1 at each later snapshot and floor (K - 1,) the
    snapshot subsample's sampling floor (W1 between two random halves); the W1 curvature at
    snapshot k is lambda_ot / max(w1_k, floor_k) times the net move; displacement (P, P) the
    per-snapshot sum_i a_i S_i^T S_i summed over snapshots, and reweighting (P, P) the same
    of the reweighting's equivalent displacement (:func:`reweighting_displacement`), summed
    (both unscaled; H's W1 part uses their net move, cross terms included).
    """
    gen = torch.Generator().manual_seed(seed)
    dim = fields.dim
    pv, pg = coefs["v"].shape[-1], coefs["g"].shape[-1]
    n_par = dim * pv + pg
    if n_par > MAX_PARAMETERS:
        raise ValueError(f"{n_par} last-layer coefficients: more than {MAX_PARAMETERS}")

    def subsample(x: torch.Tensor, n: int) -> torch.Tensor:
        if x.shape[0] <= n:
            return x
        return x[torch.randperm(x.shape[0], generator=gen)[:n]]

    # on the CPU with the snapshots (the fit may have run on a GPU; this runs once)
    params = {k: v.detach().cpu() for k, v in params.items()}
    cv, cg = coefs["v"].detach().cpu(), coefs["g"].detach().cpu()
    x = subsample(x0, n_particles).detach().clone()
    n = x.shape[0]
    lw = torch.full((n,), -math.log(n), dtype=x.dtype)
    sens = x.new_zeros(n, dim, n_par)  # dx/dtheta
    rsens = x.new_zeros(n, n_par)  # dlog w/dtheta
    h_total = torch.zeros(n_par, n_par, dtype=torch.float64)
    disp = torch.zeros(n_par, n_par, dtype=torch.float64)
    rew = torch.zeros(n_par, n_par, dtype=torch.float64)
    w1s, floors = [], []
    for k in range(1, len(times)):
        t0, t1 = float(times[k - 1]), float(times[k])
        steps = max(1, math.ceil((t1 - t0) / step_size - 1e-9))
        dt = (t1 - t0) / steps
        for s in range(steps):
            t = t0 + s * dt
            xg = x.detach().requires_grad_(True)
            with torch.enable_grad():
                phi_v = features(fields, params, xg, t, "v")  # (N, Pv)
                phi_g = features(fields, params, xg, t, "g")  # (N, Pg)
                v = phi_v @ cv.T  # (N, D)
                g = (phi_g @ cg.T).squeeze(-1)  # (N,)
                # (N, D, D): dv_j / dx, one backward pass per output (particles independent)
                rows = [
                    torch.autograd.grad(v[:, j].sum(), xg, retain_graph=True)[0] for j in range(dim)
                ]
                jac_v = torch.stack(rows, dim=1)
                jac_g = torch.autograd.grad(g.sum(), xg)[0]  # (N, D)
            phi_v, phi_g, v, g = phi_v.detach(), phi_g.detach(), v.detach(), g.detach()
            dsens = torch.einsum("nij,njp->nip", jac_v, sens)
            for j in range(dim):
                dsens[:, j, j * pv : (j + 1) * pv] += phi_v
            drsens = torch.einsum("nj,njp->np", jac_g, sens)
            drsens[:, dim * pv :] += phi_g
            x = x + dt * v
            lw = lw + dt * g
            sens = sens + dt * dsens
            rsens = rsens + dt * drsens
        a = torch.softmax(lw.double(), dim=0)
        y = subsample(snapshots[k - 1], n_targets)
        w1 = max(w1_exact(x.numpy(), a.numpy(), y.numpy()), 1e-12)
        w1s.append(w1)
        # a residual below the snapshot's own sampling noise fits that noise; the curvature
        # must not sharpen with it (the in-sample W1 of a good fit sits below the floor)
        floor = sampling_floor(y.numpy(), rng=np.random.default_rng([seed, k]))
        floors.append(floor)
        scale = max(w1, floor)
        s64, r64 = sens.double(), rsens.double()
        gram = torch.einsum("n,nip,niq->pq", a, s64, s64)
        r = a @ r64  # dlog M_k / dtheta
        nu = a[:, None] * (r64 - r)  # (N, P): the weights' mass-preserving change per theta
        equiv = reweighting_displacement(x, a, nu)  # (N, D, P)
        net = s64 + equiv  # the move and the reweighting together (they can cancel)
        disp += gram
        rew += torch.einsum("n,nip,niq->pq", a, equiv, equiv)
        combined = torch.einsum("n,nip,niq->pq", a, net, net)
        h_total += (lambda_ot / scale) * combined + 2.0 * lambda_mass * torch.outer(r, r)
    h_total = 0.5 * (h_total + h_total.T)
    return {
        "H": h_total,
        "w1": np.asarray(w1s),
        "floor": np.asarray(floors),
        "displacement": disp,
        "reweighting": rew,
    }


@torch.no_grad()
def condition(laplace: LastLayerLaplace, information: torch.Tensor) -> dict:
    """Multiply ``laplace``'s posterior by the distribution-fit factor's Gaussian approximation.

    information : (Pt, Pt) the factor's precision about the coefficients at the MAP
        (:func:`factor_information`'s H times the factor's weight).

    Every component's precision becomes A + H and its shift delta_s from the MAP becomes
    (A + H)^{-1} A delta_s (the product of N(MAP + delta_s, A^{-1}) and N(MAP, H^{-1})).
    Returns a record: the mean ratio of the coefficients' posterior sd after / before, and
    the components' mean shift length in the prior (A) metric before and after.
    """
    blocks = []
    for net in NETS:
        tril = getattr(laplace, f"{net}_scale_tril").double()
        blocks += list(torch.cholesky_inverse(tril))  # per output: A_j = (L L^T)^{-1}
    prec_a = torch.block_diag(*blocks)
    info = information.to(prec_a)
    cov_a = torch.block_diag(
        *[t @ t.T for n in NETS for t in getattr(laplace, f"{n}_scale_tril").double()]
    )
    prec = prec_a + 0.5 * (info + info.T)
    cov = torch.cholesky_inverse(torch.linalg.cholesky(prec))
    cov = 0.5 * (cov + cov.T)
    delta = laplace._flat_offsets().double()  # (C, Pt)
    moved = (cov @ (prec_a @ delta.T)).T

    def length(d):  # mean over components of sqrt(d^T A d)
        return float(torch.einsum("cp,pq,cq->c", d, prec_a, d).clamp_min(0).sqrt().mean())

    laplace.joint_scale_tril = torch.linalg.cholesky(cov).to(laplace.fitted.device, torch.float32)
    laplace.set_mixture(laplace.mix_weights.clone(), laplace._unflatten(moved))
    sd_ratio = (cov.diagonal() / cov_a.diagonal()).sqrt()
    return {
        "snapshot_sd_ratio_mean": float(sd_ratio.mean()),
        "shift_length_before": length(delta),
        "shift_length_after": length(moved),
    }


def factor_weight(laplace: LastLayerLaplace, n_effective: float, vgfm_sigmas) -> float:
    """The distribution-fit factor's weight beside the evidence-fitted regression.

    The model's factor is n_effective * F against a regression of precision n_effective /
    sigma^2 at the VGFM-equivalent sigma (model/vgfm.py); keeping that ratio at the evidence's
    noise precisions beta gives n_effective * mean_j(beta_j sigma_vgfm,j^2), so lambda_ot and
    lambda_mass keep their meaning (as VGFMModel.fit_scale does for learned sigmas)."""
    sv, sg = vgfm_sigmas
    ratios = torch.cat([laplace.v_beta.double() * sv**2, laplace.g_beta.double() * sg**2])
    return float(n_effective * ratios.mean())


def condition_on_snapshots(guide: LaplaceGuide, fit, vgfm_sigmas, seed: int = 0) -> dict:
    """Multiply a fitted guide's posterior by the distribution-fit factor ``fit``'s Gaussian
    approximation (model/snapshot_information.py); a record for the run. Skipped (with the
    reason in the record) when the last layers have more than MAX_PARAMETERS coefficients."""
    laplace, model = guide.laplace, guide.vgfm_model
    n_par = parameter_count(laplace.fields)
    if n_par > MAX_PARAMETERS:
        return {"snapshot_conditioning": f"skipped: {n_par} > {MAX_PARAMETERS} coefficients"}
    params = guide.map_params()
    coefs = {net: coefficients(laplace.fields, params, net) for net in NETS}
    weight = factor_weight(laplace, model.n_effective, vgfm_sigmas)
    info = factor_information(
        laplace.fields,
        params,
        coefs,
        fit.x0.cpu(),
        [y.cpu() for y in fit.snapshots],
        fit.times.cpu(),
        lambda_ot=fit.lambda_ot,
        lambda_mass=fit.lambda_mass,
        step_size=fit.step_size,
        seed=seed,
    )
    record = condition(laplace, weight * info["H"])
    return {"snapshot_conditioning": "done", "factor_weight": weight, **record}
