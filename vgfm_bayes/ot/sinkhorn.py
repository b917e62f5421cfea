"""Debiased Sinkhorn divergence with the W1 (Euclidean) cost: a training loss that stays on device.

    S_eps(a, b) = OT_eps(a, b) - OT_eps(a, a) / 2 - OT_eps(b, b) / 2

with OT_eps the entropic transport cost (log-domain Sinkhorn, eps annealed from the cloud's
diameter down to ``blur``, as geomloss does). S_eps is 0 for equal measures and tends to W1 as
blur -> 0, slowly for this cost and from below (two 2-D Gaussian clouds with W1 = 0.73 and
diameter about 8: S = 0.59 at blur 0.05, 0.70 at blur 0.01). Unlike POT's network simplex (CPU
only) it runs on whatever device the particles are on, with no host copies. Gradients follow the
envelope theorem: the Sinkhorn loop runs without autograd and one last, differentiable update of
the potentials gives d/dx, d/dy and d/dlog_w.

Used by ``DistributionFit`` when ``fit_w1 = "sinkhorn"``; evaluation keeps exact W1 (w1.py).
"""

from __future__ import annotations

import math

import torch


def _softmin(eps: float, cost: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """-eps * log sum_j exp(h_j - C_ij / eps), shape (n,); cost (n, m), h (m,)."""
    return -eps * torch.logsumexp(h[None, :] - cost / eps, dim=1)


def _eps_schedule(diameter: float, blur: float, scaling: float) -> list[float]:
    eps = [diameter]
    while eps[-1] * scaling > blur:
        eps.append(eps[-1] * scaling)
    return [*eps, blur]


def sinkhorn_divergence(
    x: torch.Tensor,
    log_w: torch.Tensor,
    y: torch.Tensor,
    blur: float,
    *,
    diameter: float | None = None,
    scaling: float = 0.7,
    extra_iters: int = 10,
) -> torch.Tensor:
    """S_eps between sum_i softmax(log_w)_i delta_{x_i} and uniform y, with cost ||x - y||.

    Parameters
    ----------
    x : Tensor, shape (n, D) -- particles; log_w : Tensor, shape (n,) -- their log-weights.
    y : Tensor, shape (m, D) -- observed cells, uniform weights.
    blur : final entropic regularisation eps, in units of distance (W1 cost); the divergence
        approximates W1 up to O(blur).
    diameter : an upper bound of the distances, where the eps annealing starts; default the
        largest distance in this batch (one device-to-host read per call: pass a fixed bound in
        training loops on a GPU).
    scaling : eps decreases geometrically by this factor per iteration (annealing).
    extra_iters : further iterations at the final eps.

    Returns
    -------
    Tensor, shape () -- differentiable w.r.t. x, log_w and y.
    """
    if not blur > 0:
        raise ValueError(f"blur must be positive, got {blur}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    xx, yy = x.to(dtype), y.to(dtype)
    log_a = torch.log_softmax(log_w.to(dtype), dim=0)
    log_b = torch.full((y.shape[0],), -math.log(y.shape[0]), dtype=dtype, device=y.device)
    with torch.no_grad():
        c_xy, c_yx = torch.cdist(xx, yy), torch.cdist(yy, xx)
        c_xx, c_yy = torch.cdist(xx, xx), torch.cdist(yy, yy)
        if diameter is None:
            diameter = float(torch.maximum(c_xy.max(), torch.maximum(c_xx.max(), c_yy.max())))
        la, lb = log_a.detach(), log_b
        schedule = _eps_schedule(max(diameter, blur), blur, scaling) + [blur] * extra_iters
        eps = schedule[0]
        f_ab, g_ba = _softmin(eps, c_xy, lb), _softmin(eps, c_yx, la)
        f_aa, g_bb = _softmin(eps, c_xx, la), _softmin(eps, c_yy, lb)
        for eps in schedule:
            # cross term: plain alternating (log-domain Sinkhorn) updates, which converged in
            # fewer iterations here than geomloss's averaged symmetric ones; self terms:
            # averaged symmetric updates (the plain ones oscillate for a symmetric problem)
            f_ab = _softmin(eps, c_xy, lb + g_ba / eps)
            g_ba = _softmin(eps, c_yx, la + f_ab / eps)
            f_aa = 0.5 * (f_aa + _softmin(eps, c_xx, la + f_aa / eps))
            g_bb = 0.5 * (g_bb + _softmin(eps, c_yy, lb + g_bb / eps))
    # last extrapolation with autograd (envelope theorem): gradients reach x, y and log_w
    eps = blur
    cxy = torch.cdist(xx, yy)
    f_ab, g_ba = (
        _softmin(eps, cxy, lb + g_ba.detach() / eps),
        _softmin(eps, cxy.T, log_a + f_ab.detach() / eps),
    )
    f_aa = _softmin(eps, torch.cdist(xx, xx), log_a + f_aa.detach() / eps)
    g_bb = _softmin(eps, torch.cdist(yy, yy), lb + g_bb.detach() / eps)
    a, b = log_a.exp(), log_b.exp()
    value = (a * (f_ab - f_aa)).sum() + (b * (g_ba - g_bb)).sum()
    return value.to(x.dtype)
