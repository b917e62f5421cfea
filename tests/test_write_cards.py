"""benchmarks/write_cards.py: the README's heads table, generated from result files."""

import json
from pathlib import Path

import pytest

from tests.tiny import load_script
from vgfm_bayes.bench import head_records

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def write_cards():
    return load_script("write_cards")


def _fake_results(tmp_path):
    """Two heads on the simulator and two leave-one-out tasks; bench runs of the point head."""
    rows = [
        {"part": "sim", "head": "point", "seed": 0, "spearman": 0.9, "coverage": 0.0, "crps": 0.1},
        {"part": "sim", "head": "point", "seed": 1, "spearman": 0.7, "coverage": 0.0, "crps": 0.3},
        {
            "part": "sim",
            "head": "ensemble",
            "seed": 0,
            "spearman": 0.5,
            "coverage": 0.8,
            "crps": 0.2,
            "mean_width": 0.3,
            "kind": "separated",
        },
        {
            "part": "sim",
            "head": "ensemble",
            "seed": 0,
            "spearman": 0.1,
            "coverage": 0.9,
            "crps": 0.4,
            "mean_width": 1.0,
            "kind": "reweight",
        },
    ]
    for head, seconds, covered in (("point", 10.0, False), ("ensemble", 70.0, True)):
        for k in (1, 2):
            rows.append(
                {
                    "part": "loo",
                    "head": head,
                    "data": "dyngen",
                    "hold_out": k,
                    "seconds": seconds * k,
                    "covered": covered and k == 1,
                    **({"halfwidth_rel": 0.1 * k} if head == "ensemble" else {}),
                }
            )
    results = tmp_path / "results.jsonl"
    results.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    def run(seed, w1, hold_out=None, head="point", seconds=10.0):
        metrics = {"w1_mean": w1, "rme_mean": w1 / 10, "seconds": {"fit_total": seconds}}
        return {
            "dataset": "dyngen",
            "head": head,
            "seed": seed,
            "hold_out": hold_out,
            "metrics": metrics,
        }

    runs = [run(0, 0.2, seconds=8.0), run(1, 0.4, seconds=12.0), run(0, 9.0, hold_out=2)]
    runs.append(run(0, 0.5, head="ensemble", seconds=40.0))  # 4x the point head's mean
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(runs))
    return results, bench


def test_heads_table_is_written_between_the_markers(tmp_path, write_cards):
    results, bench = _fake_results(tmp_path)
    readme = tmp_path / "README.md"
    before, after = "# Title\n\nintro\n\n", "\n\n## Next\n\nmore\n"
    stale = f"{write_cards.README_START}\n| old | table |\n{write_cards.README_END}"
    readme.write_text(before + stale + after)
    args = ["--results", str(results), "--bench", str(bench), "--readme", str(readme)]
    write_cards.main([*args, "--no-cards"])
    text = readme.read_text()
    assert text.startswith(before + write_cards.README_START) and text.endswith(
        write_cards.README_END + after
    )
    assert "| old | table |" not in text
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    # published dyngen numbers; bench means over seeds (hold-out runs left out)
    assert rows["| VGFM (published)"].startswith(
        "| VGFM (published) | the authors' numbers | 0.42 / 0.053 |"
    )
    # simulator kinds separated / reweight (Spearman / coverage / width / CRPS; records without
    # a width or a kind: "–" and separated), LOO covered, median half-width / mass, fit time
    assert rows["| `point`"] == (
        "| `point` | deterministic VGFM | 0.300 / 0.030 | 0.80 / 0.00 / – / 0.20 | – | 0/2 "
        "| – | 1.0 |"
    )
    # the ensemble's bench fit took 4x the point head's mean over seeds (the leave-one-out
    # records' own times, 7x here, are from another run and not used)
    assert rows["| `ensemble`"].endswith(
        "| 0.500 / 0.050 | 0.50 / 0.80 / 0.30 / 0.20 | 0.10 / 0.90 / 1.00 / 0.40 | 1/2 | 0.150 "
        "| 4.0 |"
    )
    assert rows["| `last_layer`"].endswith("| – | – | – | – | – | – |")  # not measured
    assert list(rows)[2:4] == ["| `point`", "| `ensemble`"]  # the baseline first
    write_cards.main([*args, "--no-cards"])
    assert readme.read_text() == text  # regenerating changes nothing


def test_missing_markers_are_an_error(tmp_path, write_cards):
    with pytest.raises(ValueError, match="markers"):
        write_cards.replace_block("# README without markers\n", "table")
    flipped = f"{write_cards.README_END}\n{write_cards.README_START}\n"
    with pytest.raises(ValueError, match="markers"):
        write_cards.replace_block(flipped, "table")


