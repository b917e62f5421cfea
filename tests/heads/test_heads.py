"""Heads of the zoo: fit / simulate / growth paths, the ensemble's members, the point head kept."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from tests.tiny import HEADS_TINY as TINY
from vgfm_bayes import VGFM
from vgfm_bayes.infer import train
from vgfm_bayes.model import VGFMModel, get_head
from vgfm_bayes.nn import Fields
from vgfm_bayes.ot import (
    Members,
    PairBatch,
    interval_plans,
    member_plans,
    sample_member_pairs,
    sample_pairs,
    stack_member_plans,
)

HEADS = ["point", "ensemble", "last_layer", "mean_field"]


def _fit(head: str, data, **kw):
    members = 3 if head == "ensemble" else None
    return VGFM(head=head, members=members, **{**TINY, **kw}).fit(data, progress=False)


@pytest.mark.parametrize("head", HEADS)
def test_head_fit_simulate_growth_velocity(head, tiny, tmp_path):
    model = _fit(head, tiny)
    n_draws = {"point": 1, "ensemble": 3}.get(head, 6)
    traj = model.simulate(samples=6)
    assert traj.x.shape == (n_draws, 3, tiny.counts[0], 2)
    assert np.allclose(np.exp(traj.log_w[:, 0]).sum(-1), 1.0, atol=1e-5)
    g = model.growth(tiny.x[1], 1.0, samples=6)
    assert list(g.columns) == ["mean", "sd", "q05", "q50", "q95", "p_positive"]
    assert np.all(g["q05"] <= g["q50"] + 1e-9) and np.all(g["q50"] <= g["q95"] + 1e-9)
    if head == "point":
        assert np.all(g["sd"] == 0)
    else:  # a Bayesian head's draws differ
        assert np.all(g["sd"] > 0)
    v = model.velocity(tiny.x[1], 1.0, samples=6)
    assert v["mean"].shape == (tiny.counts[1], 2) and v["direction_spread"].shape == (36,)
    ev = model.evaluate(samples=4)
    assert np.isfinite(ev["w1_mean"]) and len(ev["mass_covered"]) == 2
    _check_arviz(model, n_draws)
    _check_anndata(model, tiny, n_draws, tmp_path)
    # a saved run loads back to the same posterior mean (draws of a deterministic or member
    # head are identical; Bayesian heads are compared through their guide parameters)
    model.save(tmp_path / "run")
    back = VGFM.load(tmp_path / "run")
    a = {k: v.detach() for k, v in model.guide.state_dict().items()}
    b = {k: v.detach() for k, v in back.guide.state_dict().items()}
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_point_head_numbers_unchanged(tiny):
    """The point head through the head interface equals the original hand-wired pipeline
    (plans once, one pair generator seeded with the seed, AutoDelta from the seeded init)."""
    model = _fit("point", tiny, joint_steps=0, standardize=False)
    c, r = model.config, model.resolved
    plans = interval_plans(tiny, r["eps"], r["tau"], r["normalize_cost"])
    fields = Fields.build(2, 0.0, 2.0, (16, 16), (16, 16))
    head = get_head("point")
    init = fields.init((), generator=torch.Generator().manual_seed(c.seed))
    gen = torch.Generator().manual_seed(c.seed)
    with pyro.settings.context(module_local_params=True):
        vm = VGFMModel(fields, head.blocks(fields), r["sigma_v"], r["sigma_g"], r["n_effective"])
        guide = head.build_guide(vm, init)
        guide(None)
        hist = train(
            vm,
            guide,
            lambda: sample_pairs(plans, c.batch_size, c.sigma, gen),
            None,
            warmup_steps=c.warmup_steps,
            lr_warmup=c.lr_warmup,
            joint_steps=0,
            lr_joint=1.0,
            progress=False,
        )
    assert hist.warmup == model.history.warmup
    got, want = model.guide.state_dict(), guide.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)


def test_ensemble_members_bootstrap_and_init(tiny):
    """Each member has its own init and its own bootstrap plans; batches carry a member dim."""
    plans = member_plans(tiny, 0.05, 5.0, True, 3, seed=0)
    assert len(plans) == 3 and all(len(p) == 2 for p in plans)
    sizes = [[p.x0.shape[0] for p in mp] for mp in plans]
    assert sizes == [[30, 36]] * 3  # a bootstrap keeps each snapshot's size
    # resamples differ between members, and contain repeated cells
    x0s = [mp[0].x0.numpy() for mp in plans]
    assert not np.array_equal(x0s[0], x0s[1])
    assert len(np.unique(x0s[0], axis=0)) < 30
    head, members = get_head("ensemble", n_members=3), Members(3)
    batch = members.sample(stack_member_plans(plans), 8, 0.1, members.generators(0, "cpu"))
    assert batch.x.shape == (3, 16, 2) and batch.gamma.shape == (3, 16)
    fields = Fields.build(2, 0.0, 2.0, (8,), (8,))
    init = head.init_weights(fields, 0, "cpu")
    assert init["v.l0.weight"].shape == (3, 3, 8)
    assert not torch.equal(init["v.l0.weight"][0], init["v.l0.weight"][1])
    # tau spread: members' growth targets differ even without a bootstrap
    spread = member_plans(tiny, 0.05, 5.0, True, 3, seed=0, bootstrap=False, tau_spread=1.0)
    assert torch.equal(spread[0][0].x0, spread[2][0].x0)
    assert not torch.allclose(spread[0][0].row_sums, spread[2][0].row_sums)


def test_ensemble_members_are_independent(tiny):
    """Vectorised training: member k's gradient depends on member k's batch only."""
    fields = Fields.build(2, 0.0, 2.0, (8,), (8,))
    head, members = get_head("ensemble", n_members=3), Members(3)
    init = head.init_weights(fields, 0, "cpu")
    plans = stack_member_plans(member_plans(tiny, 0.05, 5.0, True, 3, seed=0))
    batch = members.sample(plans, 8, 0.1, members.generators(0, "cpu"))
    grads = []
    with pyro.settings.context(module_local_params=True):
        vm = VGFMModel(fields, head.blocks(fields), 1.0, 0.7, 60.0, (3,))
        guide = head.build_guide(vm, init)
        guide(None)
        for b in [batch, PairBatch(batch.x.clone(), batch.t, batch.u.clone(), batch.gamma.clone())]:
            if grads:  # perturb member 0's targets only
                b.u[0] += 1.0
                b.gamma[0] -= 1.0
            loss = pyro.infer.Trace_ELBO().differentiable_loss(vm, guide, b, None)
            (g,) = torch.autograd.grad(loss, list(guide.parameters()))
            grads.append(g)
    assert grads[0].shape[0] == 3
    assert not torch.allclose(grads[0][0], grads[1][0])
    assert torch.allclose(grads[0][1:], grads[1][1:])


def test_ensemble_member_is_the_same_in_any_slice(tiny):
    """Member k's plans, initial weights and batches depend on (seed, k) only, so a slice of
    the members (one process's share) reproduces them bitwise, stacked or sampled alone."""
    head, members = get_head("ensemble", n_members=4), Members(4)
    fields = Fields.build(2, 0.0, 2.0, (8,), (8,))
    full = member_plans(tiny, 0.05, 5.0, True, 4, seed=3, tau_spread=0.5)
    part = member_plans(tiny, 0.05, 5.0, True, 4, seed=3, tau_spread=0.5, member_ids=[2, 3])
    for a, b in zip(full[2:], part, strict=True):
        for pa, pb in zip(a, b, strict=True):
            assert torch.equal(pa.x0, pb.x0) and torch.equal(pa.cdf, pb.cdf)
    init_all = head.init_weights(fields, 3, "cpu")
    init_part = head.init_weights(fields, 3, "cpu", [2, 3])
    assert all(torch.equal(init_all[k][2:], init_part[k]) for k in init_all)
    gens_all, gens_part = members.generators(3, "cpu"), members.generators(3, "cpu", [2, 3])
    stacked_all, stacked_part = stack_member_plans(full), stack_member_plans(part)
    for _ in range(2):  # the streams stay in step over several batches
        b_all = members.sample(stacked_all, 5, 0.1, gens_all)
        b_part = members.sample(stacked_part, 5, 0.1, gens_part)
        for f in ("x", "t", "u", "gamma"):
            assert torch.equal(getattr(b_all, f)[2:], getattr(b_part, f))
    # slices of members by rank: contiguous, covering, sizes within one
    shares = [members.ids(r, 3) for r in range(3)]
    assert sum(shares, []) == [0, 1, 2, 3] and {len(s) for s in shares} <= {1, 2}


def test_stacked_sampling_follows_each_members_plan(tiny):
    """The vectorised sampler draws member k's pairs from member k's plan: empirical source-row
    frequencies match r_i / sum(r) of that member."""
    plans = member_plans(tiny, 0.05, 5.0, True, 2, seed=0)
    stacked = stack_member_plans(plans)
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    p = stacked[0]
    n_draws = 40_000
    uni = torch.stack([torch.rand(n_draws, dtype=torch.float64, generator=g) for g in gens])
    flat = torch.searchsorted(p.cdf, uni * p.cdf[:, -1:])
    m = p.x1.shape[-1 - 1]
    for k in range(2):
        cdf = plans[k][0].cdf
        law = cdf.diff(prepend=cdf.new_zeros(1)).reshape(-1, m).sum(1)  # source rows r_i
        freq = torch.bincount(flat[k] // m, minlength=law.numel()).double() / n_draws
        assert (freq - law / law.sum()).abs().sum() < 0.06  # L1 over 30 rows, ~0.02 expected
    batch = sample_member_pairs(stacked, 64, 0.0, gens)
    assert batch.x.shape == (2, 128, 2)
    # sigma 0: x - (t - t0) u is the pair's source cell, one of member k's resampled cells
    src = batch.x[:, :64] - (batch.t[:, :64, None] - p.t0) * batch.u[:, :64]
    for k in range(2):
        assert torch.cdist(src[k], p.x0[k]).min(1).values.max() < 1e-3  # float32 rounding


def test_get_head_options():
    assert get_head("ensemble").n_members == 5
    assert get_head("ensemble", n_members=None).n_members == 5
    assert get_head("point", strict=False, tau_spread=1.0).n_members == 1
    with pytest.raises(ValueError, match="at least 2 members"):
        get_head("ensemble", n_members=1)
    with pytest.raises(ValueError, match="no option"):
        get_head("point", tau_spread=1.0)
    with pytest.raises(ValueError, match="unknown head"):
        get_head("nope")
    fields = Fields.build(2, 0.0, 1.0, (8,), (8,))
    blocks = get_head("last_layer").blocks(fields)  # trained as the point head: flat
    assert blocks["last"].prior.kind == "flat" and blocks["body"].prior.kind == "flat"
    blocks = get_head("last_layer", map_prior=True).blocks(fields)
    assert blocks["last"].prior.kind == "normal" and blocks["body"].prior.kind == "flat"
    assert set(blocks["last"].names) == {"v.l1.weight", "v.l1.bias", "g.l1.weight", "g.l1.bias"}


def _check_arviz(model, n_draws):
    import arviz as az

    idata = model.to_arviz(samples=6)
    post = idata.posterior
    assert post["growth"].dims == ("chain", "draw", "cell")
    assert post["velocity"].dims == ("chain", "draw", "cell", "dim")
    assert post["growth"].shape == (1, n_draws, 30)
    assert list(post["dim"].values) == ["x1", "x2"]
    pp = idata.posterior_predictive
    assert pp["mass"].dims == ("chain", "draw", "time") and pp["mass"].shape == (1, n_draws, 3)
    assert pp["x"].dims == ("chain", "draw", "time", "particle", "dim")
    assert np.allclose(pp["mass"].values[..., 0], 1.0, atol=1e-5)
    # the same draws feed both groups: posterior mean growth equals growth()'s mean
    # (deterministic heads) and arviz.summary works
    summary = az.summary(idata, var_names=["growth"], kind="stats")
    assert summary.shape[0] == 30 and np.all(np.isfinite(summary["mean"]))
    if n_draws == 1 or model.config.head == "ensemble":
        g = model.growth(model.data.x[0], float(model.data.times[0]))
        assert np.allclose(summary["mean"].values, g["mean"].values, atol=1e-3)


def _check_anndata(model, data, n_draws, tmp_path):
    import anndata as ad
    import pandas as pd

    x = np.vstack(data.x)
    times = np.concatenate([np.full(len(xk), t) for xk, t in zip(data.x, data.times, strict=True)])
    adata = ad.AnnData(
        np.zeros((len(x), 3), dtype=np.float32),
        obs=pd.DataFrame({"day": times}, index=[f"c{i}" for i in range(len(x))]),
    )
    adata.obsm["X_pca"] = x
    out = model.to_anndata(adata, time_key="day", rep="X_pca", samples=6)
    # the caller's object is untouched
    assert "velocity_pca" not in adata.obsm and "growth_mean" not in adata.obs
    assert "vgfm_bayes" not in adata.uns
    assert out.obsm["velocity_pca"].shape == (len(x), 2)
    assert out.obsm["velocity_pca_sd"].shape == (len(x), 2)
    for c in ["mean", "sd", "q05", "q50", "q95", "p_positive"]:
        assert f"growth_{c}" in out.obs
    # growth at each cell's own time equals growth() at that time
    k = 1
    sel = times == data.times[k]
    g = model.growth(data.x[k], float(data.times[k]))
    if n_draws == 1 or model.config.head == "ensemble":
        assert np.allclose(out.obs["growth_mean"].values[sel], g["mean"].values, atol=1e-5)
    assert out.uns["vgfm_bayes"]["head"] == model.config.head
    out.write_h5ad(tmp_path / "out.h5ad")  # everything written is storable
    again = model.to_anndata(adata, "day", rep="X_pca", samples=6, key_added="run1", inplace=True)
    assert again is None and "run1_velocity_pca" in adata.obsm and "run1" in adata.uns
    assert "run1_growth_mean" in adata.obs


def test_outputs_are_in_user_units_when_data_are_standardised(tiny):
    """Internal standardisation must not leak: AnnData and ArviZ velocities equal velocity()."""
    import anndata as ad
    import pandas as pd

    scaled = type(tiny)(tiny.times, tuple(100.0 * x + 5.0 for x in tiny.x), None, name="user")
    model = _fit("last_layer", scaled)
    assert not model.scaling.is_identity
    x = np.vstack(scaled.x)
    t = np.concatenate([[tt] * len(xx) for tt, xx in zip(scaled.times, scaled.x, strict=True)])
    adata = ad.AnnData(np.zeros((len(x), 1)), obs=pd.DataFrame({"day": t}))
    adata.obs_names = [f"c{i}" for i in range(len(x))]
    adata.obsm["X_emb"] = x
    params = model.posterior.draw(50)
    direct = model.velocity_draws(scaled.x[1], 1.0, params=params).mean(0)
    torch.manual_seed(0)
    out = model.to_anndata(adata, time_key="day", rep="X_emb", samples=400)
    got = out.obsm["velocity_emb"][t == 1.0]
    # the same posterior: means agree to Monte Carlo error in user units (not 100x off)
    np.testing.assert_allclose(got, direct, rtol=0.5, atol=5.0)
    assert np.abs(direct).max() > 5.0  # user units: ~100x what internal units would give
    idata = model.to_arviz(scaled.x[1], 1.0, samples=20)
    v = idata.posterior["velocity"].values.reshape(-1, len(scaled.x[1]), 2)
    np.testing.assert_allclose(v.mean(0), direct, rtol=0.5, atol=5.0)
    np.testing.assert_allclose(
        idata.posterior_predictive["x"].values[0, :, 0],
        np.broadcast_to(scaled.x[0], (20, 30, 2)),
        rtol=1e-5,
        atol=1e-3,
    )
