"""vgfm_bayes.pl: figures of fitted models; no backend change; a light import."""

from __future__ import annotations

import os
import subprocess
import sys

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

import vgfm_bayes as vb
from tests.tiny import TINY, make_tiny
from vgfm_bayes import VGFM
from vgfm_bayes.plotting import FIGURES, write_figures
from vgfm_bayes.posterior import direction_spread, sign_calls


@pytest.fixture(scope="module")
def models():
    data = make_tiny()
    point = VGFM(**TINY).fit(data, progress=False)
    ens = VGFM(head="ensemble", members=3, **TINY).fit(data, progress=False)
    return {"point": point, "ensemble": ens}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _run(code: str, backend: str) -> str:
    env = {**os.environ, "MPLBACKEND": backend}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_import_leaves_the_backend_alone():
    # a non-Agg backend the user chose must survive importing every plotting module
    code = (
        "import matplotlib; b = matplotlib.get_backend(); "
        "import vgfm_bayes, vgfm_bayes.pl, vgfm_bayes.plotting, vgfm_bayes.demo; "
        "from vgfm_bayes.plotting import axes, pl, report; "
        "print(b, matplotlib.get_backend())"
    )
    before, after = _run(code, "svg")
    assert before == "svg" and after == "svg"


def test_import_is_light():
    code = (
        "import sys, vgfm_bayes as vb; vb.pl.mass; "
        "print('matplotlib' in sys.modules, 'matplotlib.pyplot' in sys.modules)"
    )
    assert _run(code, "svg") == ["False", "False"]


def test_pl_namespace():
    from vgfm_bayes.plotting import pl

    for name in ("growth", "mass", "velocity_uncertainty", "compare", "trajectories"):
        assert getattr(vb.pl, name) is getattr(pl, name)
        assert name in vb.pl.__all__


def test_growth_calls_table(models):
    data = models["point"].data
    n = sum(data.counts)
    for name, m in models.items():
        tab = vb.pl.growth_calls(m, samples=20)
        assert len(tab) == n  # every observed cell, each at its own time
        assert sorted(tab["t"].unique()) == list(data.times)
        assert np.all(tab["lower"] <= tab["mean"] + 1e-9) and np.all(tab["mean"] <= tab["upper"])
        assert list(tab["call"]) == list(sign_calls(tab["lower"], tab["upper"]))
        if name == "point":  # a degenerate interval: every cell called, by its sign
            assert np.all(tab["sd"] == 0) and not np.any(tab["call"] == "undetermined")
            assert np.all((tab["call"] == "proliferating") == (tab["mean"] > 0))
        else:
            assert np.all(tab["sd"] > 0)
    one = vb.pl.growth_calls(models["ensemble"], data.x[1][:5], t=0.5)
    assert len(one) == 5 and np.all(one["t"] == 0.5)
    sub = vb.pl.growth_calls(models["ensemble"], t=1.0, max_cells=7)
    assert len(sub) == 7 and np.all(sub["t"] == 1.0)


def test_growth_figure_counts_and_ax(models, tmp_path):
    m = models["ensemble"]
    tab = vb.pl.growth_calls(m, samples=20)
    fig = vb.pl.growth(m, table=tab, save=tmp_path / "g.png")
    assert isinstance(fig, Figure) and (tmp_path / "g.png").stat().st_size > 1000
    assert not plt.fignum_exists(fig.number)  # saved: closed in pyplot, still returned
    calls_ax = fig.axes[1]
    labels = [t.get_text() for t in calls_ax.get_legend().get_texts()]
    for call, count in tab["call"].value_counts().items():
        assert f"{call} ({count})" in labels
    _, axs = plt.subplots(1, 3)
    fig2 = vb.pl.growth(m, table=tab, panels=("sd", "mean", "calls"), ax=axs)
    assert fig2 is axs[0].figure and plt.fignum_exists(fig2.number)
    with pytest.raises(ValueError, match="3 Axes"):
        vb.pl.growth(m, table=tab, panels=("sd", "mean", "calls"), ax=axs[0])
    with pytest.raises(ValueError, match="panels"):
        vb.pl.growth(m, table=tab, panels=("nope",))


def test_mass_bands(models, tmp_path):
    for name, m in models.items():
        traj = m.simulate(samples=10)
        fig = vb.pl.mass(m, traj=traj)
        ax = fig.axes[0]
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        expected = int(traj.x.shape[0] > 1) + int(traj.mass_noise is not None)
        assert len(bands) == expected, name
        obs = [ln for ln in ax.get_lines() if ln.get_label() == "observed"]
        assert np.allclose(obs[0].get_ydata(), m.data.masses)
        assert np.allclose(ax.get_lines()[0].get_ydata(), traj.mass.mean(0))
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) >= 1  # ensemble


def test_velocity_uncertainty_colours(models):
    data = models["point"].data
    x = data.x[1]
    for name, m in models.items():
        fig = vb.pl.velocity_uncertainty(m, x, 1.0)
        q = fig.axes[0].collections[-1]
        params = m.posterior.draw(200)
        spread = np.degrees(direction_spread(m.velocity_draws(x, 1.0, params=params)))
        assert np.allclose(q.get_array(), spread, atol=1e-6), name
        if name == "point":
            assert np.allclose(q.get_array(), 0)
    fig = vb.pl.velocity_uncertainty(models["ensemble"], color_by="speed_sd", max_cells=5)
    assert len(fig.axes[0].collections[-1].get_array()) == 5 * data.n_times
    with pytest.raises(ValueError, match="color_by"):
        vb.pl.velocity_uncertainty(models["ensemble"], color_by="nope")


def test_compare_and_trajectories(models, tmp_path):
    metrics = {n: m.evaluate() for n, m in models.items()}
    fig = vb.pl.compare(models, metrics=metrics, panels=("w1", "rme", "mass"))
    assert len(fig.axes) == 3
    heights = [[p.get_height() for p in c] for c in fig.axes[0].containers]
    assert np.allclose(heights, [metrics["point"]["w1"], metrics["ensemble"]["w1"]])
    fig = vb.pl.trajectories(models["ensemble"], draws=2, n_paths=5)
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert labels.count("draw 0") == 1 and labels.count("draw 1") == 1 and len(labels) == 10
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == 41  # a fine grid, not the snapshots
    traj = models["ensemble"].simulate()
    fig = vb.pl.trajectories(models["ensemble"], traj=traj, draws=1, n_paths=3)
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == len(traj.times)
    with pytest.raises(ValueError, match="fitted"):
        vb.pl.mass(VGFM(**TINY))


def test_figures_keep_the_backend_and_close(models, tmp_path):
    before = matplotlib.get_backend()
    open_before = plt.get_fignums()
    trajs = {n: m.simulate(samples=5) for n, m in models.items()}
    metrics = {n: m.evaluate() for n, m in models.items()}
    paths = write_figures(tmp_path, models, "ensemble", trajs=trajs, metrics=metrics)
    assert sorted(p.name for p in paths.values()) == sorted(FIGURES)
    assert all(p.stat().st_size > 1000 for p in paths.values())
    assert matplotlib.get_backend() == before
    assert plt.get_fignums() == open_before  # a report run leaves no figures open