def test_repository_readme_table_matches_the_committed_results(write_cards):
    """The README's table is generated, never typed: rerun write_cards.py after benchmarks."""
    bench_path = "benchmarks/results/bench/bench.json"
    bench = json.loads((ROOT / bench_path).read_text())
    unc = "benchmarks/results/uncertainty"
    results, source = write_cards.default_results(bench, bench_path, str(ROOT / unc))
    block = write_cards.readme_block(results, bench, source.replace(f"{ROOT}/", ""), bench_path)
    readme = (ROOT / "README.md").read_text()
    assert write_cards.replace_block(readme, block) == readme


def test_results_from_bench_reads_calibration_and_hold_outs(write_cards):
    cal = {"spearman": 0.9, "coverage": 0.85, "crps": 0.05, "mean_width": 0.2, "truth": "x"}
    sim = {
        "dataset": "simulator",
        "head": "ensemble",
        "seed": 1,
        "hold_out": None,
        "metrics": {"seconds": {"fit_total": 30.0}, "calibration": cal},
    }
    loo = {
        "dataset": "dyngen",
        "head": "point",
        "seed": 0,
        "hold_out": 2,
        "metrics": {
            "seconds": {"fit_total": 9.0},
            "w1_held_out": 1.2,
            "rme_held_out": 0.4,
            "mass_q05": [1.0, 0.5, 0.7],
            "mass_q95": [1.0, 0.6, 0.8],
            "mass_observed": [0.7, 0.4, 0.6],
            "mass_covered_held_out": False,
        },
    }
    failed = {"dataset": "dyngen", "head": "point", "seed": 0, "hold_out": None, "error": "x"}
    out = head_records([sim, loo, failed])
    assert out[0] == {
        "part": "sim",
        "head": "ensemble",
        "kind": "separated",
        "seed": 1,
        "seconds": 30.0,
        "spearman": 0.9,
        "coverage": 0.85,
        "crps": 0.05,
        "mean_width": 0.2,
    }
    assert out[1]["part"] == "loo" and out[1]["hold_out"] == 2 and out[1]["covered"] is False
    assert (out[1]["mass_q05"], out[1]["mass_q95"], out[1]["mass_observed"]) == (0.5, 0.6, 0.4)
    # an older record: the half-width from its quantiles, no pooled / posterior-mean W1
    assert out[1]["halfwidth_rel"] == pytest.approx(0.05 / 0.4)
    assert out[1]["w1_pooled"] is None and out[1]["w1_posterior_mean"] is None
    assert len(out) == 2
    reweight = {**sim, "dataset": "simulator_reweight"}
    new = {**loo, "metrics": {**loo["metrics"], "w1_pooled_held_out": 1.0}}
    new["metrics"]["posterior_mean"] = {"w1_held_out": 1.1}
    out = head_records([reweight, new])
    assert out[0]["kind"] == "reweight"
    assert (out[1]["w1_pooled"], out[1]["w1_posterior_mean"]) == (1.0, 1.1)


def test_calibration_columns_come_from_the_uncertainty_runs(tmp_path, write_cards):
    # the oracle-free runs (default settings on files) give the LOO columns, not the bench's
    _, bench = _fake_results(tmp_path)
    metrics = {
        "seconds": {"fit_total": 20.0},
        "w1_held_out": 0.5,
        "rme_held_out": 0.1,
        "mass_q05": [0.5, 0.8],
        "mass_q95": [1.5, 1.2],
        "mass_observed": [1.0, 1.0],
        "mass_covered_held_out": True,
        "mass_halfwidth_rel_held_out": 0.5,
    }
    unc = tmp_path / "unc"
    for i, head in enumerate(("point", "ensemble")):
        (unc / f"part{i}").mkdir(parents=True)
        run = {"dataset": "a.csv", "head": head, "seed": 0, "hold_out": 1, "metrics": metrics}
        (unc / f"part{i}" / "bench.json").write_text(json.dumps([run]))
    readme = tmp_path / "README.md"
    readme.write_text(f"{write_cards.README_START}\n{write_cards.README_END}\n")
    write_cards.main(
        ["--bench", str(bench), "--uncertainty", str(unc), "--readme", str(readme), "--no-cards"]
    )
    text = readme.read_text()
    assert f"{unc}/*/bench.json" in text
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    # the fit-time ratio is the bench's (40 s / 10 s), not the uncertainty runs' (20 s / 20 s)
    assert rows["| `ensemble`"].endswith("| 1/1 | 0.500 | 4.0 |")
