"""The snapshots' factor information about the last layers, against finite differences, and the
Gaussian algebra of conditioning the last_layer posterior on it."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch

from tests.heads.test_laplace import _batches
from vgfm_bayes.model.dynamics import simulate
from vgfm_bayes.model.laplace import LastLayerLaplace, coefficients
from vgfm_bayes.model.snapshot_information import (
    condition,
    factor_information,
    parameter_count,
    reweighting_displacement,
    reweighting_metric,
)
from vgfm_bayes.nn import Fields

TIMES = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
STEP = 0.1


def _setup():
    fields = Fields.build(2, 0.0, 1.0, (8, 8), (6,))
    params = fields.init((), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    x0 = torch.randn(40, 2, generator=gen, dtype=torch.float64)
    snaps = [torch.randn(30, 2, generator=gen, dtype=torch.float64) + k for k in (1, 2)]
    coefs = {n: coefficients(fields, params, n) for n in ("v", "g")}
    return fields, params, coefs, x0, snaps


def _with(fields, params, flat):
    """params with the last layers set from the flat coefficients (v_0, v_1, g)."""
    out, start = dict(params), 0
    for net, spec in (("v", fields.velocity), ("g", fields.growth)):
        o, p = spec.out_dim, spec.sizes[-2] + 1
        c = flat[start : start + o * p].reshape(o, p)
        start += o * p
        w, b = spec.last_layer(f"{net}.")
        out[w], out[b] = c[:, :-1].T.contiguous(), c[:, -1].contiguous()
    return out


def test_information_matches_finite_differences_of_the_simulation():
    fields, params, coefs, x0, snaps = _setup()
    n_par = parameter_count(fields)
    assert n_par == 2 * 9 + 7
    flat = torch.cat([coefs["v"].flatten(), coefs["g"].flatten()])
    delta = torch.randn(n_par, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    information = partial(
        factor_information, fields, params, coefs, x0, snaps, TIMES, step_size=STEP, n_particles=40
    )
    info = information(lambda_ot=0.0, lambda_mass=0.5)

    def run(f):
        lw0 = torch.full((40,), -math.log(40), dtype=torch.float64)
        return simulate(fields, _with(fields, params, f), x0, lw0, TIMES, STEP)

    eps = 1e-5
    (xa, la), (xb, lb) = run(flat + eps * delta), run(flat - eps * delta)
    dx, dl = (xa - xb) / (2 * eps), (la - lb) / (2 * eps)
    x_mid, l_mid = run(flat)
    a = torch.softmax(l_mid, dim=-1)  # (T, N) the particles' weights at each time
    want_disp = sum(float((a[k] * dx[k].square().sum(-1)).sum()) for k in (1, 2))
    got_disp = float(delta @ info["displacement"] @ delta)
    np.testing.assert_allclose(got_disp, want_disp, rtol=1e-5)
    # lambda_ot = 0: H is the mass term's Gauss-Newton 2 * 0.5 * sum_k r_k r_k^T
    dlogm = [float((a[k] * dl[k]).sum()) for k in (1, 2)]
    got_mass = float(delta @ info["H"] @ delta)
    np.testing.assert_allclose(got_mass, sum(d * d for d in dlogm), rtol=1e-5)
    # the W1 part: lambda_ot / W1_k times the size of each snapshot's net move (displacement
    # plus the reweighting's equivalent displacement, cross terms included)
    with_ot = information(lambda_ot=1.0, lambda_mass=0.0)
    assert np.all(with_ot["w1"] > 0) and np.all(with_ot["floor"] > 0)
    scale = np.maximum(with_ot["w1"], with_ot["floor"])  # the fit's residual, floored
    per_time = []
    for k in (1, 2):
        nu = a[k] * (dl[k] - (a[k] * dl[k]).sum())
        net = dx[k] + reweighting_displacement(x_mid[k], a[k], nu[:, None])[..., 0]
        per_time.append(float((a[k] * net.square().sum(-1)).sum()))
    want = sum(p / w for p, w in zip(per_time, scale, strict=True))
    np.testing.assert_allclose(float(delta @ with_ot["H"] @ delta), want, rtol=1e-5)


def test_conditioning_is_the_product_of_gaussians():
    fields = Fields.build(2, 0.0, 2.0, (5,), (4,))
    params = fields.init((), generator=torch.Generator().manual_seed(3))
    lap = LastLayerLaplace(fields)
    lap.fit(params, _batches(3, 20, seed=1), 150.0)
    n_par = parameter_count(fields)
    gen = torch.Generator().manual_seed(4)
    shifts = {
        "v": torch.randn(2, 2, 6, generator=gen) * 0.1,
        "g": torch.randn(2, 1, 5, generator=gen) * 0.1,
    }
    lap.set_mixture(torch.tensor([0.5, 0.5]), shifts)
    cov_a = torch.block_diag(
        *[t.double() @ t.double().T for n in ("v", "g") for t in getattr(lap, f"{n}_scale_tril")]
    )
    delta = lap._flat_offsets().double()
    m = torch.randn(n_par, n_par, generator=gen, dtype=torch.float64)
    info = m @ m.T * 10.0
    record = condition(lap, info)
    prec = torch.linalg.inv(cov_a) + info
    want_cov = torch.linalg.inv(prec)
    got_cov = lap.joint_scale_tril.double() @ lap.joint_scale_tril.double().T
    np.testing.assert_allclose(got_cov.numpy(), want_cov.numpy(), rtol=1e-3, atol=1e-7)
    want_shift = (want_cov @ torch.linalg.inv(cov_a) @ delta.T).T
    np.testing.assert_allclose(
        lap._flat_offsets().double().numpy(), want_shift.numpy(), rtol=1e-3, atol=1e-6
    )
    assert record["shift_length_after"] < record["shift_length_before"]
    assert record["snapshot_sd_ratio_mean"] < 1.0
    # draws follow the joint Gaussian around each component's mean
    torch.manual_seed(0)
    draws = lap.draw(params, 4000)
    flat = torch.cat([coefficients(fields, draws, n).flatten(1) for n in ("v", "g")], 1).double()
    base = torch.cat([coefficients(fields, params, n).flatten() for n in ("v", "g")]).double()
    centred = flat[:2000] - base - lap._flat_offsets()[0].double()
    sd = want_cov.diagonal().sqrt()
    assert torch.all(centred.mean(0).abs() < 0.15 * sd)
    np.testing.assert_allclose(centred.std(0).numpy(), sd.numpy(), rtol=0.1)


def test_zero_information_changes_nothing():
    fields = Fields.build(2, 0.0, 2.0, (5,), (4,))
    params = fields.init((), generator=torch.Generator().manual_seed(3))
    lap = LastLayerLaplace(fields)
    lap.fit(params, _batches(3, 20, seed=1), 150.0)
    before = lap._flat_offsets().clone()
    condition(lap, torch.zeros(parameter_count(fields), parameter_count(fields)))
    assert torch.allclose(lap._flat_offsets(), before)
    cov_a = torch.block_diag(
        *[t.double() @ t.double().T for n in ("v", "g") for t in getattr(lap, f"{n}_scale_tril")]
    )
    got = lap.joint_scale_tril.double() @ lap.joint_scale_tril.double().T
    np.testing.assert_allclose(got.numpy(), cov_a.numpy(), rtol=1e-3, atol=1e-7)


def test_reweighting_metric_is_linearised_w2():
    import ot

    for dim, n in ((1, 300), (2, 400)):
        gen = np.random.default_rng(dim)
        x = gen.uniform(size=(n, dim))
        a = np.full(n, 1.0 / n)
        rho = 0.2 * np.cos(np.pi * x[:, 0])  # a smooth reweighting
        nu = a * (rho - (a * rho).sum())
        metric = reweighting_metric(torch.tensor(x), torch.tensor(a))
        got = float(torch.tensor(nu) @ metric @ torch.tensor(nu))
        want = ot.emd2(a, a + nu, ot.dist(x, x), numItermax=10**7)  # squared Euclidean cost
        assert want / 1.5 < got < 1.5 * want, (dim, got, want)


def _gaussian_cloud(n=400, seed=0):
    x = torch.tensor(np.random.default_rng(seed).standard_normal((n, 2)))
    return x, torch.full((n,), 1.0 / n, dtype=torch.float64)


def test_reweighting_displacement_has_the_metric_size():
    # the equivalent displacement's size sum a |grad psi|^2 is the H^-1 norm nu^T M nu
    x, a = _gaussian_cloud()
    rho = 0.3 * torch.cos(x[:, 0]) + 0.2 * x[:, 1]
    nu = a * (rho - (a * rho).sum())
    move = reweighting_displacement(x, a, nu[:, None])[..., 0]
    size = float((a * move.square().sum(-1)).sum())
    metric = float(nu @ reweighting_metric(x, a) @ nu)
    assert metric / 1.5 < size < 1.5 * metric, (size, metric)


def test_a_move_that_a_reweighting_undoes_costs_little():
    # shifting every particle by b along e2, and reweighting by -b (x2 - mean) / var (which
    # moves a Gaussian's mass back by b), leaves the distribution in place to first order:
    # velocity and growth trade off and the snapshots cannot tell them apart
    x, a = _gaussian_cloud()
    b = 0.2
    move = torch.zeros_like(x)
    move[:, 1] = b
    z = x[:, 1] - (a * x[:, 1]).sum()
    nu = -a * b * z / float((a * z * z).sum())
    equiv = reweighting_displacement(x, a, nu[:, None])[..., 0]
    alone = float((a * equiv.square().sum(-1)).sum())
    net = float((a * (move + equiv).square().sum(-1)).sum())
    assert b * b / 1.5 < alone < 1.5 * b * b  # the reweighting alone is a shift by b ...
    assert net < 0.2 * b * b  # ... and it cancels the move (adding sizes would give 2 b^2)


def test_last_layer_conditioned_on_the_snapshots_saves_and_loads(tiny, tmp_path):
    from tests.tiny import HEADS_TINY
    from vgfm_bayes import VGFM

    model = VGFM(head="last_layer", snapshot_conditioning=True, **HEADS_TINY)
    model.fit(tiny, progress=False)
    post = model.resolved["posterior_fit"]
    assert post["snapshot_conditioning"] == "done" and post["factor_weight"] > 0
    assert post["snapshot_sd_ratio_mean"] < 1.0  # the snapshots add information
    lap = model.guide.laplace
    assert lap.joint_scale_tril.shape == (parameter_count(lap.fields),) * 2
    model.save(tmp_path / "run")
    back = VGFM.load(tmp_path / "run")
    torch.manual_seed(3)
    a = model.posterior.draw(6)
    torch.manual_seed(3)
    b = back.posterior.draw(6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["g.l2.bias"].std(0).min() > 0
    # off (the default): the per-output Gaussians, no joint factor
    plain = VGFM(head="last_layer", **HEADS_TINY).fit(tiny, progress=False)
    assert plain.guide.laplace.joint_scale_tril.numel() == 0
    assert "snapshot_conditioning" not in plain.resolved["posterior_fit"]


def test_snapshot_conditioning_is_for_last_layer_only():
    import pytest

    from vgfm_bayes.infer.config import ConfigError, FitConfig

    with pytest.raises(ConfigError, match="snapshot_conditioning"):
        FitConfig(head="ensemble", snapshot_conditioning=True).validate()
