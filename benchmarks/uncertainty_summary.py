"""Summarise benchmarks/uncertainty.sh's runs against issue 10's targets (prints Markdown).

    python benchmarks/uncertainty_summary.py [ROOT[=HEAD,...] ...]   (default: the stored runs)

Reads every ROOT/*/bench.json (or ROOT/bench.json), keeping only the runs of the listed heads
when ``=HEAD,...`` is given (e.g. ``NEW benchmarks/results/uncertainty=point`` puts a variant's
runs beside the stored point head's), and prints: growth calibration per simulator kind and
head (mean over seeds, with the interval width beside the coverage), the leave-one-out mass
intervals (covered fraction, median half-width / mass) with held-out W1 per draw and pooled
against the point head's, and the in-sample W1 (per draw, pooled) against the point head's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from vgfm_bayes.bench import loo_summary


def load(root: Path, heads: set[str] | None = None) -> list[dict]:
    runs = []
    for f in sorted(root.glob("*/bench.json")) or [root / "bench.json"]:
        data = json.loads(f.read_text())
        runs += [
            r
            for r in (data["runs"] if isinstance(data, dict) else data)
            if "metrics" in r and (heads is None or r["head"] in heads)
        ]
    return runs


def _name(r: dict) -> str:
    return Path(r["dataset"]).name.split(".")[0]


def simulators(runs: list[dict]) -> list[str]:
    lines = [
        "| kind | head | seeds | 90% coverage (per seed) | mean width | Spearman | W1 per draw |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list] = {}
    for r in runs:
        if "calibration" in r["metrics"] and r["dataset"].startswith("simulator"):
            groups.setdefault((r["dataset"], r["head"]), []).append(r)
    for (ds, head), rs in groups.items():
        cal = [r["metrics"]["calibration"] for r in rs]
        cov = [c["coverage"] for c in cal]
        lines.append(
            f"| {ds} | {head} | {len(rs)} | {np.mean(cov):.3f} ("
            + " / ".join(f"{c:.3f}" for c in cov)
            + f") | {np.mean([c['mean_width'] for c in cal]):.3f} | "
            f"{np.mean([c['spearman'] for c in cal]):.3f} | "
            f"{np.mean([r['metrics']['w1_mean'] for r in rs]):.4f} |"
        )
    return lines


def leave_one_out(runs: list[dict]) -> list[str]:
    loo = [r for r in runs if not r["dataset"].startswith("simulator")]
    lines = [
        "| head | tasks | 90% mass covered | median half-width / mass | held-out W1 per draw / "
        "point (mean ratio) | pooled / point |",
        "|---|---|---|---|---|---|",
    ]
    for head, s in loo_summary(loo).items():
        covered = round(s["covered"] * s["tasks"])
        pooled = s["w1_pooled_vs_point"]
        lines.append(
            f"| {head} | {s['tasks']} | {s['covered']:.2f} ({covered}/{s['tasks']}) | "
            f"{s['halfwidth_rel']:.3f} | {s['w1_vs_point']:.3f} | "
            + (f"{pooled:.3f} |" if pooled is not None else "- |")
        )
    tasks: dict[str, dict[tuple, dict]] = {}
    for r in loo:
        if r.get("hold_out") is not None:
            tasks.setdefault(r["head"], {})[(_name(r), r["hold_out"], r["seed"])] = r["metrics"]
    lines += ["", "Per task (held-out mass: observed, 90% interval; held-out W1 per draw):", ""]
    lines += [
        "| data | held out | head | observed | interval | covered | W1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for head, mine in tasks.items():
        for t, m in sorted(mine.items()):
            i = t[1] - 1
            lines.append(
                f"| {t[0]} | {t[1]} | {head} | {m['mass_observed'][i]:.3f} | "
                f"[{m['mass_q05'][i]:.3f}, {m['mass_q95'][i]:.3f}] | "
                f"{'yes' if m['mass_covered'][i] else 'no'} | {m['w1'][i]:.4f} |"
            )
    return lines


def in_sample(runs: list[dict]) -> list[str]:
    rows: dict[str, dict[str, dict]] = {}
    for r in runs:
        if r.get("hold_out") is None and not r["dataset"].startswith("simulator"):
            rows.setdefault(_name(r), {})[r["head"]] = r["metrics"]
    lines = [
        "| data | head | W1 per draw | / point | W1 pooled | / point | RME | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ds, heads in rows.items():
        ref = heads.get("point", {}).get("w1_mean")
        for head, m in heads.items():
            pooled = m.get("w1_pooled_mean", m["w1_mean"])
            lines.append(
                f"| {ds} | {head} | {m['w1_mean']:.4f} | "
                f"{m['w1_mean'] / ref:.2f} | {pooled:.4f} | {pooled / ref:.2f} | "
                f"{m['rme_mean']:.4f} | {m['seconds']['fit_total']:.1f} |"
            )
    return lines


def main() -> None:
    runs = []
    for arg in sys.argv[1:] or ["benchmarks/results/uncertainty"]:
        root, _, heads = arg.partition("=")
        runs += load(Path(root), set(heads.split(",")) if heads else None)
    seeds = sorted({r["seed"] for r in runs if _name(r).startswith("simulator")})
    out = ["# Uncertainty without an oracle: default settings, data as files", ""]
    if len(sys.argv) > 2:
        out += ["Runs: " + ", ".join(f"`{a}`" for a in sys.argv[1:]), ""]
    seed_list = ", ".join(str(s) for s in seeds)
    out += [f"## Growth calibration on the simulators (seeds {seed_list})", "", *simulators(runs)]
    out += ["", "## Leave-one-out total mass and W1 (CSV files)", "", *leave_one_out(runs)]
    out += ["", "## In-sample W1 (CSV files)", "", *in_sample(runs)]
    print("\n".join(out))


if __name__ == "__main__":
    main()
