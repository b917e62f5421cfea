"""Every head must learn the growth of a tiny ground-truth simulator, with honest intervals.

Default settings only (SROT settings chosen from the snapshots, as for any user file). A head
that learns nothing gets the signs wrong; an over-confident one misses the truth (coverage far
below 90%); an under-confident one covers with intervals as wide as the rates' whole range; a
posterior whose draws wander fits the snapshots worse than the point estimate.
"""

from __future__ import annotations

import numpy as np
import pytest

from vgfm_bayes import VGFM
from vgfm_bayes.data import simulate_populations
from vgfm_bayes.metrics import growth_calibration
from vgfm_bayes.posterior import Trajectories

RATES = [-0.6, -0.2, 0.3, 0.7]
SMALL = {
    "velocity_hidden": [32, 32],
    "growth_hidden": [32, 32],
    "warmup_steps": 250,
    "joint_steps": 5,
    "batch_size": 64,
    "joint_particles": 64,
    "joint_targets": 64,
}
HEAD_OPTIONS = {"ensemble": {"members": 5}}


@pytest.fixture(scope="module")
def truth():
    return simulate_populations(rates=RATES, n0=80, seed=5)


@pytest.fixture(scope="module")
def fits(truth):
    out = {}
    for head in ("point", "ensemble", "last_layer"):
        model = VGFM.from_zoo(head, seed=0, **SMALL, **HEAD_OPTIONS.get(head, {}))
        model.fit(truth.data, progress=False)
        out[head] = model
    return out


def _growth(model, truth, samples=40):
    params = model.posterior.draw(samples)
    d = truth.data
    draws = np.concatenate(
        [model.growth_draws(x, t, params=params) for x, t in zip(d.x, d.times, strict=True)], 1
    )
    return draws, np.concatenate(truth.growth), np.concatenate(truth.population)


@pytest.mark.parametrize("head", ["point", "ensemble", "last_layer"])
def test_growth_sign_per_population(fits, truth, head):
    draws, _, pop = _growth(fits[head], truth)
    mean = draws.mean(0)
    for p, rate in enumerate(RATES):
        assert np.sign(mean[pop == p].mean()) == np.sign(rate), (head, p, mean[pop == p].mean())


@pytest.mark.parametrize("head", ["ensemble", "last_layer"])
def test_growth_intervals_cover_without_being_vacuous(fits, truth, head):
    model = fits[head]
    draws, g, _ = _growth(model, truth)
    cal = growth_calibration(draws, g, 0.9, groups=model.posterior.draw_groups(len(draws)))
    assert cal["coverage"] >= 0.5, cal  # over-confident below
    assert cal["mean_width"] <= 0.6 * (max(RATES) - min(RATES)), cal  # vacuous above
    assert cal["spearman"] >= 0.7, cal


def test_draw_groups_are_the_heads_components(fits):
    """Intervals treat an ensemble's members and last_layer's mixture components as a finite
    sample (posterior/intervals.py), so the groups must be the draws' real components: last_layer's
    consecutive draws of group c are centred on the MAP plus component c's shift."""
    assert fits["point"].posterior.draw_groups(8) is None
    assert fits["ensemble"].posterior.draw_groups(5) == (1,) * 5
    model = fits["last_layer"]
    post, laplace = model.posterior, model.guide.laplace
    groups = post.draw_groups(1000)
    assert len(groups) == len(laplace.mix_weights) >= 2 and sum(groups) == 1000
    bias = post.draw(1000)["g.l2.bias"][:, 0].double()  # the growth net's last-layer bias
    centre = model.guide.map_params()["g.l2.bias"][0].double() + laplace.g_offsets[:, 0, -1]
    sd = laplace.g_scale_tril[0, -1].norm()  # the bias's posterior sd in every component
    start = 0
    for c, n in enumerate(groups):
        got = bias[start : start + n].mean()
        assert abs(got - centre[c]) < 4 * sd / n**0.5, (c, got, centre[c])
        start += n
    assert centre.std() > 2 * sd / 100**0.5  # the components are told apart at this size
    # the mass band uses the same groups, and is wider than the draws' empirical quantiles
    traj = model.simulate(samples=30)
    assert traj.groups == post.draw_groups(30)
    lo, hi = traj.mass_interval(0.9, observed=False)
    plain = Trajectories(traj.times, traj.x, traj.log_w)
    q_lo, q_hi = plain.mass_interval(0.9, observed=False)
    assert np.all(hi[1:] - lo[1:] > q_hi[1:] - q_lo[1:])


@pytest.mark.parametrize(
    "head,key",
    [
        # an ensemble's members and last_layer's mixture components are fits to bootstrap
        # resamples (at settings drawn by the held-out-snapshot weights), so each draw's own W1
        # to the full sample carries the bootstrap noise; the posterior predictive (all draws
        # pooled) is the object to compare with the point estimate
        ("last_layer", "w1_pooled_mean"),
        ("ensemble", "w1_pooled_mean"),
        pytest.param(
            "last_layer",
            "w1_mean",
            marks=pytest.mark.xfail(
                strict=True,
                reason="a bootstrap component's draw fits ~2x worse than the point head (issue 10)",
            ),
        ),
    ],
)
def test_draws_fit_about_as_well_as_the_point_estimate(fits, head, key):
    point = fits["point"].evaluate(samples=1)["w1_mean"]
    drawn = fits[head].evaluate(samples=10)[key]
    assert drawn <= 1.5 * point, (head, key, drawn, point)
