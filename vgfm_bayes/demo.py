"""The main job: fit the bundled simulated-gene data, evaluate, and write a report folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .data import DATASETS, load
from .estimator import VGFM
from .plotting import plot_growth, plot_mass, plot_trajectories, plot_w1

log = logging.getLogger(__name__)


def metrics_table(metrics: dict, reference: dict | None = None) -> str:
    """Markdown table of W1 / RME per time and mean (with the published numbers if known)."""
    lines = ["| time | W1 | RME | mass (pred) | mass (obs) |", "|---|---|---|---|---|"]
    for i, t in enumerate(metrics["times"]):
        lines.append(
            f"| {t:g} | {metrics['w1'][i]:.4f} | {metrics['rme'][i]:.4f} | "
            f"{metrics['mass_predicted'][i]:.4f} | {metrics['mass_observed'][i]:.4f} |"
        )
    lines.append(f"| **mean** | **{metrics['w1_mean']:.4f}** | **{metrics['rme_mean']:.4f}** | | |")
    if reference:
        lines.append(f"| published VGFM | {reference['w1']:.3f} | {reference['rme']:.3f} | | |")
    return "\n".join(lines)


def run_demo(
    out: str | Path = "demo_out",
    dataset: str = "simulation_gene",
    model: str = "point",
    seed: int = 0,
    quick: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Fit, evaluate and report. ``quick`` trains a few steps only (for tests and smoke runs).

    Writes to ``out``: run/ (the saved model), metrics.json, report.md, mass.png,
    trajectories.png, growth.png, w1.png. Returns the metrics.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is a file; choose a folder for the report")
    out.mkdir(parents=True, exist_ok=True)
    data = load(dataset)
    overrides = {"seed": seed, "device": device}
    if quick:
        overrides.update(warmup_steps=30, joint_steps=2, joint_particles=128, joint_targets=128)
    vgfm = VGFM.from_zoo(model, **overrides).fit(data, progress=progress)
    vgfm.save(out / "run", overwrite=True)
    metrics = vgfm.evaluate()
    metrics["seconds"] = vgfm.history.seconds
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))

    reference = DATASETS[dataset].reference if dataset in DATASETS else None
    traj = vgfm.simulate(samples=50)
    plot_mass(traj, data, out / "mass.png", label=model)
    plot_trajectories(traj, data, out / "trajectories.png")
    plot_w1(metrics, out / "w1.png", reference)
    x0 = data.x[0]
    g = vgfm.growth(x0, float(data.times[0]))
    plot_growth(
        x0,
        g["mean"].to_numpy(),
        g["sd"].to_numpy(),
        out / "growth.png",
        data.var_names,
        float(data.times[0]),
    )
    seconds = vgfm.history.seconds
    report = [
        f"# vgfm-bayes demo: {dataset}, head `{model}`, seed {seed}",
        "",
        f"Data: {data!r}",
        "",
        metrics_table(metrics, reference),
        "",
        "Wall time (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())
        + f", total {sum(seconds.values()):.1f}",
        "",
        f"Growth at t={data.times[0]:g} over the first snapshot: mean "
        f"{np.mean(g['mean']):.3f}, fraction of cells with P(g > 0) > 0.5: "
        f"{float(np.mean(g['p_positive'] > 0.5)):.2f}",
        "",
        "![mass](mass.png) ![trajectories](trajectories.png) ![growth](growth.png) ![w1](w1.png)",
    ]
    (out / "report.md").write_text("\n".join(report) + "\n")
    log.info("wrote the report to %s", out)
    return metrics
