"""benchmarks/scale.py: growth-rate fit, and one tiny size measured in-process."""

from __future__ import annotations

import math

import pytest

from tests.tiny import load_script


@pytest.fixture(scope="module")
def scale():
    return load_script("scale")


def test_loglog_slope(scale):
    ns = [1e3, 1e4, 1e5]
    assert scale.loglog_slope(ns, [2 * n**1.5 for n in ns]) == pytest.approx(1.5)
    assert scale.loglog_slope(ns, [7.0, 7.0, 7.0]) == pytest.approx(0.0)
    assert scale.loglog_slope([10.0], [1.0]) is None


def test_one_tiny_size(scale):
    args = scale.parse(
        [
            "--sizes",
            "80",
            "--warmup-steps",
            "3",
            "--joint-steps",
            "2",
            "--hidden",
            "8",
            "--srot-batch",
            "40",
            "--threads",
            "1",
        ]
    )
    rec = scale.run_one(args, 80)
    assert rec["srot_mode"] == "minibatch" and rec["srot_batch"] == 40
    assert set(rec["phases"]) == set(scale.PHASES)
    for p in rec["phases"].values():
        assert p["seconds"] >= 0 and p["rss_mb"] > 0 and math.isfinite(p["rss_delta_mb"])
    assert rec["phases"]["warmup"]["seconds_per_step"] > 0
    assert rec["cells"] == [80, 80, 80, 80] and rec["w1_method"] == ["exact"] * 3
    table = scale.markdown([rec, {"n": 160, "error": "timeout"}], {}, args)
    assert "| 80 | minibatch (batch 40, x1) | srot |" in table and "failed" in table
