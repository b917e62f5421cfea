"""The main job: fit the bundled simulated-gene data with the point head and a Bayesian head,
evaluate both, and write a report folder that shows the uncertainty."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .data import DATASETS, TimeCourse, load
from .estimator import VGFM
from .plotting import FIGURES, pl, write_figures
from .posterior import CALLS

log = logging.getLogger(__name__)

# --quick: a smoke test (tests, CI), not a fit: a few steps, and 3 ensemble members (each member
# solves its own SROT plans, the slowest part of a short run)
QUICK = {"warmup_steps": 30, "joint_steps": 2, "joint_particles": 128, "joint_targets": 128}
QUICK_HEAD = {"ensemble": {"members": 3}}
DEMO_THREADS = None  # torch's own thread count (run_demo's docstring: when to pass 1)


def _f(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def metrics_table(metrics: Mapping[str, dict], reference: dict | None = None) -> str:
    """Markdown table of W1 / RME per time and mean, one column per head, with the published
    VGFM numbers beside them when known."""
    names = list(metrics)
    first = metrics[names[0]]
    ref = reference or {}
    ref_w1 = ref.get("w1_per_time") or [None] * len(first["times"])
    ref_rme = ref.get("rme_per_time") or [None] * len(first["times"])
    if len(ref_w1) != len(first["times"]):
        ref_w1 = ref_rme = [None] * len(first["times"])
    pub = ["published VGFM"] if reference else []
    head = (
        ["time"]
        + [f"W1 {n}" for n in names]
        + [f"W1 {p}" for p in pub]
        + [f"RME {n}" for n in names]
        + [f"RME {p}" for p in pub]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, t in enumerate(first["times"]):
        row = [f"{t:g}"] + [_f(metrics[n]["w1"][i]) for n in names]
        row += [_f(ref_w1[i])] if reference else []
        row += [_f(metrics[n]["rme"][i]) for n in names]
        row += [_f(ref_rme[i])] if reference else []
        lines.append("| " + " | ".join(row) + " |")
    row = ["**mean**"] + [f"**{metrics[n]['w1_mean']:.4f}**" for n in names]
    row += [f"**{ref['w1']:.3f}**"] if reference else []
    row += [f"**{metrics[n]['rme_mean']:.4f}**" for n in names]
    row += [f"**{ref['rme']:.3f}**"] if reference else []
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def mass_table(metrics: Mapping[str, dict]) -> str:
    """Markdown table of the observed total mass per time, each head's predicted mean, and
    for heads with more than one draw the 90% credible (model) and predictive (observation)
    intervals and whether the predictive one covers the observation."""
    names = list(metrics)
    first = metrics[names[0]]
    head = ["time", "observed"]
    for n in names:
        head.append(f"{n} mean")
        if metrics[n]["samples"] > 1:
            head += [f"{n} 90% credible", f"{n} 90% predictive", "covered"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, t in enumerate(first["times"]):
        row = [f"{t:g}", _f(first["mass_observed"][i], 3)]
        for n in names:
            m = metrics[n]
            row.append(_f(m["mass_predicted"][i], 3))
            if m["samples"] > 1:
                c_lo = m.get("mass_credible_q05", m["mass_q05"])[i]
                c_hi = m.get("mass_credible_q95", m["mass_q95"])[i]
                row.append(f"[{c_lo:.3f}, {c_hi:.3f}]")
                if m.get("mass_noise"):
                    row.append(f"[{m['mass_q05'][i]:.3f}, {m['mass_q95'][i]:.3f}]")
                else:
                    row.append("(= credible)")
                row.append("yes" if m["mass_covered"][i] else "no")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def calls_table(calls: Mapping[str, dict]) -> str:
    """Markdown table of the growth calls per head (counts of cells)."""
    head = ["head", "cells", *CALLS, "mean P(g>0)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n, c in calls.items():
        row = [n, str(c["cells"]), *(str(c[k]) for k in CALLS), f"{c['mean_p_positive']:.3f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _seconds_line(name: str, seconds: Mapping[str, float]) -> str:
    parts = ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())
    return f"- `{name}`: {parts}"


def _report(
    data: TimeCourse,
    dataset: str,
    heads: list[str],
    main: str,
    seed: int,
    quick: bool,
    metrics: Mapping[str, dict],
    calls: Mapping[str, dict],
    seconds: Mapping[str, dict],
    total: float,
    reference: dict | None,
) -> str:
    others = [h for h in heads if h != main]
    quick_note = (
        ["", "**Quick mode**: a few training steps only, a smoke test; the numbers mean nothing."]
        if quick
        else []
    )
    r = [
        f"# vgfm-bayes demo: {dataset}, heads {', '.join(f'`{h}`' for h in heads)}, seed {seed}",
        *quick_note,
        "",
        f"Data: {data!r}. Each head is fitted with its zoo configuration (`models/<head>/`) on "
        "every snapshot and scored on every snapshot after the first (in-sample; DESIGN 4).",
        "",
        "## Distribution fit: W1 and relative mass error per time",
        "",
        metrics_table(metrics, reference),
        "",
        "W1: exact EMD between the simulated first snapshot (weights normalised) and the observed "
        "cells; a Bayesian head's W1 is the mean over its posterior draws (each draw scored on "
        "its own). In-sample W1 can sit below the sampling floor of a snapshot (about 0.08 for "
        "these data between two random halves of one snapshot), so small differences between "
        "heads here are not a ranking.",
        "",
        "## Total mass and its uncertainty",
        "",
        mass_table(metrics),
        "",
        f"![mass](mass.png) `mass.png`: `{main}`'s mean total mass, its 90% credible band (the "
        "model's mass over posterior draws) and, where the fit estimated one from held-out "
        "snapshots, the wider 90% predictive band of an observed mass; "
        + (f"{', '.join(f'`{o}`' for o in others)}'s mean; " if others else "")
        + "observed masses as dots. The point head has one draw, so no band.",
        "",
        "## Growth: where cells proliferate or die, and how sure the model is",
        "",
        calls_table(calls),
        "",
        "Every observed cell is scored at its own time. A call is *proliferating* when the 90% "
        "interval of its growth rate lies above 0, *dying* below 0, *undetermined* when it holds "
        "0. The point head's interval is its single value, so it calls every cell: it cannot say "
        "where it does not know.",
        "",
        f"![growth](growth.png) `growth.png` (`{main}`): left, the posterior-mean growth rate "
        "(colour) with marker size the certainty of its sign |2 P(g>0) - 1|; right, the calls.",
        "",
        "## Velocity and trajectories",
        "",
        f"![velocity](velocity.png) `velocity.png` (`{main}`): posterior-mean velocity arrows "
        "coloured by their direction spread (mean angle between a posterior draw's direction and "
        "the mean direction, in degrees).",
        "",
        f"![trajectories](trajectories.png) `trajectories.png` (`{main}`): simulated paths of "
        "first-snapshot cells under several posterior draws (one colour each) over the observed "
        "snapshots.",
        "",
        "![compare](compare.png) `compare.png`: the heads side by side (W1, RME per time with the "
        "published VGFM numbers, mass bands); `w1.png`: the W1 panel alone.",
        "",
        "## Wall time (s)",
        "",
        *(_seconds_line(h, seconds[h]) for h in heads),
        f"- whole demo (fits, evaluation, figures, report): {total:.1f}, with "
        f"{torch.get_num_threads()} torch thread(s); on a machine shared with other jobs "
        "these times are inflated",
        "",
        "Files: `metrics.json` (the first head's metrics at the top level, every head's under "
        f"`heads`), `run/` (`{heads[0]}`)"
        + "".join(f", `run_{h}/`" for h in heads[1:])
        + " (saved runs: `vgfm-bayes evaluate|simulate|growth RUN`).",
    ]
    return "\n".join(r) + "\n"


def run_demo(
    out: str | Path = "demo_out",
    dataset: str = "simulation_gene",
    model: str = "point",
    bayes: str | None = "ensemble",
    seed: int = 0,
    quick: bool = False,
    device: str = "cpu",
    progress: bool = True,
    samples: int = 100,
    threads: int | None = DEMO_THREADS,
) -> dict:
    """Fit ``model`` (the point head) and ``bayes`` (a Bayesian head; None: none), evaluate,
    and report. ``quick`` trains a few steps only (for tests and smoke runs).

    threads : torch's intra-op threads while the demo runs (restored afterwards); None (the
        default) keeps torch's setting. On an idle 2-core machine torch's 2 threads are faster
        (whole demo 47.5 s, against 67.1 s with 1); on a machine shared with other jobs pass 1:
        there two threads per process made it 5-6x slower (517-606 s against 93 s, load ~5).
        The thread count changes the last digits of the results (W1 0.0335 vs 0.0332).

    Writes to ``out``: run/ (``model``'s saved run), run_<bayes>/, metrics.json, report.md and
    the figures of ``vgfm_bayes.plotting.FIGURES`` (mass, growth, velocity, trajectories, w1,
    compare). Returns the metrics written to metrics.json: ``model``'s at the top level (as
    before), every head's under "heads".
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 (or None for torch's setting), got {threads}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_demo(out, dataset, model, bayes, seed, quick, device, progress, samples)
    finally:
        torch.set_num_threads(before)


def _run_demo(out, dataset, model, bayes, seed, quick, device, progress, samples) -> dict:
    start = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is a file; choose a folder for the report")
    heads = [model] + ([bayes] if bayes and bayes != model else [])
    for h in heads:  # unknown names fail before any training
        VGFM.from_zoo(h)
    out.mkdir(parents=True, exist_ok=True)
    data = load(dataset)
    overrides = {"seed": seed, "device": device, **(QUICK if quick else {})}

    def config(h: str) -> dict:
        return {**overrides, **(QUICK_HEAD.get(h, {}) if quick else {})}

    fits: dict[str, VGFM] = {}
    metrics: dict[str, dict] = {}
    trajs, seconds, calls = {}, {}, {}
    main = heads[-1]
    table = None
    for h in heads:
        t0 = time.perf_counter()
        fits[h] = m = VGFM.from_zoo(h, **config(h)).fit(data, progress=progress)
        fit_s = time.perf_counter() - t0
        m.save(out / ("run" if h == heads[0] else f"run_{h}"), overwrite=True)
        t0 = time.perf_counter()
        metrics[h] = m.evaluate()
        trajs[h] = m.simulate(samples=samples)
        tab = pl.growth_calls(m, samples=samples)
        counts = tab["call"].value_counts()
        calls[h] = {
            "cells": len(tab),
            **{k: int(counts.get(k, 0)) for k in CALLS},
            "mean_p_positive": float(np.mean(tab["p_positive"])),
        }
        table = tab if h == main else table
        seconds[h] = {**m.history.seconds, "fit": fit_s, "evaluate": time.perf_counter() - t0}
        metrics[h]["seconds"] = m.history.seconds
        metrics[h]["growth_calls"] = calls[h]

    write_figures(out, fits, main, trajs=trajs, metrics=metrics, growth_table=table)
    reference = DATASETS[dataset].reference if dataset in DATASETS else None
    total = time.perf_counter() - start
    result = {
        **metrics[heads[0]],
        "heads": metrics,
        "demo": {
            "dataset": dataset,
            "heads": heads,
            "main": main,
            "seed": seed,
            "quick": quick,
            "torch_threads": torch.get_num_threads(),
            "seconds": seconds,
            "seconds_total": total,
            "figures": list(FIGURES),
        },
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    report = _report(
        data, dataset, heads, main, seed, quick, metrics, calls, seconds, total, reference
    )
    (out / "report.md").write_text(report)
    log.info("wrote the report to %s (%.1f s)", out, total)
    return result
