"""Benchmark suite: data sets x heads x hold-outs x seeds, each fit evaluated per DESIGN 4.

Data sets: the bundled files by name (``DATASETS``: simulation_gene, dyngen,
mouse_hematopoiesis, gaussian_{10,20,50,100}d), any generated ``gaussian_<D>d``, ``simulator``
(data/simulate.py's four populations, generated with the run's seed, so seeds vary the data as
well as the fit), or a CSV path; ``all`` = every bundled file and the simulator.

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

from .data import (
    DATASETS,
    DataError,
    TimeCourse,
    gaussian_true_growth,
    load_data,
    reference,
    simulate_populations,
)
from .data.datasets import GAUSSIAN_PATTERN
from .infer import distributed as dist

log = logging.getLogger(__name__)

QUICK = {"warmup_steps": 30, "joint_steps": 2, "joint_particles": 128, "joint_targets": 128}
DEFAULT_DATASETS = ["simulation_gene", "dyngen", "mouse_hematopoiesis"]
SIMULATOR = "simulator"
# SROT on the simulator: tau 0.1 on the max-normalised cost, the regime where SROT growth targets
# track the true growth (DESIGN 3); benchmarks/heads.py uses the same.
SIMULATOR_SROT = {"eps": 0.01, "tau": 0.1, "normalize_cost": True}
# how long a rank that finished its share waits for the others at the gather
GATHER_TIMEOUT = timedelta(days=2)
LEVEL = 0.9  # central predictive / credible intervals


def expand_datasets(names: list[str] | None) -> list[str]:
    """Data set names with "all" expanded (every bundled file and the simulator), no repeats."""
    out: list[str] = []
    for name in names or DEFAULT_DATASETS:
        for n in [*DATASETS, SIMULATOR] if name == "all" else [name]:
            if n not in out:
                out.append(n)
    return out


@dataclass(frozen=True)
class Task:
    """A benchmark data set as one fit sees it.

    truth : true growth rate of every observed cell, one array (n_k,) per snapshot, or None.
    srot : SROT settings for it (empty: the estimator's, from the bundled data set or generic).
    """

    data: TimeCourse
    truth: tuple[np.ndarray, ...] | None = None
    truth_source: str | None = None
    srot: dict | None = None


def bench_task(name: str, seed: int) -> Task:
    """The data (and the truth, where known) behind a benchmark data set name."""
    if name == SIMULATOR:
        gt = simulate_populations(seed=seed)
        return Task(gt.data, gt.growth, "simulator (per population)", SIMULATOR_SROT)
    data = load_data(name)
    if GAUSSIAN_PATTERN.fullmatch(name):
        # the shipped files follow data/gaussian.py's design (upper cluster 100 -> 1,000 cells)
        truth = tuple(gaussian_true_growth(x, data.times) for x in data.x)
        return Task(data, truth, "Gaussian mixture (per cluster)")
    return Task(data)


def _public(job: dict) -> dict:
    """What a run record keeps of its job (not the per-rank device or the config overrides)."""
    keys = ("dataset", "head", "seed", "hold_out", "device", "quick", "samples")
    return {k: job[k] for k in keys}


def _score(job: dict) -> dict:
    """Fit, evaluate and (where a truth exists) calibrate one job, in this process."""
    import torch

    from .estimator import VGFM
    from .metrics import growth_calibration

    task = bench_task(job["dataset"], job["seed"])
    overrides = {**(task.srot or {}), **job["overrides"]}
    t = time.perf_counter()
    model = VGFM.from_zoo(
        job["head"], **{**overrides, "seed": job["seed"], "device": job["run_device"]}
    )
    model.fit(task.data, hold_out=job["hold_out"], progress=False)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    metrics = model.evaluate(samples=job["samples"])
    metrics["seconds"] = {
        **model.history.seconds,
        "fit_total": fit_s,
        "evaluate": time.perf_counter() - t,
    }
    if task.truth is not None:
        params = model.posterior.draw(job["samples"])
        draws = [  # every observed cell at its own time
            model.growth_draws(x, tk, params=params)
            for x, tk in zip(task.data.x, task.data.times, strict=True)
        ]
        cal = growth_calibration(
            np.concatenate(draws, 1),
            np.concatenate(task.truth),
            LEVEL,
            members=model.posterior.members,  # an ensemble's interval is its Student-t one
        )
        metrics["calibration"] = {**cal, "truth": task.truth_source, "draws": len(draws[0])}
    metrics["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if model.device.type == "cuda":
        metrics["peak_gpu_mb"] = torch.cuda.max_memory_allocated(model.device) / 2**20
    return {**_public(job), "metrics": metrics}


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
    from .estimator import VGFM
    from .infer import ConfigError

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
    config : FitConfig overrides for every fit, applied last (after the zoo config, the
        simulator's SROT settings and ``quick``).

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
            runs.append(_run_isolated({**job, "run_device": dist.rank_device(device)}))
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


# ----------------------------------------------------------------------------- tables
def _mean_sd(values, digits: int = 4) -> str:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if len(v) == 0:
        return "–"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


def _mean(values, digits: int = 1) -> str:
    v = [x for x in values if x is not None]
    return f"{np.mean(v):.{digits}f}" if v else "–"


def _groups(runs: list[dict]) -> dict[tuple, list[dict]]:
    """Successful runs by (data set, head, hold-out), in the order first seen (the job order)."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        if "metrics" in r:
            groups.setdefault((r["dataset"], r["head"], r.get("hold_out")), []).append(r)
    return groups


def _ho(ho) -> str:
    return "-" if ho is None else str(ho)


def _per_time(dataset: str, groups: dict[tuple, list[dict]], h: str) -> list[str]:
    keys = [k for k in groups if k[0] == dataset]
    times = groups[keys[0]][0]["metrics"]["times"]
    cols = [f"W1 t={t:g}" for t in times] + ["W1 mean"]
    cols += [f"RME t={t:g}" for t in times] + ["RME mean"]
    lines = [
        f"{h}# {dataset}",
        "",
        "| head | held out | seeds | " + " | ".join(cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    ref = reference(dataset)
    if ref:

        def pub(key):
            per = ref.get(f"{key}_per_time") or [None] * len(times)
            return [f"{v:g}" if v is not None else "" for v in per] + [f"{ref[key]:g}"]

        lines.append("| VGFM (published) | - | - | " + " | ".join(pub("w1") + pub("rme")) + " |")
    for key in keys:
        ms = [r["metrics"] for r in groups[key]]
        cells = [_mean_sd([m["w1"][i] for m in ms]) for i in range(len(times))]
        cells.append(_mean_sd([m["w1_mean"] for m in ms]))
        cells += [_mean_sd([m["rme"][i] for m in ms]) for i in range(len(times))]
        cells.append(_mean_sd([m["rme_mean"] for m in ms]))
        lines.append(f"| {key[1]} | {_ho(key[2])} | {len(ms)} | " + " | ".join(cells) + " |")
    return lines + [""]


def summarise(runs: list[dict], level: int = 2) -> str:
    """Markdown tables of the runs, mean ± sd over seeds, headings at ``level`` (2: "##").

    W1 and RME per time point and mean, one table per data set with the published VGFM
    numbers as a row; wall time per phase and peak memory; leave-one-out (held-out W1 / RME and
    whether the 90% predictive interval of the total mass covers the observed mass); and, where
    the true growth is known, calibration of the growth posterior at every observed cell.
    """
    h = "#" * level
    groups = _groups(runs)
    lines = [
        f"{h} W1 and RME per time point",
        "",
        "Mean ± sd over seeds; rows with a held-out time are scored at every time (the held-out "
        "one included).",
        "",
    ]
    datasets = list(dict.fromkeys(k[0] for k in groups))
    for d in datasets:
        lines += _per_time(d, groups, h)
    gpu = any("peak_gpu_mb" in r["metrics"] for rs in groups.values() for r in rs)
    lines += [
        f"{h} Wall time and memory",
        "",
        "Seconds per phase (mean over seeds): SROT plans, warm-up, joint, the whole fit, "
        "evaluation; peak resident memory of the fit's process (max over seeds)"
        + ("; peak GPU memory allocated by torch." if gpu else "."),
        "",
        "| data | head | held out | seeds | SROT s | warm-up s | joint s | fit total s "
        "| evaluate s | peak RSS MB |" + (" peak GPU MB |" if gpu else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if gpu else ""),
    ]
    for (d, head, ho), rs in groups.items():
        sec = [r["metrics"].get("seconds", {}) for r in rs]
        row = (
            f"| {d} | {head} | {_ho(ho)} | {len(rs)} | {_mean(s.get('srot') for s in sec)} "
            f"| {_mean(s.get('warmup') for s in sec)} | {_mean(s.get('joint') for s in sec)} "
            f"| {_mean_sd([s.get('fit_total') for s in sec], 1)} "
            f"| {_mean(s.get('evaluate') for s in sec)} "
            f"| {max(r['metrics'].get('peak_rss_mb', 0) for r in rs):.0f} |"
        )
        if gpu:
            row += f" {max(r['metrics'].get('peak_gpu_mb', 0) for r in rs):.0f} |"
        lines.append(row)
    lines.append("")
    loo = {k: rs for k, rs in groups.items() if k[2] is not None}
    if loo:
        lines += [
            f"{h} Leave-one-out",
            "",
            "At the held-out time: W1, RME (mean ± sd over seeds), the 90% predictive interval of "
            "the total mass (quantiles 5% / 95% over posterior draws, mean over seeds) against the "
            "observed mass, and in how many seeds it covers it.",
            "",
            "| data | head | held out | seeds | W1 | RME | 90% mass interval vs observed "
            "| covered |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for (d, head, ho), rs in loo.items():
            ms = [r["metrics"] for r in rs]
            i = ho - 1  # metrics per time start at the second time point
            lo = np.mean([m["mass_q05"][i] for m in ms])
            hi = np.mean([m["mass_q95"][i] for m in ms])
            covered = sum(bool(m["mass_covered"][i]) for m in ms)
            lines.append(
                f"| {d} | {head} | {ho} | {len(ms)} | {_mean_sd([m['w1'][i] for m in ms])} "
                f"| {_mean_sd([m['rme'][i] for m in ms])} "
                f"| [{lo:.3f}, {hi:.3f}] vs {ms[0]['mass_observed'][i]:.3f} "
                f"| {covered}/{len(ms)} |"
            )
        lines.append("")
    cal = {k: rs for k, rs in groups.items() if "calibration" in rs[0]["metrics"]}
    if cal:
        lines += [
            f"{h} Calibration against the true growth",
            "",
            "Growth posterior at every observed cell at its own time against the true rate: "
            "Spearman(posterior mean, truth), coverage of the truth by the central 90% interval, "
            "CRPS and the interval's mean width (mean ± sd over seeds). A point estimate has "
            "zero-width intervals (coverage 0, CRPS = absolute error).",
            "",
            "| data | head | held out | seeds | Spearman | 90% coverage | CRPS | interval width "
            "| truth |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for (d, head, ho), rs in cal.items():
            cs = [r["metrics"]["calibration"] for r in rs]
            lines.append(
                f"| {d} | {head} | {_ho(ho)} | {len(cs)} "
                f"| {_mean_sd([c['spearman'] for c in cs], 3)} "
                f"| {_mean_sd([c['coverage'] for c in cs], 3)} "
                f"| {_mean_sd([c['crps'] for c in cs], 3)} "
                f"| {_mean_sd([c['mean_width'] for c in cs], 3)} | {cs[0].get('truth', '')} |"
            )
        lines.append("")
    failed = [r for r in runs if "error" in r]
    if failed:
        lines += [f"{h} Failed runs", ""]
        lines += [
            f"- {r['dataset']} {r['head']} hold-out {_ho(r.get('hold_out'))} seed {r['seed']}: "
            f"{r['error']}"
            for r in failed
        ]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
