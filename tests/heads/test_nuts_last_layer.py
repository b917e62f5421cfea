"""Gold standard: the last_layer head's closed-form posterior against NUTS (body fixed).

With the body fixed the model is linear-Gaussian in the last layer, so NUTS samples the exact
posterior of the VGFM model itself (its Normal prior, sd = prior_scale / sqrt(fan_in), and its
noise scales sigma_v, sigma_g). The closed form (model/laplace.py) at the same prior and noise
precisions, centred at the MAP given the body, must match it: posterior means of the predicted
growth and velocity at the data within 0.25 NUTS posterior sd (plus 1e-3), posterior sds within
a factor 1.25 (both exact: only Monte Carlo error is left).

NUTS runs in whitened coordinates z, last = m + L z with the closed form's mean m and Cholesky
factor L. A fixed linear change of variables (constant Jacobian; z's flat prior is Normal(0, 1e3),
negligible against its unit posterior sd) leaves NUTS exact whatever m and L are: a wrong L only
makes the z-posterior non-isotropic, which NUTS still samples and the comparison then flags; a
right one makes it cheap (the raw last-layer posterior is strongly correlated, and NUTS with a
diagonal mass matrix needs minutes on it).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide.initialization import init_to_value

from tests.tiny import make_tiny
from vgfm_bayes.model import VGFMModel, get_head
from vgfm_bayes.model.laplace import LastLayerLaplace, coefficients, regression, ridge
from vgfm_bayes.nn import Fields
from vgfm_bayes.ot import interval_plans, sample_pairs


def _predictive(model, body, last, batch):
    """Growth and velocity at the batch per draw, (S, B + B * D)."""
    s = next(iter(last.values())).shape[0]
    params = {**{k: v.expand(s, *v.shape) for k, v in body.items()}, **last}
    x = batch.x.expand(s, *batch.x.shape)
    t = batch.t.expand(s, *batch.t.shape)
    g = model.fields.g(params, x, t)
    v = model.fields.v(params, x, t).reshape(s, -1)
    return torch.cat([g, v], 1)


def _compare(hidden, counts, batch_size, num_samples, warmup_steps, max_tree_depth=10):
    data = make_tiny(counts=counts)
    plans = interval_plans(data, 0.05, 5.0, True)
    batch = sample_pairs(plans, batch_size, 0.1, torch.Generator().manual_seed(0))
    fields = Fields.build(2, 0.0, 2.0, hidden, hidden)
    head = get_head("last_layer", map_prior=True)
    init = fields.init((), generator=torch.Generator().manual_seed(1))
    sigma_v, sigma_g = 1.0, 0.7
    with pyro.settings.context(module_local_params=True):
        model = VGFMModel(fields, head.blocks(fields), sigma_v, sigma_g, float(batch.size))
        body_flat = model.pack(init)["body"]
        # closed form at the model's own prior and noise precisions
        alpha = hidden[-1] / head.prior_scale**2  # prior sd prior_scale / sqrt(fan_in)
        hyper = {
            "v": (torch.full((2,), alpha), torch.full((2,), sigma_v**-2)),
            "g": (torch.full((1,), alpha), torch.full((1,), sigma_g**-2)),
        }
        lap = LastLayerLaplace(fields)
        # the MAP given the body: the ridge solution at those precisions
        params = dict(init)
        for net in ("v", "g"):
            phi, y = regression(fields, init, [batch], net)
            m = ridge(phi, y, *(h.double() for h in hyper[net]), float(batch.size)).float()
            w_name, b_name = (n for n in fields.last_layer_names() if n.startswith(net + "."))
            params[w_name], params[b_name] = m[:, :-1].T.contiguous(), m[:, -1].contiguous()
            assert torch.allclose(coefficients(fields, params, net), m)
        lap.fit(params, [batch], float(batch.size), fixed=hyper)
        torch.manual_seed(0)
        closed = lap.draw(params, 4000)

        def last_of(z):
            named = {}
            for net in ("v", "g"):
                tril = getattr(lap, f"{net}_scale_tril")
                coef = coefficients(fields, params, net) + torch.einsum(
                    "opq,...oq->...op", tril, z[net]
                )
                w_name, b_name = (n for n in fields.last_layer_names() if n.startswith(net + "."))
                named[w_name] = coef[..., :-1].transpose(-1, -2)
                named[b_name] = coef[..., -1]
            return named

        def whitened(batch):
            z = {
                net: pyro.sample(f"z_{net}", dist.Normal(torch.zeros(t.shape[:2]), 1e3).to_event(2))
                for net, t in (("v", lap.v_scale_tril), ("g", lap.g_scale_tril))
            }
            last = model.pack({**init, **last_of(z)})["last"]
            poutine.condition(model, data={"body": body_flat, "last": last})(batch, None)

        pyro.set_rng_seed(0)
        start = {  # away from the closed form's mean (z = 0)
            f"z_{net}": torch.randn(t.shape[:2])
            for net, t in (("v", lap.v_scale_tril), ("g", lap.g_scale_tril))
        }
        kernel = NUTS(
            whitened, init_strategy=init_to_value(values=start), max_tree_depth=max_tree_depth
        )
        mcmc = MCMC(kernel, num_samples, warmup_steps=warmup_steps, disable_progbar=True)
        mcmc.run(batch)
        samples = mcmc.get_samples()
        exact = last_of({net: samples[f"z_{net}"] for net in ("v", "g")})
    body = {k: v for k, v in init.items() if k not in closed}
    a, b = _predictive(model, body, closed, batch), _predictive(model, body, exact, batch)
    mean_gap = (a.mean(0) - b.mean(0)).abs()
    assert torch.all(mean_gap <= 0.25 * b.std(0) + 1e-3), (mean_gap / b.std(0)).max()
    ratio = a.std(0) / b.std(0)
    assert torch.all((ratio > 1 / 1.25) & (ratio < 1.25)), (ratio.min(), ratio.max())


def test_last_layer_matches_nuts():
    _compare((6,), (20, 24, 28), 20, num_samples=400, warmup_steps=300)


@pytest.mark.slow
def test_last_layer_matches_nuts_production_width():
    """128-wide hidden layers (the default networks' width): 387 last-layer weights. Trees are
    capped at depth 6 (64 leapfrog steps, several half-periods of the whitened posterior at the
    adapted step size ~0.3; still an exact MCMC kernel): ~4 minutes on one CPU core."""
    _compare((128, 128, 128), (60, 70, 80), 128, 300, 200, max_tree_depth=6)


def test_closed_form_is_the_models_posterior_at_production_width():
    """No sampling: with 128-wide layers the model's negative log density (body fixed), as a
    function of whitened last-layer coordinates z (last = MAP + L z), has gradient 0 at z = 0
    and Hessian I, i.e. the closed form's mean and covariance are the model's, exactly."""
    data = make_tiny(counts=(60, 70, 80))
    plans = interval_plans(data, 0.05, 5.0, True)
    b32 = sample_pairs(plans, 64, 0.1, torch.Generator().manual_seed(0))
    batch = type(b32)(*(t.double() for t in (b32.x, b32.t, b32.u, b32.gamma)))
    fields = Fields.build(2, 0.0, 2.0, (128, 128, 128), (128, 128, 128))
    head = get_head("last_layer", map_prior=True)
    init = fields.init((), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = VGFMModel(fields, head.blocks(fields), 1.0, 0.7, 500.0)  # plate: 500 / 128 per pair
    hyper = {
        "v": (torch.full((2,), 128.0), torch.ones(2)),
        "g": (torch.full((1,), 128.0), torch.full((1,), 0.7**-2)),
    }
    params = dict(init)
    for net in ("v", "g"):
        phi, y = regression(fields, init, [batch], net)
        m = ridge(phi, y, *(h.double() for h in hyper[net]), 500.0)
        w_name, b_name = (n for n in fields.last_layer_names() if n.startswith(net + "."))
        params[w_name], params[b_name] = m[:, :-1].T.contiguous(), m[:, -1].contiguous()
    lap = LastLayerLaplace(fields)
    lap.fit(params, [batch], 500.0, fixed=hyper)
    body = model.pack(init)["body"]
    sizes = {"v": 2 * 129, "g": 129}

    def nlp(z):
        named, lo = {}, 0
        for net in ("v", "g"):
            tril = getattr(lap, f"{net}_scale_tril").double()
            zz = z[lo : lo + sizes[net]].reshape(tril.shape[0], -1)
            lo += sizes[net]
            coef = coefficients(fields, params, net) + torch.einsum("opq,oq->op", tril, zz)
            w_name, b_name = (n for n in fields.last_layer_names() if n.startswith(net + "."))
            named[w_name], named[b_name] = coef[:, :-1].T, coef[:, -1]
        last = model.pack({**init, **named})["last"]
        cond = poutine.condition(model, data={"body": body, "last": last})
        return -poutine.trace(cond).get_trace(batch, None).log_prob_sum()

    z0 = torch.zeros(sum(sizes.values()), dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(nlp(z0), z0)
    assert grad.abs().max() < 1e-5
    hess = torch.autograd.functional.hessian(nlp, z0.detach())
    assert (hess - torch.eye(len(z0), dtype=hess.dtype)).abs().max() < 1e-4
