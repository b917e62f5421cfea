"""The bench's Markdown tables (bench.md, and the cards' benchmark sections) and the per-head
records the zoo's cards are written from.

Every table reads run records as the harness (bench/harness.py) writes them (bench.json); keys
that older records lack are shown as "–".
"""

from __future__ import annotations

import numpy as np

from ..data import reference

LEVEL = 0.9  # central predictive / credible intervals
# benchmark data set name of each ground-truth simulator kind (data/simulate.py)
SIMULATORS = {"simulator": "separated", "simulator_reweight": "reweight"}


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


def halfwidth_rel(m: dict, i: int) -> float | None:
    """Half-width of the 90% mass interval at metrics index ``i`` relative to the observed
    mass (from the quantiles, so older records have it too)."""
    try:
        return (m["mass_q95"][i] - m["mass_q05"][i]) / 2 / m["mass_observed"][i]
    except (KeyError, IndexError, TypeError):
        return None


def posterior_mean_w1(m: dict, i: int | None = None) -> float | None:
    """W1 of the posterior-mean parameters: the mean over times (``i`` None) or at index i;
    None where the run has none (an ensemble, or an older record)."""
    pm = m.get("posterior_mean")
    if not pm:
        return None
    return pm["w1_mean"] if i is None else pm["w1"][i]


def _at(m: dict, key: str, i: int):
    v = m.get(key)
    return None if v is None else v[i]


