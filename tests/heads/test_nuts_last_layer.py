"""Gold standard: the last_layer head's variational posterior against NUTS (body fixed).

With the body fixed the model is linear-Gaussian in the last layer, so NUTS samples the exact
posterior. Tolerances: posterior means of the predicted growth and velocity at the data agree
within 0.25 NUTS posterior sd (plus 1e-3); their posterior sds within a factor 1.6 (mean-field
VI ignores posterior correlations between weights, which shrinks sds; the low-rank guide
used here keeps most of them).
"""

from __future__ import annotations

import pyro
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS, Trace_ELBO

from tests.tiny import make_tiny
from vgfm_bayes.model import VGFMModel, get_head
from vgfm_bayes.nn import Fields
from vgfm_bayes.ot import interval_plans, sample_pairs


def _predictions(model, params, batch):
    return model.fields.g(params, batch.x, batch.t), model.fields.v(params, batch.x, batch.t)


def test_last_layer_matches_nuts():
    data = make_tiny(counts=(20, 24, 28))
    plans = interval_plans(data, 0.05, 5.0, True)
    batch = sample_pairs(plans, 20, 0.1, torch.Generator().manual_seed(0))
    fields = Fields.build(2, 0.0, 2.0, (6,), (6,))
    head = get_head("last_layer", init_scale=0.05)
    init = fields.init((), generator=torch.Generator().manual_seed(1))
    with pyro.settings.context(module_local_params=True):
        model = VGFMModel(fields, head.blocks(fields), 1.0, 0.7, float(batch.size))
        body = model.pack(init)["body"]
        fixed = poutine.condition(model, data={"body": body})
        # the variational posterior of the last layer with the body fixed
        guide = head.build_guide(model, init)
        guide(None)
        params = [p for n, p in guide.named_parameters() if not n.startswith("0.")]
        optim = torch.optim.Adam(params, lr=0.03)
        sched = torch.optim.lr_scheduler.MultiStepLR(optim, [300, 450], gamma=0.1)
        elbo = Trace_ELBO(num_particles=2)
        for _ in range(600):
            if _:
                sched.step()
            loss = elbo.differentiable_loss(fixed, guide[1], batch, None)
            optim.zero_grad()
            loss.backward()
            optim.step()
        vi = [guide[1]()["last"].detach() for _ in range(1000)]
    pyro.set_rng_seed(0)
    mcmc = MCMC(NUTS(fixed), num_samples=400, warmup_steps=200, disable_progbar=True)
    mcmc.run(batch, None)
    exact = mcmc.get_samples()["last"]

    def predictive(last):
        g, v = [], []
        for w in last[::5]:
            p = model.unpack({"body": body, "last": w})
            gi, vi_ = _predictions(model, p, batch)
            g.append(gi)
            v.append(vi_.reshape(-1))
        return torch.cat([torch.stack(g), torch.stack(v)], 1)

    a, b = predictive(torch.stack(vi)), predictive(exact)
    mean_gap = (a.mean(0) - b.mean(0)).abs()
    assert torch.all(mean_gap <= 0.25 * b.std(0) + 1e-3), mean_gap.max()
    ratio = a.std(0) / b.std(0)
    assert torch.all((ratio > 1 / 1.6) & (ratio < 1.6)), (ratio.min(), ratio.max())
