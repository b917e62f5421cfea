"""The ensemble's shared start (config shared_warmup, infer/trainer.py): the warm-up's first steps
train one network on every member's pairs, and every member starts from it."""

import pytest
import torch

from tests.tiny import TINY, crashed_run, guide_state, kept_checkpoints
from vgfm_bayes import VGFM
from vgfm_bayes.infer import ConfigError, FitConfig, trainer

CFG = {**TINY, "head": "ensemble", "members": 3, "shared_warmup": 0.5}


def test_shared_warmup_is_a_fraction_and_an_ensemble_option():
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError, match=r"shared_warmup must be in \[0, 1\)"):
            FitConfig(head="ensemble", shared_warmup=bad).validate()
    with pytest.raises(ConfigError, match="ensemble option, not 'point'"):
        FitConfig(head="point", shared_warmup=0.5).validate()
    FitConfig(head="ensemble", shared_warmup=0.0).validate()


def test_members_start_from_one_network_trained_on_every_members_pairs(tiny, monkeypatch):
    starts, shared_batches = [], []
    real_build, real_phase = trainer.build, trainer.run_phase

    def build(config, head, internal, settings, device, member_ids, init=None):
        if head.is_ensemble:
            starts.append((init, config.warmup_steps))
        return real_build(config, head, internal, settings, device, member_ids, init)

    def run_phase(name, model, guide, sampler, *args, **kwargs):
        if name == "shared warm-up":
            sampler = _recorded(sampler, shared_batches)
        return real_phase(name, model, guide, sampler, *args, **kwargs)

    monkeypatch.setattr(trainer, "build", build)
    monkeypatch.setattr(trainer, "run_phase", run_phase)
    m = VGFM(**CFG).fit(tiny, progress=False)
    ((init, member_warmup),) = starts
    assert member_warmup == 10 and len(m.history.warmup) == 10  # 20 steps: 10 shared, 10 own
    fresh = m.head.init_weights(m.model.fields, m.config.seed, "cpu")
    for name, w in init.items():
        assert w.shape[0] == 3 and all(torch.equal(w[0], w[k]) for k in (1, 2)), name
    assert any(not torch.equal(init[n][0], fresh[n][0]) for n in init)  # trained, not the init
    batches = shared_batches
    assert len(batches) == 10
    n_intervals = tiny.n_times - 1
    # one network's batch, no member dim: batch_size // K pairs per member and interval
    assert all(b.x.shape == (3 * (32 // 3) * n_intervals, tiny.dim) for b in batches)
    assert all(b.gamma.shape == (3 * (32 // 3) * n_intervals,) for b in batches)
    # afterwards the members' own bootstraps drive them apart
    final = m.model.unpack(m.guide.median())
    assert all(not torch.equal(w[0], w[1]) for w in final.values())


def _recorded(sampler, out):
    def sample():
        batch = sampler()
        out.append(batch)
        return batch

    return sample


def test_without_it_every_member_starts_from_its_own_weights(tiny, monkeypatch):
    starts = []
    real_build = trainer.build

    def build(config, head, internal, settings, device, member_ids, init=None):
        starts.append((head.is_ensemble, init, config.warmup_steps))
        return real_build(config, head, internal, settings, device, member_ids, init)

    monkeypatch.setattr(trainer, "build", build)
    VGFM(**{**CFG, "shared_warmup": 0.0}).fit(tiny, progress=False)
    assert starts == [(True, None, 20)]  # no shared network was built


def test_a_resumed_shared_start_ensemble_matches_the_uninterrupted_fit(tiny, tmp_path):
    cfg = {**CFG, "joint_steps": 2, "checkpoint_every": 1}
    with kept_checkpoints() as snapshots:
        full = VGFM(**cfg, seed=3).fit(tiny, progress=False, run_dir=tmp_path / "full")
    # the members' own steps only: a checkpoint's weights already hold the shared start
    assert len(snapshots) == 10 + 2
    run = crashed_run(tmp_path / "full", snapshots[4], tmp_path / "crash")
    resumed = VGFM.resume(run, progress=False)
    assert resumed.history.warmup == full.history.warmup
    a, b = guide_state(full), guide_state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
