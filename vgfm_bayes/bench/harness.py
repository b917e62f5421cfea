"""The benchmark harness: data sets x heads x hold-outs x seeds, each fit evaluated per DESIGN 4.

``vgfm-bayes bench`` (cli.py) and the scripts in benchmarks/ run their fits through here
(:func:`make_jobs`, :func:`run_job`, :func:`run_bench`); the tables are in bench/tables.py.

Data sets: the bundled files by name (``DATASETS``: simulation_gene, dyngen,
mouse_hematopoiesis, gaussian_{10,20,50,100}d), any generated ``gaussian_<D>d``, the
ground-truth simulators ``simulator`` (data/simulate.py's four separated populations) and
``simulator_reweight`` (growth reweighting cells inside one blob), generated with the run's
seed (so seeds vary the data as well as the fit), or a CSV path; ``all`` = every bundled file
and both simulators.
Simulated data are user data: their fits get no setting that a user file would not get (the
truth is for scoring only, DESIGN 3.1).

Every fit runs in its own spawned process, so its peak memory (max RSS) is its own and a crash
(e.g. killed for memory) costs that job only. Under ``torchrun`` the job list is shared out over
the ranks (infer/distributed.py); rank 0 gathers the runs and writes the same files, in the same
job order, as a single process would. Writes bench.json (every run) and bench.md (the tables of
:func:`summarise`).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..data import (
    DATASETS,
    DataError,
    GrowthShape,
    TimeCourse,
    gaussian_true_growth,
    growth_shape,
    load_data,
    simulate,
)
from ..data.datasets import GAUSSIAN_PATTERN
from ..infer import distributed as dist
from .tables import LEVEL, SIMULATORS, summarise

log = logging.getLogger(__name__)

QUICK = {"warmup_steps": 30, "joint_steps": 2, "joint_particles": 128, "joint_targets": 128}
DEFAULT_DATASETS = ["simulation_gene", "dyngen", "mouse_hematopoiesis"]
SIMULATOR = "simulator"  # the separated kind; SIMULATORS: every kind's data set name
# how long a rank that finished its share waits for the others at the gather
GATHER_TIMEOUT = timedelta(days=2)


def expand_datasets(names: list[str] | None) -> list[str]:
    """Data set names with "all" expanded (every bundled file and the simulators), no
    repeats."""
    out: list[str] = []
    for name in names or DEFAULT_DATASETS:
        for n in [*DATASETS, *SIMULATORS] if name == "all" else [name]:
            if n not in out:
                out.append(n)
    return out


@dataclass(frozen=True)
class Task:
    """A benchmark data set as one fit sees it.

    truth : true growth rate of every observed cell, one array (n_k,) per snapshot, or None.
    truth_source : what the truth is, for the tables.
    shape : the true growth known up to an affine map (the gene data's), or None.

    A task carries no fit settings: every data set is fitted with the estimator's defaults
    (a bundled file's own SROT settings, generic ones for anything else, the simulators
    included) and the bench's --config / --quick overrides alike.
    """

    data: TimeCourse
    truth: tuple[np.ndarray, ...] | None = None
    truth_source: str | None = None
    shape: GrowthShape | None = None


def bench_task(name: str, seed: int) -> Task:
    """The data (and the truth, where known) behind a benchmark data set name."""
    if name in SIMULATORS:
        kind = SIMULATORS[name]
        gt = simulate(kind, seed=seed)  # named e.g. "populations_seed0": not a bundled name
        source = {"separated": "simulator (per population)", "reweight": "simulator (per cell)"}
        return Task(gt.data, gt.growth, source[kind])
    data = load_data(name)
    if GAUSSIAN_PATTERN.fullmatch(name):
        # the shipped files follow data/gaussian.py's design (upper cluster 100 -> 1,000 cells)
        truth = tuple(gaussian_true_growth(x, data.times) for x in data.x)
        return Task(data, truth, "Gaussian mixture (per cluster)")
    return Task(data, shape=growth_shape(data.name))


def evaluate(model, samples: int) -> dict:
    """``model.evaluate(samples=...)`` on the model's own data (DESIGN 4)."""
    return model.evaluate(samples=samples)


def posterior_mean_params(model) -> dict | None:
    """The posterior-mean network weights as one draw (leading dim 1): the guide's median
    (point: the estimate; last_layer / mean_field: the Normal guide's loc, the body's MAP).
    None for an ensemble: its members' mean weights are no meaningful network."""
    import pyro
    import torch

    post = model.posterior
    if post.is_ensemble:
        return None
    with pyro.settings.context(module_local_params=True), torch.no_grad():
        median = post.guide.median()
    return post.model.unpack(
        {k: v.unsqueeze(0) for k, v in median.items() if k in post.model.blocks}
    )


def evaluate_posterior_mean(model) -> dict | None:
    """W1 and RME per time of the trajectories of the posterior-mean weights (None where the
    head has none): {"w1", "w1_mean", "rme", "rme_mean", "params"} (+ "w1_held_out")."""
    from ..metrics import score

    params = posterior_mean_params(model)
    if params is None:
        return None
    data = model.data
    traj = model.simulate(x0=data.x[0], times=data.times, params=params)
    m = score(traj, data, held_out=model.hold_out)
    keys = ("w1", "w1_mean", "rme", "rme_mean", "w1_held_out", "rme_held_out")
    return {**{k: m[k] for k in keys if k in m}, "params": "guide median"}


def _public(job: dict) -> dict:
    """What a run record keeps of its job (not the per-rank device or the config overrides)."""
    keys = ("dataset", "head", "seed", "hold_out", "device", "quick", "samples")
    return {k: job[k] for k in keys}


def _score(job: dict) -> dict:
    """Fit, evaluate and (where a truth exists) calibrate one job, in this process."""
    import torch

    from ..estimator import VGFM
    from ..metrics import growth_calibration, sampling_floor

    task = bench_task(job["dataset"], job["seed"])
    t = time.perf_counter()
    model = VGFM.from_zoo(
        job["head"], **{**job["overrides"], "seed": job["seed"], "device": job["run_device"]}
    )
    model.fit(task.data, hold_out=job["hold_out"], progress=False)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    metrics = evaluate(model, job["samples"])
    evaluate_s = time.perf_counter() - t
    t = time.perf_counter()
    metrics["posterior_mean"] = evaluate_posterior_mean(model)
    metrics["seconds"] = {
        **model.history.seconds,
        "fit_total": fit_s,
        "evaluate": evaluate_s,
        "posterior_mean": time.perf_counter() - t,
    }
    if job["hold_out"] is not None:
        k = job["hold_out"]
        metrics["w1_floor_held_out"] = sampling_floor(task.data.x[k])
    if task.truth is not None or task.shape is not None:
        params = model.posterior.draw(job["samples"])
        draws = [  # every observed cell at its own time
            model.growth_draws(x, tk, params=params)
            for x, tk in zip(task.data.x, task.data.times, strict=True)
        ]
        metrics["growth_shape"] = _growth_shape(task, np.concatenate(draws, 1).mean(0))
    if task.truth is not None:
        cal = growth_calibration(
            np.concatenate(draws, 1),
            np.concatenate(task.truth),
            LEVEL,
            # members' / mixture components' interval: the Student-t one for one more of them
            groups=model.posterior.draw_groups(len(draws[0])),
        )
        metrics["calibration"] = {**cal, "truth": task.truth_source, "draws": len(draws[0])}
    metrics["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if model.device.type == "cuda":
        metrics["peak_gpu_mb"] = torch.cuda.max_memory_allocated(model.device) / 2**20
    return {**_public(job), "metrics": metrics}


def _growth_shape(task: Task, mean: np.ndarray) -> dict:
    """Pearson correlation of the posterior-mean growth at every observed cell with the truth
    (the simulator's rates, or a known shape such as the gene data's x2^2 / (1 + x2^2))."""
    if task.shape is not None:
        truth, what = np.concatenate([task.shape.shape(x) for x in task.data.x]), task.shape.formula
    else:
        truth, what = np.concatenate(task.truth), task.truth_source
    return {"pearson": float(np.corrcoef(mean, truth)[0, 1]), "truth": what, "cells": len(mean)}


def _one(job: dict) -> dict:
    """One job in a child process; a failure is recorded, not raised, so the grid goes on."""
    try:
        return _score(job)
    except Exception as err:  # SROT / training failures of one fit must not lose the others
        return {**_public(job), "error": f"{type(err).__name__}: {err}"}


def _run_isolated(job: dict) -> dict:
    """Run ``_one`` in a fresh spawned process (its own peak memory, its own crash)."""
    try:
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            return pool.submit(_one, job).result()
    except BrokenProcessPool:
        return {**_public(job), "error": "the fit's process died (killed, e.g. out of memory?)"}


def run_job(job: dict, *, isolated: bool = True) -> dict:
    """One job of :func:`make_jobs`: fit, evaluate and (with a truth) calibrate; returns its run
    record (bench.json's format), with "error" instead of "metrics" when the fit failed.

    isolated : in its own spawned process (its own peak memory; a crash costs this job only),
        else in this one.
    """
    job = {"run_device": job["device"], **job}
    return _run_isolated(job) if isolated else _one(job)


def make_jobs(
    datasets: list[str],
    heads: list[str],
    seeds: list[int],
    hold_outs: list[int | None],
    *,
    quick: bool,
    device: str,
    samples: int,
    overrides: dict,
) -> list[dict]:
    """The job grid (data set, head, hold-out, seed; seeds innermost), checked before any fit:
    unknown data or heads and bad settings fail here; a hold-out a data set cannot have (it has
    too few time points) is skipped with a warning."""
    from ..estimator import VGFM
    from ..infer import ConfigError

    grid_keys = sorted({"head", "seed", "device"} & set(overrides))
    if grid_keys:
        raise ConfigError(
            f"bench: set {', '.join(grid_keys)} with --heads / --seeds / --device, "
            "not in the config"
        )
    for head in heads:
        VGFM.from_zoo(head, **{**overrides, "device": device})  # checks head names and settings
    jobs = []
    for d in datasets:
        n_times = bench_task(d, seeds[0]).data.n_times
        for h in heads:
            for ho in hold_outs:
                if ho is not None and not (1 <= ho < n_times and n_times >= 3):
                    log.warning(
                        "bench: skipping %s with hold-out %s (%d time points)", d, ho, n_times
                    )
                    continue
                for s in seeds:
                    jobs.append(
                        {
                            "dataset": d,
                            "head": h,
                            "seed": s,
                            "hold_out": ho,
                            "device": device,
                            "quick": quick,
                            "samples": samples,
                            "overrides": overrides,
                        }
                    )
    if not jobs:
        raise DataError("bench: no job left (every hold-out was out of range for its data)")
    return jobs


def run_bench(
    out: str | Path = "bench_out",
    datasets: list[str] | None = None,
    heads: list[str] | None = None,
    seeds: list[int] = (0, 1, 2),
    hold_outs: list[int | None] = (None,),
    quick: bool = False,
    device: str = "cpu",
    progress: bool = True,
    samples: int | None = None,
    config: dict[str, Any] | None = None,
) -> list[dict]:
    """Run the grid, write bench.json / bench.md under ``out``, print the tables.

    Parameters
    ----------
    datasets : names (see the module docstring; "all" expands), default the three with
        published numbers.
    samples : posterior draws for evaluation and calibration (default 100, quick 20).
    config : FitConfig overrides for every fit, applied last (after the zoo config and
        ``quick``); every data set, the simulators included, gets the same.

    Under torchrun every rank runs its share and returns [] except rank 0, which returns all
    runs. The zoo cards are written from these files by benchmarks/write_cards.py.
    """
    out = Path(out)
    samples = samples or (20 if quick else 100)
    overrides = {**(QUICK if quick else {}), **(config or {})}
    jobs = make_jobs(
        expand_datasets(datasets),
        list(heads or ["point"]),
        list(seeds),
        list(hold_outs),
        quick=quick,
        device=device,
        samples=samples,
        overrides=overrides,
    )
    with dist.process_group(device, GATHER_TIMEOUT) as several:
        rank = dist.rank()
        mine = dist.shard(jobs)
        partial = out / (f"bench.rank{rank}.json" if several else "bench.json")
        out.mkdir(parents=True, exist_ok=True)
        runs: list[dict] = []
        desc = f"bench rank {rank}/{dist.world_size()}" if several else "bench"
        bar = tqdm(mine, desc=desc, position=rank, disable=not progress)
        for job in bar:
            bar.set_postfix_str(f"{job['dataset']} {job['head']} seed {job['seed']}")
            runs.append(run_job({**job, "run_device": dist.rank_device(device)}))
            partial.write_text(json.dumps(runs, indent=1))  # inspectable while running
        parts = dist.gather_to_rank0(runs)
    if parts is None:
        return []
    runs = dist.unshard(parts)
    (out / "bench.json").write_text(json.dumps(runs, indent=1))
    for r in range(len(parts) if several else 0):
        (out / f"bench.rank{r}.json").unlink(missing_ok=True)
    write_tables(out, runs)
    failed = [r for r in runs if "error" in r]
    if failed:
        log.warning("bench: %d of %d runs failed (see bench.md)", len(failed), len(runs))
    return runs


def write_tables(out: str | Path, runs: list[dict]) -> str:
    """Write bench.md from runs (e.g. re-read from bench.json) and print it."""
    settings = sorted({(r.get("quick", False), r.get("samples")) for r in runs})
    head = [
        "# vgfm-bayes bench",
        "",
        f"{len(runs)} runs; "
        + "; ".join(f"quick: {q}, posterior draws: {s or 'not recorded'}" for q, s in settings)
        + ". Written by `vgfm-bayes bench`; W1 = exact EMD with Euclidean cost (DESIGN 4).",
        "",
        "",
    ]
    text = "\n".join(head) + summarise(runs)
    (Path(out) / "bench.md").write_text(text)
    print(text)
    return text
