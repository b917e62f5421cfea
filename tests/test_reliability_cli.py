"""Issue 6: every bad input gets one clear line from the CLI, exit code 2, no traceback, no
half-written run folder and no overwritten user file."""

import json

import numpy as np
import pytest

from tests.tiny import make_tiny, write_csv
from vgfm_bayes.cli import main

BAD_CSV = {
    "empty": ("", "empty"),
    "blank_lines": ("\n\n  \n", "empty"),
    "header_only": ("samples,x1,x2\n", "only a header"),
    "one_time_point": ("samples,x1\n0,1\n0,2\n", "at least two time points"),
    "one_cell": ("samples,x1\n0,1\n0,2\n1,3\n", "at least two cells"),
    "nan": ("samples,x1\n0,1\n0,nan\n1,3\n1,4\n", "NaN or infinite"),
    "inf": ("samples,x1\n0,1\n0,inf\n1,3\n1,4\n", "NaN or infinite"),
    "nan_time": ("samples,x1\n0,1\nnan,2\n1,3\n1,4\n", "finite"),
    "text_time": ("samples,x1\nday0,1\nday0,2\nday1,3\nday1,4\n", "not numeric"),
    "text_coord": ("samples,x1\n0,1\n0,high\n1,3\n1,4\n", "not numeric"),
    "ragged_long": ("samples,x1\n0,1,5\n0,2\n1,3\n1,4\n", "fields"),
    "ragged_short": ("samples,x1,x2\n0,1,5\n0,2\n1,3,3\n1,4,4\n", "fields"),
    "no_time_column": ("t,x1\n0,1\n0,2\n1,3\n1,4\n", "no time column"),
    "no_coordinates": ("samples\n0\n0\n1\n1\n", "no coordinate columns"),
}


@pytest.fixture
def cfg(tiny_config):
    return str(tiny_config)


def _run(args, capsys):
    rc = main(args)
    err = capsys.readouterr().err
    return rc, err


def _assert_one_line(rc, err, message):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("vgfm-bayes: error:"), err
    assert message.lower() in lines[-1].lower(), err


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_one_line_error(tmp_path, cfg, capsys, case):
    body, message = BAD_CSV[case]
    data = tmp_path / "bad.csv"
    data.write_text(body)
    rc, err = _run(["fit", str(data), "--out", str(tmp_path / "r"), "--config", cfg], capsys)
    _assert_one_line(rc, err, message)
    assert not (tmp_path / "r").exists()
    assert data.read_text() == body  # the user's file is untouched


@pytest.mark.parametrize(
    "content, name, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00", "image.csv", "not a"),
        (b"samples,x1\n0,1\x00\n", "nul.csv", "not a readable csv"),
        (b"not an hdf5 file", "fake.h5ad", "not a readable .h5ad"),
        (b"a,b\n1,2\n", "table.xlsx", "unsupported file type"),
    ],
)
def test_non_data_files(tmp_path, cfg, capsys, content, name, message):
    data = tmp_path / name
    data.write_bytes(content)
    args = ["fit", str(data), "--out", str(tmp_path / "r"), "--config", cfg, "--time-key", "day"]
    rc, err = _run(args, capsys)
    _assert_one_line(rc, err, message)
    assert not (tmp_path / "r").exists()


def test_folder_and_missing_file(tmp_path, cfg, capsys):
    (tmp_path / "d.csv").mkdir()
    rc, err = _run(["fit", str(tmp_path / "d.csv"), "--out", str(tmp_path / "r")], capsys)
    _assert_one_line(rc, err, "is a folder")
    rc, err = _run(["fit", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "r")], capsys)
    _assert_one_line(rc, err, "no such file")
    assert not (tmp_path / "r").exists()


@pytest.fixture
def h5ad(tmp_path):
    import anndata as ad
    import pandas as pd

    tc = make_tiny()
    x = np.concatenate(tc.x)
    day = np.repeat(tc.times, tc.counts)
    obs = pd.DataFrame({"day": day, "label": np.where(day < 1, "early", "late")})
    obs.index = obs.index.astype(str)
    adata = ad.AnnData(np.zeros((len(x), 3), dtype=np.float32), obs=obs)
    adata.obsm["X_pca"] = x
    bad = x.copy()
    bad[3, 1] = np.nan
    adata.obsm["X_nan"] = bad
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.mark.parametrize(
    "opts, message",
    [
        (["--time-key", "hours", "--rep", "X_pca"], "no obs column 'hours'"),
        (["--time-key", "day", "--rep", "X_umap"], "no obsm key 'X_umap'"),
        (["--time-key", "label", "--rep", "X_pca"], "cannot read a time from label(s) 'early'"),
        (["--time-key", "label", "--time-map", "early=0"], "no number for label(s) 'late'"),
        (["--time-key", "day", "--rep", "X_pca", "--time-map", "x"], "not LABEL=NUMBER"),
        (["--time-key", "day", "--rep", "X_nan"], "NaN or infinite"),
        (["--rep", "X_pca"], "needs --time-key"),
    ],
)
def test_bad_h5ad_one_line_error(tmp_path, h5ad, cfg, capsys, opts, message):
    out = tmp_path / "r"
    rc, err = _run(["fit", str(h5ad), "--out", str(out), "--config", cfg, *opts], capsys)
    _assert_one_line(rc, err, message)
    assert not out.exists()


