"""Scalable W1: Sinkhorn training loss, mini-batch evaluation, and a tiny end-to-end fit."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from vgfm_bayes import VGFM
from vgfm_bayes.data import gaussian_mixture
from vgfm_bayes.metrics import score, w1_minibatch
from vgfm_bayes.ot import sinkhorn_divergence, w1_exact, w1_loss
from vgfm_bayes.posterior import Trajectories


@pytest.fixture(autouse=True)
def _seed():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    torch.manual_seed(0)


def _clouds(n=120, m=150, d=2, shift=2.0):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, d, generator=g, dtype=torch.float64) * 0.8
    y[:, 0] += shift
    lw = 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    return x, lw, y


def test_sinkhorn_divergence_zero_and_close_to_w1():
    x, lw, y = _clouds()
    assert sinkhorn_divergence(y, torch.zeros(len(y)), y, 0.01).abs().item() < 1e-6
    exact = w1_exact(x.numpy(), torch.softmax(lw, 0).numpy(), y.numpy())
    value = sinkhorn_divergence(x, lw, y, 0.01).item()
    assert value == pytest.approx(exact, rel=0.05)
    assert sinkhorn_divergence(x, lw, y, 0.5).item() < value  # more blur, more bias (below)


def test_sinkhorn_gradients_match_emd():
    x, lw, y = _clouds(shift=1.0)
    grads = []
    for loss in (lambda a, b: sinkhorn_divergence(a, b, y, 0.01), lambda a, b: w1_loss(a, b, y)):
        xa, la = x.clone().requires_grad_(True), lw.clone().requires_grad_(True)
        loss(xa, la).backward()
        grads.append((xa.grad.numpy().ravel(), la.grad.numpy()))
    assert np.corrcoef(grads[0][0], grads[1][0])[0, 1] > 0.8  # positions
    assert np.corrcoef(grads[0][1], grads[1][1])[0, 1] > 0.9  # weights (the growth signal)


def test_score_states_minibatch_w1():
    tc = gaussian_mixture(dim=2, times=[0, 1], cells_per_time=600, seed=1)
    x = np.stack([tc.x[0], tc.x[1][:600]])[None]  # a perfect prediction at t1
    log_w = np.full((1, 2, 600), -np.log(600))
    traj = Trajectories(tc.times, x, log_w)
    exact = score(traj, tc)
    assert exact["w1_method"] == ["exact"] and "w1_minibatch" not in exact
    assert exact["w1_mean"] < 1e-6
    mini = score(traj, tc, exact_max_pairs=1000, minibatch_size=200, minibatch_repeats=3)
    assert mini["w1_method"] == ["minibatch"]
    assert mini["w1_minibatch"] == {"size": 200, "repeats": 3}
    # subsampling noise makes the estimate positive even for identical sets: biased upwards
    assert 0 < mini["w1_mean"] < 0.5
    rng = np.random.default_rng(0)
    est = w1_minibatch(tc.x[0], np.ones(600), tc.x[1], size=600, repeats=1, rng=rng)
    assert est == pytest.approx(w1_exact(tc.x[0], np.ones(600), tc.x[1]), rel=1e-9)


@pytest.mark.parametrize("fit_w1", ["emd", "sinkhorn"])
def test_tiny_fit_with_minibatch_srot(fit_w1):
    tc = gaussian_mixture(dim=2, times=[0, 1, 2], cells_per_time=300, seed=0)
    model = VGFM(
        head="point",
        warmup_steps=5,
        joint_steps=2,
        srot_batch=100,
        tau=0.1,
        eps=0.02,
        velocity_hidden=[16],
        growth_hidden=[16],
        joint_particles=64,
        joint_targets=64,
        batch_size=32,
        fit_w1=fit_w1,
        seed=0,
    )
    model.fit(tc, progress=False)
    assert len(model.history.joint) == 2 and np.isfinite(model.history.joint).all()
    out = model.evaluate(samples=1)
    assert out["w1_method"] == ["exact", "exact"] and np.isfinite(out["w1_mean"])
