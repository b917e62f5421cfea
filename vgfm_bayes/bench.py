"""Benchmark suite: data sets x heads x seeds, each fit evaluated per DESIGN 4.

Every fit runs in its own spawned process so that its peak memory (max RSS) is its own.
Writes bench.json (every run) and bench.md (mean +- sd over seeds, published numbers beside).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .data import DATASETS

QUICK = {"warmup_steps": 30, "joint_steps": 2, "joint_particles": 128, "joint_targets": 128}


def _one(job: dict) -> dict:
    """Fit + evaluate one (dataset, head, seed, hold_out) in this (child) process."""
    from .estimator import VGFM

    t = time.perf_counter()
    overrides = {"seed": job["seed"], "device": job["device"], **job.get("overrides", {})}
    model = VGFM.from_zoo(job["head"], **overrides).fit(
        job["dataset"], hold_out=job.get("hold_out"), progress=False
    )
    fit_s = time.perf_counter() - t
    metrics = model.evaluate()
    metrics["seconds"] = {**model.history.seconds, "fit_total": fit_s}
    metrics["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**{k: v for k, v in job.items() if k != "overrides"}, "metrics": metrics}


def _mean_sd(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.4f} ± {v.std():.4f}" if len(v) > 1 else f"{v.mean():.4f}"


def summarise(runs: list[dict]) -> str:
    """Markdown: one row per (dataset, head, hold_out) with mean ± sd over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["head"], r.get("hold_out")), []).append(r["metrics"])
    lines = [
        "| data | head | held out | seeds | W1 mean | RME mean | W1 per time | fit s | peak MB "
        "| published VGFM W1 / RME |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (ds, head, ho), ms in sorted(groups.items(), key=lambda kv: str(kv[0])):
        per_time = np.mean([m["w1"] for m in ms], axis=0)
        ref = DATASETS[ds].reference if ds in DATASETS else {}
        pub = f"{ref['w1']:.3f} / {ref['rme']:.3f}" if ref else ""
        lines.append(
            f"| {ds} | {head} | {ho if ho is not None else '-'} | {len(ms)} "
            f"| {_mean_sd([m['w1_mean'] for m in ms])} | {_mean_sd([m['rme_mean'] for m in ms])} "
            f"| {' / '.join(f'{w:.4f}' for w in per_time)} "
            f"| {np.mean([m['seconds']['fit_total'] for m in ms]):.1f} "
            f"| {np.max([m['peak_rss_mb'] for m in ms]):.0f} | {pub} |"
        )
    return "\n".join(lines)


def run_bench(
    out: str | Path = "bench_out",
    datasets: list[str] | None = None,
    heads: list[str] | None = None,
    seeds: list[int] = (0, 1, 2),
    hold_outs: list[int | None] = (None,),
    quick: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> list[dict]:
    """Run the grid, write bench.json / bench.md under ``out``, print the table.

    The zoo cards are written from these files by benchmarks/write_cards.py.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    datasets = datasets or ["simulation_gene", "dyngen", "mouse_hematopoiesis"]
    heads = heads or ["point"]
    jobs = [
        {
            "dataset": d,
            "head": h,
            "seed": s,
            "hold_out": ho,
            "device": device,
            "overrides": QUICK if quick else {},
        }
        for d in datasets
        for h in heads
        for ho in hold_outs
        for s in seeds
    ]
    runs = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        for r in tqdm(pool.imap(_one, jobs), total=len(jobs), desc="bench", disable=not progress):
            runs.append(r)
            (out / "bench.json").write_text(json.dumps(runs, indent=1))
    table = summarise(runs)
    (out / "bench.md").write_text(table + "\n")
    print(table)
    return runs