@pytest.mark.parametrize(
    "opts, message",
    [
        (["--model", "nope"], "unknown model"),
        (["--hold-out", "0"], "hold-out 0 is out of range"),
        (["--hold-out", "3"], "hold-out 3 is out of range"),
        (["--hold-out", "-1"], "hold-out -1 is out of range"),
        (["--masses", "1,0,2"], "positive"),
        (["--masses", "1,-2,2"], "positive"),
        (["--masses", "1,2"], "2 masses for 3 time points"),
        (["--masses", "1,two,3"], "no such file"),
        (["--masses", "{tmp}/none.txt"], "no such file"),
        (["--masses", "{tmp}/masses_bad.txt"], "positive"),
        (["--checkpoint-every", "-1"], "checkpoint_every"),
    ],
)
def test_bad_options_one_line_error(tmp_path, tiny_csv, cfg, capsys, opts, message):
    (tmp_path / "masses_bad.txt").write_text("1\n0.5\n0\n")
    opts = [o.format(tmp=tmp_path) for o in opts]
    out = tmp_path / "r"
    rc, err = _run(["fit", str(tiny_csv), "--out", str(out), "--config", cfg, *opts], capsys)
    _assert_one_line(rc, err, message)
    assert not out.exists()


def test_out_is_an_existing_file_or_full_folder(tmp_path, tiny_csv, cfg, capsys):
    user = tmp_path / "notes.txt"
    user.write_text("precious")
    rc, err = _run(["fit", str(tiny_csv), "--out", str(user), "--config", cfg], capsys)
    _assert_one_line(rc, err, "already exists")
    assert user.read_text() == "precious"
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    rc, err = _run(["fit", str(tiny_csv), "--out", str(full), "--config", cfg], capsys)
    _assert_one_line(rc, err, "already exists")
    assert [p.name for p in full.iterdir()] == ["keep.txt"]


def test_masses_option_and_file(tmp_path, tiny_csv, cfg, capsys):
    masses = tmp_path / "m.txt"
    masses.write_text("2\n3\n5\n")
    run = tmp_path / "run"
    args = ["fit", str(tiny_csv), "--out", str(run), "--config", cfg, "--quiet"]
    assert main([*args, "--masses", str(masses)]) == 0
    meta = json.loads((run / "config.json").read_text())
    np.testing.assert_allclose(meta["data"]["masses"], [1.0, 1.5, 2.5])


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory):
    from tests.tiny import TINY

    root = tmp_path_factory.mktemp("fitted")
    tc = make_tiny()
    csv = write_csv(tc, root / "tiny.csv")
    cfg = root / "c.json"
    cfg.write_text(json.dumps(TINY))
    run = root / "run"
    assert main(["fit", str(csv), "--out", str(run), "--config", str(cfg), "--quiet"]) == 0
    return run


def test_dimension_mismatch_with_saved_run(tmp_path, fitted_run, capsys):
    data3 = tmp_path / "d3.csv"
    tc = make_tiny(dim=3)
    rows = ["samples,a,b,c"] + [
        f"{t},{p[0]},{p[1]},{p[2]}" for t, x in zip(tc.times, tc.x, strict=True) for p in x
    ]
    data3.write_text("\n".join(rows) + "\n")
    before = (fitted_run / "metrics.json").read_text()
    rc, err = _run(["evaluate", str(fitted_run), "--data", str(data3)], capsys)
    _assert_one_line(rc, err, "3 dims but the model was fitted on 2")
    assert (fitted_run / "metrics.json").read_text() == before

    pts = tmp_path / "p.csv"
    pts.write_text("a,b,c\n0,0,0\n")
    out = tmp_path / "g.csv"
    rc, err = _run(
        ["growth", str(fitted_run), "--points", str(pts), "--time", "1", "--out", str(out)],
        capsys,
    )
    _assert_one_line(rc, err, "3 coordinate columns, the run has 2")
    assert not out.exists()


def test_outputs_never_overwrite_user_files(tmp_path, fitted_run, capsys):
    npz = tmp_path / "sim.npz"
    npz.write_bytes(b"mine")
    rc, err = _run(["simulate", str(fitted_run), "--out", str(npz)], capsys)
    _assert_one_line(rc, err, "already exists")
    assert npz.read_bytes() == b"mine"
    pts = tmp_path / "p.csv"
    pts.write_text("x1,x2\n0,0\n")
    rc, err = _run(
        ["growth", str(fitted_run), "--points", str(pts), "--time", "1", "--out", str(pts)],
        capsys,
    )
    _assert_one_line(rc, err, "already exists")
    assert pts.read_text() == "x1,x2\n0,0\n"


def test_run_folder_errors(tmp_path, fitted_run, capsys):
    rc, err = _run(["evaluate", str(tmp_path)], capsys)
    _assert_one_line(rc, err, "not a run folder")
    rc, err = _run(["fit", "--resume", str(tmp_path)], capsys)
    _assert_one_line(rc, err, "not an unfinished run folder")
    rc, err = _run(["fit", "--resume", str(fitted_run)], capsys)
    _assert_one_line(rc, err, "finished")
    rc, err = _run(["fit", "--out", str(tmp_path / "r")], capsys)
    _assert_one_line(rc, err, "needs DATA")


def test_debug_flag_shows_the_traceback(tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text("")
    from vgfm_bayes.data import DataError

    with pytest.raises(DataError, match="empty"):
        main(["--debug", "fit", str(data), "--out", str(tmp_path / "r")])


def test_same_seed_same_cli_metrics(tmp_path, tiny_csv, cfg):
    import torch

    metrics, weights = [], []
    for name in ("a", "b"):
        run = tmp_path / name
        args = ["fit", str(tiny_csv), "--out", str(run), "--config", cfg, "--seed", "4"]
        assert main([*args, "--quiet"]) == 0
        m = json.loads((run / "metrics.json").read_text())
        metrics.append({k: m[k] for k in ("w1", "rme", "w1_mean", "rme_mean")})
        weights.append(torch.load(run / "weights.pt", weights_only=True)["guide"])
    assert metrics[0] == metrics[1]
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k
