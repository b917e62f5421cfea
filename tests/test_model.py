import math

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from tests.tiny import make_tiny
from vgfm_bayes.model import DistributionFit, VGFMModel, get_head, simulate, vgfm_sigmas
from vgfm_bayes.nn import Fields
from vgfm_bayes.ot import interval_plans, sample_pairs, w1_exact, w1_loss


def _point_model(tiny, n_eff=None):
    fields = Fields.build(tiny.dim, 0.0, float(tiny.times[-1]), (16, 16), (16, 16))
    head = get_head("point")
    sv, sg = vgfm_sigmas(tiny.dim)
    n_eff = n_eff or float(tiny.counts[:-1].sum())
    init = fields.init(generator=torch.Generator().manual_seed(0))
    with pyro.settings.context(module_local_params=True):
        model = VGFMModel(fields, head.blocks(fields), sv, sg, n_eff)
        guide = head.build_guide(model, init)
        guide(None)
    return fields, model, guide, init


@pytest.mark.parametrize("dim", [2, 5])
def test_point_head_elbo_is_the_vgfm_mse_loss(dim):
    """-ELBO = n_eff * (mean (v-u)^2 + mean (g-gamma)^2) + const, with equal gradients; at
    D = 5 as well, where sigma_v = sqrt(D/2) != 1 (at D = 2 a wrong scale would pass)."""
    tiny = make_tiny(dim=dim)
    fields, model, guide, init = _point_model(tiny)
    plans = interval_plans(tiny, 0.05, 1.0, True)
    batch = sample_pairs(plans, 16, 0.1, torch.Generator().manual_seed(0))
    with pyro.settings.context(module_local_params=True):
        (params,) = list(guide.parameters())
        loss_elbo = Trace_ELBO().differentiable_loss(model, guide, batch, None)
        (g_elbo,) = torch.autograd.grad(loss_elbo, params)
        p = model.unpack({"weights": params})
        v, g = fields.v(p, batch.x, batch.t), fields.g(p, batch.x, batch.t)
        mse = ((v - batch.u) ** 2).mean() + ((g - batch.gamma) ** 2).mean()
        (g_mse,) = torch.autograd.grad(mse, params)
    n_eff = model.n_effective
    torch.testing.assert_close(g_elbo, n_eff * g_mse, rtol=1e-4, atol=1e-5)
    # the constant: Gaussian normalisers of B pairs, scaled to n_eff
    d = tiny.dim
    sv, sg = vgfm_sigmas(d)
    const = n_eff * (
        d * math.log(sv * math.sqrt(2 * math.pi)) + math.log(sg * math.sqrt(2 * math.pi))
    )
    assert loss_elbo.item() == pytest.approx(n_eff * mse.item() + const, rel=1e-5)


def test_kl_weight_tempers_the_posterior(tiny):
    """With kl_weight beta the -ELBO is likelihood / beta + KL: for one guide draw,
    loss(beta) - KL = (loss(1) - KL) / beta with KL = log q(theta) - log p(theta) at that draw."""
    fields = Fields.build(tiny.dim, 0.0, float(tiny.times[-1]), (8,), (8,))
    head = get_head("mean_field")
    init = fields.init(generator=torch.Generator().manual_seed(0))
    batch = sample_pairs(
        interval_plans(tiny, 0.05, 1.0, True), 16, 0.1, torch.Generator().manual_seed(0)
    )
    losses, kls = [], []
    for beta in (1.0, 0.1):
        with pyro.settings.context(module_local_params=True):
            model = VGFMModel(fields, head.blocks(fields), 1.0, 0.7, 50.0, kl_weight=beta)
            guide = head.build_guide(model, init)
            guide(None)  # set up first: the set-up traces the model, drawing random numbers
            pyro.set_rng_seed(3)
            losses.append(Trace_ELBO().differentiable_loss(model, guide, batch, None).item())
            pyro.set_rng_seed(3)
            q = pyro.poutine.trace(guide).get_trace()
            p = pyro.poutine.trace(pyro.poutine.replay(model, trace=q)).get_trace()
            prior = sum(p.nodes[n]["fn"].log_prob(p.nodes[n]["value"]).sum() for n in model.blocks)
            kl = q.log_prob_sum() - prior  # q's sites: the unconstrained Normals (+ Jacobians)
            kls.append(kl.item())
    assert kls[0] == pytest.approx(kls[1], rel=1e-6)  # same draw, same KL
    assert losses[1] - kls[1] == pytest.approx((losses[0] - kls[0]) / 0.1, rel=1e-4)
    with pytest.raises(ValueError, match="kl_weight"):
        VGFMModel(fields, head.blocks(fields), 1.0, 0.7, 50.0, kl_weight=0.0)


