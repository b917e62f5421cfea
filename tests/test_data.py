import numpy as np
import pytest

from vgfm_bayes import DataError, TimeCourse, datasets, from_anndata, load_data
from vgfm_bayes.data import read_csv


def test_bundled_datasets_load_with_counts_as_masses():
    tc = datasets.load("simulation_gene")
    assert tc.counts.tolist() == [400, 442, 530, 690, 969]
    np.testing.assert_allclose(tc.masses, [1, 1.105, 1.325, 1.725, 2.4225])
    assert tc.dim == 2 and tc.times.tolist() == [0, 1, 2, 3, 4]
    assert datasets.load("dyngen").dim == 5
    with pytest.raises(DataError, match="unknown data set"):
        datasets.load("nope")


def test_csv_roundtrip_and_sorting(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("x1,day,x2\n1,2.5,0\n2,0.5,1\n3,2.5,2\n4,0.5,3\n")
    tc = read_csv(p, time_key="day")
    assert tc.times.tolist() == [0.5, 2.5]
    assert tc.var_names == ("x1", "x2")
    np.testing.assert_array_equal(tc.x[0], [[2, 1], [4, 3]])


@pytest.mark.parametrize(
    "body, message",
    [
        ("", "empty"),
        ("samples,x1\n", "only a header"),
        ("samples,x1\n0,1\n0,2\n", "at least two time points"),
        ("samples,x1\n0,1\n0,2\n1,3\n", "at least two cells"),
        ("samples,x1\n0,1\n0,nan\n1,3\n1,4\n", "NaN or infinite"),
        ("samples,x1\na,1\nb,2\n", "not numeric"),
        ("samples,x1\n0,1\n0,x\n1,3\n1,4\n", "not numeric"),
        ("samples,x1\n0,1,5\n0,2\n1,3\n1,4\n", "fields"),
        ("t,x1\n0,1\n0,2\n1,3\n1,4\n", "no time column"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path, body, message):
    p = tmp_path / "bad.csv"
    p.write_text(body)
    with pytest.raises(DataError, match=message):
        read_csv(p)


def test_binary_file_is_rejected(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(DataError):
        read_csv(p)


def test_load_data_unknown_source():
    with pytest.raises(DataError, match="no such file"):
        load_data("does_not_exist.csv")


def test_timecourse_copies_and_freezes_input():
    x0 = np.zeros((3, 2))
    tc = TimeCourse(np.array([0.0, 1.0]), (x0, np.ones((4, 2))), None)
    x0[0, 0] = 5.0
    assert tc.x[0][0, 0] == 0.0
    assert not tc.x[0].flags.writeable
    np.testing.assert_allclose(tc.masses, [1.0, 4 / 3])


def test_given_masses_are_normalised_and_validated():
    xs = (np.zeros((3, 1)), np.ones((3, 1)))
    tc = TimeCourse(np.array([0.0, 1.0]), xs, np.array([2.0, 5.0]))
    np.testing.assert_allclose(tc.masses, [1.0, 2.5])
    with pytest.raises(DataError, match="positive"):
        TimeCourse(np.array([0.0, 1.0]), xs, np.array([1.0, 0.0]))


def test_without_drops_a_snapshot_and_checks_range(tiny):
    d = tiny.without(1)
    assert d.times.tolist() == [0.0, 2.0]
    np.testing.assert_allclose(d.masses, [1.0, tiny.masses[2]])
    for bad in (0, 3, -1):
        with pytest.raises(DataError, match="hold-out"):
            tiny.without(bad)


def test_anndata_input_is_not_mutated(tiny):
    import anndata as ad
    import pandas as pd

    x = np.vstack(tiny.x)
    t = np.concatenate([[tt] * len(xx) for tt, xx in zip(tiny.times, tiny.x, strict=True)])
    adata = ad.AnnData(np.zeros((len(x), 3)), obs=pd.DataFrame({"day": t}))
    adata.obs_names = [f"c{i}" for i in range(len(x))]
    adata.obsm["X_emb"] = x.copy()
    before = adata.copy()
    tc = from_anndata(adata, time_key="day", rep="X_emb")
    assert tc.counts.tolist() == tiny.counts.tolist()
    np.testing.assert_array_equal(adata.obsm["X_emb"], before.obsm["X_emb"])
    assert list(adata.obs.columns) == ["day"]
    with pytest.raises(DataError, match="no obsm key"):
        from_anndata(adata, time_key="day", rep="X_pca")
    with pytest.raises(DataError, match="no obs column"):
        from_anndata(adata, time_key="time", rep="X_emb")
