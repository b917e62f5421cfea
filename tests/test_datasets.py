"""Bundled data sets by name: every benchmark file ships and loads; gaussian_<D>d otherwise."""

import fnmatch
import gzip
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from tests.tiny import write_csv
from vgfm_bayes import DataError, datasets, load_data
from vgfm_bayes.data import gaussian_mixture, read_csv
from vgfm_bayes.data.datasets import GENERIC_OT

ROOT = Path(__file__).resolve().parents[1]

# (counts per time point, dims) of every file of the benchmark suite (data/SOURCES.txt)
EXPECTED = {
    "simulation_gene": ([400, 442, 530, 690, 969], 2),
    "dyngen": ([156, 112, 63, 96, 301], 5),
    "mouse_hematopoiesis": ([1429, 3781, 5788], 2),
    "gaussian_10d": ([500, 1400], 10),
    "gaussian_20d": ([500, 1400], 20),
    "gaussian_50d": ([500, 1400], 50),
    "gaussian_100d": ([500, 1400], 100),
}


def test_every_benchmark_file_is_bundled():
    assert set(datasets.DATASETS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_data_set_loads_by_name(name):
    counts, dim = EXPECTED[name]
    tc = load_data(name)  # the path fit / the CLI take
    assert tc.name == name and tc.dim == dim
    assert tc.counts.tolist() == counts
    assert tc.times.tolist() == list(range(len(counts)))
    np.testing.assert_allclose(tc.masses, np.array(counts) / counts[0])
    assert set(datasets.DATASETS[name].ot) == {"eps", "tau", "normalize_cost"}


def test_shipped_gaussian_is_the_file_not_the_generator():
    shipped = datasets.load("gaussian_10d")
    generated = gaussian_mixture(dim=10, seed=0)
    assert shipped.counts.tolist() == generated.counts.tolist()
    assert not np.array_equal(shipped.x[1], generated.x[1])
    # the DeepRUOT file's structure (data/gaussian.py): 100 -> 1,000 cells in the upper cluster
    assert [(x[:, 1] > 1.25).sum() for x in shipped.x] == [100, 1000]
    assert datasets.DATASETS["gaussian_10d"].ot == GENERIC_OT


def test_other_dimensions_are_generated():
    tc = load_data("gaussian_3d")
    assert tc.dim == 3 and tc.counts.tolist() == [500, 1400] and tc.name == "gaussian_3d"
    np.testing.assert_array_equal(tc.x[1], gaussian_mixture(dim=3, seed=0).x[1])
    assert datasets.is_bundled("gaussian_1000d") and not datasets.is_bundled("gaussian_d")
    assert datasets.reference("gaussian_1000d")["w1"] == pytest.approx(3.010)


def test_unknown_name_errors_clearly():
    with pytest.raises(DataError, match="unknown data set 'gaussian'; bundled: simulation_gene"):
        datasets.load("gaussian")
    with pytest.raises(DataError, match="not a bundled data set"):
        load_data("simulation_genes")


def test_shipped_files_are_package_data():
    """Every bundled file exists and matches a package-data pattern, so wheels install it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["vgfm_bayes.data"]
    folder = resources.files("vgfm_bayes.data") / "files"
    for info in datasets.DATASETS.values():
        assert (folder / info.file).is_file(), info.file
        assert any(fnmatch.fnmatch(f"files/{info.file}", p) for p in patterns), info.file


def test_gzipped_csv_reads_like_the_plain_one(tmp_path, tiny):
    plain = write_csv(tiny, tmp_path / "cells.csv")
    packed = tmp_path / "cells.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = read_csv(plain), load_data(packed)
    assert b.name == "cells"
    for xa, xb in zip(a.x, b.x, strict=True):
        np.testing.assert_array_equal(xa, xb)
    packed.write_bytes(gzip.compress(plain.read_bytes())[:40])  # cut off
    with pytest.raises(DataError, match="cannot read"):
        read_csv(packed)