def test_guide_starts_at_network_init(tiny):
    fields, model, guide, init = _point_model(tiny)
    with pyro.settings.context(module_local_params=True):
        values = model.unpack(guide())
    for k, v in init.items():
        torch.testing.assert_close(values[k], v)


def test_pack_unpack_roundtrip_with_member_dim(tiny):
    fields = Fields.build(2, 0.0, 1.0, (8,), (8,))
    head = get_head("point")
    model = VGFMModel(fields, head.blocks(fields), 1.0, 1.0, 10.0, member_shape=(3,))
    params = fields.init(batch_shape=(3,))
    back = model.unpack(model.pack(params))
    for k in params:
        torch.testing.assert_close(back[k], params[k])
        assert back[k].shape == (3, *fields.shapes()[k])


def test_simulate_constant_fields_is_exact():
    """Zero weights and constant output biases: x(t) = x0 + b t, log w(t) = log w0 + c t."""
    fields = Fields.build(2, 0.0, 1.0, (4,), (4,))
    params = {k: torch.zeros_like(v) for k, v in fields.init().items()}
    params["v.l1.bias"] = torch.tensor([0.3, -0.2])
    params["g.l1.bias"] = torch.tensor([0.5])
    x0 = torch.randn(5, 2)
    lw0 = torch.full((5,), -math.log(5))
    times = torch.tensor([0.0, 1.0, 2.5])
    xs, lws = simulate(fields, params, x0, lw0, times, step_size=0.1)
    for k, t in enumerate(times):
        torch.testing.assert_close(xs[k], x0 + t * torch.tensor([0.3, -0.2]), atol=1e-5, rtol=0)
        torch.testing.assert_close(lws[k], lw0 + 0.5 * t, atol=1e-5, rtol=0)


def test_w1_exact_known_values():
    assert w1_exact(np.array([[0.0]]), np.array([1.0]), np.array([[1.0]])) == pytest.approx(1.0)
    # weights are normalised: 3/4 at 0, 1/4 at 2 against a point at 0 -> 0.5
    x = np.array([[0.0], [2.0]])
    assert w1_exact(x, np.array([3.0, 1.0]), np.array([[0.0]])) == pytest.approx(0.5)


def test_w1_loss_gradient_reaches_weights():
    x = torch.tensor([[0.0], [2.0]], requires_grad=True)
    lw = torch.tensor([0.0, 0.0], requires_grad=True)
    y = torch.tensor([[0.0], [0.1]])
    loss = w1_loss(x, lw, y)
    loss.backward()
    assert lw.grad.abs().sum() > 0  # moving mass off the far particle lowers W1
    assert lw.grad[1] > lw.grad[0]
    assert x.grad[1, 0] > 0


def test_joint_factor_trains_the_growth_network(tiny):
    """The reference's joint phase gives the growth net zero gradient; ours must not."""
    fields, model, guide, init = _point_model(tiny)
    xs = [torch.tensor(x, dtype=torch.float32) for x in tiny.x]
    fit = DistributionFit(
        fields,
        xs[0],
        xs[1:],
        torch.tensor(tiny.times, dtype=torch.float32),
        torch.tensor(np.log(tiny.masses), dtype=torch.float32),
        lambda_ot=1.0,
        lambda_mass=1.0,
        step_size=0.1,
        n_particles=0,
        n_targets=0,
    )
    params = {k: v.clone().requires_grad_() for k, v in init.items()}
    loss = fit(params)
    loss.backward()
    g_grad = sum(params[n].grad.abs().sum() for n in params if n.startswith("g."))
    v_grad = sum(params[n].grad.abs().sum() for n in params if n.startswith("v."))
    assert g_grad > 0 and v_grad > 0
    # and through the Pyro factor as well
    with pyro.settings.context(module_local_params=True):
        (p,) = list(guide.parameters())
        elbo = Trace_ELBO().differentiable_loss(model, guide, None, fit)
        (grad,) = torch.autograd.grad(elbo, p)
    g_part = model.pack({n: torch.ones_like(v) * n.startswith("g.") for n, v in init.items()})
    assert (grad * g_part["weights"]).abs().sum() > 0


