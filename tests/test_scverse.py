"""The scverse hand-off: AnnData out in batches (scVelo's and moscot's keys), the CLI on an
.h5ad with day labels, and CellRank kernels from the fit's couplings."""

from __future__ import annotations

import json
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from tests.tiny import TINY, make_tiny
from vgfm_bayes import VGFM, DataError
from vgfm_bayes.cli import main
from vgfm_bayes.posterior import cell_summaries, srot_couplings, summarise
from vgfm_bayes.posterior.cells import BATCH_BYTES, batch_cells

DAYS = pd.CategoricalDtype([f"day{k}" for k in range(5)], ordered=True)


def _cells(seed: int = 0) -> ad.AnnData:
    """As scanpy leaves it: sparse counts in X, X_pca with its loadings, day labels as an
    ordered categorical, cells not sorted by time."""
    tc = make_tiny(seed, counts=(30, 32, 36, 40, 44))
    rng = np.random.default_rng(seed)
    coords = np.vstack(tc.x)
    day = np.repeat(tc.times, tc.counts).astype(int)
    order = rng.permutation(len(coords))
    n_genes = 6
    counts = sp.random(len(coords), n_genes, density=0.3, format="csr", random_state=seed)
    obs = pd.DataFrame(
        {"day": pd.Categorical([f"day{d}" for d in day[order]], dtype=DAYS)},
        index=[f"cell{i}" for i in order],
    )
    adata = ad.AnnData(counts.astype(np.float32), obs=obs)
    adata.var_names = [f"g{j}" for j in range(n_genes)]
    adata.obsm["X_pca"] = coords[order]
    adata.varm["PCs"] = np.linalg.qr(rng.normal(size=(n_genes, 2)))[0]
    return adata


@pytest.fixture(scope="module")
def cells():
    return _cells()


@pytest.fixture(scope="module")
def fitted(cells):
    torch.manual_seed(0)
    return VGFM(head="mean_field", **TINY).fit(cells, time_key="day", progress=False)


def _at_time(adata, label):
    sel = (adata.obs["day"] == label).to_numpy()
    return sel, np.asarray(adata.obsm["X_pca"])[sel]


# ------------------------------------------------------------------ fitting on labels
def test_fit_from_python_reads_day_labels(fitted, cells):
    assert fitted.data.times.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert fitted.data.counts.tolist() == [30, 32, 36, 40, 44]
    assert fitted.source["rep"] == "X_pca" and fitted.source["time_key"] == "day"
    assert fitted.source["labels"] == {f"day{k}": float(k) for k in range(5)}
    assert list(cells.obs.columns) == ["day"]  # the input is untouched


