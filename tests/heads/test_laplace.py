"""The last_layer head's exact Gaussian posterior (model/laplace.py): closed form, evidence,
mixture over SROT settings, save / load, and fit quality against the point head."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from tests.tiny import HEADS_TINY
from vgfm_bayes import VGFM
from vgfm_bayes.model.laplace import (
    LastLayerLaplace,
    allocate,
    coefficients,
    design,
    evidence,
    mixture_offsets,
    set_mixture,
)
from vgfm_bayes.nn import Fields
from vgfm_bayes.ot import PairBatch


def _batches(n_batches: int, size: int, seed: int, dim: int = 2) -> list[PairBatch]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        x = torch.randn(size, dim, generator=g)
        t = torch.rand(size, generator=g) * 2.0
        u = torch.stack([torch.sin(x[:, 0]) + t, x[:, 1] ** 2], -1)
        u = u + 0.2 * torch.randn(size, dim, generator=g)
        gamma = 0.5 * x[:, 0] - 0.2 * t + 0.05 * torch.randn(size, generator=g)
        out.append(PairBatch(x, t, u, gamma))
    return out


def _numpy_design(params, batches, net: str, hidden: int) -> np.ndarray:
    """The last hidden layer (and a 1) computed independently: one LeakyReLU layer."""
    x = np.concatenate([np.c_[b.x.numpy(), b.t.numpy() / 2.0] for b in batches]).astype(float)
    w, b = params[f"{net}.l0.weight"].double().numpy(), params[f"{net}.l0.bias"].double().numpy()
    h = x @ w + b
    h = np.where(h > 0, h, 0.01 * h)
    assert h.shape[1] == hidden
    return np.c_[h, np.ones(len(h))]


def _log_evidence(log_ab, phi, y, n):
    """Log marginal likelihood of Bayesian linear regression, each row counted n / N times."""
    alpha, beta = np.exp(log_ab)
    c = n / len(phi)
    p = phi.shape[1]
    a = alpha * np.eye(p) + beta * c * phi.T @ phi
    m = beta * np.linalg.solve(a, c * phi.T @ y)
    e = 0.5 * beta * c * np.sum((y - phi @ m) ** 2) + 0.5 * alpha * m @ m
    return 0.5 * p * np.log(alpha) + 0.5 * n * np.log(beta) - e - 0.5 * np.linalg.slogdet(a)[1]


def test_posterior_is_the_textbook_linear_regression_posterior():
    fields = Fields.build(2, 0.0, 2.0, (5,), (4,))
    params = fields.init((), generator=torch.Generator().manual_seed(3))
    batches = _batches(3, 20, seed=1)
    n_eff = 150.0
    lap = LastLayerLaplace(fields)
    info = lap.fit(params, batches, n_eff)
    for net, hidden, ys in (
        ("v", 5, np.concatenate([b.u.numpy() for b in batches]).astype(float)),
        ("g", 4, np.concatenate([b.gamma.numpy() for b in batches]).astype(float)[:, None]),
    ):
        phi = _numpy_design(params, batches, net, hidden)
        c = n_eff / len(phi)
        alpha = getattr(lap, f"{net}_alpha").double().numpy()
        beta = getattr(lap, f"{net}_beta").double().numpy()
        tril = getattr(lap, f"{net}_scale_tril").double().numpy()
        for j in range(ys.shape[1]):
            # alpha, beta maximise the evidence (found here by a generic optimiser)
            yj = ys[:, j]
            best = minimize(lambda v, p=phi, y=yj: -_log_evidence(v, p, y, n_eff), [0.0, 0.0])
            np.testing.assert_allclose([alpha[j], beta[j]], np.exp(best.x), rtol=2e-3)
            # covariance A^{-1} at those alpha, beta
            a = alpha[j] * np.eye(hidden + 1) + beta[j] * c * phi.T @ phi
            np.testing.assert_allclose(tril[j] @ tril[j].T, np.linalg.inv(a), rtol=1e-4, atol=1e-7)
        # the evidence's own posterior mean is the textbook one
        ev = evidence(torch.from_numpy(phi), torch.from_numpy(ys), n_eff)
        for j in range(ys.shape[1]):
            a = alpha[j] * np.eye(hidden + 1) + beta[j] * c * phi.T @ phi
            m = beta[j] * np.linalg.solve(a, c * phi.T @ ys[:, j])
            np.testing.assert_allclose(ev["mean"][j].numpy(), m, rtol=1e-5, atol=1e-8)
    assert len(info["sigma_v"]) == 2 and info["sigma_g"] > 0 and info["n_pairs"] == 60
    # draws: mean the given (MAP) weights, covariance the stored one, in the weights' layout
    torch.manual_seed(0)
    draws = lap.draw(params, 40_000)
    assert draws["v.l1.weight"].shape == (40_000, 5, 2) and draws["g.l1.bias"].shape == (40_000, 1)
    coef = coefficients(fields, draws, "v").double()  # (S, 2, 6)
    mean = coefficients(fields, params, "v").double()
    for j in range(2):
        emp_cov = torch.cov(coef[:, j].T)
        cov = lap.v_scale_tril[j].double() @ lap.v_scale_tril[j].double().T
        sd = cov.diagonal().sqrt()
        assert torch.all((coef[:, j].mean(0) - mean[j]).abs() < 0.03 * sd)
        assert torch.all((emp_cov - cov).abs() < 0.04 * sd[:, None] * sd[None])


def test_evidence_recovers_the_noise_sd():
    """Synthetic linear data, noise sd 0.3: the evidence's sigma is within 15%, also when N
    rows stand for a larger sample (n_effective = 4 N) drawn from the same law."""
    g = torch.Generator().manual_seed(0)
    n, p = 4000, 12
    phi = torch.cat([torch.randn(n, p - 1, generator=g), torch.ones(n, 1)], 1).double()
    w = torch.randn(p, 2, generator=g).double()
    y = phi @ w + torch.tensor([0.3, 0.1]).double() * torch.randn(n, 2, generator=g).double()
    for rows, n_eff in ((n, float(n)), (1000, float(n))):
        ev = evidence(phi[:rows], y[:rows], n_eff)
        sigma = ev["beta"].rsqrt()
        assert torch.all((sigma / torch.tensor([0.3, 0.1]) - 1).abs() < 0.15), sigma
        assert torch.all(ev["gamma"] > p - 1)  # well-determined: every parameter counts


def test_outputs_the_features_cannot_explain_stay_finite():
    """A velocity dimension whose targets are orthogonal to every feature (pure scatter) sends
    MacKay's alpha far beyond float32 (it was stored as inf, and the mixture's ridge solves and
    every draw of the velocity's last layer became NaN on 2-snapshot Gaussian data); one that
    never moves sends beta there too. Both stay finite through fit, mixture and draws."""
    fields = Fields.build(3, 0.0, 2.0, (8,), (4,))
    params = fields.init((), generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(1)
    batches = []
    for b in _batches(4, 200, seed=1):
        x = torch.cat([b.x, torch.randn(b.size, 1, generator=g)], 1)
        phi = design(fields, params, PairBatch(x, b.t, b.u, b.gamma), "v")
        noise = torch.randn(b.size, generator=g).double()
        noise = noise - phi @ torch.linalg.lstsq(phi, noise).solution  # no feature explains it
        u = torch.stack([b.u[:, 0], noise.float(), torch.zeros(b.size)], 1)
        batches.append(PairBatch(x, b.t, u, b.gamma))
    n_eff = 800.0
    lap = LastLayerLaplace(fields)
    info = lap.fit(params, batches, n_eff)
    for name, buf in lap.state_dict().items():
        assert torch.isfinite(buf).all(), name
    assert lap.v_alpha[1] > 1e4 * lap.v_alpha[0]  # no signal: the prior pins the weights
    assert info["sigma_v"][2] < 1e-3 * info["sigma_v"][0]  # it never moves: no noise either
    other = [PairBatch(b.x, b.t, b.u + 0.1, b.gamma) for b in batches]
    weights, offsets = mixture_offsets(lap, params, batches, [(1.0, batches), (1.0, other)], n_eff)
    assert all(torch.isfinite(o).all() for o in offsets.values())
    lap.set_mixture(weights, offsets)
    draws = lap.draw(params, 50)
    assert all(torch.isfinite(d).all() for d in draws.values())
    assert draws["v.l1.weight"][:, :, 1:].std(0).max() < 1e-3  # pinned weights barely move


def test_allocate_draws_over_components():
    assert allocate(torch.tensor([0.25, 0.75]), 8) == [2, 6]
    assert allocate(torch.tensor([1.0, 1.0, 1.0]), 10) == [4, 3, 3]
    assert sum(allocate(torch.tensor([0.1, 0.2, 0.7]), 7)) == 7
    assert allocate(torch.tensor([1.0]), 5) == [5]


def test_mixture_over_settings():
    fields = Fields.build(2, 0.0, 2.0, (5,), (4,))
    params = fields.init((), generator=torch.Generator().manual_seed(3))
    ref = _batches(3, 20, seed=1)
    other = [PairBatch(b.x, b.t, b.u + 0.5, b.gamma - 0.2) for b in _batches(3, 20, seed=2)]
    lap = LastLayerLaplace(fields)
    lap.fit(params, ref, 150.0)
    torch.manual_seed(5)
    plain = lap.draw(params, 9)
    # one component, the trained setting: exactly the plain posterior
    weights, offsets = mixture_offsets(lap, params, ref, [(1.0, ref)], 150.0)
    assert torch.equal(weights, torch.ones(1, dtype=weights.dtype))
    assert all(torch.count_nonzero(o) == 0 for o in offsets.values())
    lap.set_mixture(weights, offsets)
    torch.manual_seed(5)
    again = lap.draw(params, 9)
    assert all(torch.equal(plain[k], again[k]) for k in plain)
    # two settings: component 2's mean moves by ridge(setting 2) - ridge(trained setting)
    weights, offsets = mixture_offsets(lap, params, ref, [(1.0, ref), (3.0, other)], 150.0)
    np.testing.assert_allclose(weights.numpy(), [0.25, 0.75])
    for net, hidden, target in (("v", 5, lambda b: b.u), ("g", 4, lambda b: b.gamma[:, None])):
        alpha = getattr(lap, f"{net}_alpha").double().numpy()
        beta = getattr(lap, f"{net}_beta").double().numpy()

        def ridge_np(batches, net=net, hidden=hidden, target=target, alpha=alpha, beta=beta):
            phi = _numpy_design(params, batches, net, hidden)
            y = np.concatenate([target(b).numpy() for b in batches]).astype(float)
            c = 150.0 / len(phi)
            rows = []
            for j in range(y.shape[1]):
                a = alpha[j] * np.eye(hidden + 1) + beta[j] * c * phi.T @ phi
                rows.append(beta[j] * np.linalg.solve(a, c * phi.T @ y[:, j]))
            return np.stack(rows)

        want = ridge_np(other) - ridge_np(ref)
        np.testing.assert_allclose(offsets[net][1].numpy(), want, rtol=1e-4, atol=1e-6)
    lap.set_mixture(weights, offsets)
    torch.manual_seed(0)
    draws = lap.draw(params, 4000)
    coef = coefficients(fields, draws, "g")[:, 0].double()  # (S, 5)
    base = coefficients(fields, params, "g")[0].double()
    sd = (lap.g_scale_tril[0].double() ** 2).sum(1).sqrt()
    assert torch.all((coef[:1000].mean(0) - base).abs() < 0.15 * sd)
    assert torch.all((coef[1000:].mean(0) - base - offsets["g"][1, 0]).abs() < 0.1 * sd)


def test_last_layer_run_saves_loads_and_fits_like_the_point_head(tiny, tmp_path):
    model = VGFM(head="last_layer", **HEADS_TINY).fit(tiny, progress=False)
    post = model.resolved["posterior_fit"]
    assert (
        post["n_pairs"] == 32 * HEADS_TINY["batch_size"] * 2
    )  # pairs per interval and len(post["sigma_v"]) == 2
    assert model.guide.laplace.is_fitted
    model.save(tmp_path / "run")
    back = VGFM.load(tmp_path / "run")
    assert back.resolved["posterior_fit"] == post
    torch.manual_seed(1)
    a = model.posterior.draw(7)
    torch.manual_seed(1)
    b = back.posterior.draw(7)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a["v.l2.weight"].shape == (7, 16, 2) and a["v.l0.weight"].shape == (7, 3, 16)
    assert a["g.l2.bias"].std(0).min() > 0 and torch.all(a["v.l0.weight"].std(0) == 0)
    # a mixture (2 components) saves and loads too: the buffers resize on load
    ref, other = _batches(2, 16, seed=1), _batches(2, 16, seed=2)
    set_mixture(model.guide, ref, [(0.4, ref), (0.6, other)])
    assert model.guide.laplace.v_offsets.shape == (2, 2, 17)
    model.save(tmp_path / "mix")
    back = VGFM.load(tmp_path / "mix")
    torch.manual_seed(2)
    a = model.posterior.draw(5)
    torch.manual_seed(2)
    b = back.posterior.draw(5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the draws fit about as well as the point head (same seed, same training)
    point = VGFM(head="point", **HEADS_TINY).fit(tiny, progress=False)
    w1_point = point.evaluate(samples=1)["w1_mean"]
    model = VGFM(head="last_layer", **HEADS_TINY).fit(tiny, progress=False)
    w1_ll = model.evaluate(samples=8)["w1_mean"]
    assert w1_ll <= 1.5 * w1_point, (w1_ll, w1_point)
