"""Mass intervals: on log mass, and widened by a discrepancy estimated from held-out snapshots."""

import numpy as np
import pytest
import torch
from scipy import stats

from tests.tiny import HEADS_TINY, make_tiny
from vgfm_bayes import VGFM
from vgfm_bayes.data import Scaling
from vgfm_bayes.infer import settings as resolve
from vgfm_bayes.ot.srot import solve_srot
from vgfm_bayes.ot.tune import TuneResult, tune_srot
from vgfm_bayes.posterior import mass_interval


def test_without_noise_the_interval_is_the_draws_quantiles():
    m = np.exp(np.random.default_rng(0).normal(0.0, 0.3, (200, 3)))
    lo, hi = mass_interval(m, 0.9)
    np.testing.assert_allclose(lo, np.exp(np.quantile(np.log(m), 0.05, axis=0)), rtol=1e-9)
    np.testing.assert_allclose(hi, np.exp(np.quantile(np.log(m), 0.95, axis=0)), rtol=1e-9)
    # the same order statistics as on the raw mass (only the interpolation between them differs)
    np.testing.assert_allclose(hi, np.quantile(m, 0.95, axis=0), rtol=1e-3)


def test_member_interval_is_on_log_mass_and_never_negative():
    # three members that disagree by a factor 10: a Student-t on the raw mass went below 0
    m = np.array([[0.2], [1.0], [2.0]])
    lo, hi = mass_interval(m, 0.9, is_ensemble=True)
    assert lo[0] > 0
    log_m = np.log(m[:, 0])
    half = stats.t.ppf(0.95, 2) * log_m.std(ddof=1) * np.sqrt(1 + 1 / 3)
    assert np.log(lo[0]) == pytest.approx(log_m.mean() - half, rel=1e-9)
    assert np.log(hi[0]) == pytest.approx(log_m.mean() + half, rel=1e-9)


def test_noise_alone_gives_the_student_t_quantiles():
    # one draw (no model uncertainty): the interval is the discrepancy's own, sd * t_dof
    lo, hi = mass_interval(np.full((1, 2), 2.0), 0.9, noise_sd=0.2, noise_dof=4)
    q = 0.2 * stats.t.ppf(0.95, 4)
    np.testing.assert_allclose(np.log(hi / 2.0), q, rtol=0.05)
    np.testing.assert_allclose(np.log(2.0 / lo), q, rtol=0.05)


def test_noise_adds_to_the_model_spread_in_quadrature():
    # gaussian model spread and gaussian noise: half-width z * sqrt(s_m^2 + s_n^2) on log mass
    m = np.exp(np.random.default_rng(1).normal(0.0, 0.3, (400, 1)))
    lo, hi = mass_interval(m, 0.9, noise_sd=0.4, noise_dof=np.inf)
    s_m = np.log(m).std()
    assert np.log(hi / lo)[0] / 2 == pytest.approx(1.645 * np.hypot(s_m, 0.4), rel=0.05)


def test_predictive_intervals_cover_new_observations_at_their_level():
    # observations log M = log m + sd * t_dof, the model exact: ~90% covered, not 100%
    rng = np.random.default_rng(2)
    obs = np.exp(0.25 * rng.standard_t(3, 4000))
    lo, hi = mass_interval(np.ones((1, 1)), 0.9, noise_sd=0.25, noise_dof=3)
    assert 0.88 < np.mean((lo[0] <= obs) & (obs <= hi[0])) < 0.92


def _result(masses, observed, weights=(1.0,)):
    rows = [
        {
            "eps": 0.01,
            "tau": float(i + 1),
            "score": 0.0,
            "w1": [0.0] * len(observed),
            "mass_error": [0.0] * len(observed),
            "mass": list(m),
            "weight": w,
            "ok": True,
        }
        for i, (m, w) in enumerate(zip(masses, weights, strict=True))
    ]
    best = {"eps": 0.01, "tau": 1.0, "normalize_cost": True}
    return TuneResult(rows, list(range(1, len(observed) + 1)), best, observed_mass=observed)


def test_discrepancy_is_the_rms_log_residual_of_the_mixtures_prediction():
    res = _result([[1.1, 2.0], [0.9, 2.0]], [1.0, 1.6], weights=(0.5, 0.5))
    d = res.mass_discrepancy()
    r = [0.5 * (np.log(1.1) + np.log(0.9)), np.log(2.0 / 1.6)]
    np.testing.assert_allclose(d["residuals"], r, rtol=1e-12)
    assert d["sd"] == pytest.approx(np.sqrt(np.mean(np.square(r))))
    assert d["dof"] == 2
    # it round-trips, and with nothing held out there is none
    again = TuneResult.from_dict(res.to_dict()).mass_discrepancy()
    assert again == d
    assert TuneResult([], [], res.best, fallback=True).mass_discrepancy() is None


