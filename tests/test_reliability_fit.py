"""Issue 6: numerical faults, checkpoints and resume, extreme scales."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.tiny import TINY, crashed_run, guide_state, kept_checkpoints, make_tiny, write_csv
from vgfm_bayes import VGFM, RunError, TimeCourse
from vgfm_bayes.cli import main
from vgfm_bayes.infer import CheckpointError, TrainingError, load_checkpoint
from vgfm_bayes.ot import SROTError, solve_srot, solve_srot_safe
from vgfm_bayes.ot import srot as srot_module

# ---------------------------------------------------------------- SROT safe mode


def test_srot_safe_mode_retries_with_a_warning_and_keeps_the_checks(caplog):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(40, 2, generator=gen, dtype=torch.float64) + 1.0
    # a budget of 2 dual evaluations cannot converge at eps = 0.01; the ladder must recover
    with pytest.raises(SROTError):
        solve_srot(x, y, 0.01, 5.0, normalize_cost=True, max_evals=2)
    with caplog.at_level(logging.WARNING, logger="vgfm_bayes.ot.srot"):
        res, fallback = solve_srot_safe(
            x, y, 0.01, 5.0, normalize_cost=True, max_evals=2, label="interval 0"
        )
    assert fallback is not None and fallback["label"] == "interval 0"
    assert "did not converge" in fallback["reason"]
    text = caplog.text
    assert "interval 0" in text and "retrying in safe mode" in text
    assert "dual evaluations" in text or "eps" in text
    # the plan that is used passed its checks: hard target marginal, finite, non-negative
    assert torch.isfinite(res.plan).all() and (res.plan >= 0).all()
    torch.testing.assert_close(
        res.plan.sum(0), torch.ones(40, dtype=torch.float64), rtol=1e-6, atol=0
    )


def test_srot_safe_mode_never_uses_a_nan_plan():
    x = torch.randn(10, 2, dtype=torch.float64)
    x[3, 0] = float("nan")
    y = torch.randn(12, 2, dtype=torch.float64)
    with pytest.raises(SROTError, match="NaN/inf"):
        solve_srot_safe(x, y, 0.05, 5.0)
    with pytest.raises(SROTError, match="NaN/inf"):
        solve_srot(y, x, 0.05, 5.0)
    # a problem no budget can solve: every attempt of the ladder fails its checks
    with pytest.raises(SROTError, match="no usable plan after 4 attempts"):
        solve_srot_safe(y, y + 3.0, 1e-4, 5.0, max_evals=1, gtol=1e-300)


def test_fit_records_the_srot_fallback(tiny, monkeypatch, tmp_path):
    calls = {"n": 0}
    real = srot_module.solve_srot

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise SROTError("SROT plan has NaN/inf (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(srot_module, "solve_srot", flaky)
    model = VGFM(**{**TINY, "joint_steps": 0}).fit(tiny, progress=False)
    (record,) = model.resolved["srot_fallbacks"]
    assert record["interval"] == 0 and "injected" in record["reason"]
    run = model.save(tmp_path / "run")
    saved = json.loads((run / "config.json").read_text())["fit_info"]["srot_fallbacks"]
    assert saved == [record]


# ---------------------------------------------------------------- divergence


def _poison(monkeypatch, after: int, how: str):
    import vgfm_bayes.ot.members as members_module  # the pair sampler of one network's plans

    real = members_module.sample_pairs
    calls = {"n": 0}

    def sampler(*args, **kwargs):
        calls["n"] += 1
        batch = real(*args, **kwargs)
        if calls["n"] > after:
            u = batch.u * 1e12 if how == "explode" else batch.u * float("nan")
            batch = type(batch)(batch.x, batch.t, u, batch.gamma)
        return batch

    monkeypatch.setattr(members_module, "sample_pairs", sampler)


@pytest.mark.parametrize("how, message", [("nan", "loss became nan"), ("explode", "exploded")])
def test_divergence_stops_and_keeps_the_last_good_checkpoint(
    tiny, monkeypatch, tmp_path, how, message
):
    _poison(monkeypatch, after=13, how=how)
    run = tmp_path / "run"
    model = VGFM(**TINY, checkpoint_every=5)
    with pytest.raises(TrainingError, match=message) as info:
        model.fit(tiny, progress=False, run_dir=run)
    assert "last good checkpoint" in str(info.value)
    state = load_checkpoint(run / "checkpoint.pt")
    assert len(state["history"]["warmup"]) == 10  # the step-10 checkpoint, not a later one
    assert all(torch.isfinite(v).all() for v in state["guide"].values())
    assert not (run / "config.json").exists()


def test_divergence_before_any_checkpoint_leaves_no_folder(tiny, monkeypatch, tmp_path):
    _poison(monkeypatch, after=2, how="nan")
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="no checkpoint"):
        VGFM(**TINY, checkpoint_every=50).fit(tiny, progress=False, run_dir=run)
    assert not run.exists()


# ---------------------------------------------------------------- extreme scales


@pytest.mark.parametrize("factor", [1e4, 1e-4])
def test_scaled_data_give_scaled_trajectories_and_the_same_growth(tiny, factor):
    scaled = TimeCourse(tiny.times, tuple(x * factor for x in tiny.x), None, name="tiny")
    base = VGFM(**TINY, seed=2).fit(tiny, progress=False)
    big = VGFM(**TINY, seed=2).fit(scaled, progress=False)
    assert big.scaling.scale == pytest.approx(base.scaling.scale * factor)
    a, b = base.simulate(), big.simulate()
    np.testing.assert_allclose(b.x / factor, a.x, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(b.log_w, a.log_w, rtol=1e-3, atol=1e-4)
    ga = base.growth(tiny.x[1], 1.0)["mean"].to_numpy()
    gb = big.growth(scaled.x[1], 1.0)["mean"].to_numpy()
    np.testing.assert_allclose(gb, ga, rtol=1e-3, atol=1e-5)
    va = base.velocity(tiny.x[1], 1.0)["mean"]
    vb = big.velocity(scaled.x[1], 1.0)["mean"]
    np.testing.assert_allclose(vb / factor, va, rtol=1e-3, atol=1e-4)
    ma, mb = base.evaluate(), big.evaluate()
    np.testing.assert_allclose(np.array(mb["w1"]) / factor, ma["w1"], rtol=1e-3)
    np.testing.assert_allclose(mb["rme"], ma["rme"], rtol=1e-3, atol=1e-6)


def test_scaling_survives_save_and_load(tiny, tmp_path):
    scaled = TimeCourse(tiny.times, tuple(x * 1e4 + 5e4 for x in tiny.x), None, name="s")
    model = VGFM(**TINY).fit(scaled, progress=False)
    loaded = VGFM.load(model.save(tmp_path / "run"))
    np.testing.assert_array_equal(loaded.simulate().x, model.simulate().x)
    np.testing.assert_allclose(loaded.simulate().x[0, 0], scaled.x[0], rtol=1e-6)


# ---------------------------------------------------------------- checkpoints and resume


def test_resume_from_any_checkpoint_matches_the_uninterrupted_fit(tiny, tmp_path):
    cfg = {**TINY, "joint_steps": 3, "checkpoint_every": 1}
    full_dir = tmp_path / "full"
    with kept_checkpoints() as snapshots:
        full = VGFM(**cfg, seed=5).fit(tiny, progress=False, run_dir=full_dir)
    assert len(snapshots) == cfg["warmup_steps"] + cfg["joint_steps"]
    # a crash after warm-up step 13, and one after joint step 1
    for index in (12, cfg["warmup_steps"]):
        run = crashed_run(full_dir, snapshots[index], tmp_path / f"crash{index}")
        resumed = VGFM.resume(run, progress=False)
        assert resumed.history.warmup == full.history.warmup
        assert resumed.history.joint == full.history.joint
        a, b = guide_state(full), guide_state(resumed)
        for k in a:
            assert torch.equal(a[k], b[k]), (index, k)
        assert resumed.evaluate()["w1"] == full.evaluate()["w1"]


def test_checkpoint_of_unknown_version_is_refused(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    VGFM(**TINY, checkpoint_every=5).fit(tiny, progress=False, run_dir=run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["checkpoint_version"] = 99
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="version 99 is not supported"):
        VGFM.resume(run, progress=False)
    assert main(["fit", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "version 99" in err and "Traceback" not in err
    (run / "checkpoint.pt").write_bytes(b"garbage")
    assert main(["fit", "--resume", str(run)]) == 2
    assert "unreadable checkpoint" in capsys.readouterr().err
    with pytest.raises(RunError, match="unfinished fit"):
        VGFM.load(run)


LONG = {**TINY, "warmup_steps": 400, "joint_steps": 2, "checkpoint_every": 20}


@pytest.fixture(scope="module")
def long_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    tc = make_tiny()
    csv = write_csv(tc, root / "tiny.csv")
    cfg = root / "long.json"
    cfg.write_text(json.dumps(LONG))
    return csv, cfg


def _start_and_signal(csv, cfg, run, signum):
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    cmd = [sys.executable, "-m", "vgfm_bayes", "fit", str(csv), "--out", str(run)]
    proc = subprocess.Popen(
        [*cmd, "--config", str(cfg), "--quiet", "--seed", "3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_leaves_a_resumable_checkpoint(long_setup, tmp_path, signum, capsys):
    csv, cfg = long_setup
    run = tmp_path / "run"
    rc, err = _start_and_signal(csv, cfg, run, signum)
    assert rc == 128 + signum, err
    assert "Traceback" not in err and f"fit --resume {run}" in err
    state = load_checkpoint(run / "checkpoint.pt")
    stopped_at = len(state["history"]["warmup"])
    assert 0 < stopped_at < LONG["warmup_steps"]
    assert not (run / "config.json").exists()
    if signum != signal.SIGTERM:
        return  # one full resume comparison is enough; SIGINT shares the code path
    assert main(["fit", "--resume", str(run), "--quiet"]) == 0
    ref = tmp_path / "ref"
    args = ["fit", str(csv), "--out", str(ref), "--config", str(cfg), "--seed", "3"]
    assert main([*args, "--quiet"]) == 0
    wa = torch.load(run / "weights.pt", weights_only=True)["guide"]
    wb = torch.load(ref / "weights.pt", weights_only=True)["guide"]
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ma = json.loads((run / "metrics.json").read_text())
    mb = json.loads((ref / "metrics.json").read_text())
    assert ma["w1"] == mb["w1"] and ma["rme"] == mb["rme"]
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in ref.iterdir())
