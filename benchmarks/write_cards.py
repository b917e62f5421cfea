"""Write the zoo's cards (models/<head>/README.md) from measured benchmark results.

    python benchmarks/write_cards.py [--results benchmarks/results/heads/results.jsonl]

Each card = the head's fixed description (below) + the rows of the benchmark tables for that
head, produced by benchmarks/heads.py; no number in a card is typed by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

ABOUT = {
    "point": (
        "Deterministic VGFM: flat priors, fixed noise scales, AutoDelta guide (maximum "
        "likelihood). The reference point estimate; its posterior is one draw, so its "
        "intervals have zero width.",
        "Use for the best point estimate at the lowest cost, or as the baseline.",
    ),
    "ensemble": (
        "K = 10 independently initialised point networks, each solving SROT on its own "
        "bootstrap resample of every snapshot, trained as one vectorised batch (weights "
        "(K, ...), pairs (K, B, D), 64 pairs per interval per member). Members are the "
        "posterior draws. `tau_spread` > 0 also varies tau across members.",
        "Use when the uncertainty from the cells' sampling and the optimisation matters; "
        "its SROT cost grows with K (one bootstrap plan per member).",
    ),
    "last_layer": (
        "Bayesian last layer of both networks (Normal prior, sd = prior_scale / sqrt(fan_in), "
        "mean-field Normal guide with fast-moving scales), body trained as MAP (AutoDelta). "
        "Checked against NUTS on a small problem with the body fixed "
        "(tests/heads/test_nuts_last_layer.py).",
        "Use for growth intervals at little more than the point head's cost "
        "(see the measured coverage).",
    ),
    "mean_field": (
        "Every weight Bayesian (Normal prior, sd = prior_scale / sqrt(fan_in)), one "
        "mean-field Normal guide (AutoNormal with fast-moving scales).",
        "Experimental: with the reference network sizes the mean-field posterior underfits "
        "(see the growth correlation below); prefer last_layer or ensemble.",
    ),
}


def _fmt(v: list[float]) -> str:
    a = np.asarray(v, dtype=float)
    return f"{a.mean():.3f} ± {a.std():.3f}" if len(a) > 1 else f"{a.mean():.3f}"


def card(head: str, results: list[dict], source: str) -> str:
    what, when = ABOUT[head]
    lines = [f"# {head}", "", what, "", when, "", "Config: `config.toml` beside this card.", ""]
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
    args = p.parse_args(argv)
    path = Path(args.results)
    results = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    for head in ABOUT:
        out = ROOT / "models" / head / "README.md"
        out.write_text(card(head, results, args.results))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
