"""AnnData as scanpy users have it, read for fitting: sparse X, rep defaults, time labels."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from vgfm_bayes import DataError, from_anndata, load_data
from vgfm_bayes.data import as_timecourse, read_h5ad


def _adata(tc, labels=None, x=None):
    coords = np.vstack(tc.x)
    day = np.repeat(tc.times, tc.counts)
    obs = pd.DataFrame(
        {"day": day if labels is None else labels(day)},
        index=[f"cell{i}" for i in range(len(coords))],
    )
    return ad.AnnData(coords if x is None else x(coords), obs=obs)


@pytest.mark.parametrize("sparse", [sp.csr_matrix, sp.csr_array, sp.csc_matrix])
def test_sparse_x_equals_dense(tiny, sparse):
    dense = from_anndata(_adata(tiny), time_key="day", rep="X")
    tc = from_anndata(_adata(tiny, x=sparse), time_key="day", rep="X")
    for a, b in zip(tc.x, dense.x, strict=True):
        np.testing.assert_array_equal(a, b)
    assert tc.var_names == dense.var_names


def test_rep_defaults_to_x_pca_when_present(tiny):
    adata = _adata(tiny, x=lambda c: np.zeros((len(c), 5)))
    adata.obsm["X_pca"] = np.vstack(tiny.x)
    tc = from_anndata(adata, time_key="day")
    assert tc.dim == 2 and tc.var_names == ("X_pca_1", "X_pca_2")
    tc, source = as_timecourse(adata, "day")
    assert source["rep"] == "X_pca" and source["labels"] == {}


def test_rep_must_be_given_without_x_pca(tiny):
    adata = _adata(tiny)
    adata.obsm["X_umap"] = np.vstack(tiny.x)
    with pytest.raises(DataError) as err:
        from_anndata(adata, time_key="day")
    msg = str(err.value)
    assert "X_pca" in msg and "X_umap" in msg and "sc.pp.pca" in msg and "rep='X'" in msg
    assert from_anndata(adata, time_key="day", rep="X").dim == 2


def test_categorical_day_labels_and_time_map(tiny, tmp_path):
    cat = pd.CategoricalDtype(["day0", "day1", "day2"], ordered=True)
    adata = _adata(tiny, labels=lambda d: pd.Series([f"day{int(v)}" for v in d], dtype=cat).values)
    adata.obsm["X_pca"] = np.vstack(tiny.x)
    tc = from_anndata(adata, time_key="day")
    assert tc.times.tolist() == [0.0, 1.0, 2.0]
    assert tc.counts.tolist() == tiny.counts.tolist()
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    tmap = {"day0": 0.0, "day1": 0.5, "day2": 3.0}
    for tc in (
        read_h5ad(path, "day", time_map=tmap),
        load_data(path, time_key="day", time_map=tmap),
        from_anndata(adata, "day", time_map=tmap),
    ):
        assert tc.times.tolist() == [0.0, 0.5, 3.0]
    _, source = as_timecourse(str(path), "day", time_map=tmap)
    assert source == {"time_key": "day", "rep": "X_pca", "time_map": tmap, "labels": tmap}


def test_unreadable_labels_name_the_column_and_the_fix(tiny):
    adata = _adata(tiny, labels=lambda d: np.where(d < 1, "early", "late"))
    adata.obsm["X_pca"] = np.vstack(tiny.x)
    with pytest.raises(DataError, match=r"obs\['day'\].*'early', 'late'.*time_map"):
        from_anndata(adata, time_key="day")


def test_bundled_and_csv_paths_ignore_rep(tiny_csv):
    assert load_data("simulation_gene").n_times == 5
    assert load_data(tiny_csv).dim == 2