def test_tuning_sees_a_snapshot_off_the_mass_curve():
    tc = make_tiny()
    smooth = tune_srot(tc).mass_discrepancy()
    bumped = tc.masses.copy()
    bumped[1] *= 1.5
    off = tune_srot(type(tc)(tc.times, tc.x, bumped)).mass_discrepancy()
    assert off["sd"] > smooth["sd"] + 0.25
    assert off["residuals"][0] == pytest.approx(smooth["residuals"][0] - np.log(1.5), abs=0.05)


def test_bayesian_heads_record_it_and_the_point_head_stays_degenerate():
    tc = make_tiny()
    point = VGFM.from_zoo("point", **HEADS_TINY, seed=0).fit(tc, progress=False)
    assert "mass_discrepancy" not in point.resolved
    m = point.evaluate()
    assert m["mass_q05"] == pytest.approx(m["mass_predicted"])
    assert m["mass_noise"] is None
    bayes = VGFM.from_zoo("last_layer", **HEADS_TINY, seed=0).fit(tc, progress=False)
    d = bayes.resolved["mass_discrepancy"]
    assert d["dof"] == tc.n_times - 2
    assert bayes.evaluate(samples=8)["mass_noise"] == [d["sd"], d["dof"]]


def _raw_cost_mass(tc, eps, tau, scale):
    """The held-out mass at t_1 predicted from SROT between snapshots 0 and 2 on the raw cost
    of the coordinates divided by ``scale``, solved directly."""
    x, y = (torch.tensor(tc.x[i] / scale) for i in (0, 2))
    ratio = tc.masses[2] / tc.masses[0] * len(x) / len(y)
    res = solve_srot(x, y, eps, tau, b=torch.full((len(y),), ratio, dtype=torch.float64))
    s = (tc.times[1] - tc.times[0]) / (tc.times[2] - tc.times[0])
    return tc.masses[0] * float(np.mean(res.row_sums.numpy() ** s))


def test_a_raw_cost_setting_is_scored_on_its_own_plan():
    # a bundled data set's setting is on the raw cost in the fit's units: the score must solve
    # that problem (the normalised one at eps, tau / its max cost), not the numbers as given
    tc = make_tiny(counts=(30, 36, 60))
    tc = type(tc)(tc.times, tc.x, np.array([1.0, 1.3, 2.5]))
    eps, tau, scale = 0.05, 0.3, 0.5
    one = tune_srot(tc, taus=(tau,), epss=(eps,), raw_cost_scale=scale)
    assert one.best == {"eps": eps, "tau": tau, "normalize_cost": False}
    expected = _raw_cost_mass(tc, eps, tau, scale)
    assert one.rows[0]["mass"][0] == pytest.approx(expected, rel=2e-3)
    # the same numbers on the normalised cost are another problem, with another mass
    normalised = tune_srot(tc, taus=(tau,), epss=(eps,)).rows[0]["mass"][0]
    assert abs(normalised - expected) > 20 * abs(one.rows[0]["mass"][0] - expected)


def test_fixed_settings_take_the_discrepancy_of_their_own_plans(monkeypatch):
    tc = make_tiny()
    fixed = {"eps": 0.01, "tau": 1.0, "normalize_cost": False}
    bayes = VGFM.from_zoo("last_layer", **HEADS_TINY, **fixed, seed=0).fit(tc, progress=False)
    scale = Scaling.fit(tc).scale  # a file is standardised: the setting is in those units
    own = tune_srot(tc, taus=(1.0,), epss=(0.01,), raw_cost_scale=scale).mass_discrepancy()
    assert bayes.resolved["mass_discrepancy"] == own
    assert own != tune_srot(tc, taus=(1.0,), epss=(0.01,), raw_cost_scale=1.0).mass_discrepancy()
    # a setting without a plan between every other snapshot: the score's best settings stand in
    calls = []

    def no_plan(data, **kw):
        calls.append(kw)
        if "taus" in kw:
            return TuneResult([], [1], dict(fixed), fallback=True)
        return tune_srot(data, **kw)

    monkeypatch.setattr(resolve, "tune_srot", no_plan)
    found = resolve.fixed_discrepancy(fixed, tc, 0, 1.0)
    assert len(calls) == 2 and "taus" not in calls[1]
    assert found == tune_srot(tc).mass_discrepancy()


def test_two_snapshots_with_fixed_settings_hold_nothing_out(caplog):
    # nothing to hold out: no discrepancy, and no warning about generic settings not used
    tc = make_tiny(counts=(30, 36))
    fixed = {"eps": 0.01, "tau": 1.0, "normalize_cost": False}
    with caplog.at_level("WARNING"):
        bayes = VGFM.from_zoo("last_layer", **HEADS_TINY, **fixed, seed=0).fit(tc, progress=False)
    assert bayes.resolved["mass_discrepancy"] is None
    assert "generic settings" not in caplog.text
