"""vgfm_bayes/bench.py without fitting: data set names, the job grid, truths, the tables."""

import math

import numpy as np
import pytest

from vgfm_bayes import ConfigError, DataError
from vgfm_bayes.bench import (
    DEFAULT_DATASETS,
    SIMULATOR,
    SIMULATORS,
    Task,
    bench_task,
    expand_datasets,
    loo_summary,
    make_jobs,
    summarise,
)
from vgfm_bayes.data import DATASETS, is_bundled

GRID = {"quick": True, "device": "cpu", "samples": 5, "overrides": {}}


def test_dataset_names_expand():
    assert expand_datasets(None) == DEFAULT_DATASETS
    every = expand_datasets(["dyngen", "all", "dyngen"])
    assert every[0] == "dyngen" and len(every) == len(set(every))
    assert set(every) == {*DATASETS, "simulator", "simulator_reweight"}


@pytest.mark.parametrize("name", ["simulator", "simulator_reweight"])
def test_simulators_are_seeded_by_the_run_carry_their_truth_and_no_settings(name):
    a, b, c = bench_task(name, 0), bench_task(name, 0), bench_task(name, 1)
    np.testing.assert_array_equal(a.data.x[1], b.data.x[1])
    assert not np.array_equal(a.data.x[0], c.data.x[0])
    assert [len(g) for g in a.truth] == a.data.counts.tolist()
    # user data: no bundled name (so no bundled SROT settings) and no settings of its own
    assert not is_bundled(a.data.name)
    assert set(Task.__dataclass_fields__) == {"data", "truth", "truth_source", "shape"}
    assert SIMULATORS[name] in ("separated", "reweight") and SIMULATOR in SIMULATORS


def test_gaussian_truth_is_per_cluster_and_other_data_have_none():
    task = bench_task("gaussian_10d", 0)
    upper = task.data.x[1][:, 1] > 1.25
    np.testing.assert_allclose(task.truth[1][upper], math.log(10.0))
    np.testing.assert_allclose(task.truth[1][~upper], 0.0)
    assert bench_task("dyngen", 0).truth is None


def test_job_grid_order_and_skipped_hold_outs(caplog):
    jobs = make_jobs(["dyngen", "gaussian_10d"], ["point"], [0, 1], [None, 2], **GRID)
    keys = [(j["dataset"], j["hold_out"], j["seed"]) for j in jobs]
    # gaussian_10d has two time points: nothing to hold out there
    assert keys == [
        ("dyngen", None, 0),
        ("dyngen", None, 1),
        ("dyngen", 2, 0),
        ("dyngen", 2, 1),
        ("gaussian_10d", None, 0),
        ("gaussian_10d", None, 1),
    ]
    assert "skipping gaussian_10d with hold-out 2" in caplog.text
    with pytest.raises(DataError, match="no job left"):
        make_jobs(["gaussian_10d"], ["point"], [0], [1], **GRID)


def test_job_grid_rejects_bad_input_before_any_fit():
    with pytest.raises(DataError, match="unknown data set|not a bundled"):
        make_jobs(["no_such_data"], ["point"], [0], [None], **GRID)
    with pytest.raises(ConfigError, match="unknown model"):
        make_jobs(["dyngen"], ["pointt"], [0], [None], **GRID)
    with pytest.raises(ConfigError, match="--seeds"):
        make_jobs(["dyngen"], ["point"], [0], [None], **{**GRID, "overrides": {"seed": 3}})


def _run(dataset, seed, hold_out=None, *, w1=(0.1, 0.2), covered=True, calibration=None):
    metrics = {
        "times": [1.0, 2.0],
        "w1": list(w1),
        "rme": [0.01, 0.02],
        "w1_mean": float(np.mean(w1)),
        "rme_mean": 0.015,
        "mass_q05": [1.0, 1.1],
        "mass_q95": [1.2, 1.3],
        "mass_observed": [1.1, 1.4],
        "mass_covered": [covered, False],
        "seconds": {"srot": 1.0, "warmup": 2.0, "joint": 3.0, "fit_total": 6.0 + seed},
        "peak_rss_mb": 500.0 + seed,
    }
    if calibration:
        metrics["calibration"] = calibration
    return {
        "dataset": dataset,
        "head": "point",
        "seed": seed,
        "hold_out": hold_out,
        "metrics": metrics,
    }