def test_cli_fit_h5ad_with_day_labels(tmp_path, tiny_config, cells):
    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path)
    base = ["fit", str(path), "--time-key", "day", "--config", str(tiny_config), "--quiet"]
    assert main([*base, "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["times"] == [1.0, 2.0, 3.0, 4.0]  # scored after the first time point
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["anndata"]["rep"] == "X_pca" and meta["anndata"]["time_key"] == "day"
    tmap = "day0=0,day1=0.5,day2=1,day3=2,day4=4"
    assert main([*base, "--out", str(tmp_path / "run2"), "--time-map", tmap]) == 0
    metrics = json.loads((tmp_path / "run2" / "metrics.json").read_text())
    assert metrics["times"] == [0.5, 1.0, 2.0, 4.0]
    # the run remembers where its cells came from: to_anndata needs no keys after load
    model = VGFM.load(tmp_path / "run2")
    assert model.source["time_map"] == {"day0": 0, "day1": 0.5, "day2": 1, "day3": 2, "day4": 4}
    out = model.to_anndata(cells, samples=2)
    assert out.uns["vgfm_bayes"]["time_key"] == "day"
    info = out.uns["vgfm_bayes"]
    assert dict(zip(info["time_labels"], info["time_values"], strict=True))["day1"] == 0.5


def test_cli_rep_must_be_given_without_x_pca(tmp_path, tiny_config, cells, capsys):
    adata = cells.copy()
    del adata.obsm["X_pca"]
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    run = tmp_path / "run"
    args = ["fit", str(path), "--time-key", "day", "--config", str(tiny_config), "--out"]
    assert main([*args, str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "rep must be given" in err and "sc.pp.pca" in err and not run.exists()
    # rep X: the sparse counts themselves
    assert main([*args, str(run), "--rep", "X", "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["fields"]["dim"] == 6


# ------------------------------------------------------------------ to_anndata
def test_to_anndata_defaults_and_obs_names(fitted, cells):
    torch.manual_seed(1)
    out = fitted.to_anndata(cells, samples=8)  # time_key, rep: as fitted
    assert list(out.obs_names) == list(cells.obs_names)
    assert "growth_mean" not in cells.obs and "velocity_pca" not in cells.obsm
    # each row is that cell's posterior at its own time (the same draws as growth())
    sel, x = _at_time(cells, "day2")
    torch.manual_seed(1)
    g = fitted.growth(x, 2.0, samples=8)
    np.testing.assert_allclose(out.obs["growth_mean"].to_numpy()[sel], g["mean"], rtol=1e-5)
    np.testing.assert_allclose(out.obs["growth_q95"].to_numpy()[sel], g["q95"], rtol=1e-5)
    for c in ("mean", "sd", "q05", "q50", "q95", "p_positive"):
        assert f"growth_{c}" in out.obs
    assert (out.obs["growth_sd"] > 0).all()
    assert out.obsm["velocity_pca"].shape == (cells.n_obs, 2)


def test_to_anndata_in_batches_equals_one_batch(fitted, cells):
    torch.manual_seed(2)
    small = fitted.to_anndata(cells, samples=6, batch_size=7)
    torch.manual_seed(2)
    whole = fitted.to_anndata(cells, samples=6, batch_size=10_000)
    for key in ("velocity_pca", "velocity_pca_sd"):
        np.testing.assert_allclose(small.obsm[key], whole.obsm[key], rtol=1e-5, atol=1e-7)
    for col in ("growth_mean", "growth_q05", "growth_p_positive", "velocity_direction_spread"):
        np.testing.assert_allclose(small.obs[col], whole.obs[col], rtol=1e-5, atol=1e-7)


def test_cell_summaries_hold_one_batch_of_draws_at_a_time():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    times = rng.integers(0, 3, 50).astype(float)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    calls = []

    def growth(xb, t):
        calls.append((len(xb), t))
        return (xb @ w.T).T.astype(np.float32) + np.float32(t)  # (S=5, b)

    def velocity(xb, t):
        return np.stack([xb * (s + 1) for s in range(5)]).astype(np.float32)  # (5, b, 3)

    out = cell_summaries(lambda idx: x[idx], times, growth, velocity, dim=3, batch_size=8)
    assert max(b for b, _ in calls) <= 8 and sum(b for b, _ in calls) == 50
    draws = (x @ w.T).T + times[None]
    ref = summarise(draws)
    for c, values in ref.items():
        np.testing.assert_allclose(out[f"growth_{c}"], values, rtol=1e-5, atol=1e-6)
    v = np.stack([x * (s + 1) for s in range(5)])
    np.testing.assert_allclose(out["velocity_mean"], v.mean(0), rtol=1e-5)
    np.testing.assert_allclose(out["velocity_sd"], v.std(0, ddof=1), rtol=1e-5)


def test_batch_size_keeps_draws_within_budget():
    n = batch_cells(200, 128)
    assert 16 <= n < 4096 and n * 200 * 128 * 4 <= BATCH_BYTES
    assert batch_cells(1, 2) == 4096


def test_gene_space_velocity_and_key_added(fitted, cells, tmp_path):
    out = fitted.to_anndata(cells, samples=4)
    gene = out.layers["velocity"]
    assert gene.shape == (cells.n_obs, cells.n_vars) and gene.dtype == np.float32
    expected = out.obsm["velocity_pca"] @ np.asarray(cells.varm["PCs"]).T
    np.testing.assert_allclose(gene, expected, rtol=1e-4, atol=1e-5)
    assert list(out.uns["velocity_params"]["embeddings"]) == ["pca"]
    out.write_h5ad(tmp_path / "out.h5ad")  # all of it is storable
    back = ad.read_h5ad(tmp_path / "out.h5ad")
    assert list(back.uns["velocity_params"]["embeddings"]) == ["pca"]
    mine = cells.copy()
    assert fitted.to_anndata(mine, samples=4, key_added="run1", inplace=True) is None
    assert "run1_velocity_pca" in mine.obsm and "run1_velocity" in mine.layers
    assert "run1_velocity_params" in mine.uns and "run1_growth_q05" in mine.obs
    assert "velocity" not in mine.layers and "growth_mean" not in mine.obs
    # no loadings, or another rep: no gene-space layer
    bare = cells.copy()
    del bare.varm["PCs"]
    assert "velocity" not in fitted.to_anndata(bare, samples=2).layers


def test_to_anndata_merges_scvelos_own_velocity_params(fitted, cells):
    adata = cells.copy()
    adata.uns["velocity_params"] = {"mode": "stochastic", "embeddings": np.array(["umap"])}
    out = fitted.to_anndata(adata, samples=2)
    assert out.uns["velocity_params"]["mode"] == "stochastic"
    assert list(out.uns["velocity_params"]["embeddings"]) == ["umap", "pca"]


def test_scvelo_stream_plot_draws_without_recomputing(fitted, cells):
    import matplotlib

    matplotlib.use("Agg")
    scv = pytest.importorskip(
        "scvelo", reason="scVelo does not import here (pip install .[scverse])"
    )
    adata = cells.copy()
    # as after a scVelo run on the UMAP: without its embeddings listing "pca", scVelo would
    # recompute velocity_pca from a velocity graph (there is none: it would fail)
    adata.uns["velocity_params"] = {"mode": "stochastic", "embeddings": ["umap"]}
    out = fitted.to_anndata(adata, samples=4)
    before = out.obsm["velocity_pca"].copy()
    ax = scv.pl.velocity_embedding_stream(out, basis="pca", show=False)
    assert ax is not None
    np.testing.assert_array_equal(out.obsm["velocity_pca"], before)
    assert "velocity_graph" not in out.uns
    import matplotlib.pyplot as plt

    plt.close("all")


def test_posterior_growth_rates_is_a_table_by_obs_names(fitted, cells):
    torch.manual_seed(3)
    table = fitted.posterior_growth_rates(cells, samples=6)
    torch.manual_seed(3)
    out = fitted.to_anndata(cells, samples=6)
    cols = [f"growth_{c}" for c in ("mean", "sd", "q05", "q50", "q95", "p_positive")]
    assert list(table.columns) == cols
    assert table.index.equals(cells.obs_names)
    np.testing.assert_allclose(table.to_numpy(), out.obs[cols].to_numpy(), rtol=1e-6)


def test_a_subset_keeps_the_fits_times(fitted, cells):
    """Codes of an ordered categorical shift when early days are missing; the fit's mapping
    keeps each label's time."""
    late = cells[cells.obs["day"].isin(["day3", "day4"])].copy()
    late.obs["day"] = late.obs["day"].cat.remove_unused_categories()
    torch.manual_seed(4)
    part = fitted.posterior_growth_rates(late, samples=4)
    torch.manual_seed(4)
    full = fitted.posterior_growth_rates(cells, samples=4)
    # same draws; the per-time batches differ, so compare a day present in both with growth()
    sel, x = _at_time(late, "day4")
    torch.manual_seed(4)
    g = fitted.growth(x, 4.0, samples=4)
    np.testing.assert_allclose(part["growth_mean"].to_numpy()[sel], g["mean"], rtol=1e-5)
    assert set(part.index) <= set(full.index)


def test_to_anndata_checks_the_representation(fitted, cells):
    with pytest.raises(DataError, match="6 dims but the model was fitted on 2"):
        fitted.to_anndata(cells, rep="X", samples=2)
    with pytest.raises(DataError, match="no obsm key 'X_umap'"):
        fitted.to_anndata(cells, rep="X_umap", samples=2)


# ------------------------------------------------------------------ CellRank
def _cellrank():
    return pytest.importorskip(
        "cellrank", reason="CellRank does not import here (pip install .[scverse])"
    )


def test_to_cellrank_holds_the_fits_srot_plans(fitted, cells):
    _cellrank()
    kernel = fitted.to_cellrank(cells, threshold=None, self_transitions="diagonal")
    tmat = kernel.transition_matrix
    n = cells.n_obs
    assert tmat.shape == (n, n)
    np.testing.assert_allclose(np.asarray(tmat.sum(1)).ravel(), 1.0, atol=1e-10)
    assert "vgfm_time" not in cells.obs  # the kernel works on a copy
    assert kernel.adata.obs["vgfm_time"].cat.ordered
    dense = tmat.toarray() if sp.issparse(tmat) else np.asarray(tmat)
    scaling = fitted.scaling
    sels = [_at_time(cells, f"day{k}")[0] for k in range(5)]
    xs = [scaling.to_internal(_at_time(cells, f"day{k}")[1]) for k in range(5)]
    plans = srot_couplings(xs, fitted.data.times, fitted.resolved, fitted.data.masses)
    for k in range(4):
        block = dense[np.ix_(sels[k], sels[k + 1])]
        np.testing.assert_allclose(block, plans[k], rtol=1e-5, atol=1e-9)
        assert np.abs(dense[sels[k]][:, ~sels[k + 1]]).max() == 0  # only to the next day
    last = dense[np.ix_(sels[4], sels[4])]
    np.testing.assert_allclose(last, np.eye(sels[4].sum()))


@pytest.fixture(scope="module")
def gene_model():
    from vgfm_bayes import datasets

    tc = datasets.load("simulation_gene")
    return tc, VGFM(head="point", **TINY).fit(tc, progress=False)


def test_to_cellrank_on_gene_data_gives_fate_probabilities(gene_model):
    cr = _cellrank()
    tc, model = gene_model
    rng = np.random.default_rng(0)
    keep = [rng.choice(len(x), 80, replace=False) for x in tc.x]  # a subsample of the cells
    x = np.vstack([xk[i] for xk, i in zip(tc.x, keep, strict=True)])
    day = np.repeat(tc.times, 80)
    adata = ad.AnnData(
        x.astype(np.float32), obs=pd.DataFrame({"day": day}, index=[f"c{i}" for i in range(400)])
    )
    kernel = model.to_cellrank(adata, time_key="day", rep="X")  # CellRank's defaults
    tmat = kernel.transition_matrix
    assert tmat.shape == (400, 400)
    np.testing.assert_allclose(np.asarray(tmat.sum(1)).ravel(), 1.0, atol=1e-10)
    last = kernel.adata.obs_names[day == tc.times[-1]]
    high = x[day == tc.times[-1], 0] > np.median(x[day == tc.times[-1], 0])
    gpcca = cr.estimators.GPCCA(kernel)
    gpcca.set_terminal_states({"high": list(last[high]), "low": list(last[~high])})
    gpcca.compute_fate_probabilities()
    fate = np.asarray(gpcca.fate_probabilities)
    assert fate.shape == (400, 2) and np.all(np.isfinite(fate))
    np.testing.assert_allclose(fate.sum(1), 1.0, atol=1e-6)
    first = day == tc.times[0]
    assert 0.0 < fate[first, 0].mean() < 1.0  # early cells are not all committed to one fate


def test_to_cellrank_says_how_to_install(fitted, cells, monkeypatch):
    monkeypatch.setitem(sys.modules, "cellrank", None)  # import cellrank raises ImportError
    with pytest.raises(ImportError, match=r"pip install vgfm-bayes\[scverse\]"):
        fitted.to_cellrank(cells)


def test_couplings_default_masses_are_the_cell_counts():
    tc = make_tiny()
    settings = {"eps": 0.05, "tau": 1.0, "normalize_cost": True}
    counts = np.asarray(tc.counts, dtype=float)
    default = srot_couplings(tc.x, tc.times, settings)
    given = srot_couplings(tc.x, tc.times, settings, counts / counts[0])
    for a, b in zip(default, given, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a.sum(1), 1.0, rtol=1e-10)
