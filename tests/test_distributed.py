"""infer/distributed.py helpers, and `vgfm-bayes bench` spread over two ranks by torchrun."""

import json
import os
import subprocess
import sys

import pytest
import torch.distributed

from tests.tiny import TINY, write_csv
from vgfm_bayes.cli import main
from vgfm_bayes.infer import distributed as dist


def test_shard_is_round_robin_and_unshard_restores_the_order():
    items = list(range(7))
    parts = [dist.shard(items, r, 3) for r in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert dist.unshard(parts) == items
    assert dist.unshard([dist.shard(items, 0, 1)]) == items
    assert dist.unshard([dist.shard([], r, 2) for r in range(2)]) == []
    with pytest.raises(ValueError, match="rank 2"):
        dist.shard(items, 2, 2)


def test_plain_process_is_rank_0_of_1(monkeypatch):
    for var in dist.LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    assert not dist.launched()
    assert (dist.rank(), dist.world_size(), dist.local_rank()) == (0, 1, 0)
    assert dist.init_if_launched() is False
    with dist.process_group() as several:
        assert several is False
        assert dist.gather_to_rank0({"a": 1}) == [{"a": 1}]
    assert dist.rank_device("cuda") == "cuda"


def test_launcher_variables_are_read(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist.launched() and dist.rank() == 3 and dist.world_size() == 4
    assert dist.shard(list(range(10))) == [3, 7]
    assert dist.rank_device("cuda") == "cuda:1"
    assert dist.rank_device("cuda:0") == "cuda:0" and dist.rank_device("cpu") == "cpu"
    assert dist.backend_for("cuda:1") == "nccl" and dist.backend_for("cpu") == "gloo"


def _comparable(runs):
    """Runs without what depends on the machine's load (wall times, memory)."""
    return [
        {
            **r,
            "metrics": {
                k: v for k, v in r["metrics"].items() if k not in ("seconds", "peak_rss_mb")
            },
        }
        for r in runs
    ]


@pytest.mark.slow  # two torchrun launches: CI's slow set (make test-slow)
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_torchrun_bench_equals_single_process(tmp_path, tiny, monkeypatch):
    """Two ranks, three jobs (quick, tiny data; rank 0 runs jobs 0 and 2, rank 1 job 1): rank 0
    writes what one process writes, in the job order."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the same threads in both runs' fit processes
    write_csv(tiny, tmp_path / "tiny.csv")
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    args = ["bench", "--quick", "--datasets", "tiny.csv", "--seeds", "0", "1", "2"]
    args += ["--config", "tiny.json", "--quiet"]
    assert main([*args, "--out", "single"]) == 0
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    proc = subprocess.run(
        [*launch, "2", "-m", "vgfm_bayes", *args, "--out", "ranks"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = json.loads((tmp_path / "single" / "bench.json").read_text())
    ranks = json.loads((tmp_path / "ranks" / "bench.json").read_text())
    assert [r["seed"] for r in ranks] == [0, 1, 2]  # the job order, not the ranks' (0, 2, 1)
    assert all("error" not in r for r in single)
    assert _comparable(ranks) == _comparable(single)  # identical numbers, not merely close
    assert sorted(p.name for p in (tmp_path / "ranks").iterdir()) == ["bench.json", "bench.md"]
    assert proc.stdout.count("# vgfm-bayes bench") == 1  # only rank 0 writes the tables


@pytest.mark.slow  # two torchrun launches: CI's slow set (make test-slow)
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_torchrun_ensemble_fit_equals_single_process(tmp_path, tiny, monkeypatch):
    """A 4-member ensemble spread over two ranks (members 0-1 and 2-3): rank 0 saves weights
    bitwise equal to a one-process fit with the same seed, and the same metrics."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torchrun's default; the same in both runs
    write_csv(tiny, tmp_path / "tiny.csv")
    (tmp_path / "tiny.json").write_text(json.dumps({**TINY, "members": 4}))
    args = ["fit", "tiny.csv", "--model", "ensemble", "--config", "tiny.json", "--quiet"]
    single = subprocess.run(
        [sys.executable, "-m", "vgfm_bayes", *args, "--out", "single"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    proc = subprocess.run(
        [*launch, "2", "-m", "vgfm_bayes", *args, "--out", "ranks"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("fitted ensemble") == 1  # rank 0 alone evaluates and saves
    a = torch.load(tmp_path / "single" / "weights.pt", weights_only=False)
    b = torch.load(tmp_path / "ranks" / "weights.pt", weights_only=False)
    sa, sb = a["guide"], b["guide"]
    assert sa.keys() == sb.keys()
    assert all(v.shape[0] == 4 and torch.equal(v, sb[k]) for k, v in sa.items())
    ma = json.loads((tmp_path / "single" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "ranks" / "metrics.json").read_text())
    assert ma["w1"] == mb["w1"] and ma["rme"] == mb["rme"]
    # a one-network head cannot be spread: a clear error, nothing saved
    (tmp_path / "point.json").write_text(json.dumps(TINY))
    bad = subprocess.run(
        [*launch, "2", "-m", "vgfm_bayes", *args[:2], "--config", "point.json", "--out", "bad"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "only an ensemble" in bad.stderr
    assert not (tmp_path / "bad").exists()