def test_tables_show_per_time_published_loo_calibration_and_failures():
    cal = {"spearman": 0.9, "coverage": 0.8, "crps": 0.1, "mean_width": 0.5, "truth": "simulator"}
    runs = [
        _run("mouse_hematopoiesis", 0, w1=(0.1, 0.3)),
        _run("mouse_hematopoiesis", 1, w1=(0.3, 0.5)),
        _run("mouse_hematopoiesis", 0, 1, covered=True),
        _run("mouse_hematopoiesis", 1, 1, covered=False),
        _run(SIMULATOR, 0, calibration=cal),
        {"dataset": "dyngen", "head": "point", "seed": 0, "hold_out": None, "error": "Boom: x"},
    ]
    text = summarise(runs)
    lines = text.splitlines()
    # W1 per time: mean ± sd over seeds, the published per-time numbers as a row
    assert "| point | - | 2 | 0.2000 ± 0.1000 | 0.4000 ± 0.1000 | 0.3000 ± 0.1000 |" in text
    assert "| VGFM (published) | - | - | 0.1052 | 0.1066 | 0.106 | 0.0555 | 0.037 | 0.046 |" in text
    sections = {part.split("\n", 1)[0]: part for part in text.split("### ")}
    assert "VGFM (published)" in sections["mouse_hematopoiesis"]
    assert "VGFM (published)" not in sections["simulator"]  # nothing published for it
    # wall time per phase and peak memory (max over seeds)
    assert "| mouse_hematopoiesis | point | - | 2 | 1.0 | 2.0 | 3.0 | 6.5 ± 0.5 | – | 501 |" in text
    # leave-one-out: held-out W1 / RME, mass interval, covered in 1 of 2 seeds
    assert "| mouse_hematopoiesis | point | 1 | 2 | 0.1000 ± 0.0000 | 0.0100 ± 0.0000 " in text
    assert "| [1.000, 1.200] vs 1.100 | 1/2 |" in text
    # calibration only where a truth exists
    assert "| simulator | point | - | 1 | 0.900 | 0.800 | 0.100 | 0.500 | simulator |" in text
    assert "mouse_hematopoiesis | point | - | 2 | 0.9" not in text
    assert "- dyngen point hold-out - seed 0: Boom: x" in lines
    assert summarise(runs, level=3).startswith("### W1 and RME per time point")


def _loo_run(head, seed, w1, covered, *, dataset="dyngen", posterior_mean=None):
    run = _run(dataset, seed, 1, w1=(w1, 0.5), covered=covered)
    run["head"] = head
    run["metrics"]["w1_pooled"] = [w1 / 2, 0.4]
    run["metrics"]["w1_pooled_mean"] = (w1 / 2 + 0.4) / 2
    run["metrics"]["posterior_mean"] = posterior_mean
    return run


def test_loo_summary_per_head_and_its_table():
    pm = {"w1": [0.3, 0.6], "w1_mean": 0.45, "rme": [0.0, 0.0], "rme_mean": 0.0}
    runs = [
        _loo_run("point", 0, 0.2, False, posterior_mean=pm),
        _loo_run("point", 1, 0.4, True, posterior_mean=pm),
        _loo_run("ensemble", 0, 0.3, True),
        _loo_run("ensemble", 1, 0.2, True),
        _loo_run("ensemble", 2, 0.9, False),  # no point run on this task: no ratio
    ]
    s = loo_summary(runs)
    assert s["point"]["tasks"] == 2 and s["point"]["covered"] == 0.5
    # interval [1.0, 1.2] against the observed 1.1 at every task: half-width 0.1 / 1.1
    assert s["ensemble"]["halfwidth_rel"] == pytest.approx(0.1 / 1.1)
    assert s["ensemble"]["covered"] == pytest.approx(2 / 3)
    assert s["ensemble"]["w1"] == pytest.approx(1.4 / 3)
    assert s["ensemble"]["w1_vs_point"] == pytest.approx((0.3 / 0.2 + 0.2 / 0.4) / 2)
    assert s["point"]["w1_vs_point"] == pytest.approx(1.0)
    text = summarise(runs)
    assert "| point | 2 | 0.50 | 0.091 | 0.3000 | 1.00 |" in text
    assert "| ensemble | 3 | 0.67 | 0.091 | 0.4667 | 1.00 |" in text
    # the per-task table: half-width beside the coverage, pooled and posterior-mean W1
    assert "| [1.000, 1.200] vs 1.100 | 1/2 | 0.091 | 0.1500 | 0.3000 |" in text
    assert "| [1.000, 1.200] vs 1.100 | 3/3 |" not in text
    # three W1 per run (means over times): per draw, pooled, posterior mean (none: "–")
    assert (
        "| dyngen | point | 1 | 2 | 0.4000 ± 0.0500 | 0.2750 ± 0.0250 | 0.4500 ± 0.0000 |" in text
    )
    assert "| dyngen | ensemble | 1 | 3 |" in text and "| – |\n" in text