def _w1_kinds(groups: dict[tuple, list[dict]], h: str) -> list[str]:
    lines = [
        f"{h} W1 of the posterior predictive",
        "",
        "Means over time points, mean ± sd over seeds: per draw (each posterior draw scored on "
        "its own, then averaged: the W1 above), pooled (all draws' particles together, weights "
        "/ S: the predictive distribution's W1; <= per draw) and of the posterior-mean parameters "
        "(the guide's median / loc; none for an ensemble, whose members' mean weights are no "
        "meaningful network). A point head's three are equal.",
        "",
        "| data | head | held out | seeds | W1 per draw | W1 pooled | W1 posterior mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for (d, head, ho), rs in groups.items():
        ms = [r["metrics"] for r in rs]
        lines.append(
            f"| {d} | {head} | {_ho(ho)} | {len(ms)} | {_mean_sd([m['w1_mean'] for m in ms])} "
            f"| {_mean_sd([m.get('w1_pooled_mean') for m in ms])} "
            f"| {_mean_sd([posterior_mean_w1(m) for m in ms])} |"
        )
    return lines + [""]


def _timing(groups: dict[tuple, list[dict]], h: str) -> list[str]:
    gpu = any("peak_gpu_mb" in r["metrics"] for rs in groups.values() for r in rs)
    lines = [
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
    return lines + [""]


def _loo(loo: dict[tuple, list[dict]], h: str) -> list[str]:
    lines = [
        f"{h} Leave-one-out",
        "",
        "At the held-out time: W1 (per draw), RME (mean ± sd over seeds), the 90% predictive "
        "interval of the total mass (quantiles 5% / 95% over posterior draws, mean over seeds) "
        "against the observed mass, in how many seeds it covers it, its half-width relative to "
        "the observed mass (mean over seeds), and W1 pooled / of the posterior mean (means).",
        "",
        "| data | head | held out | seeds | W1 | RME | 90% mass interval vs observed "
        "| covered | half-width / mass | W1 pooled | W1 posterior mean |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
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
            f"| {covered}/{len(ms)} | {_mean([halfwidth_rel(m, i) for m in ms], 3)} "
            f"| {_mean([_at(m, 'w1_pooled', i) for m in ms], 4)} "
            f"| {_mean([posterior_mean_w1(m, i) for m in ms], 4)} |"
        )
    return lines + [""]


def _accuracy(groups: dict[tuple, list[dict]], h: str) -> list[str]:
    """Held-out W1 beside each held-out snapshot's sampling floor, and the in-sample fit."""
    pairs = dict.fromkeys(
        (d, head)
        for (d, head, ho), rs in groups.items()
        if ho is not None and "w1_floor_held_out" in rs[0]["metrics"]
    )
    if not pairs:
        return []
    lines = [
        f"{h} Held-out accuracy against the sampling floor",
        "",
        "Leave-one-out W1 and RME at the held-out time (mean over seeds) beside that snapshot's "
        "sampling floor (W1 between two random halves of it, mean of 5 splits, computed by the "
        "bench), their ratio, and the in-sample fit of the run without a hold-out (mean W1 / RME "
        "over times). Mean row: mean held-out W1 / mean floor.",
        "",
        "| data | head | held out | W1 held out | floor | W1 / floor | RME held out "
        "| in-sample W1 | in-sample RME |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d, head in pairs:
        full = groups.get((d, head, None), [])
        ins_w1 = _mean([r["metrics"]["w1_mean"] for r in full], 4) if full else "-"
        ins_rme = _mean([r["metrics"]["rme_mean"] for r in full], 4) if full else "-"
        w1s, floors = [], []
        for (dd, hh, ho), rs in groups.items():
            if (dd, hh) != (d, head) or ho is None:
                continue
            ms = [r["metrics"] for r in rs]
            w1 = float(np.mean([m["w1"][ho - 1] for m in ms]))
            floor = float(np.mean([m["w1_floor_held_out"] for m in ms]))
            w1s.append(w1)
            floors.append(floor)
            lines.append(
                f"| {d} | {head} | {ho} | {w1:.4f} | {floor:.4f} | {w1 / floor:.2f} "
                f"| {_mean([m['rme'][ho - 1] for m in ms], 4)} | {ins_w1} | {ins_rme} |"
            )
        ratio = np.mean(w1s) / np.mean(floors)
        lines.append(
            f"| {d} | {head} | mean | {np.mean(w1s):.4f} | {np.mean(floors):.4f} "
            f"| **{ratio:.2f}** | | {ins_w1} | {ins_rme} |"
        )
    return lines + [""]


def _growth_shapes(groups: dict[tuple, list[dict]], h: str) -> list[str]:
    rows = {k: rs for k, rs in groups.items() if "growth_shape" in rs[0]["metrics"]}
    if not rows:
        return []
    lines = [
        f"{h} Growth shape",
        "",
        "Pearson correlation of the posterior-mean growth at every observed cell with the true "
        "growth (a simulator's rates, or a shape known up to an affine map), mean ± sd over "
        "seeds.",
        "",
        "| data | head | held out | seeds | Pearson | truth |",
        "|---|---|---|---|---|---|",
    ]
    for (d, head, ho), rs in rows.items():
        gs = [r["metrics"]["growth_shape"] for r in rs]
        lines.append(
            f"| {d} | {head} | {_ho(ho)} | {len(gs)} "
            f"| {_mean_sd([g['pearson'] for g in gs], 3)} | {gs[0]['truth']} |"
        )
    return lines + [""]


def head_records(bench: list[dict]) -> list[dict]:
    """Per-head records of bench runs, as the zoo's cards tabulate them (benchmarks/
    write_cards.py): "sim" (a simulator's growth calibration, one per kind and seed) and "loo"
    (held-out W1 per draw / pooled / of the posterior mean, RME, whether the 90% mass interval
    covers the held-out mass and its half-width relative to that mass). Records that already
    are per-head ones (a "part" key: older benchmarks/heads.py files) are kept as they are."""
    out = []
    for r in bench:
        if "part" in r:
            out.append(r)
            continue
        m = r.get("metrics")
        if m is None:
            continue
        seconds = m["seconds"]["fit_total"]
        if r["dataset"] in SIMULATORS and r.get("hold_out") is None and "calibration" in m:
            cal = m["calibration"]
            keys = ("spearman", "coverage", "crps", "mean_width")
            out.append({"part": "sim", "head": r["head"], "kind": SIMULATORS[r["dataset"]],
                        "seed": r["seed"], "seconds": seconds,
                        **{k: cal.get(k) for k in keys}})  # fmt: skip
        elif r.get("hold_out") is not None:
            i = r["hold_out"] - 1  # metrics are per time after the first
            out.append(
                {"part": "loo", "head": r["head"], "data": r["dataset"],
                 "hold_out": r["hold_out"], "seed": r["seed"], "seconds": seconds,
                 "w1": m["w1_held_out"], "rme": m["rme_held_out"],
                 "mass_q05": m["mass_q05"][i], "mass_q95": m["mass_q95"][i],
                 "mass_observed": m["mass_observed"][i],
                 "covered": m["mass_covered_held_out"],
                 "halfwidth_rel": halfwidth_rel(m, i),
                 "w1_pooled": m.get("w1_pooled_held_out"),
                 "w1_posterior_mean": (m.get("posterior_mean") or {}).get("w1_held_out")}
            )  # fmt: skip
    return out


def loo_summary(runs: list[dict]) -> dict[str, dict]:
    """Per head over its leave-one-out tasks (one task = data set, hold-out, seed).

    Returns, per head: "tasks"; "covered" (fraction whose 90% mass interval covers the
    held-out mass); "halfwidth_rel" (median half-width / observed mass); "w1" (mean held-out
    W1, per draw); "w1_vs_point" (mean over tasks of W1 / the point head's W1 on the same task;
    None without point runs); "w1_pooled_vs_point" (the same for the pooled predictive's W1).
    """
    tasks: dict[str, dict[tuple, dict]] = {}
    for r in runs:
        if "metrics" in r and r.get("hold_out") is not None:
            task = (r["dataset"], r["hold_out"], r["seed"])
            tasks.setdefault(r["head"], {})[task] = r["metrics"]
    point = {t: m["w1"][t[1] - 1] for t, m in tasks.get("point", {}).items()}
    out = {}
    for head, mine in tasks.items():
        w1 = {t: m["w1"][t[1] - 1] for t, m in mine.items()}
        half = [halfwidth_rel(m, t[1] - 1) for t, m in mine.items()]
        half = [x for x in half if x is not None]
        ratios = [w1[t] / point[t] for t in w1 if t in point and point[t] > 0]
        pooled = [
            m["w1_pooled"][t[1] - 1] / point[t]
            for t, m in mine.items()
            if "w1_pooled" in m and t in point and point[t] > 0
        ]
        out[head] = {
            "tasks": len(mine),
            "covered": float(np.mean([bool(m["mass_covered"][t[1] - 1]) for t, m in mine.items()])),
            "halfwidth_rel": float(np.median(half)) if half else None,
            "w1": float(np.mean(list(w1.values()))),
            "w1_vs_point": float(np.mean(ratios)) if ratios else None,
            "w1_pooled_vs_point": float(np.mean(pooled)) if pooled else None,
        }
    return out


def _loo_summary(runs: list[dict], h: str) -> list[str]:
    summary = loo_summary(runs)
    lines = [
        f"{h} Leave-one-out summary per head",
        "",
        "Over every leave-one-out task (data set, held-out time, seed): the fraction whose 90% "
        "mass interval covers the held-out mass, the median half-width of that interval relative "
        "to the observed mass, the mean held-out W1 (per draw) and the mean of its ratio to the "
        "point head's W1 on the same task.",
        "",
        "| head | tasks | 90% mass covered | median half-width / mass | mean held-out W1 "
        "| W1 / point's |",
        "|---|---|---|---|---|---|",
    ]
    for head, s in summary.items():
        lines.append(
            f"| {head} | {s['tasks']} | {s['covered']:.2f} | {_mean([s['halfwidth_rel']], 3)} "
            f"| {s['w1']:.4f} | {_mean([s['w1_vs_point']], 2)} |"
        )
    return lines + [""]


def _calibration(cal: dict[tuple, list[dict]], h: str) -> list[str]:
    lines = [
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
            f"| {_mean_sd([c.get('mean_width') for c in cs], 3)} | {cs[0].get('truth', '')} |"
        )
    return lines + [""]


def _simulator_kinds(groups: dict[tuple, list[dict]], h: str) -> list[str]:
    rows = {
        k: rs
        for k, rs in groups.items()
        if k[0] in SIMULATORS and k[2] is None and "calibration" in rs[0]["metrics"]
    }
    if not rows:
        return []
    lines = [
        f"{h} Simulator calibration per kind",
        "",
        "Ground-truth simulators fitted with the same defaults as any user file (data/simulate.py:"
        " separated = four populations with their own rates, identifiable; reweight = growth "
        "reweighting cells inside one blob, not identifiable from snapshots): growth at every "
        "observed cell, mean ± sd over seeds.",
        "",
        "| kind | head | seeds | Spearman(mean, truth) | 90% coverage | mean width |",
        "|---|---|---|---|---|---|",
    ]
    order = sorted(rows, key=lambda k: list(SIMULATORS).index(k[0]))
    for d, head, _ in order:
        cs = [r["metrics"]["calibration"] for r in rows[(d, head, None)]]
        lines.append(
            f"| {SIMULATORS[d]} | {head} | {len(cs)} | {_mean_sd([c['spearman'] for c in cs], 3)} "
            f"| {_mean_sd([c['coverage'] for c in cs], 3)} "
            f"| {_mean_sd([c.get('mean_width') for c in cs], 3)} |"
        )
    return lines + [""]


def summarise(runs: list[dict], level: int = 2) -> str:
    """Markdown tables of the runs, mean ± sd over seeds, headings at ``level`` (2: "##").

    W1 and RME per time point and mean, one table per data set with the published VGFM
    numbers as a row; W1 per draw / pooled / of the posterior mean; wall time per phase and
    peak memory; leave-one-out (held-out W1 / RME, the 90% predictive interval of the total
    mass, whether it covers the observed mass and its relative half-width) and its summary per
    head, and the held-out W1 beside each held-out snapshot's sampling floor; and, where the
    true growth is known, its correlation with the posterior-mean growth and calibration of the
    growth posterior at every observed cell (with a table per simulator kind).
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
    for d in dict.fromkeys(k[0] for k in groups):
        lines += _per_time(d, groups, h)
    if groups:
        lines += _w1_kinds(groups, h)
        lines += _timing(groups, h)
    loo = {k: rs for k, rs in groups.items() if k[2] is not None}
    if loo:
        lines += _loo(loo, h) + _loo_summary(runs, h) + _accuracy(groups, h)
    lines += _growth_shapes(groups, h)
    cal = {k: rs for k, rs in groups.items() if "calibration" in rs[0]["metrics"]}
    if cal:
        lines += _calibration(cal, h) + _simulator_kinds(groups, h)
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
