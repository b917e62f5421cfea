"""Benchmark of the zoo's heads: calibration on a ground truth, leave-one-out, wall time.

    python benchmarks/heads.py [--out bench_out/heads] [--seeds 0 1 2] [--warmup-steps N]
                               [--joint-steps N] [--heads point ensemble ...] [--parts sim loo]

A fixed grid of the bench harness (vgfm_bayes.bench, the same fits and scores as
`vgfm-bayes bench`), run job by job in this process and resumable:

sim : the ground-truth simulator ("simulator": vgfm_bayes.data.simulate_populations, 4
      populations with growth rates -0.4..0.6, times 0..3) per seed: Spearman(posterior mean
      growth, true growth), coverage of the true growth by the 90% central intervals, CRPS, mean
      interval width; growth evaluated at every observed cell at its own time. Fitted with the
      estimator's defaults, as any user file (a simulator's truth is for scoring, never for
      choosing a setting: DESIGN 3.1).
loo : leave-one-out on simulation_gene and dyngen (hold out 1, 2, 3; seed 0): W1 and RME at the
      held-out time, whether the 90% predictive interval of the total mass covers the observed
      mass, and the fit's wall time.

Every fit uses the zoo config of its head; --warmup-steps / --joint-steps override the step
counts for every head alike. Run records (bench.json's format) go to OUT/results.jsonl, one line
per fit, appended, so an interrupted run resumes (fits already there are skipped); the bench
tables to OUT/tables.md. `python benchmarks/write_cards.py --results OUT/results.jsonl` writes
the zoo's cards from them.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from vgfm_bayes.bench import make_jobs, run_job, summarise

HEADS = ["point", "ensemble", "last_layer"]
LOO_DATA, LOO_HOLD_OUTS = ["simulation_gene", "dyngen"], [1, 2, 3]


def _overrides(args) -> dict:
    out = {}
    if args.warmup_steps is not None:
        out["warmup_steps"] = args.warmup_steps
    if args.joint_steps is not None:
        out["joint_steps"] = args.joint_steps
    return out


def jobs(args) -> list[dict]:
    """The grid of the asked parts, as bench jobs."""
    common = dict(quick=False, device="cpu", samples=args.samples, overrides=_overrides(args))
    out = []
    if "sim" in args.parts:
        out += make_jobs(["simulator"], args.heads, args.seeds, [None], **common)
    if "loo" in args.parts:
        out += make_jobs(LOO_DATA, args.heads, [0], LOO_HOLD_OUTS, **common)
    return out


def _key(r: dict) -> tuple:
    return (r["dataset"], r["head"], r["seed"], r.get("hold_out"))


def tables(runs: list[dict], args) -> str:
    steps = (
        f"Steps: warm-up {args.warmup_steps or 'zoo'}, joint {args.joint_steps or 'zoo'}; "
        f"{args.samples} posterior draws; torch threads {torch.get_num_threads()}."
    )
    return steps + "\n\n" + summarise(runs, level=3)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench_out/heads")
    p.add_argument("--heads", nargs="+", default=HEADS, choices=HEADS)
    p.add_argument("--parts", nargs="+", default=["sim", "loo"], choices=["sim", "loo"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--warmup-steps", type=int, default=None)
    p.add_argument("--joint-steps", type=int, default=None)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--tables-only", action="store_true", help="only rewrite the tables")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "results.jsonl"
    lines = store.read_text().splitlines() if store.exists() else []
    # records with a "part" key are of the older per-head format: not resumed, not tabulated
    runs = [r for r in map(json.loads, filter(str.strip, lines)) if "part" not in r]
    done = {_key(r) for r in runs}
    for job in [] if args.tables_only else jobs(args):
        if _key(job) in done:
            continue
        t = time.perf_counter()
        run = run_job(job, isolated=False)
        run["steps"] = {"warmup": args.warmup_steps, "joint": args.joint_steps}
        runs.append(run)
        with store.open("a") as fh:
            fh.write(json.dumps(run) + "\n")
        print(f"{_key(job)}: {time.perf_counter() - t:.0f} s", flush=True)
        (out / "tables.md").write_text(tables(runs, args))
    text = tables(runs, args)
    (out / "tables.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