def test_simulator_calibration_table_per_kind_and_old_records():
    def cal(spearman, coverage, width=None):
        c = {"spearman": spearman, "coverage": coverage, "crps": 0.1, "truth": "simulator"}
        return c if width is None else {**c, "mean_width": width}

    runs = [
        _run("simulator_reweight", 0, calibration=cal(0.1, 0.5, 1.0)),
        _run("simulator", 0, calibration=cal(0.9, 0.8, 0.2)),
        _run("simulator", 1, calibration=cal(0.7, 0.6, 0.4)),
        _run("gaussian_10d", 0, calibration=cal(0.9, 0.8)),  # no width recorded: "–"
    ]
    text = summarise(runs)
    table = text.split("Simulator calibration per kind")[1]
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert rows == [
        "| separated | point | 2 | 0.800 ± 0.100 | 0.700 ± 0.100 | 0.300 ± 0.100 |",
        "| reweight | point | 1 | 0.100 | 0.500 | 1.000 |",
    ]
    assert "| gaussian_10d | point | - | 1 | 0.900 | 0.800 | 0.100 | – |" in text


def test_gene_growth_shape_by_name_and_as_a_file():
    """The gene data's true growth shape x2^2 / (1 + x2^2) follows the data, bundled or given
    as its file; other data have none."""
    from importlib import resources

    from vgfm_bayes.bench.harness import _growth_shape
    from vgfm_bayes.data import growth_shape, read_csv

    shape = growth_shape("simulation_gene")
    assert shape is growth_shape("simulation_gene_data") and growth_shape("dyngen") is None
    np.testing.assert_allclose(shape.shape(np.array([[5.0, 0.0], [0.0, 1.0]])), [0.0, 0.5])
    files = resources.files("vgfm_bayes.data") / "files" / "simulation_gene_data.csv"
    with resources.as_file(files) as path:
        task = Task(read_csv(path), shape=growth_shape(read_csv(path).name))
    assert task.shape is shape and bench_task("simulation_gene", 0).shape is shape
    assert bench_task("dyngen", 0).shape is None
    # Pearson: 1 for an affine map of the shape, about 0 for noise
    truth = np.concatenate([shape.shape(x) for x in task.data.x])
    assert _growth_shape(task, 3.0 * truth - 1.0)["pearson"] == pytest.approx(1.0)
    noise = np.random.default_rng(0).normal(size=truth.shape)
    assert abs(_growth_shape(task, noise)["pearson"]) < 0.1


def test_sampling_floor_is_zero_for_one_point_and_falls_with_cells():
    from vgfm_bayes.metrics import sampling_floor

    assert sampling_floor(np.ones((50, 2))) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(1)
    small, large = (
        sampling_floor(rng.normal(size=(40, 2))),
        sampling_floor(rng.normal(size=(1000, 2))),
    )
    assert large < 0.5 * small and large > 0
    with pytest.raises(ValueError, match="at least 2"):
        sampling_floor(np.ones((1, 2)))


def test_accuracy_table_puts_held_out_w1_beside_the_floor_and_growth_shape():
    runs = [_run("simulation_gene", s, w1=(0.05, 0.06)) for s in (0, 1)]
    for ho, floor in ((1, 0.1), (2, 0.2)):
        run = _run("simulation_gene", 0, ho, w1=(0.15, 0.3))
        run["metrics"]["w1_floor_held_out"] = floor
        runs.append(run)
    runs[0]["metrics"]["growth_shape"] = {"pearson": 0.97, "truth": "x2^2 / (1 + x2^2)"}
    runs[1]["metrics"]["growth_shape"] = {"pearson": 0.99, "truth": "x2^2 / (1 + x2^2)"}
    text = summarise(runs)
    assert "Held-out accuracy against the sampling floor" in text
    # hold-out 1: W1 0.15 at a floor of 0.1; hold-out 2: 0.3 at 0.2; in-sample mean W1 0.055
    assert "| simulation_gene | point | 1 | 0.1500 | 0.1000 | 1.50 | 0.0100 | 0.0550 |" in text
    assert "| simulation_gene | point | 2 | 0.3000 | 0.2000 | 1.50 | 0.0200 | 0.0550 |" in text
    assert "| simulation_gene | point | mean | 0.2250 | 0.1500 | **1.50** |" in text
    assert "| simulation_gene | point | - | 2 | 0.980 ± 0.010 | x2^2 / (1 + x2^2) |" in text
