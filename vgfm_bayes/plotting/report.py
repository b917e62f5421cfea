"""The demo report's figures, as files: each is a ``vgfm_bayes.pl`` figure saved (no backend
is chosen here; ``Figure.savefig`` writes files under any backend)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..posterior import Trajectories
from . import pl

if TYPE_CHECKING:
    from ..estimator import VGFM

FIGURES = ("mass.png", "growth.png", "velocity.png", "trajectories.png", "w1.png", "compare.png")


def write_figures(
    out: str | Path,
    models: Mapping[str, VGFM],
    main: str,
    *,
    trajs: Mapping[str, Trajectories],
    metrics: Mapping[str, dict],
    growth_table: pd.DataFrame | None = None,
    draws: int = 4,
) -> dict[str, Path]:
    """Write ``FIGURES`` into ``out``; returns name -> path.

    models : head name -> fitted VGFM (same data); ``main`` is the head whose uncertainty the
        single-model figures show (mass bands, growth, velocity, trajectories); every other
        head's mean mass is drawn into mass.png beside it, and compare.png / w1.png show all.
    trajs, metrics : per head, ``simulate`` and ``evaluate`` outputs at the observed times
        (reused, not recomputed; trajectories.png simulates ``draws`` draws on a finer grid).
    growth_table : ``pl.growth_calls(models[main])``, if already computed.
    """
    out = Path(out)
    paths = {name: out / name for name in FIGURES}
    m = models[main]
    colour = {name: f"C{h}" for h, name in enumerate(models)}  # as in compare's panels
    fig = pl.mass(m, traj=trajs[main], label=main, color=colour[main])
    for name, other in models.items():
        if name != main:
            pl.mass(
                other,
                traj=trajs[name],
                label=name,
                color=colour[name],
                observed=False,
                ax=fig.axes[0],
            )
    pl._finish(fig, True, False, paths["mass.png"])
    pl.growth(m, table=growth_table, save=paths["growth.png"])
    pl.velocity_uncertainty(m, save=paths["velocity.png"])
    pl.trajectories(m, draws=draws, save=paths["trajectories.png"])  # on a fine time grid
    pl.compare(models, metrics=metrics, panels=("w1",), save=paths["w1.png"])
    pl.compare(
        models,
        metrics=metrics,
        trajs=trajs,
        panels=("w1", "rme", "mass"),
        save=paths["compare.png"],
    )
    return paths
