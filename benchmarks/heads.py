"""Benchmark of the zoo's heads: calibration on a ground truth, leave-one-out, wall time.

    python benchmarks/heads.py [--out bench_out/heads] [--seeds 0 1 2] [--warmup-steps N]
                               [--joint-steps N] [--heads point ensemble ...] [--parts sim loo]

Parts
-----
sim : the ground-truth simulator (vgfm_bayes.data.simulate_populations, 4 populations with
      growth rates -0.4..0.6, times 0..3) per seed: Spearman(posterior mean growth, true growth),
      coverage of the true growth by the 90% central intervals, CRPS, mean interval width; growth
      evaluated at every observed cell at its own time. Fitted with the estimator's defaults,
      as any user file (a simulator's truth is for scoring, never for choosing a setting:
      DESIGN 3.1), the same as `vgfm-bayes bench --datasets simulator`.
loo : leave-one-out on simulation_gene and dyngen (hold out 1, 2, 3): W1 and RME at the
      held-out time, whether the 90% predictive interval of the total mass covers the observed
      mass, and the fit's wall time (SROT plans included) relative to the point head on the
      same task.

Every fit uses the zoo config of its head; --warmup-steps / --joint-steps override the step
counts for every head alike (the tables say which were used). Results go to OUT/results.jsonl
(one line per fit, appended, so an interrupted run can be resumed: fits already there are
skipped) and the tables to OUT/tables.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from vgfm_bayes import VGFM, datasets
from vgfm_bayes.data import simulate_populations
from vgfm_bayes.metrics import growth_calibration

HEADS = ["point", "ensemble", "last_layer", "mean_field"]
LOO = [("simulation_gene", k) for k in (1, 2, 3)] + [("dyngen", k) for k in (1, 2, 3)]


def _overrides(args) -> dict:
    out = {}
    if args.warmup_steps is not None:
        out["warmup_steps"] = args.warmup_steps
    if args.joint_steps is not None:
        out["joint_steps"] = args.joint_steps
    return out


def run_sim(head: str, seed: int, args) -> dict:
    gt = simulate_populations(seed=seed)
    t = time.perf_counter()
    model = VGFM.from_zoo(head, seed=seed, **_overrides(args))
    model.fit(gt.data, progress=False)
    seconds = time.perf_counter() - t
    params = model.posterior.draw(args.samples)
    draws, truth = [], []
    for k in range(gt.data.n_times):
        # through the model's user-unit API: the data are standardised internally
        draws.append(model.growth_draws(gt.data.x[k], gt.data.times[k], params=params))
        truth.append(gt.growth[k])
    members = model.posterior.members
    cal = growth_calibration(np.concatenate(draws, 1), np.concatenate(truth), members=members)
    return {"part": "sim", "head": head, "seed": seed, "seconds": seconds, **cal}


def run_loo(head: str, name: str, k: int, args) -> dict:
    data = datasets.load(name)
    t = time.perf_counter()
    model = VGFM.from_zoo(head, seed=0, **_overrides(args)).fit(data, hold_out=k, progress=False)
    seconds = time.perf_counter() - t
    ev = model.evaluate(samples=args.samples)
    return {
        "part": "loo",
        "head": head,
        "data": name,
        "hold_out": k,
        "seconds": seconds,
        "srot_seconds": model.history.seconds.get("srot"),
        "w1": ev["w1_held_out"],
        "rme": ev["rme_held_out"],
        "covered": ev["mass_covered_held_out"],
        "mass_q05": ev["mass_q05"][k - 1],
        "mass_q95": ev["mass_q95"][k - 1],
        "mass_observed": ev["mass_observed"][k - 1],
        "w1_mean": ev["w1_mean"],
        "rme_mean": ev["rme_mean"],
    }


def _key(r: dict) -> tuple:
    return (r["part"], r["head"], r.get("seed"), r.get("data"), r.get("hold_out"))


def tables(results: list[dict], args) -> str:
    lines = [
        f"Steps: warm-up {args.warmup_steps or 'zoo'}, joint {args.joint_steps or 'zoo'}; "
        f"{args.samples} posterior draws; torch threads {torch.get_num_threads()}.",
        "",
        "### Ground-truth simulator (growth per cell; mean (sd) over seeds)",
        "",
        "| head | seeds | Spearman | 90% coverage | CRPS | interval width | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for head in args.heads:
        rs = [r for r in results if r["part"] == "sim" and r["head"] == head]
        if not rs:
            continue

        def ms(key, rs=rs):
            v = np.array([r[key] for r in rs], dtype=float)
            return f"{v.mean():.3f} ({v.std():.3f})"

        lines.append(
            f"| {head} | {len(rs)} | {ms('spearman')} | {ms('coverage')} | {ms('crps')} | "
            f"{ms('mean_width')} | {np.mean([r['seconds'] for r in rs]):.0f} |"
        )
    lines += [
        "",
        "### Leave-one-out (held-out time point)",
        "",
        "| data | held out | head | W1 | RME | mass 90% interval | covered | fit s | x point |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    point_time = {
        (r["data"], r["hold_out"]): r["seconds"]
        for r in results
        if r["part"] == "loo" and r["head"] == "point"
    }
    for name, k in LOO:
        for head in args.heads:
            rs = [
                r
                for r in results
                if r["part"] == "loo"
                and r["head"] == head
                and r["data"] == name
                and r["hold_out"] == k
            ]
            if not rs:
                continue
            r = rs[-1]
            rel = r["seconds"] / point_time[(name, k)] if (name, k) in point_time else float("nan")
            lines.append(
                f"| {name} | {k} | {head} | {r['w1']:.3f} | {r['rme']:.3f} | "
                f"[{r['mass_q05']:.3f}, {r['mass_q95']:.3f}] vs {r['mass_observed']:.3f} | "
                f"{'yes' if r['covered'] else 'no'} | {r['seconds']:.0f} | {rel:.2f} |"
            )
    lines += ["", "### Per head over the leave-one-out tasks", ""]
    lines += [
        "| head | data | mean W1 | mean RME | covered | fit s / point's |",
        "|---|---|---|---|---|---|",
    ]
    for head in args.heads:
        for name in ("simulation_gene", "dyngen"):
            rs = [
                r for r in results if r["part"] == "loo" and r["head"] == head and r["data"] == name
            ]
            if not rs:
                continue
            rel = [
                r["seconds"] / point_time[(name, r["hold_out"])]
                for r in rs
                if (name, r["hold_out"]) in point_time
            ]
            lines.append(
                f"| {head} | {name} | {np.mean([r['w1'] for r in rs]):.3f} | "
                f"{np.mean([r['rme'] for r in rs]):.3f} | "
                f"{sum(r['covered'] for r in rs)}/{len(rs)} | "
                f"{np.mean(rel) if rel else float('nan'):.2f} |"
            )
    return "\n".join(lines) + "\n"


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
    results = (
        [json.loads(line) for line in store.read_text().splitlines()] if store.exists() else []
    )
    done = {_key(r) for r in results}
    jobs = []
    if not args.tables_only:
        if "sim" in args.parts:
            jobs += [("sim", h, s) for s in args.seeds for h in args.heads]
        if "loo" in args.parts:
            jobs += [("loo", h, (n, k)) for n, k in LOO for h in args.heads]
    for part, head, what in jobs:
        if part == "sim":
            key = ("sim", head, what, None, None)
        else:
            key = ("loo", head, None, *what)
        if key in done:
            continue
        t = time.perf_counter()
        r = run_sim(head, what, args) if part == "sim" else run_loo(head, *what, args)
        r["steps"] = {"warmup": args.warmup_steps, "joint": args.joint_steps}
        results.append(r)
        with store.open("a") as fh:
            fh.write(json.dumps(r) + "\n")
        print(f"{part} {head} {what}: {time.perf_counter() - t:.0f} s", flush=True)
        (out / "tables.md").write_text(tables(results, args))
    text = tables(results, args)
    (out / "tables.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
