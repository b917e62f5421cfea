import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.tiny import TINY
from vgfm_bayes.cli import main
from vgfm_bayes.infer import FitConfig
from vgfm_bayes.zoo import zoo_config


def test_cli_end_to_end(tmp_path, tiny_csv, tiny_config, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "fit",
                str(tiny_csv),
                "--model",
                "point",
                "--out",
                str(run),
                "--seed",
                "1",
                "--config",
                str(tiny_config),
                "--quiet",
            ]
        )
        == 0
    )
    for f in ("config.json", "weights.pt", "history.json", "metrics.json", "data.npz"):
        assert (run / f).is_file(), f
    # --config overrides only the keys it sets: the zoo's other settings stay
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["lambda_mass"] == zoo_config("point")["lambda_mass"] != FitConfig.lambda_mass
    assert saved["warmup_steps"] == TINY["warmup_steps"]
    assert main(["evaluate", str(run), "--quiet"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert set(m) >= {"times", "w1", "rme", "w1_mean", "rme_mean", "held_out"}
    assert m["times"] == [1.0, 2.0] and m["held_out"] is None

    npz = tmp_path / "sim.npz"
    assert main(["simulate", str(run), "--out", str(npz), "--samples", "4", "--quiet"]) == 0
    z = np.load(npz)
    assert z["times"].shape == (3,)
    assert z["x"].shape == (1, 3, 30, 2) and z["log_w"].shape == (1, 3, 30)
    np.testing.assert_allclose(np.exp(z["log_w"][:, 0]).sum(-1), 1.0, rtol=1e-5)

    pts = tmp_path / "pts.csv"
    pts.write_text("x1,x2\n0,0\n0.5,1.5\n")
    out = tmp_path / "growth.csv"
    assert (
        main(
            [
                "growth",
                str(run),
                "--points",
                str(pts),
                "--time",
                "0.5",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2
    assert set(rows[0]) == {"x1", "x2", "mean", "sd", "q05", "q50", "q95", "p_positive"}


def test_cli_hold_out(tmp_path, tiny_csv, tiny_config):
    run = tmp_path / "run"
    assert (
        main(
            [
                "fit",
                str(tiny_csv),
                "--out",
                str(run),
                "--hold-out",
                "1",
                "--config",
                str(tiny_config),
                "--quiet",
            ]
        )
        == 0
    )
    m = json.loads((run / "metrics.json").read_text())
    assert m["held_out"] == 1 and "w1_held_out" in m


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "missing.csv", "--out", "{tmp}/r"], "no such file"),
        (["fit", "{csv}", "--model", "nope", "--out", "{tmp}/r"], "unknown model"),
        (["fit", "{csv}", "--hold-out", "0", "--out", "{tmp}/r"], "hold-out"),
        (["fit", "{csv}", "--hold-out", "7", "--out", "{tmp}/r"], "hold-out"),
        (["fit", "{csv}", "--out", "{csv}"], "already exists"),
        (["evaluate", "{tmp}"], "not a run folder"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, tiny_csv, tiny_config, capsys, args, message):
    args = [a.format(tmp=tmp_path, csv=tiny_csv) for a in args]
    if args[0] == "fit":
        args += ["--config", str(tiny_config), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # no half-written run folder


def test_module_entry_point_help():
    r = subprocess.run(
        [sys.executable, "-m", "vgfm_bayes", "--help"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0
    for cmd in ("fit", "evaluate", "simulate", "growth", "demo", "bench"):
        assert cmd in r.stdout


def test_demo_quick_writes_report(tmp_path, capsys):
    out = tmp_path / "demo"
    threads = torch.get_num_threads()
    assert main(["demo", "--out", str(out), "--quick", "--quiet", "--threads", "1"]) == 0
    files = ("report.md", "metrics.json", "mass.png", "trajectories.png", "growth.png", "w1.png")
    for f in (*files, "velocity.png", "compare.png", "run/config.json"):
        assert (out / f).is_file(), f
    assert (out / "run_ensemble").is_dir()
    m = json.loads((out / "metrics.json").read_text())
    # the point head's metrics stay at the top level; every head's sit under "heads"
    assert m["model"] == "point" and set(m["heads"]) == {"point", "ensemble"}
    assert m["w1_mean"] == m["heads"]["point"]["w1_mean"]
    for key in ("times", "w1", "rme", "w1_mean", "rme_mean", "mass_q05", "mass_q95", "seconds"):
        assert key in m
    ens = m["heads"]["ensemble"]
    assert ens["samples"] == 3  # --quick: 3 members
    assert m["demo"]["torch_threads"] == 1  # as asked, and restored afterwards:
    assert torch.get_num_threads() == threads
    assert np.all(np.array(ens["mass_q95"]) > np.array(ens["mass_q05"]))  # a real band
    n_cells = 400 + 442 + 530 + 690 + 969
    for h in ("point", "ensemble"):
        c = m["heads"][h]["growth_calls"]
        assert c["cells"] == n_cells == c["proliferating"] + c["dying"] + c["undetermined"]
    assert m["heads"]["point"]["growth_calls"]["undetermined"] == 0
    report = (out / "report.md").read_text()
    assert "published VGFM" in report and "W1 ensemble" in report and "W1 point" in report
    c = m["heads"]["ensemble"]["growth_calls"]
    assert f"| ensemble | {n_cells} | {c['dying']} | {c['undetermined']} |" in report
    for f in ("mass.png", "growth.png", "velocity.png", "trajectories.png"):
        assert f"]({f})" in report
    printed = capsys.readouterr().out
    assert "point: W1" in printed and "ensemble: W1" in printed


def test_demo_point_head_alone(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--quick", "--quiet", "--bayes-head", "none"]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert list(m["heads"]) == ["point"] and m["demo"]["main"] == "point"
    assert not list(out.glob("run_*")) and (out / "growth.png").is_file()
    assert "W1 point" in (out / "report.md").read_text()


def test_demo_rejects_bad_options(tmp_path):
    from vgfm_bayes.demo import run_demo

    with pytest.raises(ValueError, match="unknown"):
        run_demo(tmp_path / "d", bayes="nope", quick=True, progress=False)
    assert not (tmp_path / "d").exists()  # nothing written before the names are checked
    with pytest.raises(ValueError, match="threads"):
        run_demo(tmp_path / "d", threads=0)


def test_cli_fit_from_h5ad(tmp_path, tiny, tiny_config):
    import anndata as ad
    import pandas as pd

    x = np.vstack(tiny.x)
    t = np.concatenate([[tt] * len(xx) for tt, xx in zip(tiny.times, tiny.x, strict=True)])
    adata = ad.AnnData(np.zeros((len(x), 2)), obs=pd.DataFrame({"day": t}))
    adata.obs_names = [f"c{i}" for i in range(len(x))]
    adata.obsm["X_emb"] = x
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    run = tmp_path / "run"
    args = [
        "fit",
        str(path),
        "--time-key",
        "day",
        "--rep",
        "X_emb",
        "--out",
        str(run),
        "--config",
        str(tiny_config),
        "--quiet",
    ]
    assert main(args) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["times"] == [1.0, 2.0]


def test_help_imports_no_heavy_library():
    # `vgfm-bayes --help` and `import vgfm_bayes` stay light: torch, Pyro, POT and matplotlib
    # are imported only once a command (or a model) needs them
    code = (
        "import sys, vgfm_bayes, vgfm_bayes.cli as c\n"
        "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'pyro', 'ot', 'matplotlib', 'anndata')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
