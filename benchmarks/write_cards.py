"""Write the zoo's cards (models/<head>/README.md) from measured benchmark results.

    python benchmarks/write_cards.py [--results benchmarks/results/heads/results.jsonl]
                                     [--bench benchmarks/results/bench/bench.json]

Each card = the head's hand-written about.md + its config + the rows of the two benchmark
tables for that head: `vgfm-bayes bench` (published data sets) and benchmarks/heads.py
(calibration on the ground-truth simulator, leave-one-out). No number is typed by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vgfm_bayes.bench import summarise
from vgfm_bayes.zoo import available

ROOT = Path(__file__).resolve().parents[1]


def _fmt(v: list[float]) -> str:
    a = np.asarray(v, dtype=float)
    return f"{a.mean():.3f} ± {a.std():.3f}" if len(a) > 1 else f"{a.mean():.3f}"


def card(head: str, results: list[dict], source: str, bench: list[dict]) -> str:
    folder = ROOT / "models" / head
    lines = [(folder / "about.md").read_text().rstrip(), ""]
    lines += ["## Config", "", "```toml", (folder / "config.toml").read_text().rstrip(), "```", ""]
    mine = [r for r in bench if r["head"] == head]
    if mine:
        lines += [
            "## Published benchmark data sets",
            "",
            "From `vgfm-bayes bench` (benchmarks/results/bench/); means ± sd over seeds, W1 and "
            "RME averaged over the evaluated time points, the published VGFM numbers beside.",
            "",
            summarise(mine),
            "",
        ]
    lines += [
        "## Measured",
        "",
        f"Produced by `python benchmarks/heads.py --out benchmarks/results/heads --threads 1` "
        f"and written here by `python benchmarks/write_cards.py` from `{source}` (2 shared "
        "CPU cores, torch 1 thread; other jobs ran on the machine, so wall times are noisy).",
        "",
    ]
    sim = [r for r in results if r["part"] == "sim" and r["head"] == head]
    if sim:
        lines += [
            "Ground-truth simulator (4 populations, growth -0.4..0.6, times 0..3; SROT eps 0.01 "
            "normalised, tau 0.1); growth at every observed cell; mean ± sd over seeds "
            f"{sorted(r['seed'] for r in sim)}:",
            "",
            "| Spearman(mean, truth) | 90% coverage | CRPS | interval width | fit s |",
            "|---|---|---|---|---|",
            f"| {_fmt([r['spearman'] for r in sim])} | {_fmt([r['coverage'] for r in sim])} | "
            f"{_fmt([r['crps'] for r in sim])} | {_fmt([r['mean_width'] for r in sim])} | "
            f"{np.mean([r['seconds'] for r in sim]):.0f} |",
            "",
        ]
    loo = [r for r in results if r["part"] == "loo" and r["head"] == head]
    point = {
        (r["data"], r["hold_out"]): r["seconds"]
        for r in results
        if r["part"] == "loo" and r["head"] == "point"
    }
    if loo:
        lines += [
            "Leave-one-out (held-out time point):",
            "",
            "| data | held out | W1 | RME | 90% mass interval | covers | fit s | / point |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in loo:
            rel = r["seconds"] / point.get((r["data"], r["hold_out"]), float("nan"))
            lines.append(
                f"| {r['data']} | {r['hold_out']} | {r['w1']:.3f} | {r['rme']:.3f} | "
                f"[{r['mass_q05']:.3f}, {r['mass_q95']:.3f}] vs {r['mass_observed']:.3f} | "
                f"{'yes' if r['covered'] else 'no'} | {r['seconds']:.0f} | {rel:.2f} |"
            )
        lines.append("")
    if not sim and not loo:
        lines += ["Not measured yet: run the benchmark.", ""]
    else:
        missing = []
        if len(sim) < 3:
            missing.append(f"simulator seeds measured: {len(sim)} of 3")
        if len(loo) < 6:
            missing.append(f"leave-one-out tasks measured: {len(loo)} of 6")
        if missing:
            lines += [
                "Incomplete: " + "; ".join(missing) + " (rerun the benchmark; it resumes).",
                "",
            ]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="benchmarks/results/heads/results.jsonl")
    p.add_argument("--bench", default="benchmarks/results/bench/bench.json")
    args = p.parse_args(argv)
    path = Path(args.results)
    results = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    bench = json.loads(Path(args.bench).read_text()) if Path(args.bench).is_file() else []
    for head in available():
        out = ROOT / "models" / head / "README.md"
        out.write_text(card(head, results, args.results, bench))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
