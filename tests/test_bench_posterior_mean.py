"""The bench's evaluation of a fitted model: per-draw / pooled W1 and the posterior-mean W1."""

import numpy as np
import pytest

from tests.tiny import HEADS_TINY, make_tiny
from vgfm_bayes import VGFM
from vgfm_bayes.bench import evaluate, evaluate_posterior_mean, posterior_mean_params
from vgfm_bayes.posterior import central_interval


@pytest.mark.parametrize("head", ["point", "last_layer", "mean_field"])
def test_posterior_mean_is_the_guide_median(head):
    if head == "mean_field":  # a research head, outside the zoo
        model = VGFM(head=head, kl_weight=0.01, **HEADS_TINY, seed=0)
    else:
        model = VGFM.from_zoo(head, **HEADS_TINY, seed=0)
    model.fit(make_tiny(), progress=False)
    params = posterior_mean_params(model)
    assert all(v.shape[0] == 1 for v in params.values())
    m = evaluate(model, samples=4)
    pm = evaluate_posterior_mean(model)
    assert set(pm) >= {"w1", "w1_mean", "rme", "rme_mean"} and len(pm["w1"]) == 2
    assert np.all(np.array(m["w1_pooled"]) <= np.array(m["w1_per_draw"]) + 1e-6)
    if head == "point":  # one draw: the three W1 agree
        np.testing.assert_allclose(pm["w1"], m["w1"], rtol=1e-6)
        np.testing.assert_allclose(m["w1_pooled"], m["w1"], rtol=1e-6)
    else:  # the loc is no draw of the posterior
        draw = model.posterior.draw(1)
        assert not all(np.allclose(draw[k], params[k]) for k in params)


def test_ensemble_has_no_posterior_mean_and_keeps_its_member_interval():
    cfg = {**HEADS_TINY, "members": 3}
    model = VGFM.from_zoo("ensemble", **cfg, seed=0).fit(make_tiny(), hold_out=1, progress=False)
    assert posterior_mean_params(model) is None and evaluate_posterior_mean(model) is None
    m = evaluate(model, samples=4)
    assert m["samples"] == 3 and m["w1_pooled_particles"] == [30, 30]
    assert m["w1_pooled_held_out"] == m["w1_pooled"][0]
    # the members' Student-t interval: user data are standardised, and the trajectories in
    # user units keep the mark that they are an ensemble's members (it was once dropped)
    traj = model.simulate(x0=model.data.x[0], times=model.data.times)
    assert traj.is_ensemble and not model.scaling.is_identity
    # the members' Student-t on log mass; two training snapshots leave nothing to hold out,
    # so there is no discrepancy term and the predictive interval is the model's own
    assert traj.mass_noise is None and m["mass_noise"] is None
    lo, hi = (b[1:] for b in traj.mass_interval(0.9))
    log_lo, log_hi = central_interval(np.log(traj.mass[:, 1:]), 0.9, axis=0, is_ensemble=True)
    np.testing.assert_allclose(m["mass_q05"], np.exp(log_lo), rtol=1e-6)
    np.testing.assert_allclose(m["mass_q95"], np.exp(log_hi), rtol=1e-6)
    np.testing.assert_allclose(lo, np.exp(log_lo), rtol=1e-6)
    np.testing.assert_allclose(hi, np.exp(log_hi), rtol=1e-6)