def test_w1_loss_matches_pot_emd2_value_and_gradients():
    import ot

    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 2, generator=g, dtype=torch.float64, requires_grad=True)
    lw = torch.randn(7, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 2, generator=g, dtype=torch.float64)
    ours = w1_loss(x, lw, y)
    gx, gw = torch.autograd.grad(ours, (x, lw))
    a = torch.softmax(lw, 0)
    ref = ot.emd2(a, torch.full((5,), 0.2, dtype=torch.float64), torch.cdist(x, y))
    rx, rw = torch.autograd.grad(ref, (x, lw))
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)


def test_learned_noise_scales_recover_the_targets_noise():
    """learn_sigmas: MAP of sigma_v (per dim) and sigma_g on targets with known noise around a
    constant field comes out at the noise's sd; the sites start at the given sigmas."""
    from vgfm_bayes.infer import run_phase
    from vgfm_bayes.ot import PairBatch

    gen = torch.Generator().manual_seed(0)
    n = 512
    sd_v, sd_g = torch.tensor([0.05, 0.2]), 0.02

    def batch():
        x, t = torch.rand(n, 2, generator=gen), torch.rand(n, generator=gen)
        u = torch.tensor([0.3, -0.1]) + sd_v * torch.randn(n, 2, generator=gen)
        return PairBatch(x, t, u, -0.2 + sd_g * torch.randn(n, generator=gen))

    fields = Fields.build(2, 0.0, 1.0, (8,), (8,))
    head = get_head("point")
    with pyro.settings.context(module_local_params=True):
        model = VGFMModel(fields, head.blocks(fields), 1.0, 0.7, 2000.0, learn_sigmas=True)
        guide = head.build_guide(model, fields.init(generator=torch.Generator().manual_seed(1)))
        guide(None)
        sv0, sg0 = model.noise_scales(guide)
        run_phase("warm-up", model, guide, batch, 600, 1e-2, progress=False)
        sv, sg = model.noise_scales(guide)
    assert sv0 == pytest.approx([1.0, 1.0]) and sg0 == pytest.approx(0.7)
    assert sv == pytest.approx(sd_v.tolist(), rel=0.2) and sg == pytest.approx(sd_g, rel=0.2)
    with pytest.raises(ValueError, match="single-network"):
        VGFMModel(fields, head.blocks(fields), 1.0, 0.7, 10.0, (3,), learn_sigmas=True)


def test_fit_factor_keeps_its_weight_when_noise_scales_are_learned():
    # the regression sharpens by (sigma_vgfm / sigma)^2; the W1 / mass factor must follow, so
    # lambda_ot and lambda_mass weigh the same against the regression as in the plain loss
    fields = Fields.build(3, 0.0, 1.0, (4,), (4,))
    blocks = get_head("point").blocks(fields)
    sv, sg = vgfm_sigmas(3)
    fixed = VGFMModel(fields, blocks, sv, sg, 10.0)
    assert fixed.fit_scale(sv, sg) == 1.0
    learned = VGFMModel(fields, blocks, sv, sg, 10.0, learn_sigmas=True)
    assert float(learned.fit_scale(torch.full((3,), sv), torch.tensor(sg))) == pytest.approx(1.0)
    half = learned.fit_scale(torch.full((3,), sv / 2), torch.tensor(sg / 2))
    assert float(half) == pytest.approx(4.0)
    mixed = learned.fit_scale(torch.tensor([sv, sv, sv / 2]), torch.tensor(sg))
    assert float(mixed) == pytest.approx((1 + 1 + 4 + 1) / 4)
